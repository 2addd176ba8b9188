//! Scale benchmark: the real controllers (`controller::run`) on the fake Kubernetes API server
//! and the embedded Bitbucket simulator, with one configuration at the highest rate limit
//! (1000/s, burst 10000).
//!
//! Scenarios (each in a fresh child process, so peak memory does not add up):
//! - `1000`, `10000`: one binding selecting every repository of a project of that many, one
//!   webhook, one RequiredReport;
//! - `200x50`: 200 bindings of 50 repositories each (one project each), each with a webhook and a
//!   RequiredReport.
//!
//! Each runs cold (nothing in Bitbucket yet) until every object is Ready, then one no-op round:
//! the operator is restarted over converged state, which makes it do one round of every object.
//! Prints the time to Ready, the Bitbucket requests by endpoint against the minimum for the same
//! work, peak RSS, CPU time per repository, the stored size of each object, and whether the
//! wall time kept the bound `1.1 × (requests − burst) / rate + 2 s`.
//!
//! `cargo bench --bench scale` runs all; `cargo bench --bench scale -- 1000 200x50` (or
//! `SCALE_SCENARIOS=1000`) runs some.

// The fake serves the tests too: what only they use is not used here.
#[allow(unused_imports)]
#[path = "../tests/fake_kube/mod.rs"]
mod fake_kube;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use bitbucket_operator::{
    controller::{self, Options},
    simulator::{
        Simulator,
        seed::{Permission, ProjectSeed, RepositorySeed, Seed, TokenSeed, UserSeed},
    },
};
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::fake_kube::FakeKube;

const RATE: u64 = 1000;
const BURST: u64 = 10_000;
const TOKEN: &str = "BBDC-bench-token";
const NAMESPACE: &str = "team-a";
/// Repositories in one page of the operator's paged lists.
const PAGE: usize = 1000;
/// Thread name prefixes, to split CPU time between the operator and the servers it talks to.
const OPERATOR_THREADS: &str = "operator";
const SERVER_THREADS: &str = "sim-fake";

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
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let name = args.get(i + 1).unwrap_or_else(|| fail("--child needs a scenario"));
        let out = args.get(i + 2).unwrap_or_else(|| fail("--child needs an output file"));
        let scenario = SCENARIOS.iter().find(|s| s.name == name).unwrap_or_else(|| fail("unknown scenario"));
        child(*scenario, Path::new(out));
        return;
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
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(format!("cannot find myself: {e}")));
    let mut rows = Vec::new();
    for scenario in SCENARIOS.iter().filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.name)) {
        let out = std::env::temp_dir().join(format!("scale-bench-{}-{}.json", std::process::id(), scenario.name));
        let status = Command::new(&exe)
            .args(["--child", scenario.name])
            .arg(&out)
            .status()
            .unwrap_or_else(|e| fail(format!("cannot start a child: {e}")));
        let row = std::fs::read_to_string(&out).ok().and_then(|text| serde_json::from_str::<Value>(&text).ok());
        let _ = std::fs::remove_file(&out);
        match row {
            Some(row) if status.success() => rows.push(row),
            _ => eprintln!("scenario {} failed ({status})", scenario.name),
        }
    }
    print_table(&rows);
}

fn print_table(rows: &[Value]) {
    println!();
    println!("Summary (rate limit 1000/s, burst 10000; CPU of the operator's threads only):");
    println!();
    println!(
        "| scenario | repos | Ready binding / report | cold requests (min) | no-op requests (min) | bound | peak RSS | operator CPU/repo |"
    );
    println!("|---|---:|---:|---:|---:|---|---:|---:|");
    for row in rows {
        let ready = |key: &str| row[key].as_f64().map_or_else(|| "—".to_owned(), |s| format!("{s:.1} s"));
        println!(
            "| {} | {} | {} / {} | {} ({}) | {} ({}) | {} | {:.0} MiB | {:.2} ms |",
            row["scenario"].as_str().unwrap_or_default(),
            row["repositories"],
            ready("binding_ready_s"),
            ready("report_ready_s"),
            row["cold_requests"],
            row["cold_minimum"],
            row["noop_requests"],
            row["noop_minimum"],
            row["bound"].as_str().unwrap_or_default(),
            row["peak_rss_kib"].as_f64().unwrap_or_default() / 1024.0,
            row["operator_cpu_ms_per_repo"].as_f64().unwrap_or_default(),
        );
    }
}

