//! Scale benchmark: the real controllers (`controller::run`) on the fake Kubernetes API server
//! and the embedded Bitbucket simulator, with one configuration at the highest rate limit
//! (1000/s, burst 10000).
//!
//! Scenarios:
//! - `1000`, `10000`: one binding selecting every repository of a project of that many, one
//!   webhook, one RequiredReport;
//! - `200x50`: 200 bindings of 50 repositories each (one project each), each with a webhook and a
//!   RequiredReport.
//!
//! Each scenario runs in fresh processes, so that the figures are the operator's alone: this
//! binary re-executes itself once as the servers (the fake API server and the simulator, which
//! print their addresses as one JSON line and serve until their stdin closes) and once per run
//! as the operator (`controller::run` against them, until its stdin closes). This parent drives
//! the scenario over HTTP and reads each child's peak RSS and CPU time from `/proc`.
//!
//! Each runs cold (nothing in Bitbucket yet) until every object is Ready, then one no-op round:
//! the operator is restarted over converged state, which makes it do one round of every object.
//! Prints the time to Ready, the Bitbucket requests by endpoint against the minimum for the same
//! work, the operator's peak RSS and CPU time per repository (the servers' apart), the stored
//! size of each object, when each binding's first repository was done, and whether the wall time
//! kept the bound `1.1 × (requests − burst) / rate + 2 s`.
//!
//! `cargo bench --bench scale` runs all; `cargo bench --bench scale -- 1000 200x50` (or
//! `SCALE_SCENARIOS=1000`) runs some.

// The fake serves the tests too: what only they use is not used here.
#[allow(unused_imports)]
#[path = "../tests/fake_kube/mod.rs"]
mod fake_kube;

use std::{
    collections::{BTreeMap, HashMap},
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::Response,
    routing::get,
};
use bitbucket_operator::{
    controller::{self, Options},
    simulator::{
        Simulator,
        seed::{Permission, ProjectSeed, RepositorySeed, Seed, TokenSeed, UserSeed},
    },
};
use serde_json::{Value, json};

use crate::fake_kube::FakeKube;

const RATE: u64 = 1000;
const BURST: u64 = 10_000;
const TOKEN: &str = "BBDC-bench-token";
const NAMESPACE: &str = "team-a";
const GROUP: &str = "apis/bitbucket.integrations.dev/v1alpha1";
/// Repositories in one page of the operator's paged lists.
const PAGE: usize = 1000;
/// With no Bitbucket request for this long and some object not Ready, nothing will change: the
/// states are printed instead of waiting for the cap.
const STUCK: Duration = Duration::from_secs(15);

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    bindings: usize,
    repositories_per_binding: usize,
    cap: Duration,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario { name: "1000", bindings: 1, repositories_per_binding: 1000, cap: Duration::from_secs(120) },
    Scenario { name: "10000", bindings: 1, repositories_per_binding: 10_000, cap: Duration::from_secs(300) },
    Scenario { name: "200x50", bindings: 200, repositories_per_binding: 50, cap: Duration::from_secs(180) },
];

impl Scenario {
    fn repositories(&self) -> usize {
        self.bindings * self.repositories_per_binding
    }

    fn project(&self, b: usize) -> String {
        format!("P{b:03}")
    }

    fn binding(&self, b: usize) -> String {
        format!("binding-{b:03}")
    }

    fn report(&self, b: usize) -> String {
        format!("report-{b:03}")
    }
}

