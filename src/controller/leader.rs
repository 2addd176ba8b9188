//! Leader election on a Lease, so that of several replicas exactly one writes at a time. The
//! leader renews the Lease; a follower takes it over once it has not been renewed for its
//! duration; a leader that stops releases it, so that the hand-over is immediate.
//!
//! A leader's [`Tenure`] says whether it may still act: it runs out a margin before the Lease
//! would expire for the others, unless renewed. Every Bitbucket request and status write asks
//! it first, so a replica that is not sure it still leads (a renewal overdue, or the process
//! resumed after being frozen) sends nothing until the Lease was checked again.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};

/// Why a replica whose tenure ended refuses to send anything.
const NOT_LEADING: &str = "not sent: this replica no longer holds the leader Lease (another one does the work)";

/// How a replica takes part in the election.
#[derive(Clone, Debug)]
pub struct Election {
    /// The Lease's name.
    pub lease: String,
    /// Its namespace (the operator's).
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews (and a follower retries).
    pub retry_period: Duration,
}

impl Election {
    /// An election with the usual timings (15 s Lease, renewed every 5 s).
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            lease: "bitbucket-operator".into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(5),
        }
    }

    /// How long after a renewal was sent the leader may act on it: the Lease's duration less one
    /// retry period, so that it stops before any other replica can take over.
    fn validity(&self) -> Duration {
        self.lease_duration.saturating_sub(self.retry_period)
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Tries once to take or keep the Lease. `Ok(true)` when this replica holds it afterwards.
pub async fn try_acquire(api: &Api<Lease>, election: &Election) -> Result<bool, kube::Error> {
    let seconds = i32::try_from(election.lease_duration.as_secs()).unwrap_or(15).max(1);
    let Some(mut lease) = api.get_opt(&election.lease).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(election.lease.clone()), ..ObjectMeta::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(election.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let mine = spec.holder_identity.as_deref() == Some(election.identity.as_str());
    let held = spec.holder_identity.as_deref().is_some_and(|h| !h.is_empty());
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(duration)) => {
            let age = Timestamp::now().duration_since(renewed.0);
            age.as_secs_f64() > f64::from(duration)
        }
        _ => true,
    };
    if !mine && held && !expired {
        return Ok(false);
    }
    if !mine {
        spec.holder_identity = Some(election.identity.clone());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(seconds);
    // The resourceVersion makes this a compare-and-swap: of two replicas, one wins.
    match api.replace(&election.lease, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

/// Gives the Lease up (on shutdown), so that a follower takes over at once.
pub async fn release(api: &Api<Lease>, election: &Election) {
    let Ok(Some(mut lease)) = api.get_opt(&election.lease).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(election.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    if let Err(error) = api.replace(&election.lease, &PostParams::default(), &lease).await {
        tracing::warn!(%error, "cannot release the leader Lease; a follower takes over when it expires");
    }
}

/// Waits until this replica holds the Lease; returns its tenure, for [`keep`] to renew.
pub async fn acquire(api: &Api<Lease>, election: &Election) -> Tenure {
    loop {
        let sent = Instant::now();
        match attempt(api, election).await {
            Ok(true) => return Tenure::until(sent + election.validity()),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot read or write the leader Lease"),
        }
        tokio::time::sleep(election.retry_period).await;
    }
}

/// One try, given up after a retry period: a request that hangs must not hold up the decision.
async fn attempt(api: &Api<Lease>, election: &Election) -> Result<bool, String> {
    match tokio::time::timeout(election.retry_period.max(MIN_ATTEMPT), try_acquire(api, election)).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(_) => Err("the API server did not answer in time".into()),
    }
}

/// The shortest time a try to take or renew the Lease is given.
const MIN_ATTEMPT: Duration = Duration::from_secs(1);

/// Renews the Lease, extending `tenure` with each renewal, and checks it again at once when a
/// request finds the tenure overdue. Ends the tenure and returns when another replica holds the
/// Lease, or when the tenure ran out without a renewal (another may take over now).
pub async fn keep(api: &Api<Lease>, election: &Election, tenure: &Tenure) {
    loop {
        // Overdue (the process was frozen, or a renewal took long): check again at once.
        if !tenure.is_overdue() {
            tokio::select! {
                () = tokio::time::sleep(election.retry_period) => {}
                () = tenure.0.recheck.notified() => {}
            }
        }
        let sent = Instant::now();
        match attempt(api, election).await {
            // A renewal sent before a freeze may come back after the tenure ran out: then the
            // next round checks again.
            Ok(true) => tenure.extend(sent + election.validity()),
            Ok(false) => {
                tracing::warn!("another replica holds the leader Lease; stopping");
                tenure.end();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot renew the leader Lease");
                if tenure.is_overdue() {
                    tracing::warn!("the leader Lease was not renewed in time; stopping, another replica may take over");
                    tenure.end();
                    return;
                }
            }
        }
    }
}

/// Whether this replica may act as the leader now: until an instant that each renewal moves on,
/// or no longer. Cheap to clone; clones share it.
#[derive(Clone, Debug)]
pub struct Tenure(Arc<Standing>);

#[derive(Debug)]
struct Standing {
    /// `Some(until)` while leading, `None` once ended.
    until: watch::Sender<Option<Instant>>,
    /// Wakes [`keep`] when a request finds the tenure overdue.
    recheck: Notify,
}

impl Tenure {
    fn until(until: Instant) -> Self {
        Self(Arc::new(Standing { until: watch::channel(Some(until)).0, recheck: Notify::new() }))
    }

    fn extend(&self, until: Instant) {
        self.0.until.send_modify(|current| {
            if let Some(current) = current {
                *current = until.max(*current);
            }
        });
    }

    /// Ends the tenure for good: everything that asks is refused from now on.
    pub fn end(&self) {
        self.0.until.send_replace(None);
    }

    fn is_overdue(&self) -> bool {
        self.0.until.borrow().is_some_and(|until| Instant::now() >= until)
    }

    /// Resolves once this replica may act (`Ok`), or never again (`Err` says why). While the
    /// tenure is overdue, waits for [`keep`] to check the Lease again.
    pub async fn admit(&self) -> Result<(), String> {
        let mut until = self.0.until.subscribe();
        loop {
            match *until.borrow_and_update() {
                None => return Err(NOT_LEADING.into()),
                Some(until) if Instant::now() < until => return Ok(()),
                Some(_) => {}
            }
            self.0.recheck.notify_one();
            if until.changed().await.is_err() {
                return Err(NOT_LEADING.into());
            }
        }
    }
}

impl crate::bitbucket::Gate for Tenure {
    fn admit(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(Tenure::admit(self))
    }
}
