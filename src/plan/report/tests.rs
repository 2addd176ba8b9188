//! The table tests of a required report's decisions.

use super::*;
use crate::{bitbucket::Severity, plan::status::Phase};

fn desired() -> MergeCheck {
    MergeCheck { report_key: "com.sonarsource.sonarqube".into(), must_pass: true, min_severity: Some(Severity::Low) }
}

fn loose() -> MergeCheck {
    MergeCheck { must_pass: false, min_severity: None, ..desired() }
}

fn denied() -> Error {
    Error::PermissionDenied { action: "change the required reports of PLAT/api (needs REPO_ADMIN)".into() }
}

fn server_error() -> Error {
    Error::Server { status: 503 }
}

fn gone() -> Error {
    Error::RepositoryNotFound { project: "PLAT".into(), slug: "api".into() }
}

fn slugs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A bound repository's plan, from what reading its check gave.
fn read(slug: &str, check: Result<Option<MergeCheck>, Error>) -> CheckPlan {
    plan_bound(slug.into(), &desired(), check)
}

fn left(slug: &str) -> CheckPlan {
    removal_plans(&slugs(&[slug]), "com.sonarsource.sonarqube").remove(0)
}

fn written(plan: &CheckPlan, error: Option<Error>) -> CheckOutcome {
    let change = plan.change.clone().unwrap_or(CheckChange::Delete { report_key: "none".into() });
    CheckOutcome { slug: plan.slug.clone(), change, error }
}

fn entry(slug: &str, state: CheckState, message: Option<&str>) -> RepositoryCheck {
    RepositoryCheck { slug: slug.into(), state, message: message.map(str::to_owned) }
}

#[test]
fn when_checks_are_removed() {
    struct Case {
        name: &'static str,
        management: &'static str,
        deletion: &'static str,
        want: bool,
    }
    let cases = [
        Case { name: "the defaults", management: "Manage", deletion: "Delete", want: true },
        Case { name: "orphaned", management: "Manage", deletion: "Orphan", want: false },
        Case { name: "observed only", management: "Observe", deletion: "Delete", want: false },
        Case { name: "observed and orphaned", management: "Observe", deletion: "Orphan", want: false },
    ];
    for case in cases {
        let spec: RequiredReportSpec = serde_json::from_value(serde_json::json!({
            "bindingRef": {"name": "b"}, "managementPolicy": case.management, "deletionPolicy": case.deletion
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(removes_checks(&spec), case.want, "{}", case.name);
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
        Case { name: "no merge-check API", error: Error::UnsupportedServer { reason: "8.0".into() }, want: true },
        Case { name: "permission on one repository", error: denied(), want: false },
        Case { name: "one repository gone", error: gone(), want: false },
        Case { name: "server error", error: server_error(), want: false },
        Case { name: "conflict", error: Error::Conflict { exception: None }, want: false },
    ];
    for case in cases {
        assert_eq!(aborts_round(&case.error), case.want, "{}", case.name);
    }
}

#[test]
fn what_a_bound_repository_needs() {
    struct Case {
        name: &'static str,
        read: Result<Option<MergeCheck>, Error>,
        want_change: Option<CheckChange>,
        want_error: Option<Error>,
    }
    let cases = [
        Case {
            name: "missing: create",
            read: Ok(None),
            want_change: Some(CheckChange::Create(desired())),
            want_error: None,
        },
        Case { name: "as specified: nothing", read: Ok(Some(desired())), want_change: None, want_error: None },
        Case {
            name: "differs: update what differs",
            read: Ok(Some(loose())),
            want_change: Some(CheckChange::Update {
                from: loose(),
                to: desired(),
                fields: vec!["mustPass", "annotations"],
            }),
            want_error: None,
        },
        Case { name: "unreadable: the failure", read: Err(denied()), want_change: None, want_error: Some(denied()) },
    ];
    for case in cases {
        let observed = case.read.as_ref().ok().cloned().flatten();
        let plan = read("api", case.read);
        assert_eq!(plan.change, case.want_change, "{}", case.name);
        assert_eq!(plan.error, case.want_error, "{}", case.name);
        assert_eq!(plan.observed, observed, "{}", case.name);
        assert!(plan.bound, "{}", case.name);
    }
}

#[test]
fn which_repositories_a_round_covers() {
    struct Case {
        name: &'static str,
        bound: &'static [&'static str],
        departed: &'static [&'static str],
        remove_departed: bool,
        /// `slug` for a bound repository, `-slug` for a removal.
        want: &'static [&'static str],
        want_applied: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "bound ones by slug, then removals",
            bound: &["web", "api"],
            departed: &["old"],
            remove_departed: true,
            want: &["api", "web", "-old"],
            want_applied: &["api", "web", "old"],
        },
        Case {
            name: "departed ones left alone",
            bound: &["web"],
            departed: &["old"],
            remove_departed: false,
            want: &["web"],
            want_applied: &["web"],
        },
        Case {
            name: "nothing bound any more",
            bound: &[],
            departed: &["a", "b"],
            remove_departed: true,
            want: &["-a", "-b"],
            want_applied: &["a", "b"],
        },
    ];
    for case in cases {
        let (bound, departed) = (slugs(case.bound), slugs(case.departed));
        let desired = desired();
        let input = ReportInput {
            project: "PLAT",
            bound: &bound,
            departed: &departed,
            desired: &desired,
            remove_departed: case.remove_departed,
        };
        let plans = round_plan(bound.iter().map(|s| read(s, Ok(None))).collect(), &input);
        let got: Vec<String> =
            plans.iter().map(|p| if p.bound { p.slug.clone() } else { format!("-{}", p.slug) }).collect();
        assert_eq!(got, case.want, "{}", case.name);
        let applied: Vec<String> = changes_to_apply(&plans).into_iter().map(|(slug, _)| slug).collect();
        assert_eq!(applied, case.want_applied, "{}", case.name);
    }
    let plans = [read("api", Ok(Some(desired()))), read("lib", Err(denied())), read("web", Ok(Some(loose())))];
    let applied: Vec<String> = changes_to_apply(&plans).into_iter().map(|(slug, _)| slug).collect();
    assert_eq!(applied, ["web"], "in sync and unreadable repositories are not written");
}

