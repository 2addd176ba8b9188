//! A RequiredBuild's round, decided: what each repository needs read, its plan from what was
//! read, whether a failure stops the round, what each repository's change was (created,
//! adopted, updated, restored, deduplicated, found drifted, removed) and how the round ends.
//! [`crate::sync::required_builds`] does the reading and writing around these decisions.

use std::collections::HashMap;

use crate::{
    api::{
        coverage::{CheckState, RepositoryCheck},
        required_build::{AppliedBuild, RequiredBuildSpec},
        required_report::ManagementPolicy,
    },
    bitbucket::{Error, ErrorClass, RefMatcherType, RequiredBuildCondition},
};

use super::{
    Action, Condition, Content, ContentError, Decision, Drift, applied, decide, desired, matcher_of, removals,
};
use crate::plan::{
    reasons,
    report::round_outcome,
    status::{Outcome, is_credential_error, is_gone, reason_for},
};

/// What a RequiredBuild wants in a round.
#[derive(Clone, Copy, Debug)]
pub struct BuildInput<'a> {
    /// The binding's project key.
    pub project: &'a str,
    /// The binding's repositories, by slug.
    pub bound: &'a [String],
    /// Repositories covered until now that are no longer bound.
    pub departed: &'a [String],
    /// The spec.
    pub spec: &'a RequiredBuildSpec,
    /// The contents the operator applied before that may still be on some repository
    /// (`status.applied`, newest first); none without a record.
    pub applied: &'a [AppliedBuild],
    /// Remove our conditions from the repositories that left (see [`super::removes_conditions`]).
    pub remove_departed: bool,
}

impl BuildInput<'_> {
    /// Whether the repositories' default branches are needed: the spec, or what was applied,
    /// targets the default branch (no `refMatcher`).
    pub fn needs_default_branch(&self) -> bool {
        self.spec.ref_matcher.is_none() || self.applied.iter().any(|a| a.ref_matcher.is_none())
    }

    /// Whether the spec can be turned into a condition at all (the CRD's rules refuse every
    /// spec that cannot; this names the field for one that bypassed them).
    pub fn check(&self) -> Result<(), Error> {
        desired(self.spec, "refs/heads/main").map(drop).map_err(invalid)
    }
}

fn invalid(error: ContentError) -> Error {
    let field = match &error {
        ContentError::MissingValue { field, .. } => *field,
        ContentError::NoBuildKeys => "buildParentKeys",
    };
    Error::InvalidArgument { field, problem: error.to_string() }
}

/// What was read from one repository.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Its default branch, when the input [needs it](BuildInput::needs_default_branch).
    pub default_branch: Option<String>,
    /// Its conditions.
    pub conditions: Vec<RequiredBuildCondition>,
}

/// One repository of the plan.
#[derive(Clone, Debug)]
pub struct RepositoryPlan {
    /// The slug.
    pub slug: String,
    /// Whether the repository is bound (otherwise it left and is only cleaned up).
    pub bound: bool,
    /// The condition it must have (bound repositories that could be read).
    pub desired: Option<Content>,
    /// What differs and what to change. For a repository that left, only deletions.
    pub decision: Decision,
    /// Why it could not be read.
    pub error: Option<Error>,
}

/// Whether a failure on one repository stops the whole round: a credential error, or a server
/// without the required-builds API (every repository would fail alike).
pub fn aborts_round(error: &Error) -> bool {
    is_credential_error(error) || error.class() == ErrorClass::Unsupported
}

