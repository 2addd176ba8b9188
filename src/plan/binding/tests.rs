//! The table tests of a binding's decisions.

use std::{collections::BTreeMap, time::Duration};

use super::*;
use crate::bitbucket::{CloneLinks, RepositoryState};

fn spec() -> ProjectBindingSpec {
    serde_json::from_value(serde_json::json!({"configurationRef": {"name": "c"}, "projectKey": "PLAT"}))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn repo(slug: &str) -> Repository {
    Repository {
        slug: slug.into(),
        id: 1,
        name: slug.into(),
        state: RepositoryState::Available,
        archived: false,
        project_key: "PLAT".into(),
        clone: CloneLinks::default(),
    }
}

fn want(name: &str) -> DesiredWebhook {
    DesiredWebhook {
        name: name.into(),
        url: format!("https://ci.example.com/{name}"),
        events: vec!["repo:refs_changed".into()],
        active: true,
        ssl_verification_required: true,
        secret: None,
    }
}

fn hook(id: i64, name: &str) -> Webhook {
    let desired = want(name);
    Webhook {
        id,
        name: desired.name,
        url: desired.url,
        events: desired.events,
        active: true,
        ssl_verification_required: Some(true),
        secret: None,
        configuration: BTreeMap::new(),
    }
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn server_error() -> Error {
    Error::Server { status: 503 }
}

fn denied() -> Error {
    Error::PermissionDenied { action: "administer repository PLAT/api".into() }
}

fn gone(slug: &str) -> Error {
    Error::RepositoryNotFound { project: "PLAT".into(), slug: slug.into() }
}

/// A change as a short line: `create ci`, `update 7 url`, `delete 4 old NoLongerDeclared`.
fn line(change: &WebhookChange) -> String {
    match change {
        WebhookChange::Create { desired } => format!("create {}", desired.name),
        WebhookChange::Update { id, fields, .. } => format!("update {id} {}", fields.join(",")),
        WebhookChange::Delete { id, name, why } => format!("delete {id} {name} {why:?}"),
    }
}

#[test]
fn which_repositories_a_round_works_on() {
    struct Case {
        name: &'static str,
        bound: &'static [&'static str],
        departed: &'static [&'static str],
        /// `slug` for a bound repository, `-slug` for one only cleaned up.
        want: &'static [&'static str],
    }
    let cases = [
        Case { name: "first round", bound: &["api", "web"], departed: &[], want: &["api", "web"] },
        Case { name: "a bound slug is never cleaned up", bound: &["api"], departed: &["api"], want: &["api"] },
        Case { name: "one left", bound: &["api"], departed: &["old"], want: &["api", "-old"] },
        Case { name: "all left", bound: &[], departed: &["a", "b"], want: &["-a", "-b"] },
        Case { name: "one joined, one left", bound: &["new"], departed: &["old"], want: &["new", "-old"] },
        Case { name: "each once", bound: &[], departed: &["old", "old"], want: &["-old"] },
    ];
    for case in cases {
        let departed: Vec<String> = case.departed.iter().map(|s| (*s).to_owned()).collect();
        let work = repositories_to_observe(case.bound.iter().map(|s| repo(s)).collect(), &departed);
        let got: Vec<String> =
            work.iter().map(|(slug, r)| if r.is_some() { slug.clone() } else { format!("-{slug}") }).collect();
        assert_eq!(got, case.want, "{}", case.name);
    }
}

#[test]
fn whose_webhooks_are_read() {
    struct Case {
        name: &'static str,
        bound: bool,
        declared: &'static [&'static str],
        managed: &'static [&'static str],
        want: bool,
    }
    let cases = [
        Case { name: "bound, declares webhooks", bound: true, declared: &["ci"], managed: &[], want: true },
        Case { name: "bound, only managed some", bound: true, declared: &[], managed: &["old"], want: true },
        Case { name: "bound, no webhooks at all", bound: true, declared: &[], managed: &[], want: false },
        Case { name: "left, managed some", bound: false, declared: &["ci"], managed: &["ci"], want: true },
        Case { name: "left, declared but never managed", bound: false, declared: &["ci"], managed: &[], want: false },
        Case { name: "left, no webhooks at all", bound: false, declared: &[], managed: &[], want: false },
    ];
    for case in cases {
        let declared: Vec<DesiredWebhook> = case.declared.iter().map(|n| want(n)).collect();
        assert_eq!(reads_webhooks(case.bound, &declared, &names(case.managed)), case.want, "{}", case.name);
    }
}

