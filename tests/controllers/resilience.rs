//! Bitbucket misbehaving and the operator crashing: 429 storms, the operator's own rate, injected
//! 5xx and dropped connections, a crash halfway through a round. Always: it converges, and
//! nothing is created twice.

use std::time::Duration;

use bitbucket_operator::simulator::{Faults, RateLimit};
use tokio::time::Instant;

use crate::harness::{
    BIG, Env, MERGE_CHECK, SONAR, WEBHOOKS, assert_big_converged, big_parts, big_slug, checks_written,
    configuration_with_rate, many, on_repository, webhooks_created, worst_excess,
};

/// How much later than it took its token a request may show in the simulator's counter.
const SKEW: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_waited_out_and_converges_within_the_own_rate() {
    const N: usize = 40;
    const RATE: f64 = 400.0;
    const BURST: f64 = 40.0;
    let mut env = Env::new(&many(N)).await;
    // Bitbucket's bucket holds a second's worth of its rate; the operator may send ten times as
    // fast, with answers slow enough that a full set of requests is in flight when the bucket
    // runs dry: every wave ends in a burst of 429s.
    env.bitbucket().set_rate_limit(Some(RateLimit { capacity: 40, fill_rate: 40 }));
    env.bitbucket().set_faults(Faults { latency: Duration::from_millis(20), ..Faults::default() });
    env.start_operator();
    let sampler = env.sample_requests();
    let started = Instant::now();
    env.apply(&configuration_with_rate(RATE as u32, BURST as u32));
    env.apply(BIG);
    env.wait_ready("projectbindings", "big", "True", "Bound").await;
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    let elapsed = started.elapsed();
    let samples = sampler.finish();

    assert_big_converged(&env, N);
    assert_eq!(webhooks_created(&env), N as u64, "a webhook was created twice");
    assert_eq!(checks_written(&env), N as u64, "a check was written twice");
    let log = env.log();
    let throttled: Vec<_> = log.iter().filter(|r| r.status == 429).collect();
    assert!(throttled.len() >= 10, "no storm: {} requests answered 429", throttled.len());
    // Retry-After (at least 1 s) is honoured by the whole client: after a 429 only what was
    // already in flight can be refused too (8 repositories at a time for the binding's webhooks
    // and as many for the report's checks, which go on alongside), so one such wave per second
    // at most.
    let in_flight = 2 * 8;
    let waves = elapsed.as_secs_f64().ceil() as usize + 1;
    assert!(
        throttled.len() <= in_flight * waves,
        "{} 429s in {elapsed:?}: Retry-After was not waited out",
        throttled.len()
    );
    let excess = worst_excess(&samples, RATE, BURST, SKEW);
    assert!(excess <= 0.0, "the configured rate was exceeded by {excess} requests in some window");
    // Writes were refused too, and retried without creating anything twice (checked above).
    let writes = throttled.iter().filter(|r| r.method != "GET").count();
    assert!(writes >= 1, "no write was refused");
    eprintln!(
        "429 storm: {} requests, {} answered 429 ({writes} of them writes), converged in {elapsed:.1?}",
        log.len(),
        throttled.len()
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_own_rate_limit_is_never_exceeded() {
    const N: usize = 12;
    const RATE: f64 = 40.0;
    const BURST: f64 = 5.0;
    let mut env = Env::new(&many(N)).await;
    env.start_operator();
    let sampler = env.sample_requests();
    let started = Instant::now();
    env.apply(&configuration_with_rate(RATE as u32, BURST as u32));
    env.apply(BIG);
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    env.wait_ready("projectbindings", "big", "True", "Bound").await;
    let elapsed = started.elapsed().as_secs_f64();
    let samples = sampler.finish();
    let requests = env.bitbucket().request_count() as f64;
    assert_big_converged(&env, N);
    // In no window of time did more requests arrive than the bucket allows ...
    let excess = worst_excess(&samples, RATE, BURST, SKEW);
    assert!(excess <= 0.0, "the configured rate was exceeded by {excess} requests in some window");
    // ... and the limit was what held the operator back: it needed about the time it allows.
    let least = (requests - BURST) / RATE;
    assert!(elapsed >= least * 0.9, "{requests} requests in {elapsed:.2}s; the limit allows them in {least:.2}s");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_dropped_connections_converge_without_duplicates() {
    const N: usize = 15;
    let mut env = Env::new(&many(N)).await;
    env.bitbucket().set_fault_seed(7);
    env.bitbucket().set_faults(Faults { latency: Duration::ZERO, error_rate: 0.2, drop_rate: 0.1 });
    env.start_operator();
    env.apply(&configuration_with_rate(1000, 1000));
    env.apply(BIG);
    // Let the faults bite (writes included), then heal the server.
    env.eventually("failed requests, among them writes", || {
        let log = env.log();
        let failed = || log.iter().filter(|r| r.status == 500 || r.status == 0);
        failed().count() > 10 && failed().any(|r| r.method != "GET")
    })
    .await;
    let log = env.log();
    assert!(log.iter().any(|r| r.status == 0), "no connection was dropped");
    assert!(log.iter().any(|r| r.status == 500), "no server error was injected");
    env.bitbucket().set_faults(Faults::default());
    env.wait_ready("projectbindings", "big", "True", "Bound").await;
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    assert_big_converged(&env, N);
    assert_eq!(webhooks_created(&env), N as u64, "a webhook was created twice");
    assert_eq!(checks_written(&env), N as u64, "a check was written twice");
    env.shutdown().await;
}

/// Polls often, and kills the operator as soon as `count` reaches `at`; returns the count then.
async fn kill_when(env: &mut Env, what: &str, at: u64, count: impl Fn(&Env) -> u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(env) < at {
        assert!(Instant::now() < deadline, "{what} did not reach {at}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    env.kill_operator().await;
    count(env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_halfway_through_a_round_creates_nothing_twice() {
    const N: usize = 40;
    let mut env = Env::new(&many(N)).await;
    // Slow answers, so that a crash lands in the middle of a round.
    env.bitbucket().set_faults(Faults { latency: Duration::from_millis(30), ..Faults::default() });
    let (binding, report) = big_parts();
    env.start_operator();
    env.apply(&configuration_with_rate(1000, 1000));
    env.apply(binding);

    // A crash while the binding creates its webhooks ...
    let at_crash =
        kill_when(&mut env, "webhook creations", 5, |env| env.requests_to(&format!("POST {WEBHOOKS}"))).await;
    assert!(at_crash < N as u64, "the round had finished before the crash");
    env.start_operator();
    env.wait_ready("projectbindings", "big", "True", "Bound").await;

    // ... and one while the report writes its checks.
    env.apply(report);
    let at_crash = kill_when(&mut env, "check writes", 5, |env| env.requests_to(&format!("PUT {MERGE_CHECK}"))).await;
    assert!(at_crash < N as u64, "the round had finished before the crash");
    env.start_operator();
    let report = env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    assert_eq!(report["status"]["inSyncCount"], N);
    env.wait_ready("projectbindings", "big", "True", "Bound").await;

    assert_big_converged(&env, N);
    assert_eq!(webhooks_created(&env), N as u64, "a webhook was created twice");
    assert_eq!(checks_written(&env), N as u64, "a check was written twice");

    // A clean restart once converged: one look at everything, nothing written.
    env.stop_operator().await;
    env.bitbucket().clear_requests();
    env.start_operator();
    env.eventually("every check read again", || {
        let log = env.log();
        (0..N).all(|i| on_repository(&log, "GET", "BIG", &big_slug(i), SONAR) >= 1)
    })
    .await;
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    let writes: Vec<_> = env.log().into_iter().filter(|r| r.method != "GET").collect();
    assert!(writes.is_empty(), "a restart wrote: {writes:#?}");
    env.shutdown().await;
}
