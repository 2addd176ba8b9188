//! RequiredBuild end to end: conditions created on every bound repository (on each one's default
//! branch), an identical one adopted, a spec change applied in place, drift corrected, Observe
//! only reporting, a crash between the create and the status write, deletion with both
//! policies, a server without the API, and the request figures.

use std::time::Duration;

use bitbucket_operator::{api::RequiredBuild, simulator::seed::Permission};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::fixtures::{BARE_BINDING, READER_TOKEN};

use crate::harness::{
    CONFIGURATION, Env, OPERATOR_TOKEN, SEED, attention_entry, big_parts, big_slug, configuration_with_rate, is_true,
    many, message, reason,
};

/// The build key the examples use.
const GATE: &str = "sonarqube-quality-gate";

/// A RequiredBuild `gate` on the binding `big`, with more spec lines (indented by two).
fn build(extra: &str) -> String {
    format!(
        "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: RequiredBuild\nmetadata: {{name: gate}}\nspec:\n  bindingRef: {{name: big}}\n  buildParentKeys: [{GATE}]\n{extra}"
    )
}

/// The conditions of a repository of BIG, as Bitbucket lists them.
fn conditions(env: &Env, slug: &str) -> Vec<Value> {
    env.bitbucket().required_builds("BIG", slug).expect("repository")
}

