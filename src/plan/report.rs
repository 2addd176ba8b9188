//! A required report's round, decided: which repositories are read and which only cleaned up,
//! which failures stop the round, whether each repository's check was created, adopted,
//! corrected, found drifted or removed, and how the round ends. [`crate::sync::report`] does
//! the reading and writing around these decisions.

use std::collections::HashMap;

use crate::{
    api::{
        RequiredReportSpec,
        coverage::{CheckState, RepositoryCheck},
        required_report::{DeletionPolicy, ManagementPolicy},
    },
    bitbucket::{Error, ErrorClass, MergeCheck},
};

use super::{
    merge_checks::{CheckChange, describe, plan_check, state_of},
    reasons,
    status::{Outcome, is_credential_error, is_gone, reason_for},
};

/// What a required report wants.
#[derive(Clone, Debug)]
pub struct ReportInput<'a> {
    /// The binding's project key.
    pub project: &'a str,
    /// The binding's repositories.
    pub bound: &'a [String],
    /// Repositories the report covered until now that are no longer bound.
    pub departed: &'a [String],
    /// The check every bound repository must have.
    pub desired: &'a MergeCheck,
    /// Remove the check from repositories that left (see [`removes_checks`]).
    pub remove_departed: bool,
}

/// One repository of the plan.
#[derive(Clone, Debug)]
pub struct CheckPlan {
    /// The slug.
    pub slug: String,
    /// Whether the repository is bound (otherwise it left and is only cleaned up).
    pub bound: bool,
    /// The check found (bound repositories only).
    pub observed: Option<MergeCheck>,
    /// What must change.
    pub change: Option<CheckChange>,
    /// Why it could not be read.
    pub error: Option<Error>,
}

/// The result of carrying out one repository's change.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    /// The slug.
    pub slug: String,
    /// The change tried.
    pub change: CheckChange,
    /// `None` when it was made.
    pub error: Option<Error>,
}

/// What a round of a required report found and did, per repository and in total.
#[derive(Clone, Debug)]
pub struct ReportSummary {
    /// Per bound repository: in sync, drifted (observe only) or failed, with a message.
    pub repositories: Vec<RepositoryCheck>,
    /// Repositories whose check was created.
    pub created: Vec<String>,
    /// Repositories whose check had drifted from an in-sync state and was restored.
    pub corrected: Vec<String>,
    /// Repositories whose existing check (made by someone else) the report took over.
    pub adopted: Vec<String>,
    /// Repositories that differ and were left alone (observe only).
    pub drifted: Vec<String>,
    /// Repositories that left the binding and lost the check.
    pub removed: Vec<String>,
    /// Repositories that left the binding whose check could not be removed (tried again next
    /// round).
    pub unremoved: Vec<String>,
    /// How many repositories are bound.
    pub total: i32,
    /// How many of them have the check as specified.
    pub in_sync: i32,
    /// The conditions' outcome.
    pub outcome: Outcome,
    /// A transient failure: the round should be retried with backoff.
    pub transient: Option<Error>,
}

/// Whether a report removes its check from repositories: from those that leave its binding, and
/// from all of them when it is deleted. Only with `deletionPolicy: Delete`, and never with
/// `managementPolicy: Observe` (which changes nothing).
pub fn removes_checks(spec: &RequiredReportSpec) -> bool {
    spec.management_policy != ManagementPolicy::Observe && spec.deletion_policy == DeletionPolicy::Delete
}

/// Whether a failure on one repository stops the whole round: a credential error (every call
/// with it would fail the same way), or a server without the merge-check API (every repository
/// would fail alike). Any other failure stays on its repository while the others go on.
pub fn aborts_round(error: &Error) -> bool {
    is_credential_error(error) || error.class() == ErrorClass::Unsupported
}

/// One bound repository's plan, from reading its check under the report key: the change that
/// makes it match, or why it could not be read.
pub fn plan_bound(slug: String, desired: &MergeCheck, read: Result<Option<MergeCheck>, Error>) -> CheckPlan {
    let mut plan = CheckPlan { slug, bound: true, observed: None, change: None, error: None };
    match read {
        Ok(observed) => {
            plan.change = plan_check(desired, observed.as_ref());
            plan.observed = observed;
        }
        Err(error) => plan.error = Some(error),
    }
    plan
}

/// Plans that remove the check under `report_key` from repositories that are not bound: those
/// that left the binding, or every one of a deleted report.
pub fn removal_plans(slugs: &[String], report_key: &str) -> Vec<CheckPlan> {
    slugs
        .iter()
        .map(|slug| CheckPlan {
            slug: slug.clone(),
            bound: false,
            observed: None,
            change: Some(CheckChange::Delete { report_key: report_key.to_owned() }),
            error: None,
        })
        .collect()
}

