//! A binding: which repositories it binds, what their webhooks look like, and making them match.

use std::collections::BTreeSet;

use futures::{StreamExt, stream};

use crate::{
    api::ProjectBindingSpec,
    bitbucket::{Client, Error, Repository},
    plan::{
        reasons, selection,
        status::{Outcome, Phase, is_credential_error},
        webhooks::{DesiredWebhook, WebhookChange, plan_removal, plan_webhooks},
    },
};

use super::PARALLEL_REPOSITORIES;

/// What a binding wants, as resolved from its spec and Secrets.
#[derive(Clone, Debug)]
pub struct BindingInput<'a> {
    /// The spec.
    pub spec: &'a ProjectBindingSpec,
    /// The declared webhooks, secrets resolved.
    pub webhooks: &'a [DesiredWebhook],
    /// Names of the webhooks the binding managed until now (from its status).
    pub managed: &'a BTreeSet<String>,
    /// Repositories bound until now (from its status), so those that left get cleaned up.
    pub previous: &'a [String],
}

/// One repository of the plan.
#[derive(Clone, Debug)]
pub struct RepositoryPlan {
    /// The slug.
    pub slug: String,
    /// The repository, when it is (still) bound.
    pub repository: Option<Repository>,
    /// The webhook changes it needs.
    pub changes: Vec<WebhookChange>,
    /// Why it could not be observed.
    pub error: Option<Error>,
}

impl RepositoryPlan {
    /// Whether the repository is bound (rather than left the binding and only cleaned up).
    pub fn is_bound(&self) -> bool {
        self.repository.is_some()
    }
}

/// What a binding finds in Bitbucket and what it must change.
#[derive(Clone, Debug)]
pub struct BindingPlan {
    /// The project key.
    pub project: String,
    /// Bound repositories first (by slug), then the ones that left.
    pub repositories: Vec<RepositoryPlan>,
}

impl BindingPlan {
    /// The bound repositories.
    pub fn bound(&self) -> impl Iterator<Item = &Repository> {
        self.repositories.iter().filter_map(|r| r.repository.as_ref())
    }

    /// How many changes the plan holds.
    pub fn change_count(&self) -> usize {
        self.repositories.iter().map(|r| r.changes.len()).sum()
    }

    /// The first per-repository error, if any.
    pub fn first_error(&self) -> Option<(&str, &Error)> {
        self.repositories.iter().find_map(|r| r.error.as_ref().map(|e| (r.slug.as_str(), e)))
    }
}

/// Resolves the bound repositories (one read per page of the project's repositories, or one
/// read for a single slug) and, when the binding has or had webhooks, reads each repository's
/// webhooks once. A project or single repository that does not exist, and any credential
/// error, fail the whole binding; other per-repository failures are recorded on the repository.
pub async fn observe(client: &Client, input: &BindingInput<'_>) -> Result<BindingPlan, Error> {
    let project = input.spec.project_key.clone();
    let repositories = match &input.spec.repository_slug {
        Some(slug) => vec![client.get_repository(&project, slug).await?],
        None => selection::select(input.spec, &client.list_repositories(&project).await?),
    };
    let bound: BTreeSet<&str> = repositories.iter().map(|r| r.slug.as_str()).collect();
    let departed: Vec<String> = input.previous.iter().filter(|s| !bound.contains(s.as_str())).cloned().collect();
    let reads_webhooks = !input.webhooks.is_empty() || !input.managed.is_empty();

    let mut work: Vec<(String, Option<Repository>)> =
        repositories.into_iter().map(|r| (r.slug.clone(), Some(r))).collect();
    work.extend(departed.into_iter().map(|slug| (slug, None)));

    let results: Vec<RepositoryPlan> = stream::iter(work)
        .map(|(slug, repository)| observe_one(client, &project, input, slug, repository, reads_webhooks))
        .buffer_unordered(PARALLEL_REPOSITORIES)
        .collect()
        .await;
    if let Some(error) = results.iter().filter_map(|r| r.error.as_ref()).find(|e| is_credential_error(e)) {
        return Err(error.clone());
    }
    let mut repositories = results;
    repositories.sort_by(|a, b| (!a.is_bound(), &a.slug).cmp(&(!b.is_bound(), &b.slug)));
    Ok(BindingPlan { project, repositories })
}

async fn observe_one(
    client: &Client,
    project: &str,
    input: &BindingInput<'_>,
    slug: String,
    repository: Option<Repository>,
    reads_webhooks: bool,
) -> RepositoryPlan {
    let mut plan = RepositoryPlan { slug, repository, changes: Vec::new(), error: None };
    if !reads_webhooks || (plan.repository.is_none() && input.managed.is_empty()) {
        return plan;
    }
    match client.list_webhooks(project, &plan.slug).await {
        Ok(observed) => {
            plan.changes = if plan.is_bound() {
                plan_webhooks(input.webhooks, &observed, input.managed)
            } else {
                plan_removal(&observed, input.managed)
            };
        }
        // A repository that left the binding and no longer exists has nothing to clean.
        Err(Error::RepositoryNotFound { .. }) if !plan.is_bound() => {}
        Err(error) => plan.error = Some(error),
    }
    plan
}

/// The outcome of carrying out one repository's changes.
#[derive(Clone, Debug)]
pub struct RepositoryOutcome {
    /// The slug.
    pub slug: String,
    /// The changes made.
    pub applied: Vec<WebhookChange>,
    /// The first failure; the changes after it in this repository were not tried.
    pub error: Option<Error>,
}

