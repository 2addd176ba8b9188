//! SonarQubeConfiguration: the login proof against the SonarQube simulator, what the status
//! reports of each edition, a rejected token, a Secret without consent, and token rotation. The
//! `sonarqube` block of a Bitbucket configuration: its DevOps Platform setting created, changed,
//! validated, released and removed.

use bitbucket_operator::api::BitbucketConfiguration;
use bitbucket_operator::simulator::sonarqube::{RunningSonarQube, SonarQubeSimulator, SonarSeed};
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

use std::time::Duration;

use crate::harness::{BINDING, CONFIGURATION, Env, OPERATOR_TOKEN, SEED, is_true, message, reason};

pub(super) const TOKEN: &str = "squ_operator-token";

pub(super) fn seed(edition: &str, version: &str) -> SonarSeed {
    SonarSeed::from_yaml(&format!(
        "edition: {edition}\nversion: \"{version}\"\nusers:\n  - login: svc-operator\n    name: Bitbucket operator\n    admin: true\n    createProjects: true\n    tokens:\n      - token: {TOKEN}\n  - login: analyst\n    name: Analyst\n    tokens:\n      - token: squ_no-admin\nprojects:\n  - key: payments\n"
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
            o["status"]["sonarqube"]["lastValidatedTime"].is_string() && reason(o) == "Connected"
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

/// The SonarQube requests to an endpoint (`alm_settings/validate`, say).
fn calls(sonar: &RunningSonarQube, endpoint: &str) -> u64 {
    sonar.simulator().request_counts().iter().filter(|(k, _)| k.ends_with(endpoint)).map(|(_, n)| n).sum()
}

/// The setting SonarQube holds under `key`, as its list shows it.
fn setting(sonar: &RunningSonarQube, key: &str) -> Option<serde_json::Value> {
    sonar.simulator().alm_settings_json().as_array()?.iter().find(|s| s["key"] == key).cloned()
}

/// Applies the SonarQubeConfiguration and an integrated Bitbucket configuration, and waits for
/// the setting to be recorded under `key`.
async fn integrated(env: &Env, sonar: &RunningSonarQube, key: &str) -> serde_json::Value {
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    env.apply(&integrated_configuration(None));
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the setting recorded and validated", |o| {
        o["status"]["sonarqube"]["almSettingKey"] == key
            && o["status"]["sonarqube"]["lastValidatedTime"].is_string()
            && reason(o) == "Connected"
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_block_leaves_the_setting_and_its_bindings_in_sonarqube() {
    let sonar = sonarqube("enterprise", "2026.3.1.123439").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    integrated(&env, &sonar, "bitbucket").await;
    sonar.simulator().set_binding("payments", "bitbucket", "PAY", "payments-api", false).expect("binding");

    env.patch::<BitbucketConfiguration>("bitbucket", json!({"spec": {"sonarqube": null}})).await;
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the record cleared", |o| {
        o["status"]["sonarqube"].is_null()
            && o["status"]["observedGeneration"] == o["metadata"]["generation"]
            && reason(o) == "Connected"
    })
    .await;
    env.eventually("the Event about the released setting", || {
        env.has_event("BitbucketConfiguration", "bitbucket", "SonarQubeSettingReleased")
    })
    .await;
    let notes = env.event_notes("BitbucketConfiguration", "bitbucket", "SonarQubeSettingReleased");
    assert!(
        notes.iter().any(|n| n.contains("setting bitbucket; it stays in SonarQube with its bindings")
            && n.contains("deletionPolicy: Delete")),
        "{notes:?}"
    );
    assert!(setting(&sonar, "bitbucket").is_some(), "the setting was removed with the block");
    assert!(sonar.simulator().binding("payments").is_some(), "the project's binding was dropped");

    // Without a record, deleting the configuration leaves the setting alone.
    env.delete::<BitbucketConfiguration>("bitbucket").await;
    env.wait_gone("bitbucketconfigurations", "bitbucket").await;
    assert_eq!(calls(&sonar, "alm_settings/delete"), 0, "{:?}", sonar.simulator().request_counts());
    assert!(sonar.simulator().alm_setting_pat("bitbucket").is_some(), "the released setting was deleted");
    assert!(sonar.simulator().binding("payments").is_some(), "the project's binding was dropped");
    let released = env.event_notes("BitbucketConfiguration", "bitbucket", "SonarQubeSettingReleased");
    assert_eq!(released.len(), 1, "the release is said once: {released:?}");
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_bitbucket_url_carries_the_token_and_a_new_key_renames_with_the_bindings() {
    let sonar = sonarqube("enterprise", "2026.3.1.123439").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    let object = integrated(&env, &sonar, "bitbucket").await;
    let first_url = object["status"]["sonarqube"]["url"].as_str().expect("url").to_owned();

    // The same Bitbucket under another name, as SonarQube might have to reach it.
    let other_url = first_url.replace("127.0.0.1", "localhost");
    assert_ne!(other_url, first_url);
    sonar.simulator().clear_requests();
    env.patch::<BitbucketConfiguration>(
        "bitbucket",
        json!({"spec": {"sonarqube": {"bitbucketUrl": format!("{other_url}/")}}}),
    )
    .await;
    let object = env
        .wait("bitbucketconfigurations", "team-a", "bitbucket", "the new URL recorded", |o| {
            o["status"]["sonarqube"]["url"] == other_url.as_str()
                && o["status"]["sonarqube"]["lastValidatedTime"].is_string()
                && reason(o) == "Connected"
        })
        .await;
    assert_eq!(setting(&sonar, "bitbucket").expect("the setting")["url"], other_url.as_str());
    assert_eq!(sonar.simulator().alm_setting_pat("bitbucket").as_deref(), Some(OPERATOR_TOKEN));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(calls(&sonar, "alm_settings/update_bitbucket"), 1, "{:?}", sonar.simulator().request_counts());
    assert_eq!(calls(&sonar, "alm_settings/create_bitbucket"), 0);
    assert!(calls(&sonar, "alm_settings/validate") >= 1, "the new URL was not validated");
    assert!(!serde_json::to_string(&object).expect("JSON").contains(OPERATOR_TOKEN));

    // A new key renames the setting in place: a binding made to the old key stays.
    sonar.simulator().set_binding("payments", "bitbucket", "PAY", "payments-api", false).expect("binding");
    sonar.simulator().clear_requests();
    env.patch::<BitbucketConfiguration>("bitbucket", json!({"spec": {"sonarqube": {"almSettingKey": "bitbucket-dc"}}}))
        .await;
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the new key recorded", |o| {
        o["status"]["sonarqube"]["almSettingKey"] == "bitbucket-dc" && reason(o) == "Connected"
    })
    .await;
    assert!(setting(&sonar, "bitbucket").is_none(), "the old key is still there");
    assert_eq!(setting(&sonar, "bitbucket-dc").expect("the renamed setting")["bindings"], 1);
    let binding = sonar.simulator().binding("payments").expect("the binding survived the rename");
    assert_eq!(binding["key"], "bitbucket-dc", "{binding}");
    let counts = sonar.simulator().request_counts();
    assert_eq!(calls(&sonar, "alm_settings/update_bitbucket"), 1, "{counts:?}");
    assert_eq!(calls(&sonar, "alm_settings/create_bitbucket") + calls(&sonar, "alm_settings/delete"), 0, "{counts:?}");
    let notes = env.event_notes("BitbucketConfiguration", "bitbucket", "SonarQubeSettingUpdated");
    assert!(notes.iter().any(|n| n.contains("bitbucket-dc") && n.contains("key")), "{notes:?}");
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_bitbucket_refuses_stalls_without_a_loop_until_the_secret_is_fixed() {
    let sonar = sonarqube("enterprise", "2026.3.1.123439").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    // The token SonarQube keeps is one the Bitbucket simulator does not know.
    let manifest = integrated_configuration(None);
    let (configuration, secret) = manifest.rsplit_once("\n---\n").expect("two parts");
    env.apply(&format!("{configuration}\n---\n{}", secret.replace(OPERATOR_TOKEN, "BBDC-unknown")));
    let object = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "ValidationFailed").await;
    assert!(is_true(&object, "Stalled"), "{object:#}");
    let text = message(&object);
    assert!(text.contains("refused the personal access token"), "{text}");
    assert!(text.contains("team-a/sonarqube-bitbucket-token"), "the message names the Secret to fix: {text}");
    // The push is recorded, not yet validated.
    let record = &object["status"]["sonarqube"];
    assert_eq!(record["tokenSecret"]["name"], "sonarqube-bitbucket-token", "{record}");
    assert!(record["lastValidatedTime"].is_null(), "{record}");

    // No retry loop: a stalled validation is not asked again and again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let validations = calls(&sonar, "alm_settings/validate");
    assert!((1..=3).contains(&validations), "{validations} validations in a few seconds");
    // A restart validates again but does not push the same token again.
    env.stop_operator().await;
    sonar.simulator().clear_requests();
    env.start_operator();
    env.eventually("validated again after the restart", || calls(&sonar, "alm_settings/validate") >= 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = sonar.simulator().request_counts();
    let writes = calls(&sonar, "alm_settings/update_bitbucket") + calls(&sonar, "alm_settings/create_bitbucket");
    assert_eq!(writes, 0, "the token the record says was pushed went again: {counts:?}");
    env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "ValidationFailed").await;

    // A fixed Secret is pushed and validated.
    env.bitbucket().add_token("svc-operator", "BBDC-for-sonarqube").expect("token");
    sonar.simulator().clear_requests();
    env.patch::<Secret>("sonarqube-bitbucket-token", json!({"stringData": {"token": "BBDC-for-sonarqube"}})).await;
    let object = env
        .wait("bitbucketconfigurations", "team-a", "bitbucket", "Ready after the fix", |o| {
            reason(o) == "Connected" && o["status"]["sonarqube"]["lastValidatedTime"].is_string()
        })
        .await;
    assert_eq!(sonar.simulator().alm_setting_pat("bitbucket").as_deref(), Some("BBDC-for-sonarqube"));
    assert_eq!(calls(&sonar, "alm_settings/update_bitbucket"), 1, "{:?}", sonar.simulator().request_counts());
    let shown = format!(
        "{}{}",
        serde_json::to_string(&object).expect("JSON"),
        serde_json::to_string(&env.events("BitbucketConfiguration", "bitbucket")).expect("JSON")
    );
    assert!(!shown.contains("BBDC-unknown") && !shown.contains("BBDC-for-sonarqube"), "a token was shown");
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sonarqube_configuration_is_named_with_its_reason_until_it_is_fixed() {
    let sonar = sonarqube("enterprise", "2026.3.1.123439").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), "squ_unknown", true));
    env.apply(&integrated_configuration(None));
    // Once the SonarQubeConfiguration has its own verdict, this one carries it.
    let object = env
        .wait("bitbucketconfigurations", "team-a", "bitbucket", "the SonarQubeConfiguration's reason", |o| {
            reason(o) == "SonarQubeNotReady" && message(o).contains("BadCredentials")
        })
        .await;
    let text = message(&object);
    assert!(
        text.contains("SonarQubeConfiguration team-a/sonarqube is not Ready") && text.contains("fix it there"),
        "{text}"
    );
    assert!(is_true(&object, "Stalled"), "a SonarQubeConfiguration that needs a fix is not waited for: {object:#}");
    env.patch::<Secret>("sonarqube-token", json!({"stringData": {"token": TOKEN}})).await;
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the setting kept once SonarQube is Ready", |o| {
        reason(o) == "Connected" && o["status"]["sonarqube"]["almSettingKey"] == "bitbucket"
    })
    .await;
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_that_stops_short_of_sonarqube_keeps_the_record_so_deletion_still_removes_the_setting() {
    let sonar = sonarqube("enterprise", "2026.3.1.123439").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    integrated(&env, &sonar, "bitbucket").await;
    // A round that stops before the SonarQube side (the credential's Secret is gone).
    env.delete::<Secret>("bitbucket-token").await;
    let object = env
        .wait("bitbucketconfigurations", "team-a", "bitbucket", "Ready=False without the Secret", |o| {
            crate::harness::ready(o).is_some_and(|c| c["status"] == "False")
        })
        .await;
    assert_eq!(object["status"]["sonarqube"]["almSettingKey"], "bitbucket", "the record was lost");
    env.delete::<BitbucketConfiguration>("bitbucket").await;
    env.wait_gone("bitbucketconfigurations", "bitbucket").await;
    assert!(setting(&sonar, "bitbucket").is_none(), "the setting outlived its configuration");
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_to_another_sonarqube_leaves_the_first_setting_and_starts_afresh() {
    let (first, second) =
        (sonarqube("enterprise", "2026.3.1.123439").await, sonarqube("developer", "10.7.0.96327").await);
    let mut env = Env::new(SEED).await;
    env.start_operator();
    integrated(&env, &first, "bitbucket").await;
    env.apply(&format!(
        "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: SonarQubeConfiguration\nmetadata:\n  name: sonarqube-b\nspec:\n  url: {}\n  allowInsecureHttp: true\n  auth:\n    token:\n      secretRef: {{name: sonarqube-token}}\n",
        second.base_url()
    ));
    env.wait_ready("sonarqubeconfigurations", "sonarqube-b", "True", "Connected").await;
    env.patch::<BitbucketConfiguration>(
        "bitbucket",
        json!({"spec": {"sonarqube": {"configurationRef": {"name": "sonarqube-b"}}}}),
    )
    .await;
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the record in the second SonarQube", |o| {
        o["status"]["sonarqube"]["configuration"] == "team-a/sonarqube-b" && reason(o) == "Connected"
    })
    .await;
    assert_eq!(second.simulator().alm_setting_pat("bitbucket").as_deref(), Some(OPERATOR_TOKEN));
    assert!(first.simulator().alm_setting_pat("bitbucket").is_some(), "the first SonarQube's setting was removed");
    // Not a setting "deleted in SonarQube": a new one where none was.
    assert!(!env.has_event("BitbucketConfiguration", "bitbucket", "SonarQubeSettingRecreated"));
    env.eventually("the Event about the setting left behind", || {
        env.has_event("BitbucketConfiguration", "bitbucket", "SonarQubeSettingReleased")
    })
    .await;
    let notes = env.event_notes("BitbucketConfiguration", "bitbucket", "SonarQubeSettingReleased");
    assert!(notes.iter().any(|n| n.contains("team-a/sonarqube ") && n.contains("configurationRef")), "{notes:?}");
    // Deletion removes only the setting the record names.
    env.delete::<BitbucketConfiguration>("bitbucket").await;
    env.wait_gone("bitbucketconfigurations", "bitbucket").await;
    assert!(second.simulator().alm_setting_pat("bitbucket").is_none(), "the kept setting outlived its configuration");
    assert!(first.simulator().alm_setting_pat("bitbucket").is_some(), "the released setting was removed");
    env.shutdown().await;
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sonarqube_is_never_given_a_token_for_a_bitbucket_host_off_the_allow_list() {
    let sonar = sonarqube("enterprise", "2026.3.1.123439").await;
    let mut env = Env::new(SEED).await;
    // The simulators listen on 127.0.0.1; SonarQube would be told to reach Bitbucket elsewhere.
    env.options.allowed_hosts = vec!["127.0.0.1".into()];
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    let elsewhere = integrated_configuration(None).replace(
        "tokenSecretRef: {name: sonarqube-bitbucket-token}",
        "tokenSecretRef: {name: sonarqube-bitbucket-token}\n    bitbucketUrl: https://bitbucket.attacker.example",
    );
    env.apply(&elsewhere);
    let object = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "SonarQubeIntegrationFailed").await;
    assert!(message(&object).contains("bitbucket.attacker.example"), "{}", message(&object));
    assert!(message(&object).contains("allowed Bitbucket hosts"), "{}", message(&object));
    assert!(sonar.simulator().alm_setting_pat("bitbucket").is_none(), "the token was handed to SonarQube");
    let writes = sonar.simulator().requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(writes, 0, "SonarQube was written to");
    env.shutdown().await;
    sonar.shutdown().await;
}
