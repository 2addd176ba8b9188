//! A binding's SonarQube projects: a selection imported with `createProjects`, a binding
//! changed in SonarQube's UI put back, repositories picked up and left, two bindings claiming
//! one project, Community Build binding through v2 `bound-projects`, a monorepo on an edition
//! without it, and deletion that removes the bindings but never the projects.

use std::time::Duration;

use bitbucket_operator::api::ProjectBinding;
use serde_json::{Value, json};

use super::sonarqube::{TOKEN, integrated_configuration, manifests, sonarqube};
use crate::harness::{Env, OPERATOR_TOKEN, SEED, message, reason};

/// A binding `platform` of PLAT's selection, its projects keyed `{projectKey}_{slug}`, none
/// created yet.
const SELECTION: &str = "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: ProjectBinding\nmetadata: {name: platform}\nspec:\n  configurationRef: {name: bitbucket}\n  projectKey: PLAT\n  repositories: {include: [\"*\"]}\n  sonarqube:\n    projectKeyTemplate: \"{projectKey}_{slug}\"\n    createProjects: false\n";

/// A binding `name` of one repository of PLAT whose project is `key`.
fn single(name: &str, slug: &str, key: &str) -> String {
    format!(
        "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: ProjectBinding\nmetadata: {{name: {name}}}\nspec:\n  configurationRef: {{name: bitbucket}}\n  projectKey: PLAT\n  repositorySlug: {slug}\n  sonarqube: {{projectKey: \"{key}\", createProjects: true}}\n"
    )
}

fn bound_to(binding: Option<Value>, project: &str, slug: &str) -> bool {
    binding.is_some_and(|b| b["alm"] == "bitbucket" && b["repository"] == project && b["slug"] == slug)
}

