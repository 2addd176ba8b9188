//! Watches that follow references: a Secret change re-reconciles the configurations and
//! bindings that read it; a configuration change (new generation, readiness or client), its
//! bindings; a binding change (its repositories or readiness), its required reports. Changes that
//! matter mark the dependents dirty, so their next reconcile talks to Bitbucket; the operator's
//! own status writes do not.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{ResourceExt, runtime::reflector::ObjectRef};

use crate::{
    api::{
        BitbucketConfiguration, ClusterBitbucketConfiguration, ConfigurationStatus, ProjectBinding, RequiredReport,
        conditions::{READY, find},
        refs::ConfigurationKind,
    },
    plan::connection::referenced_secrets,
};

use super::{
    clients::{Clients, ConfigurationKey},
    context::{Memo, Stores, key_of},
};

/// Remembers a fingerprint per object and says whether it changed.
#[derive(Default)]
struct Seen(Mutex<HashMap<String, u64>>);

impl Seen {
    fn changed(&self, key: String, value: impl Hash) -> bool {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        let fingerprint = hasher.finish();
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        seen.insert(key, fingerprint) != Some(fingerprint)
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
) -> impl Fn(Secret) -> Vec<ObjectRef<BitbucketConfiguration>> + Send + Sync + 'static {
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

pub fn secret_to_cluster_configurations(
    stores: &Stores,
    memo: &Arc<Memo>,
    operator_namespace: String,
) -> impl Fn(Secret) -> Vec<ObjectRef<ClusterBitbucketConfiguration>> + Send + Sync + 'static {
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
) -> impl Fn(Secret) -> Vec<ObjectRef<ProjectBinding>> + Send + Sync + 'static {
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

/// What of a configuration its bindings depend on.
fn configuration_state(generation: Option<i64>, status: Option<&ConfigurationStatus>, epoch: u64) -> impl Hash {
    let ready = status.and_then(|s| find(&s.conditions, READY)).map(|c| (c.status.clone(), c.reason.clone()));
    (generation, ready, epoch)
}

fn bindings_of(
    store: &kube::runtime::reflector::Store<ProjectBinding>,
    memo: &Memo,
    key: &ConfigurationKey,
) -> Vec<ObjectRef<ProjectBinding>> {
    dependents(store, memo, |b| super::binding::uses(b, key))
}

pub fn configuration_to_bindings(
    stores: &Stores,
    memo: &Arc<Memo>,
    clients: &Arc<Clients>,
) -> impl Fn(BitbucketConfiguration) -> Vec<ObjectRef<ProjectBinding>> + Send + Sync + 'static {
    let store = stores.bindings.clone();
    let memo = memo.clone();
    let clients = clients.clone();
    let seen = Seen::default();
    move |configuration| {
        let key = ConfigurationKey {
            kind: ConfigurationKind::BitbucketConfiguration,
            namespace: configuration.namespace(),
            name: configuration.name_any(),
        };
        let state =
            configuration_state(configuration.metadata.generation, configuration.status.as_ref(), clients.epoch(&key));
        if !seen.changed(key_of(&configuration), state) {
            return Vec::new();
        }
        bindings_of(&store, &memo, &key)
    }
}

pub fn cluster_configuration_to_bindings(
    stores: &Stores,
    memo: &Arc<Memo>,
    clients: &Arc<Clients>,
) -> impl Fn(ClusterBitbucketConfiguration) -> Vec<ObjectRef<ProjectBinding>> + Send + Sync + 'static {
    let store = stores.bindings.clone();
    let memo = memo.clone();
    let clients = clients.clone();
    let seen = Seen::default();
    move |configuration| {
        let key = ConfigurationKey {
            kind: ConfigurationKind::ClusterBitbucketConfiguration,
            namespace: None,
            name: configuration.name_any(),
        };
        let state = (
            configuration_state(configuration.metadata.generation, configuration.status.as_ref(), clients.epoch(&key)),
            &configuration.spec.allowed_namespaces.names,
        );
        if !seen.changed(key_of(&configuration), state) {
            return Vec::new();
        }
        bindings_of(&store, &memo, &key)
    }
}

pub fn binding_to_reports(
    stores: &Stores,
    memo: &Arc<Memo>,
) -> impl Fn(ProjectBinding) -> Vec<ObjectRef<RequiredReport>> + Send + Sync + 'static {
    let store = stores.reports.clone();
    let memo = memo.clone();
    let seen = Seen::default();
    move |binding| {
        let status = binding.status.as_ref();
        let slugs: Vec<&str> =
            status.map(|s| s.repositories.iter().map(|r| r.slug.as_str()).collect()).unwrap_or_default();
        let ready = status.and_then(|s| find(&s.conditions, READY)).map(|c| (c.status.clone(), c.reason.clone()));
        let state = (binding.metadata.generation, status.and_then(|s| s.observed_generation), slugs, ready);
        if !seen.changed(key_of(&binding), state) {
            return Vec::new();
        }
        let namespace = binding.namespace();
        let name = binding.name_any();
        dependents(&store, &memo, |r| r.namespace() == namespace && r.spec.binding_ref.name == name)
    }
}

/// A report event wakes its binding only while the binding is being deleted (it waits for its
/// reports to go).
pub fn report_to_deleting_binding(
    stores: &Stores,
) -> impl Fn(RequiredReport) -> Option<ObjectRef<ProjectBinding>> + Send + Sync + 'static {
    let store = stores.bindings.clone();
    move |report| {
        let reference = ObjectRef::new(&report.spec.binding_ref.name).within(&report.namespace().unwrap_or_default());
        store.get(&reference).filter(|b| b.metadata.deletion_timestamp.is_some()).map(|_| reference)
    }
}

pub fn binding_to_deleting_configuration(
    stores: &Stores,
) -> impl Fn(ProjectBinding) -> Option<ObjectRef<BitbucketConfiguration>> + Send + Sync + 'static {
    let store = stores.configurations.clone();
    move |binding| {
        let reference = &binding.spec.configuration_ref;
        if reference.kind != ConfigurationKind::BitbucketConfiguration {
            return None;
        }
        let reference = ObjectRef::new(&reference.name).within(&binding.namespace().unwrap_or_default());
        store.get(&reference).filter(|c| c.metadata.deletion_timestamp.is_some()).map(|_| reference)
    }
}

pub fn binding_to_deleting_cluster_configuration(
    stores: &Stores,
) -> impl Fn(ProjectBinding) -> Option<ObjectRef<ClusterBitbucketConfiguration>> + Send + Sync + 'static {
    let store = stores.cluster_configurations.clone();
    move |binding| {
        let reference = &binding.spec.configuration_ref;
        if reference.kind != ConfigurationKind::ClusterBitbucketConfiguration {
            return None;
        }
        let reference = ObjectRef::new(&reference.name);
        store.get(&reference).filter(|c| c.metadata.deletion_timestamp.is_some()).map(|_| reference)
    }
}
