//! RequiredReport: the merge check on every repository of its binding. `Manage` makes each
//! check match (reading first, writing only what differs); `Observe` reports drift and changes
//! nothing. Deletion removes the checks unless `deletionPolicy: Orphan`.

use std::{sync::Arc, time::Duration};

use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, finalizer, reflector::ObjectRef},
};

use crate::{
    api::{
        ProjectBinding, RequiredReport, RequiredReportStatus,
        conditions::{READY, STALLED, find},
        required_report::{DeletionPolicy, ManagementPolicy},
    },
    bitbucket::{ErrorClass, MANUAL_STEPS},
    plan::{
        merge_checks::{describe, desired_check, report_key},
        reasons,
        status::{Outcome, Phase},
    },
    sync::report::{ReportInput, ReportSummary, apply, observe, remove, summarize},
};

use super::{
    Error, FINALIZER,
    binding::{Connected, connect},
    context::{Context, jittered, key_of},
    status,
};

/// Reconciles a RequiredReport.
pub async fn reconcile(object: Arc<RequiredReport>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = tokio::time::Instant::now();
    let namespace = object.namespace().unwrap_or_default();
    if !super::in_scope(&ctx, &namespace) {
        return Ok(Action::await_change());
    }
    let api: Api<RequiredReport> = Api::namespaced(ctx.kube.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            finalizer::Event::Apply(object) => enforce(&ctx, &api, &object).await,
            finalizer::Event::Cleanup(object) => withdraw(&ctx, &api, &object).await,
        }
    })
    .await
    .map_err(Error::from_finalizer);
    super::measured(&ctx, "RequiredReport", started, result)
}

fn binding_of(ctx: &Context, report: &RequiredReport) -> Option<Arc<ProjectBinding>> {
    let reference = ObjectRef::new(&report.spec.binding_ref.name).within(&report.namespace().unwrap_or_default());
    ctx.stores.bindings.get(&reference)
}

/// The binding's repositories, when its status describes its current spec.
fn bound_slugs(binding: &ProjectBinding) -> Result<Vec<String>, Outcome> {
    let status = binding.status.as_ref();
    let ready = status.and_then(|s| find(&s.conditions, READY));
    let current = status.and_then(|s| s.observed_generation) == binding.metadata.generation;
    let name = binding.name_any();
    match (status, ready) {
        (Some(status), Some(ready)) if current && (ready.status == "True" || !status.repositories.is_empty()) => {
            Ok(status.repositories.iter().map(|r| r.slug.clone()).collect())
        }
        (Some(status), Some(ready)) if current => {
            let message = format!("ProjectBinding {name} is not ready ({}): {}", ready.reason, ready.message);
            let stalled = find(&status.conditions, STALLED).is_some_and(|c| c.status == "True");
            Err(if stalled {
                Outcome::stalled(reasons::BINDING_NOT_READY, message)
            } else {
                Outcome::reconciling(reasons::BINDING_NOT_READY, message)
            })
        }
        _ => Err(Outcome::reconciling(
            reasons::BINDING_NOT_READY,
            format!("waiting for ProjectBinding {name} to resolve its repositories"),
        )),
    }
}

