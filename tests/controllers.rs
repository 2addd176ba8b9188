//! The controllers end to end: the real `controller::run` on the fake Kubernetes API, talking to
//! the Bitbucket simulator. Each test asserts on status, Events, the simulator's state and its
//! request log.

mod fake_kube;
#[path = "controllers/harness.rs"]
mod harness;

use harness::{CONFIGURATION, Env, SEED, ready};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_proves_its_login_and_reports_the_server() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    let configuration = env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    let status = &configuration["status"];
    assert_eq!(status["server"]["version"], "9.4.22");
    assert_eq!(status["authenticatedAs"], "svc-operator");
    assert!(status["capabilities"].as_array().is_some_and(|c| c.iter().any(|c| c == "webhooks")));
    assert!(status["lastCheckedTime"].is_string());
    let message = ready(&configuration).and_then(|c| c["message"].as_str()).unwrap_or_default().to_owned();
    assert!(message.contains("svc-operator") && !message.contains("BBDC"), "{message}");
    let finalizers = &configuration["metadata"]["finalizers"];
    assert!(finalizers.as_array().is_some_and(|f| f.iter().any(|f| f == "bitbucket.integrations.dev/cleanup")));
    assert!(env.event_reasons("BitbucketConfiguration", "bitbucket").contains(&"Connected".to_owned()));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_and_a_required_report_converge_and_a_resync_changes_nothing() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: ci-webhook
  labels: {bitbucket.integrations.dev/credential: "true"}
stringData: {secret: hook-signing-secret}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {name: platform}
spec:
  configurationRef: {name: bitbucket}
  projectKey: PLAT
  repositories: {exclude: ["sandbox-*"]}
  webhooks:
    - name: ci
      url: https://ci.example.com/hook
      events: ["repo:refs_changed", "pr:opened"]
      secretRef: {name: ci-webhook}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: sonarqube}
spec:
  bindingRef: {name: platform}
"#,
    );
    let binding = env.wait_ready("projectbindings", "platform", "True", "Bound").await;
    let slugs: Vec<&str> = binding["status"]["repositories"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["slug"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(slugs, ["api-gateway", "auth-service", "build-tools"]);
    assert_eq!(binding["status"]["repositoryCount"], 3);
    for slug in &slugs {
        let hooks = env.sim.simulator().webhooks("PLAT", slug).expect("repository");
        assert_eq!(hooks.len(), 1, "{slug}: {hooks:#?}");
        assert_eq!(hooks[0]["name"], "ci");
        assert_eq!(hooks[0]["configuration"]["secret"], "hook-signing-secret");
    }
    assert!(env.sim.simulator().webhooks("PLAT", "sandbox-alice").expect("repository").is_empty());

    let report = env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    assert_eq!(report["status"]["reportKey"], "com.sonarsource.sonarqube");
    assert_eq!(report["status"]["inSyncCount"], 3);
    for slug in &slugs {
        let check = env.sim.simulator().merge_check("PLAT", slug, "com.sonarsource.sonarqube").expect("repository");
        let check = check.unwrap_or_else(|| panic!("{slug} has no check"));
        assert_eq!(check["mustPass"], true);
        assert_eq!(check["minSeverity"], "LOW");
    }
    assert!(env.event_reasons("RequiredReport", "sonarqube").contains(&"CheckCreated".to_owned()));
    assert!(env.event_reasons("ProjectBinding", "platform").contains(&"WebhooksUpdated".to_owned()));

    // Nothing was created twice.
    assert_eq!(env.requests_matching("POST /rest/api/1.0/projects/{key}/repos/{slug}/webhooks"), 3);
    assert_eq!(env.requests_matching("PUT /rest/insights"), 3);
    env.shutdown().await;
}

use std::time::Duration;

use bitbucket_operator::{
    api::{BitbucketConfiguration, ProjectBinding, RequiredReport},
    simulator::{Faults, RateLimit},
};
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

const BINDING: &str = r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {name: payments}
spec:
  configurationRef: {name: bitbucket}
  projectKey: PAY
  repositorySlug: payments-api
  webhooks:
    - name: ci
      url: https://ci.example.com/hook
      events: ["repo:refs_changed"]
"#;

const REPORT: &str = r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: sonarqube}
spec:
  bindingRef: {name: payments}
