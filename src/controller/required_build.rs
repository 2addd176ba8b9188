//! RequiredBuild: the required-builds merge check on every repository of its binding. `Manage`
//! makes each repository hold one condition of ours (adopting an identical one, updating ours
//! in place after a spec change, never creating a second); `Observe` reports drift and changes
//! nothing. Deletion removes ours unless `deletionPolicy: Orphan`. Ours are known by content
//! (see [`crate::plan::required_builds`]): `status.applied` records what was last written.

use crate::{
    api::{
        RequiredBuild, RequiredBuildStatus,
        required_build::{AppliedBuild, MAX_APPLIED},
        required_report::ManagementPolicy,
    },
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
        applied: &previous.applied,
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

/// What `status.applied` records after a round: only the spec once every bound repository
/// holds it; until then the spec first, then what was recorded before (some repositories may
/// still hold those contents), at most [`MAX_APPLIED`]. Observe changes nothing, so its record
/// stays as it was.
fn applied_record(
    previous: &RequiredBuildStatus,
    spec: &crate::api::RequiredBuildSpec,
    summary: &BuildSummary,
    observe_only: bool,
) -> Vec<AppliedBuild> {
    if observe_only {
        return previous.applied.clone();
    }
    let current = AppliedBuild::from(spec);
    if summary.in_sync == summary.total && summary.unremoved.is_empty() {
        return vec![current];
    }
    let mut record = vec![current.clone()];
    record.extend(previous.applied.iter().filter(|a| **a != current).cloned());
    record.truncate(MAX_APPLIED);
    record
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
        applied: &status.applied,
        remove_departed: true,
    };
    let plans = match observe(&client, &input).await {
        Ok(plans) => plans,
        Err(error) => return Ok(Cleanup::Waiting(status, removal_failure(build, None, &error))),
    };
    // What could be read is cleaned up now; a repository that failed waits for the next try.
    let outcomes = apply(&client, input.project, &plans).await;
    let failure = plans
        .iter()
        .find_map(|p| p.error.as_ref().map(|e| (&p.slug, e)))
        .or_else(|| outcomes.iter().find_map(|o| o.error.as_ref().map(|e| (&o.slug, e))));
    if let Some((slug, error)) = failure {
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
    let message = match outcome.phase {
        Phase::Stalled => format!(
            "cannot remove the conditions{from}: {}; fix that, or remove the finalizer {FINALIZER} to leave them in Bitbucket",
            outcome.message
        ),
        _ => format!("cannot remove the conditions{from}: {}", outcome.message),
    };
    Outcome { message, ..outcome }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RequiredBuildSpec, refs::BindingRef, required_report::DeletionPolicy};

    fn spec(keys: &[&str]) -> RequiredBuildSpec {
        RequiredBuildSpec {
            binding_ref: BindingRef { name: "b".into() },
            build_parent_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ref_matcher: None,
            exempt_ref_matcher: None,
            deletion_policy: DeletionPolicy::Delete,
            management_policy: ManagementPolicy::Manage,
        }
    }

    fn summary(total: i32, in_sync: i32) -> BuildSummary {
        BuildSummary { total, in_sync, ..BuildSummary::default() }
    }

    fn keys(record: &[AppliedBuild]) -> Vec<Vec<String>> {
        record.iter().map(|a| a.build_parent_keys.clone()).collect()
    }

    #[test]
    fn the_record_keeps_every_content_some_repository_may_still_hold() {
        let (s1, s2, s3) = (spec(&["ci"]), spec(&["ci", "lint"]), spec(&["ci", "lint", "gate"]));
        let start = RequiredBuildStatus { applied: vec![AppliedBuild::from(&s1)], ..RequiredBuildStatus::default() };
        // S2 reached only some repositories: S1 stays on the record, behind S2.
        let applied = applied_record(&start, &s2, &summary(3, 2), false);
        assert_eq!(keys(&applied), [s2.build_parent_keys.clone(), s1.build_parent_keys.clone()]);
        // S3 before S2 reached every repository: all three are known.
        let partial = RequiredBuildStatus { applied, ..RequiredBuildStatus::default() };
        let applied = applied_record(&partial, &s3, &summary(3, 1), false);
        assert_eq!(keys(&applied).len(), 3);
        // Once every repository holds the spec, only it.
        let later = RequiredBuildStatus { applied, ..RequiredBuildStatus::default() };
        assert_eq!(
            keys(&applied_record(&later, &s3, &summary(3, 3), false)),
            std::slice::from_ref(&s3.build_parent_keys)
        );
        // A repository that left with its condition still on it keeps the old contents known.
        let mut left = summary(3, 3);
        left.unremoved.push("old".into());
        assert_eq!(applied_record(&later, &s3, &left, false).len(), 3);
        // Observe writes nothing, so it records nothing new.
        assert_eq!(applied_record(&start, &s3, &summary(3, 0), true), start.applied);
    }

    #[test]
    fn the_record_is_bounded() {
        let mut status = RequiredBuildStatus::default();
        for i in 0..(MAX_APPLIED + 5) {
            status.applied = applied_record(&status, &spec(&[&format!("k{i}")]), &summary(2, 1), false);
        }
        assert_eq!(status.applied.len(), MAX_APPLIED);
        assert_eq!(status.applied[0].build_parent_keys, [format!("k{}", MAX_APPLIED + 4)]);
    }
}
