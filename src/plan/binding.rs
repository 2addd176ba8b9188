//! A binding's round, decided: which repositories are observed and which only cleaned up,
//! whose webhooks must be read, what each repository needs, which failures stop the round,
//! which webhooks stay managed, and how the round ends. [`crate::sync::binding`] does the
//! reading and writing around these decisions.

use std::collections::BTreeSet;

use crate::{
    api::{
        ProjectBindingSpec,
        coverage::{CheckState, RepositoryCheck, needing_attention},
    },
    bitbucket::{Error, Repository, Webhook},
};

use super::{
    reasons,
    status::{Outcome, Phase, is_credential_error, is_gone},
    webhooks::{DesiredWebhook, WebhookChange, plan_removal, plan_webhooks},
};

/// What a binding wants, as resolved from its spec and Secrets.
#[derive(Clone, Debug)]
pub struct BindingInput<'a> {
    /// The spec.
    pub spec: &'a ProjectBindingSpec,
    /// The declared webhooks, secrets resolved.
    pub webhooks: &'a [DesiredWebhook],
    /// Names of the webhooks the binding managed until now (from its status).
    pub managed: &'a BTreeSet<String>,
    /// Repositories bound until now that no longer are (resolved from the ids in its status),
    /// so that they lose the binding's webhooks.
    pub departed: &'a [String],
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
    /// The plan of the repositories observed, in any order: bound ones first (by slug), then
    /// the ones that left (by slug).
    pub fn new(project: String, mut repositories: Vec<RepositoryPlan>) -> Self {
        repositories.sort_by(|a, b| (!a.is_bound(), &a.slug).cmp(&(!b.is_bound(), &b.slug)));
        Self { project, repositories }
    }

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

    /// The repositories whose changes are carried out: those that could be observed (the
    /// others keep their error in the plan).
    pub fn to_apply(&self) -> impl Iterator<Item = &RepositoryPlan> {
        self.repositories.iter().filter(|r| r.error.is_none())
    }
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

/// The repositories a round works on: each one bound now (with the repository, in the given
/// order), then each one that left (without, so that it is only cleaned up), once.
pub fn repositories_to_observe(bound: Vec<Repository>, departed: &[String]) -> Vec<(String, Option<Repository>)> {
    let bound_slugs: BTreeSet<String> = bound.iter().map(|r| r.slug.clone()).collect();
    let mut work: Vec<(String, Option<Repository>)> = bound.into_iter().map(|r| (r.slug.clone(), Some(r))).collect();
    let mut seen = BTreeSet::new();
    work.extend(
        departed
            .iter()
            .filter(|slug| !bound_slugs.contains(*slug) && seen.insert(slug.as_str()))
            .map(|slug| (slug.clone(), None)),
    );
    work
}

/// Whether a repository's webhooks must be read at all: a bound repository's when the binding
/// declares or managed webhooks, a repository's that left (or of a deleted binding) only when
/// the binding managed some. Otherwise there is nothing to create and nothing to remove.
pub fn reads_webhooks(bound: bool, declared: &[DesiredWebhook], managed: &BTreeSet<String>) -> bool {
    !managed.is_empty() || (bound && !declared.is_empty())
}

/// One repository's plan, from what reading its webhooks gave (`None` when they were not read,
/// see [`reads_webhooks`]). A bound repository gets what makes its webhooks match; one that
/// left loses the webhooks the binding managed, and has nothing to clean when it no longer
/// exists. Any other read failure is kept on the repository.
pub fn plan_repository(
    input: &BindingInput<'_>,
    slug: String,
    repository: Option<Repository>,
    read: Option<Result<Vec<Webhook>, Error>>,
) -> RepositoryPlan {
    let mut plan = RepositoryPlan { slug, repository, changes: Vec::new(), error: None };
    match read {
        None => {}
        Some(Ok(observed)) if plan.is_bound() => plan.changes = plan_webhooks(input.webhooks, &observed, input.managed),
        Some(Ok(observed)) => plan.changes = plan_removal(&observed, input.managed),
        // A repository that left the binding and no longer exists has nothing to clean.
        Some(Err(Error::RepositoryNotFound { .. })) if !plan.is_bound() => {}
        Some(Err(error)) => plan.error = Some(error),
    }
    plan
}

