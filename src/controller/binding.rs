//! ProjectBinding: resolve the bound repositories, ensure their webhooks, report them in status.
//! Deletion waits for the RequiredReports that use the binding, then removes its webhooks.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::{
    api::{
        ProjectBinding, ProjectBindingStatus,
        binding::{BoundRepository, CloneUrls},
    },
    bitbucket::{Error as BitbucketError, Repository},
    plan::{
        binding::{BindingInput, RepositoryOutcome, managed_after, summarize},
        connection::SecretData,
        reasons,
        status::{Outcome, Phase},
        webhooks::{WebhookChange, desired_webhooks},
    },
    sync::binding::{apply, observe, remove},
};

use super::{
    context::Context,
    error::Error,
    events::listed,
    reconcile::{Cleanup, EventRule, Kind, Next, Notice, Round},
    references::{Connected, cleanup_client, connect, reports_of},
};

impl Kind for ProjectBinding {
    const KIND: &'static str = "ProjectBinding";
    const EVENTS: EventRule = EventRule { action: "Bind", phases: &[Phase::Ready, Phase::Stalled] };

    async fn round(ctx: &Context, binding: &Self) -> Result<Round<ProjectBindingStatus>, Error> {
        bind(ctx, binding).await
    }

    async fn cleanup(ctx: &Context, binding: &Self) -> Result<Cleanup<ProjectBindingStatus>, Error> {
        unbind(ctx, binding).await
    }

    /// The webhook names and the bound slugs are what the next round and the cleanup work from:
    /// first without the clone URLs (most of each entry), then without the repositories.
    fn shortened(status: &ProjectBindingStatus) -> Vec<ProjectBindingStatus> {
        let bare = ProjectBindingStatus {
            repository_count: status.repository_count,
            managed_webhooks: status.managed_webhooks.clone(),
            ..ProjectBindingStatus::default()
        };
        let repositories = status
            .repositories
            .iter()
            .map(|r| BoundRepository { clone_urls: CloneUrls::default(), ..r.clone() })
            .collect();
        vec![ProjectBindingStatus { repositories, ..bare.clone() }, bare]
    }
}

fn bound_repository(repository: &Repository) -> BoundRepository {
    BoundRepository {
        slug: repository.slug.clone(),
        id: repository.id,
        name: repository.name.clone(),
        state: repository.state.as_str().to_owned(),
        archived: repository.archived,
        clone_urls: CloneUrls { http: repository.clone.http.clone(), ssh: repository.clone.ssh.clone() },
    }
}

async fn bind(ctx: &Context, binding: &ProjectBinding) -> Result<Round<ProjectBindingStatus>, Error> {
    let previous = binding.status.clone().unwrap_or_default();
    // Until the binding's own first round, what it had stays in status.
    let mut status = previous.clone();

    let (client, interval) = match connect(ctx, binding).await? {
        Connected::Ready(client, interval) => (client, interval),
        Connected::NotReady(outcome, wait) => return Ok(Round::finished(status, outcome, wait)),
        Connected::Pending(wait) => return Ok(Round::pending(wait)),
    };

    let namespace = binding.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let mut found = BTreeMap::new();
    for reference in binding.spec.webhooks.iter().filter_map(|w| w.secret_ref.as_ref()) {
        if let Some(secret) = secrets.get_opt(&reference.name).await? {
            found.insert(reference.name.clone(), SecretData::from_secret(&secret));
        }
    }
    let webhooks = match desired_webhooks(&binding.spec, &namespace, |name| found.get(name).cloned()) {
        Ok(webhooks) => webhooks,
        Err(error) => {
            return Ok(Round::finished(status, Outcome::stalled(error.reason(), error.to_string()), interval));
        }
    };
    let managed: BTreeSet<String> = previous.managed_webhooks.iter().cloned().collect();
    let previous_slugs: Vec<String> = previous.repositories.iter().map(|r| r.slug.clone()).collect();
    let input = BindingInput { spec: &binding.spec, webhooks: &webhooks, managed: &managed, previous: &previous_slugs };

    let plan = match observe(&client, &input).await {
        Ok(plan) => plan,
        Err(error) => {
            let outcome = Outcome::from_error(&error);
            if outcome.phase == Phase::Reconciling {
                return Ok(Round { status, outcome, next: Next::Retry(error), notices: Vec::new(), corrected: 0 });
            }
            // The project or repository is gone or unreadable: nothing is bound any more.
            if matches!(error, BitbucketError::ProjectNotFound { .. } | BitbucketError::RepositoryNotFound { .. }) {
                status.repositories.clear();
                status.repository_count = 0;
            }
            return Ok(Round::finished(status, outcome, interval));
        }
    };
    let outcomes = apply(&client, &plan).await;
    let (notices, corrected) = announce(&outcomes);

    status.repositories = plan.bound().map(bound_repository).collect();
    status.repository_count = i32::try_from(status.repositories.len()).unwrap_or(i32::MAX);
    status.managed_webhooks = managed_after(&input, &plan, &outcomes).into_iter().collect();

    let (outcome, transient) = summarize(&plan, &outcomes, webhooks.len());
    let next = transient.map_or(Next::Resync(interval), Next::Retry);
    Ok(Round { status, outcome, next, notices, corrected })
}

