//! A required report's round in Bitbucket: reading the merge check of each bound repository,
//! and making it match. What to read and what to change is decided by [`crate::plan::report`].

use futures::{StreamExt, stream};

use crate::{
    bitbucket::{Client, Error},
    plan::{
        merge_checks::CheckChange,
        report::{
            CheckOutcome, CheckPlan, ReportInput, aborts_round, changes_to_apply, plan_bound, removal_plans,
            round_plan, write_failure,
        },
    },
};

use super::PARALLEL_REPOSITORIES;

/// Reads the check of every bound repository once (one request each) and plans the changes.
/// The first repository is read alone, so that a failure that [`aborts_round`] (a server
/// without the merge-check API, or a rejected credential) costs one request rather than one per
/// repository.
pub async fn observe(client: &Client, input: &ReportInput<'_>) -> Result<Vec<CheckPlan>, Error> {
    let mut plans = Vec::with_capacity(input.bound.len() + input.departed.len());
    if let Some((first, rest)) = input.bound.split_first() {
        let plan = read_one(client, input, first.clone()).await;
        if let Some(error) = plan.error.as_ref().filter(|e| aborts_round(e)) {
            return Err(error.clone());
        }
        plans.push(plan);
        let others: Vec<CheckPlan> = stream::iter(rest.iter().cloned())
            .map(|slug| read_one(client, input, slug))
            .buffer_unordered(PARALLEL_REPOSITORIES)
            .collect()
            .await;
        if let Some(error) = others.iter().filter_map(|p| p.error.as_ref()).find(|e| aborts_round(e)) {
            return Err(error.clone());
        }
        plans.extend(others);
    }
    Ok(round_plan(plans, input))
}

async fn read_one(client: &Client, input: &ReportInput<'_>, slug: String) -> CheckPlan {
    let read = client.get_merge_check(input.project, &slug, &input.desired.report_key).await;
    plan_bound(slug, input.desired, read)
}

/// Carries out the changes of the plan (skipping repositories that could not be read).
pub async fn apply(client: &Client, project: &str, plans: &[CheckPlan]) -> Vec<CheckOutcome> {
    let mut outcomes: Vec<CheckOutcome> = stream::iter(changes_to_apply(plans))
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
        CheckChange::Delete { report_key } => client.delete_merge_check(project, &slug, report_key).await,
    };
    let error = write_failure(&change, result);
    CheckOutcome { slug, change, error }
}

/// Removes the check from repositories (the report is deleted with `deletionPolicy: Delete`).
/// Returns how many were removed, or the first failure with its repository.
pub async fn remove(
    client: &Client,
    project: &str,
    slugs: &[String],
    report_key: &str,
) -> Result<usize, (String, Error)> {
    let outcomes = apply(client, project, &removal_plans(slugs, report_key)).await;
    match outcomes.iter().find_map(|o| o.error.clone().map(|e| (o.slug.clone(), e))) {
        Some(failure) => Err(failure),
        None => Ok(outcomes.len()),
    }
}
