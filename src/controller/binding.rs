//! ProjectBinding: resolve the bound repositories, ensure their webhooks, report them in status.
//! Deletion waits for the RequiredReports and RequiredBuilds that use the binding, then removes its webhooks.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::{
    api::{ProjectBinding, ProjectBindingStatus, coverage::RepositoryIds},
    bitbucket::Error as BitbucketError,
    plan::{
        binding::{BindingInput, RepositoryOutcome, managed_after, summarize, tally},
        connection::SecretData,
        reasons,
        status::{Outcome, Phase},
        webhooks::{WebhookChange, desired_webhooks},
    },
    sync::binding::{apply, observe, remove, resolve},
};

use super::{
    context::{Context, key},
    error::Error,
    events::listed,
    inventories::{Inventory, Listing, recorded},
    reconcile::{Cleanup, EventRule, Kind, Next, Notice, Round},
    references::{Connected, cleanup_client, connect, dependents_of},
    sonarqube_projects,
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

    /// The record of the repositories and the webhook names are what the next round and the
    /// cleanup work from; the list of those that need attention goes first.
    fn shortened(status: &ProjectBindingStatus) -> Vec<ProjectBindingStatus> {
        vec![ProjectBindingStatus { needs_attention: Vec::new(), needs_attention_omitted: 0, ..status.clone() }]
    }
}

/// Records what the round concluded for the binding's dependents, and wakes them when that
/// changed.
fn publish(ctx: &Context, binding: &ProjectBinding, inventory: Inventory) {
    if ctx.inventories.publish(binding, inventory) {
        let dependents = dependents_of(&ctx.stores, binding);
        let namespace = binding.namespace().unwrap_or_default();
        for report in &dependents.reports {
            ctx.memo.mark_dirty(&key("RequiredReport", Some(&namespace), report));
        }
        for build in &dependents.builds {
            ctx.memo.mark_dirty(&key("RequiredBuild", Some(&namespace), build));
        }
        ctx.inventories.wake(binding, &dependents);
    }
}