/// Whether a failure on one repository stops the whole round: a credential error (every call
/// with the credential would fail the same way, and repeated failures lock the account). Any
/// other failure stays on its repository while the others go on.
pub fn aborts_round(error: &Error) -> bool {
    is_credential_error(error)
}

/// The deletions that remove a deleted binding's webhooks from one of its repositories, from
/// what reading them gave. A repository or project that is gone has none left; any other read
/// failure is returned.
pub fn removal(read: Result<Vec<Webhook>, Error>, managed: &BTreeSet<String>) -> Result<Vec<WebhookChange>, Error> {
    match read {
        Ok(observed) => Ok(plan_removal(&observed, managed)),
        Err(error) if is_gone(&error) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
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

/// The outcome of a binding's round, from its plan and what carrying it out did: see
/// [`round_outcome`]. Failures to observe come first, then failures to write.
pub fn summarize(plan: &BindingPlan, outcomes: &[RepositoryOutcome], webhooks: usize) -> (Outcome, Option<Error>) {
    let failures: Vec<(&str, &Error)> = plan
        .repositories
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| (r.slug.as_str(), e)))
        .chain(outcomes.iter().filter_map(|o| o.error.as_ref().map(|e| (o.slug.as_str(), e))))
        .collect();
    round_outcome(plan.bound().count(), &failures, webhooks)
}

/// What a binding's status counts after a round: the bound repositories, those in line and
/// those that failed, and the repositories that need attention (capped, by slug; one that left
/// the binding is listed while its webhooks could not be removed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Bound repositories.
    pub bound: i32,
    /// Bound repositories with every declared webhook as declared.
    pub in_sync: i32,
    /// Bound repositories that failed.
    pub failed: i32,
    /// Those that need attention, at most [`crate::api::coverage::ATTENTION_LIMIT`].
    pub attention: Vec<RepositoryCheck>,
    /// How many more need attention.
    pub omitted: i32,
    /// The repositories that left the binding and still carry its webhooks (their removal
    /// failed): they stay on the record so that the next round tries again.
    pub departed_failed: Vec<String>,
}

/// Counts a round: see [`Tally`].
pub fn tally(plan: &BindingPlan, outcomes: &[RepositoryOutcome]) -> Tally {
    let written: std::collections::HashMap<&str, &Error> =
        outcomes.iter().filter_map(|o| o.error.as_ref().map(|e| (o.slug.as_str(), e))).collect();
    let mut tally = Tally::default();
    let mut entries = Vec::new();
    for repository in &plan.repositories {
        let error = repository.error.as_ref().or_else(|| written.get(repository.slug.as_str()).copied());
        let count = |n: &mut i32| *n = n.saturating_add(1);
        if repository.is_bound() {
            count(&mut tally.bound);
            if error.is_some() { count(&mut tally.failed) } else { count(&mut tally.in_sync) }
        } else if error.is_some() {
            tally.departed_failed.push(repository.slug.clone());
        }
        if let Some(error) = error {
            let message = if repository.is_bound() {
                error.to_string()
            } else {
                format!("left the binding, but its webhooks could not be removed: {error}")
            };
            entries.push(RepositoryCheck {
                slug: repository.slug.clone(),
                state: CheckState::Failed,
                message: Some(message),
            });
        }
    }
    entries.sort_by(|a, b| a.slug.cmp(&b.slug));
    (tally.attention, tally.omitted) = needing_attention(entries);
    tally
}

/// The outcome of a binding's round with `bound` repositories, `webhooks` declared and the
/// repositories' `failures` in order: `Bound` when there are none, else the first failure's
/// reason with how many repositories failed. A transient first failure keeps the binding
/// `Reconciling` and is returned, so that the round is retried with backoff; any other leaves it
/// `Stalled`.
pub fn round_outcome(bound: usize, failures: &[(&str, &Error)], webhooks: usize) -> (Outcome, Option<Error>) {
    match failures.first() {
        None => (Outcome::ready(reasons::BOUND, bound_message(bound, webhooks)), None),
        Some((slug, error)) => {
            let first = Outcome::from_error(error);
            let message = format!(
                "webhooks could not be brought in line on {} of {bound} repositories; {slug}: {}",
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

#[cfg(test)]
mod tests;
