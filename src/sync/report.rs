//! A required report: the merge check on each bound repository, and making it match.

use futures::{StreamExt, stream};

use crate::{
    bitbucket::{Client, Error, ErrorClass, MergeCheck},
    plan::{
        merge_checks::{CheckChange, plan_check},
        status::is_credential_error,
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
