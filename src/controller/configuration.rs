//! BitbucketConfiguration and ClusterBitbucketConfiguration: the connection check on create, on
//! change, on Secret rotation and every resync; status with server, identity and capabilities.
//! Deletion waits while bindings still use the configuration.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Resource, ResourceExt,
    runtime::{controller::Action, finalizer},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    api::{
        BitbucketConfiguration, BitbucketConfigurationSpec, ClusterBitbucketConfiguration, ConfigurationStatus,
        configuration::ServerInfo, refs::ConfigurationKind,
    },
    plan::{
        connection::{SecretData, client_config, referenced_secrets},
        reasons,
        status::{Outcome, Phase, reason_for},
    },
};

use super::{
    Error, FINALIZER,
    clients::ConfigurationKey,
    context::{Context, jittered, key_of},
    status,
};

/// Reconciles a BitbucketConfiguration.
pub async fn reconcile_namespaced(object: Arc<BitbucketConfiguration>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = tokio::time::Instant::now();
    let namespace = object.namespace().unwrap_or_default();
    if !super::in_scope(&ctx, &namespace) {
        return Ok(Action::await_change());
    }
    let api: Api<BitbucketConfiguration> = Api::namespaced(ctx.kube.clone(), &namespace);
    let key = ConfigurationKey {
        kind: ConfigurationKind::BitbucketConfiguration,
        namespace: Some(namespace.clone()),
        name: object.name_any(),
    };
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            finalizer::Event::Apply(object) => {
                let spec = object.spec.clone();
                let status = object.status.clone();
                check(&ctx, &api, object.as_ref(), &spec, status.as_ref(), &key, &namespace).await
            }
            finalizer::Event::Cleanup(object) => {
                let status = object.status.clone();
                let spec = object.spec.clone();
                cleanup(&ctx, &api, object.as_ref(), status.as_ref(), &key, &spec, &namespace).await
            }
        }
    })
    .await
    .map_err(Error::from_finalizer);
    super::measured(&ctx, "BitbucketConfiguration", started, result)
}

/// Reconciles a ClusterBitbucketConfiguration (its Secrets live in the operator's namespace).
pub async fn reconcile_cluster(object: Arc<ClusterBitbucketConfiguration>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = tokio::time::Instant::now();
    let api: Api<ClusterBitbucketConfiguration> = Api::all(ctx.kube.clone());
    let key = ConfigurationKey {
        kind: ConfigurationKind::ClusterBitbucketConfiguration,
        namespace: None,
        name: object.name_any(),
    };
    let namespace = ctx.options.operator_namespace.clone();
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            finalizer::Event::Apply(object) => {
                let spec = object.spec.connection.clone();
                let status = object.status.clone();
                check(&ctx, &api, object.as_ref(), &spec, status.as_ref(), &key, &namespace).await
            }
            finalizer::Event::Cleanup(object) => {
                let status = object.status.clone();
                let spec = object.spec.connection.clone();
                cleanup(&ctx, &api, object.as_ref(), status.as_ref(), &key, &spec, &namespace).await
            }
        }
    })
    .await
    .map_err(Error::from_finalizer);
    super::measured(&ctx, "ClusterBitbucketConfiguration", started, result)
}

/// The resync interval of a configuration, capped by the operator's `max_resync`.
pub fn resync_interval(ctx: &Context, spec: &BitbucketConfigurationSpec) -> Duration {
    let interval = Duration::from(spec.resync_interval);
    ctx.options.max_resync.map_or(interval, |cap| interval.min(cap)).max(Duration::from_millis(100))
}