/// Ends the process with a message: a benchmark that cannot set itself up has nothing to show.
fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("scale benchmark: {what}");
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--servers") {
        let name = args.get(i + 1).unwrap_or_else(|| fail("--servers needs a scenario"));
        let scenario = SCENARIOS.iter().find(|s| s.name == name).unwrap_or_else(|| fail("unknown scenario"));
        servers(*scenario);
    }
    if let Some(i) = args.iter().position(|a| a == "--operator") {
        let url = args.get(i + 1).unwrap_or_else(|| fail("--operator needs the API server's URL"));
        operator(url);
    }
    // `cargo bench` passes `--bench`; anything else not starting with `-` names a scenario.
    // Run any other way without a scenario (`cargo test --benches`), it only says how to run it.
    let benching = args.iter().any(|a| a == "--bench");
    let mut wanted: Vec<String> = args.into_iter().filter(|a| !a.starts_with('-')).collect();
    if wanted.is_empty()
        && let Ok(list) = std::env::var("SCALE_SCENARIOS")
    {
        wanted = list.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    }
    if !benching && wanted.is_empty() {
        println!("scale benchmark: run it with `cargo bench --bench scale [-- 1000 10000 200x50]`");
        return;
    }
    for name in &wanted {
        if !SCENARIOS.iter().any(|s| s.name == name) {
            let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
            fail(format!("unknown scenario {name:?}; known: {}", known.join(", ")));
        }
    }
    let driver = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("runtime: {e}")));
    let mut rows = Vec::new();
    for scenario in SCENARIOS.iter().filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.name)) {
        rows.push(driver.block_on(run(*scenario)));
    }
    print_table(&rows);
}

fn print_table(rows: &[Value]) {
    println!();
    println!(
        "Summary (rate limit 1000/s, burst 10000; peak RSS and CPU of the operator's process, the servers' process apart):"
    );
    println!();
    println!(
        "| scenario | repos | Ready binding / report | cold requests (min) | no-op requests (min) | bound | operator peak RSS | operator CPU/repo | first repo done (max, share) | servers peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    for row in rows {
        let ready = |key: &str| row[key].as_f64().map_or_else(|| "—".to_owned(), |s| format!("{s:.1} s"));
        let first = match (row["first_done_max_s"].as_f64(), row["first_done_share"].as_f64()) {
            (Some(s), Some(share)) => format!("{s:.1} s, {:.0} %", share * 100.0),
            _ => "—".to_owned(),
        };
        println!(
            "| {} | {} | {} / {} | {} ({}) | {} ({}) | {} | {:.1} MiB | {:.3} ms | {first} | {:.0} MiB |",
            row["scenario"].as_str().unwrap_or_default(),
            row["repositories"],
            ready("binding_ready_s"),
            ready("report_ready_s"),
            row["cold_requests"],
            row["cold_minimum"],
            row["noop_requests"],
            row["noop_minimum"],
            row["bound"].as_str().unwrap_or_default(),
            row["operator_peak_rss_kib"].as_f64().unwrap_or_default() / 1024.0,
            row["operator_cpu_ms_per_repo"].as_f64().unwrap_or_default(),
            row["servers_peak_rss_kib"].as_f64().unwrap_or_default() / 1024.0,
        );
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Blocks until stdin closes: the parent ends a child by closing it, and a child whose parent
/// died ends too.
fn wait_for_stdin_to_close() {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}

// ---------------------------------------------------------------------------------------------
// The servers' process.

/// When each project's first webhook was created (unix ms), as its binding's first repository
/// done.
type FirstWebhooks = Arc<Mutex<BTreeMap<String, u64>>>;

/// The fake API server and the simulator, in this process, until stdin closes.
fn servers(scenario: Scenario) -> ! {
    // One worker, as the operator's process should have the other core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("runtime: {e}")));
    runtime.block_on(async {
        let sim = Simulator::new(seed(&scenario)).unwrap_or_else(|e| fail(format!("seed: {e}")));
        let fake = FakeKube::new();
        let (api_addr, _fake_handle) =
            fake.serve(([127, 0, 0, 1], 0).into()).await.unwrap_or_else(|e| fail(format!("serve the fake: {e}")));
        let firsts = FirstWebhooks::default();
        // The bench's own routes sit beside the simulator's control API; the operator never calls
        // them.
        let bench = Router::new()
            .route("/__bench/watches", get(move || std::future::ready(fake.open_watches().to_string())))
            .route(
                "/__bench/first-webhooks",
                get(|State(firsts): State<FirstWebhooks>| async move {
                    let firsts = firsts.lock().map(|f| f.clone()).unwrap_or_default();
                    axum::Json(firsts)
                }),
            )
            .with_state(firsts.clone());
        let app = sim.router().layer(middleware::from_fn_with_state(firsts, note_first_webhook)).merge(bench);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap_or_else(|e| fail(format!("serve the simulator: {e}")));
        let sim_addr = listener.local_addr().unwrap_or_else(|e| fail(format!("simulator address: {e}")));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                fail(format!("the simulator stopped: {e}"));
            }
        });
        let line = json!({"api": format!("http://{api_addr}"), "sim": format!("http://{sim_addr}")});
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            fail("cannot tell the parent where the servers are");
        }
        drop(out);
        let _ = tokio::task::spawn_blocking(wait_for_stdin_to_close).await;
    });
    // Dropping the runtime would wait for connections that never end.
    std::process::exit(0)
}

