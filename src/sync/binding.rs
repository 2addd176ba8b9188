//! A binding's round in Bitbucket: reading its repositories and their webhooks, and making
//! them match. What to read and what to change is decided by [`crate::plan::binding`].

use std::collections::{BTreeSet, HashMap};

use futures::{StreamExt, stream};

use crate::{
    api::ProjectBindingSpec,
    bitbucket::{Client, Error, Repository},
    plan::{
        binding::{
            BindingInput, BindingPlan, RepositoryOutcome, RepositoryPlan, aborts_round, plan_repository,
            reads_webhooks, removal, repositories_to_observe,
        },
        selection,
        webhooks::WebhookChange,
    },
};

use super::PARALLEL_REPOSITORIES;

/// What a binding's repositories resolve to in a round.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The repositories bound now, by slug.
    pub bound: Vec<Repository>,
    /// Every repository of the project the round listed (id → slug); `None` when it read only
    /// the one repository of a `repositorySlug` binding.
    pub listed: Option<HashMap<i64, String>>,
    /// The repositories covered until now that left the binding and still exist: (id, slug).
    pub departed: Vec<(i64, String)>,
    /// Ids covered until now that could not be looked up (the project could not be listed):
    /// kept on the record, to be looked up again next round.
    pub unresolved: Vec<i64>,
}

/// Resolves the bound repositories: one read per page of the project's repositories, or one
/// read for a single slug. The repositories covered until now (`previous`, by id) that are no
/// longer bound are looked up in the listing (a single-slug binding lists the project only
/// then); those no longer in the project are gone, with nothing left to clean. A project or
/// single repository that does not exist fails the whole binding.
pub async fn resolve(client: &Client, spec: &ProjectBindingSpec, previous: &[i64]) -> Result<Resolved, Error> {
    let project = &spec.project_key;
    let ids = |all: &[Repository]| -> HashMap<i64, String> { all.iter().map(|r| (r.id, r.slug.clone())).collect() };
    let (bound, mut listed) = match &spec.repository_slug {
        Some(slug) => (vec![client.get_repository(project, slug).await?], None),
        None => {
            let all = client.list_repositories(project).await?;
            (selection::select(spec, &all), Some(ids(&all)))
        }
    };
    let departed_ids = selection::departed(previous, bound.iter().map(|r| r.id));
    let mut unresolved = Vec::new();
    if !departed_ids.is_empty() && listed.is_none() {
        match client.list_repositories(project).await {
            Ok(all) => listed = Some(ids(&all)),
            Err(error) => {
                tracing::warn!(project = %project, %error, "cannot list the project to find the repositories that left the binding; trying again next round");
                unresolved.clone_from(&departed_ids);
            }
        }
    }
    let departed = match &listed {
        Some(listed) => departed_ids.iter().filter_map(|id| listed.get(id).map(|slug| (*id, slug.clone()))).collect(),
        None => Vec::new(),
    };
    Ok(Resolved { bound, listed, departed, unresolved })
}

/// Reads the webhooks of each repository that needs it, once: the `bound` ones and those that
/// left (`input.departed`). A failure that [`aborts_round`] fails the round; other
/// per-repository failures are recorded on the repository.
pub async fn observe(client: &Client, input: &BindingInput<'_>, bound: Vec<Repository>) -> Result<BindingPlan, Error> {
    let project = input.spec.project_key.clone();
    let results: Vec<RepositoryPlan> = stream::iter(repositories_to_observe(bound, input.departed))
        .map(|(slug, repository)| observe_one(client, &project, input, slug, repository))
        .buffer_unordered(PARALLEL_REPOSITORIES)
        .collect()
        .await;
    if let Some(error) = results.iter().filter_map(|r| r.error.as_ref()).find(|e| aborts_round(e)) {
        return Err(error.clone());
    }
    Ok(BindingPlan::new(project, results))
}

async fn observe_one(
    client: &Client,
    project: &str,
    input: &BindingInput<'_>,
    slug: String,
    repository: Option<Repository>,
) -> RepositoryPlan {
    let read = if reads_webhooks(repository.is_some(), input.webhooks, input.managed) {
        Some(client.list_webhooks(project, &slug).await)
    } else {
        None
    };
    plan_repository(input, slug, repository, read)
}

/// Carries out the plan: each repository's changes in order, repositories in parallel.
/// Repositories that could not be observed are skipped (their error stays in the plan).
pub async fn apply(client: &Client, plan: &BindingPlan) -> Vec<RepositoryOutcome> {
    // Owned items: a stream of borrowed ones cannot be proven Send by today's compiler.
    let work: Vec<RepositoryPlan> = plan.to_apply().cloned().collect();
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

/// Removes a deleted binding's webhooks from the repositories it bound. Repositories that no
/// longer exist are skipped. Returns the first failure with its repository.
pub async fn remove(
    client: &Client,
    project: &str,
    slugs: &[String],
    managed: &BTreeSet<String>,
) -> Result<usize, (String, Error)> {
    // A deleted binding's repositories are cleaned up like those that left it.
    if !reads_webhooks(false, &[], managed) {
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
    let changes = removal(client.list_webhooks(project, slug).await, managed).map_err(|e| (slug.to_owned(), e))?;
    let mut removed = 0;
    for change in changes {
        if let WebhookChange::Delete { id, .. } = change {
            client.delete_webhook(project, slug, id).await.map_err(|e| (slug.to_owned(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}
