//! What each binding's last round in this process found: the repositories it binds, by id and
//! slug, and the project's listing they came from. Its RequiredReports and RequiredBuilds work from it, so the
//! repositories need neither be listed in the binding's status nor read from Bitbucket again;
//! a report waits (writing nothing) until this process's binding round has concluded.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use kube::{ResourceExt, runtime::reflector::ObjectRef};
use tokio::sync::mpsc;

use crate::{
    api::{ProjectBinding, RequiredBuild, RequiredReport, coverage::RepositoryIds},
    plan::status::Outcome,
};

/// What a binding's round concluded about its repositories, for one generation of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inventory {
    /// The repositories were resolved.
    Listed(Arc<Listing>),
    /// The round could not resolve them, for this reason.
    Unresolved(Outcome),
}

/// The repositories a binding resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The project key.
    pub project: String,
    /// The bound repositories (id, slug), by slug.
    pub bound: Vec<(i64, String)>,
    /// Every repository of the project as listed (id → slug), when the round listed them (a
    /// binding of one slug reads only that one).
    pub listed: Option<HashMap<i64, String>>,
}

impl Listing {
    /// The slug of a repository of the project by id, if the listing knows it.
    pub fn slug_of(&self, id: i64) -> Option<&str> {
        match &self.listed {
            Some(listed) => listed.get(&id).map(String::as_str),
            None => self.bound.iter().find(|(bound, _)| *bound == id).map(|(_, slug)| slug.as_str()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    uid: Option<String>,
    generation: Option<i64>,
    inventory: Inventory,
}

/// The inventories, by binding; a change wakes the binding's dependents.
pub struct Inventories {
    entries: Mutex<HashMap<String, Entry>>,
    wake: Wake,
}

/// Where the dependents of a binding are sent to be woken, by kind.
pub struct Wake {
    /// RequiredReports.
    pub reports: mpsc::UnboundedSender<ObjectRef<RequiredReport>>,
    /// RequiredBuilds.
    pub builds: mpsc::UnboundedSender<ObjectRef<RequiredBuild>>,
}

fn key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or_default())
}

impl Inventories {
    /// Inventories that send the dependents to wake on `wake`.
    pub fn new(wake: Wake) -> Self {
        Self { entries: Mutex::default(), wake }
    }

    /// Records what a round of `binding` (at its current generation) concluded. Returns whether
    /// that differs from what was recorded (then its reports are to be [woken](Self::wake)).
    pub fn publish(&self, binding: &ProjectBinding, inventory: Inventory) -> bool {
        let entry = Entry { uid: binding.uid(), generation: binding.metadata.generation, inventory };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let key = key(binding.namespace().as_deref(), &binding.name_any());
        entries.insert(key, entry.clone()).as_ref() != Some(&entry)
    }

    /// Forgets a deleted binding. Returns whether anything was recorded.
    pub fn remove(&self, binding: &ProjectBinding) -> bool {
        let key = key(binding.namespace().as_deref(), &binding.name_any());
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(&key).is_some()
    }

    /// What this process's last round of `binding` concluded, if it was a round of this very
    /// object (same UID) at its current generation.
    pub fn current(&self, binding: &ProjectBinding) -> Option<Inventory> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(&key(binding.namespace().as_deref(), &binding.name_any()))?;
        (entry.uid == binding.uid() && entry.generation == binding.metadata.generation).then(|| entry.inventory.clone())
    }

    /// Asks for a reconcile of the binding's `dependents`.
    pub fn wake(&self, binding: &ProjectBinding, dependents: &super::references::Dependents) {
        let namespace = binding.namespace().unwrap_or_default();
        // The channels are only closed when the controllers stop.
        for report in &dependents.reports {
            let _ = self.wake.reports.send(ObjectRef::new(report).within(&namespace));
        }
        for build in &dependents.builds {
            let _ = self.wake.builds.send(ObjectRef::new(build).within(&namespace));
        }
    }
}

/// The ids an object's status records (none when the record is unreadable: then nothing is
/// cleaned up that the record no longer shows, rather than something wrongly).
pub fn recorded<K: kube::Resource<DynamicType = ()>>(object: &K, ids: &RepositoryIds) -> Vec<i64> {
    ids.ids().unwrap_or_else(|error| {
        let object = super::context::key_of(object);
        tracing::warn!(%object, %error, "the status's record of repository ids is unreadable; starting a new one");
        Vec::new()
    })
}
