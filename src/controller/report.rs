//! RequiredReport: the merge check on every repository of its binding. `Manage` makes each
//! check match (reading first, writing only what differs); `Observe` reports drift and changes
//! nothing. Deletion removes the checks unless `deletionPolicy: Orphan`. A report of SonarQube's
//! key that SonarQube will never post (as its binding's configuration's SonarQube side proves)
//! keeps its check but is not Ready: every pull request stays blocked.

use kube::ResourceExt;

use crate::{
    api::{ProjectBinding, RequiredReport, RequiredReportStatus, required_report::ManagementPolicy},
    bitbucket::ErrorClass,
    plan::{
        merge_checks::{desired_check, report_key},
        reasons,
        report::{ReportInput, ReportSummary, removes_checks, summarize},
        selection::departed,
        sonarqube::reports::{SonarQubeView, never_posted},
        status::{Outcome, Phase},
    },
    sync::report::{apply, observe, remove},
};

use super::{
    checks::{Bound, Covering, bound, cleanup_targets, coverage, failed_round, slugs_of, states_before},
    context::{Context, FINALIZER},
    error::Error,
    events::listed,
    inventories::recorded,
    reconcile::{Cleanup, EventRule, Kind, Next, Notice, Round},
    references::{configuration_key, sonarqube_side},
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

    /// The report key and the records are what the next round and the cleanup work from; the
    /// list of repositories that need attention goes first.
    fn shortened(status: &RequiredReportStatus) -> Vec<RequiredReportStatus> {
        vec![RequiredReportStatus { needs_attention: Vec::new(), needs_attention_omitted: 0, ..status.clone() }]
    }
}

async fn enforce(ctx: &Context, report: &RequiredReport) -> Result<Round<RequiredReportStatus>, Error> {
    let previous = report.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    let (binding, client, interval, listing) = match bound(ctx, report).await? {
        Bound::Ready { binding, client, interval, listing } => (binding, client, interval, listing),
        Bound::Blocked(binding, outcome, wait) => {
            if let Some(binding) = binding {
                status.report_key = Some(report_key(&report.spec, &binding.spec));
            }
            return Ok(Round::finished(status, outcome, wait));
        }
        Bound::Pending(wait) => return Ok(Round::pending(wait)),
    };
    status.report_key = Some(report_key(&report.spec, &binding.spec));
    let key = report_key(&report.spec, &binding.spec);

    let observe_only = report.spec.management_policy == ManagementPolicy::Observe;
    let desired = desired_check(&key, &report.spec);
    let covered = recorded(report, &previous.repository_ids);
    let out_of_sync = recorded(report, &previous.out_of_sync_ids);
    let departed_ids = departed(&covered, listing.bound.iter().map(|(id, _)| *id));
    let departed = match slugs_of(&client, &listing, &departed_ids).await {
        Ok(departed) => departed,
        Err(error) => return Ok(failed_round(status, Outcome::from_error(&error), error, interval)),
    };
    let departed_slugs: Vec<String> = departed.iter().map(|(_, slug)| slug.clone()).collect();
    let bound: Vec<String> = listing.bound.iter().map(|(_, slug)| slug.clone()).collect();
    let input = ReportInput {
        project: &binding.spec.project_key,
        bound: &bound,
        departed: &departed_slugs,
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
            return Ok(failed_round(status, outcome, error, interval));
        }
    };

    let outcomes = if observe_only { Vec::new() } else { apply(&client, input.project, &plans).await };
    let before = states_before(&listing, &covered, &out_of_sync);
    let summary = summarize(&plans, &outcomes, &before, observe_only, &desired);
    let notices = announce(&key, &summary);
    let corrected = summary.corrected.len();
    // The report covers the bound repositories, and those that left but still have its check.
    status.record(coverage(&summary.repositories, &listing, &departed, &summary.unremoved));
    // The check is kept as the spec asks even when nothing will post the report; a report that
    // is otherwise in sync says so instead (its failures come first: they need fixing anyway).
    let outcome = match summary.outcome.phase {
        Phase::Ready => unposted(ctx, &binding, &key, listing.bound.len()).unwrap_or(summary.outcome),
        _ => summary.outcome,
    };
    let next = summary.transient.map_or(Next::Resync(interval), |error| Next::Retry(Error::Bitbucket(error)));
    Ok(Round { status, outcome, next, notices, corrected })
}

/// Why SonarQube will never post the report, as the SonarQube side of the binding's
/// configuration shows it (see [`never_posted`]); `None` when there is no such side or nothing
/// is proven.
fn unposted(ctx: &Context, binding: &ProjectBinding, key: &str, bound: usize) -> Option<Outcome> {
    // A store that has not finished its first list proves nothing.
    if !ctx.stores.is_synced() {
        return None;
    }
    let side = sonarqube_side(ctx, binding)?;
    let name = format!("{}/{}", binding.namespace().unwrap_or_default(), binding.name_any());
    let configuration = configuration_key(binding).to_string();
    let state = side.sonarqube.as_ref().and_then(|s| s.status.as_ref().map(|status| (status, s.metadata.generation)));
    never_posted(&SonarQubeView {
        report_key: key,
        binding: &name,
        monorepo: binding.spec.monorepo,
        bound,
        configuration: &configuration,
        configuration_conditions: &side.conditions,
        configuration_current: side.current,
        recorded: side.record.is_some(),
        sonarqube: &side.configuration,
        sonarqube_state: state,
    })
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
    let covered = recorded(report, &status.repository_ids);
    if keep || covered.is_empty() {
        return Ok(Cleanup::Done(Vec::new()));
    }
    let (binding, client, slugs) = match cleanup_targets(ctx, report, &covered, "the checks").await? {
        Ok(targets) => targets,
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
