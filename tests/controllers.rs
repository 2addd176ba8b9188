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
