//! `simulator`: the Bitbucket simulator and the SonarQube simulator as a program, for trying the
//! operator, the examples and the CLI without a Bitbucket or a SonarQube, and for users' CI. It
//! has no real security: its users, passwords and tokens are the seeds', printed at start, and it
//! listens on loopback unless told otherwise.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use super::Error;
use crate::simulator::{
    RunningSimulator, Seed, Simulator,
    sonarqube::{RunningSonarQube, SonarQubeSimulator, SonarSeed},
};

/// The seed the demo and `simulator` use unless told otherwise: examples/simulator-seed.yaml.
pub const DEFAULT_SEED: &str = include_str!("../../examples/simulator-seed.yaml");

/// The address `simulator` listens on by default, Bitbucket's usual port on loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7990";

/// The SonarQube seed `simulator` uses unless told otherwise: examples/sonarqube-seed.yaml.
pub const DEFAULT_SONARQUBE_SEED: &str = include_str!("../../examples/sonarqube-seed.yaml");

/// Where the SonarQube simulator listens by default, SonarQube's usual port on loopback.
pub const DEFAULT_SONARQUBE_LISTEN: &str = "127.0.0.1:9000";

/// The arguments of `simulator`.
#[derive(clap::Args)]
pub struct SimulatorArgs {
    /// The seed: users, projects, repositories (default: examples/simulator-seed.yaml).
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Where to listen (port 0: any free port; the banner shows the URL).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The SonarQube simulator's seed: edition, users, tokens (default: examples/sonarqube-seed.yaml).
    #[arg(long, value_name = "FILE")]
    pub sonarqube_seed: Option<PathBuf>,
    /// Where the SonarQube simulator listens (port 0: any free port; the banner shows the URL).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_SONARQUBE_LISTEN)]
    pub sonarqube_listen: SocketAddr,
    /// Allow non-loopback addresses (the simulators have no real security).
    #[arg(long)]
    pub allow_remote: bool,
}

/// Runs `simulator` as the command line asks, until Ctrl-C (or SIGTERM).
pub async fn execute(args: SimulatorArgs) -> Result<u8, Error> {
    run(&args).await?;
    Ok(0)
}

/// Reads a seed file (or the built-in one). The error names the file and what is wrong.
pub fn seed(file: Option<&Path>) -> Result<Seed, Error> {
    let (text, origin) = match file {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.to_owned(),
                what: "seed",
                source,
            })?,
            path.display().to_string(),
        ),
        None => (DEFAULT_SEED.to_owned(), "the built-in seed (examples/simulator-seed.yaml)".to_owned()),
    };
    Seed::from_yaml(&text).map_err(|source| Error::Seed { origin, source })
}

/// Reads a SonarQube seed file (or the built-in one). The error names the file and what is wrong.
pub fn sonarqube_seed(file: Option<&Path>) -> Result<SonarSeed, Error> {
    let (text, origin) = match file {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.to_owned(),
                what: "SonarQube seed",
                source,
            })?,
            path.display().to_string(),
        ),
        None => {
            (DEFAULT_SONARQUBE_SEED.to_owned(), "the built-in SonarQube seed (examples/sonarqube-seed.yaml)".to_owned())
        }
    };
    SonarSeed::from_yaml(&text).map_err(|source| Error::SonarSeed { origin, source })
}

/// Starts a SonarQube simulator on `listen`; refuses a non-loopback address unless `allow_remote`.
pub async fn start_sonarqube(
    seed: SonarSeed,
    listen: SocketAddr,
    allow_remote: bool,
) -> Result<RunningSonarQube, Error> {
    if !listen.ip().is_loopback() && !allow_remote {
        return Err(Error::NotLoopback(listen));
    }
    let simulator = SonarQubeSimulator::new(seed)
        .map_err(|source| Error::SonarSeed { origin: "the SonarQube seed".to_owned(), source })?;
    simulator.serve(listen).await.map_err(|source| Error::Listen { address: listen, source })
}

