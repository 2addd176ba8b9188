//! ProjectBinding: resolve the bound repositories, ensure their webhooks, report them in status.
//! Deletion waits for the RequiredReports that use the binding, then removes its webhooks.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, finalizer, reflector::ObjectRef},
};

use crate::{
    api::{
        ProjectBinding, ProjectBindingStatus,
        binding::{BoundRepository, CloneUrls},
        conditions::{READY, find},
        refs::ConfigurationKind,
    },
    bitbucket::{Client, Repository},
    plan::{
        connection::SecretData,
        reasons,
        status::{Outcome, Phase},
        webhooks::{WebhookChange, desired_webhooks},
    },
    sync::binding::{BindingInput, apply, managed_after, observe, remove, summarize},
};

use super::{
    Error, FINALIZER,
    clients::ConfigurationKey,
    configuration::resync_interval,
    context::{Context, jittered, key_of},
    status,
};

/// Whether a binding refers to a configuration.
pub fn uses(binding: &ProjectBinding, key: &ConfigurationKey) -> bool {
    let reference = &binding.spec.configuration_ref;
    reference.kind == key.kind
        && reference.name == key.name
        && match key.kind {
            ConfigurationKind::BitbucketConfiguration => binding.namespace() == key.namespace,
            ConfigurationKind::ClusterBitbucketConfiguration => true,
        }
}

/// The configuration key a binding refers to.
pub fn configuration_key(binding: &ProjectBinding) -> ConfigurationKey {
    let reference = &binding.spec.configuration_ref;
    ConfigurationKey {
        kind: reference.kind,
        namespace: match reference.kind {
            ConfigurationKind::BitbucketConfiguration => binding.namespace(),
            ConfigurationKind::ClusterBitbucketConfiguration => None,
        },
        name: reference.name.clone(),
    }
}

/// Where a binding stands with its configuration: a ready client and the resync interval, or
/// the outcome (and how soon to look again) that explains why not.
pub enum Connected {
    /// The client to use, and how often to resync.
    Ready(Client, Duration),
    /// Not usable now.
    NotReady(Outcome, Duration),
}

/// The client of a binding's configuration, if the configuration exists, admits the binding's
/// namespace, and passed its connection check.
pub async fn connect(ctx: &Context, binding: &ProjectBinding) -> Result<Connected, Error> {
    let key = configuration_key(binding);
    let namespace = binding.namespace().unwrap_or_default();
    let (spec, status, generation, deleting) = match key.kind {
        ConfigurationKind::BitbucketConfiguration => {
            let reference = ObjectRef::new(&key.name).within(&namespace);
            let Some(configuration) = ctx.stores.configurations.get(&reference) else {
                return Ok(not_found(&key));
            };
            let deleting = configuration.metadata.deletion_timestamp.is_some();
            (configuration.spec.clone(), configuration.status.clone(), configuration.metadata.generation, deleting)
        }
        ConfigurationKind::ClusterBitbucketConfiguration => {
            let Some(configuration) = ctx.stores.cluster_configurations.get(&ObjectRef::new(&key.name)) else {
                return Ok(not_found(&key));
            };
            let labels = Api::<Namespace>::all(ctx.kube.clone())
                .get_opt(&namespace)
                .await?
                .and_then(|n| n.metadata.labels)
                .unwrap_or_default();
            if !configuration.spec.allowed_namespaces.admits(&namespace, &labels) {
                let outcome = Outcome::stalled(
                    reasons::NAMESPACE_NOT_ALLOWED,
                    format!(
                        "{key} does not allow namespace {namespace}; add it to spec.allowedNamespaces of the configuration"
                    ),
                );
                return Ok(Connected::NotReady(outcome, Duration::from_secs(600)));
            }
            let deleting = configuration.metadata.deletion_timestamp.is_some();
            (
                configuration.spec.connection.clone(),
                configuration.status.clone(),
                configuration.metadata.generation,
                deleting,
            )
        }
    };
    let interval = resync_interval(ctx, &spec);
    let ready = status.as_ref().and_then(|s| find(&s.conditions, READY));
    let checked = status.as_ref().and_then(|s| s.observed_generation) == generation;
    match (ready, checked) {
        // A configuration being deleted waits for its users (it shows InUse); they keep its last
        // proven client to clean up with.
        _ if deleting => {}
        (Some(ready), true) if ready.status == "True" => {}
        (Some(ready), true) => {
            let stalled = status
                .as_ref()
                .and_then(|s| find(&s.conditions, crate::api::conditions::STALLED))
                .is_some_and(|c| c.status == "True");
            let message = format!("{key} is not ready ({}): {}", ready.reason, ready.message);
            let outcome = if stalled {
                Outcome::stalled(reasons::CONFIGURATION_NOT_READY, message)
            } else {
                Outcome::reconciling(reasons::CONFIGURATION_NOT_READY, message)
            };
            return Ok(Connected::NotReady(outcome, interval));
        }
        _ => {
            let outcome = Outcome::reconciling(
                reasons::CONFIGURATION_NOT_READY,
                format!("waiting for the connection check of {key}"),
            );
            return Ok(Connected::NotReady(outcome, ctx.options.wait_delay));
        }
    }
    match ctx.clients.current(&key).await {
        Some(connection) if connection.is_ready() => Ok(Connected::Ready(connection.client, interval)),
        _ => Ok(Connected::NotReady(
            Outcome::reconciling(
                reasons::CONFIGURATION_NOT_READY,
                format!("waiting for the connection check of {key}"),
            ),
            ctx.options.wait_delay,
        )),
    }
}

