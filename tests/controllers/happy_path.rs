//! Every kind converges from nothing; cluster-wide configurations admit only their namespaces; a
//! monorepo's report key; webhooks and repositories that leave a binding.

use std::{collections::BTreeSet, time::Duration};

use bitbucket_operator::api::{ClusterBitbucketConfiguration, ProjectBinding};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use crate::{
    harness::{
        CONFIGURATION, Env, MERGE_CHECK, OPERATOR_TOKEN, SEED, SONAR, WEBHOOKS, is_true, message, on_repository,
        reason, recorded_slugs,
    },
    support::fixtures::platform,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_proves_its_login_and_reports_the_server() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    let configuration = env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    let status = &configuration["status"];
    let server = env.bitbucket().state_json()["server"].clone();
    assert_eq!(status["server"]["version"], server["version"]);
    assert_eq!(status["server"]["buildNumber"], server["buildNumber"]);
    assert_eq!(status["server"]["displayName"], server["displayName"]);
    assert_eq!(status["authenticatedAs"], "svc-operator");
    let capabilities: Vec<&str> =
        status["capabilities"].as_array().map(|c| c.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert!(capabilities.contains(&"webhooks") && capabilities.contains(&"codeInsights"), "{capabilities:?}");
    assert!(status["lastCheckedTime"].is_string());
    assert!(!is_true(&configuration, "Reconciling") && !is_true(&configuration, "Stalled"), "{configuration:#?}");
    let text = message(&configuration);
    assert!(text.contains("svc-operator") && !text.contains("BBDC"), "{text}");
    let finalizers = &configuration["metadata"]["finalizers"];
    assert!(finalizers.as_array().is_some_and(|f| f.iter().any(|f| f == "bitbucket.integrations.dev/cleanup")));
    assert!(env.has_event("BitbucketConfiguration", "bitbucket", "Connected"));

    // The check used the token (as svc-operator) and touched no project.
    let log = env.log();
    assert!(log.iter().any(|r| r.auth == "bearer"), "{log:#?}");
    assert!(log.iter().filter(|r| r.auth == "bearer").all(|r| r.user.as_deref() == Some("svc-operator")), "{log:#?}");
    assert!(log.iter().all(|r| !r.path.contains("/projects")), "{log:#?}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_binding_and_its_required_report_converge() {
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
    // The selection: PLAT's repositories but sandbox-* and the archived ones (excluded by default).
    let expected: Vec<Value> = env
        .repositories_in("PLAT")
        .into_iter()
        .filter(|r| !r["slug"].as_str().unwrap_or_default().starts_with("sandbox-") && r["archived"] == false)
        .collect();
    let mut expected_slugs: Vec<String> =
        expected.iter().filter_map(|r| r["slug"].as_str().map(str::to_owned)).collect();
    expected_slugs.sort();
    assert_eq!(expected_slugs.len(), 3, "the seed changed");
    let slugs = recorded_slugs(&env, &binding, "PLAT");
    assert_eq!(slugs, expected_slugs);
    assert_eq!(binding["status"]["inSyncCount"], expected.len());
    assert!(binding["status"]["needsAttention"].is_null(), "{binding:#}");
    assert_eq!(binding["status"]["repositoryCount"], expected.len());
    assert_eq!(binding["status"]["managedWebhooks"], json!(["ci"]));
    for repository in &expected {
        let slug = repository["slug"].as_str().unwrap_or_default();
        let hooks = env.bitbucket().webhooks("PLAT", slug).expect("repository");
        assert_eq!(hooks.len(), 1, "{slug}: {hooks:#?}");
        assert_eq!(hooks[0]["name"], "ci");
        assert_eq!(hooks[0]["url"], "https://ci.example.com/hook");
        let events: BTreeSet<&str> =
            hooks[0]["events"].as_array().map(|e| e.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        assert_eq!(events, BTreeSet::from(["pr:opened", "repo:refs_changed"]));
        assert_eq!(hooks[0]["active"], true);
        assert_eq!(hooks[0]["configuration"]["secret"], "hook-signing-secret");
    }
    for left_out in ["sandbox-alice", "old-deployer"] {
        assert!(env.bitbucket().webhooks("PLAT", left_out).expect("repository").is_empty(), "{left_out}");
        assert!(env.bitbucket().merge_check("PLAT", left_out, SONAR).expect("repository").is_none(), "{left_out}");
    }
    assert!(env.has_event("ProjectBinding", "platform", "WebhooksUpdated"));
    assert!(env.has_event("ProjectBinding", "platform", "Bound"));

    let report = env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    assert_eq!(report["status"]["reportKey"], SONAR);
    assert_eq!(report["status"]["repositoryCount"], expected.len());
    assert_eq!(report["status"]["inSyncCount"], expected.len());
    for slug in &slugs {
        let check = env.bitbucket().merge_check("PLAT", slug, SONAR).expect("repository");
        let check = check.unwrap_or_else(|| panic!("{slug} has no check"));
        // The defaults: must pass, no annotations of any severity.
        assert_eq!(check["mustPass"], true);
        assert_eq!(check["minSeverity"], "LOW");
    }
    assert!(env.has_event("RequiredReport", "sonarqube", "CheckCreated"));
    assert!(!is_true(&report, "Stalled") && !is_true(&report, "Reconciling"));

    // Nothing was created twice.
    assert_eq!(env.requests_to(&format!("POST {WEBHOOKS}")), expected.len() as u64);
    assert_eq!(env.requests_to(&format!("PUT {MERGE_CHECK}")), expected.len() as u64);

    // Converged, the operator is quiet until the resync (10 minutes): its own status writes and
    // Events wake the controllers, but cost no Bitbucket request.
    env.bitbucket().clear_requests();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.log(), [], "requests after converging");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_configuration_serves_allowed_namespaces_and_a_monorepo_gets_its_key() {
    let seed = SEED.replace("      - slug: payments-api\n", "      - slug: payments-api\n      - slug: storefront\n");
    let mut env = Env::new(&seed).await;
    env.start_operator();
    const SONAR_PROJECT: &str = "storefront-checkout";
    env.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: shared-token
  namespace: bitbucket-operator
  labels: {{bitbucket.integrations.dev/credential: "true"}}
stringData: {{token: {OPERATOR_TOKEN}}}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ClusterBitbucketConfiguration
metadata: {{name: shared}}
spec:
  url: {{URL}}
  allowInsecureHttp: true
  auth: {{token: {{secretRef: {{name: shared-token}}}}}}
  allowedNamespaces: {{names: [team-a]}}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {{name: storefront}}
spec:
  configurationRef: {{kind: ClusterBitbucketConfiguration, name: shared}}
  projectKey: PAY
  repositorySlug: storefront
  monorepo: true
  sonarqube: {{projectKey: {SONAR_PROJECT}}}
  webhooks:
    - name: ci
      url: https://ci.example.com/hook
      events: ["repo:refs_changed"]
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {{name: storefront-sonarqube}}
spec:
  bindingRef: {{name: storefront}}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {{name: elsewhere, namespace: team-b}}
spec:
  configurationRef: {{kind: ClusterBitbucketConfiguration, name: shared}}
  projectKey: PAY
  repositorySlug: payments-api
  webhooks:
    - name: ci
      url: https://ci.example.com/hook
      events: ["repo:refs_changed"]
"#
    ));
    let shared = env.wait_ready_in("clusterbitbucketconfigurations", "", "shared", "True", "Connected").await;
    assert_eq!(shared["status"]["authenticatedAs"], "svc-operator");
    assert!(env.event_reasons_in(None, "ClusterBitbucketConfiguration", "shared").iter().any(|r| r == "Connected"));

    let binding = env.wait_ready("projectbindings", "storefront", "True", "Bound").await;
    assert_eq!(recorded_slugs(&env, &binding, "PAY"), ["storefront"]);
    assert_eq!(env.bitbucket().webhooks("PAY", "storefront").expect("repository").len(), 1);
    let report = env.wait_ready("requiredreports", "storefront-sonarqube", "True", "InSync").await;
    let key = format!("{SONAR}_{SONAR_PROJECT}");
    assert_eq!(report["status"]["reportKey"], key.as_str());
    assert!(env.bitbucket().merge_check("PAY", "storefront", &key).expect("repository").is_some());
    assert!(env.bitbucket().merge_check("PAY", "storefront", SONAR).expect("repository").is_none());

    // team-b is not allowed: Stalled, said so, and nothing reached Bitbucket for it.
    let refused = env.wait_ready_in("projectbindings", "team-b", "elsewhere", "False", "NamespaceNotAllowed").await;
    assert!(is_true(&refused, "Stalled"), "{refused:#?}");
    assert!(message(&refused).contains("allowedNamespaces"), "{}", message(&refused));
    assert!(
        env.event_reasons_in(Some("team-b"), "ProjectBinding", "elsewhere").iter().any(|r| r == "NamespaceNotAllowed")
    );
    assert!(env.log().iter().all(|r| !r.path.contains("/repos/payments-api")), "team-b's binding reached Bitbucket");

    // Allowing it binds it, without waiting for a resync.
    env.patch_cluster::<ClusterBitbucketConfiguration>(
        "shared",
        json!({"spec": {"allowedNamespaces": {"names": ["team-a", "team-b"]}}}),
    )
    .await;
    env.wait_ready_in("projectbindings", "team-b", "elsewhere", "True", "Bound").await;
    assert_eq!(env.bitbucket().webhooks("PAY", "payments-api").expect("repository").len(), 1);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_follow_the_spec_and_their_secret_and_foreign_ones_stay() {
    let seed = SEED.replace(
        "      - slug: payments-api\n",
        "      - slug: payments-api\n        webhooks:\n          - {name: someone-elses, url: \"https://other.example.com\", events: [\"pr:opened\"]}\n",
    );
    let mut env = Env::new(&seed).await;
    env.options.max_resync = Some(Duration::from_millis(700));
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: ci-webhook
  labels: {bitbucket.integrations.dev/credential: "true"}
stringData: {secret: first-secret}
---
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
      secretRef: {name: ci-webhook}
    - name: chat
      url: https://chat.example.com/hook
      events: ["pr:opened"]
"#,
    );
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    let by_name = |env: &Env| -> Vec<(String, Value)> {
        let mut hooks: Vec<(String, Value)> = env
            .bitbucket()
            .webhooks("PAY", "payments-api")
            .expect("repository")
            .into_iter()
            .map(|h| (h["name"].as_str().unwrap_or_default().to_owned(), h))
            .collect();
        hooks.sort_by(|a, b| a.0.cmp(&b.0));
        hooks
    };
    let hooks = by_name(&env);
    let names: Vec<&str> = hooks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["chat", "ci", "someone-elses"]);
    let ci_id = hooks[1].1["id"].clone();

    // The signing Secret rotates: the webhook follows at once (the resync is not waited for).
    env.bitbucket().clear_requests();
    env.patch::<Secret>("ci-webhook", json!({"stringData": {"secret": "second-secret"}})).await;
    env.eventually("the new signing secret in Bitbucket", || {
        by_name(&env).iter().any(|(n, h)| n == "ci" && h["configuration"]["secret"] == "second-secret")
    })
    .await;
    let log = env.log();
    assert_eq!(on_repository(&log, "POST", "PAY", "payments-api", "/webhooks"), 0, "updated, not recreated: {log:#?}");

    // `chat` is no longer declared and `ci` moves: one update, one removal, the foreign one stays.
    env.bitbucket().clear_requests();
    env.patch::<ProjectBinding>(
        "payments",
        json!({"spec": {"webhooks": [{"name": "ci", "url": "https://ci.example.com/v2", "events": ["repo:refs_changed"], "secretRef": {"name": "ci-webhook"}}]}}),
    )
    .await;
    let binding = env
        .wait("projectbindings", "team-a", "payments", "the second generation bound", |o| {
            o["status"]["observedGeneration"] == 2 && reason(o) == "Bound"
        })
        .await;
    assert_eq!(binding["status"]["managedWebhooks"], json!(["ci"]));
    let hooks = by_name(&env);
    let names: Vec<&str> = hooks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ci", "someone-elses"]);
    assert_eq!(hooks[0].1["id"], ci_id, "ci was updated in place");
    assert_eq!(hooks[0].1["url"], "https://ci.example.com/v2");
    assert_eq!(hooks[0].1["configuration"]["secret"], "second-secret");
    assert_eq!(hooks[1].1["url"], "https://other.example.com");
    let log = env.log();
    assert_eq!(log.iter().filter(|r| r.method == "PUT").count(), 1, "{log:#?}");
    assert_eq!(log.iter().filter(|r| r.method == "DELETE").count(), 1, "{log:#?}");
    assert_eq!(log.iter().filter(|r| r.method == "POST").count(), 0, "{log:#?}");

    // Someone deletes the managed webhook by hand: the next resync puts it back, once.
    let id = hooks[0].1["id"].as_i64().expect("id");
    env.bitbucket().delete_webhook("PAY", "payments-api", id).expect("delete");
    env.eventually("the webhook restored", || by_name(&env).iter().any(|(n, _)| n == "ci")).await;
    let names: Vec<String> = by_name(&env).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["ci", "someone-elses"]);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_leaving_the_selection_loses_its_webhook_and_check_unless_orphaned() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(&platform(r#"["a*", "b*"]"#));
    env.apply(
        r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: lint}
spec:
  bindingRef: {name: platform}
  reportKey: com.example.lint
  deletionPolicy: Orphan
"#,
    );
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    env.wait_ready("requiredreports", "lint", "True", "InSync").await;
    assert_eq!(env.bitbucket().webhooks("PLAT", "build-tools").expect("repository").len(), 1);

    env.patch::<ProjectBinding>("platform", json!({"spec": {"repositories": {"include": ["a*"]}}})).await;
    env.wait("requiredreports", "team-a", "sonarqube", "build-tools gone", |o| {
        reason(o) == "InSync" && recorded_slugs(&env, o, "PLAT") == ["api-gateway", "auth-service"]
    })
    .await;
    env.wait("requiredreports", "team-a", "lint", "build-tools gone", |o| {
        reason(o) == "InSync" && recorded_slugs(&env, o, "PLAT") == ["api-gateway", "auth-service"]
    })
    .await;
    let binding = env.wait_ready("projectbindings", "platform", "True", "Bound").await;
    assert_eq!(recorded_slugs(&env, &binding, "PLAT"), ["api-gateway", "auth-service"]);
    assert!(env.bitbucket().webhooks("PLAT", "build-tools").expect("repository").is_empty());
    assert!(env.bitbucket().merge_check("PLAT", "build-tools", SONAR).expect("repository").is_none(), "Delete");
    assert!(env.bitbucket().merge_check("PLAT", "build-tools", "com.example.lint").expect("repository").is_some());
    assert!(env.has_event("RequiredReport", "sonarqube", "CheckRemoved"));
    assert!(!env.has_event("RequiredReport", "lint", "CheckRemoved"));
    for slug in ["api-gateway", "auth-service"] {
        assert_eq!(env.bitbucket().webhooks("PLAT", slug).expect("repository").len(), 1, "{slug}");
        assert!(env.bitbucket().merge_check("PLAT", slug, SONAR).expect("repository").is_some(), "{slug}");
    }
    env.shutdown().await;
}

/// Each change gets an Event that says what it was, also when the same kind of change happened
/// minutes before (`kubectl describe` must not show the first change's note twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_gets_an_event_note_of_its_own() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(&platform(r#"["a*"]"#));
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    let first = env.event_notes("ProjectBinding", "platform", "WebhooksUpdated");
    assert!(first.iter().any(|n| n.contains("api-gateway")), "{first:?}");

    env.patch::<ProjectBinding>("platform", json!({"spec": {"repositories": {"include": ["a*", "b*"]}}})).await;
    env.wait("requiredreports", "team-a", "sonarqube", "build-tools checked", |o| {
        recorded_slugs(&env, o, "PLAT").contains(&"build-tools".to_owned()) && reason(o) == "InSync"
    })
    .await;
    let hooks = env.event_notes("ProjectBinding", "platform", "WebhooksUpdated");
    assert!(hooks.iter().any(|n| n.contains("1 created") && n.contains("build-tools")), "{hooks:?}");
    let checks = env.event_notes("RequiredReport", "sonarqube", "CheckCreated");
    assert!(checks.iter().any(|n| n.contains("build-tools")), "{checks:?}");
    env.shutdown().await;
}
