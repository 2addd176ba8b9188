//! The Kubernetes API server misbehaving: an outage (connections refused, every open connection
//! cut, the watch history gone when it returns). The operator recovers on its own, quickly, and
//! misses nothing that happened meanwhile.

use std::time::Duration;

use bitbucket_operator::api::ProjectBinding;
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;
use tokio::time::Instant;

use crate::harness::{BINDING, CONFIGURATION, Env, SEED, ready};

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
