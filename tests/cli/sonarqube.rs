//! `plan` and `apply` on the SonarQube side, as a user runs them: the real binary against a
//! Bitbucket simulator and a SonarQube simulator beside it, with manifests whose configuration
//! has a `sonarqube` block and whose bindings bind SonarQube projects.

use bitbucket_operator::simulator::sonarqube::{RunningSonarQube, SonarQubeSimulator, SonarSeed};
use serde_json::Value;

use crate::support::{
    fixtures::{CONFIGURATION, OPERATOR_TOKEN, READER_TOKEN, SEED},
    workspace::{Workspace, all, run},
};

/// The operator's SonarQube token.
const SONAR_TOKEN: &str = "squ_cli-test-operator-token";

/// An Enterprise SonarQube where PLAT_auth-service exists, unbound, and `shared-key` exists.
fn sonar_seed() -> String {
    sonar_seed_of("edition: enterprise")
}

fn sonar_seed_of(edition: &str) -> String {
    format!(
        "{edition}\nusers:\n  - login: svc-operator\n    name: Operator\n    admin: true\n    createProjects: true\n    tokens: [{{token: {SONAR_TOKEN}}}]\nprojects:\n  - key: PLAT_auth-service\n    name: Auth\n  - key: shared-key\n"
    )
}

async fn sonarqube() -> RunningSonarQube {
    sonarqube_of(&sonar_seed()).await
}