/// Notes the first successful `POST .../projects/{key}/repos/{slug}/webhooks` of each project.
async fn note_first_webhook(State(firsts): State<FirstWebhooks>, request: Request, next: Next) -> Response {
    let project = (request.method() == axum::http::Method::POST)
        .then(|| {
            let segments: Vec<&str> = request.uri().path().split('/').collect();
            match segments.as_slice() {
                ["", "rest", "api", _, "projects", key, "repos", _, "webhooks"] => Some((*key).to_owned()),
                _ => None,
            }
        })
        .flatten();
    let response = next.run(request).await;
    if let Some(project) = project
        && response.status().is_success()
        && let Ok(mut firsts) = firsts.lock()
    {
        firsts.entry(project).or_insert_with(unix_ms);
    }
    response
}

fn seed(scenario: &Scenario) -> Seed {
    let mut seed = Seed::default();
    seed.users.push(UserSeed {
        name: "svc-operator".into(),
        tokens: vec![TokenSeed { name: "operator".into(), token: TOKEN.into(), permissions: None }],
        ..UserSeed::default()
    });
    for b in 0..scenario.bindings {
        let mut project = ProjectSeed { key: scenario.project(b), ..ProjectSeed::default() };
        project.permissions.insert("svc-operator".into(), Permission::ProjectAdmin);
        project.repositories = (0..scenario.repositories_per_binding)
            .map(|n| RepositorySeed { slug: format!("repo-{n:05}"), ..RepositorySeed::default() })
            .collect();
        seed.projects.push(project);
    }
    seed
}

// ---------------------------------------------------------------------------------------------
// The operator's process.

/// `controller::run` against the API server at `api_url`, until stdin closes; the runtime is the
/// one `bitbucket-operator run` builds.
fn operator(api_url: &str) -> ! {
    let url = api_url.parse().unwrap_or_else(|e| fail(format!("API URL: {e}")));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("runtime: {e}")));
    runtime.block_on(async {
        let kube =
            controller::api_server::client(kube::Config::new(url)).unwrap_or_else(|e| fail(format!("client: {e}")));
        let options = Options {
            instance: Some("scale-bench".into()),
            wait_delay: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            ..Options::default()
        };
        let stdin_closed = tokio::task::spawn_blocking(wait_for_stdin_to_close);
        controller::run(kube, options, async move {
            let _ = stdin_closed.await;
        })
        .await;
    });
    std::process::exit(0)
}

// ---------------------------------------------------------------------------------------------
// The parent: drives a scenario and measures its children.

/// A child process that ends when its stdin closes.
struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Process {
    fn start(args: &[&str], stdout: Stdio) -> Process {
        let exe = std::env::current_exe().unwrap_or_else(|e| fail(format!("cannot find myself: {e}")));
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .spawn()
            .unwrap_or_else(|e| fail(format!("cannot start a child: {e}")));
        let stdin = child.stdin.take();
        Process { child, stdin }
    }

    fn proc_file(&self, name: &str) -> std::path::PathBuf {
        Path::new("/proc").join(self.child.id().to_string()).join(name)
    }

    /// utime + stime so far, in seconds.
    fn cpu(&self) -> f64 {
        stat_seconds(&self.proc_file("stat"))
    }

    /// Peak resident set (VmHWM) so far; only while the process runs.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(self.proc_file("status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Closes stdin and waits (at most 30 s) for the process to end.
    async fn stop(mut self, what: &str) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    fail(format!("the {what} did not stop within 30 s"));
                }
            }
        }
    }
}

