//! RequiredReport: the merge check on every repository of its binding. `Manage` makes each
//! check match (reading first, writing only what differs); `Observe` reports drift and changes
//! nothing. Deletion removes the checks unless `deletionPolicy: Orphan`. A report of SonarQube's
//! key that SonarQube will never post (as its binding's configuration's SonarQube side proves)
//! keeps its check but is not Ready: every pull request stays blocked.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use kube::ResourceExt;

use crate::{
    api::{
        ProjectBinding, RequiredReport, RequiredReportStatus,
        coverage::{CheckState, RepositoryCheck, RepositoryIds, needing_attention},
        required_report::ManagementPolicy,
    },
    bitbucket::{Client, Error as BitbucketError, ErrorClass},
    plan::{
        dependencies::{BindingState, BindingUse, Blocked, Concluded, binding_use},
        merge_checks::{desired_check, report_key},
        reasons,
        report::{ReportInput, ReportSummary, removes_checks, summarize},
        selection::departed,
        sonarqube::reports::{SonarQubeView, never_posted},
        status::{Outcome, Phase, is_gone},
    },
    sync::report::{apply, observe, remove},
};

use super::{
    context::{Context, FINALIZER, key_of},
    error::Error,
    events::listed,
    inventories::{Inventory, Listing, recorded},
    reconcile::{Cleanup, EventRule, Kind, Next, Notice, Round},
    references::{
        Connected, UNRESOLVED_RECHECK, binding_of, cleanup_client, configuration_key, connect, recheck_after,
        sonarqube_side,
    },
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

/// The slugs of `ids` in the binding's project: from the binding's listing when it has one,
/// else (a binding of one slug) from a listing of the project. Ids no longer in the project are
/// gone, with nothing left to clean.
async fn slugs_of(client: &Client, listing: &Listing, ids: &[i64]) -> Result<Vec<(i64, String)>, BitbucketError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if listing.listed.is_some() {
        return Ok(ids.iter().filter_map(|id| listing.slug_of(*id).map(|slug| (*id, slug.to_owned()))).collect());
    }
    let all: HashMap<i64, String> =
        client.list_repositories(&listing.project).await?.into_iter().map(|r| (r.id, r.slug)).collect();
    Ok(ids.iter().filter_map(|id| all.get(id).map(|slug| (*id, slug.clone()))).collect())
}

async fn enforce(ctx: &Context, report: &RequiredReport) -> Result<Round<RequiredReportStatus>, Error> {
    let previous = report.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    let blocked = |status: RequiredReportStatus, blocked: Blocked| {
        let wait = recheck_after(&ctx.options, blocked.recheck, UNRESOLVED_RECHECK);
        Ok(Round::finished(status, blocked.outcome, wait))
    };
    let name = &report.spec.binding_ref.name;
    let Some(binding) = binding_of(&ctx.stores, report) else {
        return match binding_use(name, None, Concluded::Nothing) {
            BindingUse::Blocked(why) => blocked(status, why),
            _ => Ok(Round::pending(ctx.options.wait_delay)),
        };
    };
    status.report_key = Some(report_key(&report.spec, &binding.spec));
    // The configuration first: when it is the problem, the report says so itself.
    let (client, interval) = match connect(ctx, &binding).await? {
        Connected::Ready(client, interval) => (client, interval),
        Connected::NotReady(outcome, wait) => return Ok(Round::finished(status, outcome, wait)),
        Connected::Pending(wait) => return Ok(Round::pending(wait)),
    };
    let state = BindingState { status: binding.status.clone(), generation: binding.metadata.generation };
    let inventory = ctx.inventories.current(&binding);
    // What the binding's rounds resolved is read now, newest: a wake it sent before is answered.
    ctx.memo.clean(&key_of(report));
    let concluded = match &inventory {
        None => Concluded::Nothing,
        Some(Inventory::Listed(_)) => Concluded::Resolved,
        Some(Inventory::Unresolved(why)) => Concluded::Unresolved(why),
    };
    let listing = match (binding_use(name, Some(&state), concluded), inventory) {
        (BindingUse::Resolved, Some(Inventory::Listed(listing))) => listing,
        (BindingUse::Blocked(why), _) => return blocked(status, why),
        _ => return Ok(Round::pending(ctx.options.wait_delay)),
    };
    let key = report_key(&report.spec, &binding.spec);

    let observe_only = report.spec.management_policy == ManagementPolicy::Observe;
    let desired = desired_check(&key, &report.spec);
    let covered = recorded(report, &previous.repository_ids);
    let out_of_sync: HashSet<i64> = recorded(report, &previous.out_of_sync_ids).into_iter().collect();
    let departed_ids = departed(&covered, listing.bound.iter().map(|(id, _)| *id));
    let departed = match slugs_of(&client, &listing, &departed_ids).await {
        Ok(departed) => departed,
        Err(error) => {
            let outcome = Outcome::from_error(&error);
            let next = if outcome.phase == Phase::Reconciling {
                Next::Retry(Error::Bitbucket(error))
            } else {
                Next::Resync(interval)
            };
            return Ok(Round { status, outcome, next, notices: Vec::new(), corrected: 0 });
        }
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
            let next = if outcome.phase == Phase::Reconciling {
                Next::Retry(Error::Bitbucket(error))
            } else {
                Next::Resync(interval)
            };
            return Ok(Round { status, outcome, next, notices: Vec::new(), corrected: 0 });
        }
    };

    let outcomes = if observe_only { Vec::new() } else { apply(&client, input.project, &plans).await };
    let covered_set: HashSet<i64> = covered.iter().copied().collect();
    let before: HashMap<String, CheckState> = listing
        .bound
        .iter()
        .filter(|(id, _)| covered_set.contains(id))
        .map(|(id, slug)| {
            (slug.clone(), if out_of_sync.contains(id) { CheckState::Pending } else { CheckState::InSync })
        })
        .collect();
    let summary = summarize(&plans, &outcomes, &before, observe_only, &desired);
    let notices = announce(&key, &summary);
    let corrected = summary.corrected.len();
    record(&mut status, &summary, &listing, &departed);
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