async fn sonarqube_of(seed: &str) -> RunningSonarQube {
    SonarQubeSimulator::new(SonarSeed::from_yaml(seed).expect("seed"))
        .expect("simulator")
        .serve("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("serve")
}

/// The configuration with a `sonarqube` block (the reader's token is the one SonarQube keeps),
/// its SonarQubeConfiguration and their Secrets.
fn configuration(sonarqube_configuration: &str) -> String {
    format!(
        r#"{CONFIGURATION}  sonarqube:
    configurationRef: {{name: {sonarqube_configuration}}}
    tokenSecretRef: {{name: sonarqube-bitbucket-token}}
---
apiVersion: v1
kind: Secret
metadata:
  name: sonarqube-bitbucket-token
  labels: {{bitbucket.integrations.dev/credential: "true"}}
stringData: {{token: {READER_TOKEN}}}
---
apiVersion: v1
kind: Secret
metadata:
  name: sonarqube-token
  labels: {{bitbucket.integrations.dev/credential: "true"}}
stringData: {{token: {SONAR_TOKEN}}}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: SonarQubeConfiguration
metadata: {{name: sonarqube}}
spec:
  url: https://sonarqube.example.com
  auth: {{token: {{secretRef: {{name: sonarqube-token}}}}}}
"#
    )
}

const PLATFORM: &str = r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {name: platform}
spec:
  configurationRef: {name: bitbucket}
  projectKey: PLAT
  repositories: {include: [api-gateway, auth-service]}
  sonarqube:
    projectKeyTemplate: "{projectKey}_{slug}"
    createProjects: true
"#;

fn payments(name: &str) -> String {
    format!(
        "\napiVersion: bitbucket.integrations.dev/v1alpha1\nkind: ProjectBinding\nmetadata: {{name: {name}}}\nspec:\n  configurationRef: {{name: bitbucket}}\n  projectKey: PAY\n  repositorySlug: payments-api\n  sonarqube: {{projectKey: shared-key}}\n"
    )
}

/// No secret of the manifests in any output.
fn assert_no_token(out: &str) {
    for token in [SONAR_TOKEN, READER_TOKEN, OPERATOR_TOKEN] {
        assert!(!out.contains(token), "a token was printed: {out}");
    }
}

fn writes(sonar: &RunningSonarQube) -> Vec<String> {
    sonar
        .simulator()
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_the_setting_and_the_bindings_apply_makes_them_and_a_second_plan_is_empty() {
    let ws = Workspace::with_simulator("sonar-plan", SEED).await;
    let sonar = sonarqube().await;
    let file = ws.write_manifests(
        "resources.yaml",
        &[configuration("sonarqube"), PLATFORM.to_owned()].join("---"),
        OPERATOR_TOKEN,
    );
    let sonar_url = sonar.base_url();
    let args = |command: &'static str| vec![command, "-f", file.as_str(), "--sonarqube-url", sonar_url.as_str()];

    let planned = run(&args("plan")).await;
    let out = all(&planned);
    assert_eq!(planned.status.code(), Some(2), "{out}");
    assert!(out.contains(&format!("+ SonarQube setting bitbucket: Bitbucket {}", ws.url())), "{out}");
    assert!(out.contains("with the token of Secret sonarqube-bitbucket-token"), "{out}");
    assert!(out.contains("+ SonarQube project PLAT_api-gateway: create and bind to PLAT/api-gateway"), "{out}");
    assert!(out.contains("~ SonarQube project PLAT_auth-service: bind to PLAT/auth-service"), "{out}");
    assert!(out.contains("(was: not bound)"), "{out}");
    assert_no_token(&out);
    assert!(writes(&sonar).is_empty(), "plan wrote to SonarQube: {:?}", writes(&sonar));
    assert_eq!(sonar.simulator().alm_settings_json(), Value::Array(Vec::new()), "plan created a setting");
    assert!(sonar.simulator().binding("PLAT_auth-service").is_none(), "plan bound a project");

    let applied = run(&args("apply")).await;
    let out = all(&applied);
    assert_eq!(applied.status.code(), Some(0), "{out}");
    assert_no_token(&out);
    let settings = sonar.simulator().alm_settings_json();
    assert_eq!(settings[0]["key"], "bitbucket", "{settings}");
    assert_eq!(settings[0]["url"], ws.url().as_str(), "{settings}");
    // SonarQube keeps the Bitbucket token of the sonarqube block, not the operator's.
    assert_eq!(sonar.simulator().alm_setting_pat("bitbucket").as_deref(), Some(READER_TOKEN));
    for slug in ["api-gateway", "auth-service"] {
        let binding = sonar.simulator().binding(&format!("PLAT_{slug}")).unwrap_or_else(|| panic!("{slug}: {out}"));
        assert_eq!((binding["repository"].as_str(), binding["slug"].as_str()), (Some("PLAT"), Some(slug)), "{binding}");
    }
    assert!(
        sonar.simulator().projects().iter().any(|(key, _)| key == "PLAT_api-gateway"),
        "the project was not created"
    );

    sonar.simulator().clear_requests();
    let again = run(&[&args("plan")[..], &["--output", "json"]].concat()).await;
    assert_eq!(again.status.code(), Some(0), "{}", all(&again));
    assert_no_token(&all(&again));
    let json: Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!((json["summary"]["add"].as_u64(), json["summary"]["change"].as_u64()), (Some(0), Some(0)), "{json}");
    assert!(writes(&sonar).is_empty(), "a converged plan wrote to SonarQube: {:?}", writes(&sonar));
    let kinds: Vec<&str> =
        json["resources"].as_array().into_iter().flatten().filter_map(|r| r["kind"].as_str()).collect();
    assert!(kinds.contains(&"SonarQubeConfiguration"), "{json}");
    sonar.shutdown().await;
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_two_bindings_claim_is_left_to_the_first_and_reported_on_the_other() {
    let ws = Workspace::with_simulator("sonar-claim", SEED).await;
    let sonar = sonarqube().await;
    let yaml = [configuration("sonarqube"), payments("payments"), payments("payments-copy")].join("---");
    let file = ws.write_manifests("resources.yaml", &yaml, OPERATOR_TOKEN);
    let sonar_url = sonar.base_url();

    let planned = run(&["plan", "-f", &file, "--sonarqube-url", &sonar_url, "-o", "json"]).await;
    assert_eq!(planned.status.code(), Some(1), "{}", all(&planned));
    assert_no_token(&all(&planned));
    let json: Value = serde_json::from_slice(&planned.stdout).expect("JSON");
    let copy = json["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "payments-copy")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(copy["reason"], "ProjectClaimed", "{copy}");
    assert!(copy["message"].as_str().is_some_and(|m| m.contains("ProjectBinding default/payments,")), "{copy}");
    let change = &copy["changes"][0];
    assert_eq!((change["action"].as_str(), change["name"].as_str()), (Some("blocked"), Some("shared-key")), "{copy}");
    assert_eq!(json["summary"]["blocked"], 1, "{json}");

    let applied = run(&["apply", "-f", &file, "--sonarqube-url", &sonar_url]).await;
    let out = all(&applied);
    assert_eq!(applied.status.code(), Some(1), "{out}");
    assert!(out.contains("x SonarQube project shared-key"), "{out}");
    let binding = sonar.simulator().binding("shared-key").unwrap_or_else(|| panic!("not bound: {out}"));
    assert_eq!(binding["slug"], "payments-api", "{binding}");
    sonar.shutdown().await;
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sonarqube_configuration_missing_from_the_manifests_is_named_with_the_field() {
    let ws = Workspace::with_simulator("sonar-missing", SEED).await;
    // Only the Bitbucket configuration and its Secrets: no SonarQubeConfiguration at all.
    let yaml = configuration("elsewhere");
    let yaml = yaml
        .split("---\napiVersion: bitbucket.integrations.dev/v1alpha1\nkind: SonarQubeConfiguration")
        .next()
        .unwrap_or_default();
    let file = ws.write_manifests("resources.yaml", yaml, OPERATOR_TOKEN);
    let planned = run(&["plan", "-f", &file]).await;
    let out = all(&planned);
    assert_eq!(planned.status.code(), Some(1), "{out}");
    assert!(out.contains("SonarQubeConfiguration default/elsewhere is not among the manifests"), "{out}");
    assert!(out.contains("spec.sonarqube.configurationRef.name"), "{out}");
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_community_build_apply_binds_with_the_token_of_the_sonarqube_block_stored_for_the_operator() {
    let ws = Workspace::with_simulator("sonar-community", SEED).await;
    let sonar = sonarqube_of(&sonar_seed_of("edition: community\nversion: 26.7.0.124771")).await;
    let file = ws.write_manifests(
        "resources.yaml",
        &[configuration("sonarqube"), PLATFORM.to_owned()].join("---"),
        OPERATOR_TOKEN,
    );
    let sonar_url = sonar.base_url();
    let applied = run(&["apply", "-f", &file, "--sonarqube-url", &sonar_url]).await;
    let out = all(&applied);
    assert_eq!(applied.status.code(), Some(0), "{out}");
    assert_no_token(&out);
    assert_eq!(sonar.simulator().user_pat("svc-operator", "bitbucket").as_deref(), Some(READER_TOKEN));
    let binding = sonar.simulator().binding("PLAT_api-gateway").unwrap_or_else(|| panic!("not bound: {out}"));
    assert_eq!(binding["slug"], "api-gateway", "{binding}");
    let again = run(&["plan", "-f", &file, "--sonarqube-url", &sonar_url]).await;
    assert_eq!(again.status.code(), Some(0), "{}", all(&again));
    sonar.shutdown().await;
    ws.done().await;
}