async fn enforce(ctx: &Context, api: &Api<RequiredReport>, report: &RequiredReport) -> Result<Action, Error> {
    let key = key_of(report);
    let generation = report.metadata.generation;
    if let Err(wait) = ctx.memo.due(&key, generation) {
        return Ok(Action::requeue(wait));
    }
    let previous = report.status.clone().unwrap_or_default();
    let mut status = RequiredReportStatus { observed_generation: generation, ..previous.clone() };
    let Some(binding) = binding_of(ctx, report) else {
        let outcome = Outcome::stalled(
            reasons::BINDING_NOT_FOUND,
            format!(
                "ProjectBinding {} does not exist in this namespace; create it or fix spec.bindingRef",
                report.spec.binding_ref.name
            ),
        );
        return finish(ctx, api, report, status, &outcome, Duration::from_secs(600)).await;
    };
    let key_name = report_key(&report.spec, &binding.spec);
    status.report_key = Some(key_name.clone());
    let bound = match bound_slugs(&binding) {
        Ok(slugs) => slugs,
        Err(outcome) => {
            return finish(ctx, api, report, status, &outcome, ctx.options.wait_delay.max(Duration::from_secs(60)))
                .await;
        }
    };
    let (client, interval) = match connect(ctx, &binding).await? {
        Connected::Ready(client, interval) => (client, interval),
        Connected::NotReady(outcome, wait) => return finish(ctx, api, report, status, &outcome, wait).await,
    };

    let observe_only = report.spec.management_policy == ManagementPolicy::Observe;
    let desired = desired_check(&key_name, &report.spec);
    let departed: Vec<String> =
        previous.repositories.iter().map(|r| r.slug.clone()).filter(|s| !bound.contains(s)).collect();
    let input = ReportInput {
        project: &binding.spec.project_key,
        bound: &bound,
        departed: &departed,
        desired: &desired,
        remove_departed: !observe_only && report.spec.deletion_policy == DeletionPolicy::Delete,
    };
    let plans = match observe(&client, &input).await {
        Ok(plans) => plans,
        Err(error) => {
            let mut outcome = Outcome::from_error(&error);
            if error.class() == ErrorClass::Unsupported {
                outcome = Outcome::stalled(
                    reasons::UNSUPPORTED_SERVER,
                    format!("{error}; until then, on each repository: {}", manual_steps(&desired)),
                );
            }
            if outcome.phase == Phase::Reconciling {
                write(ctx, api, report, status, &outcome).await?;
                return Err(Error::Bitbucket(error));
            }
            return finish(ctx, api, report, status, &outcome, interval).await;
        }
    };

    let outcomes = if observe_only { Vec::new() } else { apply(&client, input.project, &plans).await };
    let summary = summarize(&plans, &outcomes, &previous.repositories, observe_only, &desired);
    announce(ctx, report, &key_name, &summary).await;
    ctx.options.telemetry.drift_corrected("RequiredReport", summary.corrected.len());
    status.repository_count = summary.total;
    status.in_sync_count = summary.in_sync;
    status.repositories = summary.repositories;
    if let Some(error) = summary.transient {
        write(ctx, api, report, status, &summary.outcome).await?;
        return Err(Error::Bitbucket(error));
    }
    finish(ctx, api, report, status, &summary.outcome, interval).await
}

fn manual_steps(desired: &crate::bitbucket::MergeCheck) -> String {
    format!("{MANUAL_STEPS} with report key {}, {}", desired.report_key, describe(desired))
}

async fn announce(ctx: &Context, report: &RequiredReport, key: &str, summary: &ReportSummary) {
    let list = |slugs: &[String]| {
        let shown: Vec<&str> = slugs.iter().take(10).map(String::as_str).collect();
        let more = slugs.len().saturating_sub(shown.len());
        if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
    };
    let events: [(&[String], bool, &str, &str, String); 5] = [
        (&summary.created, false, "CheckCreated", "EnsureCheck", format!("required {key} on")),
        (&summary.adopted, false, "CheckAdopted", "EnsureCheck", format!("took over the existing {key} check on")),
        (&summary.corrected, true, "DriftCorrected", "EnsureCheck", format!("restored {key} on")),
        (&summary.drifted, true, "DriftDetected", "ObserveCheck", format!("{key} differs from the spec on")),
        (&summary.removed, false, "CheckRemoved", "EnsureCheck", format!("removed {key} (they left the binding) from")),
    ];
    for (slugs, warning, reason, action, text) in events {
        if !slugs.is_empty() {
            ctx.event(report, warning, reason, action, format!("{text} {}", list(slugs))).await;
        }
    }
}

