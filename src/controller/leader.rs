//! Leader election on a Lease, so that of several replicas exactly one writes at a time. The
//! leader renews the Lease; a follower takes it over once it has not been renewed for its
//! duration; a leader that stops releases it, so that the hand-over is immediate.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};

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

/// Waits until this replica holds the Lease.
pub async fn acquire(api: &Api<Lease>, election: &Election) {
    loop {
        match try_acquire(api, election).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot read or write the leader Lease"),
        }
        tokio::time::sleep(election.retry_period).await;
    }
}

/// Renews the Lease until a renewal has failed for longer than the Lease lasts; then this
/// replica must stop writing (another may have taken over). Returns when leadership is lost.
pub async fn keep(api: &Api<Lease>, election: &Election) {
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(election.retry_period).await;
        match try_acquire(api, election).await {
            Ok(true) => last_renewal = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::warn!("another replica holds the leader Lease; stopping");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot renew the leader Lease");
                // Stop a little before the Lease runs out, so that two never write at once.
                if last_renewal.elapsed() + election.retry_period >= election.lease_duration {
                    return;
                }
            }
        }
    }
}
