//! The controllers: one kube-runtime controller per kind, on one reconcile skeleton
//! ([`reconcile`](mod@reconcile)) and one shared watch per kind ([`stores`]). Each round reads the spec,
//! observes Bitbucket through the shared client of its configuration ([`clients`]), lets
//! [`crate::plan`] decide, carries the plan out through [`crate::sync`], and writes status by
//! server-side apply when it changed. [`references`] follows references between kinds and
//! `mappers` wakes dependents when what they depend on changes.

pub mod api_server;
mod binding;
mod checks;
pub mod clients;
mod configuration;
pub mod context;
mod error;
mod events;
mod integration;
pub mod inventories;
pub mod leader;
mod mappers;
pub mod reconcile;
pub mod references;
mod report;
mod required_build;
pub mod sonarqube;
mod sonarqube_projects;
mod status;
pub mod stores;

use std::{sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    runtime::{Controller, watcher},
};

use crate::api::{
    BitbucketConfiguration, ClusterBitbucketConfiguration, ConfigurationStatus, ProjectBinding, RequiredBuild,
    RequiredReport, SonarQubeConfiguration,
    refs::{CREDENTIAL_LABEL, CREDENTIAL_LABEL_VALUE},
};

pub use context::{Context, FINALIZER, Options};
pub use error::Error;
pub use stores::Stores;

use reconcile::{error_policy, reconcile};
use stores::Shared;

