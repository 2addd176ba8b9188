//! RequiredReport: the merge check on every repository of its binding. `Manage` makes each
//! check match (reading first, writing only what differs); `Observe` reports drift and changes
//! nothing. Deletion removes the checks unless `deletionPolicy: Orphan`.

use crate::{
    api::{RequiredReport, RequiredReportStatus, required_report::ManagementPolicy},
    bitbucket::ErrorClass,
    plan::{
        dependencies::{BindingState, binding_repositories},
        merge_checks::{desired_check, report_key},
        reasons,
        report::{ReportInput, ReportSummary, removes_checks, summarize},
        selection::departed,
        status::{Outcome, Phase},
    },
    sync::report::{apply, observe, remove},
};

use super::{
    context::{Context, FINALIZER},
    error::Error,
    events::listed,
    reconcile::{Cleanup, EventRule, Kind, Next, Notice, Round},
    references::{Connected, UNRESOLVED_RECHECK, binding_of, cleanup_client, connect, recheck_after},
};

impl Kind for RequiredReport {
    const KIND: &'static str = "RequiredReport";
    const EVENTS: EventRule = EventRule { action: "EnsureCheck", phases: &[Phase::Stalled] };

    async fn round(ctx: &Context, report: &Self) -> Result<Round<RequiredReportStatus>, Error> {
        enforce(ctx, report).await
    }

    async fn cleanup(ctx: &Context, report: &Self) -> Result<Cleanup<RequiredReportStatus>, Error> {
        withdraw(ctx, report).await
    }

    /// The report key is what the cleanup removes; the counts are small and still true.
    fn shortened(status: &RequiredReportStatus) -> Vec<RequiredReportStatus> {
        vec![RequiredReportStatus {
            report_key: status.report_key.clone(),
            repository_count: status.repository_count,
            in_sync_count: status.in_sync_count,
            ..RequiredReportStatus::default()
        }]
    }
}

async fn enforce(ctx: &Context, report: &RequiredReport) -> Result<Round<RequiredReportStatus>, Error> {
    let previous = report.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    let binding = binding_of(&ctx.stores, report);
    let state = binding.as_ref().map(|b| BindingState { status: b.status.clone(), generation: b.metadata.generation });
    let bound = binding_repositories(&report.spec.binding_ref.name, state.as_ref());
    if let Some(binding) = &binding {
        status.report_key = Some(report_key(&report.spec, &binding.spec));
    }
    let (binding, bound) = match (binding, bound) {
        (Some(binding), Ok(bound)) => (binding, bound),
        (_, Err(blocked)) => {
            let wait = recheck_after(&ctx.options, blocked.recheck, UNRESOLVED_RECHECK);
            return Ok(Round::finished(status, blocked.outcome, wait));
        }
        (None, Ok(_)) => return Ok(Round::pending(ctx.options.wait_delay)),
    };
    let key = report_key(&report.spec, &binding.spec);
    let (client, interval) = match connect(ctx, &binding).await? {
        Connected::Ready(client, interval) => (client, interval),
        Connected::NotReady(outcome, wait) => return Ok(Round::finished(status, outcome, wait)),
        Connected::Pending(wait) => return Ok(Round::pending(wait)),
    };

    let observe_only = report.spec.management_policy == ManagementPolicy::Observe;
    let desired = desired_check(&key, &report.spec);
    let previous_slugs: Vec<String> = previous.repositories.iter().map(|r| r.slug.clone()).collect();
    let departed = departed(&previous_slugs, bound.iter().map(String::as_str));
    let input = ReportInput {
        project: &binding.spec.project_key,
        bound: &bound,
        departed: &departed,
        desired: &desired,
        remove_departed: removes_checks(&report.spec),
    };
    let plans = match observe(&client, &input).await {
        Ok(plans) => plans,
        Err(error) => {
            let outcome = if error.class() == ErrorClass::Unsupported {
                Outcome::unsupported_report(&error, &desired)
            } else {
                Outcome::from_error(&error)
            };
            let next = if outcome.phase == Phase::Reconciling { Next::Retry(error) } else { Next::Resync(interval) };
            return Ok(Round { status, outcome, next, notices: Vec::new(), corrected: 0 });
        }
    };

    let outcomes = if observe_only { Vec::new() } else { apply(&client, input.project, &plans).await };
    let summary = summarize(&plans, &outcomes, &previous.repositories, observe_only, &desired);
    let notices = announce(&key, &summary);
    let corrected = summary.corrected.len();
    status.repository_count = summary.total;
    status.in_sync_count = summary.in_sync;
    status.repositories = summary.repositories;
    let next = summary.transient.map_or(Next::Resync(interval), Next::Retry);
    Ok(Round { status, outcome: summary.outcome, next, notices, corrected })
}

