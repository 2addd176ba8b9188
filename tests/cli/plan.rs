//! The command line, run as a user runs it: the real binary against an in-process simulator,
//! with manifests written to a temporary folder.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use bitbucket_operator::simulator::{RunningSimulator, Seed, Simulator};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bitbucket-operator");

const SEED: &str = r#"
server: {version: "9.4.22"}
users:
  - name: svc-operator
    tokens: [{name: operator, token: BBDC-good-token}]
  - name: auditor
    tokens: [{name: audit, token: BBDC-read-only}]
projects:
  - key: PAY
    permissions: {svc-operator: PROJECT_ADMIN, auditor: PROJECT_READ}
    repositories:
      - slug: payments-api
"#;

struct Workspace {
    dir: PathBuf,
    sim: RunningSimulator,
}

impl Workspace {
    async fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("bbo-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sim = Simulator::new(Seed::from_yaml(SEED).expect("seed"))
            .expect("simulator")
            .serve("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("serve");
        Self { dir, sim }
    }

    /// Writes a file (with `{URL}` and `{TOKEN}` replaced) and returns its path.
    fn write(&self, name: &str, text: &str, token: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text.replace("{URL}", &self.sim.base_url()).replace("{TOKEN}", token)).expect("write");
        path
    }

    fn manifests(&self, token: &str) -> PathBuf {
        self.write("resources.yaml", MANIFESTS, token)
    }

    async fn done(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.sim.shutdown().await;
    }
}

const MANIFESTS: &str = r#"
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
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {name: sonarqube}
spec:
  bindingRef: {name: payments}
"#;

