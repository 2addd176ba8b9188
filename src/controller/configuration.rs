//! BitbucketConfiguration and ClusterBitbucketConfiguration: the connection check on create, on
//! change, on Secret rotation and every resync; status with server, identity and capabilities.
//! Deletion waits while bindings still use the configuration.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Condition};
use kube::{Api, Resource, ResourceExt};

use crate::{
    api::{
        BitbucketConfiguration, BitbucketConfigurationSpec, ClusterBitbucketConfiguration, ConfigurationStatus,
        configuration::ServerInfo, refs::ConfigurationKind,
    },
    plan::{
        connection::{SecretData, client_config, host_allowed, host_of, referenced_secrets},
        reasons,
        status::{Outcome, Phase, reason_for},
    },
};

use super::{
    Error,
    clients::ConfigurationKey,
    context::Context,
    reconcile::{Cleanup, EventRule, Kind, Next, Round},
    references::{resync_interval, users_of},
    status,
};

const EVENTS: EventRule =
    EventRule { action: "CheckConnection", phases: &[Phase::Ready, Phase::Reconciling, Phase::Stalled] };

impl Kind for BitbucketConfiguration {
    const KIND: &'static str = "BitbucketConfiguration";
    const EVENTS: EventRule = EVENTS;
    type Status = ConfigurationStatus;

    fn status(&self) -> Option<&ConfigurationStatus> {
        self.status.as_ref()
    }

    fn conditions(status: &ConfigurationStatus) -> &[Condition] {
        &status.conditions
    }

    fn stamp(status: &mut ConfigurationStatus, generation: Option<i64>, conditions: Vec<Condition>) {
        status.observed_generation = generation;
        status.conditions = conditions;
    }

    fn api(ctx: &Context, object: &Self) -> Api<Self> {
        Api::namespaced(ctx.kube.clone(), &object.namespace().unwrap_or_default())
    }

    fn in_scope(ctx: &Context, object: &Self) -> bool {
        super::in_scope(ctx, &object.namespace().unwrap_or_default())
    }

    async fn round(ctx: &Context, object: &Self) -> Result<Round<ConfigurationStatus>, Error> {
        let namespace = object.namespace().unwrap_or_default();
        check(ctx, object, &object.spec, object.status.as_ref(), &key(object), &namespace).await
    }

    async fn cleanup(ctx: &Context, object: &Self) -> Result<Cleanup<ConfigurationStatus>, Error> {
        let namespace = object.namespace().unwrap_or_default();
        wait_for_users(ctx, &object.spec, object.status.as_ref(), &key(object), &namespace).await
    }
}

impl Kind for ClusterBitbucketConfiguration {
    const KIND: &'static str = "ClusterBitbucketConfiguration";
    const EVENTS: EventRule = EVENTS;
    type Status = ConfigurationStatus;

    fn status(&self) -> Option<&ConfigurationStatus> {
        self.status.as_ref()
    }

    fn conditions(status: &ConfigurationStatus) -> &[Condition] {
        &status.conditions
    }

    fn stamp(status: &mut ConfigurationStatus, generation: Option<i64>, conditions: Vec<Condition>) {
        status.observed_generation = generation;
        status.conditions = conditions;
    }

    fn api(ctx: &Context, _: &Self) -> Api<Self> {
        Api::all(ctx.kube.clone())
    }

    fn in_scope(_: &Context, _: &Self) -> bool {
        true
    }

    /// Its Secrets live in the operator's namespace.
    async fn round(ctx: &Context, object: &Self) -> Result<Round<ConfigurationStatus>, Error> {
        let namespace = ctx.options.operator_namespace.clone();
        check(ctx, object, &object.spec.connection, object.status.as_ref(), &key(object), &namespace).await
    }

    async fn cleanup(ctx: &Context, object: &Self) -> Result<Cleanup<ConfigurationStatus>, Error> {
        let namespace = ctx.options.operator_namespace.clone();
        wait_for_users(ctx, &object.spec.connection, object.status.as_ref(), &key(object), &namespace).await
    }
}

/// The key of a configuration of either kind.
pub fn key<K: Resource<DynamicType = ()>>(object: &K) -> ConfigurationKey {
    let kind = if K::kind(&()) == ClusterBitbucketConfiguration::kind(&()) {
        ConfigurationKind::ClusterBitbucketConfiguration
    } else {
        ConfigurationKind::BitbucketConfiguration
    };
    ConfigurationKey { kind, namespace: object.meta().namespace.clone(), name: object.name_any() }
}

