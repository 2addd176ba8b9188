//! Restarts, as upgrades and pod reschedules cause them: over converged state the operator looks
//! once and writes nothing (webhooks, required reports, required builds), whatever order its
//! stores fill in; killed in the middle of a cold
//! round, it finishes the work after the restart without doing anything twice.

use std::time::Duration;

use bitbucket_operator::simulator::Faults;

use crate::harness::{
    BIG, Env, MERGE_CHECK, REPOSITORIES, SONAR, WEBHOOKS, assert_big_converged, big_parts, big_slug, checks_written,
    configuration_with_rate, many, on_repository, webhooks_created,
};

/// The lists of the operator's watches, slowed so that their stores fill in this order (each
/// list this much later than the one before).
const STEP: Duration = Duration::from_millis(400);

/// Orders in which the stores fill: dependents before what they depend on (the worst), mixed,
/// and the natural order.
const ORDERS: [[&str; 6]; 3] = [
    [
        "requiredbuilds",
        "requiredreports",
        "projectbindings",
        "clusterbitbucketconfigurations",
        "bitbucketconfigurations",
        "secrets",
    ],
    [
        "projectbindings",
        "requiredreports",
        "secrets",
        "requiredbuilds",
        "bitbucketconfigurations",
        "clusterbitbucketconfigurations",
    ],
    [
        "secrets",
        "bitbucketconfigurations",
        "clusterbitbucketconfigurations",
        "projectbindings",
        "requiredreports",
        "requiredbuilds",
    ],
];

/// A RequiredBuild `gate` on the binding `big`, on each repository's default branch.
const BUILD: &str = r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredBuild
metadata: {name: gate}
spec:
  bindingRef: {name: big}
  buildParentKeys: [ci]
"#;

/// A repository's required-builds conditions, as counted.
const CONDITIONS: &str = "/rest/required-builds/latest/projects/{key}/repos/{slug}/conditions";
/// A repository's default branch, as counted.
const DEFAULT_BRANCH: &str = "/rest/api/1.0/projects/{key}/repos/{slug}/default-branch";

fn fill_in_order(env: &Env, order: &[&str]) {
    for (position, resource) in order.iter().enumerate() {
        let delay = STEP * u32::try_from(position).unwrap_or(u32::MAX);
        env.fake.delay_lists(resource, delay);
    }
}

