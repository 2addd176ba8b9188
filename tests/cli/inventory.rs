//! `inventory` as a user runs it: the real binary against an in-process simulator, listing what
//! each binding of the manifests selects now, with its webhooks and required reports; and that it
//! never writes to Bitbucket.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{
    fixtures::{self, CONFIGURATION, OPERATOR_TOKEN, READER_TOKEN, SEED, insert_after},
    workspace::{Workspace, all, run, stdout},
};

/// [`SEED`] with the webhook `ci` as declared on PLAT/api-gateway, and the SonarQube check as
/// the report asks on PLAT/auth-service and a laxer one on PLAT/build-tools.
fn seed() -> String {
    let seed = insert_after(
        SEED,
        "      - slug: api-gateway\n",
        "        webhooks: [{name: ci, url: \"https://ci.example.com/hook\", events: [\"repo:refs_changed\"]}]\n",
    );
    let seed = insert_after(
        &seed,
        "      - slug: auth-service\n",
        "        mergeChecks: [{reportKey: com.sonarsource.sonarqube, mustPass: true, minSeverity: LOW}]\n",
    );
    insert_after(
        &seed,
        "      - slug: build-tools\n",
        "        mergeChecks: [{reportKey: com.sonarsource.sonarqube, mustPass: false, minSeverity: LOW}]\n",
    )
}

/// A binding `platform` of every repository of PLAT but the sandboxes (and the archived one),
/// with the webhook `ci`, and the SonarQube RequiredReport on it.
const PLATFORM: &str = r#"
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
      events: ["repo:refs_changed"]
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: sonarqube}
spec:
  bindingRef: {name: platform}
"#;

fn platform_manifests(ws: &Workspace) -> String {
    ws.write_manifests("platform.yaml", &[CONFIGURATION, PLATFORM].join("---"), OPERATOR_TOKEN)
}

/// The simulator's own record of a repository.
fn simulated(ws: &Workspace, project: &str, slug: &str) -> Value {
    let state = ws.bitbucket().state_json();
    let projects = state["projects"].as_array().expect("projects");
    let project = projects.iter().find(|p| p["key"] == project).expect("the project");
    project["repositories"].as_array().expect("repositories").iter().find(|r| r["slug"] == slug).expect("repo").clone()
}

/// The first binding's table in a text output, as one map from column to cell per repository
/// (columns are two or more spaces apart).
fn table(out: &str) -> Vec<BTreeMap<String, String>> {
    let split = |line: &str| -> Vec<String> {
        line.trim().split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
    };
    // The binding's line, the header, the rows, failures, the summary line, then a blank one.
    let lines: Vec<&str> = out.lines().take_while(|line| !line.is_empty()).collect();
    let header = split(lines.get(1).copied().unwrap_or_default());
    let rows = lines.get(2..lines.len().saturating_sub(1)).unwrap_or_default();
    rows.iter()
        .filter(|line| !line.trim_start().starts_with('✗'))
        .map(|line| header.iter().cloned().zip(split(line)).collect())
        .collect()
}