fn not_found(key: &ConfigurationKey) -> Connected {
    let outcome = Outcome::stalled(
        reasons::CONFIGURATION_NOT_FOUND,
        format!("{key} does not exist; create it or fix spec.configurationRef"),
    );
    Connected::NotReady(outcome, Duration::from_secs(600))
}

/// Reconciles a ProjectBinding.
pub async fn reconcile(object: Arc<ProjectBinding>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = tokio::time::Instant::now();
    let namespace = object.namespace().unwrap_or_default();
    if !super::in_scope(&ctx, &namespace) {
        return Ok(Action::await_change());
    }
    let api: Api<ProjectBinding> = Api::namespaced(ctx.kube.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            finalizer::Event::Apply(object) => bind(&ctx, &api, &object).await,
            finalizer::Event::Cleanup(object) => unbind(&ctx, &api, &object).await,
        }
    })
    .await
    .map_err(Error::from_finalizer);
    super::measured(&ctx, "ProjectBinding", started, result)
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

async fn bind(ctx: &Context, api: &Api<ProjectBinding>, binding: &ProjectBinding) -> Result<Action, Error> {
    let key = key_of(binding);
    let generation = binding.metadata.generation;
    if let Err(wait) = ctx.memo.due(&key, generation) {
        return Ok(Action::requeue(wait));
    }
    let previous = binding.status.clone().unwrap_or_default();
    // Until the binding's own first round, what it had stays in status.
    let mut status = ProjectBindingStatus { observed_generation: generation, ..previous.clone() };

    let (client, interval) = match connect(ctx, binding).await? {
        Connected::Ready(client, interval) => (client, interval),
        Connected::NotReady(outcome, wait) => return finish(ctx, api, binding, status, &outcome, wait).await,
    };

    let namespace = binding.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let mut found = std::collections::BTreeMap::new();
    for reference in binding.spec.webhooks.iter().filter_map(|w| w.secret_ref.as_ref()) {
        if let Some(secret) = secrets.get_opt(&reference.name).await? {
            found.insert(reference.name.clone(), SecretData::from_secret(&secret));
        }
    }
    let webhooks = match desired_webhooks(&binding.spec, &namespace, |name| found.get(name).cloned()) {
        Ok(webhooks) => webhooks,
        Err(error) => {
            let outcome = Outcome::stalled(error.reason(), error.to_string());
            return finish(ctx, api, binding, status, &outcome, interval).await;
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
                write(ctx, api, binding, status, &outcome).await?;
                return Err(Error::Bitbucket(error));
            }
            // The project or repository is gone or unreadable: nothing is bound any more.
            if matches!(
                error,
                crate::bitbucket::Error::ProjectNotFound { .. } | crate::bitbucket::Error::RepositoryNotFound { .. }
            ) {
                status.repositories.clear();
                status.repository_count = 0;
            }
            return finish(ctx, api, binding, status, &outcome, interval).await;
        }
    };
    let outcomes = apply(&client, &plan).await;
    announce(ctx, binding, &outcomes).await;

    status.repositories = plan.bound().map(bound_repository).collect();
    status.repository_count = i32::try_from(status.repositories.len()).unwrap_or(i32::MAX);
    status.managed_webhooks = managed_after(&input, &plan, &outcomes).into_iter().collect();

    let (outcome, transient) = summarize(&plan, &outcomes, webhooks.len());
    if let Some(error) = transient {
        write(ctx, api, binding, status, &outcome).await?;
        return Err(Error::Bitbucket(error));
    }
    finish(ctx, api, binding, status, &outcome, interval).await
}