/// utime + stime of a `/proc/.../stat` line, in seconds (Linux reports them in USER_HZ, 100).
fn stat_seconds(path: &Path) -> f64 {
    let Ok(text) = std::fs::read_to_string(path) else { return 0.0 };
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let Some((_, rest)) = text.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// The servers' addresses and an HTTP client for them.
struct Servers {
    process: Process,
    api: String,
    sim: String,
    http: reqwest::Client,
}

impl Servers {
    fn start(scenario: &Scenario) -> Servers {
        let mut process = Process::start(&["--servers", scenario.name], Stdio::piped());
        let stdout = process.child.stdout.take().unwrap_or_else(|| fail("the servers have no stdout"));
        let mut line = String::new();
        if BufReader::new(stdout).read_line(&mut line).is_err() || line.is_empty() {
            fail("the servers did not say where they are");
        }
        let addresses: Value = serde_json::from_str(&line).unwrap_or_else(|e| fail(format!("servers' line: {e}")));
        let address =
            |key: &str| addresses[key].as_str().unwrap_or_else(|| fail(format!("no {key} address"))).to_owned();
        // A busy fake answers late; a request that never ends must not hang the benchmark.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap_or_else(|e| fail(format!("HTTP client: {e}")));
        Servers { api: address("api"), sim: address("sim"), process, http }
    }

    async fn get(&self, url: &str) -> Option<Value> {
        let response = self.http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    async fn create(&self, object: &Value) {
        let plural = match object["kind"].as_str() {
            Some("Secret") => "api/v1/namespaces/team-a/secrets".to_owned(),
            Some(kind) => format!("{GROUP}/namespaces/{NAMESPACE}/{}s", kind.to_lowercase()),
            None => fail("an object without a kind"),
        };
        let response = self
            .http
            .post(format!("{}/{plural}", self.api))
            .json(object)
            .send()
            .await
            .unwrap_or_else(|e| fail(format!("create: {e}")));
        if !response.status().is_success() {
            let status = response.status();
            fail(format!("create failed: {status} {}", response.text().await.unwrap_or_default()));
        }
    }

    /// Every object of a custom resource, by name.
    async fn list(&self, plural: &str) -> HashMap<String, Value> {
        let list = self.get(&format!("{}/{GROUP}/namespaces/{NAMESPACE}/{plural}", self.api)).await;
        let items = list.and_then(|mut l| l.get_mut("items").map(Value::take));
        let items = match items {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        items.into_iter().filter_map(|o| Some((o["metadata"]["name"].as_str()?.to_owned(), o))).collect()
    }

    async fn object(&self, plural: &str, name: &str) -> Option<Value> {
        self.get(&format!("{}/{GROUP}/namespaces/{NAMESPACE}/{plural}/{name}", self.api)).await
    }

    async fn open_watches(&self) -> u64 {
        self.get(&format!("{}/__bench/watches", self.sim)).await.and_then(|v| v.as_u64()).unwrap_or(0)
    }

    async fn first_webhooks(&self) -> BTreeMap<String, u64> {
        let firsts = self.get(&format!("{}/__bench/first-webhooks", self.sim)).await;
        firsts.and_then(|f| serde_json::from_value(f).ok()).unwrap_or_default()
    }

    /// The simulator's counters: total, and by endpoint and status.
    async fn counters(&self) -> (u64, BTreeMap<String, BTreeMap<u16, u64>>) {
        let Some(counters) = self.get(&format!("{}/__simulator/counters", self.sim)).await else {
            return (0, BTreeMap::new());
        };
        let mut by_endpoint: BTreeMap<String, BTreeMap<u16, u64>> = BTreeMap::new();
        for (endpoint, statuses) in counters["byEndpointAndStatus"].as_object().into_iter().flatten() {
            for (status, n) in statuses.as_object().into_iter().flatten() {
                if let (Ok(status), Some(n)) = (status.parse(), n.as_u64()) {
                    by_endpoint.entry(endpoint.clone()).or_default().insert(status, n);
                }
            }
        }
        (counters["total"].as_u64().unwrap_or(0), by_endpoint)
    }

    async fn clear_requests(&self) {
        if self.http.delete(format!("{}/__simulator/requests", self.sim)).send().await.is_err() {
            fail("cannot clear the simulator's counters");
        }
    }

    /// Waits until the simulator has seen no request for `quiet`, or `cap` passed.
    async fn settle(&self, quiet: Duration, cap: Duration) -> bool {
        let deadline = Instant::now() + cap;
        let mut last = (self.counters().await.0, Instant::now());
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let count = self.counters().await.0;
            if count != last.0 {
                last = (count, Instant::now());
            } else if last.1.elapsed() >= quiet {
                return true;
            }
        }
        false
    }
}

fn objects(scenario: &Scenario, sim_url: &str) -> Vec<Value> {
    let mut objects = vec![
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bitbucket-token", "namespace": NAMESPACE,
                         "labels": {"bitbucket.integrations.dev/credential": "true"}},
            "stringData": {"token": TOKEN},
        }),
        json!({
            "apiVersion": "bitbucket.integrations.dev/v1alpha1", "kind": "BitbucketConfiguration",
            "metadata": {"name": "bitbucket", "namespace": NAMESPACE},
            "spec": {"url": sim_url, "allowInsecureHttp": true,
                     "rateLimit": {"requestsPerSecond": RATE, "burst": BURST},
                     "auth": {"token": {"secretRef": {"name": "bitbucket-token"}}}},
        }),
    ];
    for b in 0..scenario.bindings {
        objects.push(json!({
            "apiVersion": "bitbucket.integrations.dev/v1alpha1", "kind": "ProjectBinding",
            "metadata": {"name": scenario.binding(b), "namespace": NAMESPACE},
            "spec": {"configurationRef": {"name": "bitbucket"}, "projectKey": scenario.project(b),
                     "repositories": {"include": ["*"]},
                     "webhooks": [{"name": "ci", "url": "https://ci.example.com/hook",
                                   "events": ["repo:refs_changed"]}]},
        }));
        objects.push(json!({
            "apiVersion": "bitbucket.integrations.dev/v1alpha1", "kind": "RequiredReport",
            "metadata": {"name": scenario.report(b), "namespace": NAMESPACE},
            "spec": {"bindingRef": {"name": scenario.binding(b)}},
        }));
    }
    objects
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}

