//! The reconcile skeleton every kind runs on. The skeleton owns what is the same for all kinds:
//! the scope check, waiting for the stores, the finalizer, timing and metrics, whether a round
//! with Bitbucket is due, the status write (server-side apply on `/status`, and only when
//! something changed), the Events on condition changes (each kind states its rule as data),
//! backoff and the next resync. A kind says only what is its own: its round and its cleanup.

use std::{future::Future, sync::Arc, time::Duration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Resource, ResourceExt,
    core::object::HasStatus,
    runtime::{controller::Action, finalizer},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    api::conditions::{READY, find},
    plan::{
        reasons,
        status::{Outcome, Phase},
    },
};

use super::{
    context::FINALIZER,
    context::{Context, jittered, key_of},
    error::Error,
    status,
};

/// When a kind publishes an Event about its Ready condition: when the reason changes to one of
/// an outcome in `phases`. Warnings for every phase but Ready.
#[derive(Clone, Copy, Debug)]
pub struct EventRule {
    /// The Event's action.
    pub action: &'static str,
    /// The phases whose new reason is announced.
    pub phases: &'static [Phase],
}

/// An Event about what a round did (beyond the condition change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Warning rather than Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// What the operator was doing.
    pub action: &'static str,
    /// The text.
    pub note: String,
}

/// What comes after a round.
#[derive(Debug)]
pub enum Next {
    /// The round is complete: the next one after this interval (jittered), unless something
    /// changes first.
    Resync(Duration),
    /// A transient failure (of Bitbucket or SonarQube): the round is repeated with backoff.
    Retry(Error),
    /// Nothing can be concluded yet (a dependency is being prepared in this process): nothing
    /// is written, and the object is looked at again after this long.
    Pending(Duration),
}

/// What a kind's round found: the status to write (its conditions are the skeleton's), the
/// outcome, what comes next, and the Events about what it did.
#[derive(Debug)]
pub struct Round<S> {
    /// The status, conditions aside.
    pub status: S,
    /// Where the object stands.
    pub outcome: Outcome,
    /// What comes next.
    pub next: Next,
    /// Events about what the round changed.
    pub notices: Vec<Notice>,
    /// How many drifted items the round corrected (for metrics).
    pub corrected: usize,
}

impl<S> Round<S> {
    /// A complete round.
    pub fn finished(status: S, outcome: Outcome, interval: Duration) -> Self {
        Self { status, outcome, next: Next::Resync(interval), notices: Vec::new(), corrected: 0 }
    }
}

impl<S: Default> Round<S> {
    /// A round that can conclude nothing yet.
    pub fn pending(wait: Duration) -> Self {
        Self {
            status: S::default(),
            outcome: Outcome::reconciling(crate::plan::reasons::PROGRESSING, String::new()),
            next: Next::Pending(wait),
            notices: Vec::new(),
            corrected: 0,
        }
    }
}

/// What a kind's cleanup found.
#[derive(Debug)]
pub enum Cleanup<S> {
    /// Done: the finalizer goes, with these Events.
    Done(Vec<Notice>),
    /// Not yet: this status and outcome are written, and the cleanup is tried again with
    /// backoff.
    Waiting(S, Outcome),
}

/// A kind of the operator, as the skeleton sees it.
pub trait Kind:
    Object
    + HasStatus<Status: Conditioned + Serialize + Clone + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static>
{
    /// The kind's name in metrics and logs.
    const KIND: &'static str;
    /// When the kind publishes Events about its Ready condition.
    const EVENTS: EventRule;

    /// Whether the operator serves the object: cluster-scoped ones always, namespaced ones in
    /// the watched namespaces.
    fn in_scope(ctx: &Context, object: &Self) -> bool {
        object.meta().namespace.as_deref().is_none_or(|namespace| ctx.watches_namespace(namespace))
    }
    /// One round: observe Bitbucket, carry out the plan, say where the object stands.
    fn round(ctx: &Context, object: &Self) -> impl Future<Output = Result<Round<Status<Self>>, Error>> + Send;
    /// Shorter forms of a full status the API server refused (conditions aside), longest
    /// first, each keeping what later rounds rely on; the last is the smallest there is.
    /// Nothing but the conditions by default.
    fn shortened(_status: &Status<Self>) -> Vec<Status<Self>> {
        vec![Status::<Self>::default()]
    }
    /// Cleanup before the object goes.
    fn cleanup(ctx: &Context, object: &Self) -> impl Future<Output = Result<Cleanup<Status<Self>>, Error>> + Send;
}

/// What the skeleton needs of any object it reconciles.
pub trait Object:
    Resource<DynamicType = (), Scope: Scope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<T> Object for T where
    T: Resource<DynamicType = (), Scope: Scope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// The status type of a kind.
pub type Status<K> = <K as HasStatus>::Status;

