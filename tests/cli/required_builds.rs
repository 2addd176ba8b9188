//! RequiredBuild in `plan`, `apply` and `inventory` as a user runs them: the real binary against
//! the simulator, on the four repositories a selection of PLAT binds.

use bitbucket_operator::simulator::{RequestRecord, Simulator};
use serde_json::{Value, json};

use crate::support::{
    fixtures::{CONFIGURATION, OPERATOR_TOKEN, SEED},
    workspace::{Workspace, all, run, stdout},
};

/// The repositories of PLAT a selection of `*` binds (the archived one is left out).
const BOUND: [&str; 4] = ["api-gateway", "auth-service", "build-tools", "sandbox-alice"];

/// A binding `platform` of every repository of PLAT and a RequiredBuild `gate` on it.
fn manifests(build_spec: &str) -> String {
    format!(
        r#"{CONFIGURATION}---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: ProjectBinding
metadata: {{name: platform}}
spec:
  configurationRef: {{name: bitbucket}}
  projectKey: PLAT
  repositories: {{include: ["*"]}}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredBuild
metadata: {{name: gate}}
spec:
  bindingRef: {{name: platform}}
{build_spec}"#
    )
}

const GATE: &str = "  buildParentKeys: [sonarqube-quality-gate]\n";

/// A condition as a user makes it in Repository settings > Required builds.
fn condition(keys: &[&str], branch: &str) -> Value {
    json!({"buildParentKeys": keys, "refMatcher": {"id": branch, "type": {"id": "BRANCH"}}})
}

