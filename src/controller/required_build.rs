//! RequiredBuild: the required-builds merge check on every repository of its binding. `Manage`
//! makes each repository hold one condition of ours (adopting an identical one, updating ours
//! in place after a spec change, never creating a second); `Observe` reports drift and changes
//! nothing. Deletion removes ours unless `deletionPolicy: Orphan`. Ours are known by content
//! (see [`crate::plan::required_builds`]): `status.applied` records what was last written.

use crate::{
    api::{RequiredBuild, RequiredBuildStatus, required_build::AppliedBuild, required_report::ManagementPolicy},
    bitbucket::ErrorClass,
    plan::{
        reasons,
        required_builds::{
            removes_conditions,
            round::{BuildInput, BuildSummary, MANUAL_STEPS, requirement, summarize, unsupported},
        },
        selection::departed,
        status::{Outcome, Phase},
    },
    sync::required_builds::{apply, observe},
};

use super::{
    checks::{Bound, Covering, bound, cleanup_targets, coverage, failed_round, slugs_of, states_before},
    context::{Context, FINALIZER},
    error::Error,
    events::listed,
    inventories::recorded,
    reconcile::{Cleanup, EventRule, Kind, Next, Notice, Round},
};

impl Kind for RequiredBuild {
    const KIND: &'static str = "RequiredBuild";
    const EVENTS: EventRule = EventRule { action: "EnsureCheck", phases: &[Phase::Stalled] };

    async fn round(ctx: &Context, build: &Self) -> Result<Round<RequiredBuildStatus>, Error> {
        enforce(ctx, build).await
    }

    async fn cleanup(ctx: &Context, build: &Self) -> Result<Cleanup<RequiredBuildStatus>, Error> {
        withdraw(ctx, build).await
    }

    /// The records are what the next round and the cleanup work from; the list of repositories
    /// that need attention goes first.
    fn shortened(status: &RequiredBuildStatus) -> Vec<RequiredBuildStatus> {
        vec![RequiredBuildStatus { needs_attention: Vec::new(), needs_attention_omitted: 0, ..status.clone() }]
    }
}

async fn enforce(ctx: &Context, build: &RequiredBuild) -> Result<Round<RequiredBuildStatus>, Error> {
    let previous = build.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    let (binding, client, interval, listing) = match bound(ctx, build).await? {
        Bound::Ready { binding, client, interval, listing } => (binding, client, interval, listing),
        Bound::Blocked(_, outcome, wait) => return Ok(Round::finished(status, outcome, wait)),
        Bound::Pending(wait) => return Ok(Round::pending(wait)),
    };
    let spec = &build.spec;
    let covered = recorded(build, &previous.repository_ids);
    let out_of_sync = recorded(build, &previous.out_of_sync_ids);
    let departed_ids = departed(&covered, listing.bound.iter().map(|(id, _)| *id));
    let departed = match slugs_of(&client, &listing, &departed_ids).await {
        Ok(departed) => departed,
        Err(error) => return Ok(failed_round(status, Outcome::from_error(&error), error, interval)),
    };
    let departed_slugs: Vec<String> = departed.iter().map(|(_, slug)| slug.clone()).collect();
    let bound: Vec<String> = listing.bound.iter().map(|(_, slug)| slug.clone()).collect();
    let input = BuildInput {
        project: &binding.spec.project_key,
        bound: &bound,
        departed: &departed_slugs,
        spec,
        applied: previous.applied.as_ref(),
        remove_departed: removes_conditions(spec),
    };
    if let Err(error) = input.check() {
        return Ok(Round::finished(status, Outcome::from_error(&error), interval));
    }
    let plans = match observe(&client, &input).await {
        Ok(plans) => plans,
        Err(error) => {
            let outcome = if error.class() == ErrorClass::Unsupported {
                unsupported(&error, spec)
            } else {
                Outcome::from_error(&error)
            };
            return Ok(failed_round(status, outcome, error, interval));
        }
    };
    let observe_only = spec.management_policy == ManagementPolicy::Observe;
    let outcomes = if observe_only { Vec::new() } else { apply(&client, input.project, &plans).await };
    let before = states_before(&listing, &covered, &out_of_sync);
    let summary = summarize(&plans, &outcomes, &before, spec);
    let notices = announce(&summary);
    let corrected = summary.corrected.len() + summary.deduplicated.len();
    status.record(coverage(&summary.repositories, &listing, &departed, &summary.unremoved));
    status.applied = applied_record(&previous, spec, &summary, observe_only);
    let outcome = summary.outcome;
    let next = summary.transient.map_or(Next::Resync(interval), |error| Next::Retry(Error::Bitbucket(error)));
    Ok(Round { status, outcome, next, notices, corrected })
}