#[test]
fn what_each_repository_needs() {
    struct Case {
        name: &'static str,
        bound: bool,
        declared: &'static [&'static str],
        managed: &'static [&'static str],
        read: Option<Result<Vec<Webhook>, Error>>,
        want_changes: &'static [&'static str],
        want_error: Option<Error>,
    }
    let cases = [
        Case {
            name: "not read: nothing to do",
            bound: true,
            declared: &[],
            managed: &[],
            read: None,
            want_changes: &[],
            want_error: None,
        },
        Case {
            name: "bound and missing its webhook: create",
            bound: true,
            declared: &["ci"],
            managed: &[],
            read: Some(Ok(vec![hook(3, "someone-elses")])),
            want_changes: &["create ci"],
            want_error: None,
        },
        Case {
            name: "bound: an undeclared managed webhook goes, a foreign one stays",
            bound: true,
            declared: &["ci"],
            managed: &["ci", "old"],
            read: Some(Ok(vec![hook(1, "ci"), hook(2, "old"), hook(3, "someone-elses")])),
            want_changes: &["delete 2 old NoLongerDeclared"],
            want_error: None,
        },
        Case {
            name: "left: the managed webhooks go, a foreign one stays",
            bound: false,
            declared: &["ci"],
            managed: &["ci"],
            read: Some(Ok(vec![hook(1, "ci"), hook(3, "someone-elses")])),
            want_changes: &["delete 1 ci BindingDeleted"],
            want_error: None,
        },
        Case {
            name: "left and gone from Bitbucket: nothing to clean",
            bound: false,
            declared: &[],
            managed: &["ci"],
            read: Some(Err(gone("old"))),
            want_changes: &[],
            want_error: None,
        },
        Case {
            name: "left, its project gone: kept as a failure",
            bound: false,
            declared: &[],
            managed: &["ci"],
            read: Some(Err(Error::ProjectNotFound { project: "PLAT".into() })),
            want_changes: &[],
            want_error: Some(Error::ProjectNotFound { project: "PLAT".into() }),
        },
        Case {
            name: "bound and gone while the round ran: a failure",
            bound: true,
            declared: &["ci"],
            managed: &[],
            read: Some(Err(gone("api"))),
            want_changes: &[],
            want_error: Some(gone("api")),
        },
        Case {
            name: "bound, the read failed: a failure",
            bound: true,
            declared: &["ci"],
            managed: &[],
            read: Some(Err(server_error())),
            want_changes: &[],
            want_error: Some(server_error()),
        },
    ];
    for case in cases {
        let declared: Vec<DesiredWebhook> = case.declared.iter().map(|n| want(n)).collect();
        let managed = names(case.managed);
        let spec = spec();
        let input = BindingInput { spec: &spec, webhooks: &declared, managed: &managed, departed: &[] };
        let repository = case.bound.then(|| repo("api"));
        let plan = plan_repository(&input, "api".into(), repository, case.read);
        assert_eq!(plan.changes.iter().map(line).collect::<Vec<_>>(), case.want_changes, "{}", case.name);
        assert_eq!(plan.error, case.want_error, "{}", case.name);
        assert_eq!(plan.is_bound(), case.bound, "{}", case.name);
    }
}