/// Marks the operator ready once every store is synced, then keeps the objects-by-Ready gauge.
async fn watch_health(stores: Stores, telemetry: Arc<crate::telemetry::Telemetry>) {
    stores.synced().await;
    telemetry.set_ready(true);
    loop {
        let conditions = |s: Option<&ConfigurationStatus>| s.map(|s| s.conditions.clone());
        count(
            &telemetry,
            "BitbucketConfiguration",
            stores.configurations.state().iter().map(|o| conditions(o.status.as_ref())),
        );
        count(
            &telemetry,
            "ClusterBitbucketConfiguration",
            stores.cluster_configurations.state().iter().map(|o| conditions(o.status.as_ref())),
        );
        count(
            &telemetry,
            "ProjectBinding",
            stores.bindings.state().iter().map(|o| o.status.as_ref().map(|s| s.conditions.clone())),
        );
        count(
            &telemetry,
            "RequiredReport",
            stores.reports.state().iter().map(|o| o.status.as_ref().map(|s| s.conditions.clone())),
        );
        count(
            &telemetry,
            "RequiredBuild",
            stores.builds.state().iter().map(|o| o.status.as_ref().map(|s| s.conditions.clone())),
        );
        count(
            &telemetry,
            "SonarQubeConfiguration",
            stores.sonarqube_configurations.state().iter().map(|o| o.status.as_ref().map(|s| s.conditions.clone())),
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

fn count(
    telemetry: &crate::telemetry::Telemetry,
    kind: &'static str,
    conditions: impl Iterator<Item = Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>>,
) {
    let (mut ready, mut not_ready, mut unknown) = (0, 0, 0);
    for conditions in conditions {
        match conditions.as_deref().and_then(|c| crate::api::conditions::find(c, crate::api::conditions::READY)) {
            Some(c) if c.status == "True" => ready += 1,
            Some(_) => not_ready += 1,
            None => unknown += 1,
        }
    }
    telemetry.objects(kind, ready, not_ready, unknown);
}

/// Resolves once `stop` turns true, or its sender is gone (which also means stop).
pub async fn stopped_by(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
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
    run_term(kube, options, None, shutdown).await;
}

/// [`run`], for one term as the leader when `tenure` is given: no Bitbucket request, status
/// write or Event goes out unless the tenure admits it.
async fn run_term(
    kube: kube::Client,
    options: Options,
    tenure: Option<leader::Tenure>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let telemetry = options.telemetry.clone();
    let mut clients = clients::Clients::observed_by(telemetry.clone()).allowing(options.allowed_hosts.clone());
    if let Some(tenure) = &tenure {
        clients = clients.gated_by(Arc::new(tenure.clone()));
    }
    let clients = Arc::new(clients);
    let memo = Arc::new(context::Memo::default());
    let (wake_reports, reports_to_wake) = tokio::sync::mpsc::unbounded_channel();
    let (wake_builds, builds_to_wake) = tokio::sync::mpsc::unbounded_channel();
    let inventories =
        Arc::new(inventories::Inventories::new(inventories::Wake { reports: wake_reports, builds: wake_builds }));
    let credential_secrets = watcher::Config::default().labels(&format!("{CREDENTIAL_LABEL}={CREDENTIAL_LABEL_VALUE}"));
    // One watched namespace: namespaced watches (and namespaced RBAC suffice); otherwise
    // cluster-wide watches, with objects outside the list ignored by the reconcilers.
    let single = (options.namespaces.len() == 1).then(|| options.namespaces[0].clone());
    let scoped =
        |kube: &kube::Client| -> (Api<Secret>, Api<ProjectBinding>, Api<RequiredReport>, Api<BitbucketConfiguration>) {
            match &single {
                Some(ns) => (
                    Api::namespaced(kube.clone(), ns),
                    Api::namespaced(kube.clone(), ns),
                    Api::namespaced(kube.clone(), ns),
                    Api::namespaced(kube.clone(), ns),
                ),
                None => {
                    (Api::all(kube.clone()), Api::all(kube.clone()), Api::all(kube.clone()), Api::all(kube.clone()))
                }
            }
        };
    let (_, binding_api, report_api, configuration_api) = scoped(&kube);
    let sonarqube_api: Api<SonarQubeConfiguration> = match &single {
        Some(ns) => Api::namespaced(kube.clone(), ns),
        None => Api::all(kube.clone()),
    };
    let build_api: Api<RequiredBuild> = match &single {
        Some(ns) => Api::namespaced(kube.clone(), ns),
        None => Api::all(kube.clone()),
    };
    // Secrets are watched only where they may be read: every namespace, or each watched one (the
    // chart then grants Secret access there only); cluster configurations' in the operator's.
    let secret_apis: Vec<Api<Secret>> = if options.namespaces.is_empty() {
        vec![Api::all(kube.clone())]
    } else {
        options.namespaces.iter().map(|ns| Api::namespaced(kube.clone(), ns)).collect()
    };
    let mut secret_watches: Vec<(Api<Secret>, Shared<Secret>)> =
        secret_apis.into_iter().map(|api| (api, Shared::new())).collect();
    let operator_secrets: Api<Secret> = Api::namespaced(kube.clone(), &options.operator_namespace);
    let mut operator_secret_watch = Shared::<Secret>::new();
    let mut selected = watcher::Config::default();
    if let Some(selector) = &options.label_selector {
        selected = selected.labels(selector);
    }

    // One watch per kind, shared by the controller of the kind and by those that follow it.
    let mut configuration_watch = Shared::<BitbucketConfiguration>::new();
    let mut cluster_configuration_watch = Shared::<ClusterBitbucketConfiguration>::new();
    let mut binding_watch = Shared::<ProjectBinding>::new();
    let mut report_watch = Shared::<RequiredReport>::new();
    let mut build_watch = Shared::<RequiredBuild>::new();
    let mut sonarqube_watch = Shared::<SonarQubeConfiguration>::new();
    let mut secrets_synced: Vec<_> = secret_watches.iter().map(|(_, watch)| watch.synced()).collect();
    secrets_synced.push(operator_secret_watch.synced());
    let stores = Stores::of(
        &configuration_watch,
        &cluster_configuration_watch,
        &binding_watch,
        &report_watch,
        &build_watch,
        &sonarqube_watch,
        secrets_synced,
    );
    let operator_namespace = options.operator_namespace.clone();
    let health = watch_health(stores.clone(), telemetry.clone());

    let mut configurations = Controller::for_shared_stream(configuration_watch.owned(), stores.configurations.clone())
        .watches_shared_stream(
            binding_watch.followed(),
            mappers::binding_to_deleting_configuration(&stores.configurations),
        )
        .watches_shared_stream(sonarqube_watch.followed(), mappers::sonarqube_to_configurations(&stores, &memo));
    for (_, watch) in &mut secret_watches {
        configurations =
            configurations.watches_shared_stream(watch.followed(), mappers::secret_to_configurations(&stores, &memo));
    }
    let cluster_configurations =
        Controller::for_shared_stream(cluster_configuration_watch.owned(), stores.cluster_configurations.clone())
            .watches_shared_stream(
                operator_secret_watch.followed(),
                mappers::secret_to_cluster_configurations(&stores, &memo, operator_namespace),
            )
            .watches_shared_stream(
                binding_watch.followed(),
                mappers::binding_to_deleting_configuration(&stores.cluster_configurations),
            )
            .watches_shared_stream(
                sonarqube_watch.followed(),
                mappers::sonarqube_to_cluster_configurations(&stores, &memo, options.operator_namespace.clone()),
            );
    let mut sonarqube_configurations =
        Controller::for_shared_stream(sonarqube_watch.owned(), stores.sonarqube_configurations.clone());
    for (_, watch) in &mut secret_watches {
        sonarqube_configurations = sonarqube_configurations
            .watches_shared_stream(watch.followed(), mappers::secret_to_sonarqube_configurations(&stores, &memo));
    }
    let mut bindings = Controller::for_shared_stream(binding_watch.owned(), stores.bindings.clone())
        .watches_shared_stream(
            configuration_watch.followed(),
            mappers::configuration_to_bindings(&stores, &stores.configurations, &memo, &clients),
        )
        .watches_shared_stream(
            cluster_configuration_watch.followed(),
            mappers::configuration_to_bindings(&stores, &stores.cluster_configurations, &memo, &clients),
        )
        .watches_shared_stream(
            report_watch.followed(),
            mappers::dependent_to_deleting_binding::<RequiredReport>(&stores),
        )
        .watches_shared_stream(
            build_watch.followed(),
            mappers::dependent_to_deleting_binding::<RequiredBuild>(&stores),
        );
    for (_, watch) in &mut secret_watches {
        bindings = bindings.watches_shared_stream(watch.followed(), mappers::secret_to_bindings(&stores, &memo));
    }
    // A binding's round wakes its reports when what it resolved changed (see `inventories`).
    let woken = futures::stream::unfold(reports_to_wake, |mut receiver| async move {
        receiver.recv().await.map(|report| (report, receiver))
    });
    let reports = Controller::for_shared_stream(report_watch.owned(), stores.reports.clone())
        .watches_shared_stream(
            binding_watch.followed(),
            mappers::binding_to_dependents(&stores, &stores.reports, &memo),
        )
        .watches_shared_stream(
            configuration_watch.followed(),
            mappers::configuration_to_reports::<BitbucketConfiguration>(&stores, &memo),
        )
        .watches_shared_stream(
            cluster_configuration_watch.followed(),
            mappers::configuration_to_reports::<ClusterBitbucketConfiguration>(&stores, &memo),
        )
        .watches_shared_stream(
            sonarqube_watch.followed(),
            mappers::sonarqube_to_reports(&stores, &memo, options.operator_namespace.clone()),
        )
        .reconcile_on(woken);
    let woken_builds = futures::stream::unfold(builds_to_wake, |mut receiver| async move {
        receiver.recv().await.map(|build| (build, receiver))
    });
    let builds = Controller::for_shared_stream(build_watch.owned(), stores.builds.clone())
        .watches_shared_stream(binding_watch.followed(), mappers::binding_to_dependents(&stores, &stores.builds, &memo))
        .reconcile_on(woken_builds);
    let mut secret_runs: Vec<_> =
        secret_watches.into_iter().map(|(api, watch)| watch.run(api, credential_secrets.clone()).boxed()).collect();
    secret_runs.push(operator_secret_watch.run(operator_secrets, credential_secrets).boxed());
    let watches = futures::future::join5(
        configuration_watch.run(configuration_api, selected.clone()),
        cluster_configuration_watch.run(Api::all(kube.clone()), selected.clone()),
        binding_watch.run(binding_api, selected.clone()),
        futures::future::join3(
            report_watch.run(report_api, selected.clone()),
            build_watch.run(build_api, selected.clone()),
            sonarqube_watch.run(sonarqube_api, selected),
        ),
        futures::future::join_all(secret_runs),
    );

    let ctx_grace = options.shutdown_grace;
    let ctx = Arc::new(Context::new(kube, clients, memo, inventories, stores, options).led_by(tenure));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let controllers = futures::future::join5(
        sonarqube_configurations
            .graceful_shutdown_on(stopped_by(stopped.clone()))
            .run(reconcile::<SonarQubeConfiguration>, error_policy, ctx.clone())
            .for_each(|result| log_failure("SonarQubeConfiguration", result)),
        configurations
            .graceful_shutdown_on(stopped_by(stopped.clone()))
            .run(reconcile::<BitbucketConfiguration>, error_policy, ctx.clone())
            .for_each(|result| log_failure("BitbucketConfiguration", result)),
        cluster_configurations
            .graceful_shutdown_on(stopped_by(stopped.clone()))
            .run(reconcile::<ClusterBitbucketConfiguration>, error_policy, ctx.clone())
            .for_each(|result| log_failure("ClusterBitbucketConfiguration", result)),
        bindings
            .graceful_shutdown_on(stopped_by(stopped.clone()))
            .run(reconcile::<ProjectBinding>, error_policy, ctx.clone())
            .for_each(|result| log_failure("ProjectBinding", result)),
        futures::future::join(
            reports
                .graceful_shutdown_on(stopped_by(stopped.clone()))
                .run(reconcile::<RequiredReport>, error_policy, ctx.clone())
                .for_each(|result| log_failure("RequiredReport", result)),
            builds
                .graceful_shutdown_on(stopped_by(stopped))
                .run(reconcile::<RequiredBuild>, error_policy, ctx)
                .for_each(|result| log_failure("RequiredBuild", result)),
        ),
    );
    let grace = ctx_grace;
    // The watches and the health gauges end with the controllers: they run inside the same
    // future, so that a term as the leader leaves nothing behind.
    let controllers = async move {
        tokio::select! {
            _ = controllers => {}
            _ = watches => {}
            () = health => {}
        }
    };
    // The shutdown future runs here, not in a task of its own, so that dropping this future
    // (a crash, or a lost Lease) stops everything it started.
    tokio::pin!(controllers);
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut controllers => return,
        () = &mut shutdown => {
            let _ = stop.send(true);
        }
    }
    // Reconciles in flight get `shutdown_grace` to finish; a round cut short is safe to repeat
    // (webhooks are matched by name, checks by key), so nothing is created twice later.
    tokio::select! {
        _ = controllers => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "reconciles still running after the shutdown grace period were cut short");
        }
    }
}