/// How to reach an object of a scope through the API: in its namespace, or cluster-wide.
pub trait Scope {
    /// The API for an object of kind `K` in `namespace` (`None` for a cluster-scoped one).
    fn api<K>(client: kube::Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = Self>;
}

impl Scope for k8s_openapi::NamespaceResourceScope {
    fn api<K>(client: kube::Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = Self>,
    {
        Api::namespaced(client, namespace.unwrap_or_default())
    }
}

impl Scope for k8s_openapi::ClusterResourceScope {
    fn api<K>(client: kube::Client, _: Option<&str>) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = Self>,
    {
        Api::all(client)
    }
}

/// The API to write an object through.
fn api_of<K: Kind>(ctx: &Context, object: &K) -> Api<K> {
    <K::Scope as Scope>::api(ctx.kube.clone(), object.meta().namespace.as_deref())
}

/// A status with the standard conditions and `observedGeneration`.
pub trait Conditioned {
    /// The conditions.
    fn conditions(&self) -> &[Condition];
    /// Sets the conditions and the generation they describe.
    fn stamp(&mut self, generation: Option<i64>, conditions: Vec<Condition>);
}

macro_rules! conditioned {
    ($($status:ty),+) => {$(
        impl Conditioned for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }

            fn stamp(&mut self, generation: Option<i64>, conditions: Vec<Condition>) {
                self.observed_generation = generation;
                self.conditions = conditions;
            }
        }
    )+};
}

conditioned!(
    crate::api::ConfigurationStatus,
    crate::api::ProjectBindingStatus,
    crate::api::RequiredReportStatus,
    crate::api::RequiredBuildStatus,
    crate::api::SonarQubeConfigurationStatus
);

/// Reconciles an object of any kind.
pub async fn reconcile<K: Kind>(object: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !K::in_scope(&ctx, &object) {
        return Ok(Action::await_change());
    }
    // What a reconcile reads from a store that has not finished its first list is no fact.
    ctx.stores.synced().await;
    // Not even the finalizer is written by a replica that no longer leads.
    ctx.admit().await?;
    let started = tokio::time::Instant::now();
    let api = api_of(&ctx, object.as_ref());
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            finalizer::Event::Apply(object) => apply(&ctx, &api, &object).await,
            finalizer::Event::Cleanup(object) => cleanup(&ctx, &api, &object).await,
        }
    })
    .await
    .map_err(Error::from_finalizer);
    ctx.options.telemetry.reconciled(K::KIND, result.as_ref().err().map(Error::class), started.elapsed());
    result
}

/// Retries a failed reconcile with backoff (never sooner than Bitbucket asked for).
pub fn error_policy<K: Kind>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key_of(object.as_ref());
    if matches!(error, Error::NotLeading) {
        // The controllers are stopping; the new leader picks the object up.
        tracing::debug!(object = %key, %error, "not reconciled");
        return Action::await_change();
    }
    // The retry must be a full round, whatever the last successful one scheduled.
    ctx.memo.forget(&key);
    let delay = ctx.backoff.next(&key, error.retry_after(), ctx.options.max_backoff);
    match error {
        Error::Waiting(_) => tracing::info!(object = %key, %error, retry_in = ?delay, "waiting"),
        // A race with another writer is ordinary: the other write's watch event retries at once.
        Error::Conflict => tracing::debug!(object = %key, %error, retry_in = ?delay, "conflict"),
        _ => tracing::warn!(object = %key, %error, retry_in = ?delay, "reconcile failed"),
    }
    Action::requeue(delay)
}

async fn apply<K: Kind>(ctx: &Context, api: &Api<K>, object: &K) -> Result<Action, Error> {
    let key = key_of(object);
    let revision = revision(object);
    // Triggered by the operator's own status write, or by a change that does not matter to
    // it: no round with Bitbucket, only the retry of a status the API server refused.
    if let Err(wait) = ctx.memo.due(&key, revision) {
        return match ctx.memo.held(&key) {
            None => Ok(Action::requeue(wait)),
            Some(Err(retry_in)) => Ok(Action::requeue(retry_in.min(wait))),
            Some(Ok((status, outcome))) => match status.downcast::<Status<K>>() {
                Ok(status) => rewrite(ctx, api, object, *status, outcome, wait).await,
                // Keys name the kind, so a held status is always of the object's kind.
                Err(_) => Ok(Action::requeue(wait)),
            },
        };
    }
    // This round's status supersedes any held one.
    ctx.memo.release(&key);
    let round = K::round(ctx, object).await?;
    if let Next::Pending(wait) = round.next {
        ctx.memo.forget(&key);
        return Ok(Action::requeue(wait));
    }
    ctx.options.telemetry.drift_corrected(K::KIND, round.corrected);
    for notice in &round.notices {
        ctx.event(object, notice.warning, notice.reason, notice.action, &notice.note).await;
    }
    let written = write(ctx, api, object, round.status.clone(), &round.outcome).await;
    let refused = match written {
        Ok(()) => None,
        Err(error) => match Refusal::of(&error) {
            Some(refusal) => Some(refusal),
            None => return Err(error),
        },
    };
    if let Some(refusal) = refused {
        shorten(ctx, api, object, &round.status, refusal).await;
    }
    match round.next {
        Next::Retry(error) => Err(error),
        Next::Resync(interval) | Next::Pending(interval) => {
            let next = jittered(interval);
            ctx.memo.done(&key, revision, next);
            if refused.is_none() {
                ctx.backoff.reset(&key);
                return Ok(Action::requeue(next));
            }
            // Bitbucket was read: the retry only writes what this round found.
            let retry_in = ctx.backoff.next(&key, None, ctx.options.max_backoff);
            ctx.memo.hold(&key, Box::new(round.status), round.outcome, retry_in);
            Ok(Action::requeue(retry_in))
        }
    }
}

