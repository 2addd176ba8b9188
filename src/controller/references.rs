//! Following references through the stores: the configuration of a binding (and the client to
//! use with it), the binding of a report, and the other way round, the users that keep an object
//! from being deleted. The decisions themselves ("is this configuration usable", "can this
//! binding's repositories be trusted") are [`crate::plan::dependencies`]'.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, ResourceExt, runtime::reflector::ObjectRef};

use crate::{
    api::{BitbucketConfigurationSpec, ProjectBinding, RequiredBuild, RequiredReport, refs::ConfigurationKind},
    bitbucket::Client,
    plan::{
        dependencies::{ConfigurationState, Recheck, configuration_usable},
        status::Outcome,
    },
};

use super::{
    clients::ConfigurationKey,
    context::FINALIZER,
    context::{Context, Options},
    error::Error,
    stores::Stores,
};

/// How long a reference that does not resolve (a missing object, a namespace not allowed) waits
/// before it is looked at again; a change of the missing object wakes it sooner.
pub const UNRESOLVED_RECHECK: Duration = Duration::from_secs(600);

/// How long a dependent waits before it looks again at what blocks it (`interval` is the
/// resync interval of the dependency).
pub fn recheck_after(options: &Options, recheck: Recheck, interval: Duration) -> Duration {
    match recheck {
        Recheck::OnChange => UNRESOLVED_RECHECK,
        Recheck::Resync => interval,
        Recheck::Soon => options.wait_delay,
        Recheck::Later => options.wait_delay.max(Duration::from_secs(60)),
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

/// Whether a binding refers to a configuration.
pub fn uses(binding: &ProjectBinding, key: &ConfigurationKey) -> bool {
    configuration_key(binding) == *key
}

/// The resync interval of a configuration, capped by the operator's `max_resync`.
pub fn resync_interval(options: &Options, spec: &BitbucketConfigurationSpec) -> Duration {
    let interval = Duration::from(spec.resync_interval);
    options.max_resync.map_or(interval, |cap| interval.min(cap)).max(Duration::from_millis(100))
}

/// The bindings (as `namespace/name`) that use a configuration.
pub fn users_of(stores: &Stores, key: &ConfigurationKey) -> Vec<String> {
    stores
        .bindings
        .state()
        .iter()
        .filter(|b| uses(b, key))
        .map(|b| format!("{}/{}", b.namespace().unwrap_or_default(), b.name_any()))
        .collect()
}

/// A kind that works on the repositories of one ProjectBinding of its namespace (its
/// `bindingRef`): the merge checks.
pub trait UsesBinding: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static {
    /// The kind's name.
    const KIND: &'static str;
    /// The name of the binding it uses.
    fn binding_name(&self) -> &str;
}

impl UsesBinding for RequiredReport {
    const KIND: &'static str = "RequiredReport";
    fn binding_name(&self) -> &str {
        &self.spec.binding_ref.name
    }
}

impl UsesBinding for RequiredBuild {
    const KIND: &'static str = "RequiredBuild";
    fn binding_name(&self) -> &str {
        &self.spec.binding_ref.name
    }
}

/// Whether `object` uses `binding`.
pub fn uses_binding<K: UsesBinding>(object: &K, binding: &ProjectBinding) -> bool {
    object.namespace() == binding.namespace() && object.binding_name() == binding.name_any()
}

/// The objects that use a binding, by name: they keep it from being deleted and are woken when
/// what it resolved changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dependents {
    /// RequiredReports.
    pub reports: Vec<String>,
    /// RequiredBuilds.
    pub builds: Vec<String>,
}

impl Dependents {
    /// Whether nothing uses the binding.
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty() && self.builds.is_empty()
    }

    /// `RequiredReport a, b and RequiredBuild c`.
    pub fn describe(&self) -> String {
        let kinds = [("RequiredReport", &self.reports), ("RequiredBuild", &self.builds)];
        let parts: Vec<String> = kinds
            .iter()
            .filter(|(_, names)| !names.is_empty())
            .map(|(kind, names)| format!("{kind} {}", names.join(", ")))
            .collect();
        parts.join(" and ")
    }
}

/// What uses a binding.
pub fn dependents_of(stores: &Stores, binding: &ProjectBinding) -> Dependents {
    fn named<K: UsesBinding>(store: &kube::runtime::reflector::Store<K>, binding: &ProjectBinding) -> Vec<String> {
        store.state().iter().filter(|o| uses_binding(o.as_ref(), binding)).map(|o| o.name_any()).collect()
    }
    Dependents { reports: named(&stores.reports, binding), builds: named(&stores.builds, binding) }
}

/// The binding an object refers to.
pub fn binding_of<K: UsesBinding>(stores: &Stores, object: &K) -> Option<Arc<ProjectBinding>> {
    let reference = ObjectRef::new(object.binding_name()).within(&object.namespace().unwrap_or_default());
    stores.bindings.get(&reference)
}

/// Where a binding stands with its configuration.
pub enum Connected {
    /// The client to use, and how often to resync.
    Ready(Client, Duration),
    /// Not usable: the outcome that says why, and how soon to look again.
    NotReady(Outcome, Duration),
    /// Usable as far as its status says, but this process has not finished its own connection
    /// check yet (just after a start): nothing to conclude, look again after this long.
    Pending(Duration),
}