/// Whether an object is Ready with `reason` at its current generation.
fn is_ready(object: &Value, reason: &str) -> bool {
    condition(object, "Ready").is_some_and(|c| c["status"] == "True" && c["reason"] == reason)
        && object["status"]["observedGeneration"] == object["metadata"]["generation"]
}

/// `Ready=status reason (…): message` of the Ready condition, the message cut short, and the
/// Stalled condition's reason when it is True.
fn state(object: Option<&Value>) -> String {
    let Some(object) = object else { return "absent".into() };
    let Some(c) = condition(object, "Ready") else { return "no Ready condition yet".into() };
    let message: String = c["message"].as_str().unwrap_or_default().chars().take(160).collect();
    let stalled = condition(object, "Stalled")
        .filter(|s| s["status"] == "True")
        .map(|s| format!(", Stalled {}", s["reason"].as_str().unwrap_or("?")))
        .unwrap_or_default();
    format!(
        "Ready={} {}{stalled} (generation {}, observed {}): {message}",
        c["status"].as_str().unwrap_or("?"),
        c["reason"].as_str().unwrap_or("?"),
        object["metadata"]["generation"],
        object["status"]["observedGeneration"]
    )
}

/// Prints the requests by endpoint template, reads and writes apart, with the statuses seen.
/// Returns (total, writes) and the number of endpoints served outside any project.
fn print_requests(
    title: &str,
    by_endpoint: &BTreeMap<String, BTreeMap<u16, u64>>,
    repositories: usize,
    minimum: u64,
) -> (u64, u64) {
    let total: u64 = by_endpoint.values().flat_map(|s| s.values()).sum();
    let writes: u64 = by_endpoint.iter().filter(|(e, _)| !e.starts_with("GET ")).flat_map(|(_, s)| s.values()).sum();
    println!(
        "  {title}: {total} Bitbucket requests ({} reads, {writes} writes), {:.2} per repository; minimum {minimum} (ratio {:.2})",
        total - writes,
        total as f64 / repositories as f64,
        total as f64 / minimum.max(1) as f64
    );
    for (endpoint, statuses) in by_endpoint {
        let n: u64 = statuses.values().sum();
        let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        println!("    {n:>7}  {endpoint}  [{}]", statuses.join(" "));
    }
    (total, writes)
}