/// One repository's plan from what was read there (`bound` tells a bound repository from one
/// that left and is only cleaned up). A repository that left is cleaned up only when
/// `remove_departed`; one that is gone has nothing left to clean.
pub fn plan_repository(
    slug: String,
    bound: bool,
    input: &BuildInput<'_>,
    read: Result<Observed, Error>,
) -> RepositoryPlan {
    let mut plan = RepositoryPlan {
        slug,
        bound,
        desired: None,
        decision: Decision { drift: Vec::new(), actions: Vec::new() },
        error: None,
    };
    let observed = match read {
        Ok(observed) => observed,
        Err(error) if !bound && is_gone(&error) => return plan,
        Err(error) => {
            plan.error = Some(error);
            return plan;
        }
    };
    let branch = match (&observed.default_branch, input.needs_default_branch()) {
        (Some(branch), _) => branch.as_str(),
        (None, false) => "",
        (None, true) => {
            plan.error = Some(Error::InvalidArgument {
                field: "refMatcher",
                problem: "is absent and the repository's default branch could not be read".into(),
            });
            return plan;
        }
    };
    let wanted = match desired(input.spec, branch) {
        Ok(wanted) => wanted,
        Err(error) => {
            plan.error = Some(invalid(error));
            return plan;
        }
    };
    // An unreadable record only means that no old condition is known as ours.
    let before: Vec<Content> = input.applied.iter().filter_map(|record| applied(record, branch).ok()).collect();
    let conditions: Vec<Condition> = observed.conditions.iter().map(Condition::from).collect();
    if bound {
        plan.decision = decide(&wanted, &before, &conditions, input.spec.management_policy);
        plan.desired = Some(wanted);
    } else if input.remove_departed {
        let actions = removals(&wanted, &before, &conditions).into_iter().map(|id| Action::Delete { id });
        plan.decision.actions = actions.collect();
    }
    plan
}

/// The changes to carry out, per repository that needs some, in order; repositories that could
/// not be read are skipped (their error stays in the plan).
pub fn changes_to_apply(plans: &[RepositoryPlan]) -> Vec<(String, Vec<Action>)> {
    plans
        .iter()
        .filter(|p| p.error.is_none() && !p.decision.actions.is_empty())
        .map(|p| (p.slug.clone(), p.decision.actions.clone()))
        .collect()
}

/// What carrying out one repository's changes did.
#[derive(Clone, Debug, Default)]
pub struct ChangeOutcome {
    /// The slug.
    pub slug: String,
    /// The id of the condition created or updated.
    pub written: Option<i64>,
    /// The ids deleted.
    pub deleted: Vec<i64>,
    /// The first change that failed, and why (the changes after it were not tried).
    pub error: Option<Error>,
}

/// The failure of a write, if it counts as one: deleting from a repository (or project) that is
/// gone succeeds, as there is nothing left to delete.
pub fn write_failure(action: &Action, error: Error) -> Option<Error> {
    match action {
        Action::Delete { .. } if is_gone(&error) => None,
        _ => Some(error),
    }
}

/// What a round found and did, per repository and in total.
#[derive(Clone, Debug)]
pub struct BuildSummary {
    /// Per bound repository: in sync, drifted (observe only) or failed, with a message.
    pub repositories: Vec<RepositoryCheck>,
    /// Repositories whose condition was created, as `slug (condition id)`.
    pub created: Vec<String>,
    /// Repositories whose identical condition (made by someone else, or by a round whose status
    /// write was lost) was taken over.
    pub adopted: Vec<String>,
    /// Repositories whose condition was updated in place to a changed spec.
    pub updated: Vec<String>,
    /// Repositories where the condition was in sync before, was gone or changed by hand, and
    /// was restored.
    pub corrected: Vec<String>,
    /// Repositories where duplicates of the condition (or an old one) were deleted.
    pub deduplicated: Vec<String>,
    /// Repositories that differ and were left alone (observe only).
    pub drifted: Vec<String>,
    /// Repositories that left the binding and lost the condition.
    pub removed: Vec<String>,
    /// Repositories that left the binding whose condition could not be removed (tried again
    /// next round).
    pub unremoved: Vec<String>,
    /// How many repositories are bound.
    pub total: i32,
    /// How many of them hold the condition as specified.
    pub in_sync: i32,
    /// The conditions' outcome.
    pub outcome: Outcome,
    /// A transient failure: the round should be retried with backoff.
    pub transient: Option<Error>,
}