/// One scenario, in this (fresh) process; the summary row goes to `out` as JSON.
fn child(scenario: Scenario, out: &Path) {
    // The simulator and the fake run on their own runtime so their CPU can be told apart; the
    // operator talks to both over loopback TCP as it would in a cluster.
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SERVER_THREADS)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("runtime: {e}")));
    let operator = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(OPERATOR_THREADS)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("runtime: {e}")));

    let (sim, fake, api_url) = servers.block_on(async {
        let sim = Simulator::new(seed(&scenario)).unwrap_or_else(|e| fail(format!("seed: {e}")));
        let running = sim.serve(([127, 0, 0, 1], 0).into()).await.unwrap_or_else(|e| fail(format!("serve: {e}")));
        let fake = FakeKube::new();
        let (addr, handle) =
            fake.serve(([127, 0, 0, 1], 0).into()).await.unwrap_or_else(|e| fail(format!("serve the fake: {e}")));
        // Both serve for the life of the process.
        std::mem::forget(handle);
        let sim_url = running.base_url();
        let sim = running.simulator().clone();
        std::mem::forget(running);
        (sim, fake, (format!("http://{addr}"), sim_url))
    });
    let (api_url, sim_url) = api_url;
    let report = operator.block_on(run(scenario, &sim, &fake, &api_url, &sim_url));
    let text = serde_json::to_string(&report).unwrap_or_else(|e| fail(format!("summary: {e}")));
    if let Err(e) = std::fs::write(out, text) {
        fail(format!("cannot write {}: {e}", out.display()));
    }
    // Dropping the runtimes would wait for servers that never end.
    std::process::exit(0);
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

