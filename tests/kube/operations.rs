//! What a platform team relies on in production: leader election between replicas, metrics and
//! health endpoints, the Bitbucket host allow-list and the watch scope.

use std::{sync::Arc, time::Duration};

use bitbucket_operator::{
    controller::{self, Options, leader::Election},
    telemetry::{self, Telemetry},
};
use tokio::sync::oneshot;

use crate::{
    harness::{self, Env},
    support::fixtures::{BARE_BINDING, CONFIGURATION, SEED},
};

struct Replica {
    telemetry: Arc<Telemetry>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn replica(env: &Env, identity: &str) -> Replica {
    let telemetry = Arc::new(Telemetry::new());
    let options = Options { telemetry: telemetry.clone(), instance: Some(identity.into()), ..env.options.clone() };
    let election = Election {
        lease: "bitbucket-operator".into(),
        namespace: "bitbucket-operator".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(controller::run_replica(env.fake.client(), options, Some(election), async move {
        let _ = stopped.await;
    }));
    Replica { telemetry, stop: Some(stop), task }
}

fn reconciles(telemetry: &Telemetry) -> u64 {
    telemetry
        .render()
        .lines()
        .filter(|l| l.starts_with("bitbucket_operator_reconciles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_waits_while_the_first_leads_and_takes_over_when_it_goes() {
    let env = Env::new(SEED).await;
    let mut first = replica(&env, "replica-a");
    env.eventually("replica-a leads", || first.telemetry.is_leader()).await;
    let second = replica(&env, "replica-b");
    env.apply(CONFIGURATION);
    env.apply(BARE_BINDING);
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!second.telemetry.is_leader());
    assert_eq!(reconciles(&second.telemetry), 0, "a follower reconciled");
    assert!(second.telemetry.is_ready(), "a follower is ready to take over");
    let lease = env.fake.object("leases", "bitbucket-operator", "bitbucket-operator").expect("the Lease");
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");

    // The leader stops: it releases the Lease and the follower takes over at once.
    let _ = first.stop.take().map(|s| s.send(()));
    tokio::time::timeout(Duration::from_secs(10), &mut first.task).await.expect("replica-a stops").expect("join");
    env.eventually("replica-b leads", || second.telemetry.is_leader()).await;
    env.patch::<bitbucket_operator::api::ProjectBinding>(
        "payments",
        serde_json::json!({"spec": {"webhooks": [{"name": "ci", "url": "https://ci.example.com/hook", "events": ["repo:refs_changed"]}]}}),
    )
    .await;
    env.wait("projectbindings", "team-a", "payments", "the change handled by replica-b", |o| {
        o["status"]["observedGeneration"] == 2 && harness::ready(o).is_some_and(|c| c["reason"] == "Bound")
    })
    .await;
    assert!(reconciles(&second.telemetry) > 0);
    assert_eq!(env.sim.simulator().webhooks("PAY", "payments-api").expect("repo").len(), 1);
    second.task.abort();
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_is_killed_is_replaced_when_its_lease_expires() {
    let env = Env::new(SEED).await;
    let first = replica(&env, "replica-a");
    env.eventually("replica-a leads", || first.telemetry.is_leader()).await;
    let second = replica(&env, "replica-b");
    first.task.abort();
    let started = tokio::time::Instant::now();
    env.eventually("replica-b leads", || second.telemetry.is_leader()).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "took over before the Lease expired");
    second.task.abort();
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_endpoints_report_the_operator() {
    let mut env = Env::new(SEED).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(telemetry::serve(env.options.telemetry.clone(), addr, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let request = http.get(format!("http://{addr}{path}"));
        async move {
            for _ in 0..50 {
                if let Ok(response) = request.try_clone().expect("clone").send().await {
                    return (response.status().as_u16(), response.text().await.unwrap_or_default());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the endpoint never answered");
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/readyz").await.0, 503, "not ready before the caches sync");
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BARE_BINDING);
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    let mut ready = 0;
    for _ in 0..100 {
        ready = get("/readyz").await.0;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 200, "ready once the caches are synced");
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        r#"bitbucket_operator_reconciles_total{kind="ProjectBinding",result="success"}"#,
        r#"bitbucket_operator_bitbucket_requests_total{endpoint="GET /rest/api/1.0/projects/{key}/repos/{slug}",status="200"}"#,
        "bitbucket_operator_reconcile_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(expected), "{expected} missing:\n{metrics}");
    }
    let _ = stop.send(());
    let _ = server.await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_only_to_allowed_hosts_and_only_watched_namespaces_are_served() {
    let mut env = Env::new(SEED).await;
    env.options.allowed_hosts = vec!["bitbucket.example.com".into()];
    env.options.namespaces = vec!["team-a".into(), "team-c".into()];
    env.start_operator();
    env.apply(CONFIGURATION);
    let refused = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "HostNotAllowed").await;
    let message = harness::ready(&refused).and_then(|c| c["message"].as_str()).unwrap_or_default().to_owned();
    assert!(message.contains("127.0.0.1") && message.contains("bitbucket.example.com"), "{message}");
    assert_eq!(env.sim.simulator().request_count(), 0, "a credential went to a host not allowed");
    // Deleted while a binding uses it, the configuration waits for the binding (and would prove a
    // client for it to clean up with): still not one request.
    env.apply(BARE_BINDING);
    env.delete::<bitbucket_operator::api::BitbucketConfiguration>("bitbucket").await;
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "InUse", |o| harness::reason(o) == "InUse").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.sim.simulator().request_count(), 0, "a deletion sent a request to a host not allowed");

    // A namespace outside the watched ones is left alone: no finalizer, no status.
    env.apply(
        &CONFIGURATION
            .replace("metadata: {name: bitbucket}", "metadata: {name: bitbucket, namespace: team-b}")
            .replace("metadata:\n  name: bitbucket-token", "metadata:\n  name: bitbucket-token\n  namespace: team-b"),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ignored = env.fake.object("bitbucketconfigurations", "team-b", "bitbucket").expect("created");
    assert!(ignored["status"].is_null(), "{ignored:#?}");
    assert!(ignored["metadata"]["finalizers"].is_null(), "{ignored:#?}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_selector_splits_the_work_between_installations() {
    let mut env = Env::new(SEED).await;
    env.options.label_selector = Some("shard=a".into());
    env.start_operator();
    env.apply(&CONFIGURATION.replace("metadata: {name: bitbucket}", "metadata: {name: bitbucket, labels: {shard: a}}"));
    env.apply(&BARE_BINDING.replace("metadata: {name: payments}", "metadata: {name: payments, labels: {shard: a}}"));
    env.apply(&BARE_BINDING.replace("metadata: {name: payments}", "metadata: {name: other-shard, labels: {shard: b}}"));
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = env.fake.object("projectbindings", "team-a", "other-shard").expect("created");
    assert!(other["status"].is_null() && other["metadata"]["finalizers"].is_null(), "{other:#?}");
    env.shutdown().await;
}