/// What `status.applied` records after a round: the spec once every bound repository holds it
/// (so the next spec change updates those conditions in place); until then what was recorded
/// before, since some repositories may still hold that content. Observe changes nothing, so
/// its record stays as it was.
fn applied_record(
    previous: &RequiredBuildStatus,
    spec: &crate::api::RequiredBuildSpec,
    summary: &BuildSummary,
    observe_only: bool,
) -> Option<AppliedBuild> {
    let all_in_sync = summary.in_sync == summary.total && summary.unremoved.is_empty();
    if !observe_only && (all_in_sync || previous.applied.is_none()) {
        Some(AppliedBuild::from(spec))
    } else {
        previous.applied.clone()
    }
}

/// The Events of a round: one per kind of change, naming the repositories.
fn announce(summary: &BuildSummary) -> Vec<Notice> {
    let events: [(&[String], bool, &'static str, &'static str, &str); 7] = [
        (&summary.created, false, "CheckCreated", "EnsureCheck", "created the required-builds condition on"),
        (&summary.adopted, false, "CheckAdopted", "EnsureCheck", "took over the identical existing condition on"),
        (&summary.updated, false, "CheckUpdated", "EnsureCheck", "updated the condition to the changed spec on"),
        (
            &summary.corrected,
            true,
            "DriftCorrected",
            "EnsureCheck",
            "restored the condition (it was removed or changed by hand) on",
        ),
        (&summary.deduplicated, true, "DriftCorrected", "EnsureCheck", "deleted duplicates of the condition on"),
        (
            &summary.drifted,
            true,
            "DriftDetected",
            "ObserveCheck",
            "the required-builds condition differs from the spec on",
        ),
        (&summary.removed, false, "CheckRemoved", "EnsureCheck", "removed the condition (they left the binding) from"),
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

async fn withdraw(ctx: &Context, build: &RequiredBuild) -> Result<Cleanup<RequiredBuildStatus>, Error> {
    let status = build.status.clone().unwrap_or_default();
    let covered = recorded(build, &status.repository_ids);
    if !removes_conditions(&build.spec) || covered.is_empty() {
        return Ok(Cleanup::Done(Vec::new()));
    }
    let (binding, client, slugs) = match cleanup_targets(ctx, build, &covered, "the conditions").await? {
        Ok(targets) => targets,
        Err(outcome) => return Ok(Cleanup::Waiting(status, outcome)),
    };
    // Every covered repository as one that left: only conditions of ours are deleted.
    let input = BuildInput {
        project: &binding.spec.project_key,
        bound: &[],
        departed: &slugs,
        spec: &build.spec,
        applied: status.applied.as_ref(),
        remove_departed: true,
    };
    let plans = match observe(&client, &input).await {
        Ok(plans) => plans,
        Err(error) => return Ok(Cleanup::Waiting(status, removal_failure(build, None, &error))),
    };
    if let Some((slug, error)) = plans.iter().find_map(|p| p.error.as_ref().map(|e| (&p.slug, e))) {
        return Ok(Cleanup::Waiting(status, removal_failure(build, Some(slug), error)));
    }
    let outcomes = apply(&client, input.project, &plans).await;
    if let Some((slug, error)) = outcomes.iter().find_map(|o| o.error.as_ref().map(|e| (&o.slug, e))) {
        return Ok(Cleanup::Waiting(status, removal_failure(build, Some(slug), error)));
    }
    let removed: usize = outcomes.iter().map(|o| o.deleted.len()).sum();
    Ok(Cleanup::Done(vec![Notice {
        warning: false,
        reason: "CheckRemoved",
        action: "Delete",
        note: format!("removed {removed} required-builds conditions from {} repositories", outcomes.len()),
    }]))
}

fn removal_failure(build: &RequiredBuild, slug: Option<&String>, error: &crate::bitbucket::Error) -> Outcome {
    let from = slug.map_or_else(String::new, |slug| format!(" from {slug}"));
    if error.class() == ErrorClass::Unsupported {
        let message = format!(
            "cannot remove the conditions{from}: {error}; remove them by hand ({MANUAL_STEPS}: {}), then remove the finalizer {FINALIZER}",
            requirement(&build.spec)
        );
        return Outcome::stalled(reasons::UNSUPPORTED_SERVER, message);
    }
    let outcome = Outcome::from_error(error);
    let message = format!("cannot remove the conditions{from}: {}", outcome.message);
    Outcome { message, ..outcome }
}