/// The plan of a round, from the bound repositories' plans in any order: those by slug, then,
/// when the report removes its check from repositories that left (`remove_departed`), a removal
/// for each of them; otherwise those are left alone.
pub fn round_plan(mut bound: Vec<CheckPlan>, input: &ReportInput<'_>) -> Vec<CheckPlan> {
    bound.sort_by(|a, b| a.slug.cmp(&b.slug));
    if input.remove_departed {
        bound.extend(removal_plans(input.departed, &input.desired.report_key));
    }
    bound
}

/// The changes to carry out, one per repository that needs one; repositories that could not be
/// read are skipped (their error stays in the plan).
pub fn changes_to_apply(plans: &[CheckPlan]) -> Vec<(String, CheckChange)> {
    plans
        .iter()
        .filter(|p| p.error.is_none())
        .filter_map(|p| p.change.clone().map(|change| (p.slug.clone(), change)))
        .collect()
}

/// The failure of a write, if it counts as one: removing the check from a repository (or
/// project) that is gone succeeds, as there is nothing left to remove.
pub fn write_failure(change: &CheckChange, result: Result<(), Error>) -> Option<Error> {
    match (change, result) {
        (_, Ok(())) => None,
        (CheckChange::Delete { .. }, Err(error)) if is_gone(&error) => None,
        (_, Err(error)) => Some(error),
    }
}

/// What happened to one repository's check in a round, as the report's events tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckEvent {
    /// The check was created where the report had none in sync before.
    Created,
    /// An existing check the report did not know of (made by someone else) was taken over.
    Adopted,
    /// A check that had drifted (or vanished) since it was in sync was restored.
    Corrected,
    /// The check differs and was left alone (`managementPolicy: Observe`).
    Drifted,
    /// The repository left the binding and lost the check.
    Removed,
}

/// One repository's verdict on a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Its entry in status (bound repositories only).
    pub check: Option<RepositoryCheck>,
    /// What happened to it.
    pub events: Vec<CheckEvent>,
    /// Why it could not be read or written.
    pub failure: Option<Error>,
}

/// The verdict on one repository, from its plan, the outcome of its write (if one was tried),
/// the state the report's status gave it before the round (`None` when it was not listed) and
/// the policy. A failure makes a bound repository `Failed`. A bound repository is otherwise
/// `InSync`, or `Drifted` when it differs and the report only observes. A check found where
/// the report listed nothing is adopted; one written is created, unless it was in sync before
/// (then someone removed it and it is corrected, as is every update).
pub fn verdict(
    plan: &CheckPlan,
    outcome: Option<&CheckOutcome>,
    previous: Option<CheckState>,
    observe_only: bool,
    desired: &MergeCheck,
) -> Verdict {
    let failure = plan.error.as_ref().or_else(|| outcome.and_then(|o| o.error.as_ref())).cloned();
    if let Some(error) = failure {
        let check = plan.bound.then(|| RepositoryCheck {
            slug: plan.slug.clone(),
            state: CheckState::Failed,
            message: Some(error.to_string()),
        });
        return Verdict { check, events: Vec::new(), failure: Some(error) };
    }
    let mut events = Vec::new();
    if !plan.bound {
        if plan.change.is_some() && !observe_only {
            events.push(CheckEvent::Removed);
        }
        return Verdict { check: None, events, failure: None };
    }
    if plan.observed.is_some() && !observe_only && previous.is_none() {
        events.push(CheckEvent::Adopted);
    }
    let state = match state_of(plan.change.as_ref(), observe_only) {
        // Pending until written, and the write succeeded (a failure is handled above).
        CheckState::Pending => {
            let created = matches!(plan.change, Some(CheckChange::Create(_))) && previous != Some(CheckState::InSync);
            events.push(if created { CheckEvent::Created } else { CheckEvent::Corrected });
            CheckState::InSync
        }
        CheckState::Drifted => {
            events.push(CheckEvent::Drifted);
            CheckState::Drifted
        }
        state => state,
    };
    let message = match (&plan.change, state) {
        (Some(CheckChange::Create(_)), CheckState::Drifted) => Some("the required report is missing".to_owned()),
        (Some(CheckChange::Update { from, .. }), CheckState::Drifted) => {
            Some(format!("found {}, want {}", describe(from), describe(desired)))
        }
        _ => None,
    };
    Verdict { check: Some(RepositoryCheck { slug: plan.slug.clone(), state, message }), events, failure: None }
}