#[test]
fn which_failures_stop_the_round() {
    struct Case {
        name: &'static str,
        error: Error,
        want: bool,
    }
    let cases = [
        Case { name: "rejected credential", error: Error::BadCredentials { reason: "401".into() }, want: true },
        Case { name: "CAPTCHA lock-out", error: Error::CaptchaRequired, want: true },
        Case { name: "basic auth off", error: Error::BasicAuthDisabled, want: true },
        Case { name: "permission on one repository", error: denied(), want: false },
        Case { name: "one repository gone", error: gone("api"), want: false },
        Case { name: "server error", error: server_error(), want: false },
        Case { name: "rate limited", error: Error::RateLimited { retry_after: Duration::from_secs(5) }, want: false },
        Case { name: "unsupported server", error: Error::UnsupportedServer { reason: "old".into() }, want: false },
        Case { name: "rejected request", error: Error::InvalidRequest { field: Some("url".into()) }, want: false },
    ];
    for case in cases {
        assert_eq!(aborts_round(&case.error), case.want, "{}", case.name);
    }
}

#[test]
fn what_a_deleted_binding_removes() {
    struct Case {
        name: &'static str,
        managed: &'static [&'static str],
        read: Result<Vec<Webhook>, Error>,
        want: Result<&'static [&'static str], Error>,
    }
    let cases = [
        Case {
            name: "managed ones go, foreign ones stay",
            managed: &["ci", "chat"],
            read: Ok(vec![hook(2, "ci"), hook(1, "chat"), hook(3, "someone-elses")]),
            want: Ok(&["delete 1 chat BindingDeleted", "delete 2 ci BindingDeleted"]),
        },
        Case { name: "nothing there", managed: &["ci"], read: Ok(Vec::new()), want: Ok(&[]) },
        Case { name: "repository gone", managed: &["ci"], read: Err(gone("api")), want: Ok(&[]) },
        Case {
            name: "project gone",
            managed: &["ci"],
            read: Err(Error::ProjectNotFound { project: "PLAT".into() }),
            want: Ok(&[]),
        },
        Case { name: "read failed", managed: &["ci"], read: Err(denied()), want: Err(denied()) },
    ];
    for case in cases {
        let got = removal(case.read, &names(case.managed)).map(|c| c.iter().map(line).collect::<Vec<_>>());
        let want = case.want.map(|w| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(got, want, "{}", case.name);
    }
}

/// A plan with one entry per `(slug, bound, failure)`.
fn plan_of(repositories: &[(&str, bool, Option<Error>)]) -> BindingPlan {
    let repositories = repositories
        .iter()
        .map(|(slug, bound, error)| RepositoryPlan {
            slug: (*slug).into(),
            repository: bound.then(|| repo(slug)),
            changes: Vec::new(),
            error: error.clone(),
        })
        .collect();
    BindingPlan::new("PLAT".into(), repositories)
}

fn outcome(slug: &str, error: Option<Error>) -> RepositoryOutcome {
    RepositoryOutcome { slug: slug.into(), applied: Vec::new(), error }
}

#[test]
fn plans_order_and_skip_what_could_not_be_observed() {
    struct Case {
        name: &'static str,
        repositories: Vec<(&'static str, bool, Option<Error>)>,
        want_order: &'static [&'static str],
        want_applied: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "bound first by slug, then the ones that left",
            repositories: vec![("old", false, None), ("web", true, None), ("api", true, None)],
            want_order: &["api", "web", "old"],
            want_applied: &["api", "web", "old"],
        },
        Case {
            name: "a repository that could not be observed is not applied",
            repositories: vec![("web", true, Some(server_error())), ("api", true, None)],
            want_order: &["api", "web"],
            want_applied: &["api"],
        },
    ];
    for case in cases {
        let plan = plan_of(&case.repositories);
        let order: Vec<&str> = plan.repositories.iter().map(|r| r.slug.as_str()).collect();
        assert_eq!(order, case.want_order, "{}", case.name);
        let applied: Vec<&str> = plan.to_apply().map(|r| r.slug.as_str()).collect();
        assert_eq!(applied, case.want_applied, "{}", case.name);
    }
}

