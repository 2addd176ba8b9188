//! The command line as a user runs it: the real binary, a temporary folder for manifests and
//! token files, and (when a test needs one) a Bitbucket simulator to point them at.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use bitbucket_operator::simulator::{RunningSimulator, Seed, Simulator};

use super::fixtures;

/// The operator's binary, as built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_bitbucket-operator");

/// A temporary folder, removed on drop, and maybe a simulator.
pub struct Workspace {
    dir: PathBuf,
    sim: Option<RunningSimulator>,
}

impl Workspace {
    /// An empty temporary folder; `name` shows which test it belongs to.
    pub fn new(name: &str) -> Self {
        let unique = format!("bbo-cli-{name}-{}-{:x}", std::process::id(), fastrand::u64(..));
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).expect("create the temporary folder");
        Self { dir, sim: None }
    }

    /// A temporary folder and a simulator serving `seed` on a free loopback port.
    pub async fn with_simulator(name: &str, seed: &str) -> Self {
        let sim = Simulator::new(Seed::from_yaml(seed).expect("seed"))
            .expect("simulator")
            .serve("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("serve");
        let mut workspace = Self::new(name);
        workspace.sim = Some(sim);
        workspace
    }

    /// The folder, as a command-line argument.
    pub fn dir(&self) -> String {
        self.dir.display().to_string()
    }

    pub fn sim(&self) -> &RunningSimulator {
        self.sim.as_ref().expect("this workspace has no simulator")
    }

    /// The simulator's test controls.
    pub fn bitbucket(&self) -> &Simulator {
        self.sim().simulator()
    }

    /// The simulator's URL.
    pub fn url(&self) -> String {
        self.sim().base_url()
    }

    /// The path of a file in the folder, written or not.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Writes a file into the folder and returns its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write a temporary file");
        path.display().to_string()
    }

    /// Writes manifests pointed at the simulator, with `token` for the operator's (see
    /// [`fixtures::fill`]), and returns the file's path.
    pub fn write_manifests(&self, name: &str, yaml: &str, token: &str) -> String {
        self.write(name, &fixtures::fill(yaml, &self.url(), token))
    }

    /// Writes [`fixtures::manifests`] to `resources.yaml`, pointed at the simulator, with `token`
    /// in the Secret; returns its path.
    pub fn manifests(&self, token: &str) -> String {
        self.write_manifests("resources.yaml", &fixtures::manifests(), token)
    }

    /// Stops the simulator; the folder goes when the workspace is dropped.
    pub async fn done(mut self) {
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await;
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the binary (off the async runtime's threads) and returns its output.
pub async fn run(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().expect("run the binary"))
        .await
        .expect("join")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Standard output, then standard error.
pub fn all(output: &Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

/// A loopback port nothing listens on (just freed).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// Serves `router` on a free loopback port until the handle is aborted; returns its URL.
pub async fn serve(router: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, handle)
}

/// A web server that answers every path with an HTML 404, as one that is not Bitbucket does.
pub fn not_bitbucket() -> axum::Router {
    axum::Router::new().fallback(|| async {
        (axum::http::StatusCode::NOT_FOUND, axum::response::Html("<html><body>Not Found</body></html>"))
    })
}