"#;

const SONAR: &str = "com.sonarsource.sonarqube";

fn reason(object: &serde_json::Value) -> String {
    ready(object).and_then(|c| c["reason"].as_str()).unwrap_or_default().to_owned()
}

fn message(object: &serde_json::Value) -> String {
    ready(object).and_then(|c| c["message"].as_str()).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_used_without_a_restart() {
    let seed = SEED
        .replace("  - name: reader\n", "  - name: svc-rotated\n    password: \"other pass\"\n  - name: reader\n")
        .replace(
            "svc-operator: PROJECT_ADMIN, reader",
            "svc-operator: PROJECT_ADMIN, svc-rotated: PROJECT_ADMIN, reader",
        );
    let mut env = Env::new(&seed).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BINDING);
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;

    env.sim.simulator().add_token("svc-rotated", "BBDC-rotated-token").expect("token");
    env.patch::<Secret>("bitbucket-token", json!({"stringData": {"token": "BBDC-rotated-token"}})).await;
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the new identity", |o| {
        o["status"]["authenticatedAs"] == "svc-rotated"
    })
    .await;
    env.sim.simulator().revoke_token(super_token());
    env.sim.simulator().clear_requests();
    // A change to the binding makes it talk to Bitbucket again: with the new token only.
    env.patch::<ProjectBinding>("payments", json!({"spec": {"webhooks": [{"name": "ci", "url": "https://ci.example.com/v2", "events": ["repo:refs_changed"]}]}}))
        .await;
    env.wait("projectbindings", "team-a", "payments", "the updated webhook", |o| {
        o["status"]["observedGeneration"] == 2 && reason(o) == "Bound"
    })
    .await;
    let log = env.log();
    assert!(!log.is_empty());
    assert!(log.iter().all(|r| r.user.as_deref() == Some("svc-rotated")), "{log:#?}");
    let hooks = env.sim.simulator().webhooks("PAY", "payments-api").expect("repository");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["url"], "https://ci.example.com/v2");
    env.shutdown().await;
}

fn super_token() -> &'static str {
    "BBDC-operator-token"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_problems_stall_with_a_reason_and_heal_when_fixed() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    // No Secret at all.
    env.apply(&CONFIGURATION[CONFIGURATION.find("---").map(|i| i + 4).unwrap_or(0)..]);
    let missing = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "SecretNotFound").await;
    assert!(message(&missing).contains("bitbucket-token"), "{}", message(&missing));
    assert_eq!(env.sim.simulator().request_count(), 0, "nothing reaches Bitbucket without a credential");

    // The Secret without the label: still refused.
    env.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: bitbucket-token}\nstringData: {other: x}\n");
    env.patch::<BitbucketConfiguration>("bitbucket", json!({"spec": {"resyncInterval": "31s"}})).await;
    let unlabelled = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "SecretNotLabelled").await;
    assert!(message(&unlabelled).contains("bitbucket.integrations.dev/credential"));

    // Labelled, but the key is missing.
    env.patch::<Secret>(
        "bitbucket-token",
        json!({"metadata": {"labels": {"bitbucket.integrations.dev/credential": "true"}}}),
    )
    .await;
    let keyless = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "SecretKeyMissing").await;
    assert!(message(&keyless).contains("token"));
    let stalled =
        keyless["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Stalled")).cloned();
    assert_eq!(stalled.map(|c| c["status"].clone()), Some(json!("True")));

    // Fixed: Ready without a restart.
    env.patch::<Secret>("bitbucket-token", json!({"stringData": {"token": super_token()}})).await;
    env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    let reasons = env.event_reasons("BitbucketConfiguration", "bitbucket");
    for expected in ["SecretNotFound", "SecretNotLabelled", "SecretKeyMissing", "Connected"] {
        assert!(reasons.iter().any(|r| r == expected), "{expected} missing from {reasons:?}");
    }
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_credential_is_not_sent_again_until_the_secret_changes() {
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(Duration::from_millis(300));
    env.start_operator();
    env.apply(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: svc-password
  labels: {bitbucket.integrations.dev/credential: "true"}
stringData: {username: svc-operator, password: Xq7-not-it}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: BitbucketConfiguration
metadata: {name: bitbucket}
spec:
  url: {URL}
  allowInsecureHttp: true
  auth: {basic: {secretRef: {name: svc-password}}}
"#,
    );
    env.apply(BINDING);
    let refused = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "BadCredentials").await;
    assert!(!message(&refused).contains("Xq7"));
    env.wait_ready("projectbindings", "payments", "False", "ConfigurationNotReady").await;
    // Many resyncs later, still one failed login: far below the CAPTCHA threshold.
    let before = env.sim.simulator().request_count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.sim.simulator().request_count(), before, "the rejected password was sent again");
    assert_eq!(env.sim.simulator().failed_login_count("svc-operator"), 1);

    env.patch::<Secret>("svc-password", json!({"stringData": {"password": "correct horse"}})).await;
    env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_is_a_bad_credential_and_stops_calls() {
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(Duration::from_millis(300));
    env.start_operator();
    env.apply(&CONFIGURATION.replace("BBDC-operator-token", "BBDC-unknown"));
    env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "BadCredentials").await;
    let before = env.sim.simulator().request_count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.sim.simulator().request_count(), before);
    env.shutdown().await;
}