async fn check<K>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    spec: &BitbucketConfigurationSpec,
    previous: Option<&ConfigurationStatus>,
    key: &ConfigurationKey,
    secrets_namespace: &str,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let memo_key = key_of(object);
    let generation = object.meta().generation;
    let interval = resync_interval(ctx, spec);
    if let Err(wait) = ctx.memo.due(&memo_key, generation) {
        return Ok(Action::requeue(wait));
    }

    let mut status = ConfigurationStatus { observed_generation: generation, ..Default::default() };
    let config = match settings(ctx, spec, secrets_namespace).await? {
        Ok(config) => config,
        Err(error) => {
            ctx.clients.forget(key);
            let outcome = Outcome::stalled(error.reason(), error.to_string());
            return finish(ctx, api, object, previous, status, &outcome, interval).await;
        }
    };
    if !crate::plan::connection::host_allowed(&spec.url, &ctx.options.allowed_hosts) {
        ctx.clients.forget(key);
        let host = crate::plan::connection::host_of(&spec.url).unwrap_or_default();
        let outcome = Outcome::stalled(
            reasons::HOST_NOT_ALLOWED,
            format!(
                "the operator may not send credentials to {host}: it is not among the allowed Bitbucket hosts ({}); use an allowed URL or ask the operator's administrators to allow it",
                ctx.options.allowed_hosts.join(", ")
            ),
        );
        return finish(ctx, api, object, previous, status, &outcome, interval).await;
    }
    let connection = match ctx.clients.check(key, config, Duration::ZERO).await {
        Ok((connection, _)) => connection,
        Err(error) => {
            ctx.clients.forget(key);
            let outcome = Outcome::stalled(reason_for(&error), error.to_string());
            return finish(ctx, api, object, previous, status, &outcome, interval).await;
        }
    };
    status.last_checked_time = Some(status::now());
    let outcome = match (&connection.identity, &connection.error) {
        (Some(identity), None) => {
            status.server = Some(ServerInfo {
                version: identity.version_text.clone(),
                build_number: identity.build_number.clone(),
                display_name: identity.display_name.clone(),
            });
            status.authenticated_as = Some(identity.username.clone());
            if identity.capabilities.webhooks {
                status.capabilities.push("webhooks".into());
            }
            if identity.capabilities.code_insights {
                status.capabilities.push("codeInsights".into());
            }
            Outcome::ready(
                reasons::CONNECTED,
                format!("connected to Bitbucket {} as {}", identity.version_text, identity.username),
            )
        }
        (_, Some(error)) => {
            // Keep what the last good check learnt, so `kubectl get` still shows the server.
            if let Some(previous) = previous {
                status.server = previous.server.clone();
                status.authenticated_as = previous.authenticated_as.clone();
                status.capabilities = previous.capabilities.clone();
            }
            let outcome = Outcome::from_error(error);
            if outcome.phase == Phase::Reconciling {
                write(ctx, api, object, previous, status, &outcome).await?;
                return Err(Error::Bitbucket(error.clone()));
            }
            outcome
        }
        (None, None) => Outcome::reconciling(reasons::PROGRESSING, "checking the connection"),
    };
    finish(ctx, api, object, previous, status, &outcome, interval).await
}

/// Writes status, records the round and schedules the next resync.
async fn finish<K>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    previous: Option<&ConfigurationStatus>,
    status: ConfigurationStatus,
    outcome: &Outcome,
    interval: Duration,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    write(ctx, api, object, previous, status, outcome).await?;
    let key = key_of(object);
    ctx.backoff.reset(&key);
    let next = jittered(interval);
    ctx.memo.done(&key, object.meta().generation, next);
    Ok(Action::requeue(next))
}

async fn write<K>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    previous: Option<&ConfigurationStatus>,
    mut status: ConfigurationStatus,
    outcome: &Outcome,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let old = previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    if outcome.phase == Phase::Stalled {
        let kind = if K::kind(&()) == "ClusterBitbucketConfiguration" {
            "ClusterBitbucketConfiguration"
        } else {
            "BitbucketConfiguration"
        };
        ctx.options.telemetry.stalled(kind, outcome.reason);
    }
    status.observed_generation = object.meta().generation;
    status.conditions = status::conditions_for(object, old, outcome);
    let old_reason = crate::api::conditions::find(old, crate::api::conditions::READY).map(|c| c.reason.clone());
    if old_reason.as_deref() != Some(outcome.reason) {
        let warning = outcome.phase != Phase::Ready;
        ctx.event(object, warning, outcome.reason, "CheckConnection", &outcome.message).await;
    }
    status::apply(api, object, &status).await
}

/// The client settings from the spec and the Secrets it names.
async fn settings(
    ctx: &Context,
    spec: &BitbucketConfigurationSpec,
    secrets_namespace: &str,
) -> Result<Result<crate::bitbucket::ClientConfig, crate::plan::connection::ConnectionError>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), secrets_namespace);
    let mut found = BTreeMap::new();
    for name in referenced_secrets(spec) {
        if let Some(secret) = secrets.get_opt(&name).await? {
            found.insert(name, SecretData::from_secret(&secret));
        }
    }
    Ok(client_config(spec, secrets_namespace, |name| found.get(name).cloned()))
}

async fn cleanup<K>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    previous: Option<&ConfigurationStatus>,
    key: &ConfigurationKey,
    spec: &BitbucketConfigurationSpec,
    secrets_namespace: &str,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let users: Vec<String> = ctx
        .stores
        .bindings
        .state()
        .iter()
        .filter(|b| super::binding::uses(b, key))
        .map(|b| format!("{}/{}", b.namespace().unwrap_or_default(), b.name_any()))
        .collect();
    if !users.is_empty() {
        let message = format!(
            "still used by ProjectBinding {}; delete those first (their webhooks and checks need this configuration to be removed)",
            users.join(", ")
        );
        // Its users clean up with its client: after a restart, there is none until checked.
        if !ctx.clients.current(key).await.is_some_and(|c| c.is_ready())
            && let Ok(config) = settings(ctx, spec, secrets_namespace).await?
        {
            let _ = ctx.clients.check(key, config, Duration::ZERO).await;
        }
        let status = previous.cloned().unwrap_or_default();
        write(ctx, api, object, previous, status, &Outcome::reconciling(reasons::IN_USE, message.clone())).await?;
        return Err(Error::Waiting(message));
    }
    ctx.clients.remove(key);
    ctx.memo.forget(&key_of(object));
    Ok(Action::await_change())
}