async fn announce(ctx: &Context, binding: &ProjectBinding, outcomes: &[crate::sync::binding::RepositoryOutcome]) {
    let (mut created, mut updated, mut deleted) = (0, 0, 0);
    let mut repositories = Vec::new();
    for outcome in outcomes.iter().filter(|o| !o.applied.is_empty()) {
        repositories.push(outcome.slug.as_str());
        for change in &outcome.applied {
            match change {
                WebhookChange::Create { .. } => created += 1,
                WebhookChange::Update { .. } => updated += 1,
                WebhookChange::Delete { .. } => deleted += 1,
            }
        }
    }
    ctx.options.telemetry.drift_corrected("ProjectBinding", updated);
    if repositories.is_empty() {
        return;
    }
    let shown: Vec<&str> = repositories.iter().take(10).copied().collect();
    let more = repositories.len().saturating_sub(shown.len());
    let note = format!(
        "webhooks: {created} created, {updated} updated, {deleted} deleted on {}{}",
        shown.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() }
    );
    ctx.event(binding, false, "WebhooksUpdated", "EnsureWebhooks", note).await;
}

async fn finish(
    ctx: &Context,
    api: &Api<ProjectBinding>,
    binding: &ProjectBinding,
    status: ProjectBindingStatus,
    outcome: &Outcome,
    interval: Duration,
) -> Result<Action, Error> {
    write(ctx, api, binding, status, outcome).await?;
    let key = key_of(binding);
    ctx.backoff.reset(&key);
    let next = jittered(interval);
    ctx.memo.done(&key, binding.metadata.generation, next);
    Ok(Action::requeue(next))
}

async fn write(
    ctx: &Context,
    api: &Api<ProjectBinding>,
    binding: &ProjectBinding,
    mut status: ProjectBindingStatus,
    outcome: &Outcome,
) -> Result<(), Error> {
    let old = binding.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    if outcome.phase == Phase::Stalled {
        ctx.options.telemetry.stalled("ProjectBinding", outcome.reason);
    }
    status.observed_generation = binding.metadata.generation;
    status.conditions = status::conditions_for(binding, old, outcome);
    let old_reason = find(old, READY).map(|c| c.reason.as_str());
    if old_reason != Some(outcome.reason) && outcome.phase != Phase::Reconciling {
        ctx.event(binding, outcome.phase != Phase::Ready, outcome.reason, "Bind", &outcome.message).await;
    }
    status::apply(api, binding, &status).await
}

async fn unbind(ctx: &Context, api: &Api<ProjectBinding>, binding: &ProjectBinding) -> Result<Action, Error> {
    let namespace = binding.namespace();
    let name = binding.name_any();
    let reports: Vec<String> = ctx
        .stores
        .reports
        .state()
        .iter()
        .filter(|r| r.namespace() == namespace && r.spec.binding_ref.name == name)
        .map(|r| r.name_any())
        .collect();
    let status = binding.status.clone().unwrap_or_default();
    if !reports.is_empty() {
        let message = format!(
            "waiting for RequiredReport {} to be deleted first (they remove their checks through this binding)",
            reports.join(", ")
        );
        write(ctx, api, binding, status, &Outcome::reconciling(reasons::DELETING, message.clone())).await?;
        return Err(Error::Waiting(message));
    }
    let managed: BTreeSet<String> = status.managed_webhooks.iter().cloned().collect();
    if !managed.is_empty() {
        let client = match connect(ctx, binding).await? {
            Connected::Ready(client, _) => client,
            Connected::NotReady(outcome, _) => {
                let message = format!(
                    "cannot remove the binding's webhooks: {}; fix that, or remove the finalizer {FINALIZER} to leave them in Bitbucket",
                    outcome.message
                );
                write(ctx, api, binding, status, &Outcome::stalled(outcome.reason, message.clone())).await?;
                return Err(Error::Waiting(message));
            }
        };
        let slugs: Vec<String> = status.repositories.iter().map(|r| r.slug.clone()).collect();
        match remove(&client, &binding.spec.project_key, &slugs, &managed).await {
            Ok(0) => {}
            Ok(removed) => {
                ctx.event(binding, false, "WebhooksRemoved", "Delete", format!("removed {removed} webhooks")).await;
            }
            Err((slug, error)) => {
                let outcome = Outcome::from_error(&error);
                let message = format!("cannot remove the webhooks of {slug}: {}", outcome.message);
                write(ctx, api, binding, status, &Outcome { message: message.clone(), ..outcome }).await?;
                return Err(Error::Waiting(message));
            }
        }
    }
    ctx.memo.forget(&key_of(binding));
    Ok(Action::await_change())
}
