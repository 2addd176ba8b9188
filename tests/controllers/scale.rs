//! Ten thousand repositories in one binding: every object the operator writes stays far below
//! what the API server stores (1.5 MiB) and grows by a few bytes per repository, and the cold
//! round reads each repository's webhooks and check once (the report does not wait for, nor
//! repeat, the binding's round).

use std::time::Duration;

use serde_json::Value;

use crate::harness::{BIG, Env, MERGE_CHECK, WEBHOOKS, configuration_with_rate, many, ready, recorded_ids};

/// The limit the issue sets for any object at 10,000 repositories.
const MAX_OBJECT: usize = 256 * 1024;

/// An object's stored JSON plus its field owners (a real server stores `managedFields` too).
fn stored_size(env: &Env, resource: &str, name: &str) -> usize {
    let object = env.fake.object(resource, "team-a", name).unwrap_or_else(|| panic!("{resource} {name}"));
    let owners = env.fake.managed_fields(resource, "team-a", name);
    serde_json::to_vec(&object).map(|b| b.len()).unwrap_or_default()
        + serde_json::to_vec(&owners).map(|b| b.len()).unwrap_or_default()
}

/// Converges BIG with `n` repositories at 1000 requests a second; returns the binding's and the
/// report's stored sizes.
async fn converge(n: usize) -> (Env, usize, usize) {
    let mut env = Env::new(&many(n)).await;
    env.start_operator();
    env.apply(&configuration_with_rate(1000, 10_000));
    env.apply(BIG);
    let limit = Duration::from_secs(300);
    let done = |o: &Value| {
        ready(o).is_some_and(|c| c["status"] == "True")
            && o["status"]["observedGeneration"] == o["metadata"]["generation"]
    };
    let binding = env.wait_within(limit, "projectbindings", "team-a", "big", "Ready", done).await;
    let report = env.wait_within(limit, "requiredreports", "team-a", "big-sonarqube", "Ready", done).await;
    assert_eq!(binding["status"]["repositoryCount"], n, "{binding:#}");
    assert_eq!(binding["status"]["inSyncCount"], n);
    assert_eq!(report["status"]["inSyncCount"], n, "{report:#}");
    assert_eq!(recorded_ids(&binding, "repositoryIds").len(), n);
    assert_eq!(recorded_ids(&report, "repositoryIds").len(), n);
    let sizes = (stored_size(&env, "projectbindings", "big"), stored_size(&env, "requiredreports", "big-sonarqube"));
    (env, sizes.0, sizes.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_stays_small_at_ten_thousand_repositories() {
    const FEW: usize = 10;
    const MANY: usize = 10_000;
    let (small, small_binding, small_report) = converge(FEW).await;
    small.shutdown().await;
    let (env, binding, report) = converge(MANY).await;
    println!("stored sizes: binding {small_binding} → {binding} bytes, report {small_report} → {report} bytes");
    for (what, size, before) in [("binding", binding, small_binding), ("report", report, small_report)] {
        assert!(size < MAX_OBJECT, "the {what} takes {size} bytes at {MANY} repositories");
        let per_repository = (size - before) as f64 / (MANY - FEW) as f64;
        assert!(per_repository <= 8.0, "the {what} grows by {per_repository:.1} bytes per repository");
    }

    // One cold round: each repository's webhooks listed and one created, its check read and
    // written, once.
    for endpoint in [
        format!("GET {WEBHOOKS}"),
        format!("POST {WEBHOOKS}"),
        format!("GET {MERGE_CHECK}"),
        format!("PUT {MERGE_CHECK}"),
    ] {
        assert_eq!(env.requests_to(&endpoint), MANY as u64, "{endpoint}");
    }
    env.shutdown().await;
}