/// A seed with a project of `n` repositories, `repo-000` ...
fn many(n: usize) -> String {
    let mut seed = SEED.to_owned();
    seed.push_str("  - key: BIG\n    name: Big\n    permissions: {svc-operator: PROJECT_ADMIN}\n    repositories:\n");
    for i in 0..n {
        seed.push_str(&format!("      - slug: repo-{i:03}\n"));
    }
    seed
}

const BIG: &str = r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {name: big}
spec:
  configurationRef: {name: bitbucket}
  projectKey: BIG
  repositories: {}
  webhooks:
    - name: ci
      url: https://ci.example.com/hook
      events: ["repo:refs_changed"]
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: big-sonarqube}
spec:
  bindingRef: {name: big}
"#;

/// Webhook creations Bitbucket accepted.
fn created_webhooks(env: &Env) -> usize {
    env.log().iter().filter(|r| r.method == "POST" && r.path.ends_with("/webhooks") && r.status / 100 == 2).count()
}

/// Every repository of BIG has exactly one webhook `ci` and the SonarQube check.
fn assert_big_converged(env: &Env, n: usize) {
    for i in 0..n {
        let slug = format!("repo-{i:03}");
        let hooks = env.sim.simulator().webhooks("BIG", &slug).expect("repository");
        assert_eq!(hooks.len(), 1, "{slug}: {hooks:#?}");
        let check = env.sim.simulator().merge_check("BIG", &slug, SONAR).expect("repository");
        assert!(check.is_some(), "{slug} has no check");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_waited_out_and_converges() {
    const N: usize = 30;
    let mut env = Env::new(&many(N)).await;
    env.sim.simulator().set_rate_limit(Some(RateLimit { capacity: 10, fill_rate: 40 }));
    env.start_operator();
    env.apply(
        &CONFIGURATION.replace("auth: {token:", "rateLimit: {requestsPerSecond: 1000, burst: 1000}\n  auth: {token:"),
    );
    env.apply(BIG);
    env.wait_ready("projectbindings", "big", "True", "Bound").await;
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    assert_big_converged(&env, N);
    let throttled = env.log().iter().filter(|r| r.status == 429).count();
    assert!(throttled > 0, "the storm never happened");
    assert_eq!(created_webhooks(&env), N, "a webhook was created twice");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_own_rate_limit_is_never_exceeded() {
    const N: usize = 12;
    let mut env = Env::new(&many(N)).await;
    env.start_operator();
    let started = tokio::time::Instant::now();
    env.apply(&CONFIGURATION.replace("auth: {token:", "rateLimit: {requestsPerSecond: 20, burst: 5}\n  auth: {token:"));
    env.apply(BIG);
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    let elapsed = started.elapsed().as_secs_f64();
    let requests = env.sim.simulator().request_count() as f64;
    // A bucket of 5 refilled at 20/s allows at most 5 + 20 * t requests in t seconds.
    assert!(requests <= 5.0 + 20.0 * elapsed + 1.0, "{requests} requests in {elapsed:.2}s");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_dropped_connections_converge_without_duplicates() {
    const N: usize = 15;
    let mut env = Env::new(&many(N)).await;
    env.sim.simulator().set_fault_seed(7);
    env.sim.simulator().set_faults(Faults { latency: Duration::ZERO, error_rate: 0.2, drop_rate: 0.1 });
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BIG);
    // Let the faults bite, then heal the server.
    env.eventually("some failed requests", || {
        env.log().iter().filter(|r| r.status == 500 || r.status == 0).count() > 5
    })
    .await;
    env.sim.simulator().set_faults(Faults::default());
    env.wait_ready("projectbindings", "big", "True", "Bound").await;
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    assert_big_converged(&env, N);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_deleted_or_added_in_bitbucket_are_followed() {
    let mut env = Env::new(&many(3)).await;
    env.options.max_resync = Some(Duration::from_millis(500));
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BIG);
    env.apply(BINDING);
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;

    // A new repository in a selected project is bound and checked on the next resync.
    env.sim.simulator().create_repository("BIG", "repo-new").expect("create");
    env.wait("requiredreports", "team-a", "big-sonarqube", "the new repository checked", |o| {
        o["status"]["repositories"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["slug"] == "repo-new" && r["state"] == "InSync"))
    })
    .await;
    assert!(env.sim.simulator().merge_check("BIG", "repo-new", SONAR).expect("repository").is_some());
    assert_eq!(env.sim.simulator().webhooks("BIG", "repo-new").expect("repository").len(), 1);

    // A deleted one leaves the selection; a deleted single repository stalls its binding.
    env.sim.simulator().delete_repository("BIG", "repo-001").expect("delete");
    env.sim.simulator().delete_repository("PAY", "payments-api").expect("delete");
    env.wait("projectbindings", "team-a", "big", "the deleted repository gone", |o| {
        o["status"]["repositories"].as_array().is_some_and(|r| !r.iter().any(|r| r["slug"] == "repo-001"))
            && o["status"]["repositoryCount"] == 3
    })
    .await;
    let gone = env.wait_ready("projectbindings", "payments", "False", "RepositoryNotFound").await;
    assert!(message(&gone).contains("payments-api"));
    env.wait("requiredreports", "team-a", "big-sonarqube", "the deleted repository gone", |o| {
        o["status"]["repositoryCount"] == 3 && reason(o) == "InSync"
    })
    .await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_corrected_within_a_resync_or_only_reported_when_observing() {
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(Duration::from_millis(500));
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BINDING);
    env.apply(REPORT);
    env.apply(
        r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: lint-observed}
spec:
  bindingRef: {name: payments}
  reportKey: com.example.lint
  managementPolicy: Observe
"#,
    );
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    let observed = env.wait_ready("requiredreports", "lint-observed", "False", "Drifted").await;
    assert!(message(&observed).contains("Observe"), "{}", message(&observed));
    assert!(env.sim.simulator().merge_check("PAY", "payments-api", "com.example.lint").expect("repo").is_none());

    // Someone removes the managed check and weakens... the observed one appears by hand.
    env.sim.simulator().delete_merge_check("PAY", "payments-api", SONAR).expect("delete");
    env.sim
        .simulator()
        .set_merge_check(
            "PAY",
            "payments-api",
            json!({"reportKey": "com.example.lint", "mustPass": true, "minSeverity": "LOW"}),
        )
        .expect("set");
    env.eventually("the removed check restored", || {
        env.sim.simulator().merge_check("PAY", "payments-api", SONAR).ok().flatten().is_some()
    })
    .await;
    env.eventually("DriftCorrected recorded", || {
        env.event_reasons("RequiredReport", "sonarqube").iter().any(|r| r == "DriftCorrected")
    })
    .await;
    env.wait_ready("requiredreports", "lint-observed", "True", "InSync").await;
    assert!(env.event_reasons("RequiredReport", "lint-observed").iter().any(|r| r == "DriftDetected"));

    // Observing never writes.
    env.sim
        .simulator()
        .set_merge_check("PAY", "payments-api", json!({"reportKey": "com.example.lint", "mustPass": false}))
        .expect("set");
    env.wait_ready("requiredreports", "lint-observed", "False", "Drifted").await;
    let writes = env.log().iter().filter(|r| r.path.contains("com.example.lint") && r.method != "GET").count();
    assert_eq!(writes, 0);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_removes_what_was_created_in_order_and_honours_orphan() {
    let seed = SEED.replace(
        "      - slug: payments-api\n",
        "      - slug: payments-api\n        webhooks:\n          - {name: someone-elses, url: \"https://other.example.com\", events: [\"pr:opened\"]}\n",
    );
    let mut env = Env::new(&seed).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BINDING);
    env.apply(REPORT);
    env.apply(
        r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: kept}
spec:
  bindingRef: {name: payments}
  reportKey: com.example.kept
  deletionPolicy: Orphan
"#,
    );
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    env.wait_ready("requiredreports", "kept", "True", "InSync").await;
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;

    // The configuration waits for its binding, the binding for its reports.
    env.delete::<BitbucketConfiguration>("bitbucket").await;
    env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "InUse").await;
    env.delete::<ProjectBinding>("payments").await;
    env.wait("projectbindings", "team-a", "payments", "waiting for its reports", |o| {
        reason(o) == "Deleting" && message(o).contains("sonarqube")
    })
    .await;
    assert_eq!(env.sim.simulator().webhooks("PAY", "payments-api").expect("repo").len(), 2, "nothing removed yet");

    env.delete::<RequiredReport>("sonarqube").await;
    env.delete::<RequiredReport>("kept").await;
    env.wait_gone("requiredreports", "sonarqube").await;
    env.wait_gone("requiredreports", "kept").await;
    env.wait_gone("projectbindings", "payments").await;
    env.wait_gone("bitbucketconfigurations", "bitbucket").await;

    assert!(env.sim.simulator().merge_check("PAY", "payments-api", SONAR).expect("repo").is_none(), "Delete policy");
    assert!(
        env.sim.simulator().merge_check("PAY", "payments-api", "com.example.kept").expect("repo").is_some(),
        "Orphan"
    );
    let hooks = env.sim.simulator().webhooks("PAY", "payments-api").expect("repo");
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert_eq!(hooks[0]["name"], "someone-elses", "a webhook the binding did not declare stays");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_halfway_creates_nothing_twice() {
    const N: usize = 40;
    let mut env = Env::new(&many(N)).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BIG);
    env.eventually("some webhooks created", || {
        env.requests_matching("POST /rest/api/1.0/projects/{key}/repos/{slug}/webhooks") >= 5
    })
    .await;
    env.kill_operator().await;
    env.start_operator();
    env.wait_ready("projectbindings", "big", "True", "Bound").await;
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    assert_big_converged(&env, N);
    assert_eq!(created_webhooks(&env), N, "a webhook was created twice");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_merge_check_api_stalls_with_the_manual_steps() {
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(Duration::from_millis(500));
    env.sim.simulator().set_required_reports_supported(false);
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BINDING);
    env.apply(REPORT);
    let stalled = env.wait_ready("requiredreports", "sonarqube", "False", "UnsupportedServer").await;
    assert!(message(&stalled).contains("Code Insights"), "{}", message(&stalled));
    // No retry loop: one read per resync at most.
    let before = env.requests_matching("merge-checks");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = env.requests_matching("merge-checks") - before;
    assert!(during <= 5, "{during} merge-check requests in 2 s with a 0.5 s resync");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_configuration_serves_allowed_namespaces_and_a_monorepo_gets_its_key() {
    let seed = SEED.replace("      - slug: payments-api\n", "      - slug: payments-api\n      - slug: storefront\n");
    let mut env = Env::new(&seed).await;
    env.start_operator();
    env.apply(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: shared-token
  namespace: bitbucket-operator
  labels: {bitbucket.integrations.dev/credential: "true"}
stringData: {token: BBDC-operator-token}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ClusterBitbucketConfiguration
metadata: {name: shared}
spec:
  url: {URL}
  allowInsecureHttp: true
  auth: {token: {secretRef: {name: shared-token}}}
  allowedNamespaces: {names: [team-a]}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {name: storefront}
spec:
  configurationRef: {kind: ClusterBitbucketConfiguration, name: shared}
  projectKey: PAY
  repositorySlug: storefront
  monorepo: true
  sonarqube: {projectKey: storefront-checkout}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: storefront-sonarqube}
spec:
  bindingRef: {name: storefront}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {name: elsewhere, namespace: team-b}
spec:
  configurationRef: {kind: ClusterBitbucketConfiguration, name: shared}
  projectKey: PAY
  repositorySlug: payments-api
"#,
    );
    env.wait("clusterbitbucketconfigurations", "", "shared", "connected", |o| reason(o) == "Connected").await;
    env.wait_ready("projectbindings", "storefront", "True", "Bound").await;
    let report = env.wait_ready("requiredreports", "storefront-sonarqube", "True", "InSync").await;
    let key = "com.sonarsource.sonarqube_storefront-checkout";
    assert_eq!(report["status"]["reportKey"], key);
    assert!(env.sim.simulator().merge_check("PAY", "storefront", key).expect("repo").is_some());
    assert!(env.sim.simulator().merge_check("PAY", "storefront", SONAR).expect("repo").is_none());
    let refused =
        env.wait("projectbindings", "team-b", "elsewhere", "refused", |o| reason(o) == "NamespaceNotAllowed").await;
    assert!(message(&refused).contains("allowedNamespaces"), "{}", message(&refused));
    env.shutdown().await;
}