/// SonarQube of `edition` with the operator's SonarQubeConfiguration, and the Bitbucket
/// configuration keeping SonarQube's setting.
async fn integrated(
    env: &mut Env,
    edition: &str,
    version: &str,
) -> bitbucket_operator::simulator::sonarqube::RunningSonarQube {
    let sonar = sonarqube(edition, version).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    env.apply(&integrated_configuration(None));
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the SonarQube setting recorded", |o| {
        o["status"]["sonarqube"]["almSettingKey"] == "bitbucket"
    })
    .await;
    sonar
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_is_imported_kept_bound_and_released_without_deleting_projects() {
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(Duration::from_millis(500));
    let sonar = integrated(&mut env, "enterprise", "2026.3.1.123439").await;

    // Without createProjects the missing projects are named, with what to do.
    env.apply(SELECTION);
    let object = env.wait_ready("projectbindings", "platform", "False", "SonarQubeProjectMissing").await;
    assert!(message(&object).contains("createProjects: true"), "{}", message(&object));
    let selected: Vec<String> = env
        .repositories_in("PLAT")
        .iter()
        .filter(|r| r["archived"] != true)
        .filter_map(|r| r["slug"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(object["status"]["sonarqube"]["projectCount"], json!(selected.len()));
    assert!(
        !sonar.simulator().projects().iter().any(|(key, _)| key.starts_with("PLAT_")),
        "a project was created without createProjects"
    );

    // The import: a project per repository, named after it, bound to it.
    env.patch::<ProjectBinding>("platform", json!({"spec": {"sonarqube": {"createProjects": true}}})).await;
    let object = env
        .wait("projectbindings", "team-a", "platform", "every project bound", |o| {
            reason(o) == "Bound" && o["status"]["sonarqube"]["boundCount"] == json!(selected.len())
        })
        .await;
    assert_eq!(object["status"]["sonarqube"]["createdCount"], json!(selected.len()));
    for slug in &selected {
        let key = format!("PLAT_{slug}");
        assert!(
            bound_to(sonar.simulator().binding(&key), "PLAT", slug),
            "{key}: {:?}",
            sonar.simulator().binding(&key)
        );
    }
    assert!(env.has_event("ProjectBinding", "platform", "SonarQubeProjectsBound"));

    // A binding changed in SonarQube's UI is put back, and said.
    let moved = format!("PLAT_{}", selected[0]);
    sonar.simulator().set_binding(&moved, "bitbucket", "PLAT", "somewhere-else", false).expect("rebind");
    env.eventually("the binding put back", || bound_to(sonar.simulator().binding(&moved), "PLAT", &selected[0])).await;
    env.eventually("the correction said", || env.has_event("ProjectBinding", "platform", "SonarQubeBindingCorrected"))
        .await;

    // A new repository gets its project on the next resync.
    env.bitbucket().create_repository("PLAT", "ledger").expect("repository");
    env.eventually("the new repository's project", || {
        bound_to(sonar.simulator().binding("PLAT_ledger"), "PLAT", "ledger")
    })
    .await;

    // A repository that leaves the selection loses its binding, keeps its project.
    let leaving = selected[1].clone();
    env.patch::<ProjectBinding>("platform", json!({"spec": {"repositories": {"exclude": [leaving]}}})).await;
    let left = format!("PLAT_{leaving}");
    env.eventually("the departed repository's binding removed", || sonar.simulator().binding(&left).is_none()).await;
    assert!(sonar.simulator().projects().iter().any(|(key, _)| *key == left), "a project was deleted");

    // Deletion removes the bindings the operator made; every project stays.
    let before = sonar.simulator().projects().len();
    env.delete::<ProjectBinding>("platform").await;
    env.wait_gone("projectbindings", "platform").await;
    for slug in selected.iter().chain(std::iter::once(&"ledger".to_owned())) {
        let key = format!("PLAT_{slug}");
        assert!(sonar.simulator().binding(&key).is_none(), "{key} is still bound");
    }
    assert_eq!(sonar.simulator().projects().len(), before, "deleting the binding deleted projects");
    let text = serde_json::to_string(&env.events("ProjectBinding", "platform")).expect("JSON");
    assert!(!text.contains(OPERATOR_TOKEN) && !text.contains(TOKEN), "a token reached an Event");
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_binding_claiming_a_project_gives_way_and_says_who_holds_it() {
    let mut env = Env::new(SEED).await;
    let sonar = integrated(&mut env, "enterprise", "2026.3.1.123439").await;
    env.apply(&single("first", "api-gateway", "shared"));
    env.wait_ready("projectbindings", "first", "True", "Bound").await;
    assert!(bound_to(sonar.simulator().binding("shared"), "PLAT", "api-gateway"));

    env.apply(&single("second", "auth-service", "shared"));
    let object = env.wait_ready("projectbindings", "second", "False", "ProjectClaimed").await;
    assert!(message(&object).contains("team-a/first"), "{}", message(&object));
    // The first keeps it; nothing fights over it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(bound_to(sonar.simulator().binding("shared"), "PLAT", "api-gateway"));

    // Deleting the loser leaves the holder's binding alone.
    env.delete::<ProjectBinding>("second").await;
    env.wait_gone("projectbindings", "second").await;
    assert!(bound_to(sonar.simulator().binding("shared"), "PLAT", "api-gateway"));
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_build_binds_through_bound_projects_with_the_operators_own_token() {
    let mut env = Env::new(SEED).await;
    let sonar = integrated(&mut env, "community", "26.7.0.124771").await;
    env.apply(&single("gateway", "api-gateway", "gateway"));
    env.wait_ready("projectbindings", "gateway", "True", "Bound").await;
    assert!(bound_to(sonar.simulator().binding("gateway"), "PLAT", "api-gateway"));
    assert!(sonar.simulator().projects().iter().any(|(key, name)| key == "gateway" && name == "api-gateway"));
    // Community Build binds with a token stored for the operator's SonarQube user.
    assert_eq!(sonar.simulator().user_pat("svc-operator", "bitbucket").as_deref(), Some(OPERATOR_TOKEN));
    let counts = sonar.simulator().request_counts();
    assert!(!counts.keys().any(|k| k.contains("set_bitbucket_binding")), "{counts:?}");

    // It cannot unbind over its API: deletion says so and leaves the project as it is.
    env.delete::<ProjectBinding>("gateway").await;
    env.wait_gone("projectbindings", "gateway").await;
    assert!(env.has_event("ProjectBinding", "gateway", "SonarQubeBindingsKept"));
    assert!(sonar.simulator().projects().iter().any(|(key, _)| key == "gateway"));
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monorepo_binding_on_an_edition_without_monorepo_stalls_with_the_edition_named() {
    let mut env = Env::new(SEED).await;
    let sonar = integrated(&mut env, "developer", "10.7.0.96327").await;
    let monorepo = single("mono", "api-gateway", "mono-web").replace("  sonarqube:", "  monorepo: true\n  sonarqube:");
    env.apply(&monorepo);
    let object = env.wait_ready("projectbindings", "mono", "False", "EditionLimit").await;
    assert!(message(&object).contains("monorepo"), "{}", message(&object));
    assert!(sonar.simulator().binding("mono-web").is_none());
    env.shutdown().await;
    sonar.shutdown().await;
}

/// The SonarQube endpoints a binding's round calls (the configuration's and the
/// SonarQubeConfiguration's own checks call others).
const PROJECT_ENDPOINTS: [&str; 7] = [
    "/api/alm_settings/get_binding",
    "/api/alm_settings/set_bitbucket_binding",
    "/api/projects/create",
    "/api/components/show",
    "/api/alm_integrations/set_pat",
    "/api/v2/dop-translation/dop-settings",
    "/api/v2/dop-translation/bound-projects",
];

/// The SonarQube requests by endpoint (only a binding's, or `all`), printed; returns (reads,
/// writes).
fn figures(title: &str, log: &[bitbucket_operator::simulator::RequestRecord], all: bool) -> (usize, usize) {
    let mut counts = std::collections::BTreeMap::new();
    for record in log.iter().filter(|r| all || PROJECT_ENDPOINTS.contains(&r.path.as_str())) {
        *counts.entry(format!("{} {}", record.method, record.path)).or_insert(0_usize) += 1;
    }
    let writes: usize = counts.iter().filter(|(k, _)| !k.starts_with("GET")).map(|(_, n)| n).sum();
    let reads: usize = counts.values().sum::<usize>() - writes;
    eprintln!("{title}: {} SonarQube requests ({reads} reads, {writes} writes)", reads + writes);
    for (endpoint, count) in &counts {
        eprintln!("  {count:>4}  {endpoint}");
    }
    (reads, writes)
}

/// The SonarQube requests of a binding of N repositories with `createProjects`: its cold round
/// (import) and a no-op resync, on Enterprise and on Community Build.
/// `cargo test --test kube sonarqube_request_figures -- --nocapture` prints them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sonarqube_request_figures_of_an_import_and_a_no_op_resync() {
    const N: usize = 30;
    for (edition, version) in [("enterprise", "2026.3.1.123439"), ("community", "26.7.0.124771")] {
        let mut env = Env::new(&crate::harness::many(N)).await;
        env.options.max_resync = Some(Duration::from_secs(3));
        let sonar = integrated(&mut env, edition, version).await;
        env.patch::<bitbucket_operator::api::SonarQubeConfiguration>(
            "sonarqube",
            json!({"spec": {"rateLimit": {"requestsPerSecond": 1000, "burst": 1000}}}),
        )
        .await;
        figures(
            &format!("{edition}: SonarQubeConfiguration check and the setting's first round"),
            &sonar.simulator().requests(),
            true,
        );
        sonar.simulator().clear_requests();
        env.apply(
            "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: ProjectBinding\nmetadata: {name: big}\nspec:\n  configurationRef: {name: bitbucket}\n  projectKey: BIG\n  repositories: {}\n  sonarqube: {projectKeyTemplate: \"big_{slug}\", createProjects: true}\n",
        );
        env.wait("projectbindings", "team-a", "big", "every project bound", |o| {
            o["status"]["sonarqube"]["boundCount"] == json!(N)
        })
        .await;
        let cold = sonar.simulator().requests();
        sonar.simulator().clear_requests();
        let (reads, writes) = figures(&format!("{edition}: cold round of a binding of {N} repositories"), &cold, false);
        // One read of each project's binding, and for each at most a creation and a binding.
        assert!(reads >= N && writes <= 2 * N + 1, "{reads} reads, {writes} writes");
        let created = sonar.simulator().projects().iter().filter(|(key, _)| key.starts_with("big_")).count();
        assert_eq!(created, N, "a project was created twice or not at all");

        // A resync with nothing changed writes nothing.
        // 5 s: one resync at a 3 s interval (jittered by 10 %), never two.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let resync = sonar.simulator().requests();
        figures(&format!("{edition}: everything in SonarQube over those 5 s"), &resync, true);
        let (reads, writes) = figures(&format!("{edition}: one no-op resync"), &resync, false);
        assert_eq!(writes, 0, "a no-op resync wrote to SonarQube");
        assert!(reads >= N, "no resync happened in 5 s at a 3 s interval");
        env.shutdown().await;
        sonar.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_sonarqube_could_not_remove_when_its_repository_left_is_removed_later() {
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(Duration::from_millis(500));
    let sonar = integrated(&mut env, "enterprise", "2026.3.1.123439").await;
    env.apply(SELECTION);
    env.patch::<ProjectBinding>("platform", json!({"spec": {"sonarqube": {"createProjects": true}}})).await;
    env.wait("projectbindings", "team-a", "platform", "every project bound", |o| {
        reason(o) == "Bound" && o["status"]["sonarqube"]["boundCount"].as_i64().is_some_and(|n| n > 1)
    })
    .await;
    assert!(bound_to(sonar.simulator().binding("PLAT_api-gateway"), "PLAT", "api-gateway"));

    // SonarQube fails while the repository leaves: its binding cannot be removed then...
    sonar.simulator().set_faults(bitbucket_operator::simulator::Faults { error_rate: 1.0, ..Default::default() });
    env.patch::<ProjectBinding>("platform", json!({"spec": {"repositories": {"exclude": ["api-gateway"]}}})).await;
    env.wait("projectbindings", "team-a", "platform", "the failure said", |o| {
        o["metadata"]["generation"] == o["status"]["observedGeneration"] && reason(o) != "Bound"
    })
    .await;
    // ...and is, once SonarQube is back: the record kept the repository until then.
    sonar.simulator().set_faults(bitbucket_operator::simulator::Faults::default());
    env.eventually("the departed repository's binding removed", || {
        sonar.simulator().binding("PLAT_api-gateway").is_none()
    })
    .await;
    env.wait_ready("projectbindings", "platform", "True", "Bound").await;
    env.shutdown().await;
    sonar.shutdown().await;
}