/// Counts, the repositories that need attention and the records, from a round's summary: the
/// report covers the bound repositories, and those that left but still have its check.
fn record(status: &mut RequiredReportStatus, summary: &ReportSummary, listing: &Listing, departed: &[(i64, String)]) {
    let count = |state: CheckState| {
        i32::try_from(summary.repositories.iter().filter(|r| r.state == state).count()).unwrap_or(i32::MAX)
    };
    status.repository_count = summary.total;
    status.in_sync_count = summary.in_sync;
    status.drifted_count = count(CheckState::Drifted);
    status.failed_count = count(CheckState::Failed);
    let unremoved: HashSet<&str> = summary.unremoved.iter().map(String::as_str).collect();
    let left = departed.iter().filter(|(_, slug)| unremoved.contains(slug.as_str()));
    let mut entries: Vec<RepositoryCheck> = summary.repositories.clone();
    entries.extend(left.clone().map(|(_, slug)| RepositoryCheck {
        slug: slug.clone(),
        state: CheckState::Failed,
        message: Some("left the binding, but its check could not be removed; tried again next round".to_owned()),
    }));
    entries.sort_by(|a, b| a.slug.cmp(&b.slug));
    (status.needs_attention, status.needs_attention_omitted) = needing_attention(entries);
    let states: HashMap<&str, CheckState> = summary.repositories.iter().map(|r| (r.slug.as_str(), r.state)).collect();
    status.repository_ids =
        RepositoryIds::of(listing.bound.iter().map(|(id, _)| *id).chain(left.clone().map(|(id, _)| *id)));
    status.out_of_sync_ids = RepositoryIds::of(
        listing
            .bound
            .iter()
            .filter(|(_, slug)| states.get(slug.as_str()).is_some_and(|s| *s != CheckState::InSync))
            .map(|(id, _)| *id)
            .chain(left.map(|(id, _)| *id)),
    );
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
    // The binding's listing of this process when there is one; else the project's.
    let listing = match ctx.inventories.current(&binding) {
        Some(Inventory::Listed(listing)) if listing.listed.is_some() => listing,
        _ => Arc::new(Listing { project: binding.spec.project_key.clone(), ..Listing::default() }),
    };
    let slugs: Vec<String> = match slugs_of(&client, &listing, &covered).await {
        Ok(found) => found.into_iter().map(|(_, slug)| slug).collect(),
        Err(error) if is_gone(&error) => Vec::new(),
        Err(error) => {
            let outcome = Outcome::from_error(&error);
            let message = format!("cannot list the repositories to remove the checks from: {}", outcome.message);
            return Ok(Cleanup::Waiting(status, Outcome { message, ..outcome }));
        }
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
