//! What a platform team relies on in production: leader election between replicas (a leader
//! frozen past its Lease sends nothing once it resumes), metrics and health endpoints, the
//! Bitbucket host allow-list and the watch scope.

use std::{sync::Arc, time::Duration};

use bitbucket_operator::{
    controller::{self, Options, leader::Election},
    telemetry::{self, Telemetry},
};
use tokio::sync::oneshot;

use crate::{
    harness::{self, Env},
    support::fixtures::{BARE_BINDING, CONFIGURATION, SEED, insert_after},
};

struct Replica {
    telemetry: Arc<Telemetry>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// A replica's election: a Lease of 2 s, renewed every 200 ms.
fn election(identity: &str) -> Election {
    Election {
        lease: "bitbucket-operator".into(),
        namespace: "bitbucket-operator".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
    }
}

/// A replica's options: `operator_namespace` is where it reads the Secrets of cluster
/// configurations.
fn options(env: &Env, identity: &str, operator_namespace: &str, telemetry: &Arc<Telemetry>) -> Options {
    Options {
        telemetry: telemetry.clone(),
        instance: Some(identity.into()),
        operator_namespace: operator_namespace.into(),
        ..env.options.clone()
    }
}

fn replica(env: &Env, identity: &str) -> Replica {
    replica_in(env, identity, &env.options.operator_namespace)
}

fn replica_in(env: &Env, identity: &str, operator_namespace: &str) -> Replica {
    let telemetry = Arc::new(Telemetry::new());
    let options = options(env, identity, operator_namespace, &telemetry);
    let (stop, stopped) = oneshot::channel::<()>();
    let task =
        tokio::spawn(controller::run_replica(env.fake.client(), options, Some(election(identity)), async move {
            let _ = stopped.await;
        }));
    Replica { telemetry, stop: Some(stop), task }
}

/// What freezes a replica: told when it is frozen, waiting to be told to resume.
type Freeze = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);

/// A replica on a runtime and a thread of its own, which the test freezes as SIGSTOP freezes a
/// process (none of its tasks runs, its timers included) and resumes as SIGCONT does (every
/// timer that came due fires at once).
struct FreezableReplica {
    telemetry: Arc<Telemetry>,
    stop: oneshot::Sender<()>,
    freezes: tokio::sync::mpsc::UnboundedSender<Freeze>,
    thread: std::thread::JoinHandle<()>,
}

fn freezable_replica(env: &Env, identity: &str, operator_namespace: &str) -> FreezableReplica {
    let telemetry = Arc::new(Telemetry::new());
    let options = options(env, identity, operator_namespace, &telemetry);
    let election = election(identity);
    let fake = env.fake.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let (freezes, mut frozen) = tokio::sync::mpsc::unbounded_channel::<Freeze>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            tokio::spawn(async move {
                while let Some((frozen, resume)) = frozen.recv().await {
                    let _ = frozen.send(());
                    // Blocks the runtime's only thread: nothing of the replica runs meanwhile.
                    let _ = resume.recv();
                }
            });
            controller::run_replica(fake.client(), options, Some(election), async move {
                let _ = stopped.await;
            })
            .await;
        });
    });
    FreezableReplica { telemetry, stop, freezes, thread }
}

