//! A required report: the merge check on each bound repository, and making it match.

use futures::{StreamExt, stream};

use crate::{
    api::required_report::{CheckState, RepositoryCheck},
    bitbucket::{Client, Error, ErrorClass, MergeCheck},
    plan::{
        merge_checks::{CheckChange, describe, plan_check},
        reasons,
        status::{Outcome, is_credential_error, reason_for},
    },
};

use super::PARALLEL_REPOSITORIES;

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
    /// Remove the check from repositories that left (`deletionPolicy: Delete` and not
    /// `managementPolicy: Observe`).
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

/// Reads the check of every bound repository once (one request each) and plans the changes.
/// The first repository is read alone, so that a server without the merge-check API, or a
/// rejected credential, costs one request rather than one per repository.
pub async fn observe(client: &Client, input: &ReportInput<'_>) -> Result<Vec<CheckPlan>, Error> {
    let fatal = |e: &Error| is_credential_error(e) || e.class() == ErrorClass::Unsupported;
    let mut plans = Vec::with_capacity(input.bound.len() + input.departed.len());
    if let Some((first, rest)) = input.bound.split_first() {
        let plan = read_one(client, input, first.clone()).await;
        if let Some(error) = plan.error.as_ref().filter(|e| fatal(e)) {
            return Err(error.clone());
        }
        plans.push(plan);
        let others: Vec<CheckPlan> = stream::iter(rest.iter().cloned())
            .map(|slug| read_one(client, input, slug))
            .buffer_unordered(PARALLEL_REPOSITORIES)
            .collect()
            .await;
        if let Some(error) = others.iter().filter_map(|p| p.error.as_ref()).find(|e| fatal(e)) {
            return Err(error.clone());
        }
        plans.extend(others);
    }
    plans.sort_by(|a, b| a.slug.cmp(&b.slug));
    if input.remove_departed {
        for slug in input.departed {
            plans.push(CheckPlan {
                slug: slug.clone(),
                bound: false,
                observed: None,
                change: Some(CheckChange::Delete { report_key: input.desired.report_key.clone() }),
                error: None,
            });
        }
    }
    Ok(plans)
}