#[test]
fn which_write_failures_count() {
    struct Case {
        name: &'static str,
        change: CheckChange,
        result: Result<(), Error>,
        want: Option<Error>,
    }
    let delete = || CheckChange::Delete { report_key: "k".into() };
    let project_gone = || Error::ProjectNotFound { project: "PLAT".into() };
    let cases = [
        Case { name: "a write that worked", change: CheckChange::Create(desired()), result: Ok(()), want: None },
        Case { name: "a removal that worked", change: delete(), result: Ok(()), want: None },
        Case { name: "removal from a repository that is gone", change: delete(), result: Err(gone()), want: None },
        Case { name: "removal from a project that is gone", change: delete(), result: Err(project_gone()), want: None },
        Case { name: "a removal refused", change: delete(), result: Err(denied()), want: Some(denied()) },
        Case {
            name: "creating on a repository that is gone",
            change: CheckChange::Create(desired()),
            result: Err(gone()),
            want: Some(gone()),
        },
        Case {
            name: "an update that failed",
            change: CheckChange::Update { from: loose(), to: desired(), fields: vec!["mustPass"] },
            result: Err(server_error()),
            want: Some(server_error()),
        },
    ];
    for case in cases {
        assert_eq!(write_failure(&case.change, case.result), case.want, "{}", case.name);
    }
}

