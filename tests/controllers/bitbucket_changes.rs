//! Bitbucket changing behind the operator's back: repositories deleted and added, merge checks
//! removed or weakened (corrected, or only reported under `Observe`), and a server without the
//! merge-check API.

use std::time::Duration;

use bitbucket_operator::{api::RequiredReport, bitbucket::MANUAL_STEPS};
use serde_json::json;
use tokio::time::Instant;

use crate::harness::{
    BIG, BINDING, CONFIGURATION, Env, MERGE_CHECK, REPORT, REPOSITORIES, SEED, SONAR, attention_entry, big_slug,
    is_true, many, message, on_repository, reason, recorded_ids, recorded_slugs,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_deleted_in_bitbucket_stalls_its_single_binding_and_leaves_a_selection() {
    let mut env = Env::new(&many(3)).await;
    env.options.max_resync = Some(Duration::from_millis(500));
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BIG);
    env.apply(BINDING);
    env.apply(REPORT);
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;

    // The single repository of `payments` goes: that binding (and its report) stall, alone.
    env.bitbucket().delete_repository("PAY", "payments-api").expect("delete");
    let gone = env.wait_ready("projectbindings", "payments", "False", "RepositoryNotFound").await;
    assert!(is_true(&gone, "Stalled"), "{gone:#?}");
    assert!(message(&gone).contains("payments-api"), "{}", message(&gone));
    assert_eq!(gone["status"]["repositoryCount"], 0);
    assert!(recorded_ids(&gone, "repositoryIds").is_empty());
    assert!(env.has_event("ProjectBinding", "payments", "RepositoryNotFound"));
    let report = env.wait_ready("requiredreports", "sonarqube", "False", "BindingNotReady").await;
    assert!(is_true(&report, "Stalled"), "{report:#?}");
    assert!(message(&report).contains("payments"), "{}", message(&report));

    // A repository of the selection goes: the next resync drops it, the rest stays bound.
    let removed = big_slug(1);
    let id = env.repositories_in("BIG").iter().find(|r| r["slug"] == removed.as_str()).and_then(|r| r["id"].as_i64());
    let id = id.expect("an id");
    env.bitbucket().clear_requests();
    env.bitbucket().delete_repository("BIG", &removed).expect("delete");
    let binding = env
        .wait("projectbindings", "team-a", "big", "the deleted repository gone", |o| {
            !recorded_ids(o, "repositoryIds").contains(&id)
        })
        .await;
    assert_eq!(env.requests_to(&format!("GET {REPOSITORIES}")), 1, "not dropped at the first listing");
    assert_eq!(reason(&binding), "Bound");
    assert_eq!(recorded_slugs(&env, &binding, "BIG"), [big_slug(0), big_slug(2)]);
    assert_eq!(binding["status"]["repositoryCount"], 2);
    let report = env
        .wait("requiredreports", "team-a", "big-sonarqube", "the deleted repository gone", |o| {
            !recorded_ids(o, "repositoryIds").contains(&id)
        })
        .await;
    assert_eq!(reason(&report), "InSync");
    assert_eq!(report["status"]["repositoryCount"], 2);
    assert_eq!(report["status"]["inSyncCount"], 2);
    for slug in [big_slug(0), big_slug(2)] {
        assert_eq!(env.bitbucket().webhooks("BIG", &slug).expect("repository").len(), 1, "{slug}");
        assert!(env.bitbucket().merge_check("BIG", &slug, SONAR).expect("repository").is_some(), "{slug}");
    }
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_added_to_a_selected_project_is_bound_and_checked_on_the_next_resync() {
    let mut env = Env::new(&many(3)).await;
    env.options.max_resync = Some(Duration::from_millis(500));
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BIG);
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;

    env.bitbucket().clear_requests();
    env.bitbucket().create_repository("BIG", "repo-new").expect("create");
    let report = env
        .wait("requiredreports", "team-a", "big-sonarqube", "the new repository checked", |o| {
            o["status"]["repositoryCount"] == 4 && o["status"]["inSyncCount"] == 4
        })
        .await;
    // Bound at the first listing after it appeared, and checked right after.
    assert_eq!(env.requests_to(&format!("GET {REPOSITORIES}")), 1);
    assert_eq!(report["status"]["repositoryCount"], 4);
    // The report works from the binding's listing, published before the binding's own status
    // is written: wait for that status, not for the Ready it had already.
    let binding = env
        .wait("projectbindings", "team-a", "big", "the new repository recorded", |o| {
            crate::harness::reason(o) == "Bound" && o["status"]["repositoryCount"] == 4
        })
        .await;
    assert!(recorded_slugs(&env, &binding, "BIG").contains(&"repo-new".to_owned()));
    assert_eq!(binding["status"]["repositoryCount"], 4);
    assert!(env.bitbucket().merge_check("BIG", "repo-new", SONAR).expect("repository").is_some());
    let hooks = env.bitbucket().webhooks("BIG", "repo-new").expect("repository");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["name"], "ci");
    // Only the new repository was written to, once per object.
    let log = env.log();
    let writes: Vec<_> = log.iter().filter(|r| r.method != "GET").collect();
    assert!(writes.iter().all(|r| r.path.contains("/repos/repo-new/")), "{writes:#?}");
    assert_eq!(on_repository(&log, "POST", "BIG", "repo-new", "/webhooks"), 1);
    assert_eq!(on_repository(&log, "PUT", "BIG", "repo-new", SONAR), 1);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_removed_or_weakened_in_bitbucket_is_restored_at_the_next_resync() {
    const RESYNC: Duration = Duration::from_millis(500);
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(RESYNC);
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BINDING);
    env.apply(REPORT);
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    let desired = env.bitbucket().merge_check("PAY", "payments-api", SONAR).expect("repository").expect("check");

    // Removed by hand.
    env.bitbucket().clear_requests();
    env.bitbucket().delete_merge_check("PAY", "payments-api", SONAR).expect("delete");
    let removed_at = Instant::now();
    env.eventually("the removed check restored", || {
        env.bitbucket().merge_check("PAY", "payments-api", SONAR).ok().flatten().is_some()
    })
    .await;
    let took = removed_at.elapsed();
    // The simulator logs a request once it has answered it, a moment after the change is seen.
    env.eventually("the restoring write logged", || {
        on_repository(&env.log(), "PUT", "PAY", "payments-api", SONAR) >= 1
    })
    .await;
    let log = env.log();
    assert_eq!(on_repository(&log, "GET", "PAY", "payments-api", SONAR), 1, "not restored at the first look: {log:#?}");
    assert_eq!(on_repository(&log, "PUT", "PAY", "payments-api", SONAR), 1, "{log:#?}");
    assert!(took <= RESYNC.mul_f64(1.1) + Duration::from_secs(1), "restored after {took:?}");
    assert_eq!(env.bitbucket().merge_check("PAY", "payments-api", SONAR).expect("repository"), Some(desired.clone()));
    env.eventually("DriftCorrected recorded", || env.has_event("RequiredReport", "sonarqube", "DriftCorrected")).await;
    let corrected = env.events("RequiredReport", "sonarqube");
    let corrected = corrected.iter().find(|e| e["reason"] == "DriftCorrected").expect("event");
    assert_eq!(corrected["type"], "Warning");

    // Weakened by hand.
    env.bitbucket()
        .set_merge_check("PAY", "payments-api", json!({"reportKey": SONAR, "mustPass": false, "minSeverity": "HIGH"}))
        .expect("set");
    env.eventually("the weakened check restored", || {
        env.bitbucket().merge_check("PAY", "payments-api", SONAR).ok().flatten().as_ref() == Some(&desired)
    })
    .await;
    let report = env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    assert_eq!(report["status"]["inSyncCount"], 1);
    assert!(attention_entry(&report, "payments-api").is_none(), "{report:#}");
    let log = env.log();
    assert_eq!(on_repository(&log, "PUT", "PAY", "payments-api", SONAR), 2, "{log:#?}");
    assert!(log.iter().all(|r| r.method != "DELETE"), "{log:#?}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observed_report_only_reports_drift() {
    const LINT: &str = "com.example.lint";
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(Duration::from_millis(500));
    let good = json!({"reportKey": LINT, "mustPass": true, "minSeverity": "LOW"});
    env.bitbucket().set_merge_check("PAY", "payments-api", good.clone()).expect("set");
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BINDING);
    env.apply(&format!(
        r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {{name: lint}}
spec:
  bindingRef: {{name: payments}}
  reportKey: {LINT}
  managementPolicy: Observe
"#
    ));
    let report = env.wait_ready("requiredreports", "lint", "True", "InSync").await;
    assert_eq!(report["status"]["reportKey"], LINT);

    // Weakened by hand: reported, with what differs, and left as it is.
    let weak = json!({"reportKey": LINT, "mustPass": false});
    env.bitbucket().set_merge_check("PAY", "payments-api", weak).expect("set");
    let drifted = env.wait_ready("requiredreports", "lint", "False", "Drifted").await;
    assert!(is_true(&drifted, "Stalled"), "{drifted:#?}");
    assert!(message(&drifted).contains("Observe"), "{}", message(&drifted));
    let entry = attention_entry(&drifted, "payments-api").expect("entry").clone();
    assert_eq!(entry["state"], "Drifted");
    let text = entry["message"].as_str().unwrap_or_default();
    assert!(text.contains("must pass") && text.contains("must exist"), "{text}");
    assert_eq!(drifted["status"]["inSyncCount"], 0);
    assert_eq!(drifted["status"]["driftedCount"], 1);
    assert!(env.has_event("RequiredReport", "lint", "DriftDetected"));
    let stored = env.bitbucket().merge_check("PAY", "payments-api", LINT).expect("repository").expect("check");
    assert_eq!(stored["mustPass"], false);

    // Removed by hand: reported as missing, not recreated.
    env.bitbucket().delete_merge_check("PAY", "payments-api", LINT).expect("delete");
    env.wait("requiredreports", "team-a", "lint", "the missing check reported", |o| {
        attention_entry(o, "payments-api")
            .is_some_and(|r| r["state"] == "Drifted" && r["message"].as_str().is_some_and(|m| m.contains("missing")))
    })
    .await;
    assert!(env.bitbucket().merge_check("PAY", "payments-api", LINT).expect("repository").is_none());

    // Put back by hand: in sync again. Deleting the report leaves the check in place.
    env.bitbucket().set_merge_check("PAY", "payments-api", good).expect("set");
    env.wait_ready("requiredreports", "lint", "True", "InSync").await;
    env.delete::<RequiredReport>("lint").await;
    env.wait_gone("requiredreports", "lint").await;
    assert!(env.bitbucket().merge_check("PAY", "payments-api", LINT).expect("repository").is_some());

    let log = env.log();
    let writes: Vec<_> = log.iter().filter(|r| r.path.contains("/merge-checks/") && r.method != "GET").collect();
    assert!(writes.is_empty(), "an observing report wrote: {writes:#?}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_merge_check_api_stalls_with_the_manual_steps_and_no_retry_loop() {
    const RESYNC: Duration = Duration::from_millis(500);
    const N: usize = 5;
    let mut env = Env::new(&many(N)).await;
    env.options.max_resync = Some(RESYNC);
    env.bitbucket().set_required_reports_supported(false);
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BIG);
    env.wait_ready("projectbindings", "big", "True", "Bound").await;
    let stalled = env.wait_ready("requiredreports", "big-sonarqube", "False", "UnsupportedServer").await;
    assert!(is_true(&stalled, "Stalled") && !is_true(&stalled, "Reconciling"), "{stalled:#?}");
    let text = message(&stalled);
    assert!(text.contains(MANUAL_STEPS) && text.contains(SONAR) && text.contains("must pass"), "{text}");
    assert!(env.has_event("RequiredReport", "big-sonarqube", "UnsupportedServer"));

    // No retry loop: a round costs one request (not one per repository), once per resync.
    let (before, started) = (env.requests_matching(MERGE_CHECK), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (during, elapsed) = (env.requests_matching(MERGE_CHECK) - before, started.elapsed());
    let rounds = (elapsed.as_secs_f64() / RESYNC.mul_f64(0.9).as_secs_f64()).floor() as u64 + 1;
    assert!(during >= 1, "no resync in {elapsed:?}");
    assert!(during <= rounds, "{during} merge-check requests in {elapsed:?} with a {RESYNC:?} resync");
    let report = env.fake.object("requiredreports", "team-a", "big-sonarqube").expect("report");
    assert_eq!(reason(&report), "UnsupportedServer");
    assert_eq!(env.requests_to(&format!("PUT {MERGE_CHECK}")), 0);
    env.shutdown().await;
}
