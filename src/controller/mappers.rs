//! Watches that follow references: a Secret change re-reconciles the configurations and
//! bindings that read it; a configuration change (new generation, readiness or client), its
//! bindings; a binding's deletion, its required reports and builds; a change of what proves SonarQube will
//! post a report (a SonarQubeConfiguration's check, a configuration's SonarQube side), the
//! required reports of the configuration's bindings. Changes that
//! matter mark the dependents dirty, so their next reconcile talks to Bitbucket; the operator's
//! own status writes do not. A binding's round wakes its reports and builds itself (`inventories`).

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};

use crate::{
    api::{
        BitbucketConfiguration, ClusterBitbucketConfiguration, ConfigurationStatus, ProjectBinding, RequiredReport,
        conditions::{READY, STALLED, find},
    },
    plan::connection::referenced_secrets,
};

use super::{
    clients::Clients,
    clients::ConfigurationKey,
    configuration::ConfigurationObject,
    context::{Memo, key_of},
    references::{UsesBinding, configuration_key, uses, uses_binding},
    stores::Stores,
};

/// Remembers a fingerprint per object and says whether it changed.
#[derive(Default)]
struct Seen(Mutex<HashMap<String, u64>>);

impl Seen {
    fn changed(&self, key: String, value: impl Hash) -> bool {
        let (before, now) = self.swap(key, value);
        before != Some(now)
    }

    /// Whether it changed since it was first seen: the first sighting (the start of the watch, or
    /// a new object) is no change.
    fn moved(&self, key: String, value: impl Hash) -> bool {
        let (before, now) = self.swap(key, value);
        before.is_some_and(|before| before != now)
    }

    fn swap(&self, key: String, value: impl Hash) -> (Option<u64>, u64) {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        let fingerprint = hasher.finish();
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (seen.insert(key, fingerprint), fingerprint)
    }
}

/// The objects of `store` that `depends` says depend on the change; each is marked dirty so
/// that its next reconcile talks to Bitbucket.
fn dependents<K>(
    store: &kube::runtime::reflector::Store<K>,
    memo: &Memo,
    depends: impl Fn(&K) -> bool,
) -> Vec<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|o| depends(o.as_ref()))
        .map(|o| {
            memo.mark_dirty(&key_of(o.as_ref()));
            ObjectRef::from_obj(o.as_ref())
        })
        .collect()
}

pub fn secret_to_configurations(
    stores: &Stores,
    memo: &Arc<Memo>,
) -> impl Fn(Arc<Secret>) -> Vec<ObjectRef<BitbucketConfiguration>> + Send + Sync + 'static {
    let store = stores.configurations.clone();
    let memo = memo.clone();
    move |secret| {
        let namespace = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        dependents(&store, &memo, |c| {
            c.namespace().as_deref() == Some(namespace.as_str()) && referenced_secrets(&c.spec).contains(&name)
        })
    }
}

pub fn secret_to_sonarqube_configurations(
    stores: &Stores,
    memo: &Arc<Memo>,
) -> impl Fn(Arc<Secret>) -> Vec<ObjectRef<crate::api::SonarQubeConfiguration>> + Send + Sync + 'static {
    let store = stores.sonarqube_configurations.clone();
    let memo = memo.clone();
    move |secret| {
        let namespace = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        dependents(&store, &memo, |c| {
            c.namespace().as_deref() == Some(namespace.as_str())
                && crate::plan::sonarqube::connection::referenced_secrets(&c.spec).contains(&name)
        })
    }
}

/// The Bitbucket configurations whose `sonarqube` block names a SonarQubeConfiguration: they
/// keep SonarQube's setting once it is Ready (and again when it changes).
pub fn sonarqube_to_configurations(
    stores: &Stores,
    memo: &Arc<Memo>,
) -> impl Fn(Arc<crate::api::SonarQubeConfiguration>) -> Vec<ObjectRef<BitbucketConfiguration>> + Send + Sync + 'static
{
    let store = stores.configurations.clone();
    let memo = memo.clone();
    move |sonar| {
        let namespace = sonar.namespace().unwrap_or_default();
        let name = sonar.name_any();
        dependents(&store, &memo, |c| {
            c.namespace().as_deref() == Some(namespace.as_str())
                && c.spec.sonarqube.as_ref().is_some_and(|s| s.configuration_ref.name == name)
        })
    }
}

/// [`sonarqube_to_configurations`] for cluster configurations, whose SonarQubeConfigurations
/// live in the operator's namespace.
pub fn sonarqube_to_cluster_configurations(
    stores: &Stores,
    memo: &Arc<Memo>,
    operator_namespace: String,
) -> impl Fn(Arc<crate::api::SonarQubeConfiguration>) -> Vec<ObjectRef<ClusterBitbucketConfiguration>> + Send + Sync + 'static
{
    let store = stores.cluster_configurations.clone();
    let memo = memo.clone();
    move |sonar| {
        if sonar.namespace().as_deref() != Some(operator_namespace.as_str()) {
            return Vec::new();
        }
        let name = sonar.name_any();
        dependents(&store, &memo, |c| {
            c.spec.connection.sonarqube.as_ref().is_some_and(|s| s.configuration_ref.name == name)
        })
    }
}