/// Requests of one connection check: the endpoints served outside any project, each once.
fn connection_check_requests(by_endpoint: &BTreeMap<String, BTreeMap<u16, u64>>) -> u64 {
    by_endpoint.keys().filter(|endpoint| !endpoint.contains("/projects/")).count() as u64
}

/// Starts an operator and waits until its watches are open, as in a running cluster.
async fn start_operator(servers: &Servers) -> Process {
    let operator = Process::start(&["--operator", &servers.api], Stdio::null());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = (0, Instant::now());
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let open = servers.open_watches().await;
        if open != seen.0 {
            seen = (open, Instant::now());
        } else if open > 0 && seen.1.elapsed() > Duration::from_millis(500) {
            break;
        }
    }
    operator
}

async fn run(scenario: Scenario) -> Value {
    let repositories = scenario.repositories();
    println!(
        "\n== scenario {}: {} binding(s) × {} repositories = {repositories} repositories, {} webhook(s), {} RequiredReport(s)",
        scenario.name, scenario.bindings, scenario.repositories_per_binding, scenario.bindings, scenario.bindings
    );
    println!("  the operator runs in its own process; the simulator and the fake API server in another");
    let servers = Servers::start(&scenario);
    let operator = start_operator(&servers).await;

    let operator_cpu_before = operator.cpu();
    let servers_cpu_before = servers.process.cpu();
    let start_ms = unix_ms();
    let started = Instant::now();
    for object in objects(&scenario, &servers.sim) {
        servers.create(&object).await;
    }
    let index: HashMap<String, usize> =
        (0..scenario.bindings).flat_map(|b| [(scenario.binding(b), b), (scenario.report(b), b)]).collect();
    let poll = if repositories >= 5000 { Duration::from_millis(500) } else { Duration::from_millis(200) };
    let mut binding_ready: Vec<Option<Duration>> = vec![None; scenario.bindings];
    let mut report_ready: Vec<Option<Duration>> = vec![None; scenario.bindings];
    let mut requests = (0, Instant::now());
    let converged = loop {
        for (plural, reason, ready) in
            [("projectbindings", "Bound", &mut binding_ready), ("requiredreports", "InSync", &mut report_ready)]
        {
            for (name, object) in servers.list(plural).await {
                if let Some(&b) = index.get(&name)
                    && ready[b].is_none()
                    && is_ready(&object, reason)
                {
                    ready[b] = Some(started.elapsed());
                }
            }
        }
        if binding_ready.iter().chain(&report_ready).all(Option::is_some) {
            break true;
        }
        let count = servers.counters().await.0;
        if count != requests.0 {
            requests = (count, Instant::now());
        }
        if started.elapsed() > scenario.cap || requests.1.elapsed() > STUCK {
            break false;
        }
        tokio::time::sleep(poll).await;
    };
    let ready_wall = started.elapsed();
    let last = |v: &[Option<Duration>]| v.iter().flatten().max().map(Duration::as_secs_f64);
    let (binding_s, report_s) = (last(&binding_ready), last(&report_ready));
    let ready_count = |v: &[Option<Duration>]| v.iter().flatten().count();
    if converged {
        println!(
            "  cold: every binding Ready after {:.2} s, every report after {:.2} s",
            binding_s.unwrap_or_default(),
            report_s.unwrap_or_default()
        );
    } else {
        println!(
            "  cold: NOT converged after {:.0} s ({}): {}/{} bindings and {}/{} reports Ready; states:",
            ready_wall.as_secs_f64(),
            if started.elapsed() > scenario.cap { "the cap" } else { "no Bitbucket request for 15 s" },
            ready_count(&binding_ready),
            scenario.bindings,
            ready_count(&report_ready),
            scenario.bindings
        );
        print_states(&scenario, &servers).await;
    }
    // The requests of the cold run include what was still in flight when the last object turned
    // Ready.
    servers.settle(Duration::from_secs(3), Duration::from_secs(60)).await;
    let cold_cpu = operator.cpu() - operator_cpu_before;
    let cold_servers_cpu = servers.process.cpu() - servers_cpu_before;
    let (_, by_endpoint) = servers.counters().await;
    let check = connection_check_requests(&by_endpoint);
    let pages = scenario.bindings as u64 * scenario.repositories_per_binding.div_ceil(PAGE) as u64;
    let cold_minimum = 4 * repositories as u64 + pages + check;
    let (cold_total, cold_writes) = print_requests("cold", &by_endpoint, repositories, cold_minimum);
    println!(
        "    (minimum: per repository one read and at most one write per managed object (webhook list and create, merge-check read and write); {pages} repository page(s); {check} connection-check request(s))"
    );
    let bound = 1.1 * (cold_total.saturating_sub(BURST)) as f64 / RATE as f64 + 2.0;
    let held = converged && ready_wall.as_secs_f64() <= bound;
    println!(
        "  bound: wall {:.2} s ≤ 1.1 × ({cold_total} − {BURST}) / {RATE} + 2 = {bound:.2} s: {}",
        ready_wall.as_secs_f64(),
        if held { "held" } else { "NOT held" }
    );
    print_cpu("cold", cold_cpu, cold_servers_cpu, repositories);
    let fairness = fairness(&scenario, &servers.first_webhooks().await, start_ms, &binding_ready, ready_wall);

    let sizes = print_sizes(&scenario, &servers).await;
    let cold_rss = operator.peak_rss_kib();
    operator.stop("operator").await;

    // One no-op round: a restart over converged state reconciles every object once.
    servers.clear_requests().await;
    let restarted = Instant::now();
    let operator = start_operator(&servers).await;
    let settled = servers.settle(Duration::from_secs(3), scenario.cap).await;
    // The quiet period that ends the round is not part of it.
    let round = restarted.elapsed().saturating_sub(Duration::from_secs(3));
    // The restarted process's whole life is the round, its start and watches included.
    let noop_cpu = operator.cpu();
    let noop_rss = operator.peak_rss_kib();
    let noop_minimum = (repositories + repositories) as u64 + pages + check;
    println!(
        "  no-op round (restart over converged state){}: about {:.2} s",
        if settled { "" } else { " NOT settled" },
        round.as_secs_f64()
    );
    let (_, by_endpoint) = servers.counters().await;
    let (noop_total, noop_writes) = print_requests("no-op", &by_endpoint, repositories, noop_minimum);
    println!(
        "    (minimum: per repository a webhook read and a merge-check read, no write; {pages} page(s); {check} connection-check request(s))"
    );
    println!(
        "  CPU (no-op): operator process {:.2} s ({:.3} ms/repo), from its start",
        noop_cpu,
        noop_cpu * 1000.0 / repositories as f64
    );
    operator.stop("operator").await;
    let servers_rss = servers.process.peak_rss_kib();
    println!(
        "  peak RSS (VmHWM): operator process {:.1} MiB cold, {:.1} MiB no-op; servers' process (simulator + fake API server) {:.1} MiB",
        cold_rss as f64 / 1024.0,
        noop_rss as f64 / 1024.0,
        servers_rss as f64 / 1024.0
    );
    servers.process.stop("servers").await;

    let mut row = json!({
        "scenario": scenario.name,
        "repositories": repositories,
        "managed_objects": scenario.bindings * 2,
        "converged": converged,
        "binding_ready_s": binding_s.filter(|_| converged),
        "report_ready_s": report_s.filter(|_| converged),
        "cold_requests": cold_total,
        "cold_writes": cold_writes,
        "cold_minimum": cold_minimum,
        "noop_requests": noop_total,
        "noop_writes": noop_writes,
        "noop_minimum": noop_minimum,
        "bound": if held { format!("held ({bound:.1} s)") } else { format!("NOT held ({bound:.1} s)") },
        "operator_peak_rss_kib": cold_rss.max(noop_rss),
        "operator_cpu_ms_per_repo": cold_cpu * 1000.0 / repositories as f64,
        "servers_peak_rss_kib": servers_rss,
        "largest_object_bytes": sizes,
    });
    if let (Value::Object(row), Value::Object(fairness)) = (&mut row, fairness) {
        row.extend(fairness);
    }
    row
}