/// Every repository of BIG had its webhooks listed, its check read and its required builds
/// listed since the log was cleared.
fn looked_at_everything(env: &Env, n: usize) -> bool {
    let log = env.log();
    (0..n).all(|i| {
        let slug = big_slug(i);
        on_repository(&log, "GET", "BIG", &slug, "/webhooks") >= 1
            && on_repository(&log, "GET", "BIG", &slug, SONAR) >= 1
            && on_repository(&log, "GET", "BIG", &slug, "/conditions") >= 1
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_over_converged_state_writes_nothing_whatever_order_the_stores_fill_in() {
    const N: usize = 100;
    let mut env = Env::new(&many(N)).await;
    env.apply(&configuration_with_rate(1000, 1000));
    env.apply(BIG);
    env.apply(BUILD);
    env.start_operator();
    env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    env.wait_ready("requiredbuilds", "gate", "True", "InSync").await;
    env.wait_ready("projectbindings", "big", "True", "Bound").await;
    env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    // Let the last status writes and their Events land.
    tokio::time::sleep(Duration::from_millis(500)).await;

    for order in ORDERS {
        env.stop_operator().await;
        let events_before = env.fake.objects("events", None).len();
        env.bitbucket().clear_requests();
        env.fake.clear_requests();
        fill_in_order(&env, &order);
        env.start_operator();
        env.eventually(&format!("one look at every repository ({order:?})"), || looked_at_everything(&env, N)).await;
        // Anything the restart was going to write, it writes within the round or just after.
        tokio::time::sleep(Duration::from_secs(1)).await;

        let bitbucket_writes: Vec<_> = env.log().into_iter().filter(|r| r.method != "GET").collect();
        assert!(bitbucket_writes.is_empty(), "{order:?}: the restart wrote to Bitbucket: {bitbucket_writes:#?}");
        let (requests, _) = env.fake.requests();
        let kube_writes: Vec<_> = requests.iter().filter(|r| r.method != "GET").collect();
        assert!(kube_writes.is_empty(), "{order:?}: the restart wrote to Kubernetes: {kube_writes:#?}");
        assert_eq!(env.fake.objects("events", None).len(), events_before, "{order:?}: the restart raised an Event");

        // At most one round of reads: each repository's webhooks and check once, everything
        // else (the connection check, the repository pages) once.
        let counts = env.bitbucket().request_counts();
        for (endpoint, count) in &counts {
            let per_repository =
                [WEBHOOKS, MERGE_CHECK, CONDITIONS, DEFAULT_BRANCH].iter().any(|e| endpoint.ends_with(e));
            let limit = if per_repository { N as u64 } else { 1 };
            assert!(*count <= limit, "{order:?}: {count} requests to {endpoint} (at most {limit} in one round)");
        }
        assert_eq!(counts.get(&format!("GET {REPOSITORIES}")).copied(), Some(1), "{order:?}: {counts:#?}");
        for (resource, name, reason) in [
            ("bitbucketconfigurations", "bitbucket", "Connected"),
            ("projectbindings", "big", "Bound"),
            ("requiredreports", "big-sonarqube", "InSync"),
            ("requiredbuilds", "gate", "InSync"),
        ] {
            env.wait_ready(resource, name, "True", reason).await;
        }
    }
    env.shutdown().await;
}

/// Polls often, and kills the operator as soon as `count` reaches `at`.
async fn kill_when(env: &mut Env, what: &str, at: u64, count: impl Fn(&Env) -> u64) {
    env.eventually(&format!("{what} reaching {at}"), || count(env) >= at).await;
    env.kill_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_in_the_middle_of_a_cold_round_it_finishes_after_the_restart_without_duplicates() {
    const N: usize = 300;
    let mut env = Env::new(&many(N)).await;
    // Slow answers, so that the kills land in the middle of the rounds.
    env.bitbucket().set_faults(Faults { latency: Duration::from_millis(5), ..Faults::default() });
    let (binding, report) = big_parts();
    env.apply(&configuration_with_rate(1000, 1000));
    env.apply(binding);
    env.apply(report);
    env.start_operator();

    // Killed while the binding creates its webhooks ...
    kill_when(&mut env, "webhook creations", N as u64 / 3, webhooks_created).await;
    assert!(webhooks_created(&env) < N as u64, "the binding's round had finished before the kill");
    fill_in_order(&env, &ORDERS[0]);
    env.start_operator();
    // ... and again while the report writes its checks.
    kill_when(&mut env, "check writes", N as u64 / 3, checks_written).await;
    assert!(checks_written(&env) < N as u64, "the report's round had finished before the kill");

    env.bitbucket().clear_requests();
    env.start_operator();
    let report = env.wait_ready("requiredreports", "big-sonarqube", "True", "InSync").await;
    assert_eq!(report["status"]["inSyncCount"], N);
    let binding = env.wait_ready("projectbindings", "big", "True", "Bound").await;
    assert_eq!(binding["status"]["repositoryCount"], N);
    env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;

    // Exactly one webhook and one check on every repository ...
    assert_big_converged(&env, N);
    // ... done in one round after the restart: each repository's check read once.
    let log = env.log();
    for i in 0..N {
        let slug = big_slug(i);
        let reads = on_repository(&log, "GET", "BIG", &slug, SONAR);
        assert_eq!(reads, 1, "{slug}: its check was read {reads} times after the restart");
    }
    env.shutdown().await;
}
