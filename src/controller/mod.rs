//! The controllers: one kube-runtime controller per kind, sharing one [`Context`]. Each reconcile
//! reads the spec, observes Bitbucket through the shared client of its configuration, lets
//! [`crate::plan`] decide, carries the plan out through [`crate::sync`], and writes status by
//! server-side apply.

mod binding;
pub mod clients;
mod configuration;
pub mod context;
mod mappers;
mod report;
mod status;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    runtime::{Controller, controller::Action, finalizer, watcher},
};

use crate::{
    api::{
        BitbucketConfiguration, ClusterBitbucketConfiguration, ProjectBinding, RequiredReport,
        refs::{CREDENTIAL_LABEL, CREDENTIAL_LABEL_VALUE},
    },
    bitbucket,
};

pub use context::{Context, Options, Stores};

/// The finalizer the operator puts on every resource whose deletion needs work in Bitbucket or
/// must wait for dependents.
pub const FINALIZER: &str = "bitbucket.integrations.dev/cleanup";

/// Why a reconcile did not finish; every variant is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A transient Bitbucket failure (server error, timeout, rate limit).
    #[error("{0}")]
    Bitbucket(bitbucket::Error),
    /// Deletion waits for something (dependents, or Bitbucket cleanup that failed).
    #[error("{0}")]
    Waiting(String),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Bitbucket(error) => error.retry_after(),
            _ => None,
        }
    }

    fn from_finalizer(error: finalizer::Error<Error>) -> Self {
        match error {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => Self::Kube(e),
            other => Self::Finalizer(other.to_string()),
        }
    }
}

fn error_policy<K: kube::Resource<DynamicType = ()>>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = context::key_of(object.as_ref());
    // The retry must be a full round, whatever the last successful one scheduled.
    ctx.memo.forget(&key);
    let delay = ctx.backoff.next(&key, error.retry_after(), ctx.options.max_backoff);
    match error {
        Error::Waiting(_) => tracing::info!(object = %key, %error, retry_in = ?delay, "waiting"),
        _ => tracing::warn!(object = %key, %error, retry_in = ?delay, "reconcile failed"),
    }
    Action::requeue(delay)
}

async fn log_failure<T, E: std::fmt::Display>(controller: &'static str, result: Result<T, E>) {
    if let Err(error) = result {
        tracing::debug!(controller, %error, "reconcile trigger failed");
    }
}

/// Runs every controller until `shutdown` resolves (or forever). Needs list/watch on the
/// operator's kinds and on Secrets labelled `bitbucket.integrations.dev/credential: "true"`.
pub async fn run(
    kube: kube::Client,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let clients = Arc::new(clients::Clients::default());
    let memo = Arc::new(context::Memo::default());
    let credential_secrets = watcher::Config::default().labels(&format!("{CREDENTIAL_LABEL}={CREDENTIAL_LABEL_VALUE}"));
    let secrets: Api<Secret> = Api::all(kube.clone());

    let configurations = Controller::new(Api::<BitbucketConfiguration>::all(kube.clone()), watcher::Config::default());
    let cluster_configurations =
        Controller::new(Api::<ClusterBitbucketConfiguration>::all(kube.clone()), watcher::Config::default());
    let bindings = Controller::new(Api::<ProjectBinding>::all(kube.clone()), watcher::Config::default());
    let reports = Controller::new(Api::<RequiredReport>::all(kube.clone()), watcher::Config::default());
    let stores = Stores {
        configurations: configurations.store(),
        cluster_configurations: cluster_configurations.store(),
        bindings: bindings.store(),
        reports: reports.store(),
    };
    let operator_namespace = options.operator_namespace.clone();

    let configurations = configurations
        .watches(secrets.clone(), credential_secrets.clone(), mappers::secret_to_configurations(&stores, &memo))
        .watches(
            Api::<ProjectBinding>::all(kube.clone()),
            watcher::Config::default(),
            mappers::binding_to_deleting_configuration(&stores),
        );
    let cluster_configurations = cluster_configurations
        .watches(
            secrets.clone(),
            credential_secrets.clone(),
            mappers::secret_to_cluster_configurations(&stores, &memo, operator_namespace),
        )
        .watches(
            Api::<ProjectBinding>::all(kube.clone()),
            watcher::Config::default(),
            mappers::binding_to_deleting_cluster_configuration(&stores),
        );
    let bindings = bindings
        .watches(
            Api::<BitbucketConfiguration>::all(kube.clone()),
            watcher::Config::default(),
            mappers::configuration_to_bindings(&stores, &memo, &clients),
        )
        .watches(
            Api::<ClusterBitbucketConfiguration>::all(kube.clone()),
            watcher::Config::default(),
            mappers::cluster_configuration_to_bindings(&stores, &memo, &clients),
        )
        .watches(secrets, credential_secrets, mappers::secret_to_bindings(&stores, &memo))
        .watches(
            Api::<RequiredReport>::all(kube.clone()),
            watcher::Config::default(),
            mappers::report_to_deleting_binding(&stores),
        );
    let reports = reports.watches(
        Api::<ProjectBinding>::all(kube.clone()),
        watcher::Config::default(),
        mappers::binding_to_reports(&stores, &memo),
    );

    let ctx_grace = options.shutdown_grace;
    let ctx = Arc::new(Context::new(kube, clients, memo, stores, options));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // An error means the sender is gone, which also means stop.
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let controllers = futures::future::join4(
        configurations
            .graceful_shutdown_on(signal(stopped.clone()))
            .run(configuration::reconcile_namespaced, error_policy, ctx.clone())
            .for_each(|result| log_failure("BitbucketConfiguration", result)),
        cluster_configurations
            .graceful_shutdown_on(signal(stopped.clone()))
            .run(configuration::reconcile_cluster, error_policy, ctx.clone())
            .for_each(|result| log_failure("ClusterBitbucketConfiguration", result)),
        bindings
            .graceful_shutdown_on(signal(stopped.clone()))
            .run(binding::reconcile, error_policy, ctx.clone())
            .for_each(|result| log_failure("ProjectBinding", result)),
        reports
            .graceful_shutdown_on(signal(stopped))
            .run(report::reconcile, error_policy, ctx)
            .for_each(|result| log_failure("RequiredReport", result)),
    );
    let grace = ctx_grace;
    let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
        let _ = signalled.send(true);
    });
    // Reconciles in flight get `shutdown_grace` to finish; a round cut short is safe to repeat
    // (webhooks are matched by name, checks by key), so nothing is created twice later.
    tokio::select! {
        _ = controllers => {}
        () = async {
            let _ = on_signal.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(?grace, "reconciles still running after the shutdown grace period were cut short"),
    }
}
