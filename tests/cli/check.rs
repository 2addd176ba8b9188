//! `check` and `simulator` as a user runs them: the real binary against an in-process simulator
//! (or a web server that is not Bitbucket), with manifests written to a temporary folder; and the
//! manifest loader on the shipped examples.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use bitbucket_operator::{
    cli::manifests::{LoadOptions, load},
    simulator::{RunningSimulator, Seed, Simulator},
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bitbucket-operator");

const GOOD_TOKEN: &str = "BBDC-check-good-token";

const SEED: &str = r#"
server: {version: "9.4.22"}
users:
  - name: svc-operator
    tokens: [{name: operator, token: BBDC-check-good-token}]
projects:
  - key: PAY
    permissions: {svc-operator: PROJECT_ADMIN}
    repositories: [{slug: payments-api}]
"#;

/// A configuration and its Secret, with `{URL}` and `{TOKEN}` to fill in.
const MANIFESTS: &str = r#"# A team's Bitbucket.
apiVersion: v1
kind: Secret
metadata:
  name: bitbucket-token
  labels: {bitbucket.integrations.dev/credential: "true"}
stringData: {token: "{TOKEN}"}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: BitbucketConfiguration
metadata: {name: bitbucket}
spec:
  url: {URL}
  allowInsecureHttp: true
  auth: {token: {secretRef: {name: bitbucket-token}}}
"#;

/// A temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let unique = format!("bbo-cli-check-{name}-{}-{:x}", std::process::id(), fastrand::u64(..));
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).expect("create the temporary folder");
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a temporary file");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn simulator(seed: &str) -> RunningSimulator {
    Simulator::new(Seed::from_yaml(seed).expect("seed"))
        .expect("simulator")
        .serve("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("serve")
}

fn manifests(url: &str, token: &str) -> String {
    MANIFESTS.replace("{URL}", url).replace("{TOKEN}", token)
}