fn no_writes(ws: &Workspace) {
    let writes: Vec<String> = ws
        .bitbucket()
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "inventory wrote to Bitbucket: {writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_lists_what_it_takes_with_each_webhook_and_report() {
    let ws = Workspace::with_simulator("inventory-text", &seed()).await;
    let file = platform_manifests(&ws);
    ws.bitbucket().set_ssh_enabled(false);

    let output = run(&["inventory", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(0), "{}", all(&output));
    let out = stdout(&output);
    assert!(out.starts_with("ProjectBinding default/platform  (project PLAT, a selection; from "), "{out}");
    let table = table(&out);
    let cell = |slug: &str, column: &str| {
        let row = table.iter().find(|row| row.get("SLUG").map(String::as_str) == Some(slug));
        row.and_then(|row| row.get(column)).cloned().unwrap_or_else(|| panic!("no {column} for {slug} in:\n{out}"))
    };
    assert_eq!(cell("api-gateway", "ID"), simulated(&ws, "PLAT", "api-gateway")["id"].to_string());
    assert_eq!(cell("api-gateway", "STATE"), "AVAILABLE");
    assert_eq!(cell("api-gateway", "ARCHIVED"), "no");
    assert_eq!(cell("api-gateway", "HTTP"), format!("{}/scm/plat/api-gateway.git", ws.url()));
    assert_eq!(cell("api-gateway", "SSH"), "-", "SSH is off");
    let states = |slug: &str| (cell(slug, "WEBHOOK ci"), cell(slug, "REPORT sonarqube"));
    assert_eq!(states("api-gateway"), ("in sync".into(), "missing".into()));
    assert_eq!(states("auth-service"), ("missing".into(), "in sync".into()));
    assert_eq!(states("build-tools"), ("missing".into(), "differs: mustPass".into()));
    assert_eq!(table.len(), 3, "{out}");
    assert!(!out.contains("sandbox-alice"), "an excluded repository is listed: {out}");
    assert!(!out.contains("old-deployer"), "an archived repository is listed: {out}");
    assert!(
        out.contains("3 repositories; webhook ci: 1 in sync, 2 missing; required report sonarqube: 1 in sync, 1 differ, 1 missing"),
        "{out}"
    );
    assert!(out.ends_with("\n\nInventory: 1 binding(s), 3 repositories.\n"), "{out}");
    assert!(!all(&output).contains(OPERATOR_TOKEN), "the token leaked");
    no_writes(&ws);
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_has_every_repository_with_its_fields() {
    let ws = Workspace::with_simulator("inventory-json", &seed()).await;
    let file = platform_manifests(&ws);
    ws.bitbucket().set_ssh_enabled(true);

    let output = run(&["inventory", "-f", &file, "-o", "json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", all(&output));
    let json: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(json["exitCode"], 0);
    assert_eq!(json["summary"]["repositories"], 3);
    let binding = &json["bindings"][0];
    assert_eq!((binding["name"].as_str(), binding["namespace"].as_str()), (Some("platform"), Some("default")));
    assert_eq!(binding["ok"], true);
    assert_eq!(binding["repositorySlug"], Value::Null);
    assert_eq!(binding["requiredReports"][0]["reportKey"], "com.sonarsource.sonarqube");
    let repositories = binding["repositories"].as_array().expect("repositories");
    let slugs: Vec<&str> = repositories.iter().filter_map(|r| r["slug"].as_str()).collect();
    assert_eq!(slugs, ["api-gateway", "auth-service", "build-tools"]);

    let gateway = &repositories[0];
    let known = simulated(&ws, "PLAT", "api-gateway");
    assert_eq!(gateway["id"], known["id"]);
    assert_eq!(gateway["name"], known["name"]);
    assert_eq!(gateway["state"], "AVAILABLE");
    assert_eq!(gateway["archived"], false);
    assert_eq!(gateway["httpCloneUrl"], format!("{}/scm/plat/api-gateway.git", ws.url()));
    assert!(gateway["sshCloneUrl"].as_str().is_some_and(|u| u.starts_with("ssh://")), "{gateway}");
    assert_eq!(gateway["webhooks"][0]["name"], "ci");
    assert_eq!(gateway["webhooks"][0]["state"], "inSync");
    assert_eq!(gateway["requiredReports"][0]["state"], "missing");
    assert_eq!(repositories[1]["webhooks"][0]["state"], "missing");
    assert_eq!(repositories[1]["requiredReports"][0]["state"], "inSync");
    assert_eq!(repositories[2]["requiredReports"][0]["state"], "differs");
    assert_eq!(repositories[2]["requiredReports"][0]["differences"], serde_json::json!(["mustPass"]));
    assert_eq!(binding["summary"]["webhooks"]["ci"]["missing"], 2);
    no_writes(&ws);
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_repository_binding_lists_its_repository() {
    let ws = Workspace::with_simulator("inventory-slug", SEED).await;
    let file = ws.manifests(OPERATOR_TOKEN);

    let output = run(&["inventory", "-f", &file, "--output", "json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", all(&output));
    let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let binding = &json["bindings"][0];
    assert_eq!(binding["repositorySlug"], "payments-api");
    assert_eq!(binding["projectKey"], "PAY");
    let repositories = binding["repositories"].as_array().expect("repositories");
    assert_eq!(repositories.len(), 1, "{json}");
    assert_eq!(repositories[0]["id"], simulated(&ws, "PAY", "payments-api")["id"]);
    assert_eq!(repositories[0]["webhooks"][0]["state"], "missing");
    assert_eq!(repositories[0]["requiredReports"][0]["state"], "missing");

    let text = run(&["inventory", "-f", &file]).await;
    let out = stdout(&text);
    assert!(out.starts_with("ProjectBinding default/payments  (repository PAY/payments-api; from "), "{out}");
    assert!(out.contains("1 repository; webhook ci: 1 missing; required report sonarqube: 1 missing"), "{out}");
    no_writes(&ws);
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_listed_is_named_with_its_reason_and_fails_the_run() {
    let ws = Workspace::with_simulator("inventory-errors", SEED).await;
    let missing_project = fixtures::BARE_BINDING
        .replace("name: payments", "name: nowhere")
        .replace("projectKey: PAY", "projectKey: NOPE")
        .replace("  repositorySlug: payments-api\n", "  repositories: {}\n");
    let missing_configuration = fixtures::BARE_BINDING
        .replace("name: payments", "name: orphan")
        .replace("configurationRef: {name: bitbucket}", "configurationRef: {name: elsewhere}");
    let missing_repository =
        fixtures::BARE_BINDING.replace("name: payments", "name: gone").replace("payments-api", "no-such-repo");
    let file = ws.write_manifests(
        "errors.yaml",
        &[CONFIGURATION, fixtures::BINDING, &missing_project, &missing_configuration, &missing_repository].join("---"),
        OPERATOR_TOKEN,
    );
    let output = run(&["inventory", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = stdout(&output);
    for expected in [
        "ProjectBinding default/nowhere  (project NOPE, a selection; from ",
        "    ✗ ProjectNotFound: project NOPE does not exist in Bitbucket",
        "ProjectBinding default/orphan  (repository PAY/payments-api; from ",
        "    ✗ ConfigurationNotFound: BitbucketConfiguration default/elsewhere is not among the manifests",
        "ProjectBinding default/gone  (repository PAY/no-such-repo; from ",
        "    ✗ RepositoryNotFound: repository PAY/no-such-repo does not exist in Bitbucket",
        "Inventory: 4 binding(s), 1 repository; 3 binding(s) could not be read.",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    // The binding that works is still listed in full.
    assert!(out.contains("ProjectBinding default/payments  (repository PAY/payments-api"), "{out}");

    let json_run = run(&["inventory", "-f", &file, "-o", "json"]).await;
    assert_eq!(json_run.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&json_run.stdout).expect("JSON");
    assert_eq!(json["exitCode"], 1);
    assert_eq!(json["bindings"][1]["ok"], false);
    assert_eq!(json["bindings"][1]["reason"], "ProjectNotFound");
    no_writes(&ws);

    // A token Bitbucket rejects: the configuration's reason, on every binding that uses it.
    let file = ws.write_manifests("bad.yaml", &fixtures::manifests(), "BBDC-wrong");
    let output = run(&["inventory", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = all(&output);
    assert!(
        out.contains("✗ BadCredentials: BitbucketConfiguration default/bitbucket cannot connect: ")
            && out.contains("update the Secret"),
        "{out}"
    );
    assert!(!out.contains("BBDC-wrong"), "the token leaked: {out}");

    // Manifests without a binding: nothing to list.
    let file = ws.write_manifests("configuration.yaml", CONFIGURATION, OPERATOR_TOKEN);
    let output = run(&["inventory", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(all(&output).contains("the files hold no ProjectBinding"), "{}", all(&output));
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_user_may_not_make_are_listed_once_per_object_with_their_repositories() {
    let ws = Workspace::with_simulator("inventory-reader", &seed()).await;
    // `reader` may list PLAT's repositories, not their webhooks or required reports.
    let file = ws.write_manifests("platform.yaml", &[CONFIGURATION, PLATFORM].join("---"), READER_TOKEN);
    let output = run(&["inventory", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = stdout(&output);
    let failures: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with('✗')).collect();
    assert_eq!(failures.len(), 2, "one line per object: {out}");
    assert!(failures[0].contains("webhook ci on api-gateway, auth-service, build-tools: PermissionDenied: "), "{out}");
    assert!(
        failures[1].contains("required report sonarqube on api-gateway, auth-service, build-tools: PermissionDenied")
    );
    assert!(out.contains("Inventory: 1 binding(s), 3 repositories; 6 read(s) failed."), "{out}");
    no_writes(&ws);
    ws.done().await;
}