/// CPU seconds (user + system) of the process, of the operator's threads and of the servers'.
#[derive(Clone, Copy, Default)]
struct Cpu {
    process: f64,
    operator: f64,
    servers: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, other: Cpu) -> Cpu {
        Cpu {
            process: self.process - other.process,
            operator: self.operator - other.operator,
            servers: self.servers - other.servers,
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

fn cpu() -> Cpu {
    let mut cpu = Cpu { process: stat_seconds(Path::new("/proc/self/stat")), ..Cpu::default() };
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return cpu };
    for task in tasks.flatten() {
        let dir: PathBuf = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let seconds = stat_seconds(&dir.join("stat"));
        if name.starts_with(OPERATOR_THREADS) {
            cpu.operator += seconds;
        } else if name.starts_with(SERVER_THREADS) {
            cpu.servers += seconds;
        }
    }
    cpu
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Operator {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn start_operator(api_url: &str) -> Operator {
    let url = api_url.parse().unwrap_or_else(|e| fail(format!("API URL: {e}")));
    let kube = controller::api_server::client(kube::Config::new(url)).unwrap_or_else(|e| fail(format!("client: {e}")));
    let options = Options {
        instance: Some("scale-bench".into()),
        wait_delay: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        ..Options::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(controller::run(kube, options, async move {
        let _ = stopped.await;
    }));
    Operator { stop, task }
}

async fn stop_operator(operator: Operator) {
    let _ = operator.stop.send(());
    if tokio::time::timeout(Duration::from_secs(30), operator.task).await.is_err() {
        fail("the operator did not stop within 30 s");
    }
}

/// Whether an object is Ready with `reason` at its current generation.
fn is_ready(object: &Value, reason: &str) -> bool {
    ready_condition(object).is_some_and(|c| c["status"] == "True" && c["reason"] == reason)
        && object["status"]["observedGeneration"] == object["metadata"]["generation"]
}

fn ready_condition(object: &Value) -> Option<&Value> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")
}

/// `status/reason: message` of the Ready condition, the message cut short.
fn state(object: Option<&Value>) -> String {
    let Some(object) = object else { return "absent".into() };
    let Some(c) = ready_condition(object) else { return "no Ready condition yet".into() };
    let message: String = c["message"].as_str().unwrap_or_default().chars().take(160).collect();
    format!(
        "Ready={} {} (generation {}, observed {}): {message}",
        c["status"].as_str().unwrap_or("?"),
        c["reason"].as_str().unwrap_or("?"),
        object["metadata"]["generation"],
        object["status"]["observedGeneration"]
    )
}

/// Waits until the simulator has seen no request for `quiet`, or `cap` passed.
async fn settle(sim: &Simulator, quiet: Duration, cap: Duration) -> bool {
    let deadline = Instant::now() + cap;
    let mut last = (sim.request_count(), Instant::now());
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let count = sim.request_count();
        if count != last.0 {
            last = (count, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return true;
        }
    }
    false
}

/// Requests by endpoint template, reads and writes apart, with the statuses seen.
fn print_requests(title: &str, sim: &Simulator, repositories: usize, minimum: u64) -> (u64, u64) {
    let mut by_endpoint: BTreeMap<String, BTreeMap<u16, u64>> = BTreeMap::new();
    for ((endpoint, status), n) in sim.request_counts_by_status() {
        *by_endpoint.entry(endpoint).or_default().entry(status).or_insert(0) += n;
    }
    let total: u64 = by_endpoint.values().flat_map(|s| s.values()).sum();
    let writes: u64 = by_endpoint.iter().filter(|(e, _)| !e.starts_with("GET ")).flat_map(|(_, s)| s.values()).sum();
    println!(
        "  {title}: {total} Bitbucket requests ({} reads, {writes} writes), {:.2} per repository; minimum {minimum} (ratio {:.2})",
        total - writes,
        total as f64 / repositories as f64,
        total as f64 / minimum.max(1) as f64
    );
    for (endpoint, statuses) in &by_endpoint {
        let n: u64 = statuses.values().sum();
        let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        println!("    {n:>7}  {endpoint}  [{}]", statuses.join(" "));
    }
    (total, writes)
}

/// Requests of one connection check: the endpoints served outside any project, each once (the
/// simulator's request log keeps only the newest records, its counts keep every endpoint).
fn connection_check_requests(sim: &Simulator) -> u64 {
    sim.request_counts().keys().filter(|endpoint| !endpoint.contains("/projects/")).count() as u64
}

async fn run(scenario: Scenario, sim: &Simulator, fake: &FakeKube, api_url: &str, sim_url: &str) -> Value {
    let repositories = scenario.repositories();
    let managed = scenario.bindings * 2;
    println!(
        "\n== scenario {}: {} binding(s) × {} repositories = {repositories} repositories, {} webhook(s), {} RequiredReport(s)",
        scenario.name, scenario.bindings, scenario.repositories_per_binding, scenario.bindings, scenario.bindings
    );
    println!("  simulator and fake API server run in this process on their own runtime; CPU is split by thread");

    let operator = start_operator(api_url);
    // Let the watches open before the clock starts, as in a running cluster.
    let watches_deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = (0, Instant::now());
    while Instant::now() < watches_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let open = fake.open_watches();
        if open != seen.0 {
            seen = (open, Instant::now());
        } else if open > 0 && seen.1.elapsed() > Duration::from_millis(500) {
            break;
        }
    }

    let cpu_before = cpu();
    let started = Instant::now();
    for object in objects(&scenario, sim_url) {
        if let Err(status) = fake.create(object) {
            fail(format!("create failed: {status}"));
        }
    }
    let poll = if repositories >= 5000 { Duration::from_millis(500) } else { Duration::from_millis(200) };
    let mut binding_ready: Vec<Option<Duration>> = vec![None; scenario.bindings];
    let mut report_ready: Vec<Option<Duration>> = vec![None; scenario.bindings];
    let converged = loop {
        for b in 0..scenario.bindings {
            if binding_ready[b].is_none()
                && fake
                    .object("projectbindings", NAMESPACE, &scenario.binding(b))
                    .is_some_and(|o| is_ready(&o, "Bound"))
            {
                binding_ready[b] = Some(started.elapsed());
            }
            if report_ready[b].is_none()
                && fake
                    .object("requiredreports", NAMESPACE, &scenario.report(b))
                    .is_some_and(|o| is_ready(&o, "InSync"))
            {
                report_ready[b] = Some(started.elapsed());
            }
        }
        if binding_ready.iter().chain(&report_ready).all(Option::is_some) {
            break true;
        }
        if started.elapsed() > scenario.cap {
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
            "  cold: NOT converged within {:?}: {}/{} bindings and {}/{} reports Ready; states:",
            scenario.cap,
            ready_count(&binding_ready),
            scenario.bindings,
            ready_count(&report_ready),
            scenario.bindings
        );
        print_states(&scenario, fake);
    }
    // The requests of the cold run include what was still in flight when the last object turned
    // Ready.
    settle(sim, Duration::from_secs(3), Duration::from_secs(60)).await;
    let cpu_cold = cpu() - cpu_before;
    let check = connection_check_requests(sim);
    let pages = scenario.bindings as u64 * scenario.repositories_per_binding.div_ceil(PAGE) as u64;
    let cold_minimum = 4 * repositories as u64 + pages + check;
    let (cold_total, cold_writes) = print_requests("cold", sim, repositories, cold_minimum);
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
    print_cpu("cold", cpu_cold, repositories);

    let sizes = print_sizes(&scenario, fake);

    // One no-op round: a restart over converged state reconciles every object once.
    stop_operator(operator).await;
    sim.clear_requests();
    let cpu_before = cpu();
    let restarted = Instant::now();
    let operator = start_operator(api_url);
    let settled = settle(sim, Duration::from_secs(3), scenario.cap).await;
    // The quiet period that ends the round is not part of it.
    let round = restarted.elapsed().saturating_sub(Duration::from_secs(3));
    let cpu_noop = cpu() - cpu_before;
    let noop_minimum = (repositories + repositories) as u64 + pages + check;
    println!(
        "  no-op round (restart over converged state){}: about {:.2} s",
        if settled { "" } else { " NOT settled" },
        round.as_secs_f64()
    );
    let (noop_total, noop_writes) = print_requests("no-op", sim, repositories, noop_minimum);
    println!(
        "    (minimum: per repository a webhook read and a merge-check read, no write; {pages} page(s); {check} connection-check request(s))"
    );
    print_cpu("no-op", cpu_noop, repositories);
    stop_operator(operator).await;
    let peak = peak_rss_kib();
    println!("  peak RSS (VmHWM) of the process, servers included: {:.1} MiB", peak as f64 / 1024.0);

    json!({
        "scenario": scenario.name,
        "repositories": repositories,
        "managed_objects": managed,
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
        "peak_rss_kib": peak,
        "operator_cpu_ms_per_repo": cpu_cold.operator * 1000.0 / repositories as f64,
        "largest_object_bytes": sizes,
    })
}

fn print_cpu(phase: &str, cpu: Cpu, repositories: usize) {
    let per = |s: f64| s * 1000.0 / repositories as f64;
    println!(
        "  CPU ({phase}): process {:.2} s ({:.3} ms/repo); operator threads {:.2} s ({:.3} ms/repo); simulator+fake threads {:.2} s; rest (harness, exited threads) {:.2} s",
        cpu.process,
        per(cpu.process),
        cpu.operator,
        per(cpu.operator),
        cpu.servers,
        (cpu.process - cpu.operator - cpu.servers).max(0.0)
    );
}

/// The JSON size of each object as the fake stores and serves it (managedFields left out).
/// Returns the largest.
fn print_sizes(scenario: &Scenario, fake: &FakeKube) -> u64 {
    let size = |resource: &str, name: &str| {
        fake.object(resource, NAMESPACE, name).map_or(0, |o| serde_json::to_vec(&o).map_or(0, |v| v.len() as u64))
    };
    let config = size("bitbucketconfigurations", "bitbucket");
    let bindings: Vec<u64> = (0..scenario.bindings).map(|b| size("projectbindings", &scenario.binding(b))).collect();
    let reports: Vec<u64> = (0..scenario.bindings).map(|b| size("requiredreports", &scenario.report(b))).collect();
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
fn print_states(scenario: &Scenario, fake: &FakeKube) {
    let mut states: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let config = fake.object("bitbucketconfigurations", NAMESPACE, "bitbucket");
    println!("    configuration bitbucket: {}", state(config.as_ref()));
    for b in 0..scenario.bindings {
        for (resource, name) in [("projectbindings", scenario.binding(b)), ("requiredreports", scenario.report(b))] {
            let object = fake.object(resource, NAMESPACE, &name);
            let s = state(object.as_ref());
            let key = format!("{resource}: {}", s.split(':').next().unwrap_or_default());
            let entry = states.entry(key).or_insert((0, format!("{name}: {s}")));
            entry.0 += 1;
        }
    }
    for (key, (n, example)) in states {
        println!("    {n:>4} × {key} — e.g. {example}");
    }
}