#[test]
fn created_adopted_corrected_drifted_or_removed() {
    use CheckEvent::{Adopted, Corrected, Created, Drifted, Removed};
    use CheckState::{Failed, InSync, Pending};
    struct Case {
        name: &'static str,
        plan: CheckPlan,
        /// The write's failure, when a write was tried.
        write: Option<Option<Error>>,
        previous: Option<CheckState>,
        observe_only: bool,
        want: Option<(CheckState, Option<&'static str>)>,
        want_events: &'static [CheckEvent],
    }
    let cases = [
        Case {
            name: "missing on a new repository: created",
            plan: read("api", Ok(None)),
            write: Some(None),
            previous: None,
            observe_only: false,
            want: Some((InSync, None)),
            want_events: &[Created],
        },
        Case {
            name: "missing after a failed round: created",
            plan: read("api", Ok(None)),
            write: Some(None),
            previous: Some(Failed),
            observe_only: false,
            want: Some((InSync, None)),
            want_events: &[Created],
        },
        Case {
            name: "missing, but never written yet (a dry run): created",
            plan: read("api", Ok(None)),
            write: None,
            previous: Some(Pending),
            observe_only: false,
            want: Some((InSync, None)),
            want_events: &[Created],
        },
        Case {
            name: "removed by someone since it was in sync: corrected",
            plan: read("api", Ok(None)),
            write: Some(None),
            previous: Some(InSync),
            observe_only: false,
            want: Some((InSync, None)),
            want_events: &[Corrected],
        },
        Case {
            name: "changed by someone since: corrected",
            plan: read("api", Ok(Some(loose()))),
            write: Some(None),
            previous: Some(InSync),
            observe_only: false,
            want: Some((InSync, None)),
            want_events: &[Corrected],
        },
        Case {
            name: "someone else's matching check: adopted",
            plan: read("api", Ok(Some(desired()))),
            write: None,
            previous: None,
            observe_only: false,
            want: Some((InSync, None)),
            want_events: &[Adopted],
        },
        Case {
            name: "someone else's differing check: adopted and corrected",
            plan: read("api", Ok(Some(loose()))),
            write: Some(None),
            previous: None,
            observe_only: false,
            want: Some((InSync, None)),
            want_events: &[Adopted, Corrected],
        },
        Case {
            name: "its own check, unchanged: nothing happens",
            plan: read("api", Ok(Some(desired()))),
            write: None,
            previous: Some(InSync),
            observe_only: false,
            want: Some((InSync, None)),
            want_events: &[],
        },
        Case {
            name: "observed, missing: drifted",
            plan: read("api", Ok(None)),
            write: None,
            previous: Some(InSync),
            observe_only: true,
            want: Some((CheckState::Drifted, Some("the required report is missing"))),
            want_events: &[Drifted],
        },
        Case {
            name: "observed, differing: drifted, saying how",
            plan: read("api", Ok(Some(loose()))),
            write: None,
            previous: None,
            observe_only: true,
            want: Some((
                CheckState::Drifted,
                Some("found must exist, annotations ignored, want must pass, no annotations"),
            )),
            want_events: &[Drifted],
        },
        Case {
            name: "observed, matching: in sync, never adopted",
            plan: read("api", Ok(Some(desired()))),
            write: None,
            previous: None,
            observe_only: true,
            want: Some((InSync, None)),
            want_events: &[],
        },
        Case {
            name: "unreadable: failed",
            plan: read("api", Err(denied())),
            write: None,
            previous: Some(InSync),
            observe_only: false,
            want: Some((
                Failed,
                Some(
                    "the Bitbucket user may not change the required reports of PLAT/api (needs REPO_ADMIN); grant it the permission it needs",
                ),
            )),
            want_events: &[],
        },
        Case {
            name: "the write failed: failed, not created",
            plan: read("api", Ok(None)),
            write: Some(Some(server_error())),
            previous: None,
            observe_only: false,
            want: Some((Failed, Some("Bitbucket answered 503 (server error)"))),
            want_events: &[],
        },
        Case {
            name: "left the binding: removed, no longer listed",
            plan: left("old"),
            write: Some(None),
            previous: Some(InSync),
            observe_only: false,
            want: None,
            want_events: &[Removed],
        },
        Case {
            name: "left the binding, the removal failed: not listed either",
            plan: left("old"),
            write: Some(Some(denied())),
            previous: Some(InSync),
            observe_only: false,
            want: None,
            want_events: &[],
        },
        Case {
            name: "left the binding of an observing report: nothing removed",
            plan: left("old"),
            write: None,
            previous: Some(InSync),
            observe_only: true,
            want: None,
            want_events: &[],
        },
    ];
    for case in cases {
        let outcome = case.write.clone().map(|error| written(&case.plan, error));
        let got = verdict(&case.plan, outcome.as_ref(), case.previous, case.observe_only, &desired());
        let want_check = case.want.map(|(state, message)| entry(&case.plan.slug, state, message));
        assert_eq!(got.check, want_check, "{}", case.name);
        assert_eq!(got.events, case.want_events, "{}", case.name);
        let want_failure = case.plan.error.clone().or(case.write.flatten());
        assert_eq!(got.failure, want_failure, "{}", case.name);
    }
}

#[test]
fn how_a_report_round_ends() {
    use CheckState::{Drifted, Failed, InSync};
    struct Case {
        name: &'static str,
        repositories: Vec<RepositoryCheck>,
        first_reason: Option<&'static str>,
        transient: bool,
        want_phase: Phase,
        want_reason: &'static str,
        want_message: &'static str,
    }
    let ok = |slug: &str| entry(slug, InSync, None);
    let failed = |slug: &str| entry(slug, Failed, Some("it broke"));
    let drifted = |slug: &str| entry(slug, Drifted, Some("the required report is missing"));
    let cases = [
        Case {
            name: "all in sync",
            repositories: vec![ok("api"), ok("web")],
            first_reason: None,
            transient: false,
            want_phase: Phase::Ready,
            want_reason: reasons::IN_SYNC,
            want_message: "2 of 2 repositories require com.sonarsource.sonarqube (must pass, no annotations)",
        },
        Case {
            name: "nothing bound",
            repositories: vec![],
            first_reason: None,
            transient: false,
            want_phase: Phase::Ready,
            want_reason: reasons::IN_SYNC,
            want_message: "0 of 0 repositories require com.sonarsource.sonarqube (must pass, no annotations)",
        },
        Case {
            name: "a transient failure on a repository that left is retried, but all bound are in sync",
            repositories: vec![ok("api")],
            first_reason: Some(reasons::UNREACHABLE),
            transient: true,
            want_phase: Phase::Ready,
            want_reason: reasons::IN_SYNC,
            want_message: "1 of 1 repositories require com.sonarsource.sonarqube (must pass, no annotations)",
        },
        Case {
            name: "some failed, transiently: partial failure, retried",
            repositories: vec![ok("api"), failed("web")],
            first_reason: Some(reasons::UNREACHABLE),
            transient: true,
            want_phase: Phase::Reconciling,
            want_reason: reasons::PARTIALLY_FAILED,
            want_message: "1 of 2 repositories failed; web: it broke",
        },
        Case {
            name: "all failed, one transiently: still retried",
            repositories: vec![failed("api"), failed("web")],
            first_reason: Some(reasons::PERMISSION_DENIED),
            transient: true,
            want_phase: Phase::Reconciling,
            want_reason: reasons::PARTIALLY_FAILED,
            want_message: "2 of 2 repositories failed; api: it broke",
        },
        Case {
            name: "all failed for good: stalled with the first reason",
            repositories: vec![failed("api"), failed("web")],
            first_reason: Some(reasons::PERMISSION_DENIED),
            transient: false,
            want_phase: Phase::Stalled,
            want_reason: reasons::PERMISSION_DENIED,
            want_message: "2 of 2 repositories failed; api: it broke",
        },
        Case {
            name: "some failed for good: stalled, partial failure",
            repositories: vec![failed("api"), ok("web")],
            first_reason: Some(reasons::REPOSITORY_NOT_FOUND),
            transient: false,
            want_phase: Phase::Stalled,
            want_reason: reasons::PARTIALLY_FAILED,
            want_message: "1 of 2 repositories failed; api: it broke",
        },
        Case {
            name: "a failure outweighs drift",
            repositories: vec![drifted("api"), failed("web")],
            first_reason: Some(reasons::PERMISSION_DENIED),
            transient: false,
            want_phase: Phase::Stalled,
            want_reason: reasons::PARTIALLY_FAILED,
            want_message: "1 of 2 repositories failed; web: it broke",
        },
        Case {
            name: "drift, observed only",
            repositories: vec![drifted("api"), ok("lib"), drifted("web")],
            first_reason: None,
            transient: false,
            want_phase: Phase::Stalled,
            want_reason: reasons::DRIFTED,
            want_message: "2 of 3 repositories differ from the spec (api, web); managementPolicy is Observe, so nothing was changed",
        },
        Case {
            name: "drift on many repositories names the first five",
            repositories: ["a", "b", "c", "d", "e", "f"].into_iter().map(drifted).collect(),
            first_reason: None,
            transient: false,
            want_phase: Phase::Stalled,
            want_reason: reasons::DRIFTED,
            want_message: "6 of 6 repositories differ from the spec (a, b, c, d, e); managementPolicy is Observe, so nothing was changed",
        },
    ];
    for case in cases {
        let required = format!("require {} ({})", desired().report_key, describe(&desired()));
        let got = round_outcome(&case.repositories, case.first_reason, case.transient, &required);
        assert_eq!((got.phase, got.reason), (case.want_phase, case.want_reason), "{}", case.name);
        assert_eq!(got.message, case.want_message, "{}", case.name);
    }
}

#[test]
fn a_round_sums_up_its_repositories() {
    struct Case {
        name: &'static str,
        plans: Vec<CheckPlan>,
        failed_writes: &'static [&'static str],
        previous: Vec<RepositoryCheck>,
        /// created, adopted, corrected, removed
        want_lists: [&'static [&'static str]; 4],
        want_counts: (i32, i32),
        want_reason: &'static str,
        want_retry: bool,
        /// Repositories that left and still have the check.
        want_unremoved: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "a managed round",
            plans: vec![
                read("api", Ok(None)),
                read("lib", Ok(Some(desired()))),
                read("web", Ok(Some(loose()))),
                left("old"),
            ],
            failed_writes: &[],
            previous: vec![entry("web", CheckState::InSync, None), entry("old", CheckState::InSync, None)],
            want_lists: [&["api"], &["lib"], &["web"], &["old"]],
            want_counts: (3, 3),
            want_reason: reasons::IN_SYNC,
            want_retry: false,
            want_unremoved: &[],
        },
        Case {
            name: "a removal failing transiently is retried",
            plans: vec![read("api", Ok(Some(desired()))), left("old")],
            failed_writes: &["old"],
            previous: vec![entry("api", CheckState::InSync, None)],
            want_lists: [&[], &[], &[], &[]],
            want_counts: (1, 1),
            want_reason: reasons::IN_SYNC,
            want_retry: true,
            want_unremoved: &["old"],
        },
        Case {
            name: "every bound repository failed: the first one's reason",
            plans: vec![read("api", Err(denied())), read("web", Ok(None))],
            failed_writes: &["web"],
            previous: vec![],
            want_lists: [&[], &[], &[], &[]],
            want_counts: (2, 0),
            want_reason: reasons::PARTIALLY_FAILED,
            want_retry: true,
            want_unremoved: &[],
        },
        Case {
            name: "every bound repository failed for good",
            plans: vec![read("api", Err(denied())), read("web", Err(gone()))],
            failed_writes: &[],
            previous: vec![],
            want_lists: [&[], &[], &[], &[]],
            want_counts: (2, 0),
            want_reason: reasons::PERMISSION_DENIED,
            want_retry: false,
            want_unremoved: &[],
        },
    ];
    for case in cases {
        let outcomes: Vec<CheckOutcome> = changes_to_apply(&case.plans)
            .into_iter()
            .map(|(slug, change)| {
                let error = case.failed_writes.contains(&slug.as_str()).then(server_error);
                CheckOutcome { slug, change, error }
            })
            .collect();
        let previous: HashMap<String, CheckState> = case.previous.iter().map(|e| (e.slug.clone(), e.state)).collect();
        let summary = summarize(&case.plans, &outcomes, &previous, false, &desired());
        let lists = [&summary.created, &summary.adopted, &summary.corrected, &summary.removed];
        assert_eq!(
            lists.map(|l| l.as_slice()),
            case.want_lists.map(slugs).each_ref().map(Vec::as_slice),
            "{}",
            case.name
        );
        assert_eq!((summary.total, summary.in_sync), case.want_counts, "{}", case.name);
        assert_eq!(summary.outcome.reason, case.want_reason, "{}", case.name);
        assert_eq!(summary.transient.is_some(), case.want_retry, "{}", case.name);
        assert_eq!(summary.unremoved, slugs(case.want_unremoved), "{}", case.name);
    }
}
