//! A status the Kubernetes API server refuses to store (too large for etcd, or invalid): the
//! object still says why, with a Warning Event, and the full status is written again later
//! without another round of Bitbucket reads.

use bitbucket_operator::{
    api::{BitbucketConfiguration, ProjectBinding},
    simulator::seed::Permission,
};
use serde_json::{Value, json};

use crate::{
    fake_kube::MAX_OBJECT_BYTES,
    harness::{CONFIGURATION, Env, big_parts, big_slug, many, message, ready, reason, recorded_ids},
};

const N: usize = 40;

/// Bitbucket requests about the project BIG (the binding's and the report's work; the
/// configuration's connection check is not among them).
fn big_requests(env: &Env) -> usize {
    env.log().iter().filter(|r| r.path.contains("/projects/BIG")).count()
}

/// The size of an object as the fake stores it.
fn size(object: &Value) -> usize {
    serde_json::to_vec(object).map(|bytes| bytes.len()).unwrap_or_default()
}

/// Status writes of the binding `big` the fake refused with `code`.
fn refused_status_writes(env: &Env, code: u16) -> usize {
    let (requests, _) = env.fake.requests();
    requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/projectbindings/big/status") && r.status == code)
        .count()
}

/// The webhook names a binding manages, sorted.
fn managed(object: &Value) -> Vec<String> {
    let names = object["status"]["managedWebhooks"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = names.iter().filter_map(Value::as_str).map(str::to_owned).collect();
    names.sort();
    names
}

fn webhook(name: &str) -> Value {
    json!({"name": name, "url": format!("https://{name}.example.com/hook"), "events": ["repo:refs_changed"]})
}

/// The binding `big` of N repositories, Bound with its full status.
async fn bound(env: &mut Env) -> Value {
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(big_parts().0);
    env.wait_ready("projectbindings", "big", "True", "Bound").await
}

/// Gives the binding a second webhook while the operator is stopped, so that its next status
/// is larger and the first write after `prepare` is the round's.
async fn grow(env: &mut Env, prepare: impl FnOnce(&Env)) {
    env.stop_operator().await;
    env.patch::<ProjectBinding>("big", json!({"spec": {"webhooks": [webhook("ci"), webhook("cd")]}})).await;
    prepare(env);
    env.start_operator();
}

/// Lets the operator's user only read BIG: every webhook write there fails.
fn read_only(env: &Env) {
    env.bitbucket().set_project_permission("BIG", "svc-operator", Some(Permission::ProjectRead)).expect("permission");
}

/// The binding `big`, bound; then, with the operator's user only allowed to read BIG, given a
/// second webhook while the fake's object limit admits the status without its list of the
/// repositories that need attention (every one does now), but not with it.
async fn attention_too_large(env: &mut Env) -> (Value, Value) {
    let full = bound(env).await;
    // The shortened status says more in its condition than "Bound" did; the list of 20
    // repositories with their failures is far larger than that.
    grow(env, |env| {
        read_only(env);
        env.fake.limit_object_size(size(&full) + 2000);
    })
    .await;
    let object = env
        .wait("projectbindings", "team-a", "big", "StatusTooLarge at generation 2", |o| {
            ready(o).is_some_and(|c| c["status"] == "False" && c["reason"] == "StatusTooLarge")
                && o["status"]["observedGeneration"] == 2
        })
        .await;
    (full, object)
}

/// Waits until some status writes of `big` were refused with `code` after `before` of them.
async fn refused_again(env: &Env, code: u16, before: usize, more: usize) {
    env.eventually(&format!("{more} more refused status writes"), || refused_status_writes(env, code) >= before + more)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_too_large_to_store_is_shortened_announced_and_written_later_without_reading_bitbucket() {
    let mut env = Env::new(&many(N)).await;
    let (full, object) = attention_too_large(&mut env).await;
    assert_eq!(object["status"]["conditions"].as_array().map(Vec::len), Some(3), "{object:#?}");
    let stalled = object["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Stalled"));
    assert_eq!(stalled.map(|c| c["status"].clone()), Some(json!("True")), "{object:#?}");
    let said = message(&object);
    assert!(said.contains("too large") && said.contains("split"), "{said}");
    // What the next rounds and the cleanup work from is kept, and it fits.
    assert_eq!(managed(&object), ["cd", "ci"], "{object:#?}");
    assert_eq!(object["status"]["repositoryCount"], N, "{object:#?}");
    assert_eq!(object["status"]["failedCount"], N, "{object:#?}");
    assert_eq!(recorded_ids(&object, "repositoryIds").len(), N, "{object:#?}");
    assert!(object["status"]["needsAttention"].is_null(), "{object:#?}");
    assert!(size(&object) <= size(&full) + 2000, "{} vs {}", size(&object), size(&full));
    let notes = env.event_notes("ProjectBinding", "big", "StatusTooLarge");
    assert!(!notes.is_empty(), "{:?}", env.events("ProjectBinding", "big"));
    let warnings: Vec<Value> =
        env.events("ProjectBinding", "big").into_iter().filter(|e| e["reason"] == "StatusTooLarge").collect();
    assert!(warnings.iter().all(|e| e["type"] == "Warning"), "{warnings:#?}");

    // Several retries of the full write pass, and none reads Bitbucket again.
    let reads = big_requests(&env);
    let refused = refused_status_writes(&env, 500);
    refused_again(&env, 500, refused, 3).await;
    assert_eq!(big_requests(&env), reads, "the retries of the status write read Bitbucket");
    assert_eq!(reason(&env.fake.object("projectbindings", "team-a", "big").expect("big")), "StatusTooLarge");
    let announced = env.event_notes("ProjectBinding", "big", "StatusTooLarge").len();
    assert_eq!(announced, notes.len(), "a retry that is refused again is announced once");

    // Room again: the next retry writes the full status, still without reading Bitbucket: the
    // round's failures, 20 of the repositories listed and the others counted.
    env.fake.limit_object_size(MAX_OBJECT_BYTES);
    let object = env.wait_ready("projectbindings", "big", "False", "PermissionDenied").await;
    let listed = object["status"]["needsAttention"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 20, "{object:#?}");
    assert!(listed.iter().all(|e| e["state"] == "Failed" && e["message"].is_string()), "{object:#?}");
    assert_eq!(object["status"]["needsAttentionOmitted"], N - 20, "{object:#?}");
    assert_eq!(big_requests(&env), reads, "writing the full status read Bitbucket");
    env.shutdown().await;
}

/// A binding whose status was shortened still removes its webhooks from every repository when
/// it is deleted: the record of its repositories is what a shortened status keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_with_a_shortened_status_removes_all_its_webhooks_on_deletion() {
    let mut env = Env::new(&many(N)).await;
    attention_too_large(&mut env).await;
    assert!(env.bitbucket().webhooks("BIG", &big_slug(0)).is_ok_and(|h| h.len() == 1));

    // The removal takes a list and a delete per repository: not at the default rate of 5/s.
    env.bitbucket().set_project_permission("BIG", "svc-operator", Some(Permission::ProjectAdmin)).expect("admin");
    let faster = json!({"spec": {"rateLimit": {"requestsPerSecond": 200, "burst": 200}}});
    env.patch::<BitbucketConfiguration>("bitbucket", faster).await;
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the new rate in use", |o| {
        o["status"]["observedGeneration"] == 2 && ready(o).is_some_and(|c| c["status"] == "True")
    })
    .await;
    env.delete::<ProjectBinding>("big").await;
    env.wait_gone("projectbindings", "big").await;
    for i in 0..N {
        let left = env.bitbucket().webhooks("BIG", &big_slug(i)).map(|h| h.len());
        assert_eq!(left, Ok(0), "{} kept webhooks after the binding was deleted", big_slug(i));
    }
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_rejected_as_invalid_is_announced_and_written_again_without_reading_bitbucket() {
    let mut env = Env::new(&many(N)).await;
    bound(&mut env).await;
    // The round's status write is refused once as invalid.
    grow(&mut env, |env| env.fake.fail_next("PATCH", "projectbindings", 422)).await;
    env.eventually("a StatusRejected Event", || env.has_event("ProjectBinding", "big", "StatusRejected")).await;
    let reads = big_requests(&env);
    let object = env
        .wait("projectbindings", "team-a", "big", "Bound at generation 2", |o| {
            ready(o).is_some_and(|c| c["reason"] == "Bound") && o["status"]["observedGeneration"] == 2
        })
        .await;
    assert_eq!(object["status"]["repositoryCount"], N);
    assert_eq!(recorded_ids(&object, "repositoryIds").len(), N, "{object:#?}");
    assert_eq!(big_requests(&env), reads, "writing the status again read Bitbucket");
    let notes = env.event_notes("ProjectBinding", "big", "StatusRejected");
    assert!(notes.iter().all(|n| n.contains("invalid") && !n.contains("injected")), "{notes:?}");
    env.shutdown().await;
}
