//! SonarQubeConfiguration: the login proof against the SonarQube simulator, what the status
//! reports of each edition, a rejected token, a Secret without consent, and token rotation.

use bitbucket_operator::api::BitbucketConfiguration;
use bitbucket_operator::simulator::sonarqube::{RunningSonarQube, SonarQubeSimulator, SonarSeed};
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

use crate::harness::{BINDING, CONFIGURATION, Env, OPERATOR_TOKEN, SEED, message};

pub(super) const TOKEN: &str = "squ_operator-token";

pub(super) fn seed(edition: &str, version: &str) -> SonarSeed {
    SonarSeed::from_yaml(&format!(
        "edition: {edition}\nversion: \"{version}\"\nusers:\n  - login: svc-operator\n    name: Bitbucket operator\n    admin: true\n    createProjects: true\n    tokens:\n      - token: {TOKEN}\n  - login: analyst\n    name: Analyst\n    tokens:\n      - token: squ_no-admin\n"
    ))
    .expect("seed")
}

pub(super) async fn sonarqube(edition: &str, version: &str) -> RunningSonarQube {
    SonarQubeSimulator::new(seed(edition, version))
        .expect("simulator")
        .serve("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("serve")
}

pub(super) fn manifests(url: &str, token: &str, labelled: bool) -> String {
    let label = if labelled { "  labels: {bitbucket.integrations.dev/credential: \"true\"}\n" } else { "" };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sonarqube-token\n{label}stringData:\n  token: {token}\n---\napiVersion: bitbucket.integrations.dev/v1alpha1\nkind: SonarQubeConfiguration\nmetadata:\n  name: sonarqube\nspec:\n  url: {url}\n  allowInsecureHttp: true\n  auth:\n    token:\n      secretRef: {{name: sonarqube-token}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_is_proven_and_the_status_says_what_the_edition_can_do() {
    let sonar = sonarqube("enterprise", "2026.3.1.123439").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    let object = env.wait_ready("sonarqubeconfigurations", "sonarqube", "True", "Connected").await;
    let status = &object["status"];
    assert_eq!(status["server"]["version"], "2026.3.1.123439");
    assert_eq!(status["server"]["versionScheme"], "Server");
    assert_eq!(status["server"]["edition"], "enterprise");
    assert_eq!(status["authenticatedAs"], "svc-operator");
    let capabilities: Vec<&str> =
        status["capabilities"].as_array().expect("capabilities").iter().filter_map(|c| c.as_str()).collect();
    for wanted in ["almSettings", "projectBindings", "monorepo", "multipleBitbucketSettings", "pullRequestDecoration"] {
        assert!(capabilities.contains(&wanted), "{wanted} missing from {capabilities:?}");
    }
    // The login is proven by an admin-only read, never by the endpoint that calls anonymous
    // callers valid.
    let counts = sonar.simulator().request_counts();
    assert!(!counts.keys().any(|k| k.contains("authentication/validate")), "{counts:?}");
    assert!(counts.keys().any(|k| k.contains("list_definitions")), "{counts:?}");
    let text = serde_json::to_string(&object).expect("JSON");
    assert!(!text.contains(TOKEN), "the token reached the object");
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_build_is_reported_without_pull_request_decoration() {
    let sonar = sonarqube("community", "26.7.0.124771").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    let object = env.wait_ready("sonarqubeconfigurations", "sonarqube", "True", "Connected").await;
    assert_eq!(object["status"]["server"]["versionScheme"], "CommunityBuild");
    let capabilities = object["status"]["capabilities"].as_array().expect("capabilities").clone();
    assert!(capabilities.contains(&json!("boundProjects")), "{capabilities:?}");
    assert!(!capabilities.contains(&json!("pullRequestDecoration")), "{capabilities:?}");
    assert!(!capabilities.contains(&json!("projectBindings")), "{capabilities:?}");
    assert!(message(&object).contains("posts no Code Insights report"), "{}", message(&object));
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_stalls_until_the_secret_holds_a_good_one() {
    let sonar = sonarqube("developer", "10.7.0.96327").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), "squ_unknown", true));
    let object = env.wait_ready("sonarqubeconfigurations", "sonarqube", "False", "BadCredentials").await;
    assert!(message(&object).contains("user token"), "{}", message(&object));
    assert!(!serde_json::to_string(&object).expect("JSON").contains("squ_unknown"));
    // A token without Administer System is a permission problem, said as such.
    env.patch::<Secret>("sonarqube-token", json!({"stringData": {"token": "squ_no-admin"}})).await;
    let object = env.wait_ready("sonarqubeconfigurations", "sonarqube", "False", "PermissionDenied").await;
    assert!(message(&object).contains("Administer System"), "{}", message(&object));
    // The right token is picked up without a restart.
    env.patch::<Secret>("sonarqube-token", json!({"stringData": {"token": TOKEN}})).await;
    let object = env.wait_ready("sonarqubeconfigurations", "sonarqube", "True", "Connected").await;
    assert_eq!(object["status"]["authenticatedAs"], "svc-operator");
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_without_the_credential_label_is_never_sent() {
    let sonar = sonarqube("enterprise", "2026.3.1.123439").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, false));
    let object = env.wait_ready("sonarqubeconfigurations", "sonarqube", "False", "SecretNotLabelled").await;
    assert!(message(&object).contains("bitbucket.integrations.dev/credential"), "{}", message(&object));
    let authenticated = sonar.simulator().requests().iter().filter(|r| r.auth != "none").count();
    assert_eq!(authenticated, 0, "a request carried a token from a Secret without consent");
    env.shutdown().await;
    sonar.shutdown().await;
}

/// The Bitbucket configuration with a `sonarqube` block, and the Secret of the token SonarQube
/// keeps (here the operator's own Bitbucket token, which the Bitbucket simulator knows).
pub(super) fn integrated_configuration(key: Option<&str>) -> String {
    let key = key.map(|k| format!("\n    almSettingKey: {k}")).unwrap_or_default();
    format!(
        "{CONFIGURATION}  sonarqube:\n    configurationRef: {{name: sonarqube}}\n    tokenSecretRef: {{name: sonarqube-bitbucket-token}}{key}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: sonarqube-bitbucket-token\n  labels: {{bitbucket.integrations.dev/credential: \"true\"}}\nstringData: {{token: {OPERATOR_TOKEN}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bitbucket_configuration_keeps_sonarqubes_setting_and_pushes_a_rotated_token() {
    let sonar = sonarqube("enterprise", "2026.3.1.123439").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    env.apply(&integrated_configuration(None));
    let object = env
        .wait("bitbucketconfigurations", "team-a", "bitbucket", "the SonarQube setting recorded", |o| {
            o["status"]["sonarqube"]["lastValidatedTime"].is_string() && crate::harness::reason(o) == "Connected"
        })
        .await;
    let record = &object["status"]["sonarqube"];
    assert_eq!(record["almSettingKey"], "bitbucket", "the key defaults to the resource's name");
    assert_eq!(record["configuration"], "team-a/sonarqube");
    assert_eq!(sonar.simulator().alm_setting_pat("bitbucket").as_deref(), Some(OPERATOR_TOKEN));
    assert!(!serde_json::to_string(&object).expect("JSON").contains(OPERATOR_TOKEN), "the token reached the status");
    assert!(env.has_event("BitbucketConfiguration", "bitbucket", "SonarQubeSettingCreated"));

    // A rotated token is pushed again: SonarQube cannot give it back, so only the Secret's new
    // version tells.
    env.bitbucket().add_token("svc-operator", "BBDC-for-sonarqube").expect("token");
    env.patch::<Secret>("sonarqube-bitbucket-token", json!({"stringData": {"token": "BBDC-for-sonarqube"}})).await;
    env.eventually("the rotated token in SonarQube", || {
        sonar.simulator().alm_setting_pat("bitbucket").as_deref() == Some("BBDC-for-sonarqube")
    })
    .await;
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edition_limit_stalls_the_sonarqube_side_while_bindings_keep_working() {
    let sonar = SonarQubeSimulator::new({
        let mut seed = seed("developer", "10.7.0.96327");
        let extra = SonarSeed::from_yaml(
            "almSettings: [{key: the-other-one, alm: bitbucket, url: \"https://other.example.com\", personalAccessToken: x}]",
        )
        .expect("seed");
        seed.alm_settings = extra.alm_settings;
        seed
    })
    .expect("simulator")
    .serve("127.0.0.1:0".parse().expect("address"))
    .await
    .expect("serve");
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    env.apply(&integrated_configuration(None));
    env.apply(BINDING);
    let object = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "EditionLimit").await;
    assert!(message(&object).contains("Enterprise"), "{}", message(&object));
    // Bitbucket itself is connected: the binding's webhooks are made all the same.
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    assert!(sonar.simulator().alm_setting_pat("bitbucket").is_none());
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_configuration_removes_sonarqubes_setting_unless_orphaned() {
    let sonar = sonarqube("enterprise", "2026.3.1.123439").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    env.apply(&integrated_configuration(None));
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the setting recorded", |o| {
        o["status"]["sonarqube"]["almSettingKey"] == "bitbucket"
    })
    .await;
    assert!(sonar.simulator().alm_setting_pat("bitbucket").is_some());
    env.delete::<BitbucketConfiguration>("bitbucket").await;
    env.wait_gone("bitbucketconfigurations", "bitbucket").await;
    assert!(sonar.simulator().alm_setting_pat("bitbucket").is_none(), "the setting outlived its configuration");

    // With Orphan, the setting stays.
    let orphan = integrated_configuration(Some("kept")).replace(
        "tokenSecretRef: {name: sonarqube-bitbucket-token}",
        "tokenSecretRef: {name: sonarqube-bitbucket-token}\n    deletionPolicy: Orphan",
    );
    // Only the configuration: its Secrets are still there.
    env.apply(orphan.split("\n---\n").nth(1).expect("the configuration's document"));
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the setting recorded", |o| {
        o["status"]["sonarqube"]["almSettingKey"] == "kept"
    })
    .await;
    env.delete::<BitbucketConfiguration>("bitbucket").await;
    env.wait_gone("bitbucketconfigurations", "bitbucket").await;
    assert!(sonar.simulator().alm_setting_pat("kept").is_some(), "an orphaned setting was removed");
    env.shutdown().await;
    sonar.shutdown().await;
}
