//! What the controllers share: the Kubernetes client, the Bitbucket clients, the caches of the
//! watched kinds, the Events recorder, and the bookkeeping that keeps Bitbucket reads at one per
//! resync interval unless something changed.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use kube::{Resource, ResourceExt};
use tokio::time::Instant;

use super::{clients::Clients, stores::Stores};
use crate::plan::status::Outcome;

/// The name the operator writes under (field manager, Event reporter, finalizer prefix).
pub const MANAGER: &str = "bitbucket-operator";

/// The finalizer the operator puts on every resource whose deletion needs work in Bitbucket or
/// must wait for dependents.
pub const FINALIZER: &str = "bitbucket.integrations.dev/cleanup";

/// Settings of a controller run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the Secrets of ClusterBitbucketConfigurations live (the operator's namespace).
    pub operator_namespace: String,
    /// The instance name reported on Events (the pod name).
    pub instance: Option<String>,
    /// Delay before retrying while a dependency is being prepared (for example a
    /// configuration's first connection check after a restart).
    pub wait_delay: Duration,
    /// Cap of the per-object exponential backoff after transient failures.
    pub max_backoff: Duration,
    /// A cap on every configuration's `resyncInterval` (for faster drift detection cluster-wide).
    pub max_resync: Option<Duration>,
    /// How long reconciles in flight may run on after shutdown was asked for.
    pub shutdown_grace: Duration,
    /// Hosts the operator may send credentials to (`host` or `*.domain`); empty allows all.
    pub allowed_hosts: Vec<String>,
    /// Namespaces to watch; empty watches all.
    pub namespaces: Vec<String>,
    /// Only objects with these labels (a label selector such as `shard=a`); none takes all.
    pub label_selector: Option<String>,
    /// Metrics and health.
    pub telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            operator_namespace: "bitbucket-operator".into(),
            instance: None,
            wait_delay: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            max_resync: None,
            shutdown_grace: Duration::from_secs(10),
            allowed_hosts: Vec::new(),
            namespaces: Vec::new(),
            label_selector: None,
            telemetry: std::sync::Arc::default(),
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    /// The Kubernetes client.
    pub kube: kube::Client,
    /// Bitbucket clients by configuration.
    pub clients: std::sync::Arc<Clients>,
    /// Caches of the watched kinds.
    pub stores: Stores,
    /// Settings.
    pub options: Options,
    /// When each object is next due for a Bitbucket round.
    pub memo: std::sync::Arc<Memo>,
    /// Transient failures in a row, per object.
    pub backoff: Backoff,
    /// What each binding's last round resolved, for its reports.
    pub inventories: std::sync::Arc<super::inventories::Inventories>,
    /// SonarQube clients by configuration.
    pub sonarqube: std::sync::Arc<super::sonarqube::SonarQubeClients>,
    events: super::events::Events,
    /// The leader's tenure, with leader election: asked before every write.
    tenure: Option<super::leader::Tenure>,
}

impl Context {
    /// A context for the controllers.
    pub fn new(
        kube: kube::Client,
        clients: std::sync::Arc<Clients>,
        memo: std::sync::Arc<Memo>,
        inventories: std::sync::Arc<super::inventories::Inventories>,
        stores: Stores,
        options: Options,
    ) -> Self {
        let instance = options.instance.clone().unwrap_or_else(|| MANAGER.to_owned());
        let events = super::events::Events::new(kube.clone(), MANAGER, &instance);
        let observer: std::sync::Arc<dyn crate::bitbucket::Observer> = options.telemetry.clone();
        let sonarqube =
            std::sync::Arc::new(super::sonarqube::SonarQubeClients::new(Some(observer), options.allowed_hosts.clone()));
        Self {
            kube,
            clients,
            stores,
            options,
            memo,
            backoff: Backoff::default(),
            inventories,
            sonarqube,
            events,
            tenure: None,
        }
    }

