//! `bitbucket-operator run`: the controllers against the cluster of the current kubeconfig or
//! in-cluster service account, until SIGTERM or Ctrl-C.

use std::time::Duration;

use crate::{
    controller::{self, Options, leader::Election},
    telemetry,
};

/// Settings of `run`.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// The operator's namespace (where ClusterBitbucketConfiguration Secrets live).
    pub operator_namespace: String,
    /// The instance name on Events (the pod name).
    pub instance: Option<String>,
    /// A cap on every configuration's resync interval.
    pub max_resync: Option<Duration>,
    /// Namespaces to watch (empty: all).
    pub namespaces: Vec<String>,
    /// Only objects with these labels.
    pub label_selector: Option<String>,
    /// Hosts credentials may be sent to (empty: any).
    pub allowed_hosts: Vec<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: std::net::SocketAddr,
    /// Take part in leader election (needed with more than one replica).
    pub leader_election: bool,
}

/// Runs the controllers until a termination signal.
pub async fn run(settings: RunSettings) -> Result<(), String> {
    let kube = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API (in-cluster or kubeconfig): {e}"))?;
    let identity =
        settings.instance.clone().unwrap_or_else(|| format!("bitbucket-operator-{:016x}", fastrand::u64(..)));
    let options = Options {
        operator_namespace: settings.operator_namespace,
        instance: Some(identity.clone()),
        max_resync: settings.max_resync,
        namespaces: settings.namespaces,
        label_selector: settings.label_selector,
        allowed_hosts: settings.allowed_hosts,
        ..Options::default()
    };
    let election = settings.leader_election.then(|| Election::new(&options.operator_namespace, &identity));
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        namespace = %options.operator_namespace,
        identity = %identity,
        leader_election = settings.leader_election,
        "starting"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(telemetry::serve(
        options.telemetry.clone(),
        settings.metrics_addr,
        controller::stopped_by(stopped.clone()),
    ));
    let signal = async move {
        termination().await;
        let _ = stop.send(true);
    };
    controller::run_replica(kube, options, election, async move {
        signal.await;
        controller::stopped_by(stopped).await;
    })
    .await;
    match server.await {
        Ok(Err(error)) => return Err(error),
        Err(error) => return Err(format!("the metrics server failed: {error}")),
        Ok(Ok(())) => {}
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
pub async fn termination() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the operator");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
}

/// Parses a duration such as `30s`, `10m` or `1h30m` (the format of the CRDs' durations).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed: kube::core::Duration =
        text.parse().map_err(|_| format!("{text:?} is not a duration such as 30s, 10m or 1h30m"))?;
    let duration = Duration::from(parsed);
    if duration < Duration::from_secs(1) {
        return Err(format!("{text:?} is shorter than 1s"));
    }
    Ok(duration)
}
