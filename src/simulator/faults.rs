//! Fault injection: added latency, injected 500s and dropped connections, plus the listener
//! that makes a real drop possible (a connection that can be killed from inside a request).

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    extract::connect_info::Connected,
    serve::{IncomingStream, Listener},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::watch,
};

use super::{Faults, state::State};

/// What to do with a request before it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultAction {
    Serve,
    /// Answer 500 with the error envelope.
    Error,
    /// Close the connection without any response.
    Drop,
}

fn share(rate: f64) -> f64 {
    if rate.is_nan() { 0.0 } else { rate.clamp(0.0, 1.0) }
}

/// One draw decides: `[0, drop)` drops, `[drop, drop + error)` fails, the rest is served.
pub(crate) fn roll(state: &mut State) -> (Duration, FaultAction) {
    let Faults { latency, error_rate, drop_rate } = state.faults;
    let (drop_rate, error_rate) = (share(drop_rate), share(error_rate));
    if drop_rate <= 0.0 && error_rate <= 0.0 {
        return (latency, FaultAction::Serve);
    }
    let draw = state.rng.f64();
    let action = if draw < drop_rate {
        FaultAction::Drop
    } else if draw < drop_rate + error_rate {
        FaultAction::Error
    } else {
        FaultAction::Serve
    };
    (latency, action)
}

/// Connection information handed to every request: the peer and the switch that kills the
/// connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    #[allow(dead_code)]
    pub peer: SocketAddr,
    pub kill: Arc<AtomicBool>,
}

impl ConnHandle {
    /// From now on every read or write on the connection fails, so the server closes it without
    /// sending the response.
    pub fn kill(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }
}

/// A TCP listener whose connections can be killed from a handler and die on shutdown.
pub(crate) struct SimListener {
    inner: TcpListener,
    shutdown: watch::Receiver<bool>,
}

impl SimListener {
    pub fn new(inner: TcpListener, shutdown: watch::Receiver<bool>) -> SimListener {
        SimListener { inner, shutdown }
    }
}

impl Listener for SimListener {
    type Io = SimStream;
    type Addr = ConnHandle;

    async fn accept(&mut self) -> (SimStream, ConnHandle) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let kill = Arc::new(AtomicBool::new(false));
                    let mut shutdown = self.shutdown.clone();
                    let stream = SimStream {
                        inner: stream,
                        kill: kill.clone(),
                        down: false,
                        shutdown: Box::pin(async move {
                            let _ = shutdown.wait_for(|down| *down).await;
                        }),
                    };
                    return (stream, ConnHandle { peer, kill });
                }
                // Out of file descriptors and the like: wait a little and go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<ConnHandle> {
        Ok(ConnHandle { peer: self.inner.local_addr()?, kill: Arc::new(AtomicBool::new(false)) })
    }
}

impl Connected<IncomingStream<'_, SimListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP stream that fails every operation once killed or once the server shuts down.
pub(crate) struct SimStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
    down: bool,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl SimStream {
    fn dead(&mut self, cx: &mut Context<'_>) -> bool {
        if self.down || self.kill.load(Ordering::SeqCst) {
            return true;
        }
        if self.shutdown.as_mut().poll(cx).is_ready() {
            self.down = true;
        }
        self.down
    }
}

fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection dropped by the simulator")
}

impl AsyncRead for SimStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.dead(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.dead(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.dead(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.dead(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::seed::Seed;

    #[test]
    fn shares_are_deterministic_with_a_seed() {
        let mut state = State::from_seed(&Seed::default()).unwrap();
        state.faults = Faults { latency: Duration::ZERO, error_rate: 0.25, drop_rate: 0.25 };
        let mut counts = [0usize; 3];
        state.rng = fastrand::Rng::with_seed(7);
        let first: Vec<FaultAction> = (0..1000).map(|_| roll(&mut state).1).collect();
        for action in &first {
            counts[*action as usize] += 1;
        }
        assert!((400..600).contains(&counts[0]), "{counts:?}");
        assert!((180..320).contains(&counts[1]), "{counts:?}");
        assert!((180..320).contains(&counts[2]), "{counts:?}");
        state.rng = fastrand::Rng::with_seed(7);
        let second: Vec<FaultAction> = (0..1000).map(|_| roll(&mut state).1).collect();
        assert_eq!(first, second);
        state.faults = Faults { latency: Duration::ZERO, error_rate: f64::NAN, drop_rate: -1.0 };
        assert!((0..100).all(|_| roll(&mut state).1 == FaultAction::Serve));
        state.faults = Faults { latency: Duration::ZERO, error_rate: 7.0, drop_rate: 0.0 };
        assert!((0..100).all(|_| roll(&mut state).1 == FaultAction::Error));
    }
}