fn print_cpu(phase: &str, operator: f64, servers: f64, repositories: usize) {
    let per = |s: f64| s * 1000.0 / repositories as f64;
    println!(
        "  CPU ({phase}): operator process {operator:.2} s ({:.3} ms/repo); servers' process {servers:.2} s ({:.3} ms/repo)",
        per(operator),
        per(servers),
    );
}

/// When each binding's first repository was done (its first webhook created) and when it was
/// Ready: a fair shared rate limit lets every binding start long before the last one is Ready.
fn fairness(
    scenario: &Scenario,
    firsts: &BTreeMap<String, u64>,
    start_ms: u64,
    binding_ready: &[Option<Duration>],
    total: Duration,
) -> Value {
    let first_done: Vec<Option<f64>> = (0..scenario.bindings)
        .map(|b| firsts.get(&scenario.project(b)).map(|&ms| ms.saturating_sub(start_ms) as f64 / 1000.0))
        .collect();
    let Some((latest, max)) =
        first_done.iter().enumerate().filter_map(|(b, s)| Some((b, (*s)?))).max_by(|a, b| a.1.total_cmp(&b.1))
    else {
        println!("  first repository done: no webhook was created");
        return json!({});
    };
    let missing = first_done.iter().filter(|s| s.is_none()).count();
    let total = total.as_secs_f64();
    let share = max / total.max(f64::EPSILON);
    println!(
        "  first repository done (first webhook created): latest {max:.2} s after the start, by {} ({:.0} % of the {total:.2} s to Ready){}",
        scenario.binding(latest),
        share * 100.0,
        if missing > 0 { format!("; {missing} binding(s) without one") } else { String::new() }
    );
    let mut ready: Vec<f64> = binding_ready.iter().flatten().map(Duration::as_secs_f64).collect();
    ready.sort_by(f64::total_cmp);
    if let (Some(first), Some(last)) = (ready.first(), ready.last()) {
        let median = ready.get(ready.len() / 2).copied().unwrap_or_default();
        println!(
            "  bindings Ready: first {first:.2} s, median {median:.2} s, last {last:.2} s (spread {:.2} s) over {} binding(s)",
            last - first,
            ready.len()
        );
    }
    json!({"first_done_max_s": max, "first_done_share": share})
}

