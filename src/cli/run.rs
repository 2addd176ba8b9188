//! `bitbucket-operator run`: the controllers against the cluster of the current kubeconfig or
//! in-cluster service account, until SIGTERM or Ctrl-C.

use std::time::Duration;

use super::Error;
use crate::{
    controller::{self, Options, leader::Election},
    telemetry,
};

/// The arguments of `run`.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// The operator's namespace, where the Secrets of ClusterBitbucketConfigurations live.
    #[arg(long, env = "POD_NAMESPACE", default_value = "bitbucket-operator")]
    pub namespace: String,
    /// The instance name reported on Events.
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// Resync every configuration's dependents at least this often (such as 2m), whatever
    /// their resyncInterval says.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_resync_interval: Option<Duration>,
    /// Log JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// Watch only these namespaces (repeat or separate with commas); all when absent.
    #[arg(long = "watch-namespace", value_name = "NS", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Watch only resources with these labels (such as shard=a), so that several operators
    /// can split a large cluster.
    #[arg(long, value_name = "SELECTOR")]
    pub label_selector: Option<String>,
    /// Bitbucket hosts the operator may send credentials to (`host` or `*.domain`; repeat or
    /// separate with commas); any host when absent.
    #[arg(long = "allowed-host", value_name = "HOST", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Take part in leader election on a Lease (needed with more than one replica).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
}

/// Runs `run` as the command line asks: logging first, then the controllers until a
/// termination signal.
pub fn execute(args: RunArgs) -> Result<u8, Error> {
    telemetry::init_logging(args.log_json);
    super::block_on(run(args))??;
    Ok(0)
}

/// Runs the controllers until a termination signal.
pub async fn run(args: RunArgs) -> Result<(), Error> {
    let config = kube::Config::infer().await.map_err(|e| Error::Kubernetes(kube::Error::InferConfig(e)))?;
    let kube = controller::api_server::client(config).map_err(Error::Kubernetes)?;
    let identity = args.instance.clone().unwrap_or_else(|| format!("bitbucket-operator-{:016x}", fastrand::u64(..)));
    let options = Options {
        operator_namespace: args.namespace,
        instance: Some(identity.clone()),
        max_resync: args.max_resync_interval,
        namespaces: args.watch_namespaces,
        label_selector: args.label_selector,
        allowed_hosts: args.allowed_hosts,
        ..Options::default()
    };
    let election = args.leader_elect.then(|| Election::new(&options.operator_namespace, &identity));
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        namespace = %options.operator_namespace,
        identity = %identity,
        leader_election = args.leader_elect,
        "starting"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(telemetry::serve(
        options.telemetry.clone(),
        args.metrics_addr,
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
        Ok(Err(error)) => return Err(Error::Telemetry(error)),
        Err(error) => return Err(Error::TelemetryTask(error)),
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
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let parsed: kube::core::Duration = text.parse().map_err(|_| Error::NotADuration(text.to_owned()))?;
    let duration = Duration::from(parsed);
    if duration < Duration::from_secs(1) {
        return Err(Error::DurationTooShort(text.to_owned()));
    }
    Ok(duration)
}