pub fn secret_to_cluster_configurations(
    stores: &Stores,
    memo: &Arc<Memo>,
    operator_namespace: String,
) -> impl Fn(Arc<Secret>) -> Vec<ObjectRef<ClusterBitbucketConfiguration>> + Send + Sync + 'static {
    let store = stores.cluster_configurations.clone();
    let memo = memo.clone();
    move |secret| {
        if secret.namespace().as_deref() != Some(operator_namespace.as_str()) {
            return Vec::new();
        }
        let name = secret.name_any();
        dependents(&store, &memo, |c| referenced_secrets(&c.spec.connection).contains(&name))
    }
}

pub fn secret_to_bindings(
    stores: &Stores,
    memo: &Arc<Memo>,
) -> impl Fn(Arc<Secret>) -> Vec<ObjectRef<ProjectBinding>> + Send + Sync + 'static {
    let store = stores.bindings.clone();
    let memo = memo.clone();
    move |secret| {
        let namespace = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        dependents(&store, &memo, |b| {
            b.namespace().as_deref() == Some(namespace.as_str())
                && b.spec.webhooks.iter().any(|w| w.secret_ref.as_ref().is_some_and(|r| r.name == name))
        })
    }
}

/// What of a configuration its bindings depend on: its generation, readiness, client, and (for
/// a cluster configuration) the namespaces it allows.
fn configuration_state(
    generation: Option<i64>,
    status: Option<&ConfigurationStatus>,
    epoch: u64,
    allowed: Option<&[String]>,
    exists: bool,
) -> impl Hash {
    let ready = status.and_then(|s| find(&s.conditions, READY)).map(|c| (c.status.clone(), c.reason.clone()));
    // Bindings bind SonarQube projects through the setting this records.
    let setting =
        status.and_then(|s| s.sonarqube.as_ref()).map(|s| (s.configuration.clone(), s.alm_setting_key.clone()));
    (generation, ready, epoch, allowed.map(<[String]>::to_vec), exists, setting)
}

/// A configuration of either kind wakes the bindings that use it when what they depend on
/// changed.
pub fn configuration_to_bindings<K>(
    stores: &Stores,
    own: &Store<K>,
    memo: &Arc<Memo>,
    clients: &Arc<Clients>,
) -> impl Fn(Arc<K>) -> Vec<ObjectRef<ProjectBinding>> + Send + Sync + 'static
where
    K: ConfigurationObject,
{
    let store = stores.bindings.clone();
    let own = own.clone();
    let memo = memo.clone();
    let clients = clients.clone();
    let seen = Seen::default();
    move |configuration| {
        let key = super::configuration::key(configuration.as_ref());
        let state = configuration_state(
            configuration.meta().generation,
            kube::core::object::HasStatus::status(configuration.as_ref()),
            clients.epoch(&key),
            configuration.allowed_names(),
            // Gone from its store: it was deleted.
            own.get(&ObjectRef::from_obj(configuration.as_ref())).is_some(),
        );
        if !seen.changed(key_of(configuration.as_ref()), state) {
            return Vec::new();
        }
        dependents(&store, &memo, |b| uses(b, &key))
    }
}

/// A deleted binding wakes the objects of `store` that use it (a binding's rounds wake them
/// when what it resolved changed: see `inventories`; its status writes do not, so that a check
/// is not read again because its binding finished the webhooks).
pub fn binding_to_dependents<K: UsesBinding>(
    stores: &Stores,
    store: &Store<K>,
    memo: &Arc<Memo>,
) -> impl Fn(Arc<ProjectBinding>) -> Vec<ObjectRef<K>> + Send + Sync + 'static {
    let store = store.clone();
    let bindings = stores.bindings.clone();
    let memo = memo.clone();
    let seen = Seen::default();
    move |binding| {
        // Gone from its store: it was deleted.
        let exists = bindings.get(&ObjectRef::from_obj(binding.as_ref())).is_some();
        if !seen.changed(key_of(binding.as_ref()), exists) || exists {
            return Vec::new();
        }
        dependents(&store, &memo, |o| uses_binding(o, &binding))
    }
}

/// An event of an object that uses a binding wakes the binding only while the binding is being
/// deleted (it waits for its dependents to go).
pub fn dependent_to_deleting_binding<K: UsesBinding>(
    stores: &Stores,
) -> impl Fn(Arc<K>) -> Option<ObjectRef<ProjectBinding>> + Send + Sync + 'static {
    let store = stores.bindings.clone();
    move |object| {
        let reference = ObjectRef::new(object.binding_name()).within(&object.namespace().unwrap_or_default());
        store.get(&reference).filter(|b| b.metadata.deletion_timestamp.is_some()).map(|_| reference)
    }
}

