//! The fake on a loopback port, able to go away as a stopped API server does: it stops
//! listening (new connections are refused) and cuts every open connection, watches included,
//! then listens again on the same address.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// Resolves once the connections of one listening period are cut.
type Cut = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A connection that fails every read and write once it is cut, so that the HTTP server drops it
/// (and the client sees it break) even in the middle of a response.
struct Severable {
    stream: TcpStream,
    /// `None` once cut.
    cut: Option<Cut>,
}

impl Severable {
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some(cut) = self.cut.as_mut()
            && cut.as_mut().poll(cx).is_pending()
        {
            return Ok(());
        }
        self.cut = None;
        Err(io::Error::new(io::ErrorKind::ConnectionReset, "the API server went away"))
    }
}

impl AsyncRead for Severable {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Severable {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accepts connections and hands them out severable by `cut`.
struct Listener {
    inner: TcpListener,
    cut: watch::Receiver<bool>,
}

impl axum::serve::Listener for Listener {
    type Io = Severable;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, peer) = axum::serve::Listener::accept(&mut self.inner).await;
        let mut cut = self.cut.clone();
        let cut: Cut = Box::pin(async move {
            let _ = cut.wait_for(|cut| *cut).await;
        });
        (Severable { stream, cut: Some(cut) }, peer)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One period of listening: the accept loop, and the switch that cuts its connections.
struct Listening {
    task: JoinHandle<()>,
    cut: watch::Sender<bool>,
}

impl Listening {
    async fn start(addr: SocketAddr, service: axum::Router) -> io::Result<(SocketAddr, Self)> {
        let inner = TcpListener::bind(addr).await?;
        let bound = inner.local_addr()?;
        let (cut, severed) = watch::channel(false);
        let listener = Listener { inner, cut: severed };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, service).await;
        });
        Ok((bound, Self { task, cut }))
    }

    /// Stops accepting (the listening socket closes with the task) and cuts every connection.
    fn stop(self) -> JoinHandle<()> {
        self.task.abort();
        let _ = self.cut.send(true);
        self.task
    }
}

/// Keeps a loopback listener running; dropping it (or [`ServeHandle::shutdown`]) stops it.
pub struct ServeHandle {
    addr: SocketAddr,
    service: axum::Router,
    listening: Option<Listening>,
}

impl ServeHandle {
    pub(super) async fn start(addr: SocketAddr, service: axum::Router) -> io::Result<(SocketAddr, Self)> {
        let (bound, listening) = Listening::start(addr, service.clone()).await?;
        Ok((bound, Self { addr: bound, service, listening: Some(listening) }))
    }

    /// The address it listens on (and listens on again after [`ServeHandle::come_back`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Goes away as a stopped API server does: connections are refused from now on, and every
    /// open one (watches included) breaks off. The objects stay, as they do in etcd.
    pub fn go_away(&mut self) {
        if let Some(listening) = self.listening.take() {
            drop(listening.stop());
        }
    }

    /// Listens again on the same address after [`ServeHandle::go_away`].
    pub async fn come_back(&mut self) -> io::Result<()> {
        if self.listening.is_none() {
            let (_, listening) = Listening::start(self.addr, self.service.clone()).await?;
            self.listening = Some(listening);
        }
        Ok(())
    }

    /// Stops listening and cuts every connection.
    pub async fn shutdown(mut self) {
        if let Some(listening) = self.listening.take() {
            let _ = listening.stop().await;
        }
    }
}

impl Drop for ServeHandle {
    fn drop(&mut self) {
        self.go_away();
    }
}