/// The Events of a round: one per kind of change, naming the repositories.
fn announce(key: &str, summary: &ReportSummary) -> Vec<Notice> {
    let events: [(&[String], bool, &'static str, &'static str, String); 5] = [
        (&summary.created, false, "CheckCreated", "EnsureCheck", format!("required {key} on")),
        (&summary.adopted, false, "CheckAdopted", "EnsureCheck", format!("took over the existing {key} check on")),
        (&summary.corrected, true, "DriftCorrected", "EnsureCheck", format!("restored {key} on")),
        (&summary.drifted, true, "DriftDetected", "ObserveCheck", format!("{key} differs from the spec on")),
        (&summary.removed, false, "CheckRemoved", "EnsureCheck", format!("removed {key} (they left the binding) from")),
    ];
    events
        .into_iter()
        .filter(|(slugs, ..)| !slugs.is_empty())
        .map(|(slugs, warning, reason, action, text)| Notice {
            warning,
            reason,
            action,
            note: format!("{text} {}", listed(slugs)),
        })
        .collect()
}

async fn withdraw(ctx: &Context, report: &RequiredReport) -> Result<Cleanup<RequiredReportStatus>, Error> {
    let status = report.status.clone().unwrap_or_default();
    let keep = !removes_checks(&report.spec);
    let slugs: Vec<String> = status.repositories.iter().map(|r| r.slug.clone()).collect();
    if keep || slugs.is_empty() {
        return Ok(Cleanup::Done(Vec::new()));
    }
    let Some(binding) = binding_of(&ctx.stores, report) else {
        let message = format!(
            "cannot remove the checks: ProjectBinding {} is gone; recreate it, or remove the finalizer {FINALIZER} to leave the checks in Bitbucket",
            report.spec.binding_ref.name
        );
        return Ok(Cleanup::Waiting(status, Outcome::stalled(reasons::BINDING_NOT_FOUND, message)));
    };
    let client = match cleanup_client(ctx, &binding, "the checks").await? {
        Ok(client) => client,
        Err(outcome) => return Ok(Cleanup::Waiting(status, outcome)),
    };
    let key = status.report_key.clone().unwrap_or_else(|| report_key(&report.spec, &binding.spec));
    match remove(&client, &binding.spec.project_key, &slugs, &key).await {
        Ok(count) => Ok(Cleanup::Done(vec![Notice {
            warning: false,
            reason: "CheckRemoved",
            action: "Delete",
            note: format!("removed {key} from {count} repositories"),
        }])),
        Err((slug, error)) if error.class() == ErrorClass::Unsupported => {
            let message = format!(
                "cannot remove {key} from {slug}: {error}; remove it by hand, then remove the finalizer {FINALIZER}"
            );
            Ok(Cleanup::Waiting(status, Outcome::stalled(reasons::UNSUPPORTED_SERVER, message)))
        }
        Err((slug, error)) => {
            let outcome = Outcome::from_error(&error);
            let message = format!("cannot remove {key} from {slug}: {}", outcome.message);
            Ok(Cleanup::Waiting(status, Outcome { message, ..outcome }))
        }
    }
}