/// Runs the controllers while this replica leads (with `election`), or always (without):
/// a follower waits for the Lease, a leader that loses it stops writing and becomes a follower,
/// and on `shutdown` a leader releases the Lease so that a follower takes over at once.
pub async fn run_replica(
    kube: kube::Client,
    options: Options,
    election: Option<leader::Election>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let Some(election) = election else {
        run(kube, options, shutdown).await;
        return;
    };
    let telemetry = options.telemetry.clone();
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(kube.clone(), &election.namespace);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    loop {
        // A follower is ready: it is there to take over.
        telemetry.set_leader(false);
        telemetry.set_ready(true);
        let tenure = tokio::select! {
            tenure = leader::acquire(&leases, &election) => tenure,
            () = stopped_by(stopped.clone()) => return,
        };
        tracing::info!(identity = %election.identity, "leading");
        telemetry.set_leader(true);
        telemetry.set_ready(false);
        let keep = {
            let leases = leases.clone();
            let election = election.clone();
            let stopped = stopped.clone();
            let tenure = tenure.clone();
            async move {
                tokio::select! {
                    () = leader::keep(&leases, &election, &tenure) => {}
                    () = stopped_by(stopped) => {}
                }
            }
        };
        run_term(kube.clone(), options.clone(), Some(tenure.clone()), keep).await;
        // Whatever of the term is left may send nothing more.
        tenure.end();
        if *stopped.borrow() {
            leader::release(&leases, &election).await;
            telemetry.set_leader(false);
            return;
        }
        tracing::warn!("lost the leader Lease; waiting to lead again");
    }
}
