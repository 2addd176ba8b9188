//! What the two merge-check kinds (RequiredReport, RequiredBuild) share: working from their
//! binding's round in this process, finding the slugs of the repositories their record covers,
//! and recording a round's coverage in their bounded status.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use crate::{
    api::{
        ProjectBinding,
        coverage::{CheckState, RepositoryCheck, RepositoryIds, needing_attention},
    },
    bitbucket::{Client, Error as BitbucketError},
    plan::{
        dependencies::{BindingState, BindingUse, Blocked, Concluded, binding_use},
        reasons,
        status::{Outcome, Phase, is_gone},
    },
};

use super::{
    context::{Context, FINALIZER, key_of},
    error::Error,
    inventories::{Inventory, Listing},
    reconcile::{Next, Round},
    references::{Connected, UNRESOLVED_RECHECK, UsesBinding, binding_of, cleanup_client, connect, recheck_after},
};

/// Where a merge check stands with its binding before its round.
pub enum Bound {
    /// The binding resolved its repositories in this process: the client of its configuration,
    /// the resync interval and what was resolved.
    Ready {
        /// The binding.
        binding: Arc<ProjectBinding>,
        /// Its configuration's client.
        client: Client,
        /// The configuration's resync interval.
        interval: Duration,
        /// The repositories it resolved.
        listing: Arc<Listing>,
    },
    /// Not usable: the outcome says why; look again after this long.
    Blocked(Option<Arc<ProjectBinding>>, Outcome, Duration),
    /// Nothing to conclude yet: look again after this long (nothing is written).
    Pending(Duration),
}

/// The binding of `object` and what its round in this process resolved, when it can be worked
/// from; its configuration first, so that when the configuration is the problem, the check says
/// so itself.
pub async fn bound<K: UsesBinding>(ctx: &Context, object: &K) -> Result<Bound, Error> {
    let blocked = |binding, blocked: Blocked| {
        let wait = recheck_after(&ctx.options, blocked.recheck, UNRESOLVED_RECHECK);
        Bound::Blocked(binding, blocked.outcome, wait)
    };
    let name = object.binding_name();
    let Some(binding) = binding_of(&ctx.stores, object) else {
        return Ok(match binding_use(name, None, Concluded::Nothing) {
            BindingUse::Blocked(why) => blocked(None, why),
            _ => Bound::Pending(ctx.options.wait_delay),
        });
    };
    let (client, interval) = match connect(ctx, &binding).await? {
        Connected::Ready(client, interval) => (client, interval),
        Connected::NotReady(outcome, wait) => return Ok(Bound::Blocked(Some(binding), outcome, wait)),
        Connected::Pending(wait) => return Ok(Bound::Pending(wait)),
    };
    let state = BindingState { status: binding.status.clone(), generation: binding.metadata.generation };
    let inventory = ctx.inventories.current(&binding);
    // What the binding's rounds resolved is read now, newest: a wake it sent before is answered.
    ctx.memo.clean(&key_of(object));
    let concluded = match &inventory {
        None => Concluded::Nothing,
        Some(Inventory::Listed(_)) => Concluded::Resolved,
        Some(Inventory::Unresolved(why)) => Concluded::Unresolved(why),
    };
    Ok(match (binding_use(name, Some(&state), concluded), inventory) {
        (BindingUse::Resolved, Some(Inventory::Listed(listing))) => Bound::Ready { binding, client, interval, listing },
        (BindingUse::Blocked(why), _) => blocked(Some(binding), why),
        _ => Bound::Pending(ctx.options.wait_delay),
    })
}

/// A round that ends on a Bitbucket failure before anything was planned: retried with backoff
/// when the outcome is `Reconciling`, else looked at again at the next resync.
pub fn failed_round<S>(status: S, outcome: Outcome, error: BitbucketError, interval: Duration) -> Round<S> {
    let next =
        if outcome.phase == Phase::Reconciling { Next::Retry(Error::Bitbucket(error)) } else { Next::Resync(interval) };
    Round { status, outcome, next, notices: Vec::new(), corrected: 0 }
}