/// The JSON size of each object as the fake stores and serves it (managedFields left out).
/// Returns the largest.
async fn print_sizes(scenario: &Scenario, servers: &Servers) -> u64 {
    let size = |object: Option<Value>| object.map_or(0, |o| serde_json::to_vec(&o).map_or(0, |v| v.len() as u64));
    let config = size(servers.object("bitbucketconfigurations", "bitbucket").await);
    let mut bindings = Vec::new();
    let mut reports = Vec::new();
    for b in 0..scenario.bindings {
        bindings.push(size(servers.object("projectbindings", &scenario.binding(b)).await));
        reports.push(size(servers.object("requiredreports", &scenario.report(b)).await));
    }
    let describe = |sizes: &[u64]| {
        let max = sizes.iter().max().copied().unwrap_or(0);
        if sizes.len() == 1 {
            format!("{max} bytes")
        } else {
            let min = sizes.iter().min().copied().unwrap_or(0);
            format!("{min}..{max} bytes each, {} in all", sizes.iter().sum::<u64>())
        }
    };
    println!(
        "  stored JSON size (as served, without managedFields): configuration {config} bytes; binding(s) {}; report(s) {}",
        describe(&bindings),
        describe(&reports)
    );
    bindings.iter().chain(&reports).copied().max().unwrap_or(0).max(config)
}

/// Every object's Ready state; for many objects, the states counted with one example each.
async fn print_states(scenario: &Scenario, servers: &Servers) {
    let config = servers.object("bitbucketconfigurations", "bitbucket").await;
    println!("    configuration bitbucket: {}", state(config.as_ref()));
    let mut states: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (plural, name) in [
        ("projectbindings", Scenario::binding as fn(&Scenario, usize) -> String),
        ("requiredreports", Scenario::report),
    ] {
        let objects = servers.list(plural).await;
        for b in 0..scenario.bindings {
            let name = name(scenario, b);
            let s = state(objects.get(&name));
            let key = format!("{plural}: {}", s.split(':').next().unwrap_or_default());
            let entry = states.entry(key).or_insert((0, format!("{name}: {s}")));
            entry.0 += 1;
        }
    }
    for (key, (n, example)) in states {
        println!("    {n:>4} × {key} — e.g. {example}");
    }
}
