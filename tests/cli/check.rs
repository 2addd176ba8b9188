//! `check` as a user runs it: the real binary against an in-process simulator (or a web server
//! that is not Bitbucket, or nothing at all), with manifests written to a temporary folder, for
//! every way a connection can fail; and the manifest loader on the shipped examples.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use bitbucket_operator::{
    cli::manifests::{LoadOptions, load},
    simulator::sonarqube::{SonarQubeSimulator, SonarSeed},
};
use serde_json::Value;

use crate::support::{
    self,
    fixtures::{self, CONFIGURATION, OPERATOR_TOKEN, SEED},
    workspace::{Workspace, all, closed_port, not_bitbucket, run, serve, stderr, stdout},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_and_prints_the_server_and_the_identity() {
    let ws = Workspace::with_simulator("ok", SEED).await;
    let file = ws.write_manifests("bitbucket.yaml", CONFIGURATION, OPERATOR_TOKEN);
    let output = run(&["check", "-f", &file]).await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", all(&output));
    for expected in [
        "BitbucketConfiguration default/bitbucket\n",
        &format!("from:         {file} (document 2)"),
        &format!("url:          {}", ws.url()),
        "server:       Bitbucket 9.4.22 (build 9004022)",
        "user:         svc-operator",
        "capabilities: webhooks, codeInsights",
        "OK: connected as svc-operator to Bitbucket 9.4.22",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    assert!(!out.contains(OPERATOR_TOKEN), "the token leaked: {out}");
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_json_has_one_object_per_configuration() {
    let ws = Workspace::with_simulator("json", SEED).await;
    ws.write_manifests("good.yaml", CONFIGURATION, OPERATOR_TOKEN);
    // A second configuration in another namespace, whose token Bitbucket does not know.
    let other = CONFIGURATION.replace("metadata:\n", "metadata:\n  namespace: team-b\n");
    let other = other.replace("metadata: {name: bitbucket}", "metadata: {name: bitbucket, namespace: team-b}");
    ws.write_manifests("other.yaml", &other, "BBDC-unknown");
    let output = run(&["check", "-f", &ws.dir(), "--output", "json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let results = json.as_array().expect("an array");
    assert_eq!(results.len(), 2, "{json}");
    let good = &results[0];
    assert_eq!(good["name"], "bitbucket");
    assert_eq!(good["namespace"], "default");
    assert_eq!(good["url"], ws.url());
    assert_eq!(good["ok"], true);
    assert_eq!(good["reason"], "Connected");
    assert_eq!(good["server"]["version"], "9.4.22");
    assert_eq!(good["server"]["buildNumber"], "9004022");
    assert_eq!(good["server"]["displayName"], "Bitbucket");
    assert_eq!(good["authenticatedAs"], "svc-operator");
    assert_eq!(good["capabilities"], serde_json::json!(["webhooks", "codeInsights"]));
    let bad = &results[1];
    assert_eq!(bad["namespace"], "team-b");
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["reason"], "BadCredentials");
    assert_eq!(bad["server"], Value::Null);
    assert!(bad["message"].as_str().is_some_and(|m| m.contains("update the Secret")), "{bad}");

    // --namespace picks the configurations of one namespace.
    let picked = run(&["check", "-f", &ws.dir(), "-n", "default", "-o", "json"]).await;
    assert_eq!(picked.status.code(), Some(0), "{}", all(&picked));
    let json: Value = serde_json::from_slice(&picked.stdout).expect("JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    ws.done().await;
}

/// The files `plan` and `apply` take: `check` checks their configuration and passes over the
/// binding and the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_on_the_files_plan_and_apply_take() {
    let ws = Workspace::with_simulator("planfiles", SEED).await;
    let file = ws.manifests(OPERATOR_TOKEN);
    let ok = run(&["check", "-f", &file]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", all(&ok));
    let out = all(&ok);
    assert!(out.contains("9.4.22") && out.contains("svc-operator") && out.contains("OK:"), "{out}");

    let json = run(&["check", "-f", &file, "--output", "json"]).await;
    let json: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(json[0]["ok"], true);
    assert_eq!(json[0]["authenticatedAs"], "svc-operator");
    assert_eq!(json.as_array().map(Vec::len), Some(1), "one result for one configuration: {json}");
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_fast_in_plain_words() {
    let ws = Workspace::new("unreachable");
    let token = ws.write("token", &format!("{OPERATOR_TOKEN}\n"));
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let output = run(&["check", "--url", &url, "--token-file", &token]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = stdout(&output);
    assert!(out.contains("FAILED (Unreachable): cannot reach Bitbucket"), "{out}");
    assert!(out.contains("check the URL"), "no advice: {out}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    // The same from manifests.
    let file = ws.write("bitbucket.yaml", &fixtures::fill(CONFIGURATION, &url, OPERATOR_TOKEN));
    let output = run(&["check", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    assert!(stdout(&output).contains("FAILED (Unreachable)"), "{}", all(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_bad_credentials_and_is_sent_once() {
    let ws = Workspace::with_simulator("badtoken", SEED).await;
    let file = ws.write_manifests("bitbucket.yaml", CONFIGURATION, "BBDC-revoked-token");
    let output = run(&["check", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = all(&output);
    assert!(out.contains("FAILED (BadCredentials): Bitbucket rejected the credential"), "{out}");
    assert!(!out.contains("BBDC-revoked-token"), "the token leaked: {out}");
    let sent: Vec<_> = ws.bitbucket().requests().into_iter().filter(|r| r.auth != "none").collect();
    assert_eq!(sent.len(), 1, "the rejected token was sent again: {sent:?}");
    ws.done().await;
}

/// Bitbucket (or a proxy before it) that knows the user but refuses to let it read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_may_not_read_is_permission_denied() {
    use axum::{http::StatusCode, routing::get};
    let router = axum::Router::new()
        .route("/status", get(|| async { axum::Json(serde_json::json!({"state": "RUNNING"})) }))
        .route(
            "/rest/api/1.0/application-properties",
            get(|| async {
                (
                    [("x-ausername", "svc-operator")],
                    axum::Json(
                        serde_json::json!({"version": "9.4.22", "buildNumber": "9004022", "displayName": "Bitbucket"}),
                    ),
                )
            }),
        )
        .route(
            "/rest/api/1.0/users",
            get(|| async {
                (
                    StatusCode::FORBIDDEN,
                    axum::Json(serde_json::json!({"errors": [{"context": null,
                        "message": "You are not permitted to access this resource",
                        "exceptionName": "com.atlassian.bitbucket.AuthorisationException"}]})),
                )
            }),
        );
    let (url, server) = serve(router).await;
    let ws = Workspace::new("permission");
    let token = ws.write("token", OPERATOR_TOKEN);
    let output = run(&["check", "--url", &url, "--token-file", &token]).await;
    server.abort();
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = stdout(&output);
    assert!(out.contains("FAILED (PermissionDenied): the Bitbucket user may not list users"), "{out}");
    assert!(out.contains("grant it the permission it needs"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_server_that_is_not_bitbucket_is_unsupported() {
    let (url, server) = serve(not_bitbucket()).await;
    let ws = Workspace::new("unsupported");
    let token = ws.write("token", OPERATOR_TOKEN);
    let output = run(&["check", "--url", &url, "--token-file", &token, "-o", "json"]).await;
    let plain = run(&["check", "--url", &url, "--token-file", &token]).await;
    server.abort();
    assert_eq!(plain.status.code(), Some(1), "{}", all(&plain));
    assert!(all(&plain).contains("FAILED (UnsupportedServer)"), "{}", all(&plain));
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json[0]["name"], url);
    assert_eq!(json[0]["reason"], "UnsupportedServer");
    let message = json[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no Bitbucket answers at this URL") && message.contains("point the URL"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_names_the_file_the_object_and_the_field() {
    let ws = Workspace::new("nosecret");
    let manifests = fixtures::fill(CONFIGURATION, "https://bitbucket.example.com", "");
    let only_configuration = manifests.split("---\n").nth(1);
    let file = ws.write("configuration.yaml", only_configuration.expect("two documents"));
    let output = run(&["check", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = stdout(&output);
    assert!(out.contains("BitbucketConfiguration default/bitbucket"), "{out}");
    assert!(out.contains(&format!("from:         {file} (document 1)")), "{out}");
    assert!(
        out.contains("FAILED (SecretNotFound): Secret bitbucket-token does not exist in namespace default")
            && out.contains("auth.token.secretRef.name"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_name_the_file_the_document_the_object_and_the_field() {
    let ws = Workspace::new("input");
    let cases = [
        // Invalid YAML: the file's own line (the second document starts on line 4).
        (
            "broken.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: [unclosed\n",
            "broken.yaml (document 2), line 7 column",
        ),
        (
            "deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
            "apiVersion \"apps/v1\" kind \"Deployment\" is not understood",
        ),
        (
            "insecure.yaml",
            "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: BitbucketConfiguration\nmetadata: {name: bb, namespace: team}\nspec:\n  url: http://bitbucket.example.com\n  auth: {token: {secretRef: {name: s}}}\n",
            "insecure.yaml (document 1) BitbucketConfiguration team/bb: spec.url: url must start with https://; to use plain http",
        ),
        (
            "binding.yaml",
            "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: ProjectBinding\nmetadata: {name: b}\nspec:\n  configurationRef: {name: c}\n  projectKey: PAY\n",
            "ProjectBinding default/b: spec: set exactly one of repositorySlug",
        ),
        (
            "noname.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {}\n",
            "noname.yaml (document 1): Secret has no metadata.name",
        ),
        (
            "secret.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {token: \"QkJEQy1zZWNyZXQ=!\"}\n",
            "Secret default/s: data.token is not base64",
        ),
    ];
    for (name, text, expected) in cases {
        let file = ws.write(name, text);
        let output = run(&["check", "-f", &file]).await;
        assert_eq!(output.status.code(), Some(1), "{name}: {}", all(&output));
        let err = stderr(&output);
        assert!(err.contains(name) && err.contains(expected), "{name}: {expected:?} missing from:\n{err}");
        assert!(!err.contains("QkJEQy1zZWNyZXQ"), "a Secret value leaked: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_an_error_on_stderr_with_exit_code_1() {
    let ws = Workspace::new("badinput");
    let file =
        ws.write("bitbucket.yaml", &fixtures::fill(CONFIGURATION, "https://bitbucket.example.com", OPERATOR_TOKEN));
    let missing = ws.path("nothing-here.yaml");
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["check", "-f", &missing], "nothing-here.yaml: no such file or folder"),
        (vec!["check", "-f", &file, "--name", "other"], "no configuration named other"),
        (vec!["check", "--url", "http://127.0.0.1:1"], "--url without -f needs --token-file"),
        (vec!["check", "--url", "http://127.0.0.1:1", "--token-file", &missing], "cannot read the token file"),
        (vec!["check"], "give manifests with -f PATH"),
    ];
    for (args, expected) in cases {
        let output = run(&args).await;
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", all(&output));
        let err = stderr(&output);
        assert!(err.contains(expected), "{args:?}: {expected:?} missing from {err}");
        assert!(output.stdout.is_empty(), "{args:?}: {}", stdout(&output));
    }
}

/// `check -f examples/` against a simulator seeded from examples/simulator-seed.yaml: the
/// examples' token is the seed's service account's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_pass_the_check_against_the_example_seed() {
    let seed = std::fs::read_to_string(examples().join("simulator-seed.yaml")).expect("the seed");
    let ws = Workspace::with_simulator("examples", &seed).await;
    let sonar_seed = std::fs::read_to_string(examples().join("sonarqube-seed.yaml")).expect("the SonarQube seed");
    let sonar = SonarQubeSimulator::new(SonarSeed::from_yaml(&sonar_seed).expect("seed"))
        .expect("simulator")
        .serve("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("serve");
    let examples = examples().display().to_string();
    let (url, sonar_url) = (ws.url(), sonar.base_url());
    let args =
        ["check", "-f", &examples, "--url", &url, "--sonarqube-url", &sonar_url, "--operator-namespace", "default"];
    let output = run(&args).await;
    assert_eq!(output.status.code(), Some(0), "{}", all(&output));
    let out = stdout(&output);
    assert_eq!(out.matches("OK: connected as svc-operator to Bitbucket 9.4.22").count(), 2, "{out}");
    assert!(out.contains("ClusterBitbucketConfiguration bitbucket-shared"), "{out}");
    // The SonarQube configuration's login is proven too, and its token never printed.
    assert!(out.contains("OK: connected to SonarQube 2026.3.1.123439 (enterprise edition) as svc-operator"), "{out}");
    assert!(out.contains("capabilities: almSettings, projectBindings"), "{out}");
    assert!(!out.contains("squ_"), "a SonarQube token was printed: {out}");
    assert!(
        !sonar.simulator().request_counts().keys().any(|k| k.contains("authentication/validate")),
        "the check trusted authentication/validate"
    );
    sonar.shutdown().await;

    // Without the operator's namespace, the cluster configuration's Secret is not found, and the
    // message says why and what to pass.
    let args = ["check", "-f", &examples, "--url", &url];
    let output = run(&args).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = stdout(&output);
    assert!(out.contains("FAILED (SecretNotFound)") && out.contains("--operator-namespace default"), "{out}");
    ws.done().await;
}

fn examples() -> PathBuf {
    support::repo_path("examples")
}

#[test]
fn the_examples_load_and_every_reference_resolves() {
    let options = LoadOptions { default_namespace: "payments".into(), operator_namespace: "payments".into() };
    let manifests = load(&[examples()], &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manifests.skipped, vec![examples().join("simulator-seed.yaml"), examples().join("sonarqube-seed.yaml")]);
    assert!(!manifests.bindings.is_empty() && !manifests.reports.is_empty());
    for configuration in manifests.all_configurations() {
        let settings = manifests.client_config(&configuration);
        assert!(settings.is_ok(), "{}: {:?}", configuration.source, settings.err());
    }
    for binding in &manifests.bindings {
        let configuration = manifests.configuration_for(&binding.object);
        assert!(configuration.is_ok(), "{}: {:?}", binding.source, configuration.err());
    }
    for report in &manifests.reports {
        let binding = manifests.binding_for(&report.object);
        assert!(binding.is_ok(), "{}: {:?}", report.source, binding.err());
    }
    assert!(manifests.secret("payments", "bitbucket-token").is_some_and(|s| s.is_labelled()));
}