impl FreezableReplica {
    /// Freezes the replica; sending on what it returns resumes it.
    async fn freeze(&self) -> std::sync::mpsc::Sender<()> {
        let (frozen, is_frozen) = std::sync::mpsc::channel();
        let (resume, resumed) = std::sync::mpsc::channel();
        self.freezes.send((frozen, resumed)).expect("the replica runs");
        tokio::task::spawn_blocking(move || is_frozen.recv()).await.expect("join").expect("frozen");
        resume
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::task::spawn_blocking(move || self.thread.join()).await.expect("join").expect("the replica stopped");
    }
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

/// The BIG seed (see `harness::many`) with a second admin of BIG, `svc-standby`.
fn two_admins(n: usize) -> String {
    insert_after(
        &harness::many(n),
        "users:\n",
        "  - name: svc-standby\n    password: \"standby pass\"\n    tokens: [{name: standby, token: BBDC-standby-token}]\n",
    )
    .replace("permissions: {svc-operator: PROJECT_ADMIN}\n", "permissions: {svc-operator: PROJECT_ADMIN, svc-standby: PROJECT_ADMIN}\n")
}

/// A cluster configuration `shared` whose Secret each replica reads in its own namespace: in
/// ops-a it holds svc-operator's token, in ops-b svc-standby's; so the simulator's log tells
/// which replica sent a request. The binding `big` of every repository of BIG uses it.
const SHARED: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: bitbucket-token, namespace: ops-a, labels: {bitbucket.integrations.dev/credential: "true"}}
stringData: {token: BBDC-operator-token}
---
apiVersion: v1
kind: Secret
metadata: {name: bitbucket-token, namespace: ops-b, labels: {bitbucket.integrations.dev/credential: "true"}}
stringData: {token: BBDC-standby-token}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ClusterBitbucketConfiguration
metadata: {name: shared}
spec:
  url: {URL}
  allowInsecureHttp: true
  # Paced, so that a frozen replica is caught waiting for its next request, not handing one to
  # its connection (what a process had handed over when it was stopped goes out when it resumes:
  # no check in the client can take that back).
  rateLimit: {requestsPerSecond: 10, burst: 1}
  auth: {token: {secretRef: {name: bitbucket-token}}}
  allowedNamespaces: {names: [team-a]}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {name: big}
spec:
  configurationRef: {kind: ClusterBitbucketConfiguration, name: shared}
  projectKey: BIG
  repositories: {}
  webhooks:
    - name: ci
      url: https://ci.example.com/hook
      events: ["repo:refs_changed"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_that_lost_its_lease_sends_nothing_when_it_resumes_and_steps_down() {
    const N: usize = 12;
    let env = Env::new(&two_admins(N)).await;
    let first = freezable_replica(&env, "replica-a", "ops-a");
    env.eventually("replica-a leads", || first.telemetry.is_leader()).await;
    let second = replica_in(&env, "replica-b", "ops-b");
    env.apply(SHARED);
    env.eventually("replica-a creating webhooks", || harness::webhooks_created(&env) >= 3).await;

    let resume = first.freeze().await;
    assert!(harness::webhooks_created(&env) < N as u64, "the round was over before the freeze");
    env.eventually("replica-b takes the Lease over", || second.telemetry.is_leader()).await;
    // Everything replica-a sent before the freeze has been answered by now.
    let taken_over = env.log().len();
    resume.send(()).expect("resumed");
    env.eventually("replica-a steps down", || !first.telemetry.is_leader()).await;
    env.wait_ready("projectbindings", "big", "True", "Bound").await;
    // Anything replica-a was going to send after it resumed, it has sent by now.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let log = env.log();
    let after: Vec<_> = log[taken_over..].iter().filter(|r| r.user.as_deref() == Some("svc-operator")).collect();
    assert!(after.is_empty(), "replica-a sent {} requests after another replica took over: {after:#?}", after.len());
    assert!(log[taken_over..].iter().any(|r| r.user.as_deref() == Some("svc-standby")), "replica-b did the work");
    for i in 0..N {
        let slug = harness::big_slug(i);
        assert_eq!(env.bitbucket().webhooks("BIG", &slug).expect("the repository").len(), 1, "{slug}");
    }
    assert_eq!(harness::webhooks_created(&env), N as u64, "a webhook was created twice");
    let lease = env.fake.object("leases", "bitbucket-operator", "bitbucket-operator").expect("the Lease");
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    assert!(first.telemetry.is_ready(), "replica-a waits as a follower");
    first.stop().await;
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