#[test]
fn which_webhooks_stay_managed() {
    struct Case {
        name: &'static str,
        declared: &'static [&'static str],
        managed: &'static [&'static str],
        read_failure: bool,
        write_failure: bool,
        want: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "a clean round forgets what is no longer declared",
            declared: &["ci"],
            managed: &["ci", "old"],
            read_failure: false,
            write_failure: false,
            want: &["ci"],
        },
        Case {
            name: "a repository that could not be read keeps the old names",
            declared: &["ci"],
            managed: &["ci", "old"],
            read_failure: true,
            write_failure: false,
            want: &["ci", "old"],
        },
        Case {
            name: "a failed write keeps the old names",
            declared: &["ci"],
            managed: &["old"],
            read_failure: false,
            write_failure: true,
            want: &["ci", "old"],
        },
        Case {
            name: "newly declared names are managed at once",
            declared: &["ci", "chat"],
            managed: &[],
            read_failure: false,
            write_failure: false,
            want: &["chat", "ci"],
        },
        Case {
            name: "nothing declared, clean round: nothing managed",
            declared: &[],
            managed: &["old"],
            read_failure: false,
            write_failure: false,
            want: &[],
        },
        Case {
            name: "nothing declared, failed round: the old names stay",
            declared: &[],
            managed: &["old"],
            read_failure: false,
            write_failure: true,
            want: &["old"],
        },
    ];
    for case in cases {
        let declared: Vec<DesiredWebhook> = case.declared.iter().map(|n| want(n)).collect();
        let managed = names(case.managed);
        let spec = spec();
        let input = BindingInput { spec: &spec, webhooks: &declared, managed: &managed, departed: &[] };
        let plan = plan_of(&[("api", true, None), ("web", true, case.read_failure.then(server_error))]);
        let outcomes = [outcome("api", case.write_failure.then(denied))];
        assert_eq!(managed_after(&input, &plan, &outcomes), names(case.want), "{}", case.name);
    }
}