/// The slugs of `ids` in the binding's project: from the binding's listing when it has one,
/// else (a binding of one slug) from a listing of the project. Ids no longer in the project are
/// gone, with nothing left to clean.
pub async fn slugs_of(client: &Client, listing: &Listing, ids: &[i64]) -> Result<Vec<(i64, String)>, BitbucketError> {
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

/// The listing a cleanup works from: the binding's of this process when it listed the project,
/// else one that makes [`slugs_of`] list it.
fn cleanup_listing(ctx: &Context, binding: &ProjectBinding) -> Arc<Listing> {
    match ctx.inventories.current(binding) {
        Some(Inventory::Listed(listing)) if listing.listed.is_some() => listing,
        _ => Arc::new(Listing { project: binding.spec.project_key.clone(), ..Listing::default() }),
    }
}

/// The states the covered repositories had after the last round, by slug: `Pending` for those
/// recorded as out of sync.
pub fn states_before(listing: &Listing, covered: &[i64], out_of_sync: &[i64]) -> HashMap<String, CheckState> {
    let covered: HashSet<i64> = covered.iter().copied().collect();
    let out_of_sync: HashSet<i64> = out_of_sync.iter().copied().collect();
    listing
        .bound
        .iter()
        .filter(|(id, _)| covered.contains(id))
        .map(|(id, slug)| {
            (slug.clone(), if out_of_sync.contains(id) { CheckState::Pending } else { CheckState::InSync })
        })
        .collect()
}

/// The slugs of the repositories a deleted merge check still covers (`covered`, by id), with the
/// binding and the client to remove its checks through; or the outcome the cleanup waits with.
/// `what` names the checks in messages ("the checks", "the conditions").
pub async fn cleanup_targets<K: UsesBinding>(
    ctx: &Context,
    object: &K,
    covered: &[i64],
    what: &str,
) -> Result<Result<(Arc<ProjectBinding>, Client, Vec<String>), Outcome>, Error> {
    let Some(binding) = binding_of(&ctx.stores, object) else {
        let message = format!(
            "cannot remove {what}: ProjectBinding {} is gone; recreate it, or remove the finalizer {FINALIZER} to leave {what} in Bitbucket",
            object.binding_name()
        );
        return Ok(Err(Outcome::stalled(reasons::BINDING_NOT_FOUND, message)));
    };
    let client = match cleanup_client(ctx, &binding, what).await? {
        Ok(client) => client,
        Err(outcome) => return Ok(Err(outcome)),
    };
    let listing = cleanup_listing(ctx, &binding);
    match slugs_of(&client, &listing, covered).await {
        Ok(found) => Ok(Ok((binding, client, found.into_iter().map(|(_, slug)| slug).collect()))),
        Err(error) if is_gone(&error) => Ok(Ok((binding, client, Vec::new()))),
        Err(error) => {
            let outcome = Outcome::from_error(&error);
            let message = format!("cannot list the repositories to remove {what} from: {}", outcome.message);
            Ok(Err(Outcome { message, ..outcome }))
        }
    }
}

/// A merge check's status, which records a round's [`Coverage`].
pub trait Covering {
    /// Records the coverage of a round.
    fn record(&mut self, coverage: Coverage);
}

macro_rules! covering {
    ($($status:ty),+) => {$(
        impl Covering for $status {
            fn record(&mut self, coverage: Coverage) {
                self.repository_count = coverage.repository_count;
                self.in_sync_count = coverage.in_sync_count;
                self.drifted_count = coverage.drifted_count;
                self.failed_count = coverage.failed_count;
                self.needs_attention = coverage.needs_attention;
                self.needs_attention_omitted = coverage.needs_attention_omitted;
                self.repository_ids = coverage.repository_ids;
                self.out_of_sync_ids = coverage.out_of_sync_ids;
            }
        }
    )+};
}

covering!(crate::api::RequiredReportStatus, crate::api::RequiredBuildStatus);

/// A round's coverage as a merge check's status records it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Coverage {
    /// Bound repositories.
    pub repository_count: i32,
    /// Of them, in sync.
    pub in_sync_count: i32,
    /// Drifted (observe only).
    pub drifted_count: i32,
    /// Failed.
    pub failed_count: i32,
    /// Those that need attention (bounded), by slug.
    pub needs_attention: Vec<RepositoryCheck>,
    /// How many more need attention than are listed.
    pub needs_attention_omitted: i32,
    /// The repositories covered: the bound ones and those that left with the check still on
    /// them.
    pub repository_ids: RepositoryIds,
    /// Of them, those not in sync.
    pub out_of_sync_ids: RepositoryIds,
}

/// The coverage of a round, from the bound repositories' entries, the repositories that left
/// (`departed`) and, of them, those whose check could not be removed (`unremoved`, by slug).
pub fn coverage(
    repositories: &[RepositoryCheck],
    listing: &Listing,
    departed: &[(i64, String)],
    unremoved: &[String],
) -> Coverage {
    let count =
        |state: CheckState| i32::try_from(repositories.iter().filter(|r| r.state == state).count()).unwrap_or(i32::MAX);
    let unremoved: HashSet<&str> = unremoved.iter().map(String::as_str).collect();
    let left: Vec<&(i64, String)> = departed.iter().filter(|(_, slug)| unremoved.contains(slug.as_str())).collect();
    let mut entries: Vec<RepositoryCheck> = repositories.to_vec();
    entries.extend(left.iter().map(|(_, slug)| RepositoryCheck {
        slug: slug.clone(),
        state: CheckState::Failed,
        message: Some("left the binding, but its check could not be removed; tried again next round".to_owned()),
    }));
    entries.sort_by(|a, b| a.slug.cmp(&b.slug));
    let (needs_attention, needs_attention_omitted) = needing_attention(entries);
    let states: HashMap<&str, CheckState> = repositories.iter().map(|r| (r.slug.as_str(), r.state)).collect();
    let left_ids = || left.iter().map(|(id, _)| *id);
    Coverage {
        repository_count: i32::try_from(repositories.len()).unwrap_or(i32::MAX),
        in_sync_count: count(CheckState::InSync),
        drifted_count: count(CheckState::Drifted),
        failed_count: count(CheckState::Failed),
        needs_attention,
        needs_attention_omitted,
        repository_ids: RepositoryIds::of(listing.bound.iter().map(|(id, _)| *id).chain(left_ids())),
        out_of_sync_ids: RepositoryIds::of(
            listing
                .bound
                .iter()
                .filter(|(_, slug)| states.get(slug.as_str()).is_some_and(|s| *s != CheckState::InSync))
                .map(|(id, _)| *id)
                .chain(left_ids()),
        ),
    }
}