/// The build keys and branch of each condition of a repository.
fn conditions(sim: &Simulator, slug: &str) -> Vec<(i64, Vec<String>, String)> {
    let listed = sim.required_builds("PLAT", slug).expect("the repository");
    listed
        .iter()
        .map(|c| {
            let keys = c["buildParentKeys"].as_array().into_iter().flatten();
            let keys = keys.filter_map(Value::as_str).map(str::to_owned).collect();
            (c["id"].as_i64().unwrap_or_default(), keys, c["refMatcher"]["id"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn writes(requests: &[RequestRecord]) -> Vec<String> {
    requests.iter().filter(|r| r.method != "GET").map(|r| format!("{} {}", r.method, r.path)).collect()
}

fn gate_lines(out: &str, symbol: &str) -> usize {
    out.lines().filter(|l| l.trim_start().starts_with(&format!("{symbol} required build condition"))).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_one_condition_per_repository_and_a_second_plan_has_nothing_to_do() {
    let ws = Workspace::with_simulator("rb-apply", SEED).await;
    let file = ws.write_manifests("resources.yaml", &manifests(GATE), OPERATOR_TOKEN);
    let sim = ws.bitbucket();

    let planned = run(&["plan", "-f", &file]).await;
    let out = all(&planned);
    assert_eq!(planned.status.code(), Some(2), "{out}");
    assert!(out.contains("requires: builds sonarqube-quality-gate on their default branch"), "{out}");
    assert!(out.contains("+ required build condition: builds sonarqube-quality-gate on refs/heads/main"), "{out}");
    assert_eq!(gate_lines(&out, "+"), BOUND.len(), "{out}");
    assert!(writes(&sim.requests()).is_empty(), "plan wrote to Bitbucket: {:?}", writes(&sim.requests()));

    sim.clear_requests();
    let applied = run(&["apply", "-f", &file]).await;
    let out = all(&applied);
    assert_eq!(applied.status.code(), Some(0), "{out}");
    assert!(out.contains("Ready=True InSync"), "{out}");
    for slug in BOUND {
        let found = conditions(sim, slug);
        assert_eq!(found.len(), 1, "{slug}: {found:?}");
        assert_eq!(
            (found[0].1.as_slice(), found[0].2.as_str()),
            (&["sonarqube-quality-gate".to_owned()][..], "refs/heads/main")
        );
        assert!(out.contains(&format!("+ required build condition {} created", found[0].0)), "{out}");
    }
    assert!(conditions(sim, "old-deployer").is_empty(), "an archived repository is not bound");
    let cold = sim.requests();
    // Writes only what differs: one create per repository, nothing else.
    let created: Vec<String> = writes(&cold);
    assert_eq!(created.len(), BOUND.len(), "{created:?}");
    assert!(created.iter().all(|w| w.starts_with("POST ") && w.ends_with("/condition")), "{created:?}");
    eprintln!("cold apply, {} repositories: {} requests", BOUND.len(), cold.len());

    sim.clear_requests();
    let again = run(&["plan", "-f", &file, "--output", "json"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", all(&again));
    let json: Value = serde_json::from_str(&stdout(&again)).expect("JSON");
    let build = json["resources"].as_array().into_iter().flatten().find(|r| r["kind"] == "RequiredBuild");
    let build = build.expect("the RequiredBuild in the JSON");
    assert_eq!(build["changes"], json!([]), "{build}");
    assert_eq!((build["ready"].clone(), build["reason"].clone()), (json!(true), json!("InSync")));
    assert_eq!(json["summary"]["add"], 0);
    eprintln!("no-op plan, {} repositories: {} requests", BOUND.len(), sim.requests().len());

    sim.clear_requests();
    let noop = run(&["apply", "-f", &file]).await;
    assert_eq!(noop.status.code(), Some(0), "{}", all(&noop));
    assert!(writes(&sim.requests()).is_empty(), "{:?}", writes(&sim.requests()));
    assert!(BOUND.iter().all(|slug| conditions(sim, slug).len() == 1));
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_condition_is_adopted_a_duplicate_deleted_and_another_left_alone() {
    let ws = Workspace::with_simulator("rb-adopt", SEED).await;
    let file = ws.write_manifests("resources.yaml", &manifests(GATE), OPERATOR_TOKEN);
    let sim = ws.bitbucket();
    // By hand: the same condition (the branch by name), twice on build-tools, and someone
    // else's condition on auth-service.
    let adopted = sim.add_required_build("PLAT", "api-gateway", condition(&["sonarqube-quality-gate"], "main"));
    let adopted = adopted.expect("added");
    let kept = sim.add_required_build("PLAT", "build-tools", condition(&["sonarqube-quality-gate"], "refs/heads/main"));
    let twice = sim.add_required_build("PLAT", "build-tools", condition(&["sonarqube-quality-gate"], "main"));
    let (kept, twice) = (kept.expect("added"), twice.expect("added"));
    let other = sim.add_required_build("PLAT", "auth-service", condition(&["ci", "lint"], "refs/heads/main"));
    let other = other.expect("added");

    let planned = run(&["plan", "-f", &file, "-o", "json"]).await;
    assert_eq!(planned.status.code(), Some(2), "{}", all(&planned));
    let json: Value = serde_json::from_str(&stdout(&planned)).expect("JSON");
    let build = json["resources"].as_array().into_iter().flatten().find(|r| r["kind"] == "RequiredBuild");
    let changes: Vec<(String, String, String)> = build
        .and_then(|b| b["changes"].as_array())
        .into_iter()
        .flatten()
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (text("repository"), text("action"), text("name"))
        })
        .collect();
    let expected = [
        ("auth-service".to_owned(), "create".to_owned(), "condition".to_owned()),
        ("build-tools".to_owned(), "delete".to_owned(), format!("condition {twice}")),
        ("sandbox-alice".to_owned(), "create".to_owned(), "condition".to_owned()),
    ];
    assert_eq!(changes, expected, "{json}");
    assert_eq!((json["summary"]["add"].clone(), json["summary"]["destroy"].clone()), (json!(2), json!(1)));

    let applied = run(&["apply", "-f", &file]).await;
    let out = all(&applied);
    assert_eq!(applied.status.code(), Some(0), "{out}");
    assert!(out.contains(&format!("- required build condition {twice} deleted: a duplicate")), "{out}");
    let ids = |slug| conditions(sim, slug).into_iter().map(|c| c.0).collect::<Vec<_>>();
    assert_eq!(ids("api-gateway"), vec![adopted], "the identical one is adopted, not doubled");
    assert_eq!(ids("build-tools"), vec![kept]);
    let auth = conditions(sim, "auth-service");
    assert_eq!(auth.len(), 2, "{auth:?}");
    assert!(auth.iter().any(|c| c.0 == other && c.1 == ["ci", "lint"]), "someone else's is untouched: {auth:?}");

    let again = run(&["plan", "-f", &file]).await;
    assert_eq!(again.status.code(), Some(0), "{}", all(&again));
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_before_7_14_gets_the_manual_steps_after_one_read() {
    let seed = SEED.replace("version: \"9.4.22\"", "version: \"7.13.0\"");
    let ws = Workspace::with_simulator("rb-old", &seed).await;
    let file = ws.write_manifests("resources.yaml", &manifests(GATE), OPERATOR_TOKEN);
    for command in ["plan", "apply"] {
        ws.bitbucket().clear_requests();
        let output = run(&[command, "-f", &file]).await;
        let out = all(&output);
        assert_eq!(output.status.code(), Some(1), "{command}: {out}");
        assert!(out.contains("UnsupportedServer"), "{command}: {out}");
        assert!(
            out.contains("Repository settings > Required builds")
                && out.contains("builds sonarqube-quality-gate on their default branch"),
            "{command}: {out}"
        );
        let requests = ws.bitbucket().requests();
        let reads = requests.iter().filter(|r| r.path.contains("/required-builds/")).count();
        assert_eq!(reads, 1, "{command}: one repository is enough to know");
        assert!(writes(&requests).is_empty(), "{command}: {:?}", writes(&requests));
    }
    ws.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_reports_drift_and_inventory_shows_each_repository() {
    let ws = Workspace::with_simulator("rb-observe", SEED).await;
    let pattern =
        "  buildParentKeys: [ci]\n  refMatcher: {type: Pattern, value: 'release/*'}\n  managementPolicy: Observe\n";
    let file = ws.write_manifests("resources.yaml", &manifests(pattern), OPERATOR_TOKEN);
    let sim = ws.bitbucket();
    let release = json!({"buildParentKeys": ["ci"], "refMatcher": {"id": "release/*", "type": {"id": "PATTERN"}}});
    sim.add_required_build("PLAT", "api-gateway", release.clone()).expect("added");
    sim.add_required_build("PLAT", "auth-service", release.clone()).expect("added");
    sim.add_required_build("PLAT", "auth-service", release).expect("added");

    let applied = run(&["apply", "-f", &file]).await;
    let out = all(&applied);
    // Drift left alone by Observe is no failure.
    assert_eq!(applied.status.code(), Some(0), "{out}");
    assert!(out.contains("! required build condition left alone (managementPolicy: Observe)"), "{out}");
    assert!(out.contains("no condition requires builds ci on pattern release/*"), "{out}");
    assert!(writes(&sim.requests()).is_empty(), "Observe wrote: {:?}", writes(&sim.requests()));

    sim.clear_requests();
    let listed = run(&["inventory", "-f", &file, "-o", "json"]).await;
    assert_eq!(listed.status.code(), Some(0), "{}", all(&listed));
    let json: Value = serde_json::from_str(&stdout(&listed)).expect("JSON");
    let binding = &json["bindings"][0];
    assert_eq!(binding["requiredBuilds"][0]["requires"], "builds ci on pattern release/*");
    let states: Vec<(String, String)> = binding["repositories"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let state = &r["requiredBuilds"][0];
            let differences = state["differences"].as_array().into_iter().flatten().filter_map(Value::as_str);
            let word = state["state"].as_str().unwrap_or_default().to_owned();
            (
                r["slug"].as_str().unwrap_or_default().to_owned(),
                [word].into_iter().chain(differences.map(str::to_owned)).collect::<Vec<_>>().join(":"),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("api-gateway", "inSync"),
        ("auth-service", "differs:duplicate"),
        ("build-tools", "missing"),
        ("sandbox-alice", "missing"),
    ]
    .map(|(s, w)| (s.to_owned(), w.to_owned()))
    .into();
    assert_eq!(states, expected, "{json}");
    assert_eq!(binding["summary"]["requiredBuilds"]["gate"]["missing"], 2);
    // A pattern needs no default branch: one read per repository.
    let requests = sim.requests();
    assert_eq!(requests.iter().filter(|r| r.path.contains("/required-builds/")).count(), BOUND.len());
    assert!(!requests.iter().any(|r| r.path.ends_with("/default-branch")), "read a default branch for a pattern");

    let table = run(&["inventory", "-f", &file]).await;
    let out = stdout(&table);
    assert!(out.contains("BUILD gate"), "{out}");
    assert!(out.contains("required build gate: 1 in sync, 1 differ, 2 missing"), "{out}");
    ws.done().await;
}