/// Nothing found or done yet.
impl Default for BuildSummary {
    fn default() -> Self {
        Self {
            repositories: Vec::new(),
            created: Vec::new(),
            adopted: Vec::new(),
            updated: Vec::new(),
            corrected: Vec::new(),
            deduplicated: Vec::new(),
            drifted: Vec::new(),
            removed: Vec::new(),
            unremoved: Vec::new(),
            total: 0,
            in_sync: 0,
            outcome: Outcome::ready(reasons::IN_SYNC, String::new()),
            transient: None,
        }
    }
}

/// A matcher as a person reads it: `refs/heads/main`, `pattern release/*`, `any branch`.
pub fn describe_matcher(matcher: &crate::bitbucket::RefMatcher) -> String {
    match &matcher.kind {
        RefMatcherType::AnyRef => "any branch".to_owned(),
        RefMatcherType::Branch => matcher.id.clone(),
        RefMatcherType::Pattern => format!("pattern {}", matcher.id),
        RefMatcherType::ModelCategory => format!("branching-model category {}", matcher.id),
        RefMatcherType::ModelBranch => format!("branching-model branch {}", matcher.id),
        RefMatcherType::Other(kind) => format!("{kind} {}", matcher.id),
    }
}

/// What a condition requires, as a person reads it.
pub fn describe(content: &Content) -> String {
    let keys: Vec<&str> = content.build_keys.iter().map(String::as_str).collect();
    phrase(&keys, &describe_matcher(&content.ref_matcher), content.exempt.as_ref().map(describe_matcher))
}

/// "builds ci, gate on refs/heads/main, except pattern wip/*".
fn phrase(keys: &[&str], on: &str, except: Option<String>) -> String {
    let mut text = format!("builds {} on {on}", keys.join(", "));
    if let Some(except) = except {
        text.push_str(&format!(", except {except}"));
    }
    text
}

/// Where to add the check by hand when the server has no required-builds API.
pub const MANUAL_STEPS: &str = "Repository settings > Required builds";

/// The verdict on a RequiredBuild whose server has no required-builds API (before 7.14):
/// `Stalled`, with the manual steps that give each repository the check meanwhile.
pub fn unsupported(error: &Error, spec: &RequiredBuildSpec) -> Outcome {
    Outcome::stalled(
        reasons::UNSUPPORTED_SERVER,
        format!("{error}; until then, add the check by hand ({MANUAL_STEPS}): {}", requirement(spec)),
    )
}

/// What a spec requires, as a person reads it ("builds ci on their default branch").
pub fn requirement(spec: &RequiredBuildSpec) -> String {
    let on = |matcher: Option<&crate::api::required_build::RefMatcher>, field| {
        matcher.map(|m| matcher_of(m, field).map_or_else(|e| e.to_string(), |m| describe_matcher(&m)))
    };
    let keys: Vec<&str> = spec.build_parent_keys.iter().map(String::as_str).collect();
    let target = on(spec.ref_matcher.as_ref(), "refMatcher").unwrap_or_else(|| "their default branch".to_owned());
    phrase(&keys, &target, on(spec.exempt_ref_matcher.as_ref(), "exemptRefMatcher"))
}

fn drift_message(drift: &[Drift], wanted: Option<&Content>) -> String {
    let parts: Vec<String> = drift
        .iter()
        .map(|d| match d {
            Drift::Missing => match wanted {
                Some(wanted) => format!("no condition requires {}", describe(wanted)),
                None => "the condition is missing".to_owned(),
            },
            Drift::Outdated { id } => format!("condition {id} still has the content applied before the spec changed"),
            Drift::Extra { ids } => {
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!("conditions {} duplicate ours", ids.join(", "))
            }
        })
        .collect();
    parts.join("; ")
}