/// A binding event wakes its configuration (of either kind) only while the configuration is
/// being deleted (it waits for its bindings to go).
pub fn binding_to_deleting_configuration<K: ConfigurationObject>(
    store: &Store<K>,
) -> impl Fn(Arc<ProjectBinding>) -> Option<ObjectRef<K>> + Send + Sync + 'static {
    let store = store.clone();
    move |binding| {
        let reference = &binding.spec.configuration_ref;
        if reference.kind != K::REFERENCE {
            return None;
        }
        let reference = K::reference(&reference.name, &binding.namespace().unwrap_or_default());
        store.get(&reference).filter(|c| c.meta().deletion_timestamp.is_some()).map(|_| reference)
    }
}

/// The reports whose binding uses a configuration `uses_configuration` picks, each marked dirty.
fn reports_through(
    stores: &Stores,
    memo: &Memo,
    uses_configuration: impl Fn(&ConfigurationKey) -> bool,
) -> Vec<ObjectRef<RequiredReport>> {
    let bindings = stores.bindings.clone();
    dependents(&stores.reports, memo, |r| {
        let reference = ObjectRef::new(&r.spec.binding_ref.name).within(&r.namespace().unwrap_or_default());
        bindings.get(&reference).is_some_and(|b| uses_configuration(&configuration_key(&b)))
    })
}

/// A SonarQubeConfiguration whose check says something new (readiness, capabilities, the
/// generation it is about) wakes the reports of every binding whose configuration names it: that
/// check is what tells whether SonarQube posts their report. Not at the first sighting: a
/// report's first round reads it anyway.
pub fn sonarqube_to_reports(
    stores: &Stores,
    memo: &Arc<Memo>,
    operator_namespace: String,
) -> impl Fn(Arc<crate::api::SonarQubeConfiguration>) -> Vec<ObjectRef<RequiredReport>> + Send + Sync + 'static {
    let stores = stores.clone();
    let memo = memo.clone();
    let seen = Seen::default();
    move |sonar| {
        let own = stores.sonarqube_configurations.get(&ObjectRef::from_obj(sonar.as_ref()));
        let status = sonar.status.as_ref();
        let ready = status.and_then(|s| find(&s.conditions, READY)).map(|c| (c.status.clone(), c.reason.clone()));
        let state = (
            status.is_some_and(|s| s.observed_generation == sonar.metadata.generation),
            ready,
            status.map(|s| s.capabilities.clone()),
            own.is_some(),
        );
        if !seen.moved(key_of(sonar.as_ref()), state) {
            return Vec::new();
        }
        let namespace = sonar.namespace().unwrap_or_default();
        let name = sonar.name_any();
        let names_it = |block: Option<&crate::api::sonarqube::SonarQubeIntegration>| {
            block.is_some_and(|b| b.configuration_ref.name == name)
        };
        reports_through(&stores, &memo, |key| match &key.namespace {
            Some(ns) => {
                *ns == namespace
                    && stores
                        .configurations
                        .get(&ObjectRef::new(&key.name).within(ns))
                        .is_some_and(|c| names_it(c.spec.sonarqube.as_ref()))
            }
            None => {
                namespace == operator_namespace
                    && stores
                        .cluster_configurations
                        .get(&ObjectRef::new(&key.name))
                        .is_some_and(|c| names_it(c.spec.connection.sonarqube.as_ref()))
            }
        })
    }
}

/// A configuration (of either kind) whose SonarQube side changed (the block's reference, whether
/// a setting is recorded, its conditions and whether they are current) wakes the reports of its bindings. Its bindings are woken
/// by [`configuration_to_bindings`], but their rounds wake the reports only when the repositories
/// change. Not at the first sighting: a report's first round reads it anyway.
pub fn configuration_to_reports<K>(
    stores: &Stores,
    memo: &Arc<Memo>,
) -> impl Fn(Arc<K>) -> Vec<ObjectRef<RequiredReport>> + Send + Sync + 'static
where
    K: ConfigurationObject,
{
    let stores = stores.clone();
    let memo = memo.clone();
    let seen = Seen::default();
    move |configuration| {
        let status = kube::core::object::HasStatus::status(configuration.as_ref());
        let condition =
            |type_: &str| status.and_then(|s| find(&s.conditions, type_)).map(|c| (c.status.clone(), c.reason.clone()));
        let current = status.is_some_and(|s| s.observed_generation == configuration.meta().generation);
        // Nothing at all without a `sonarqube` block: its reports have no SonarQube side.
        let state = configuration.connection().sonarqube.as_ref().map(|b| {
            (
                b.configuration_ref.name.clone(),
                status.is_some_and(|s| s.sonarqube.is_some()),
                condition(READY),
                condition(STALLED),
                current,
            )
        });
        if !seen.moved(key_of(configuration.as_ref()), state) {
            return Vec::new();
        }
        let key = super::configuration::key(configuration.as_ref());
        reports_through(&stores, &memo, |k| *k == key)
    }
}