/// Writes a held status again; `wait` is how long until the next Bitbucket round is due.
async fn rewrite<K: Kind>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    status: Status<K>,
    outcome: Outcome,
    wait: Duration,
) -> Result<Action, Error> {
    let key = key_of(object);
    let error = match write(ctx, api, object, status.clone(), &outcome).await {
        Ok(()) => {
            tracing::info!(object = %key, "the full status is written");
            ctx.backoff.reset(&key);
            return Ok(Action::requeue(wait));
        }
        Err(error @ Error::NotLeading) => return Err(error),
        Err(error) => error,
    };
    match Refusal::of(&error) {
        Some(refusal) => shorten(ctx, api, object, &status, refusal).await,
        // Not the status's fault (an API server outage, say): it is written again all the same.
        None => tracing::warn!(object = %key, %error, "cannot write the status"),
    }
    let retry_in = ctx.backoff.next(&key, None, ctx.options.max_backoff);
    ctx.memo.hold(&key, Box::new(status), outcome, retry_in);
    Ok(Action::requeue(retry_in.min(wait)))
}

/// Why the API server refused a status write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// Over etcd's object limit (500 with etcd's or gRPC's message) or the request body limit
    /// (413).
    TooLarge,
    /// 422: the status does not pass the CRD's validation.
    Invalid,
    /// 409: another writer came first; writing again is all it takes.
    Conflict,
}

impl Refusal {
    fn of(error: &Error) -> Option<Self> {
        let Error::Kube(kube::Error::Api(status)) = error else { return None };
        match status.code {
            413 => Some(Self::TooLarge),
            500 if status.message.contains("etcdserver: request is too large")
                || status.message.contains("trying to send message larger than max") =>
            {
                Some(Self::TooLarge)
            }
            422 => Some(Self::Invalid),
            409 => Some(Self::Conflict),
            _ => None,
        }
    }

    /// The outcome the shortened status states. The server's own text stays in the log: it is
    /// not the operator's to vouch for.
    fn outcome(self) -> Option<Outcome> {
        match self {
            Self::TooLarge => Some(Outcome::stalled(
                reasons::STATUS_TOO_LARGE,
                "the Kubernetes API server refused the full status as too large to store (etcd keeps \
                 objects up to about 1.5 MiB), so a shortened status is shown and the full one is written \
                 again with backoff; make the object cover less (for a ProjectBinding, split its \
                 repositories over several bindings), or raise the API server's object size limit",
            )),
            Self::Invalid => Some(Outcome::stalled(
                reasons::STATUS_REJECTED,
                "the Kubernetes API server rejected the full status as invalid (its answer is in the \
                 operator's log), so a shortened status is shown and the full one is written again with \
                 backoff; install the CRDs of this operator version (bitbucket-operator crds)",
            )),
            Self::Conflict => None,
        }
    }
}

/// After a refused status write: the essential status with a condition that says why, and a
/// Warning Event. A failure here is logged; the caller retries with backoff either way.
async fn shorten<K: Kind>(ctx: &Context, api: &Api<K>, object: &K, full: &Status<K>, refusal: Refusal) {
    let key = key_of(object);
    let Some(outcome) = refusal.outcome() else {
        tracing::debug!(object = %key, "the status write met another writer's; writing it again");
        return;
    };
    tracing::warn!(object = %key, reason = outcome.reason, "the API server refused the status; writing a shortened one");
    ctx.options.telemetry.stalled(K::KIND, outcome.reason);
    let previous = object.status();
    let old = previous.map(Conditioned::conditions).unwrap_or_default();
    if find(old, READY).map(|c| c.reason.as_str()) != Some(outcome.reason) {
        ctx.event(object, true, outcome.reason, "WriteStatus", &outcome.message).await;
    }
    for mut short in K::shortened(full) {
        short.stamp(object.meta().generation, status::conditions_for(object, old, &outcome));
        if previous == Some(&short) || ctx.admit().await.is_err() {
            return;
        }
        match status::apply(api, object, &short).await {
            Ok(()) => return,
            Err(error) if Refusal::of(&error) == Some(Refusal::TooLarge) => {
                tracing::warn!(object = %key, %error, "the shortened status is refused too");
            }
            Err(error) => {
                tracing::error!(object = %key, %error, "cannot write even the shortened status");
                return;
            }
        }
    }
    tracing::error!(object = %key, "cannot write even the shortest status");
}

