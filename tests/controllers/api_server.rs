//! The Kubernetes API server misbehaving: an outage (connections refused, every open connection
//! cut, the watch history gone when it returns), and another writer winning a race against the
//! operator's finalizer writes. The operator recovers on its own, quickly and quietly, and misses
//! nothing that happened meanwhile.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bitbucket_operator::api::ProjectBinding;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::harness::{BINDING, CONFIGURATION, Env, SEED, is_true, ready};

/// How long the API server is away.
const OUTAGE: Duration = Duration::from_secs(30);
/// How soon after its return a spec change must be applied (watches must be back within 10 s).
const RECOVERY: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_after_an_api_server_outage_is_applied_within_15_s() {
    let mut env = Env::new(SEED).await;
    env.serve_api().await;
    env.apply(CONFIGURATION);
    env.apply(BINDING);
    // A second configuration, whose Secret goes while the server is away.
    env.apply(&CONFIGURATION.replace("bitbucket-token", "spare-token").replace("{name: bitbucket}", "{name: spare}"));
    env.start_operator();
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    env.wait_ready("bitbucketconfigurations", "spare", "True", "Connected").await;

    env.api_server().go_away();
    env.delete::<Secret>("spare-token").await;
    // A restarted API server's watch cache starts afresh: the watches cannot resume, they list.
    env.fake.compact();
    tokio::time::sleep(OUTAGE).await;
    env.api_server().come_back().await.expect("listening again");
    let back = Instant::now();
    env.patch::<ProjectBinding>(
        "payments",
        json!({"spec": {"webhooks": [
            {"name": "ci", "url": "https://ci.example.com/hook", "events": ["repo:refs_changed"]},
            {"name": "deploy", "url": "https://deploy.example.com/hook", "events": ["repo:refs_changed"]},
        ]}}),
    )
    .await;
    let applied = || {
        let binding = env.fake.object("projectbindings", "team-a", "payments").expect("the binding");
        let bound = binding["status"]["observedGeneration"] == binding["metadata"]["generation"]
            && ready(&binding).is_some_and(|c| c["status"] == "True" && c["reason"] == "Bound");
        bound && env.bitbucket().webhooks("PAY", "payments-api").expect("the repository").len() == 2
    };
    // Waits past the bound, so that a failure says how late the change was.
    let deadline = back + RECOVERY * 4;
    while !applied() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovery = back.elapsed();
    eprintln!("after an API server outage of {OUTAGE:?}, a spec change was applied {recovery:.1?} after its return");
    assert!(applied(), "the spec change was not applied within {:?} of the API server's return", RECOVERY * 4);
    assert!(recovery <= RECOVERY, "the spec change was applied {recovery:.1?} after the API server's return");
    // The deletion the lost watch never reported was noticed in the new list.
    let spare = env.fake.object("bitbucketconfigurations", "team-a", "spare").expect("spare");
    let missing = |o: &serde_json::Value| ready(o).is_some_and(|c| c["reason"] == "SecretNotFound");
    if !missing(&spare) {
        env.wait("bitbucketconfigurations", "team-a", "spare", "SecretNotFound", missing).await;
    }
    assert!(back.elapsed() <= RECOVERY, "the Secret's deletion was noticed {:.1?} after the return", back.elapsed());
    env.shutdown().await;
}

/// Log lines, as the operator's log would show them.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The finalizer patches (not status writes) of the binding `payments` the fake refused with 422.
fn refused_finalizer_patches(env: &Env) -> usize {
    let (requests, _) = env.fake.requests();
    requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/projectbindings/payments") && r.status == 422)
        .count()
}

// One thread: the operator's tasks run on it, so the log subscriber set here sees all they log.
#[tokio::test(flavor = "current_thread")]
async fn a_finalizer_write_that_loses_a_race_with_another_writer_is_retried_quietly() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let mut env = Env::new(SEED).await;
    env.apply(CONFIGURATION);
    env.start_operator();
    env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;

    // Another controller adds its finalizer just before the operator adds its own: the
    // operator's patch tests a list that is no longer there.
    env.fake.race_next("PATCH", "projectbindings", json!({"metadata": {"finalizers": ["example.com/audit"]}}));
    env.apply(BINDING);
    let bound = env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    assert_eq!(refused_finalizer_patches(&env), 1, "the race did not happen");
    assert_eq!(bound["metadata"]["finalizers"], json!(["example.com/audit", "bitbucket.integrations.dev/cleanup"]));
    assert!(!is_true(&bound, "Stalled"), "{bound:#?}");

    // On deletion, the other controller removes its finalizer just before the operator removes
    // its own: the operator's patch tests an index that moved.
    env.fake.clear_requests();
    env.fake.race_next(
        "PATCH",
        "projectbindings",
        json!({"metadata": {"finalizers": ["bitbucket.integrations.dev/cleanup"]}}),
    );
    env.delete::<ProjectBinding>("payments").await;
    env.wait_gone("projectbindings", "payments").await;
    assert_eq!(refused_finalizer_patches(&env), 1, "the race did not happen");
    assert!(env.bitbucket().webhooks("PAY", "payments-api").expect("the repository").is_empty(), "cleaned up");

    let warnings: Vec<Value> =
        env.events("ProjectBinding", "payments").into_iter().filter(|e| e["type"] == "Warning").collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    let logged = logs.text();
    assert!(logged.is_empty(), "warnings or errors were logged:\n{logged}");
    env.shutdown().await;
}