/// The figures of issue 5: the Bitbucket requests of one cold reconcile and of one no-op resync
/// for a binding of N repositories with one webhook and one required report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_figures_of_a_cold_reconcile_and_a_no_op_resync() {
    const N: usize = 20;
    let mut env = Env::new(&many(N)).await;
    env.options.max_resync = Some(Duration::from_secs(2));
    env.start_operator();
    env.apply(
        &CONFIGURATION.replace("auth: {token:", "rateLimit: {requestsPerSecond: 1000, burst: 1000}\n  auth: {token:"),
    );
    env.apply(BIG);
    env.wait_ready("projectbindings", "big", "True", "Bound").await;
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    let cold = env.log();
    let cold_writes = cold.iter().filter(|r| r.method != "GET").count();
    let cold_reads = cold.len() - cold_writes;

    // Every object resyncs every 1.8-2.2 s; count exactly one round of each.
    env.sim.simulator().clear_requests();
    env.eventually("one resync of the binding and the report", || {
        let log = env.log();
        let hooks = log
            .iter()
            .filter(|r| r.path.starts_with("/rest/api/1.0/projects/BIG/repos/") && r.path.ends_with("/webhooks"))
            .count();
        let checks = log.iter().filter(|r| r.path.contains("merge-checks")).count();
        hooks >= N && checks >= N
    })
    .await;
    let resync = env.log();
    let writes = resync.iter().filter(|r| r.method != "GET").count();
    let reads = resync.len() - writes;
    eprintln!(
        "binding of {N} repositories with 1 webhook + 1 required report: cold reconcile {} requests ({cold_reads} reads, {cold_writes} writes); no-op resync {reads} reads, {writes} writes",
        cold.len()
    );
    assert_eq!(cold_writes, 2 * N, "one webhook and one check created per repository");
    assert_eq!(writes, 0, "a resync where nothing changed writes nothing: {resync:#?}");
    // Per repository one webhook list and one check read; plus the repository list and the
    // configuration's connection check (at most 4 requests), each at most once more if a second
    // resync of that object started during the count.
    assert!(reads <= 2 * (2 * N + 1 + 4), "{reads} reads");
    let per_repository = resync.iter().filter(|r| r.path.ends_with("/repos/repo-000/webhooks")).count();
    assert!(per_repository <= 2, "repo-000's webhooks read {per_repository} times in one resync");
    env.shutdown().await;
}