/// What of an object asks for a round when it changes: its generation (the spec), and the
/// retry-credentials annotation, which is no part of the spec.
fn revision<K: Kind>(object: &K) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    object.meta().generation.hash(&mut hasher);
    object.annotations().get(crate::api::refs::RETRY_CREDENTIALS_ANNOTATION).hash(&mut hasher);
    hasher.finish()
}

async fn cleanup<K: Kind>(ctx: &Context, api: &Api<K>, object: &K) -> Result<Action, Error> {
    match K::cleanup(ctx, object).await? {
        Cleanup::Done(notices) => {
            for notice in &notices {
                ctx.event(object, notice.warning, notice.reason, notice.action, &notice.note).await;
            }
            ctx.memo.forget(&key_of(object));
            // The finalizer helper removes the finalizer next: only while this replica leads.
            ctx.admit().await?;
            Ok(Action::await_change())
        }
        Cleanup::Waiting(status, outcome) => {
            if let Err(error) = write(ctx, api, object, status.clone(), &outcome).await {
                let refusal = Refusal::of(&error).ok_or(error)?;
                shorten(ctx, api, object, &status, refusal).await;
            }
            Err(Error::Waiting(outcome.message))
        }
    }
}

/// Writes the status for an outcome, with the Event the kind's rule asks for; writes nothing
/// when the object already has this status.
async fn write<K: Kind>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    mut status: Status<K>,
    outcome: &Outcome,
) -> Result<(), Error> {
    let previous = object.status();
    let old = previous.map(Conditioned::conditions).unwrap_or_default();
    if outcome.phase == Phase::Stalled {
        ctx.options.telemetry.stalled(K::KIND, outcome.reason);
    }
    status.stamp(object.meta().generation, status::conditions_for(object, old, outcome));
    let old_reason = find(old, READY).map(|c| c.reason.as_str());
    if old_reason != Some(outcome.reason) && K::EVENTS.phases.contains(&outcome.phase) {
        let warning = outcome.phase != Phase::Ready;
        ctx.event(object, warning, outcome.reason, K::EVENTS.action, &outcome.message).await;
    }
    if previous == Some(&status) {
        return Ok(());
    }
    tracing::debug!(object = %object.name_any(), reason = outcome.reason, "writing status");
    // A round whose requests were refused because the Lease was lost says nothing true.
    ctx.admit().await?;
    status::apply(api, object, &status).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answered(code: u16, message: &str) -> Error {
        let status = json!({"status": "Failure", "code": code, "message": message, "reason": ""});
        Error::Kube(kube::Error::Api(Box::new(serde_json::from_value(status).expect("a Status"))))
    }

    #[test]
    fn which_answers_to_a_status_write_are_refusals_of_the_status_itself() {
        let grpc =
            "rpc error: code = ResourceExhausted desc = trying to send message larger than max (3511768 vs. 2097152)";
        assert_eq!(Refusal::of(&answered(500, "etcdserver: request is too large")), Some(Refusal::TooLarge));
        assert_eq!(Refusal::of(&answered(500, grpc)), Some(Refusal::TooLarge));
        assert_eq!(Refusal::of(&answered(413, "Request entity too large: limit is 3145728")), Some(Refusal::TooLarge));
        assert_eq!(Refusal::of(&answered(422, "ProjectBinding \"big\" is invalid")), Some(Refusal::Invalid));
        assert_eq!(Refusal::of(&answered(409, "the object has been modified")), Some(Refusal::Conflict));
        // Any other failure is the API server's, not the status's: the round is retried as before.
        assert_eq!(Refusal::of(&answered(500, "etcdserver: leader changed")), None);
        assert_eq!(Refusal::of(&answered(503, "")), None);
        assert_eq!(Refusal::of(&Error::NotLeading), None);
        // What the shortened status says is the operator's own text, never the server's.
        let outcome = Refusal::TooLarge.outcome().expect("an outcome");
        assert_eq!((outcome.phase, outcome.reason), (Phase::Stalled, reasons::STATUS_TOO_LARGE));
        assert!(Refusal::Conflict.outcome().is_none(), "a conflict is retried quietly");
    }
}