/// The client of a binding's configuration, if the configuration exists, admits the binding's
/// namespace, and passed its connection check.
pub async fn connect(ctx: &Context, binding: &ProjectBinding) -> Result<Connected, Error> {
    let key = configuration_key(binding);
    let namespace = binding.namespace().unwrap_or_default();
    let state = match key.kind {
        ConfigurationKind::BitbucketConfiguration => {
            let reference = ObjectRef::new(&key.name).within(&namespace);
            ctx.stores.configurations.get(&reference).map(|c| {
                let state = ConfigurationState {
                    status: c.status.clone(),
                    generation: c.metadata.generation,
                    deleting: c.metadata.deletion_timestamp.is_some(),
                    admits_namespace: true,
                };
                (state, c.spec.clone())
            })
        }
        ConfigurationKind::ClusterBitbucketConfiguration => {
            match ctx.stores.cluster_configurations.get(&ObjectRef::new(&key.name)) {
                None => None,
                Some(c) => {
                    let labels = Api::<Namespace>::all(ctx.kube.clone())
                        .get_opt(&namespace)
                        .await?
                        .and_then(|n| n.metadata.labels)
                        .unwrap_or_default();
                    let state = ConfigurationState {
                        status: c.status.clone(),
                        generation: c.metadata.generation,
                        deleting: c.metadata.deletion_timestamp.is_some(),
                        admits_namespace: c.spec.allowed_namespaces.admits(&namespace, &labels),
                    };
                    Some((state, c.spec.connection.clone()))
                }
            }
        }
    };
    let interval = state.as_ref().map_or(UNRESOLVED_RECHECK, |(_, spec)| resync_interval(&ctx.options, spec));
    if let Err(verdict) = configuration_usable(&key.to_string(), &namespace, state.as_ref().map(|(s, _)| s)) {
        return Ok(Connected::NotReady(verdict.outcome, recheck_after(&ctx.options, verdict.recheck, interval)));
    }
    // The status says the check passed; the client is this process's own.
    match ctx.clients.checked(&key, ctx.options.wait_delay).await {
        Some(connection) if connection.is_ready() => Ok(Connected::Ready(connection.client, interval)),
        // Not checked yet, or this process's check failed and the configuration's status is
        // about to say so (which wakes the binding): nothing to conclude yet.
        _ => Ok(Connected::Pending(ctx.options.wait_delay)),
    }
}

/// The client a cleanup removes what it made with, or the outcome to wait in: `what` names what
/// it removes ("the binding's webhooks", "the checks").
pub async fn cleanup_client(
    ctx: &Context,
    binding: &ProjectBinding,
    what: &str,
) -> Result<Result<Client, Outcome>, Error> {
    Ok(match connect(ctx, binding).await? {
        Connected::Ready(client, _) => Ok(client),
        Connected::NotReady(outcome, _) => {
            let message = format!(
                "cannot remove {what}: {}; fix that, or remove the finalizer {FINALIZER} to leave them in Bitbucket",
                outcome.message
            );
            Err(Outcome::stalled(outcome.reason, message))
        }
        Connected::Pending(_) => Err(Outcome::reconciling(
            crate::plan::reasons::DELETING,
            format!("waiting for the connection check of its configuration to remove {what}"),
        )),
    })
}

/// The SonarQube side of a binding's configuration (`spec.sonarqube` there), as the stores
/// show it.
#[derive(Clone, Debug)]
pub struct SonarQubeSide {
    /// The configuration's `spec.sonarqube` block.
    pub block: crate::api::sonarqube::SonarQubeIntegration,
    /// The configuration's `status.sonarqube`: the setting as last kept, absent until it exists.
    pub record: Option<crate::api::sonarqube::SonarQubeIntegrationStatus>,
    /// The configuration's conditions.
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// Whether those conditions are about the configuration's current generation.
    pub current: bool,
    /// `namespace/name` of the SonarQubeConfiguration the block names.
    pub configuration: String,
    /// That SonarQubeConfiguration, if it exists.
    pub sonarqube: Option<Arc<crate::api::SonarQubeConfiguration>>,
}

/// The SonarQube side of a binding's configuration; `None` when the configuration does not
/// exist or has no `sonarqube` block.
pub fn sonarqube_side(ctx: &Context, binding: &ProjectBinding) -> Option<SonarQubeSide> {
    let key = configuration_key(binding);
    let namespace = binding.namespace().unwrap_or_default();
    let (block, status, generation, sonar_namespace) = match key.kind {
        ConfigurationKind::BitbucketConfiguration => {
            let c = ctx.stores.configurations.get(&ObjectRef::new(&key.name).within(&namespace))?;
            (c.spec.sonarqube.clone()?, c.status.clone(), c.metadata.generation, namespace)
        }
        ConfigurationKind::ClusterBitbucketConfiguration => {
            let c = ctx.stores.cluster_configurations.get(&ObjectRef::new(&key.name))?;
            (
                c.spec.connection.sonarqube.clone()?,
                c.status.clone(),
                c.metadata.generation,
                ctx.options.operator_namespace.clone(),
            )
        }
    };
    let current =
        status.as_ref().is_some_and(|s| s.observed_generation.is_some() && s.observed_generation == generation);
    let (record, conditions) = status.map(|s| (s.sonarqube, s.conditions)).unwrap_or_default();
    let name = block.configuration_ref.name.clone();
    let sonarqube = ctx.stores.sonarqube_configurations.get(&ObjectRef::new(&name).within(&sonar_namespace));
    Some(SonarQubeSide {
        block,
        record,
        conditions,
        current,
        configuration: format!("{sonar_namespace}/{name}"),
        sonarqube,
    })
}