/// One Event for the webhooks a round changed, and how many of the changes corrected drift.
fn announce(outcomes: &[RepositoryOutcome]) -> (Vec<Notice>, usize) {
    let (mut created, mut updated, mut deleted) = (0, 0, 0);
    let mut repositories = Vec::new();
    for outcome in outcomes.iter().filter(|o| !o.applied.is_empty()) {
        repositories.push(outcome.slug.clone());
        for change in &outcome.applied {
            match change {
                WebhookChange::Create { .. } => created += 1,
                WebhookChange::Update { .. } => updated += 1,
                WebhookChange::Delete { .. } => deleted += 1,
            }
        }
    }
    if repositories.is_empty() {
        return (Vec::new(), updated);
    }
    let note =
        format!("webhooks: {created} created, {updated} updated, {deleted} deleted on {}", listed(&repositories));
    (vec![Notice { warning: false, reason: "WebhooksUpdated", action: "EnsureWebhooks", note }], updated)
}

async fn unbind(ctx: &Context, binding: &ProjectBinding) -> Result<Cleanup<ProjectBindingStatus>, Error> {
    let status = binding.status.clone().unwrap_or_default();
    let reports = reports_of(&ctx.stores, binding);
    if !reports.is_empty() {
        let message = format!(
            "waiting for RequiredReport {} to be deleted first (they remove their checks through this binding)",
            reports.join(", ")
        );
        return Ok(Cleanup::Waiting(status, Outcome::reconciling(reasons::DELETING, message)));
    }
    let managed: BTreeSet<String> = status.managed_webhooks.iter().cloned().collect();
    if managed.is_empty() {
        return Ok(Cleanup::Done(Vec::new()));
    }
    let client = match cleanup_client(ctx, binding, "the binding's webhooks").await? {
        Ok(client) => client,
        Err(outcome) => return Ok(Cleanup::Waiting(status, outcome)),
    };
    let mut slugs: Vec<String> = status.repositories.iter().map(|r| r.slug.clone()).collect();
    // A status shortened to fit the API server no longer lists every bound repository: the
    // webhooks are looked for on what the spec selects in Bitbucket now, besides those listed.
    if usize::try_from(status.repository_count).unwrap_or(0) > slugs.len() {
        let project = &binding.spec.project_key;
        let selected = match &binding.spec.repository_slug {
            Some(slug) => Ok(vec![slug.clone()]),
            None => client
                .list_repositories(project)
                .await
                .map(|all| crate::plan::selection::select(&binding.spec, &all).into_iter().map(|r| r.slug).collect()),
        };
        match selected {
            Ok(selected) => {
                slugs.extend(selected);
                slugs.sort();
                slugs.dedup();
            }
            Err(error) => {
                let outcome = Outcome::from_error(&error);
                let message = format!("cannot list the repositories to remove the webhooks from: {}", outcome.message);
                return Ok(Cleanup::Waiting(status, Outcome { message, ..outcome }));
            }
        }
    }
    match remove(&client, &binding.spec.project_key, &slugs, &managed).await {
        Ok(0) => Ok(Cleanup::Done(Vec::new())),
        Ok(removed) => Ok(Cleanup::Done(vec![Notice {
            warning: false,
            reason: "WebhooksRemoved",
            action: "Delete",
            note: format!("removed {removed} webhooks"),
        }])),
        Err((slug, error)) => {
            let outcome = Outcome::from_error(&error);
            let message = format!("cannot remove the webhooks of {slug}: {}", outcome.message);
            Ok(Cleanup::Waiting(status, Outcome { message, ..outcome }))
        }
    }
}