/// Runs the binary (off the async runtime's threads) and returns its output.
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().expect("run the binary"))
        .await
        .expect("join")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_plan_exit_codes_follow_what_is_pending() {
    let ws = Workspace::new("plan").await;
    let file = path(&ws.manifests("BBDC-good-token"));

    let planned = run(args(&["plan", "-f", &file])).await;
    assert_eq!(planned.status.code(), Some(2), "{}", text(&planned));
    let out = text(&planned);
    assert!(out.contains("+ webhook ci"), "{out}");
    assert!(out.contains("+ required report com.sonarsource.sonarqube"), "{out}");
    assert_eq!(ws.sim.simulator().webhooks("PAY", "payments-api").expect("repo").len(), 0, "plan changed nothing");
    assert!(!ws.sim.simulator().requests().iter().any(|r| r.method != "GET"), "plan wrote to Bitbucket");

    let applied = run(args(&["apply", "-f", &file])).await;
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    let out = text(&applied);
    assert!(out.contains("Ready=True Bound"), "{out}");
    assert!(out.contains("Ready=True InSync"), "{out}");
    assert_eq!(ws.sim.simulator().webhooks("PAY", "payments-api").expect("repo").len(), 1);

    let again = run(args(&["plan", "-f", &file, "--output", "json"])).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let json: Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!(json["summary"]["add"], 0);
    assert_eq!(json["exitCode"], 0);
    assert_eq!(json["resources"].as_array().map(Vec::len), Some(3));
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_with_a_bad_token_is_an_error_in_plain_words() {
    let ws = Workspace::new("badtoken").await;
    let file = path(&ws.manifests("BBDC-wrong"));
    let planned = run(args(&["plan", "-f", &file])).await;
    assert_eq!(planned.status.code(), Some(1));
    let out = text(&planned);
    assert!(out.contains("BadCredentials") && out.contains("update the Secret"), "{out}");
    assert!(!out.contains("BBDC-wrong"), "the token leaked: {out}");
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reports_a_missing_permission() {
    let ws = Workspace::new("permission").await;
    let file = path(&ws.manifests("BBDC-read-only"));
    let applied = run(args(&["apply", "-f", &file])).await;
    assert_eq!(applied.status.code(), Some(1), "{}", text(&applied));
    let out = text(&applied);
    assert!(out.contains("PermissionDenied") && out.contains("grant it the permission"), "{out}");
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_failure_class_in_plain_words() {
    let ws = Workspace::new("check").await;
    let good = path(&ws.manifests("BBDC-good-token"));
    let ok = run(args(&["check", "-f", &good])).await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let out = text(&ok);
    assert!(out.contains("9.4.22") && out.contains("svc-operator") && out.contains("OK:"), "{out}");

    let json = run(args(&["check", "-f", &good, "--output", "json"])).await;
    let json: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(json[0]["ok"], true);
    assert_eq!(json[0]["authenticatedAs"], "svc-operator");

    let bad = path(&ws.write("bad.yaml", MANIFESTS, "BBDC-nobody"));
    let refused = run(args(&["check", "-f", &bad])).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused).contains("FAILED (BadCredentials)"), "{}", text(&refused));

    // Nothing listens on a port just freed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let token = ws.write("token", "BBDC-good-token\n", "");
    let unreachable = run(args(&["check", "--url", &format!("http://{closed}"), "--token-file", &path(&token)])).await;
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(text(&unreachable).contains("FAILED (Unreachable): cannot reach Bitbucket"), "{}", text(&unreachable));

    // A web server that is not Bitbucket.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let other = listener.local_addr().expect("addr");
    let router = axum::Router::new().fallback(|| async {
        (axum::http::StatusCode::NOT_FOUND, axum::response::Html("<html><body>Not Found</body></html>"))
    });
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let unsupported = run(args(&["check", "--url", &format!("http://{other}"), "--token-file", &path(&token)])).await;
    assert_eq!(unsupported.status.code(), Some(1));
    assert!(text(&unsupported).contains("FAILED (UnsupportedServer)"), "{}", text(&unsupported));
    server.abort();
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_file_the_object_and_the_field() {
    let ws = Workspace::new("input").await;
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
        let file = ws.write(name, content, "");
        let output = run(args(&["plan", "-f", &path(&file)])).await;
        assert_eq!(output.status.code(), Some(1), "{name}: {}", text(&output));
        let out = text(&output);
        assert!(out.contains(name) && out.contains(expected), "{name}: {out}");
    }
    // A Secret the configuration names is missing: the configuration cannot connect.
    let without_secret = MANIFESTS.split("\n---\n").skip(1).collect::<Vec<_>>().join("\n---\n");
    let file = ws.write("no-secret.yaml", &without_secret, "");
    let output = run(args(&["plan", "-f", &path(&file)])).await;
    assert_eq!(output.status.code(), Some(1));
    let out = text(&output);
    assert!(
        out.contains("SecretNotFound") && out.contains("bitbucket-token") && out.contains("auth.token.secretRef.name"),
        "{out}"
    );
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_command_serves_what_check_accepts() {
    let ws = Workspace::new("simulator").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["simulator", "--listen", &listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the simulator");
    let token = ws.write("token", "BBDC-replace-with-your-http-access-token", "");
    let url = format!("http://{listen}");
    let mut last = String::new();
    for _ in 0..100 {
        let output = run(args(&["check", "--url", &url, "--token-file", &path(&token)])).await;
        last = text(&output);
        if output.status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(last.contains("OK: connected as svc-operator"), "{last}");
    let refused = run(args(&["simulator", "--listen", "0.0.0.0:0"])).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused).contains("--allow-remote"), "{}", text(&refused));
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_examples_to_convergence_and_prints_its_table() {
    let started = std::time::Instant::now();
    let output = run(args(&["demo"])).await;
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("RESOURCE") && out.contains("READY") && out.contains("REASON"), "{out}");
    assert!(out.contains("ProjectBinding demo/platform-services") && out.contains("Bound"), "{out}");
    assert!(out.contains("plan sees the drift") && out.contains("nothing left to change"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(60), "the demo took {:?}", started.elapsed());
}

#[test]
fn the_examples_load_and_every_reference_resolves() {
    use bitbucket_operator::cli::manifests::{LoadOptions, load};
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
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
