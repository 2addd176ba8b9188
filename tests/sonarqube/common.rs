//! What the SonarQube tests share: a seeded SonarQube simulator, a client for it, a Bitbucket
//! simulator for SonarQube to call, and a server that only redirects.

use std::time::Duration;

use bitbucket_operator::{
    bitbucket::{RateLimit, RetryPolicy, Secret},
    simulator::{
        RunningSimulator, Seed, Simulator,
        sonarqube::{Edition, RunningSonarQube, SonarQubeSimulator, SonarSeed},
    },
    sonarqube::{Client, ClientConfig},
};

use crate::support::fixtures;

/// The operator's SonarQube user token: Administer System and Create Projects.
pub const ADMIN: &str = "squ_0perator0admin0token0001";
/// A user without Administer System.
pub const VIEWER: &str = "squ_0viewer0token0002";
/// A global analysis token of the admin user.
pub const ANALYSIS: &str = "sqa_0analysis0token0003";
/// An expired user token of the admin user.
pub const EXPIRED: &str = "squ_0expired0token0004";
/// The Bitbucket PAT SonarQube holds: the Bitbucket simulator's svc-operator token.
pub const PAT: &str = fixtures::OPERATOR_TOKEN;
/// Another PAT, as a rotated Secret would hold it.
pub const NEW_PAT: &str = "BBDC-r0tated0pat0value0005";

/// Versions of the three numbering schemes.
pub const CLASSIC_99: &str = "9.9.8.100196";
pub const COMMUNITY_BUILD: &str = "26.7.0.124771";
pub const SERVER: &str = "2026.3.1.123439";

/// The Bitbucket project and repositories of [`fixtures::SEED`] that bindings point at.
pub const BB_PROJECT: &str = "PAY";
pub const BB_SLUG: &str = "payments-api";

/// Users with their tokens and the projects `app` and `lib`, on `edition` at `version`, plus
/// `extra` top-level YAML (settings, bindings).
pub fn seed_yaml(edition: Edition, version: &str, extra: &str) -> String {
    format!(
        r#"
edition: {edition}
version: "{version}"
users:
  - login: operator
    name: Operator
    admin: true
    createProjects: true
    tokens:
      - {{token: {ADMIN}}}
      - {{token: {ANALYSIS}, kind: globalAnalysis}}
      - {{token: {EXPIRED}, expired: true}}
  - login: viewer
    tokens: [{{token: {VIEWER}}}]
projects:
  - {{key: app, name: App}}
  - {{key: lib, name: Library}}
{extra}
"#,
        edition = edition.as_str()
    )
}

pub async fn serve(seed: SonarSeed) -> RunningSonarQube {
    SonarQubeSimulator::new(seed).expect("seed").serve("127.0.0.1:0".parse().expect("addr")).await.expect("serve")
}

pub async fn sonarqube(edition: Edition, version: &str, extra: &str) -> RunningSonarQube {
    serve(SonarSeed::from_yaml(&seed_yaml(edition, version, extra)).expect("the seed parses")).await
}

/// Enterprise at the default Server version: every endpoint, no cap.
pub async fn enterprise(extra: &str) -> RunningSonarQube {
    sonarqube(Edition::Enterprise, SERVER, extra).await
}

/// A client with a fast rate limit and short retry delays (three attempts).
pub fn client(sq: &RunningSonarQube, token: &str) -> Client {
    let config = ClientConfig::new(sq.base_url(), Secret::new(token))
        .with_rate_limit(RateLimit { requests_per_second: 1000, burst: 1000 })
        .with_retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        });
    Client::new(config).expect("client")
}

pub fn admin(sq: &RunningSonarQube) -> Client {
    client(sq, ADMIN)
}

pub fn secret(text: &str) -> Secret {
    Secret::new(text)
}

/// The shared Bitbucket seed, where [`PAT`] may read PAY.
pub async fn bitbucket() -> RunningSimulator {
    Simulator::new(Seed::from_yaml(fixtures::SEED).expect("the Bitbucket seed parses"))
        .expect("seed")
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve")
}

/// A server that answers every request with a temporary redirect to `target`, as an http→https
/// front or a missing context path does.
pub async fn redirector(target: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move { axum::response::Redirect::temporary(&target) }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

/// An address nothing listens on.
pub fn closed_port() -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    format!("http://{addr}")
}

/// How often the simulator saw `METHOD /path`.
pub fn count(sq: &RunningSonarQube, endpoint: &str) -> u64 {
    sq.simulator().request_counts().get(endpoint).copied().unwrap_or(0)
}
