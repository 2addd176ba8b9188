//! `simulator`: the Bitbucket simulator as a program, for trying the operator and for users' CI.

use std::net::SocketAddr;

use crate::simulator::{RunningSimulator, Seed, Simulator};

/// The seed the demo and `simulator` use unless told otherwise: examples/simulator-seed.yaml.
pub const DEFAULT_SEED: &str = include_str!("../../examples/simulator-seed.yaml");

/// Reads a seed file (or the default one) into a seed.
pub fn seed(file: Option<&std::path::Path>) -> Result<Seed, String> {
    let (text, name) = match file {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read the seed: {e}", path.display()))?,
            path.display().to_string(),
        ),
        None => (DEFAULT_SEED.to_owned(), "the built-in seed (examples/simulator-seed.yaml)".to_owned()),
    };
    Seed::from_yaml(&text).map_err(|e| format!("{name}: {e}"))
}

/// Starts a simulator on `listen`; refuses non-loopback addresses unless `allow_remote`.
pub async fn start(seed: Seed, listen: SocketAddr, allow_remote: bool) -> Result<RunningSimulator, String> {
    if !listen.ip().is_loopback() && !allow_remote {
        return Err(format!(
            "{listen} is not a loopback address; the simulator has no real security, so pass --allow-remote to expose it"
        ));
    }
    let simulator = Simulator::new(seed).map_err(|e| format!("the seed is not consistent: {e}"))?;
    simulator.serve(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))
}

/// What a person needs to use the simulator: its URL, users and tokens (fake by design).
pub fn banner(running: &RunningSimulator, seed: &Seed) -> String {
    let mut out = format!("Bitbucket simulator listening on {}\n", running.base_url());
    out.push_str("Users (simulator credentials, not real ones):\n");
    for user in &seed.users {
        let tokens: Vec<&str> = user.tokens.iter().map(|t| t.token.as_str()).collect();
        let password = if user.password.is_some() { "has a password" } else { "no password" };
        out.push_str(&format!(
            "  {:<14} {password}; tokens: {}\n",
            user.name,
            if tokens.is_empty() { "none".into() } else { tokens.join(", ") }
        ));
    }
    let projects: Vec<String> =
        seed.projects.iter().map(|p| format!("{} ({} repositories)", p.key, p.repositories.len())).collect();
    out.push_str(&format!("Projects: {}\n", projects.join(", ")));
    out.push_str("Stop it with Ctrl-C.\n");
    out
}
