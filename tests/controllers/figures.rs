//! The figures of issue 5: the Bitbucket requests of one cold reconcile and of one no-op resync for
//! a binding of N repositories with one webhook and one RequiredReport, from the simulator's
//! request log. `cargo test --test kube figures -- --nocapture` prints them.

use std::{collections::BTreeMap, time::Duration};

use bitbucket_operator::simulator::RequestRecord;
use tokio::time::Instant;

use crate::harness::{BIG, Env, SONAR, big_slug, configuration_with_rate, many, on_repository};

/// Whether a request belongs to a configuration's connection check (not to a project).
fn is_connection_check(record: &RequestRecord) -> bool {
    !record.path.contains("/projects/")
}

/// Whether a request lists a project's repositories.
fn is_repository_list(record: &RequestRecord) -> bool {
    record.method == "GET" && record.path.ends_with("/repos")
}

/// Requests by `METHOD path-shape` (slugs and ids folded), for the printout.
fn breakdown(log: &[RequestRecord]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in log {
        let shape: Vec<&str> = record
            .path
            .split('/')
            .map(|s| {
                if s.starts_with("repo-") {
                    "{slug}"
                } else if s.parse::<u64>().is_ok() {
                    "{id}"
                } else {
                    s
                }
            })
            .collect();
        *counts.entry(format!("{} {}", record.method, shape.join("/"))).or_insert(0) += 1;
    }
    counts
}

fn print(title: &str, log: &[RequestRecord]) {
    let writes = log.iter().filter(|r| r.method != "GET").count();
    eprintln!("{title}: {} requests ({} reads, {writes} writes)", log.len(), log.len() - writes);
    for (shape, count) in breakdown(log) {
        eprintln!("  {count:>4}  {shape}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_figures_of_a_cold_reconcile_and_a_no_op_resync() {
    const N: usize = 20;
    // Long enough that one round of each object fits in the count with room to spare (resyncs
    // come every 0.9-1.1 intervals; a second round could start only after 1.8 intervals).
    const RESYNC: Duration = Duration::from_secs(4);
    let mut env = Env::new(&many(N)).await;
    env.options.max_resync = Some(RESYNC);
    env.start_operator();
    // A generous own rate: the figures count requests, the rate would only stretch them in time.
    env.apply(&configuration_with_rate(1000, 1000));
    env.apply(BIG);
    env.wait_ready("projectbindings", "big", "True", "Bound").await;
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;

    // (a) The cold reconcile: from nothing to both Ready.
    let cold = env.log();
    env.bitbucket().clear_requests();
    let cleared = Instant::now();
    print(&format!("cold reconcile, binding of {N} repositories + 1 webhook + 1 required report"), &cold);
    let cold_writes: Vec<&RequestRecord> = cold.iter().filter(|r| r.method != "GET").collect();
    let check = cold.iter().filter(|r| is_connection_check(r)).count();
    let pages = cold.iter().filter(|r| is_repository_list(r)).count();
    assert!(check >= 1 && pages >= 1);
    // Writes: one webhook and one check created per repository, nothing else.
    assert_eq!(cold_writes.len(), 2 * N, "{cold_writes:#?}");
    for i in 0..N {
        let slug = big_slug(i);
        assert_eq!(on_repository(&cold, "POST", "BIG", &slug, "/webhooks"), 1, "{slug}");
        assert_eq!(on_repository(&cold, "PUT", "BIG", &slug, SONAR), 1, "{slug}");
    }

    // (b) One no-op resync: wait for the next round of the configuration, the binding and the
    // report, then a little longer for anything a round might set off, and stop.
    env.eventually("one resync of the configuration, the binding and the report", || {
        let log = env.log();
        let listed = (0..N).all(|i| on_repository(&log, "GET", "BIG", &big_slug(i), "/webhooks") >= 1);
        let read = (0..N).all(|i| on_repository(&log, "GET", "BIG", &big_slug(i), SONAR) >= 1);
        let checked = log.iter().filter(|r| is_connection_check(r)).count() >= check;
        listed && read && checked
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.stop_operator().await;
    let window = cleared.elapsed();
    let resync = env.log();
    print(&format!("no-op resync (counted over {window:.1?})"), &resync);
    assert!(window < RESYNC.mul_f64(1.7), "the count took {window:?}: it may hold a second round");

    let writes: Vec<&RequestRecord> = resync.iter().filter(|r| r.method != "GET").collect();
    assert!(writes.is_empty(), "a resync where nothing changed wrote: {writes:#?}");
    // At most one read per (repository, managed object) ...
    for i in 0..N {
        let slug = big_slug(i);
        assert_eq!(on_repository(&resync, "GET", "BIG", &slug, "/webhooks"), 1, "{slug}'s webhooks");
        assert_eq!(on_repository(&resync, "GET", "BIG", &slug, SONAR), 1, "{slug}'s check");
        let other = resync.iter().filter(|r| r.path.contains(&format!("/repos/{slug}/"))).count();
        assert_eq!(other, 2, "{slug} was read more than once per managed object");
    }
    // ... plus the paged repository list and the configuration's connection check.
    assert_eq!(resync.iter().filter(|r| is_repository_list(r)).count(), pages, "repository list");
    assert_eq!(resync.iter().filter(|r| is_connection_check(r)).count(), check, "connection check");
    assert_eq!(resync.len(), 2 * N + pages + check, "{resync:#?}");
    eprintln!(
        "N = {N}: cold reconcile {} requests ({} reads, {} writes); no-op resync {} reads, 0 writes \
         (bound: 2N + {pages} list page(s) + {check} connection-check requests = {})",
        cold.len(),
        cold.len() - cold_writes.len(),
        cold_writes.len(),
        resync.len(),
        2 * N + pages + check
    );
    env.shutdown().await;
}