async fn check<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    spec: &BitbucketConfigurationSpec,
    previous: Option<&ConfigurationStatus>,
    key: &ConfigurationKey,
    secrets_namespace: &str,
) -> Result<Round<ConfigurationStatus>, Error> {
    let interval = resync_interval(&ctx.options, spec);
    let status = ConfigurationStatus { observed_generation: object.meta().generation, ..Default::default() };
    let stalled = |outcome: Outcome| {
        ctx.clients.forget(key);
        Ok(Round::finished(status.clone(), outcome, interval))
    };
    let config = match settings(ctx, spec, secrets_namespace).await? {
        Ok(config) => config,
        Err(error) => return stalled(Outcome::stalled(error.reason(), error.to_string())),
    };
    if !host_allowed(&spec.url, &ctx.options.allowed_hosts) {
        let host = host_of(&spec.url).unwrap_or_default();
        return stalled(Outcome::stalled(
            reasons::HOST_NOT_ALLOWED,
            format!(
                "the operator may not send credentials to {host}: it is not among the allowed Bitbucket hosts ({}); use an allowed URL or ask the operator's administrators to allow it",
                ctx.options.allowed_hosts.join(", ")
            ),
        ));
    }
    let connection = match ctx.clients.check(key, config, Duration::ZERO).await {
        Ok((connection, _)) => connection,
        Err(error) => return stalled(Outcome::stalled(reason_for(&error), error.to_string())),
    };
    let mut status = status;
    status.last_checked_time = Some(status::now());
    let (outcome, next) = match (&connection.identity, &connection.error) {
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
            let message = format!("connected to Bitbucket {} as {}", identity.version_text, identity.username);
            (Outcome::ready(reasons::CONNECTED, message), Next::Resync(interval))
        }
        (_, Some(error)) => {
            // Keep what the last good check learnt, so `kubectl get` still shows the server.
            if let Some(previous) = previous {
                status.server = previous.server.clone();
                status.authenticated_as = previous.authenticated_as.clone();
                status.capabilities = previous.capabilities.clone();
            }
            let outcome = Outcome::from_error(error);
            let next =
                if outcome.phase == Phase::Reconciling { Next::Retry(error.clone()) } else { Next::Resync(interval) };
            (outcome, next)
        }
        (None, None) => (Outcome::reconciling(reasons::PROGRESSING, "checking the connection"), Next::Resync(interval)),
    };
    keep_recent_check_time(&mut status, previous, &outcome, interval);
    Ok(Round { status, outcome, next, notices: Vec::new(), corrected: 0 })
}

/// `lastCheckedTime` says when the connection was last proven as the status describes it; it is
/// refreshed at most every half resync interval, so that a check that finds what the last one
/// found (a restart, a Secret touched without change) writes nothing.
fn keep_recent_check_time(
    status: &mut ConfigurationStatus,
    previous: Option<&ConfigurationStatus>,
    outcome: &Outcome,
    interval: Duration,
) {
    let Some(previous) = previous else { return };
    let Some(checked) = previous.last_checked_time.as_ref() else { return };
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(checked.0);
    let recent = age.is_positive() && age.unsigned_abs() < interval / 2;
    let ready = crate::api::conditions::find(&previous.conditions, crate::api::conditions::READY);
    let same_outcome = ready.is_some_and(|c| c.reason == outcome.reason && c.message == outcome.message);
    let same = ConfigurationStatus {
        conditions: previous.conditions.clone(),
        last_checked_time: previous.last_checked_time.clone(),
        ..status.clone()
    } == *previous;
    if recent && same_outcome && same {
        status.last_checked_time = previous.last_checked_time.clone();
    }
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

/// A configuration goes once no binding uses it; until then it keeps serving them a proven
/// client (after a restart, it proves one for them first).
async fn wait_for_users(
    ctx: &Context,
    spec: &BitbucketConfigurationSpec,
    previous: Option<&ConfigurationStatus>,
    key: &ConfigurationKey,
    secrets_namespace: &str,
) -> Result<Cleanup<ConfigurationStatus>, Error> {
    let users = users_of(&ctx.stores, key);
    if users.is_empty() {
        ctx.clients.remove(key);
        return Ok(Cleanup::Done(Vec::new()));
    }
    let message = format!(
        "still used by ProjectBinding {}; delete those first (their webhooks and checks need this configuration to be removed)",
        users.join(", ")
    );
    if !ctx.clients.current(key).await.is_some_and(|c| c.is_ready())
        && let Ok(config) = settings(ctx, spec, secrets_namespace).await?
    {
        let _ = ctx.clients.check(key, config, Duration::ZERO).await;
    }
    Ok(Cleanup::Waiting(previous.cloned().unwrap_or_default(), Outcome::reconciling(reasons::IN_USE, message)))
}
