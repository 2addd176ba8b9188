//! SonarQubeConfiguration: the login proof on create, on change, on Secret rotation and every
//! resync; status with version, edition, user and capabilities. One SonarQube client per
//! configuration, shared by everything that uses it (its rate limit and the version it read).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Resource, ResourceExt, core::object::HasStatus};

use crate::{
    api::sonarqube::{SonarQubeConfiguration, SonarQubeConfigurationStatus},
    plan::{
        connection::SecretData,
        reasons,
        sonarqube::connection::{
            capability_names, client_config, connected, fingerprint, outcome_of, referenced_secrets, server_info,
        },
        status::{Outcome, Phase},
    },
    sonarqube::{Client, ClientConfig, Error as SonarError},
};

use super::{
    context::Context,
    error::Error,
    reconcile::{Cleanup, EventRule, Kind, Next, Round},
    status,
};

/// The SonarQube clients, by configuration (`namespace/name`). A change to the spec or to a
/// Secret's value gives a new client (the fingerprint changes).
#[derive(Default)]
pub struct SonarQubeClients {
    entries: Mutex<HashMap<String, (u64, Client)>>,
    observer: Option<Arc<dyn crate::bitbucket::Observer>>,
    allowed_hosts: Vec<String>,
    gate: Option<Arc<dyn crate::bitbucket::Gate>>,
}

impl SonarQubeClients {
    /// Clients that report their requests to `observer` and are built only for these hosts.
    pub fn new(observer: Option<Arc<dyn crate::bitbucket::Observer>>, allowed_hosts: Vec<String>) -> Self {
        Self { observer, allowed_hosts, ..Self::default() }
    }

    /// These clients, each asking `gate` before every request.
    pub fn gated_by(self, gate: Arc<dyn crate::bitbucket::Gate>) -> Self {
        Self { gate: Some(gate), ..self }
    }

    /// The client of a configuration for these settings: the same one while they stay the same.
    pub fn client(&self, key: &str, mut config: ClientConfig) -> Result<Client, SonarError> {
        config.observer.clone_from(&self.observer);
        config.allowed_hosts.clone_from(&self.allowed_hosts);
        config.gate.clone_from(&self.gate);
        let wanted = fingerprint(&config);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((current, client)) = entries.get(key)
            && *current == wanted
        {
            return Ok(client.clone());
        }
        let client = Client::new(config)?;
        entries.insert(key.to_owned(), (wanted, client.clone()));
        Ok(client)
    }

    /// The client the last check of a configuration built, if any.
    pub fn current(&self, key: &str) -> Option<Client> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).get(key).map(|(_, client)| client.clone())
    }

    /// Forgets a configuration's client.
    pub fn forget(&self, key: &str) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

impl Kind for SonarQubeConfiguration {
    const KIND: &'static str = "SonarQubeConfiguration";
    const EVENTS: EventRule =
        EventRule { action: "CheckConnection", phases: &[Phase::Ready, Phase::Reconciling, Phase::Stalled] };

    async fn round(ctx: &Context, object: &Self) -> Result<Round<SonarQubeConfigurationStatus>, Error> {
        check(ctx, object).await
    }

    async fn cleanup(ctx: &Context, object: &Self) -> Result<Cleanup<SonarQubeConfigurationStatus>, Error> {
        ctx.sonarqube.forget(&key(object));
        Ok(Cleanup::Done(Vec::new()))
    }
}

/// `namespace/name`.
pub fn key(object: &SonarQubeConfiguration) -> String {
    format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any())
}

/// How often the configuration is checked again.
fn resync_interval(ctx: &Context, object: &SonarQubeConfiguration) -> Duration {
    let interval = Duration::from(object.spec.resync_interval);
    ctx.options.max_resync.map_or(interval, |cap| interval.min(cap)).max(Duration::from_millis(100))
}

/// The connection check.
async fn check(ctx: &Context, object: &SonarQubeConfiguration) -> Result<Round<SonarQubeConfigurationStatus>, Error> {
    let (spec, previous, key) = (&object.spec, object.status(), key(object));
    let interval = resync_interval(ctx, object);
    let mut status =
        SonarQubeConfigurationStatus { observed_generation: object.meta().generation, ..Default::default() };
    let namespace = object.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let mut found = BTreeMap::new();
    for name in referenced_secrets(spec) {
        if let Some(secret) = secrets.get_opt(&name).await? {
            found.insert(name, SecretData::from_secret(&secret));
        }
    }
    let stalled = |status: SonarQubeConfigurationStatus, outcome: Outcome| {
        ctx.sonarqube.forget(&key);
        Ok(Round::finished(status, outcome, interval))
    };
    let config = match client_config(spec, &namespace, |name| found.get(name).cloned()) {
        Ok(config) => config,
        Err(error) => return stalled(status, Outcome::stalled(error.reason(), error.to_string())),
    };
    let host = match crate::bitbucket::host_of(&spec.url) {
        Ok(host) => host,
        Err(error) => return stalled(status, Outcome::stalled(reasons::INVALID_CONFIGURATION, error.to_string())),
    };
    if !crate::bitbucket::host_allowed(&host, &ctx.options.allowed_hosts) {
        let message = format!(
            "the operator may not send credentials to {host}: it is not among the allowed hosts ({}); use an allowed URL or ask the operator's administrators to allow it",
            ctx.options.allowed_hosts.join(", ")
        );
        return stalled(status, Outcome::stalled(reasons::HOST_NOT_ALLOWED, message));
    }
    let client = match ctx.sonarqube.client(&key, config) {
        Ok(client) => client,
        Err(error) => return stalled(status, outcome_of(&error)),
    };
    match client.server_info().await {
        Ok(info) => {
            status.server = Some(server_info(&info));
            status.authenticated_as = info.user.login.clone();
            status.capabilities = capability_names(&info);
            status.last_checked_time = keep_recent_check_time(&status, previous, interval);
            Ok(Round::finished(status, connected(&info), interval))
        }
        Err(error) => {
            // What the last good check learnt stays, so `kubectl get` still shows the server.
            if let Some(previous) = previous {
                status.server.clone_from(&previous.server);
                status.authenticated_as.clone_from(&previous.authenticated_as);
                status.capabilities.clone_from(&previous.capabilities);
                status.last_checked_time.clone_from(&previous.last_checked_time);
            }
            let outcome = outcome_of(&error);
            let next = if outcome.phase == Phase::Reconciling {
                Next::Retry(Error::SonarQube(error))
            } else {
                Next::Resync(interval)
            };
            Ok(Round { status, outcome, next, notices: Vec::new(), corrected: 0 })
        }
    }
}

/// `lastCheckedTime` is refreshed at most every half resync interval while the check finds
/// what the last one found, so that a resync that changes nothing writes nothing.
fn keep_recent_check_time(
    status: &SonarQubeConfigurationStatus,
    previous: Option<&SonarQubeConfigurationStatus>,
    interval: Duration,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    let now = Some(status::now());
    let Some(previous) = previous else { return now };
    let Some(checked) = previous.last_checked_time.as_ref() else { return now };
    let same = previous.server == status.server
        && previous.authenticated_as == status.authenticated_as
        && previous.capabilities == status.capabilities;
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(checked.0);
    let recent = age.is_positive() && age.unsigned_abs() < interval / 2;
    if same && recent { Some(checked.clone()) } else { now }
}