async fn bind(ctx: &Context, binding: &ProjectBinding) -> Result<Round<ProjectBindingStatus>, Error> {
    let previous = binding.status.clone().unwrap_or_default();
    // Until the binding's own first round, what it had stays in status.
    let mut status = previous.clone();

    let (client, interval) = match connect(ctx, binding).await? {
        Connected::Ready(client, interval) => (client, interval),
        Connected::NotReady(outcome, wait) => {
            publish(ctx, binding, Inventory::Unresolved(outcome.clone()));
            return Ok(Round::finished(status, outcome, wait));
        }
        Connected::Pending(wait) => return Ok(Round::pending(wait)),
    };

    let resolved = match resolve(&client, &binding.spec, &recorded(binding, &previous.repository_ids)).await {
        Ok(resolved) => resolved,
        Err(error) => {
            let outcome = Outcome::from_error(&error);
            if outcome.phase == Phase::Reconciling {
                return Ok(Round {
                    status,
                    outcome,
                    next: Next::Retry(Error::Bitbucket(error)),
                    notices: Vec::new(),
                    corrected: 0,
                });
            }
            publish(ctx, binding, Inventory::Unresolved(outcome.clone()));
            // The project or repository is gone or unreadable: nothing is bound any more.
            if matches!(error, BitbucketError::ProjectNotFound { .. } | BitbucketError::RepositoryNotFound { .. }) {
                status = ProjectBindingStatus { managed_webhooks: previous.managed_webhooks, ..Default::default() };
            }
            return Ok(Round::finished(status, outcome, interval));
        }
    };
    // The reports need only the repositories: they go on while the webhooks are worked on.
    let listing = Listing {
        project: binding.spec.project_key.clone(),
        bound: resolved.bound.iter().map(|r| (r.id, r.slug.clone())).collect(),
        listed: resolved.listed.clone(),
    };
    publish(ctx, binding, Inventory::Listed(Arc::new(listing)));

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
    let departed: Vec<String> = resolved.departed.iter().map(|(_, slug)| slug.clone()).collect();
    let input = BindingInput { spec: &binding.spec, webhooks: &webhooks, managed: &managed, departed: &departed };
    let bound_ids: Vec<i64> = resolved.bound.iter().map(|r| r.id).collect();
    let repositories: Vec<sonarqube_projects::Repository> = resolved
        .bound
        .iter()
        .map(|r| sonarqube_projects::Repository { slug: r.slug.clone(), name: r.name.clone() })
        .collect();

    let plan = match observe(&client, &input, resolved.bound).await {
        Ok(plan) => plan,
        Err(error) => {
            let outcome = Outcome::from_error(&error);
            let next = if outcome.phase == Phase::Reconciling {
                Next::Retry(Error::Bitbucket(error))
            } else {
                Next::Resync(interval)
            };
            return Ok(Round { status, outcome, next, notices: Vec::new(), corrected: 0 });
        }
    };
    let outcomes = apply(&client, &plan).await;
    let (mut notices, mut corrected) = announce(&outcomes);

    let sonar = sonarqube_projects::keep(ctx, binding, &repositories, &departed).await?;
    status.sonarqube = sonar.status;

    let tally = tally(&plan, &outcomes);
    // Repositories that left and kept their webhooks or SonarQube bindings stay on the record, to
    // be cleaned next round.
    let kept = resolved
        .departed
        .iter()
        .filter(|(_, slug)| sonar.keep_departed || tally.departed_failed.contains(slug))
        .map(|(id, _)| *id);
    status.repository_ids = RepositoryIds::of(bound_ids.into_iter().chain(kept).chain(resolved.unresolved));
    status.repository_count = tally.bound;
    status.in_sync_count = tally.in_sync;
    status.failed_count = tally.failed;
    status.needs_attention = tally.attention;
    status.needs_attention_omitted = tally.omitted;
    status.managed_webhooks = managed_after(&input, &plan, &outcomes).into_iter().collect();

    let (outcome, transient) = summarize(&plan, &outcomes, webhooks.len());

    notices.extend(sonar.notices);
    corrected += sonar.corrected;
    // The Bitbucket side speaks first; the SonarQube side when Bitbucket is all as asked.
    let waiting = sonar.outcome.as_ref().is_some_and(|o| o.phase == Phase::Reconciling);
    let outcome = match sonar.outcome {
        Some(sonar) if outcome.phase == Phase::Ready => sonar,
        _ => outcome,
    };
    let next = match (transient, sonar.retry) {
        (Some(error), _) => Next::Retry(Error::Bitbucket(error)),
        (None, Some(error)) => Next::Retry(Error::SonarQube(error)),
        // Waiting for the SonarQube side to be checked in this process: look again soon.
        (None, None) if waiting => Next::Resync(ctx.options.wait_delay.max(std::time::Duration::from_secs(1))),
        (None, None) => Next::Resync(interval),
    };
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
    let dependents = dependents_of(&ctx.stores, binding);
    if ctx.inventories.remove(binding) {
        ctx.inventories.wake(binding, &dependents);
    }
    if !dependents.is_empty() {
        let message = format!(
            "waiting for {} to be deleted first (they remove their checks through this binding)",
            dependents.describe()
        );
        return Ok(Cleanup::Waiting(status, Outcome::reconciling(reasons::DELETING, message)));
    }
    let managed: BTreeSet<String> = status.managed_webhooks.iter().cloned().collect();
    // With spec.sonarqube removed, the SonarQube bindings are left as they are.
    let sonar = status.sonarqube.clone().filter(|_| binding.spec.sonarqube.is_some());
    if managed.is_empty() && sonar.is_none() {
        return Ok(Cleanup::Done(Vec::new()));
    }
    let client = match cleanup_client(ctx, binding, "the binding's webhooks and SonarQube bindings").await? {
        Ok(client) => client,
        Err(outcome) => return Ok(Cleanup::Waiting(status, outcome)),
    };
    // What was made is looked for on what the record shows and on what the spec selects now.
    let recorded = recorded(binding, &status.repository_ids);
    let slugs = match cleanup_slugs(&client, &binding.spec, &recorded).await {
        Ok(slugs) => slugs,
        Err(error) => {
            let outcome = Outcome::from_error(&error);
            let message = format!("cannot list the repositories to clean up: {}", outcome.message);
            return Ok(Cleanup::Waiting(status, Outcome { message, ..outcome }));
        }
    };
    let mut notices = Vec::new();
    if let Some(record) = &sonar {
        match sonarqube_projects::release(ctx, binding, record, &slugs).await? {
            Ok(released) => notices.extend(sonarqube_projects::released_notice(&released)),
            Err(outcome) => {
                let message = format!(
                    "{}; or remove spec.sonarqube to leave the SonarQube bindings as they are",
                    outcome.message
                );
                return Ok(Cleanup::Waiting(status, Outcome { message, ..outcome }));
            }
        }
    }
    match remove(&client, &binding.spec.project_key, &slugs, &managed).await {
        Ok(0) => Ok(Cleanup::Done(notices)),
        Ok(removed) => {
            notices.push(Notice {
                warning: false,
                reason: "WebhooksRemoved",
                action: "Delete",
                note: format!("removed {removed} webhooks"),
            });
            Ok(Cleanup::Done(notices))
        }
        Err((slug, error)) => {
            let outcome = Outcome::from_error(&error);
            let message = format!("cannot remove the webhooks of {slug}: {}", outcome.message);
            Ok(Cleanup::Waiting(status, Outcome { message, ..outcome }))
        }
    }
}

/// The slugs of the repositories a deleted binding's webhooks may be on: those it recorded (still
/// in the project) and those its spec selects now, by slug.
async fn cleanup_slugs(
    client: &crate::bitbucket::Client,
    spec: &crate::api::ProjectBindingSpec,
    recorded: &[i64],
) -> Result<Vec<String>, BitbucketError> {
    let mut slugs: Vec<String> = match resolve(client, spec, recorded).await {
        Ok(resolved) => resolved
            .bound
            .into_iter()
            .map(|r| r.slug)
            .chain(resolved.departed.into_iter().map(|(_, slug)| slug))
            .collect(),
        // Its one repository is gone: nothing of it to clean; the others recorded still are.
        Err(BitbucketError::RepositoryNotFound { .. }) if spec.repository_slug.is_some() => {
            let all = client.list_repositories(&spec.project_key).await?;
            let recorded: BTreeSet<i64> = recorded.iter().copied().collect();
            all.into_iter().filter(|r| recorded.contains(&r.id)).map(|r| r.slug).collect()
        }
        Err(BitbucketError::ProjectNotFound { .. }) => Vec::new(),
        Err(error) => return Err(error),
    };
    slugs.sort();
    slugs.dedup();
    Ok(slugs)
}