    /// This context, for a term as the leader: nothing is written unless `tenure` admits it.
    pub fn led_by(self, tenure: Option<super::leader::Tenure>) -> Self {
        let sonarqube = match &tenure {
            Some(tenure) => std::sync::Arc::new(
                super::sonarqube::SonarQubeClients::new(
                    Some(self.options.telemetry.clone()),
                    self.options.allowed_hosts.clone(),
                )
                .gated_by(std::sync::Arc::new(tenure.clone())),
            ),
            None => self.sonarqube.clone(),
        };
        Self { tenure, sonarqube, ..self }
    }

    /// Resolves once this replica may write (at once without leader election); an error once
    /// it no longer leads.
    pub async fn admit(&self) -> Result<(), super::Error> {
        match &self.tenure {
            Some(tenure) => tenure.admit().await.map_err(|_| super::Error::NotLeading),
            None => Ok(()),
        }
    }

    /// Whether a namespace is among the watched ones.
    pub fn watches_namespace(&self, namespace: &str) -> bool {
        self.options.namespaces.is_empty() || self.options.namespaces.iter().any(|n| n == namespace)
    }

    /// Publishes an Event about `object`. A failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        let note = note.into();
        if self.admit().await.is_err() {
            return;
        }
        if let Err(error) = self.events.publish(object.object_ref(&()), warning, reason, action, &note).await {
            tracing::warn!(object = %object.name_any(), %error, "cannot publish an Event");
        }
    }
}

/// The key of an object in the bookkeeping.
pub fn key_of<K: Resource<DynamicType = ()>>(object: &K) -> String {
    key(&K::kind(&()), object.meta().namespace.as_deref(), &object.name_any())
}

/// The key of an object of `kind` in the bookkeeping.
pub fn key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{kind}/{}/{name}", namespace.unwrap_or(""))
}

#[derive(Clone, Copy, Debug)]
struct MemoEntry {
    revision: u64,
    due: Instant,
    dirty: bool,
}

/// When each object next needs a round with Bitbucket. A reconcile triggered by the operator's
/// own status write, or by a change of an object it only looks at, costs no Bitbucket request;
/// a new revision (generation, or a request such as the retry-credentials annotation), a changed
/// dependency (marked dirty by a watch) or the resync interval does.
#[derive(Default)]
pub struct Memo {
    entries: Mutex<HashMap<String, MemoEntry>>,
    held: Mutex<HashMap<String, Held>>,
}

/// A round's status that the API server refused to store: written again at `retry_at`, so the
/// retry costs no Bitbucket request.
struct Held {
    status: Box<dyn std::any::Any + Send + Sync>,
    outcome: Outcome,
    retry_at: Instant,
}

/// A held status whose retry is due, or how long until it is.
pub type HeldStatus = Result<(Box<dyn std::any::Any + Send + Sync>, Outcome), Duration>;

