//! RequiredBuilds in `plan` and `apply`: the controller's round, with the same decisions
//! ([`crate::plan::required_builds`]) and the same reads and writes
//! ([`crate::sync::required_builds`]).
//!
//! Files carry no `status.applied`, so only a condition with the spec's content counts as ours:
//! after a spec change the new condition is created beside the old one, which stays (the
//! operator updates it in place).

use std::collections::HashMap;

use super::{Action, BuildTarget, Change, Mode, ResourceResult, Targets, binding_of, repositories_of};
use crate::{
    api::required_report::ManagementPolicy,
    bitbucket::{Client, ErrorClass},
    plan::{
        reasons,
        required_builds::{
            Action as Step, Drift,
            round::{
                BuildInput, BuildSummary, ChangeOutcome, RepositoryPlan, describe, requirement, summarize, unsupported,
            },
        },
        status::Outcome,
    },
    sync::required_builds::{apply, observe},
};

/// What changes (or would change) in Bitbucket.
const OBJECT: &str = "required build";

/// Plans (and with [`Mode::Apply`], carries out) one RequiredBuild on its binding's repositories.
pub(super) async fn run_build(
    target: &BuildTarget,
    targets: &Targets,
    clients: &[Option<(Client, Outcome)>],
    bound: &[Option<(String, Vec<String>)>],
    mode: Mode,
) -> ResourceResult {
    let mut result = ResourceResult {
        id: target.id.clone(),
        outcome: Outcome::ready(reasons::IN_SYNC, String::new()),
        facts: Vec::new(),
        changes: Vec::new(),
    };
    let spec = &target.spec;
    let found = binding_of(&target.binding, targets).and_then(|(index, binding)| {
        result.facts.push(format!("requires: {}", requirement(spec)));
        repositories_of(index, binding, targets, clients, bound)
    });
    let (project, slugs, client) = match found {
        Ok(found) => found,
        Err(outcome) => {
            result.outcome = outcome;
            return result;
        }
    };
    // No record of what was applied before: see the module doc.
    let input = BuildInput { project, bound: slugs, departed: &[], spec, applied: &[], remove_departed: false };
    if let Err(error) = input.check() {
        result.outcome = Outcome::from_error(&error);
        return result;
    }
    let plans = match observe(client, &input).await {
        Ok(plans) => plans,
        Err(error) => {
            // As the controller says it, with the manual steps.
            result.outcome = if error.class() == ErrorClass::Unsupported {
                unsupported(&error, spec)
            } else {
                Outcome::from_error(&error)
            };
            return result;
        }
    };
    let observe_only = spec.management_policy == ManagementPolicy::Observe;
    let outcomes = match (mode, observe_only) {
        (Mode::Apply, false) => apply(client, project, &plans).await,
        _ => Vec::new(),
    };
    let in_place = plans.iter().filter(|p| p.error.is_none() && p.decision.in_sync()).count();
    result.facts.push(format!("in place before this run: {in_place} of {} repositories", plans.len()));
    let summary = summarize(&plans, &outcomes, &HashMap::new(), spec);
    for plan in &plans {
        let outcome = outcomes.iter().find(|o| o.slug == plan.slug);
        result.changes.extend(changes(plan, outcome, &summary, mode, observe_only));
    }
    result.outcome = match mode {
        Mode::Apply => summary.outcome,
        // A plan changes nothing; only read failures and Observe drift count.
        Mode::Plan => match plans.iter().find_map(|p| p.error.as_ref().map(|e| (&p.slug, e))) {
            Some((slug, error)) => {
                let first = Outcome::from_error(error);
                Outcome { message: format!("{slug}: {}", first.message), ..first }
            }
            None if observe_only && !result.changes.is_empty() => summary.outcome,
            None => Outcome::ready(reasons::IN_SYNC, format!("{} repositories checked", plans.len())),
        },
    };
    result
}

/// The lines of one repository: what the plan would do there, or (applying) what was done, and
/// why it failed if it did.
fn changes(
    plan: &RepositoryPlan,
    outcome: Option<&ChangeOutcome>,
    summary: &BuildSummary,
    mode: Mode,
    observe_only: bool,
) -> Vec<Change> {
    let change = |action, name: String, detail: String| Change {
        repository: plan.slug.clone(),
        action,
        object: OBJECT,
        name,
        detail,
    };
    if let Some(error) = &plan.error {
        return vec![change(Action::Blocked, "condition".into(), Outcome::from_error(error).message)];
    }
    if observe_only {
        if plan.decision.in_sync() {
            return Vec::new();
        }
        let message = summary.repositories.iter().find(|r| r.slug == plan.slug).and_then(|r| r.message.clone());
        return vec![change(Action::Drift, "condition".into(), message.unwrap_or_default())];
    }
    let duplicates: Vec<i64> = plan
        .decision
        .drift
        .iter()
        .flat_map(|d| match d {
            Drift::Extra { ids } => ids.clone(),
            _ => Vec::new(),
        })
        .collect();
    let mut lines = Vec::new();
    for step in &plan.decision.actions {
        let line = match (mode, step) {
            (Mode::Plan, Step::Create(content)) => Some((Action::Create, "condition".to_owned(), describe(content))),
            (Mode::Plan, Step::Update { id, content }) => {
                Some((Action::Update, format!("condition {id}"), format!("to {}", describe(content))))
            }
            (Mode::Plan, Step::Delete { id }) => {
                Some((Action::Delete, format!("condition {id}"), deleted(*id, &duplicates)))
            }
            // Applying: only what was done, named by the id the server gave it.
            (Mode::Apply, Step::Create(content)) => {
                outcome.and_then(|o| o.written).map(|id| (Action::Create, format!("condition {id}"), describe(content)))
            }
            (Mode::Apply, Step::Update { content, .. }) => outcome
                .and_then(|o| o.written)
                .map(|id| (Action::Update, format!("condition {id}"), format!("to {}", describe(content)))),
            (Mode::Apply, Step::Delete { id }) => outcome
                .filter(|o| o.deleted.contains(id))
                .map(|_| (Action::Delete, format!("condition {id}"), deleted(*id, &duplicates))),
        };
        lines.extend(line.map(|(action, name, detail)| change(action, name, detail)));
    }
    if let Some(error) = outcome.and_then(|o| o.error.as_ref()) {
        lines.push(change(Action::Blocked, "condition".into(), Outcome::from_error(error).message));
    }
    lines
}

/// Why a condition of ours is deleted.
fn deleted(id: i64, duplicates: &[i64]) -> String {
    if duplicates.contains(&id) {
        "a duplicate of the condition kept".to_owned()
    } else {
        "replaced by the condition above".to_owned()
    }
}
