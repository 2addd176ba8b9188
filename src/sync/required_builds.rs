//! A RequiredBuild's round in Bitbucket: reading each repository's conditions (and, when the
//! spec targets the default branch, which branch that is), and carrying out the changes. What
//! to change is decided by [`crate::plan::required_builds`].

use futures::{StreamExt, stream};

use crate::{
    bitbucket::{Client, Error},
    plan::required_builds::{
        Action,
        round::{BuildInput, ChangeOutcome, Observed, RepositoryPlan, aborts_round, plan_repository, write_failure},
    },
};

use super::PARALLEL_REPOSITORIES;

/// Reads every bound repository (and, when the input removes from them, every one that left)
/// and plans the changes: by slug, the bound first. The first repository is read alone, so
/// that a failure that [`aborts_round`] (a server without the API, a rejected credential)
/// costs one request rather than one per repository.
pub async fn observe(client: &Client, input: &BuildInput<'_>) -> Result<Vec<RepositoryPlan>, Error> {
    let mut targets: Vec<(String, bool)> = input.bound.iter().map(|slug| (slug.clone(), true)).collect();
    targets.sort();
    if input.remove_departed {
        let mut departed: Vec<(String, bool)> = input.departed.iter().map(|slug| (slug.clone(), false)).collect();
        departed.sort();
        targets.extend(departed);
    }
    let Some((first, rest)) = targets.split_first() else {
        return Ok(Vec::new());
    };
    let plan = read_one(client, input, first.clone()).await;
    if let Some(error) = plan.error.as_ref().filter(|e| aborts_round(e)) {
        return Err(error.clone());
    }
    let mut plans = vec![plan];
    let others: Vec<RepositoryPlan> = stream::iter(rest.iter().cloned())
        .map(|target| read_one(client, input, target))
        .buffered(PARALLEL_REPOSITORIES)
        .collect()
        .await;
    if let Some(error) = others.iter().filter_map(|p| p.error.as_ref()).find(|e| aborts_round(e)) {
        return Err(error.clone());
    }
    plans.extend(others);
    Ok(plans)
}

/// What one repository holds: its conditions (whose answer tells a missing repository from a
/// server without the API), then its default branch when needed.
pub async fn read(client: &Client, project: &str, slug: &str, default_branch: bool) -> Result<Observed, Error> {
    let conditions = client.list_required_builds(project, slug).await?;
    let default_branch = if default_branch { Some(client.default_branch(project, slug).await?) } else { None };
    Ok(Observed { default_branch, conditions })
}

async fn read_one(client: &Client, input: &BuildInput<'_>, (slug, bound): (String, bool)) -> RepositoryPlan {
    let observed = read(client, input.project, &slug, input.needs_default_branch()).await;
    plan_repository(slug, bound, input, observed)
}

/// Carries out the changes of the plans (skipping repositories that could not be read), each
/// repository's in order, stopping at its first failure.
pub async fn apply(client: &Client, project: &str, plans: &[RepositoryPlan]) -> Vec<ChangeOutcome> {
    let changes = crate::plan::required_builds::round::changes_to_apply(plans);
    let mut outcomes: Vec<ChangeOutcome> = stream::iter(changes)
        .map(|(slug, actions)| apply_one(client, project, slug, actions))
        .buffer_unordered(PARALLEL_REPOSITORIES)
        .collect()
        .await;
    outcomes.sort_by(|a, b| a.slug.cmp(&b.slug));
    outcomes
}

async fn apply_one(client: &Client, project: &str, slug: String, actions: Vec<Action>) -> ChangeOutcome {
    let mut outcome = ChangeOutcome { slug, ..ChangeOutcome::default() };
    for action in actions {
        let result = match &action {
            Action::Create(content) => {
                client.create_required_build(project, &outcome.slug, &content.request()).await.map(|c| Some(c.id))
            }
            Action::Update { id, content } => {
                client.update_required_build(project, &outcome.slug, *id, &content.request()).await.map(|c| Some(c.id))
            }
            Action::Delete { id } => client.delete_required_build(project, &outcome.slug, *id).await.map(|()| None),
        };
        match result {
            Ok(Some(id)) => outcome.written = Some(id),
            Ok(None) => {
                if let Action::Delete { id } = action {
                    outcome.deleted.push(id);
                }
            }
            Err(error) => {
                outcome.error = write_failure(&action, error);
                // The rest waits for the next round, which reads again first.
                break;
            }
        }
    }
    outcome
}