#[test]
fn how_a_binding_round_ends() {
    struct Case {
        name: &'static str,
        bound: usize,
        webhooks: usize,
        failures: Vec<(&'static str, Error)>,
        want_phase: Phase,
        want_reason: &'static str,
        want_message: &'static str,
        want_retry: bool,
    }
    let cases = [
        Case {
            name: "one repository, no webhooks",
            bound: 1,
            webhooks: 0,
            failures: vec![],
            want_phase: Phase::Ready,
            want_reason: reasons::BOUND,
            want_message: "1 repository bound",
            want_retry: false,
        },
        Case {
            name: "none bound",
            bound: 0,
            webhooks: 1,
            failures: vec![],
            want_phase: Phase::Ready,
            want_reason: reasons::BOUND,
            want_message: "0 repositories bound, each with its webhook",
            want_retry: false,
        },
        Case {
            name: "several repositories and webhooks",
            bound: 3,
            webhooks: 2,
            failures: vec![],
            want_phase: Phase::Ready,
            want_reason: reasons::BOUND,
            want_message: "3 repositories bound, each with its 2 webhooks",
            want_retry: false,
        },
        Case {
            name: "a transient failure is retried",
            bound: 3,
            webhooks: 1,
            failures: vec![("web", server_error())],
            want_phase: Phase::Reconciling,
            want_reason: reasons::UNREACHABLE,
            want_message: "webhooks could not be brought in line on 1 of 3 repositories; web: Bitbucket answered 503 (server error)",
            want_retry: true,
        },
        Case {
            name: "a lasting failure stalls with its reason",
            bound: 3,
            webhooks: 1,
            failures: vec![("api", denied()), ("web", denied())],
            want_phase: Phase::Stalled,
            want_reason: reasons::PERMISSION_DENIED,
            want_message: "webhooks could not be brought in line on 2 of 3 repositories; api: the Bitbucket user may not administer repository PLAT/api; grant it the permission it needs",
            want_retry: false,
        },
        Case {
            name: "the first failure decides, even when a later one is transient",
            bound: 2,
            webhooks: 1,
            failures: vec![("api", gone("api")), ("web", server_error())],
            want_phase: Phase::Stalled,
            want_reason: reasons::REPOSITORY_NOT_FOUND,
            want_message: "webhooks could not be brought in line on 2 of 2 repositories; api: repository PLAT/api does not exist in Bitbucket",
            want_retry: false,
        },
    ];
    for case in cases {
        let failures: Vec<(&str, &Error)> = case.failures.iter().map(|(s, e)| (*s, e)).collect();
        let (outcome, retry) = round_outcome(case.bound, &failures, case.webhooks);
        assert_eq!(outcome.phase, case.want_phase, "{}", case.name);
        assert_eq!(outcome.reason, case.want_reason, "{}", case.name);
        assert_eq!(outcome.message, case.want_message, "{}", case.name);
        assert_eq!(retry.is_some(), case.want_retry, "{}", case.name);
    }
}

#[test]
fn a_round_counts_read_failures_before_write_failures() {
    struct Case {
        name: &'static str,
        plan: Vec<(&'static str, bool, Option<Error>)>,
        outcomes: Vec<RepositoryOutcome>,
        want_reason: &'static str,
        want_message: &'static str,
    }
    let cases = [
        Case {
            name: "departed repositories are not counted as bound",
            plan: vec![("api", true, None), ("old", false, None)],
            outcomes: vec![outcome("api", None), outcome("old", None)],
            want_reason: reasons::BOUND,
            want_message: "1 repository bound, each with its webhook",
        },
        Case {
            name: "the read failure is named first",
            plan: vec![("api", true, None), ("web", true, Some(denied()))],
            outcomes: vec![outcome("api", Some(server_error()))],
            want_reason: reasons::PERMISSION_DENIED,
            want_message: "webhooks could not be brought in line on 2 of 2 repositories; web: the Bitbucket user may not administer repository PLAT/api; grant it the permission it needs",
        },
        Case {
            name: "a failure on a repository that left counts too",
            plan: vec![("api", true, None), ("old", false, None)],
            outcomes: vec![outcome("api", None), outcome("old", Some(denied()))],
            want_reason: reasons::PERMISSION_DENIED,
            want_message: "webhooks could not be brought in line on 1 of 1 repositories; old: the Bitbucket user may not administer repository PLAT/api; grant it the permission it needs",
        },
    ];
    for case in cases {
        let (outcome, _) = summarize(&plan_of(&case.plan), &case.outcomes, 1);
        assert_eq!(outcome.reason, case.want_reason, "{}", case.name);
        assert_eq!(outcome.message, case.want_message, "{}", case.name);
    }
}

#[test]
fn a_round_is_counted_with_the_repositories_that_need_attention() {
    let mut plan = vec![("old", false, None), ("web", true, Some(denied()))];
    let bound: Vec<String> = (0..30).map(|i| format!("repo-{i:02}")).collect();
    plan.extend(bound.iter().map(|slug| (slug.as_str(), true, None)));
    // Every bound repository but the first five fails to write; "old" left and kept its webhook.
    let mut outcomes: Vec<RepositoryOutcome> =
        bound.iter().enumerate().map(|(i, slug)| outcome(slug, (i >= 5).then(server_error))).collect();
    outcomes.push(outcome("old", Some(denied())));
    let tally = tally(&plan_of(&plan), &outcomes);
    assert_eq!((tally.bound, tally.in_sync, tally.failed), (31, 5, 26));
    assert_eq!(tally.departed_failed, ["old"]);
    assert_eq!(tally.attention.len(), crate::api::coverage::ATTENTION_LIMIT);
    assert_eq!(tally.omitted, 27 - 20, "26 bound and 1 departed need attention");
    let listed: Vec<&str> = tally.attention.iter().map(|a| a.slug.as_str()).collect();
    assert_eq!(listed[0], "old", "by slug: {listed:?}");
    assert!(tally.attention[0].message.as_deref().is_some_and(|m| m.starts_with("left the binding")));
    assert!(listed.contains(&"repo-05") && !listed.contains(&"repo-04"), "only failures are listed: {listed:?}");
}