/// Carries out the plan: each repository's changes in order, repositories in parallel.
/// Repositories that could not be observed are skipped (their error stays in the plan).
pub async fn apply(client: &Client, plan: &BindingPlan) -> Vec<RepositoryOutcome> {
    // Owned items: a stream of borrowed ones cannot be proven Send by today's compiler.
    let work: Vec<RepositoryPlan> = plan.repositories.iter().filter(|r| r.error.is_none()).cloned().collect();
    let project = plan.project.as_str();
    let mut outcomes: Vec<RepositoryOutcome> = stream::iter(work)
        .map(|repository| async move { apply_one(client, project, &repository).await })
        .buffer_unordered(PARALLEL_REPOSITORIES)
        .collect()
        .await;
    outcomes.sort_by(|a, b| a.slug.cmp(&b.slug));
    outcomes
}

async fn apply_one(client: &Client, project: &str, repository: &RepositoryPlan) -> RepositoryOutcome {
    let mut outcome = RepositoryOutcome { slug: repository.slug.clone(), applied: Vec::new(), error: None };
    for change in &repository.changes {
        let result = match change {
            WebhookChange::Create { desired } => {
                client.create_webhook(project, &repository.slug, &desired.request(None)).await.map(drop)
            }
            WebhookChange::Update { id, desired, observed, .. } => {
                client.update_webhook(project, &repository.slug, *id, &desired.request(Some(observed))).await.map(drop)
            }
            WebhookChange::Delete { id, .. } => client.delete_webhook(project, &repository.slug, *id).await,
        };
        match result {
            Ok(()) => outcome.applied.push(change.clone()),
            Err(error) => {
                outcome.error = Some(error);
                break;
            }
        }
    }
    outcome
}

/// The webhook names the binding manages after a reconcile: what it declares, plus what it
/// managed before while some repository could not be brought in line (so a failed removal is
/// tried again rather than forgotten).
pub fn managed_after(input: &BindingInput<'_>, plan: &BindingPlan, outcomes: &[RepositoryOutcome]) -> BTreeSet<String> {
    let mut managed: BTreeSet<String> = input.webhooks.iter().map(|w| w.name.clone()).collect();
    let incomplete = plan.repositories.iter().any(|r| r.error.is_some()) || outcomes.iter().any(|o| o.error.is_some());
    if incomplete {
        managed.extend(input.managed.iter().cloned());
    }
    managed
}

/// Removes a deleted binding's webhooks from the repositories it bound. Repositories that no
/// longer exist are skipped. Returns the first failure with its repository.
pub async fn remove(
    client: &Client,
    project: &str,
    slugs: &[String],
    managed: &BTreeSet<String>,
) -> Result<usize, (String, Error)> {
    if managed.is_empty() {
        return Ok(0);
    }
    let results: Vec<Result<usize, (String, Error)>> = stream::iter(slugs.to_vec())
        .map(|slug| async move { remove_one(client, project, &slug, managed).await })
        .buffer_unordered(PARALLEL_REPOSITORIES)
        .collect()
        .await;
    let mut total = 0;
    for result in results {
        total += result?;
    }
    Ok(total)
}

async fn remove_one(
    client: &Client,
    project: &str,
    slug: &str,
    managed: &BTreeSet<String>,
) -> Result<usize, (String, Error)> {
    let observed = match client.list_webhooks(project, slug).await {
        Ok(observed) => observed,
        Err(Error::RepositoryNotFound { .. } | Error::ProjectNotFound { .. }) => return Ok(0),
        Err(error) => return Err((slug.to_owned(), error)),
    };
    let mut removed = 0;
    for change in plan_removal(&observed, managed) {
        if let WebhookChange::Delete { id, .. } = change {
            client.delete_webhook(project, slug, id).await.map_err(|e| (slug.to_owned(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The outcome of a binding's round: `Bound` when every repository has its webhooks, else the
/// first failure's reason with how many repositories failed. The error is returned too when it
/// is transient (the round should be retried with backoff).
pub fn summarize(plan: &BindingPlan, outcomes: &[RepositoryOutcome], webhooks: usize) -> (Outcome, Option<Error>) {
    let failures: Vec<(&str, &Error)> = plan
        .repositories
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| (r.slug.as_str(), e)))
        .chain(outcomes.iter().filter_map(|o| o.error.as_ref().map(|e| (o.slug.as_str(), e))))
        .collect();
    let count = plan.bound().count();
    match failures.first() {
        None => (Outcome::ready(reasons::BOUND, bound_message(count, webhooks)), None),
        Some((slug, error)) => {
            let first = Outcome::from_error(error);
            let message = format!(
                "webhooks could not be brought in line on {} of {count} repositories; {slug}: {}",
                failures.len(),
                first.message
            );
            if first.phase == Phase::Reconciling {
                (Outcome::reconciling(first.reason, message), Some((*error).clone()))
            } else {
                (Outcome::stalled(first.reason, message), None)
            }
        }
    }
}

fn bound_message(count: usize, webhooks: usize) -> String {
    let repositories = if count == 1 { "1 repository".to_owned() } else { format!("{count} repositories") };
    match webhooks {
        0 => format!("{repositories} bound"),
        1 => format!("{repositories} bound, each with its webhook"),
        n => format!("{repositories} bound, each with its {n} webhooks"),
    }
}
