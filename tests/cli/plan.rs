//! `plan` and `apply` as a user runs them: the real binary against an in-process simulator, with
//! manifests written to a temporary folder; and the manifest loader they share.

use std::path::Path;

use serde_json::Value;

use crate::support::{
    self,
    fixtures::{self, OPERATOR_TOKEN, READER_TOKEN, SEED},
    workspace::{Workspace, all, run},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_plan_exit_codes_follow_what_is_pending() {
    let ws = Workspace::with_simulator("plan", SEED).await;
    let file = ws.manifests(OPERATOR_TOKEN);

    let planned = run(&["plan", "-f", &file]).await;
    assert_eq!(planned.status.code(), Some(2), "{}", all(&planned));
    let out = all(&planned);
    assert!(out.contains("+ webhook ci"), "{out}");
    assert!(out.contains("+ required report com.sonarsource.sonarqube"), "{out}");
    assert_eq!(ws.bitbucket().webhooks("PAY", "payments-api").expect("repo").len(), 0, "plan changed nothing");
    assert!(!ws.bitbucket().requests().iter().any(|r| r.method != "GET"), "plan wrote to Bitbucket");

    let applied = run(&["apply", "-f", &file]).await;
    assert_eq!(applied.status.code(), Some(0), "{}", all(&applied));
    let out = all(&applied);
    assert!(out.contains("Ready=True Bound"), "{out}");
    assert!(out.contains("Ready=True InSync"), "{out}");
    assert_eq!(ws.bitbucket().webhooks("PAY", "payments-api").expect("repo").len(), 1);

    let again = run(&["plan", "-f", &file, "--output", "json"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", all(&again));
    let json: Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!(json["summary"]["add"], 0);
    assert_eq!(json["exitCode"], 0);
    assert_eq!(json["resources"].as_array().map(Vec::len), Some(3));
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_with_a_bad_token_is_an_error_in_plain_words() {
    let ws = Workspace::with_simulator("badtoken", SEED).await;
    let file = ws.manifests("BBDC-wrong");
    let planned = run(&["plan", "-f", &file]).await;
    assert_eq!(planned.status.code(), Some(1));
    let out = all(&planned);
    assert!(out.contains("BadCredentials") && out.contains("update the Secret"), "{out}");
    assert!(!out.contains("BBDC-wrong"), "the token leaked: {out}");
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reports_a_missing_permission() {
    let ws = Workspace::with_simulator("permission", SEED).await;
    let file = ws.manifests(READER_TOKEN);
    let applied = run(&["apply", "-f", &file]).await;
    assert_eq!(applied.status.code(), Some(1), "{}", all(&applied));
    let out = all(&applied);
    assert!(out.contains("PermissionDenied") && out.contains("grant it the permission"), "{out}");
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_file_the_object_and_the_field() {
    let ws = Workspace::with_simulator("input", SEED).await;
    let cases = [
        ("unknown-kind.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n", "Deployment"),
        (
            "rejected.yaml",
            "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: ProjectBinding\nmetadata: {name: b}\nspec:\n  configurationRef: {name: c}\n  projectKey: pay\n  repositorySlug: x\n",
            "ProjectBinding default/b: spec.projectKey: projectKey must be an upper-case project key",
        ),
        ("broken.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: [unclosed\n", "not valid YAML"),
    ];
    for (name, content, expected) in cases {
        let file = ws.write(name, content);
        let output = run(&["plan", "-f", &file]).await;
        assert_eq!(output.status.code(), Some(1), "{name}: {}", all(&output));
        let out = all(&output);
        assert!(out.contains(name) && out.contains(expected), "{name}: {out}");
    }
    // A Secret the configuration names is missing: the configuration cannot connect.
    let without_secret = fixtures::manifests().split("\n---\n").skip(1).collect::<Vec<_>>().join("\n---\n");
    let file = ws.write_manifests("no-secret.yaml", &without_secret, OPERATOR_TOKEN);
    let output = run(&["plan", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(1));
    let out = all(&output);
    assert!(
        out.contains("SecretNotFound") && out.contains("bitbucket-token") && out.contains("auth.token.secretRef.name"),
        "{out}"
    );
    ws.done().await;
}

#[test]
fn the_examples_load_and_every_reference_resolves() {
    use bitbucket_operator::cli::manifests::{LoadOptions, load};
    let examples = support::repo_path("examples");
    let options = LoadOptions { default_namespace: "payments".into(), operator_namespace: "payments".into() };
    let manifests = load(&[examples], &options).unwrap_or_else(|e| panic!("{e}"));
    let targets = manifests.targets();
    assert!(!targets.bindings.is_empty() && !targets.reports.is_empty());
    for configuration in &targets.configurations {
        assert!(configuration.settings.is_ok(), "{}: {:?}", configuration.id, configuration.settings.as_ref().err());
    }
    for binding in &targets.bindings {
        assert!(binding.configuration.is_ok(), "{}", binding.id);
        assert!(binding.webhooks.is_ok(), "{}", binding.id);
    }
    for report in &targets.reports {
        assert!(report.binding.is_ok(), "{}", report.id);
    }
    assert!(!targets.builds.is_empty(), "examples/ has no RequiredBuild");
    for build in &targets.builds {
        assert!(build.binding.is_ok(), "{}", build.id);
    }
}

#[test]
fn lists_duplicates_and_bad_base64_are_reported_with_their_source() {
    use bitbucket_operator::cli::manifests::{LoadOptions, Manifests};
    let text = r#"
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Secret
    metadata: {name: s}
    data: {token: "not base64!"}
  - apiVersion: bitbucket.integrations.dev/v1alpha1
    kind: RequiredReport
    metadata: {name: r}
    spec: {bindingRef: {name: b}}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: r}
spec: {bindingRef: {name: b}}
"#;
    let mut manifests = Manifests::default();
    let mut problems = Vec::new();
    manifests.add_text(text, Path::new("team.yaml"), &LoadOptions::default(), &mut problems);
    assert_eq!(manifests.reports.len(), 1);
    assert!(
        problems.iter().any(|p| p.contains("team.yaml (document 1)") && p.contains("data.token is not base64")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("team.yaml (document 2)") && p.contains("defined twice")),
        "{problems:?}"
    );
    assert!(!problems.iter().any(|p| p.contains("not base64!")), "a Secret value was echoed: {problems:?}");
}
