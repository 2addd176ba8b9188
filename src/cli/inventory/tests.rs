use std::collections::BTreeMap;

use serde_json::Value;

use super::*;
use crate::{
    bitbucket::{CloneLinks, RepositoryState, Secret, Severity},
    plan::reasons,
};

fn want(name: &str) -> DesiredWebhook {
    DesiredWebhook {
        name: name.into(),
        url: format!("https://ci.example.com/{name}"),
        events: vec!["repo:refs_changed".into()],
        active: true,
        ssl_verification_required: true,
        secret: Some(Secret::new("s3cr3t")),
    }
}

fn have(id: i64, desired: &DesiredWebhook, change: impl FnOnce(&mut Webhook)) -> Webhook {
    let mut hook = Webhook {
        id,
        name: desired.name.clone(),
        url: desired.url.clone(),
        events: desired.events.clone(),
        active: desired.active,
        ssl_verification_required: Some(desired.ssl_verification_required),
        secret: desired.secret.clone(),
        configuration: BTreeMap::new(),
    };
    change(&mut hook);
    hook
}

#[test]
fn each_declared_webhook_gets_its_state_from_the_plan() {
    let declared = [want("ci"), want("chat")];
    let cases: [(&str, Vec<Webhook>, [State; 2]); 5] = [
        (
            "both there",
            vec![have(1, &want("ci"), |_| {}), have(2, &want("chat"), |_| {})],
            [State::InSync, State::InSync],
        ),
        ("one missing", vec![have(1, &want("ci"), |_| {})], [State::InSync, State::Missing]),
        (
            "someone else's webhook does not count",
            vec![have(1, &want("ci"), |_| {}), have(3, &want("other"), |_| {})],
            [State::InSync, State::Missing],
        ),
        (
            "changed fields are named, a secret only by name",
            vec![
                have(1, &want("ci"), |h| {
                    h.url = "https://old.example.com".into();
                    h.secret = Some(Secret::new("old"));
                }),
                have(2, &want("chat"), |h| h.active = false),
            ],
            [State::Differs(vec!["url", "secret"]), State::Differs(vec!["active"])],
        ),
        (
            "a second webhook of a declared name",
            vec![have(1, &want("ci"), |_| {}), have(5, &want("ci"), |_| {}), have(2, &want("chat"), |_| {})],
            [State::Differs(vec!["duplicate"]), State::InSync],
        ),
    ];
    for (name, observed, expected) in cases {
        assert_eq!(webhook_states_of(&declared, &observed), expected, "{name}");
    }
}

#[test]
fn a_merge_check_is_in_sync_missing_or_differs_by_field() {
    let desired = MergeCheck { report_key: "k".into(), must_pass: true, min_severity: Some(Severity::High) };
    assert_eq!(check_state(&desired, Some(&desired)), State::InSync);
    assert_eq!(check_state(&desired, None), State::Missing);
    let lax = MergeCheck { must_pass: false, min_severity: None, ..desired.clone() };
    assert_eq!(check_state(&desired, Some(&lax)), State::Differs(vec!["mustPass", "annotations"]));
}

fn repository(slug: &str, id: i64) -> Repository {
    Repository {
        slug: slug.into(),
        id,
        name: format!("The {slug}"),
        state: RepositoryState::Available,
        archived: false,
        project_key: "PLAT".into(),
        clone: CloneLinks { http: Some(format!("https://bb.example.com/scm/plat/{slug}.git")), ssh: None },
    }
}

fn binding(repositories: Vec<RepositoryInventory>) -> BindingInventory {
    BindingInventory {
        id: ResourceId { kind: "ProjectBinding", namespace: Some("team".into()), name: "platform".into() },
        source: "team.yaml (document 2)".into(),
        project: "PLAT".into(),
        repository_slug: None,
        webhooks: vec!["ci".into()],
        reports: vec![ReportColumn {
            name: "sonarqube".into(),
            desired: MergeCheck { report_key: "com.sonarsource.sonarqube".into(), must_pass: true, min_severity: None },
        }],
        builds: Vec::new(),
        repositories,
        failure: None,
    }
}

