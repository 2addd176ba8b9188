//! Operations: logging, Prometheus metrics and health endpoints.
//!
//! Metrics (all prefixed `bitbucket_operator_`): `reconciles_total{kind,result}`,
//! `reconcile_errors_total{kind,class}`, `reconcile_duration_seconds{kind}`,
//! `stalled_total{kind,reason}`, `bitbucket_requests_total{endpoint,status}`,
//! `bitbucket_request_duration_seconds{endpoint}`, `rate_limit_wait_seconds_total`,
//! `drift_corrections_total{kind}`, `objects{kind,ready}`, `leader` (1 while this replica leads).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::bitbucket::Observer;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindResult {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindClass {
    kind: &'static str,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindReason {
    kind: &'static str,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindReady {
    kind: &'static str,
    ready: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointStatus {
    endpoint: &'static str,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Endpoint {
    endpoint: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The operator's metrics and health, shared by the controllers, the Bitbucket clients and the
/// HTTP server.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    reconciles: Family<KindResult, Counter>,
    errors: Family<KindClass, Counter>,
    durations: Family<Kind, Histogram, fn() -> Histogram>,
    stalled: Family<KindReason, Counter>,
    requests: Family<EndpointStatus, Counter>,
    request_durations: Family<Endpoint, Histogram, fn() -> Histogram>,
    rate_limit_wait: Counter<f64, AtomicU64>,
    drift: Family<Kind, Counter>,
    objects: Family<KindReady, Gauge>,
    leader_gauge: Gauge,
    ready: AtomicBool,
    leader: AtomicBool,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bitbucket_operator");
        let telemetry = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            stalled: Family::default(),
            requests: Family::default(),
            request_durations: Family::new_with_constructor(duration_histogram),
            rate_limit_wait: Counter::default(),
            drift: Family::default(),
            objects: Family::default(),
            leader_gauge: Gauge::default(),
            ready: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            registry: Registry::default(),
        };
        registry.register("reconciles", "Reconciles by kind and result", telemetry.reconciles.clone());
        registry.register("reconcile_errors", "Failed reconciles by kind and error class", telemetry.errors.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration by kind", telemetry.durations.clone());
        registry.register("stalled", "Rounds that ended Stalled, by kind and reason", telemetry.stalled.clone());
        registry.register(
            "bitbucket_requests",
            "Bitbucket requests by endpoint and status",
            telemetry.requests.clone(),
        );
        registry.register(
            "bitbucket_request_duration_seconds",
            "Bitbucket request duration by endpoint",
            telemetry.request_durations.clone(),
        );
        registry.register(
            "rate_limit_wait_seconds",
            "Time requests waited for the operator's own rate limit",
            telemetry.rate_limit_wait.clone(),
        );
        registry.register("drift_corrections", "Changes made to undo drift, by kind", telemetry.drift.clone());
        registry.register("objects", "Objects by kind and Ready status", telemetry.objects.clone());
        registry.register("leader", "1 while this replica holds the leader Lease", telemetry.leader_gauge.clone());
        Self { registry, ..telemetry }
    }

    /// Records a reconcile.
    pub fn reconciled(&self, kind: &'static str, error_class: Option<&'static str>, elapsed: Duration) {
        let result = if error_class.is_some() { "error" } else { "success" };
        self.reconciles.get_or_create(&KindResult { kind, result }).inc();
        if let Some(class) = error_class {
            self.errors.get_or_create(&KindClass { kind, class }).inc();
        }
        self.durations.get_or_create(&Kind { kind }).observe(elapsed.as_secs_f64());
    }

    /// Records a round that ended Stalled.
    pub fn stalled(&self, kind: &'static str, reason: &str) {
        self.stalled.get_or_create(&KindReason { kind, reason: reason.to_owned() }).inc();
    }

    /// Records changes made to undo drift.
    pub fn drift_corrected(&self, kind: &'static str, count: usize) {
        if count > 0 {
            self.drift.get_or_create(&Kind { kind }).inc_by(count as u64);
        }
    }

    /// Sets how many objects of a kind are Ready, not Ready, and not yet reported.
    pub fn objects(&self, kind: &'static str, ready: i64, not_ready: i64, unknown: i64) {
        self.objects.get_or_create(&KindReady { kind, ready: "True" }).set(ready);
        self.objects.get_or_create(&KindReady { kind, ready: "False" }).set(not_ready);
        self.objects.get_or_create(&KindReady { kind, ready: "Unknown" }).set(unknown);
    }

    /// Marks the caches as synced (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether the caches are synced.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Marks this replica as leader (or not).
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
        self.leader_gauge.set(i64::from(leader));
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

impl Observer for Telemetry {
    fn request(&self, endpoint: &'static str, status: u16, elapsed: Duration) {
        let status = if status == 0 { "none".to_owned() } else { status.to_string() };
        self.requests.get_or_create(&EndpointStatus { endpoint, status }).inc();
        self.request_durations.get_or_create(&Endpoint { endpoint }).observe(elapsed.as_secs_f64());
    }

    fn rate_limited(&self, waited: Duration) {
        self.rate_limit_wait.inc_by(waited.as_secs_f64());
    }
}

/// Logging for long-running commands: `RUST_LOG` filters (default `info`), text or JSON lines on
/// standard error.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_runtime=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    if let Err(error) = result {
        eprintln!("logging is already set up: {error}");
    }
}

/// `/metrics`, `/healthz` (the process runs) and `/readyz` (the caches are synced; with
/// several replicas a follower is ready too, so that it can take over).
pub fn router(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(telemetry)
}

async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> impl IntoResponse {
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], telemetry.render())
}

async fn readyz(State(telemetry): State<Arc<Telemetry>>) -> impl IntoResponse {
    if telemetry.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet\n")
    }
}

/// Serves the router on `addr` until `shutdown` resolves.
pub async fn serve(
    telemetry: Arc<Telemetry>,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
    axum::serve(listener, router(telemetry))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("the metrics server failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_prometheus_format() {
        let telemetry = Telemetry::new();
        telemetry.reconciled("ProjectBinding", None, Duration::from_millis(20));
        telemetry.reconciled("ProjectBinding", Some("transient"), Duration::from_millis(5));
        telemetry.request("GET /status", 200, Duration::from_millis(3));
        telemetry.rate_limited(Duration::from_millis(250));
        telemetry.drift_corrected("RequiredReport", 2);
        telemetry.objects("RequiredReport", 3, 1, 0);
        telemetry.set_leader(true);
        let text = telemetry.render();
        for expected in [
            r#"bitbucket_operator_reconciles_total{kind="ProjectBinding",result="success"} 1"#,
            r#"bitbucket_operator_reconcile_errors_total{kind="ProjectBinding",class="transient"} 1"#,
            r#"bitbucket_operator_bitbucket_requests_total{endpoint="GET /status",status="200"} 1"#,
            r#"bitbucket_operator_drift_corrections_total{kind="RequiredReport"} 2"#,
            r#"bitbucket_operator_objects{kind="RequiredReport",ready="True"} 3"#,
            "bitbucket_operator_rate_limit_wait_seconds_total 0.25",
            "bitbucket_operator_leader 1",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
    }
}
