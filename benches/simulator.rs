//! Load benchmark of the Bitbucket simulator: 64 concurrent reqwest tasks against a simulator on
//! 127.0.0.1 seeded with one project of 200 repositories, mixing GET repository, GET repository
//! page (limit 100), GET merge check and PUT merge check. Bounded: 20 000 requests or 30 s,
//! whichever comes first. Prints requests/second and p50/p99 latency.
//!
//! Run with `cargo bench --bench simulator`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bitbucket_operator::simulator::{
    Simulator,
    seed::{Permission, ProjectSeed, RepositorySeed, Seed, TokenSeed, UserSeed},
};
use serde_json::json;

const REPOS: usize = 200;
const TASKS: usize = 64;
const TOTAL_REQUESTS: u64 = 20_000;
const TIME_LIMIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "bench-token";

fn seed() -> Seed {
    let mut seed = Seed::default();
    seed.users.push(UserSeed {
        name: "bench".into(),
        tokens: vec![TokenSeed { name: "bench".into(), token: TOKEN.into(), permissions: None }],
        ..UserSeed::default()
    });
    let mut project = ProjectSeed { key: "BENCH".into(), ..ProjectSeed::default() };
    project.permissions.insert("bench".into(), Permission::ProjectAdmin);
    project.repositories =
        (0..REPOS).map(|n| RepositorySeed { slug: format!("repo-{n:03}"), ..RepositorySeed::default() }).collect();
    seed.projects.push(project);
    seed
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    failures: u64,
}

#[tokio::main]
async fn main() {
    let simulator = match Simulator::new(seed()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bad seed: {e}");
            std::process::exit(1);
        }
    };
    let running = match simulator.serve(([127, 0, 0, 1], 0).into()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot serve: {e}");
            std::process::exit(1);
        }
    };
    let base = running.base_url();
    let client = match reqwest::Client::builder().pool_max_idle_per_host(TASKS).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot build the client: {e}");
            std::process::exit(1);
        }
    };
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + TIME_LIMIT;

    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let (client, base, issued) = (client.clone(), base.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut rng = fastrand::Rng::with_seed(task as u64);
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= TOTAL_REQUESTS || Instant::now() >= deadline {
                    break;
                }
                let repo = format!("repo-{:03}", rng.usize(..REPOS));
                let repo_path = format!("{base}/rest/api/1.0/projects/BENCH/repos/{repo}");
                let check_path = format!(
                    "{base}/rest/insights/latest/projects/BENCH/repos/{repo}/settings/merge-checks/com.sonarsource.sonarqube"
                );
                let request = match n % 4 {
                    0 => client.get(&repo_path),
                    1 => client.get(format!("{base}/rest/api/1.0/projects/BENCH/repos?limit=100&start={}", rng.usize(..2) * 100)),
                    2 => client.get(&check_path),
                    _ => client.put(&check_path).json(&json!({
                        "reportKey": "com.sonarsource.sonarqube",
                        "mustPass": rng.bool(),
                        "minSeverity": "LOW",
                    })),
                };
                let sent = Instant::now();
                let ok = match request.bearer_auth(TOKEN).send().await {
                    // 404 is expected for a merge check not yet set.
                    Ok(response) => {
                        let status = response.status().as_u16();
                        response.bytes().await.is_ok() && (status == 200 || status == 404)
                    }
                    Err(_) => false,
                };
                tally.latencies.push(sent.elapsed());
                if !ok {
                    tally.failures += 1;
                }
            }
            tally
        }));
    }

    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        if let Ok(tally) = task.await {
            latencies.extend(tally.latencies);
            failures += tally.failures;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let percentile = |p: f64| -> Duration {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index]
    };
    let done = latencies.len();
    println!("simulator benchmark: {TASKS} concurrent tasks, {REPOS} repositories, {} cores", cores());
    println!("requests:     {done} in {:.2} s ({failures} failed)", elapsed.as_secs_f64());
    println!("throughput:   {:.0} requests/s", done as f64 / elapsed.as_secs_f64());
    println!("latency p50:  {:.2} ms", percentile(0.50).as_secs_f64() * 1000.0);
    println!("latency p99:  {:.2} ms", percentile(0.99).as_secs_f64() * 1000.0);
    println!("server count: {}", running.simulator().request_count());
    running.shutdown().await;
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