/// The ids, build keys and target ref of a repository's conditions.
fn summary(env: &Env, slug: &str) -> Vec<(i64, Vec<String>, String)> {
    conditions(env, slug)
        .iter()
        .map(|c| {
            let keys = c["buildParentKeys"].as_array().into_iter().flatten().filter_map(Value::as_str);
            (
                c["id"].as_i64().unwrap_or_default(),
                keys.map(str::to_owned).collect(),
                c["refMatcher"]["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Requests served on the required-builds API with this method.
fn required_builds_requests(env: &Env, method: &str) -> u64 {
    env.bitbucket()
        .request_counts()
        .into_iter()
        .filter(|(endpoint, _)| endpoint.starts_with(method) && endpoint.contains("/rest/required-builds/"))
        .map(|(_, count)| count)
        .sum()
}

fn writes(env: &Env) -> u64 {
    ["POST", "PUT", "DELETE"].iter().map(|m| required_builds_requests(env, m)).sum()
}

async fn started(n: usize, seed_changes: impl FnOnce(&Env)) -> Env {
    let mut env = Env::new(&many(n)).await;
    env.options.max_resync = Some(Duration::from_millis(500));
    seed_changes(&env);
    env.start_operator();
    // The binding resyncs as often as the RequiredBuild: a rate that keeps up with both.
    env.apply(&configuration_with_rate(1000, 1000));
    env.apply(big_parts().0);
    env
}

fn gate_on(branch: &str) -> Value {
    json!({"buildParentKeys": [GATE], "refMatcher": {"id": branch, "type": {"id": "BRANCH"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bound_repository_gets_one_condition_on_its_default_branch_and_resyncs_write_nothing() {
    const N: usize = 4;
    let env = started(N, |env| {
        env.bitbucket().set_default_branch("BIG", &big_slug(2), "develop").expect("repository");
    })
    .await;
    env.apply(&build(""));
    let ready = env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    assert_eq!(ready["status"]["repositoryCount"], N);
    assert_eq!(ready["status"]["inSyncCount"], N);
    assert_eq!(ready["status"]["applied"], json!([{"buildParentKeys": [GATE]}]));
    assert!(message(&ready).contains(GATE) && message(&ready).contains("default branch"), "{}", message(&ready));
    for i in 0..N {
        let slug = big_slug(i);
        let found = summary(&env, &slug);
        let branch = if i == 2 { "refs/heads/develop" } else { "refs/heads/main" };
        assert_eq!(found.len(), 1, "{slug}: {found:?}");
        assert_eq!((found[0].1.clone(), found[0].2.as_str()), (vec![GATE.to_owned()], branch), "{slug}");
    }
    env.eventually("CheckCreated recorded", || env.has_event("RequiredBuild", "gate", "CheckCreated")).await;
    assert_eq!(required_builds_requests(&env, "POST"), N as u64);

    // Resyncs read and write nothing more.
    let before = writes(&env);
    let reads = required_builds_requests(&env, "GET");
    env.eventually("two more rounds", || required_builds_requests(&env, "GET") >= reads + 2 * N as u64).await;
    assert_eq!(writes(&env), before, "a resync wrote");
    assert!(!env.has_event("RequiredBuild", "gate", "DriftCorrected"));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_condition_made_by_hand_is_adopted_and_other_conditions_are_left_alone() {
    let mut ids = Vec::new();
    let env = started(2, |env| {
        // Same keys and branch, given by name: the same condition.
        let same =
            json!({"buildParentKeys": [GATE], "refMatcher": {"id": "refs/heads/main", "type": {"id": "BRANCH"}}});
        ids.push(env.bitbucket().add_required_build("BIG", &big_slug(0), same).expect("add"));
        // Someone else's: another key, and the same key on another branch.
        let lint =
            json!({"buildParentKeys": ["lint"], "refMatcher": {"id": "refs/heads/main", "type": {"id": "BRANCH"}}});
        ids.push(env.bitbucket().add_required_build("BIG", &big_slug(0), lint).expect("add"));
        ids.push(env.bitbucket().add_required_build("BIG", &big_slug(1), gate_on("refs/heads/release")).expect("add"));
    })
    .await;
    env.apply(&build(""));
    env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    let first = summary(&env, &big_slug(0));
    assert_eq!(first.iter().map(|c| c.0).collect::<Vec<_>>(), ids[..2], "{first:?}");
    let second = summary(&env, &big_slug(1));
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(second[0].0, ids[2], "someone else's condition changed: {second:?}");
    assert_eq!(second[0].2, "refs/heads/release");
    assert_eq!(second[1].2, "refs/heads/main");
    assert_eq!(required_builds_requests(&env, "POST"), 1, "only repo-001 lacked the condition");
    assert_eq!(required_builds_requests(&env, "PUT") + required_builds_requests(&env, "DELETE"), 0);
    env.eventually("CheckAdopted recorded", || env.has_event("RequiredBuild", "gate", "CheckAdopted")).await;
    let adopted = env.event_notes("RequiredBuild", "gate", "CheckAdopted").join(" ");
    assert!(adopted.contains(&big_slug(0)) && !adopted.contains(&big_slug(1)), "{adopted}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_updates_each_condition_in_place() {
    const N: usize = 3;
    let env = started(N, |_| {}).await;
    env.apply(&build(""));
    env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    let before: Vec<i64> = (0..N).map(|i| summary(&env, &big_slug(i))[0].0).collect();

    env.patch::<RequiredBuild>(
        "gate",
        json!({"spec": {"buildParentKeys": [GATE, "unit-tests"], "refMatcher": {"type": "Pattern", "value": "release/*"}}}),
    )
    .await;
    let updated = env
        .wait("requiredbuilds", "team-a", "gate", "the new spec applied", |o| {
            o["status"]["applied"] == json!([{"buildParentKeys": [GATE, "unit-tests"], "refMatcher": {"type": "Pattern", "value": "release/*"}}])
                && o["status"]["observedGeneration"] == o["metadata"]["generation"]
        })
        .await;
    assert_eq!(reason(&updated), "InSync");
    for (i, id) in before.iter().enumerate() {
        let found = conditions(&env, &big_slug(i));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0]["id"], *id, "the condition was replaced, not updated");
        assert_eq!(found[0]["refMatcher"]["type"]["id"], "PATTERN");
        assert_eq!(found[0]["refMatcher"]["id"], "release/*");
    }
    assert_eq!(required_builds_requests(&env, "PUT"), N as u64);
    assert_eq!(required_builds_requests(&env, "POST"), N as u64, "only the first round created");
    env.eventually("CheckUpdated recorded", || env.has_event("RequiredBuild", "gate", "CheckUpdated")).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_corrected_and_an_edited_condition_becomes_someone_elses() {
    let env = started(2, |_| {}).await;
    env.apply(&build(""));
    env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    let slug = big_slug(0);

    // Deleted by hand: created again.
    let ours = summary(&env, &slug)[0].0;
    env.bitbucket().delete_required_build("BIG", &slug, ours).expect("delete");
    env.eventually("the condition restored", || summary(&env, &slug).len() == 1).await;
    let restored = summary(&env, &slug)[0].clone();
    assert_ne!(restored.0, ours);
    assert_eq!(restored.1, vec![GATE.to_owned()]);
    env.eventually("DriftCorrected recorded", || env.has_event("RequiredBuild", "gate", "DriftCorrected")).await;
    let events = env.events("RequiredBuild", "gate");
    let corrected = events.iter().find(|e| e["reason"] == "DriftCorrected").expect("event");
    assert_eq!(corrected["type"], "Warning");
    assert!(corrected["message"].as_str().is_some_and(|n| n.contains(&slug)), "{corrected:#}");

    // Edited by hand (another build key): no longer ours; ours is created beside it, the edited
    // one is left as the person made it.
    let lint = json!({"buildParentKeys": ["lint"], "refMatcher": {"id": "refs/heads/main", "type": {"id": "BRANCH"}}});
    env.bitbucket().edit_required_build("BIG", &slug, restored.0, lint).expect("edit");
    env.eventually("ours created beside the edited one", || summary(&env, &slug).len() == 2).await;
    let found = summary(&env, &slug);
    assert_eq!(found[0], (restored.0, vec!["lint".to_owned()], "refs/heads/main".to_owned()));
    assert_eq!(found[1].1, vec![GATE.to_owned()]);
    env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;

    // A duplicate of ours made by hand is deleted; the oldest stays.
    let duplicate = env.bitbucket().add_required_build("BIG", &slug, gate_on("refs/heads/main")).expect("add");
    env.eventually("the duplicate deleted", || summary(&env, &slug).iter().all(|c| c.0 != duplicate)).await;
    assert_eq!(summary(&env, &slug).len(), 2);
    assert_eq!(summary(&env, &big_slug(1)).len(), 1, "the other repository was touched");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_only_reports_what_differs_and_writes_nothing() {
    let env = started(2, |env| {
        env.bitbucket().add_required_build("BIG", &big_slug(0), gate_on("refs/heads/main")).expect("add");
    })
    .await;
    env.apply(&build("  managementPolicy: Observe\n"));
    let drifted = env.wait_ready("requiredbuilds", "gate", "False", "Drifted").await;
    assert!(is_true(&drifted, "Stalled"), "{drifted:#}");
    assert_eq!(drifted["status"]["inSyncCount"], 1);
    assert_eq!(drifted["status"]["driftedCount"], 1);
    let entry = attention_entry(&drifted, &big_slug(1)).expect("the repository without the condition");
    assert_eq!(entry["state"], "Drifted");
    let text = entry["message"].as_str().unwrap_or_default();
    assert!(text.contains("no condition requires") && text.contains(GATE), "{text}");
    env.eventually("DriftDetected recorded", || env.has_event("RequiredBuild", "gate", "DriftDetected")).await;

    // Made by hand: in sync. Deleting the RequiredBuild leaves both conditions.
    env.bitbucket().add_required_build("BIG", &big_slug(1), gate_on("refs/heads/main")).expect("add");
    env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    env.delete::<RequiredBuild>("gate").await;
    env.wait_gone("requiredbuilds", "gate").await;
    assert_eq!(summary(&env, &big_slug(0)).len(), 1);
    assert_eq!(summary(&env, &big_slug(1)).len(), 1);
    assert_eq!(writes(&env), 0, "an observing RequiredBuild wrote");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_create_and_the_status_write_creates_nothing_twice() {
    const N: usize = 3;
    let mut env = started(N, |_| {}).await;
    // The finalizer is there already, so the first write to the object is the status.
    let manifest = build("").replacen(
        "metadata: {name: gate}",
        "metadata: {name: gate, finalizers: [bitbucket.integrations.dev/cleanup]}",
        1,
    );
    // Every status write is refused until the crash.
    const REFUSALS: usize = 50;
    for _ in 0..REFUSALS {
        env.fake.fail_next("PATCH", "requiredbuilds", 500);
    }
    env.apply(&manifest);
    env.eventually("every condition created", || required_builds_requests(&env, "POST") == N as u64).await;
    let refused = || {
        let (requests, _) = env.fake.requests();
        requests
            .iter()
            .any(|r| r.method == "PATCH" && r.path.ends_with("/requiredbuilds/gate/status") && r.status == 500)
    };
    env.eventually("a refused status write", refused).await;
    env.kill_operator().await;
    // The refusals left over are used up by writes of no consequence.
    let api = env.api::<RequiredBuild>();
    let label = kube::api::Patch::Merge(json!({"metadata": {"labels": {"drained": "yes"}}}));
    let mut drained = false;
    for _ in 0..=REFUSALS {
        if api.patch("gate", &kube::api::PatchParams::default(), &label).await.is_ok() {
            drained = true;
            break;
        }
    }
    assert!(drained, "the injected refusals were not used up");
    let object = env.fake.object("requiredbuilds", "team-a", "gate").expect("object");
    assert!(object["status"]["repositoryIds"].is_null(), "the status was written before the crash: {object:#}");
    assert_eq!(required_builds_requests(&env, "POST"), N as u64);

    env.start_operator();
    let ready = env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    assert_eq!(ready["status"]["inSyncCount"], N);
    for i in 0..N {
        assert_eq!(summary(&env, &big_slug(i)).len(), 1, "{}: created twice", big_slug(i));
    }
    assert_eq!(required_builds_requests(&env, "POST"), N as u64, "a condition was created again");
    env.eventually("CheckAdopted recorded", || env.has_event("RequiredBuild", "gate", "CheckAdopted")).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_removes_only_ours_or_leaves_them_with_orphan() {
    let env = started(2, |env| {
        let lint =
            json!({"buildParentKeys": ["lint"], "refMatcher": {"id": "refs/heads/main", "type": {"id": "BRANCH"}}});
        env.bitbucket().add_required_build("BIG", &big_slug(0), lint).expect("add");
    })
    .await;
    env.apply(&build(""));
    env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    env.delete::<RequiredBuild>("gate").await;
    env.wait_gone("requiredbuilds", "gate").await;
    let left = summary(&env, &big_slug(0));
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].1, vec!["lint".to_owned()], "someone else's condition was deleted");
    assert!(summary(&env, &big_slug(1)).is_empty());
    env.eventually("CheckRemoved recorded", || env.has_event("RequiredBuild", "gate", "CheckRemoved")).await;

    env.apply(&build("  deletionPolicy: Orphan\n"));
    env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    env.delete::<RequiredBuild>("gate").await;
    env.wait_gone("requiredbuilds", "gate").await;
    assert_eq!(summary(&env, &big_slug(0)).len(), 2);
    assert_eq!(summary(&env, &big_slug(1)).len(), 1);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_waits_for_its_required_builds_before_it_is_deleted() {
    let env = started(1, |_| {}).await;
    env.apply(&build(""));
    env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    env.delete::<bitbucket_operator::api::ProjectBinding>("big").await;
    let waiting = env.wait_ready("projectbindings", "big", "False", "Deleting").await;
    assert!(message(&waiting).contains("RequiredBuild gate"), "{}", message(&waiting));
    env.delete::<RequiredBuild>("gate").await;
    env.wait_gone("requiredbuilds", "gate").await;
    env.wait_gone("projectbindings", "big").await;
    assert!(summary(&env, &big_slug(0)).is_empty());
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_before_7_14_stalls_with_the_manual_steps_and_no_retry_loop() {
    const RESYNC: Duration = Duration::from_millis(500);
    let seed = many(5).replacen("version: \"9.4.22\"", "version: \"7.13.1\"", 1);
    assert_ne!(seed, many(5), "the seed names its version");
    let mut env = Env::new(&seed).await;
    env.options.max_resync = Some(RESYNC);
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(big_parts().0);
    env.apply(&build(""));
    let stalled = env.wait_ready("requiredbuilds", "gate", "False", "UnsupportedServer").await;
    assert!(is_true(&stalled, "Stalled") && !is_true(&stalled, "Reconciling"), "{stalled:#}");
    let text = message(&stalled);
    assert!(text.contains("Repository settings > Required builds") && text.contains(GATE), "{text}");

    // One request per round (the first repository's), once per resync.
    let (before, since) = (env.bitbucket().request_count(), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rounds = (since.elapsed().as_secs_f64() / RESYNC.mul_f64(0.9).as_secs_f64()).floor() as u64 + 1;
    let during = required_builds_requests(&env, "GET");
    assert!(during <= 2 * (rounds + 1), "{during} required-builds reads in {:?}", since.elapsed());
    assert!(env.bitbucket().request_count() > before, "no resync");
    assert_eq!(writes(&env), 0);
    env.shutdown().await;
}

/// The requests of the RequiredBuild's rounds (the binding's own resyncs aside), by endpoint.
fn check_requests(env: &Env) -> std::collections::BTreeMap<String, u64> {
    let mut counts = env.bitbucket().request_counts();
    counts.retain(|endpoint, _| endpoint.contains("/rest/required-builds/") || endpoint.ends_with("/default-branch"));
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_build_request_figures() {
    const N: usize = 30;
    for (label, extra) in
        [("without refMatcher", ""), ("with refMatcher", "  refMatcher: {type: Branch, value: main}\n")]
    {
        let env = started(N, |_| {}).await;
        env.wait_ready("projectbindings", "big", "True", "Bound").await;
        env.bitbucket().clear_requests();
        env.apply(&build(extra));
        env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
        env.eventually("every condition created", || required_builds_requests(&env, "POST") == N as u64).await;
        let cold = check_requests(&env);
        env.bitbucket().clear_requests();
        // A no-op resync: wait for one more full round.
        env.eventually("a resync", || required_builds_requests(&env, "GET") >= N as u64).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let resync = check_requests(&env);
        println!("RequiredBuild, N = {N}, {label}");
        println!("  cold round: {} requests: {cold:?}", cold.values().sum::<u64>());
        println!("  no-op resync: {} requests: {resync:?}", resync.values().sum::<u64>());
        env.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_may_only_read_stalls_with_permission_denied_and_writes_nothing() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&CONFIGURATION.replace(OPERATOR_TOKEN, READER_TOKEN));
    env.apply(BARE_BINDING);
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    env.apply(&build("").replace("bindingRef: {name: big}", "bindingRef: {name: payments}"));
    let stalled = env.wait_ready("requiredbuilds", "gate", "False", "PermissionDenied").await;
    assert!(is_true(&stalled, "Stalled"), "{stalled:#}");
    assert!(message(&stalled).contains("REPO_ADMIN"), "{}", message(&stalled));
    assert!(env.bitbucket().required_builds("PAY", "payments-api").expect("repository").is_empty());
    // The reader's token is not taken for a bad one: it is sent again at the next round.
    let configuration = env.fake.object("bitbucketconfigurations", "team-a", "bitbucket").expect("configuration");
    assert_eq!(reason(&configuration), "Connected");
    env.shutdown().await;
}

/// [`SEED`] plus a project BIG of `n` repositories on which `svc-operator` administers each
/// repository (not the project), so that one repository's permission can be taken away.
fn per_repository_admin(n: usize) -> String {
    let mut seed = SEED.to_owned();
    seed.push_str("  - key: BIG\n    name: Big\n    permissions: {svc-operator: PROJECT_READ}\n    repositories:\n");
    for i in 0..n {
        seed.push_str(&format!("      - {{slug: {}, permissions: {{svc-operator: REPO_ADMIN}}}}\n", big_slug(i)));
    }
    seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_spec_changes_while_one_repository_fails_update_every_condition_in_place() {
    const N: usize = 3;
    let mut env = Env::new(&per_repository_admin(N)).await;
    env.options.max_resync = Some(Duration::from_millis(500));
    env.start_operator();
    env.apply(&configuration_with_rate(1000, 1000));
    // No webhooks: the binding needs nothing but to read the repositories.
    env.apply(
        "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: ProjectBinding\nmetadata: {name: big}\nspec:\n  configurationRef: {name: bitbucket}\n  projectKey: BIG\n  repositories: {}\n",
    );
    env.apply(&build(""));
    env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    let ids: Vec<i64> = (0..N).map(|i| summary(&env, &big_slug(i))[0].0).collect();
    let failing = big_slug(1);
    env.bitbucket()
        .set_repository_permission("BIG", &failing, "svc-operator", Some(Permission::RepoRead))
        .expect("repository");

    for keys in [json!([GATE, "unit-tests"]), json!([GATE, "unit-tests", "lint"])] {
        env.patch::<RequiredBuild>("gate", json!({"spec": {"buildParentKeys": keys}})).await;
        let failed = env
            .wait("requiredbuilds", "team-a", "gate", "the change applied but on one repository", |o| {
                o["status"]["observedGeneration"] == o["metadata"]["generation"] && o["status"]["failedCount"] == 1
            })
            .await;
        assert_eq!(reason(&failed), "PartiallyFailed", "{failed:#}");
        let entry = attention_entry(&failed, &failing).expect("the failing repository");
        assert!(entry["message"].as_str().is_some_and(|m| m.contains("REPO_ADMIN")), "{entry:#}");
    }
    // Permission back: the failing repository's old condition is updated too.
    env.bitbucket()
        .set_repository_permission("BIG", &failing, "svc-operator", Some(Permission::RepoAdmin))
        .expect("repository");
    let ready = env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    assert_eq!(ready["status"]["applied"], json!([{"buildParentKeys": [GATE, "unit-tests", "lint"]}]));
    for (i, id) in ids.iter().enumerate() {
        let found = summary(&env, &big_slug(i));
        assert_eq!(found.len(), 1, "{}: {found:?}", big_slug(i));
        assert_eq!(found[0].0, *id, "{}: replaced instead of updated", big_slug(i));
        assert_eq!(found[0].1.len(), 3, "{found:?}");
    }
    assert_eq!(required_builds_requests(&env, "POST"), N as u64, "a condition was created beside another");
    env.shutdown().await;
}