/// Starts a simulator on `listen`; refuses a non-loopback address unless `allow_remote`.
pub async fn start(seed: Seed, listen: SocketAddr, allow_remote: bool) -> Result<RunningSimulator, Error> {
    if !listen.ip().is_loopback() && !allow_remote {
        return Err(Error::NotLoopback(listen));
    }
    let simulator = Simulator::new(seed).map_err(Error::InconsistentSeed)?;
    simulator.serve(listen).await.map_err(|source| Error::Listen { address: listen, source })
}

/// What a person needs to use the simulator: its URL, its users with their passwords and tokens
/// (the simulator's own, fake by design), its projects, and commands to try.
pub fn banner(running: &RunningSimulator, seed: &Seed) -> String {
    let url = running.base_url();
    let mut out = format!("Bitbucket simulator {} listening on {url}\n", seed.server.version);
    out.push_str("Users (the simulator's own credentials, fake by design; never put real ones in a seed):\n");
    for user in &seed.users {
        let mut line = format!("  {:<14}", user.name);
        if let Some(permission) = user.global_permission {
            let _ = write!(line, " {}", permission.as_str());
        }
        match &user.password {
            Some(password) => {
                let _ = write!(line, " password: {password}");
            }
            None => line.push_str(" (no password)"),
        }
        let tokens: Vec<&str> = user.tokens.iter().map(|t| t.token.as_str()).collect();
        if !tokens.is_empty() {
            let _ = write!(line, " token: {}", tokens.join(", "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let projects: Vec<String> = seed
        .projects
        .iter()
        .map(|p| {
            let count = p.repositories.len();
            format!("{} ({count} {})", p.key, if count == 1 { "repository" } else { "repositories" })
        })
        .collect();
    if !projects.is_empty() {
        let _ = writeln!(out, "Projects: {}", projects.join(", "));
    }
    if let Some(token) = seed.users.iter().flat_map(|u| &u.tokens).map(|t| t.token.as_str()).next() {
        let _ =
            writeln!(out, "Try:\n  echo {token} > token && bitbucket-operator check --url {url} --token-file token");
        let _ = writeln!(out, "  bitbucket-operator plan -f examples/ --url {url}");
    }
    out
}

/// The SonarQube part of the banner: its URL, edition, users and tokens, and how to point a
/// DevOps Platform setting at the Bitbucket simulator (`bitbucket`: its URL and a token there).
pub fn sonarqube_banner(running: &RunningSonarQube, seed: &SonarSeed, bitbucket: Option<(&str, &str)>) -> String {
    let url = running.base_url();
    let mut out = format!("SonarQube simulator {} ({}) listening on {url}\n", seed.version, seed.edition.as_str());
    out.push_str("SonarQube users (fake tokens, by design):\n");
    for user in &seed.users {
        let mut line = format!("  {:<14}", user.login);
        if user.admin {
            line.push_str(" Administer System");
        } else if user.create_projects {
            line.push_str(" Create Projects");
        }
        let tokens: Vec<&str> = user.tokens.iter().map(|t| t.token.as_str()).collect();
        if !tokens.is_empty() {
            let _ = write!(line, " token: {}", tokens.join(", "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let admin_token = seed.users.iter().filter(|u| u.admin).flat_map(|u| &u.tokens).map(|t| t.token.as_str()).next();
    if let (Some(token), Some((bitbucket_url, pat))) = (admin_token, bitbucket) {
        let _ = writeln!(
            out,
            "Try:\n  curl -u {token}: -d key=bitbucket -d url={bitbucket_url} -d personalAccessToken={pat} \
             {url}/api/alm_settings/create_bitbucket\n  curl -u {token}: '{url}/api/alm_settings/validate?key=bitbucket'"
        );
    }
    out
}

/// Runs both simulators until Ctrl-C (or SIGTERM), printing the banner when they are ready.
pub async fn run(args: &SimulatorArgs) -> Result<(), Error> {
    let seed = seed(args.seed.as_deref())?;
    let sonar_seed = sonarqube_seed(args.sonarqube_seed.as_deref())?;
    let running = start(seed.clone(), args.listen, args.allow_remote).await?;
    let sonarqube = match start_sonarqube(sonar_seed.clone(), args.sonarqube_listen, args.allow_remote).await {
        Ok(sonarqube) => sonarqube,
        Err(error) => {
            running.shutdown().await;
            return Err(error);
        }
    };
    let bitbucket_url = running.base_url();
    let pat = seed.users.iter().flat_map(|u| &u.tokens).map(|t| t.token.as_str()).next();
    let mut text = banner(&running, &seed);
    text.push_str(&sonarqube_banner(&sonarqube, &sonar_seed, pat.map(|pat| (bitbucket_url.as_str(), pat))));
    text.push_str("Stop it with Ctrl-C.\n");
    print!("{text}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    super::run::termination().await;
    sonarqube.shutdown().await;
    running.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_banner_shows_the_url_users_tokens_and_projects() {
        let seed = seed(None).expect("the built-in seed");
        let running = start(seed.clone(), "127.0.0.1:0".parse().expect("address"), false).await.expect("start");
        let banner = banner(&running, &seed);
        running.shutdown().await;
        assert!(banner.contains("listening on http://127.0.0.1:"), "{banner}");
        assert!(
            banner.contains("svc-operator") && banner.contains("BBDC-replace-with-your-http-access-token"),
            "{banner}"
        );
        assert!(banner.contains("fake by design"), "{banner}");
        assert!(banner.contains("PLAT (") && banner.contains("SEC (1 repository)"), "{banner}");
    }

    #[tokio::test]
    async fn the_sonarqube_banner_shows_its_url_token_and_how_to_point_it_at_bitbucket() {
        let seed = sonarqube_seed(None).expect("the built-in SonarQube seed");
        let running =
            start_sonarqube(seed.clone(), "127.0.0.1:0".parse().expect("address"), false).await.expect("start");
        let banner = sonarqube_banner(&running, &seed, Some(("http://127.0.0.1:7990", "BBDC-x")));
        let url = running.base_url();
        running.shutdown().await;
        assert!(banner.contains(&format!("(enterprise) listening on {url}")), "{banner}");
        assert!(
            banner.contains("svc-operator") && banner.contains("squ_replace-with-your-sonarqube-user-token"),
            "{banner}"
        );
        assert!(banner.contains("url=http://127.0.0.1:7990 -d personalAccessToken=BBDC-x"), "{banner}");
        let refused = start_sonarqube(seed, "0.0.0.0:0".parse().expect("address"), false).await;
        assert!(refused.is_err_and(|e| e.to_string().contains("--allow-remote")));
        let file = std::env::temp_dir().join(format!("bbo-sonar-seed-{}.yaml", std::process::id()));
        std::fs::write(&file, "edition: free\n").expect("write");
        let error = sonarqube_seed(Some(&file)).expect_err("an unknown edition").to_string();
        let _ = std::fs::remove_file(&file);
        assert!(error.starts_with(&file.display().to_string()) && error.contains("edition"), "{error}");
    }

    #[tokio::test]
    async fn remote_addresses_need_consent_and_bad_seeds_name_the_file() {
        let refused = start(Seed::default(), "0.0.0.0:0".parse().expect("address"), false).await;
        assert!(refused.is_err_and(|e| e.to_string().contains("--allow-remote")));
        let file = std::env::temp_dir().join(format!("bbo-seed-{}.yaml", std::process::id()));
        std::fs::write(&file, "users: [{name: a, tokens: [{name: t}]}]\n").expect("write");
        let error = seed(Some(&file)).expect_err("a token without a value").to_string();
        let _ = std::fs::remove_file(&file);
        assert!(error.starts_with(&file.display().to_string()), "{error}");
    }
}