async fn read_one(client: &Client, input: &ReportInput<'_>, slug: String) -> CheckPlan {
    let mut plan = CheckPlan { slug, bound: true, observed: None, change: None, error: None };
    match client.get_merge_check(input.project, &plan.slug, &input.desired.report_key).await {
        Ok(observed) => {
            plan.change = plan_check(input.desired, observed.as_ref());
            plan.observed = observed;
        }
        Err(error) => plan.error = Some(error),
    }
    plan
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

/// Carries out the changes of the plan (skipping repositories that could not be read).
pub async fn apply(client: &Client, project: &str, plans: &[CheckPlan]) -> Vec<CheckOutcome> {
    let work: Vec<(String, CheckChange)> = plans
        .iter()
        .filter(|p| p.error.is_none())
        .filter_map(|p| p.change.clone().map(|change| (p.slug.clone(), change)))
        .collect();
    let mut outcomes: Vec<CheckOutcome> = stream::iter(work)
        .map(|(slug, change)| apply_one(client, project, slug, change))
        .buffer_unordered(PARALLEL_REPOSITORIES)
        .collect()
        .await;
    outcomes.sort_by(|a, b| a.slug.cmp(&b.slug));
    outcomes
}

async fn apply_one(client: &Client, project: &str, slug: String, change: CheckChange) -> CheckOutcome {
    let result = match &change {
        CheckChange::Create(check) | CheckChange::Update { to: check, .. } => {
            client.put_merge_check(project, &slug, check).await.map(drop)
        }
        CheckChange::Delete { report_key } => match client.delete_merge_check(project, &slug, report_key).await {
            // A repository that is gone has no check left to remove.
            Err(Error::RepositoryNotFound { .. } | Error::ProjectNotFound { .. }) => Ok(()),
            other => other,
        },
    };
    CheckOutcome { slug, change, error: result.err() }
}

/// Removes the check from repositories (the report is deleted with `deletionPolicy: Delete`).
/// Returns how many were removed, or the first failure with its repository.
pub async fn remove(
    client: &Client,
    project: &str,
    slugs: &[String],
    report_key: &str,
) -> Result<usize, (String, Error)> {
    let plans: Vec<CheckPlan> = slugs
        .iter()
        .map(|slug| CheckPlan {
            slug: slug.clone(),
            bound: false,
            observed: None,
            change: Some(CheckChange::Delete { report_key: report_key.to_owned() }),
            error: None,
        })
        .collect();
    let outcomes = apply(client, project, &plans).await;
    match outcomes.iter().find_map(|o| o.error.clone().map(|e| (o.slug.clone(), e))) {
        Some(failure) => Err(failure),
        None => Ok(outcomes.len()),
    }
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
    /// How many repositories are bound.
    pub total: i32,
    /// How many of them have the check as specified.
    pub in_sync: i32,
    /// The conditions' outcome.
    pub outcome: Outcome,
    /// A transient failure: the round should be retried with backoff.
    pub transient: Option<Error>,
}

/// Sums up a round: per-repository states, what changed, and the outcome. `previous` is the
/// per-repository status before the round (to tell adoption and drift correction apart).
pub fn summarize(
    plans: &[CheckPlan],
    outcomes: &[CheckOutcome],
    previous: &[RepositoryCheck],
    observe_only: bool,
    desired: &MergeCheck,
) -> ReportSummary {
    let was_in_sync = |slug: &str| previous.iter().any(|r| r.slug == slug && r.state == CheckState::InSync);
    let mut summary = ReportSummary {
        repositories: Vec::new(),
        created: Vec::new(),
        corrected: Vec::new(),
        adopted: Vec::new(),
        drifted: Vec::new(),
        removed: Vec::new(),
        total: 0,
        in_sync: 0,
        outcome: Outcome::ready(reasons::IN_SYNC, String::new()),
        transient: None,
    };
    let mut first_reason = None;
    for plan in plans {
        let outcome = outcomes.iter().find(|o| o.slug == plan.slug);
        let error = plan.error.as_ref().or_else(|| outcome.and_then(|o| o.error.as_ref()));
        if let Some(error) = error {
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
            }
            continue;
        }
        if !plan.bound {
            if plan.change.is_some() && !observe_only {
                summary.removed.push(plan.slug.clone());
            }
            continue;
        }
        if plan.observed.is_some() && !observe_only && !previous.iter().any(|r| r.slug == plan.slug) {
            summary.adopted.push(plan.slug.clone());
        }
        let state = match (&plan.change, observe_only) {
            (None, _) => CheckState::InSync,
            (Some(_), true) => CheckState::Drifted,
            (Some(CheckChange::Create(_)), false) if !was_in_sync(&plan.slug) => {
                summary.created.push(plan.slug.clone());
                CheckState::InSync
            }
            (Some(_), false) => {
                summary.corrected.push(plan.slug.clone());
                CheckState::InSync
            }
        };
        let message = match (&plan.change, state) {
            (Some(CheckChange::Create(_)), CheckState::Drifted) => Some("the required report is missing".to_owned()),
            (Some(CheckChange::Update { from, .. }), CheckState::Drifted) => {
                Some(format!("found {}, want {}", describe(from), describe(desired)))
            }
            _ => None,
        };
        if state == CheckState::Drifted {
            summary.drifted.push(plan.slug.clone());
        }
        summary.repositories.push(RepositoryCheck { slug: plan.slug.clone(), state, message });
    }
    summary.repositories.sort_by(|a, b| a.slug.cmp(&b.slug));
    let total = summary.repositories.len();
    let in_sync = summary.repositories.iter().filter(|r| r.state == CheckState::InSync).count();
    summary.total = i32::try_from(total).unwrap_or(i32::MAX);
    summary.in_sync = i32::try_from(in_sync).unwrap_or(i32::MAX);
    let failed: Vec<&RepositoryCheck> = summary.repositories.iter().filter(|r| r.state == CheckState::Failed).collect();
    summary.outcome = if let Some(first) = failed.first() {
        let message = format!(
            "{} of {total} repositories failed; {}: {}",
            failed.len(),
            first.slug,
            first.message.as_deref().unwrap_or_default()
        );
        if summary.transient.is_some() {
            Outcome::reconciling(reasons::PARTIALLY_FAILED, message)
        } else if failed.len() == total {
            Outcome::stalled(first_reason.unwrap_or(reasons::PARTIALLY_FAILED), message)
        } else {
            Outcome::stalled(reasons::PARTIALLY_FAILED, message)
        }
    } else if !summary.drifted.is_empty() {
        let shown: Vec<&str> = summary.drifted.iter().take(5).map(String::as_str).collect();
        Outcome::stalled(
            reasons::DRIFTED,
            format!(
                "{} of {total} repositories differ from the spec ({}); managementPolicy is Observe, so nothing was changed",
                summary.drifted.len(),
                shown.join(", ")
            ),
        )
    } else {
        Outcome::ready(
            reasons::IN_SYNC,
            format!("{in_sync} of {total} repositories require {} ({})", desired.report_key, describe(desired)),
        )
    };
    summary
}