/// Sums up a round from the plans, the outcomes of their changes and the state each covered
/// repository had after the last round, by slug (to tell adoption and restoration apart); one
/// not in it was not covered.
pub fn summarize(
    plans: &[RepositoryPlan],
    outcomes: &[ChangeOutcome],
    previous: &HashMap<String, CheckState>,
    spec: &RequiredBuildSpec,
) -> BuildSummary {
    let observe_only = spec.management_policy == ManagementPolicy::Observe;
    let mut summary = BuildSummary::default();
    let outcomes: HashMap<&str, &ChangeOutcome> = outcomes.iter().map(|o| (o.slug.as_str(), o)).collect();
    let mut first_reason = None;
    for plan in plans {
        let outcome = outcomes.get(plan.slug.as_str()).copied();
        let failure = plan.error.as_ref().or_else(|| outcome.and_then(|o| o.error.as_ref()));
        if let Some(error) = failure {
            if error.is_transient() && summary.transient.is_none() {
                summary.transient = Some(error.clone());
            }
            first_reason.get_or_insert(reason_for(error));
            if plan.bound {
                let message = Some(error.to_string());
                summary.repositories.push(RepositoryCheck {
                    slug: plan.slug.clone(),
                    state: CheckState::Failed,
                    message,
                });
            } else {
                summary.unremoved.push(plan.slug.clone());
            }
            continue;
        }
        if !plan.bound {
            if !plan.decision.actions.is_empty() {
                summary.removed.push(plan.slug.clone());
            }
            continue;
        }
        let before = previous.get(&plan.slug).copied();
        let mut state = CheckState::InSync;
        let mut message = None;
        let labelled = |id: Option<i64>| match id {
            Some(id) => format!("{} (condition {id})", plan.slug),
            None => plan.slug.clone(),
        };
        let written = outcome.and_then(|o| o.written);
        if observe_only && !plan.decision.in_sync() {
            state = CheckState::Drifted;
            message = Some(drift_message(&plan.decision.drift, plan.desired.as_ref()));
            summary.drifted.push(plan.slug.clone());
        } else if plan.decision.actions.iter().any(|a| matches!(a, Action::Create(_))) {
            if before == Some(CheckState::InSync) {
                summary.corrected.push(labelled(written));
            } else {
                summary.created.push(labelled(written));
            }
        } else if plan.decision.actions.iter().any(|a| matches!(a, Action::Update { .. })) {
            summary.updated.push(labelled(written));
        } else if !observe_only && before.is_none() {
            summary.adopted.push(plan.slug.clone());
        }
        if !observe_only && plan.decision.drift.iter().any(|d| matches!(d, Drift::Extra { .. })) {
            summary.deduplicated.push(plan.slug.clone());
        }
        summary.repositories.push(RepositoryCheck { slug: plan.slug.clone(), state, message });
    }
    summary.repositories.sort_by(|a, b| a.slug.cmp(&b.slug));
    let in_sync = summary.repositories.iter().filter(|r| r.state == CheckState::InSync).count();
    summary.total = i32::try_from(summary.repositories.len()).unwrap_or(i32::MAX);
    summary.in_sync = i32::try_from(in_sync).unwrap_or(i32::MAX);
    let required = format!("require {}", requirement(spec));
    summary.outcome = round_outcome(&summary.repositories, first_reason, summary.transient.is_some(), &required);
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::required_build::{RefMatcher as SpecMatcher, RefMatcherType as SpecType},
        bitbucket::RefMatcher,
    };

    fn spec(keys: &[&str], on: Option<SpecMatcher>, policy: ManagementPolicy) -> RequiredBuildSpec {
        RequiredBuildSpec {
            binding_ref: crate::api::refs::BindingRef { name: "b".into() },
            build_parent_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ref_matcher: on,
            exempt_ref_matcher: None,
            deletion_policy: crate::api::required_report::DeletionPolicy::Delete,
            management_policy: policy,
        }
    }

    fn condition(id: i64, keys: &[&str], branch: &str) -> RequiredBuildCondition {
        RequiredBuildCondition {
            id,
            build_parent_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ref_matcher: RefMatcher { id: branch.to_owned(), kind: RefMatcherType::Branch },
            exempt_ref_matcher: None,
        }
    }

    fn read(default_branch: Option<&str>, conditions: Vec<RequiredBuildCondition>) -> Result<Observed, Error> {
        Ok(Observed { default_branch: default_branch.map(str::to_owned), conditions })
    }

    fn input<'a>(spec: &'a RequiredBuildSpec, applied: Option<&'a AppliedBuild>) -> BuildInput<'a> {
        let applied = applied.map(std::slice::from_ref).unwrap_or_default();
        BuildInput { project: "P", bound: &[], departed: &[], spec, applied, remove_departed: true }
    }

    fn gone() -> Error {
        Error::RepositoryNotFound { project: "P".into(), slug: "old".into() }
    }

    #[test]
    fn the_default_branch_is_needed_only_when_the_spec_or_the_record_targets_it() {
        let on_main = Some(SpecMatcher { type_: SpecType::Branch, value: Some("main".into()) });
        let explicit = spec(&["ci"], on_main.clone(), ManagementPolicy::Manage);
        let implicit = spec(&["ci"], None, ManagementPolicy::Manage);
        assert!(!input(&explicit, None).needs_default_branch());
        assert!(input(&implicit, None).needs_default_branch());
        let record = AppliedBuild::from(&implicit);
        assert!(input(&explicit, Some(&record)).needs_default_branch(), "the old condition is on the default branch");
        let mut bad = implicit.clone();
        bad.build_parent_keys.clear();
        let error = input(&bad, None).check().err().unwrap_or_else(|| panic!("no build keys accepted"));
        assert!(matches!(error, Error::InvalidArgument { field: "buildParentKeys", .. }), "{error}");
    }

    #[test]
    fn a_bound_repository_is_planned_on_its_own_default_branch() {
        let wanted = spec(&["ci"], None, ManagementPolicy::Manage);
        let plan = plan_repository("a".into(), true, &input(&wanted, None), read(Some("refs/heads/trunk"), vec![]));
        assert!(plan.error.is_none(), "{plan:?}");
        let Some(Action::Create(content)) = plan.decision.actions.first() else {
            panic!("nothing created: {plan:?}");
        };
        assert_eq!(content.ref_matcher.id, "refs/heads/trunk");
        // Without the branch it is a failure of the repository, not a guess.
        let plan = plan_repository("a".into(), true, &input(&wanted, None), read(None, vec![]));
        assert!(matches!(plan.error, Some(Error::InvalidArgument { field: "refMatcher", .. })), "{plan:?}");
    }

    #[test]
    fn a_repository_that_left_loses_only_ours_and_one_that_is_gone_needs_nothing() {
        let wanted = spec(&["ci"], None, ManagementPolicy::Manage);
        let observed = vec![condition(3, &["ci"], "refs/heads/main"), condition(4, &["lint"], "refs/heads/main")];
        let plan = plan_repository("old".into(), false, &input(&wanted, None), read(Some("main"), observed.clone()));
        assert_eq!(plan.decision.actions, [Action::Delete { id: 3 }]);
        let plan = plan_repository("old".into(), false, &input(&wanted, None), Err(gone()));
        assert!(plan.error.is_none() && plan.decision.actions.is_empty(), "{plan:?}");
        // Bound and gone is a failure.
        let plan = plan_repository("old".into(), true, &input(&wanted, None), Err(gone()));
        assert!(plan.error.is_some());
        // Orphan keeps them.
        let keep = BuildInput { remove_departed: false, ..input(&wanted, None) };
        let plan = plan_repository("old".into(), false, &keep, read(Some("main"), observed));
        assert!(plan.decision.actions.is_empty());
    }

    #[test]
    fn a_round_tells_created_restored_adopted_updated_and_deduplicated_apart() {
        let before_spec = spec(&["ci"], None, ManagementPolicy::Manage);
        let record = AppliedBuild::from(&before_spec);
        let wanted = spec(&["ci", "gate"], None, ManagementPolicy::Manage);
        let input = input(&wanted, Some(&record));
        let both = ["ci", "gate"];
        let cases: [(&str, Vec<RequiredBuildCondition>, Option<CheckState>); 5] = [
            ("new", vec![], None),
            ("restored", vec![], Some(CheckState::InSync)),
            ("adopted", vec![condition(1, &both, "refs/heads/main")], None),
            ("outdated", vec![condition(2, &["ci"], "refs/heads/main")], Some(CheckState::InSync)),
            (
                "doubled",
                vec![condition(5, &both, "refs/heads/main"), condition(6, &both, "main")],
                Some(CheckState::InSync),
            ),
        ];
        let plans: Vec<RepositoryPlan> = cases
            .iter()
            .map(|(slug, found, _)| plan_repository((*slug).into(), true, &input, read(Some("main"), found.clone())))
            .collect();
        let previous: HashMap<String, CheckState> =
            cases.iter().filter_map(|(slug, _, state)| state.map(|s| ((*slug).to_owned(), s))).collect();
        let outcomes = vec![
            ChangeOutcome { slug: "new".into(), written: Some(10), ..ChangeOutcome::default() },
            ChangeOutcome { slug: "restored".into(), written: Some(11), ..ChangeOutcome::default() },
            ChangeOutcome { slug: "outdated".into(), written: Some(2), ..ChangeOutcome::default() },
            ChangeOutcome { slug: "doubled".into(), deleted: vec![6], ..ChangeOutcome::default() },
        ];
        let summary = summarize(&plans, &outcomes, &previous, &wanted);
        assert_eq!(summary.created, ["new (condition 10)"]);
        assert_eq!(summary.corrected, ["restored (condition 11)"]);
        assert_eq!(summary.adopted, ["adopted"]);
        assert_eq!(summary.updated, ["outdated (condition 2)"]);
        assert_eq!(summary.deduplicated, ["doubled"]);
        assert_eq!((summary.total, summary.in_sync), (5, 5));
        assert_eq!(summary.outcome.reason, reasons::IN_SYNC);
        assert!(
            summary.outcome.message.contains("builds ci, gate on their default branch"),
            "{}",
            summary.outcome.message
        );
    }

    #[test]
    fn failures_and_observed_drift_are_reported_per_repository() {
        let wanted = spec(&["gate"], None, ManagementPolicy::Observe);
        let input = input(&wanted, None);
        let plans = vec![
            plan_repository("a".into(), true, &input, read(Some("main"), vec![])),
            plan_repository("b".into(), true, &input, read(Some("main"), vec![condition(1, &["gate"], "main")])),
        ];
        let summary = summarize(&plans, &[], &HashMap::new(), &wanted);
        assert_eq!(summary.drifted, ["a"]);
        assert!(summary.adopted.is_empty(), "Observe takes nothing over");
        let drifted = summary.repositories.iter().find(|r| r.slug == "a").unwrap_or_else(|| panic!("no entry"));
        assert_eq!(drifted.state, CheckState::Drifted);
        assert_eq!(drifted.message.as_deref(), Some("no condition requires builds gate on refs/heads/main"));
        assert_eq!(summary.outcome.reason, reasons::DRIFTED);

        let managed = spec(&["gate"], None, ManagementPolicy::Manage);
        let input = BuildInput { spec: &managed, ..input };
        let plans = vec![
            plan_repository("a".into(), true, &input, read(Some("main"), vec![])),
            plan_repository("gone".into(), false, &input, read(Some("main"), vec![condition(7, &["gate"], "main")])),
        ];
        let failed = vec![
            ChangeOutcome { slug: "a".into(), error: Some(Error::Server { status: 503 }), ..ChangeOutcome::default() },
            ChangeOutcome {
                slug: "gone".into(),
                error: Some(Error::Server { status: 503 }),
                ..ChangeOutcome::default()
            },
        ];
        let summary = summarize(&plans, &failed, &HashMap::new(), &managed);
        assert_eq!(summary.unremoved, ["gone"]);
        assert!(summary.transient.is_some(), "a 503 is retried");
        assert_eq!(summary.repositories[0].state, CheckState::Failed);
        assert!(summary.created.is_empty());
        assert_eq!(summary.outcome.reason, reasons::PARTIALLY_FAILED);
    }

    #[test]
    fn deleting_from_a_repository_that_is_gone_is_no_failure() {
        assert!(write_failure(&Action::Delete { id: 1 }, gone()).is_none());
        let content = Content {
            build_keys: ["ci".to_owned()].into_iter().collect(),
            ref_matcher: super::super::branch("main"),
            exempt: None,
        };
        assert!(write_failure(&Action::Create(content), gone()).is_some());
    }
}