async fn finish(
    ctx: &Context,
    api: &Api<RequiredReport>,
    report: &RequiredReport,
    status: RequiredReportStatus,
    outcome: &Outcome,
    interval: Duration,
) -> Result<Action, Error> {
    write(ctx, api, report, status, outcome).await?;
    let key = key_of(report);
    ctx.backoff.reset(&key);
    let next = jittered(interval);
    ctx.memo.done(&key, report.metadata.generation, next);
    Ok(Action::requeue(next))
}

async fn write(
    ctx: &Context,
    api: &Api<RequiredReport>,
    report: &RequiredReport,
    mut status: RequiredReportStatus,
    outcome: &Outcome,
) -> Result<(), Error> {
    let old = report.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    if outcome.phase == Phase::Stalled {
        ctx.options.telemetry.stalled("RequiredReport", outcome.reason);
    }
    status.observed_generation = report.metadata.generation;
    status.conditions = status::conditions_for(report, old, outcome);
    let old_reason = find(old, READY).map(|c| c.reason.as_str());
    if old_reason != Some(outcome.reason) && outcome.phase == Phase::Stalled {
        ctx.event(report, true, outcome.reason, "EnsureCheck", &outcome.message).await;
    }
    status::apply(api, report, &status).await
}

async fn withdraw(ctx: &Context, api: &Api<RequiredReport>, report: &RequiredReport) -> Result<Action, Error> {
    let status = report.status.clone().unwrap_or_default();
    let keep = report.spec.deletion_policy == DeletionPolicy::Orphan
        || report.spec.management_policy == ManagementPolicy::Observe;
    let slugs: Vec<String> = status.repositories.iter().map(|r| r.slug.clone()).collect();
    if keep || slugs.is_empty() {
        ctx.memo.forget(&key_of(report));
        return Ok(Action::await_change());
    }
    let Some(binding) = binding_of(ctx, report) else {
        let message = format!(
            "cannot remove the checks: ProjectBinding {} is gone; recreate it, or remove the finalizer {FINALIZER} to leave the checks in Bitbucket",
            report.spec.binding_ref.name
        );
        write(ctx, api, report, status, &Outcome::stalled(reasons::BINDING_NOT_FOUND, message.clone())).await?;
        return Err(Error::Waiting(message));
    };
    let client = match connect(ctx, &binding).await? {
        Connected::Ready(client, _) => client,
        Connected::NotReady(outcome, _) => {
            let message = format!(
                "cannot remove the checks: {}; fix that, or remove the finalizer {FINALIZER} to leave them",
                outcome.message
            );
            write(ctx, api, report, status, &Outcome::stalled(outcome.reason, message.clone())).await?;
            return Err(Error::Waiting(message));
        }
    };
    let key = status.report_key.clone().unwrap_or_else(|| report_key(&report.spec, &binding.spec));
    match remove(&client, &binding.spec.project_key, &slugs, &key).await {
        Ok(count) => {
            ctx.event(report, false, "CheckRemoved", "Delete", format!("removed {key} from {count} repositories"))
                .await;
            ctx.memo.forget(&key_of(report));
            Ok(Action::await_change())
        }
        Err((slug, error)) if error.class() == ErrorClass::Unsupported => {
            let message = format!(
                "cannot remove {key} from {slug}: {error}; remove it by hand, then remove the finalizer {FINALIZER}"
            );
            write(ctx, api, report, status, &Outcome::stalled(reasons::UNSUPPORTED_SERVER, message.clone())).await?;
            Err(Error::Waiting(message))
        }
        Err((slug, error)) => {
            let outcome = Outcome::from_error(&error);
            let message = format!("cannot remove {key} from {slug}: {}", outcome.message);
            write(ctx, api, report, status, &Outcome { message: message.clone(), ..outcome }).await?;
            Err(Error::Waiting(message))
        }
    }
}