#[test]
fn the_table_aligns_columns_and_groups_one_failure_over_many_repositories() {
    let unsupported = State::Failed(Outcome::stalled(reasons::UNSUPPORTED_SERVER, "no merge-check API"));
    let repositories: Vec<RepositoryInventory> = (1..=7)
        .map(|i| RepositoryInventory {
            repository: repository(&format!("r{i}"), i),
            webhooks: vec![if i == 1 { State::Missing } else { State::InSync }],
            reports: vec![unsupported.clone()],
            builds: Vec::new(),
        })
        .collect();
    let found = binding(repositories);
    let text = found.render_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ProjectBinding team/platform  (project PLAT, a selection; from team.yaml (document 2))");
    // Every column starts at the same place on every line.
    let header = lines[1];
    let http = header.find("HTTP").expect("an HTTP column");
    assert!(lines[2..9].iter().all(|l| l[http..].starts_with("https://")), "{text}");
    assert!(lines[2].contains("  missing  "), "{text}");
    assert!(lines[3].contains("  in sync  "), "{text}");
    assert_eq!(
        lines[9],
        "    ✗ required report sonarqube on r1, r2, r3, r4, r5 and 2 more: UnsupportedServer: no merge-check API"
    );
    assert_eq!(lines[10], "    7 repositories; webhook ci: 6 in sync, 1 missing; required report sonarqube: 7 failed");
    assert_eq!(found.failed_reads(), 7);

    let json = found.render_json();
    assert_eq!(json["repositories"][0]["webhooks"][0]["state"], "missing");
    assert_eq!(json["repositories"][1]["requiredReports"][0]["reason"], "UnsupportedServer");
    assert_eq!(json["repositories"][1]["requiredReports"][0]["reportKey"], "com.sonarsource.sonarqube");
    assert_eq!(json["repositories"][0]["sshCloneUrl"], Value::Null);
    assert_eq!(json["summary"]["webhooks"]["ci"]["inSync"], 6);
    assert_eq!(json["summary"]["requiredReports"]["sonarqube"]["error"], 7);

    let mut totals = Totals::default();
    totals.add(&found);
    assert_eq!(totals.exit_code(), 1);
}

#[test]
fn a_binding_that_could_not_be_read_says_why_and_fails_the_run() {
    let mut found = binding(Vec::new());
    found.failure = Some(Outcome::stalled(reasons::PROJECT_NOT_FOUND, "project PLAT does not exist in Bitbucket"));
    assert!(found.render_text().ends_with("    ✗ ProjectNotFound: project PLAT does not exist in Bitbucket\n\n"));
    let json = found.render_json();
    assert_eq!((json["ok"].clone(), json["reason"].clone()), (Value::Bool(false), Value::from("ProjectNotFound")));
    let mut totals = Totals::default();
    totals.add(&found);
    assert_eq!(totals.exit_code(), 1);
    let mut clean = Totals::default();
    clean.add(&binding(Vec::new()));
    assert_eq!(clean.exit_code(), 0);
}

#[test]
fn a_required_build_is_in_sync_missing_or_duplicated_by_content() {
    use crate::{
        api::required_build::{RefMatcher, RefMatcherType},
        bitbucket::{RefMatcher as WireMatcher, RefMatcherType as WireType, RequiredBuildCondition},
        plan::required_builds::round::Observed,
    };
    let spec: RequiredBuildSpec = serde_json::from_value(serde_json::json!({
        "bindingRef": {"name": "platform"},
        "buildParentKeys": ["gate"],
    }))
    .expect("a spec");
    let condition = |id: i64, keys: &[&str], branch: &str| RequiredBuildCondition {
        id,
        build_parent_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        ref_matcher: WireMatcher { id: branch.to_owned(), kind: WireType::Branch },
        exempt_ref_matcher: None,
    };
    let input =
        BuildInput { project: "PLAT", bound: &[], departed: &[], spec: &spec, applied: &[], remove_departed: false };
    let state = |conditions: Vec<RequiredBuildCondition>| {
        let observed = Observed { default_branch: Some("refs/heads/main".into()), conditions };
        build_state(&plan_repository("r".into(), true, &input, Ok(observed)))
    };
    assert_eq!(state(vec![condition(1, &["gate"], "refs/heads/main")]), State::InSync);
    // Someone else's condition (other builds, or another branch) is not the build's.
    assert_eq!(state(vec![condition(1, &["ci"], "refs/heads/main")]), State::Missing);
    assert_eq!(state(vec![condition(1, &["gate"], "refs/heads/develop")]), State::Missing);
    assert_eq!(
        state(vec![condition(1, &["gate"], "main"), condition(2, &["gate"], "refs/heads/main")]),
        State::Differs(vec!["duplicate"])
    );
    let pattern = RequiredBuildSpec {
        ref_matcher: Some(RefMatcher { type_: RefMatcherType::Pattern, value: Some("release/*".into()) }),
        ..spec.clone()
    };
    let input = BuildInput { spec: &pattern, ..input };
    assert!(!input.needs_default_branch(), "a pattern needs no default branch read");
    let read = Err(crate::bitbucket::Error::InvalidArgument { field: "x", problem: "unreadable".into() });
    assert!(matches!(build_state(&plan_repository("r".into(), true, &input, read)), State::Failed(_)));
}
