//! The caches of the operator's kinds: one watch per kind, shared by every controller that reads
//! or follows that kind. Two rules make what a reconcile reads from them sound:
//! - a store is a fact only once its first list is complete, so no reconcile starts before
//!   every store is synced ([`Stores::synced`]);
//! - a change reaches the controllers that follow it only after it is in the store, so a
//!   dependent woken by a change always reads that change (never an older copy from a second
//!   watch of the same kind).

use std::{future::Future, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use kube::{
    Api, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use crate::api::{
    BitbucketConfiguration, ClusterBitbucketConfiguration, ProjectBinding, RequiredBuild, RequiredReport,
};

/// The caches of the operator's kinds, kept by one shared watch each.
#[derive(Clone)]
pub struct Stores {
    /// BitbucketConfigurations.
    pub configurations: Store<BitbucketConfiguration>,
    /// ClusterBitbucketConfigurations.
    pub cluster_configurations: Store<ClusterBitbucketConfiguration>,
    /// ProjectBindings.
    pub bindings: Store<ProjectBinding>,
    /// RequiredReports.
    pub reports: Store<RequiredReport>,
    /// RequiredBuilds.
    pub builds: Store<RequiredBuild>,
    /// SonarQubeConfigurations.
    pub sonarqube_configurations: Store<crate::api::SonarQubeConfiguration>,
    synced: Vec<watch::Receiver<bool>>,
}

impl Stores {
    /// The stores of these shared watches; `others` are further watches (of Secrets) that must
    /// have completed their first list too before anything is reconciled.
    pub(crate) fn of(
        configurations: &Shared<BitbucketConfiguration>,
        cluster_configurations: &Shared<ClusterBitbucketConfiguration>,
        bindings: &Shared<ProjectBinding>,
        reports: &Shared<RequiredReport>,
        builds: &Shared<RequiredBuild>,
        sonarqube_configurations: &Shared<crate::api::SonarQubeConfiguration>,
        others: Vec<watch::Receiver<bool>>,
    ) -> Self {
        let mut synced = vec![
            configurations.synced.subscribe(),
            cluster_configurations.synced.subscribe(),
            bindings.synced.subscribe(),
            reports.synced.subscribe(),
            builds.synced.subscribe(),
            sonarqube_configurations.synced.subscribe(),
        ];
        synced.extend(others);
        Self {
            configurations: configurations.store.clone(),
            cluster_configurations: cluster_configurations.store.clone(),
            bindings: bindings.store.clone(),
            reports: reports.store.clone(),
            builds: builds.store.clone(),
            sonarqube_configurations: sonarqube_configurations.store.clone(),
            synced,
        }
    }

    /// Resolves once every store has completed its first list (at once after that). A watch
    /// that is listed again later (after an API server outage) swaps its store in one step, so
    /// a store is never half-filled once synced.
    pub async fn synced(&self) {
        for synced in &self.synced {
            let mut synced = synced.clone();
            // An error means the watch is gone: the controllers are stopping anyway.
            let _ = synced.wait_for(|done| *done).await;
        }
    }

    /// Whether every store has completed its first list.
    pub fn is_synced(&self) -> bool {
        self.synced.iter().all(|s| *s.borrow())
    }
}

/// One kind's watch and store, and the controllers that follow its changes.
pub(crate) struct Shared<K: Resource<DynamicType = ()> + Clone + 'static> {
    /// The cache.
    pub store: Store<K>,
    writer: reflector::store::Writer<K>,
    followers: Vec<mpsc::UnboundedSender<Arc<K>>>,
    owners: Vec<mpsc::UnboundedSender<Arc<K>>>,
    synced: watch::Sender<bool>,
}

impl<K> Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    pub fn new() -> Self {
        let writer = reflector::store::Writer::default();
        Self {
            store: writer.as_reader(),
            writer,
            followers: Vec::new(),
            owners: Vec::new(),
            synced: watch::channel(false).0,
        }
    }

    /// Tells when the watch has completed its first list.
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    /// The changes for the controller of this kind: every object applied, none deleted (a
    /// deleted object has nothing left to reconcile).
    pub fn owned(&mut self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.owners.push(sender);
        received(receiver)
    }

    /// The changes for a controller that follows this kind: applied and deleted objects (a
    /// deletion can free a dependent that waited for it).
    pub fn followed(&mut self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.followers.push(sender);
        received(receiver)
    }

    /// Watches `api`, keeps the store, and hands each change to the controllers once it is in
    /// the store. Runs until dropped.
    pub fn run(self, api: Api<K>, config: watcher::Config) -> impl Future<Output = ()> + Send + 'static {
        let Self { store, writer, followers, owners, synced, .. } = self;
        let kind = K::kind(&()).into_owned();
        let config = super::api_server::watched(config);
        // What the store held when a list after a lost watch began: what is missing from the
        // new list was deleted meanwhile, and those who follow the kind must hear of it.
        let mut before: Option<Vec<Arc<K>>> = None;
        let mut failing = false;
        let mut backoff = super::api_server::WatchBackoff::default();
        watcher(api, config).reflect(writer).for_each(move |event| {
            let send = |object: Arc<K>, deleted: bool| {
                if !deleted {
                    for owner in &owners {
                        let _ = owner.send(object.clone());
                    }
                }
                for follower in &followers {
                    let _ = follower.send(object.clone());
                }
            };
            // The watcher tries again when polled next: a delay here is its backoff.
            let delay = match &event {
                Ok(_) => {
                    backoff.reset();
                    Duration::ZERO
                }
                Err(error) => backoff.after(error),
            };
            if event.is_ok() && std::mem::take(&mut failing) {
                tracing::info!(kind, "watch restored");
            }
            match event {
                Ok(watcher::Event::Apply(object)) => send(Arc::new(object), false),
                Ok(watcher::Event::Delete(object)) => send(Arc::new(object), true),
                Ok(watcher::Event::Init) => {
                    // The store keeps its old contents until the list is complete.
                    if *synced.borrow() {
                        before = Some(store.state());
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    // The store now holds the new list. The first one is news to the kind's own
                    // controller only: nothing is reconciled before every first list is done, so
                    // nobody who follows the kind can have read an older copy. A later one (after
                    // the watch was lost) may hide any change, deletions included, so everybody
                    // hears of everything.
                    let first = !*synced.borrow();
                    synced.send_replace(true);
                    let now = store.state();
                    for object in before.take().unwrap_or_default() {
                        if store.get(&ObjectRef::from_obj(object.as_ref())).is_none() {
                            send(object, true);
                        }
                    }
                    for object in now {
                        if first {
                            for owner in &owners {
                                let _ = owner.send(object.clone());
                            }
                        } else {
                            send(object, false);
                        }
                    }
                }
                Ok(watcher::Event::InitApply(_)) => {}
                // The server forgot where the watch was (as it does after a restart): an
                // ordinary answer, the watcher lists again.
                Err(error) if super::api_server::expired(&error) => tracing::debug!(kind, %error, "listing again"),
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(kind, %error, retry_in = ?delay, "watch failed; retrying every few seconds");
                }
                Err(error) => tracing::debug!(kind, %error, retry_in = ?delay, "watch still failing"),
            }
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
        })
    }
}

fn received<T: Send + 'static>(receiver: mpsc::UnboundedReceiver<T>) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::unfold(receiver, |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) })
}