/// Runs the binary off the runtime's threads.
async fn run(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().expect("run the binary"))
        .await
        .expect("join")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn all(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A port nothing listens on (just freed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// Serves `router` on a free loopback port until the handle is aborted.
async fn serve(router: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_and_prints_the_server_and_the_identity() {
    let sim = simulator(SEED).await;
    let dir = TempDir::new("ok");
    let file = dir.write("bitbucket.yaml", &manifests(&sim.base_url(), GOOD_TOKEN));
    let output = run(&["check", "-f", &file]).await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", all(&output));
    for expected in [
        "BitbucketConfiguration default/bitbucket\n",
        &format!("from:         {file} (document 2)"),
        &format!("url:          {}", sim.base_url()),
        "server:       Bitbucket 9.4.22 (build 9004022)",
        "user:         svc-operator",
        "capabilities: webhooks, codeInsights",
        "OK: connected as svc-operator to Bitbucket 9.4.22",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    assert!(!out.contains(GOOD_TOKEN), "the token leaked: {out}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_json_has_one_object_per_configuration() {
    let sim = simulator(SEED).await;
    let dir = TempDir::new("json");
    dir.write("good.yaml", &manifests(&sim.base_url(), GOOD_TOKEN));
    // A second configuration in another namespace, whose token Bitbucket does not know.
    let other = manifests(&sim.base_url(), "BBDC-unknown").replace("metadata:\n", "metadata:\n  namespace: team-b\n");
    let other = other.replace("metadata: {name: bitbucket}", "metadata: {name: bitbucket, namespace: team-b}");
    dir.write("other.yaml", &other);
    let output = run(&["check", "-f", &dir.0.display().to_string(), "--output", "json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let results = json.as_array().expect("an array");
    assert_eq!(results.len(), 2, "{json}");
    let good = &results[0];
    assert_eq!(good["name"], "bitbucket");
    assert_eq!(good["namespace"], "default");
    assert_eq!(good["url"], sim.base_url());
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
    let picked = run(&["check", "-f", &dir.0.display().to_string(), "-n", "default", "-o", "json"]).await;
    assert_eq!(picked.status.code(), Some(0), "{}", all(&picked));
    let json: Value = serde_json::from_slice(&picked.stdout).expect("JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_fast_in_plain_words() {
    let dir = TempDir::new("unreachable");
    let token = dir.write("token", &format!("{GOOD_TOKEN}\n"));
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let output = run(&["check", "--url", &url, "--token-file", &token]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = stdout(&output);
    assert!(out.contains("FAILED (Unreachable): cannot reach Bitbucket"), "{out}");
    assert!(out.contains("check the URL"), "no advice: {out}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    // The same from manifests.
    let file = dir.write("bitbucket.yaml", &manifests(&url, GOOD_TOKEN));
    let output = run(&["check", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    assert!(stdout(&output).contains("FAILED (Unreachable)"), "{}", all(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_bad_credentials_and_is_sent_once() {
    let sim = simulator(SEED).await;
    let dir = TempDir::new("badtoken");
    let file = dir.write("bitbucket.yaml", &manifests(&sim.base_url(), "BBDC-revoked-token"));
    let output = run(&["check", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = all(&output);
    assert!(out.contains("FAILED (BadCredentials): Bitbucket rejected the credential"), "{out}");
    assert!(!out.contains("BBDC-revoked-token"), "the token leaked: {out}");
    let sent: Vec<_> = sim.simulator().requests().into_iter().filter(|r| r.auth != "none").collect();
    assert_eq!(sent.len(), 1, "the rejected token was sent again: {sent:?}");
    sim.shutdown().await;
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
    let dir = TempDir::new("permission");
    let token = dir.write("token", GOOD_TOKEN);
    let output = run(&["check", "--url", &url, "--token-file", &token]).await;
    server.abort();
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = stdout(&output);
    assert!(out.contains("FAILED (PermissionDenied): the Bitbucket user may not list users"), "{out}");
    assert!(out.contains("grant it the permission it needs"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_server_that_is_not_bitbucket_is_unsupported() {
    let router = axum::Router::new().fallback(|| async {
        (axum::http::StatusCode::NOT_FOUND, axum::response::Html("<html><body>Not Found</body></html>"))
    });
    let (url, server) = serve(router).await;
    let dir = TempDir::new("unsupported");
    let token = dir.write("token", GOOD_TOKEN);
    let output = run(&["check", "--url", &url, "--token-file", &token, "-o", "json"]).await;
    server.abort();
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json[0]["name"], url);
    assert_eq!(json[0]["reason"], "UnsupportedServer");
    let message = json[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no Bitbucket answers at this URL") && message.contains("point the URL"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_names_the_file_the_object_and_the_field() {
    let dir = TempDir::new("nosecret");
    let only_configuration = manifests("https://bitbucket.example.com", "").split("---\n").nth(1).map(str::to_owned);
    let file = dir.write("configuration.yaml", &only_configuration.expect("two documents"));
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
    let dir = TempDir::new("input");
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
        let file = dir.write(name, text);
        let output = run(&["check", "-f", &file]).await;
        assert_eq!(output.status.code(), Some(1), "{name}: {}", all(&output));
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(err.contains(name) && err.contains(expected), "{name}: {expected:?} missing from:\n{err}");
        assert!(!err.contains("QkJEQy1zZWNyZXQ"), "a Secret value leaked: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_an_error_on_stderr_with_exit_code_1() {
    let dir = TempDir::new("badinput");
    let file = dir.write("bitbucket.yaml", &manifests("https://bitbucket.example.com", GOOD_TOKEN));
    let missing = dir.0.join("nothing-here.yaml").display().to_string();
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
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(err.contains(expected), "{args:?}: {expected:?} missing from {err}");
        assert!(output.stdout.is_empty(), "{args:?}: {}", stdout(&output));
    }
}

/// `check -f examples/` against a simulator seeded from examples/simulator-seed.yaml: the
/// examples' token is the seed's service account's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_pass_the_check_against_the_example_seed() {
    let seed = std::fs::read_to_string(examples().join("simulator-seed.yaml")).expect("the seed");
    let sim = simulator(&seed).await;
    let examples = examples().display().to_string();
    let args = ["check", "-f", &examples, "--url", &sim.base_url(), "--operator-namespace", "default"];
    let output = run(&args).await;
    assert_eq!(output.status.code(), Some(0), "{}", all(&output));
    let out = stdout(&output);
    assert_eq!(out.matches("OK: connected as svc-operator to Bitbucket 9.4.22").count(), 2, "{out}");
    assert!(out.contains("ClusterBitbucketConfiguration bitbucket-shared"), "{out}");

    // Without the operator's namespace, the cluster configuration's Secret is not found, and the
    // message says why and what to pass.
    let output = run(&args[..5]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let out = stdout(&output);
    assert!(out.contains("FAILED (SecretNotFound)") && out.contains("--operator-namespace default"), "{out}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_command_prints_its_url_and_serves_check() {
    let mut child = Command::new(BIN)
        .args(["simulator", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the simulator");
    let pipe = child.stdout.take().expect("stdout");
    let banner = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("Stop it with Ctrl-C");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let banner = tokio::time::timeout(Duration::from_secs(30), banner).await;
    let banner = match banner {
        Ok(joined) => joined.expect("join"),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the simulator printed no banner within 30s");
        }
    };
    let url = banner
        .iter()
        .find_map(|line| line.split_once(" listening on ").map(|(_, url)| url.trim().to_owned()))
        .unwrap_or_default();
    let dir = TempDir::new("simulator");
    let token = dir.write("token", "BBDC-replace-with-your-http-access-token\n");
    let output = run(&["check", "--url", &url, "--token-file", &token]).await;
    let _ = child.kill();
    let _ = child.wait();
    let text = banner.join("\n");
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{text}");
    assert!(text.contains("svc-operator") && text.contains("fake by design"), "{text}");
    assert_eq!(output.status.code(), Some(0), "{}", all(&output));
    assert!(stdout(&output).contains("OK: connected as svc-operator"), "{}", all(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_refuses_remote_addresses_and_names_a_bad_seed() {
    let refused = run(&["simulator", "--listen", "0.0.0.0:0"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(all(&refused).contains("--allow-remote"), "{}", all(&refused));

    let dir = TempDir::new("seed");
    let seed = dir.write("seed.yaml", "users:\n  - name: a\n    colour: blue\n");
    let output = run(&["simulator", "--seed", &seed, "--listen", "127.0.0.1:0"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", all(&output));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("seed.yaml") && err.contains("colour"), "{err}");
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn the_examples_load_and_every_reference_resolves() {
    let options = LoadOptions { default_namespace: "payments".into(), operator_namespace: "payments".into() };
    let manifests = load(&[examples()], &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manifests.skipped, vec![examples().join("simulator-seed.yaml")]);
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