impl Memo {
    /// Whether the object is due, and if not, how long until it is. Consumes a dirty mark.
    pub fn due(&self, key: &str, revision: u64) -> Result<(), Duration> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = entries.get_mut(key) else { return Ok(()) };
        let now = Instant::now();
        if entry.dirty || entry.revision != revision || now >= entry.due {
            entry.dirty = false;
            return Ok(());
        }
        Err(entry.due - now)
    }

    /// Records a completed round; the next one is due after `interval`.
    pub fn done(&self, key: &str, revision: u64, interval: Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let dirty = entries.get(key).is_some_and(|e| e.dirty);
        entries.insert(key.to_owned(), MemoEntry { revision, due: Instant::now() + interval, dirty });
    }

    /// Marks an object whose dependency changed. Also one without a completed round yet: its
    /// first round may be in flight with what it read before the change, and the mark must
    /// outlive that round (see [`Memo::done`]).
    pub fn mark_dirty(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry =
            entries.entry(key.to_owned()).or_insert(MemoEntry { revision: 0, due: Instant::now(), dirty: true });
        entry.dirty = true;
    }

    /// Takes back an object's dirty mark: its round has just read the newest state of what marks
    /// it (a mark made after this is kept).
    pub fn clean(&self, key: &str) {
        if let Some(entry) = self.entries.lock().unwrap_or_else(PoisonError::into_inner).get_mut(key) {
            entry.dirty = false;
        }
    }

    /// Forgets an object, so that its next reconcile is a full round.
    pub fn forget(&self, key: &str) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        self.release(key);
    }

    /// Keeps a status the API server refused, to write again after `wait`.
    pub fn hold(&self, key: &str, status: Box<dyn std::any::Any + Send + Sync>, outcome: Outcome, wait: Duration) {
        let held = Held { status, outcome, retry_at: Instant::now() + wait };
        self.held.lock().unwrap_or_else(PoisonError::into_inner).insert(key.to_owned(), held);
    }

    /// The held status of an object once its retry is due (taken out), or how long until then;
    /// `None` when nothing is held.
    pub fn held(&self, key: &str) -> Option<HeldStatus> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let retry_at = held.get(key)?.retry_at;
        if now < retry_at {
            return Some(Err(retry_at - now));
        }
        held.remove(key).map(|h| Ok((h.status, h.outcome)))
    }

    /// Drops an object's held status (a new round computed a newer one).
    pub fn release(&self, key: &str) {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

/// Per-object exponential backoff with jitter for transient failures.
#[derive(Default)]
pub struct Backoff {
    attempts: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// The delay before the next try after another failure: 1 s, 2 s, 4 s ... up to `max`,
    /// each with up to 25 % jitter, and never shorter than what the server asked for.
    pub fn next(&self, key: &str, retry_after: Option<Duration>, max: Duration) -> Duration {
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = attempts.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let base = Duration::from_secs(1).saturating_mul(1 << (*n - 1).min(16)).min(max);
        let jittered = base.mul_f64(1.0 + fastrand::f64() * 0.25).min(max);
        retry_after.map_or(jittered, |wait| jittered.max(wait))
    }

    /// Clears an object's failures.
    pub fn reset(&self, key: &str) {
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

/// `interval` with up to ±10 % jitter, so resyncs of many objects spread out.
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_during_an_objects_first_round_asks_for_another() {
        let memo = Memo::default();
        // The first round starts (nothing known yet), a dependency changes meanwhile, the round
        // ends and schedules the next one far away: the change still asks for a round now.
        assert_eq!(memo.due("RequiredReport/team-a/r", 1), Ok(()));
        memo.mark_dirty("RequiredReport/team-a/r");
        memo.done("RequiredReport/team-a/r", 1, Duration::from_secs(600));
        assert_eq!(memo.due("RequiredReport/team-a/r", 1), Ok(()));
        // Consumed: the next trigger without a change waits for the interval.
        assert!(memo.due("RequiredReport/team-a/r", 1).is_err());

        // A round that read the changed state after the mark takes it back: no second round.
        memo.mark_dirty("RequiredReport/team-a/r");
        memo.clean("RequiredReport/team-a/r");
        memo.done("RequiredReport/team-a/r", 1, Duration::from_secs(600));
        assert!(memo.due("RequiredReport/team-a/r", 1).is_err());
    }

    #[test]
    fn rounds_are_due_on_a_new_revision_a_change_or_the_interval() {
        let memo = Memo::default();
        memo.done("k", 1, Duration::from_secs(600));
        assert!(memo.due("k", 1).is_err(), "nothing changed");
        assert_eq!(memo.due("k", 2), Ok(()), "a new revision");
        memo.done("k", 2, Duration::from_secs(600));
        memo.mark_dirty("k");
        assert_eq!(memo.due("k", 2), Ok(()), "a dependency changed");
        memo.done("k", 2, Duration::ZERO);
        assert_eq!(memo.due("k", 2), Ok(()), "the interval passed");
    }
}