/// Sums up a round: per-repository [`verdict`]s, what changed, and the [`round_outcome`].
/// `previous` is the state each repository the report covered had after the last round, by
/// slug (to tell adoption and drift correction apart); one not in it was not covered.
pub fn summarize(
    plans: &[CheckPlan],
    outcomes: &[CheckOutcome],
    previous: &HashMap<String, CheckState>,
    observe_only: bool,
    desired: &MergeCheck,
) -> ReportSummary {
    let mut summary = ReportSummary {
        repositories: Vec::new(),
        created: Vec::new(),
        corrected: Vec::new(),
        adopted: Vec::new(),
        drifted: Vec::new(),
        removed: Vec::new(),
        unremoved: Vec::new(),
        total: 0,
        in_sync: 0,
        outcome: Outcome::ready(reasons::IN_SYNC, String::new()),
        transient: None,
    };
    let mut first_reason = None;
    let outcomes: HashMap<&str, &CheckOutcome> = outcomes.iter().map(|o| (o.slug.as_str(), o)).collect();
    for plan in plans {
        let outcome = outcomes.get(plan.slug.as_str()).copied();
        let before = previous.get(&plan.slug).copied();
        let verdict = verdict(plan, outcome, before, observe_only, desired);
        if let Some(error) = &verdict.failure {
            if error.is_transient() && summary.transient.is_none() {
                summary.transient = Some(error.clone());
            }
            first_reason.get_or_insert(reason_for(error));
            if !plan.bound {
                summary.unremoved.push(plan.slug.clone());
            }
        }
        for event in verdict.events {
            let list = match event {
                CheckEvent::Created => &mut summary.created,
                CheckEvent::Adopted => &mut summary.adopted,
                CheckEvent::Corrected => &mut summary.corrected,
                CheckEvent::Drifted => &mut summary.drifted,
                CheckEvent::Removed => &mut summary.removed,
            };
            list.push(plan.slug.clone());
        }
        summary.repositories.extend(verdict.check);
    }
    summary.repositories.sort_by(|a, b| a.slug.cmp(&b.slug));
    let in_sync = summary.repositories.iter().filter(|r| r.state == CheckState::InSync).count();
    summary.total = i32::try_from(summary.repositories.len()).unwrap_or(i32::MAX);
    summary.in_sync = i32::try_from(in_sync).unwrap_or(i32::MAX);
    let required = format!("require {} ({})", desired.report_key, describe(desired));
    summary.outcome = round_outcome(&summary.repositories, first_reason, summary.transient.is_some(), &required);
    summary
}

/// The outcome of a round, from the bound repositories' entries (by slug), the reason of the
/// round's first failure and whether any failure was transient. With failures: retried as
/// `Reconciling` `PartiallyFailed` when one was transient, else `Stalled` with the first
/// failure's reason when every repository failed, or `PartiallyFailed` when only some did.
/// Without: `Stalled` `Drifted` when the report only observes and some repository differs, else
/// `Ready` `InSync`, saying that so many repositories `required` (what the check requires,
/// such as "require com.sonarsource.sonarqube (must pass)"). Shared by the merge-check kinds.
pub fn round_outcome(
    repositories: &[RepositoryCheck],
    first_reason: Option<&'static str>,
    transient: bool,
    required: &str,
) -> Outcome {
    let total = repositories.len();
    let with = |state: CheckState| repositories.iter().filter(move |r| r.state == state);
    let failed: Vec<&RepositoryCheck> = with(CheckState::Failed).collect();
    let drifted: Vec<&str> = with(CheckState::Drifted).map(|r| r.slug.as_str()).collect();
    if let Some(first) = failed.first() {
        let message = format!(
            "{} of {total} repositories failed; {}: {}",
            failed.len(),
            first.slug,
            first.message.as_deref().unwrap_or_default()
        );
        if transient {
            Outcome::reconciling(reasons::PARTIALLY_FAILED, message)
        } else if failed.len() == total {
            Outcome::stalled(first_reason.unwrap_or(reasons::PARTIALLY_FAILED), message)
        } else {
            Outcome::stalled(reasons::PARTIALLY_FAILED, message)
        }
    } else if !drifted.is_empty() {
        let shown: Vec<&str> = drifted.iter().take(5).copied().collect();
        Outcome::stalled(
            reasons::DRIFTED,
            format!(
                "{} of {total} repositories differ from the spec ({}); managementPolicy is Observe, so nothing was changed",
                drifted.len(),
                shown.join(", ")
            ),
        )
    } else {
        let in_sync = with(CheckState::InSync).count();
        Outcome::ready(reasons::IN_SYNC, format!("{in_sync} of {total} repositories {required}"))
    }
}

#[cfg(test)]
mod tests;
