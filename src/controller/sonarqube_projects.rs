//! The SonarQube side of a binding's round (`spec.sonarqube`): each bound repository's
//! SonarQube project, bound to it through the setting its Bitbucket configuration keeps, and
//! created with `createProjects`. Runs after the webhooks, with the repositories they resolved;
//! bindings the operator made are removed when their repository leaves, when the keys change,
//! and when the binding is deleted. Projects are never deleted.

use std::collections::{BTreeSet, HashMap};

use kube::ResourceExt;

use crate::{
    api::{
        ProjectBinding,
        binding::{SonarQubeBindingStatus, SonarQubeProject},
        conditions::{READY, find},
    },
    plan::{
        reasons,
        sonarqube::{
            bindings::{DesiredBinding, ProjectResult, RepositoryProject, summarize},
            claims::{Claim, conflicts},
            connection::{capability, has_capability},
            keys::project_key,
        },
        status::Outcome,
    },
    sonarqube,
    sync::sonarqube::projects::{ProjectWork, Released, Route, keep_projects, release_projects},
};

use super::{
    context::Context,
    error::Error,
    events::listed,
    inventories::Inventory,
    reconcile::Notice,
    references::{SonarQubeSide, sonarqube_side},
};

/// What the SonarQube side of a round came to.
#[derive(Default)]
pub(super) struct Kept {
    /// The record for `status.sonarqube`.
    pub status: Option<SonarQubeBindingStatus>,
    /// Why it is not all as asked, if it is not.
    pub outcome: Option<Outcome>,
    /// The failure worth a retry.
    pub retry: Option<sonarqube::Error>,
    /// Events about what changed.
    pub notices: Vec<Notice>,
    /// How many bindings changed in SonarQube were put back.
    pub corrected: usize,
    /// The bindings of repositories that left could not all be removed: those repositories stay
    /// on the record, to be looked at again next round.
    pub keep_departed: bool,
}

/// A bound repository, as the SonarQube side needs it.
pub(super) struct Repository {
    pub slug: String,
    pub name: String,
}

/// The project key spec of a record (`projectKey` or `projectKeyTemplate`, as written).
fn keys_of(spec: &SonarQubeProject) -> String {
    spec.project_key.clone().or_else(|| spec.project_key_template.clone()).unwrap_or_default()
}

/// The spec a record's `projectKeys` stands for: a template when it holds `{slug}`.
fn spec_of_record(keys: &str) -> SonarQubeProject {
    let template = keys.contains("{slug}");
    SonarQubeProject {
        project_key: (!template).then(|| keys.to_owned()),
        project_key_template: template.then(|| keys.to_owned()),
        create_projects: false,
    }
}

/// A SonarQube client and what it can do, or the outcome that says why there is none.
struct Connected {
    client: sonarqube::Client,
    side: SonarQubeSide,
    alm_setting: String,
}

fn connected(ctx: &Context, binding: &ProjectBinding, side: SonarQubeSide) -> Result<Connected, Outcome> {
    let shown = super::references::configuration_key(binding).to_string();
    let ready = side
        .sonarqube
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .and_then(|s| find(&s.conditions, READY))
        .is_some_and(|c| c.status == "True");
    let client = ctx.sonarqube.current(&side.configuration).filter(|_| ready);
    let Some(client) = client else {
        return Err(Outcome::reconciling(
            reasons::SONARQUBE_NOT_READY,
            format!("waiting for SonarQubeConfiguration {} to be Ready (see its condition)", side.configuration),
        ));
    };
    let Some(record) = side.record.clone() else {
        return Err(Outcome::reconciling(
            reasons::SONARQUBE_NOT_READY,
            format!("waiting for {shown} to keep SonarQube's DevOps Platform setting (see its condition)"),
        ));
    };
    Ok(Connected { client, side, alm_setting: record.alm_setting_key })
}

/// How this SonarQube binds, or the outcome that says it cannot.
async fn route(
    ctx: &Context,
    binding: &ProjectBinding,
    connected: &Connected,
) -> Result<Result<Route, Outcome>, Error> {
    let Some(status) = connected.side.sonarqube.as_ref().and_then(|s| s.status.as_ref()) else {
        return Ok(Err(Outcome::reconciling(reasons::SONARQUBE_NOT_READY, "waiting for the SonarQube check")));
    };
    let edition = status.server.as_ref().and_then(|s| s.edition.clone()).unwrap_or_else(|| "unknown".into());
    if binding.spec.monorepo && !has_capability(status, capability::MONOREPO) {
        return Ok(Err(Outcome::stalled(
            reasons::EDITION_LIMIT,
            format!(
                "monorepo: true needs monorepo support, which SonarQube {edition} lacks (Enterprise Edition has it): bind one SonarQube project per repository, or upgrade"
            ),
        )));
    }
    if has_capability(status, capability::PROJECT_BINDINGS) {
        return Ok(Ok(Route::SetBinding));
    }
    if !has_capability(status, capability::BOUND_PROJECTS) {
        return Ok(Err(Outcome::stalled(
            reasons::EDITION_LIMIT,
            format!(
                "SonarQube {edition} of SonarQubeConfiguration {} cannot bind projects over its API; bind them in its UI, or remove spec.sonarqube",
                connected.side.configuration
            ),
        )));
    }
    // Community Build binds with a Bitbucket token stored for the operator's own user: the
    // one the configuration has SonarQube keep.
    let namespace = connected.side.configuration.split_once('/').map(|(ns, _)| ns).unwrap_or_default().to_owned();
    Ok(match super::integration::sonarqube_token(ctx, &namespace, &connected.side.block.token_secret_ref).await? {
        Ok((pat, _)) => Ok(Route::BoundProjects { pat }),
        Err(message) => {
            Err(Outcome::stalled(reasons::SONARQUBE_INTEGRATION_FAILED, format!("the configuration's {message}")))
        }
    })
}

/// The project keys every other binding on the same SonarQube claims, as far as this process
/// knows them (a template's keys from that binding's last round here).
fn claims(ctx: &Context, binding: &ProjectBinding, configuration: &str, own: Vec<String>) -> Vec<Claim> {
    let name = |b: &ProjectBinding| format!("{}/{}", b.namespace().unwrap_or_default(), b.name_any());
    let created =
        |b: &ProjectBinding| b.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default();
    let mut all = vec![Claim { binding: name(binding), created: created(binding), projects: own }];
    for other in ctx.stores.bindings.state() {
        let Some(spec) = &other.spec.sonarqube else { continue };
        if other.uid() == binding.uid() || other.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if sonarqube_side(ctx, &other).is_none_or(|s| s.configuration != configuration) {
            continue;
        }
        let projects = match (&spec.project_key, ctx.inventories.current(&other)) {
            (Some(key), _) => vec![key.clone()],
            (None, Some(Inventory::Listed(listing))) => listing
                .bound
                .iter()
                .filter_map(|(_, slug)| project_key(spec, &other.spec.project_key, slug).ok())
                .collect(),
            (None, _) => Vec::new(),
        };
        all.push(Claim { binding: name(&other), created: created(&other), projects });
    }
    all
}

/// Keeps the binding's SonarQube projects bound; `bound` are the repositories the round
/// resolved, `departed` the slugs of those that left it.
pub(super) async fn keep(
    ctx: &Context,
    binding: &ProjectBinding,
    bound: &[Repository],
    departed: &[String],
) -> Result<Kept, Error> {
    let previous = binding.status.as_ref().and_then(|s| s.sonarqube.clone());
    let Some(spec) = binding.spec.sonarqube.clone() else {
        return release_all(ctx, binding, bound, departed, previous).await;
    };
    // Without a SonarQube integration on the configuration, spec.sonarqube only names a
    // monorepo's report key: there is nothing to bind through.
    let Some(side) = sonarqube_side(ctx, binding) else {
        return Ok(Kept::default());
    };
    // Until the SonarQube side runs, repositories that left keep their place on the record.
    let waiting = |outcome: Outcome| Kept {
        status: previous.clone(),
        outcome: Some(outcome),
        keep_departed: previous.is_some(),
        ..Kept::default()
    };
    let connected = match connected(ctx, binding, side) {
        Ok(connected) => connected,
        Err(outcome) => return Ok(waiting(outcome)),
    };
    let route = match route(ctx, binding, &connected).await? {
        Ok(route) => route,
        Err(outcome) => return Ok(waiting(outcome)),
    };
    let project = &binding.spec.project_key;
    let desired = |slug: &str, key: String| DesiredBinding {
        project: key,
        alm_setting: connected.alm_setting.clone(),
        repository: project.clone(),
        slug: slug.to_owned(),
        monorepo: binding.spec.monorepo,
    };
    let mut results = Vec::new();
    let mut work = Vec::new();
    for repository in bound {
        match project_key(&spec, project, &repository.slug) {
            Ok(key) => work.push(ProjectWork {
                slug: repository.slug.clone(),
                name: repository.name.clone(),
                desired: desired(&repository.slug, key),
            }),
            Err(error) => results.push(RepositoryProject {
                slug: repository.slug.clone(),
                project: String::new(),
                result: ProjectResult::InvalidKey(error.to_string()),
            }),
        }
    }
    // A project another binding (created first) binds is left to it.
    let own: Vec<String> = work.iter().map(|w| w.desired.project.clone()).collect();
    let me = format!("{}/{}", binding.namespace().unwrap_or_default(), binding.name_any());
    let lost: HashMap<String, String> = conflicts(&claims(ctx, binding, &connected.side.configuration, own))
        .remove(&me)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let (contested, work): (Vec<ProjectWork>, Vec<ProjectWork>) =
        work.into_iter().partition(|w| lost.contains_key(&w.desired.project));
    for item in contested {
        let by = lost.get(&item.desired.project).cloned().unwrap_or_default();
        results.push(RepositoryProject {
            slug: item.slug,
            project: item.desired.project,
            result: ProjectResult::Claimed { by },
        });
    }
    let wanted: BTreeSet<String> = work.iter().map(|w| w.desired.project.clone()).collect();
    results.extend(keep_projects(&connected.client, &route, work, spec.create_projects).await);

    // Bindings made before for repositories that left, or under keys no longer asked for.
    let mut notices = Vec::new();
    let mut retry = None;
    let mut release_failed = false;
    if let Some(record) = previous.as_ref().and_then(|p| p.project_keys.clone()) {
        let old = spec_of_record(&record);
        let targets: Vec<DesiredBinding> = bound
            .iter()
            .map(|r| r.slug.as_str())
            .chain(departed.iter().map(String::as_str))
            .filter_map(|slug| project_key(&old, project, slug).ok().map(|key| desired(slug, key)))
            .filter(|d| !wanted.contains(&d.project) && !lost.contains_key(&d.project))
            .collect();
        match release_projects(&connected.client, targets).await {
            Ok(released) => notices.extend(released_notice(&released)),
            Err((key, error)) => {
                tracing::warn!(project = %key, %error, "cannot remove a SonarQube binding the binding no longer wants; trying again next round");
                release_failed = true;
                if error.is_transient() {
                    retry = Some(error);
                }
            }
        }
    }

    let created_before = previous.as_ref().map_or(0, |p| p.created_count);
    let (mut status, outcome, transient) = summarize(&results, &connected.alm_setting, &keys_of(&spec), created_before);
    // What is still to be removed stays on the record, to be removed next round.
    if release_failed {
        status.project_keys = previous.as_ref().and_then(|p| p.project_keys.clone());
    }
    let (bound_notices, corrected) = bound_notices(&results);
    notices.extend(bound_notices);
    Ok(Kept {
        status: Some(status),
        outcome,
        retry: transient.or(retry),
        notices,
        corrected,
        keep_departed: release_failed,
    })
}

/// `spec.sonarqube` was removed: the bindings the operator made go, the record with them.
async fn release_all(
    ctx: &Context,
    binding: &ProjectBinding,
    bound: &[Repository],
    departed: &[String],
    previous: Option<SonarQubeBindingStatus>,
) -> Result<Kept, Error> {
    let Some(record) = previous.clone() else {
        return Ok(Kept::default());
    };
    let slugs: Vec<String> = bound.iter().map(|r| r.slug.clone()).chain(departed.iter().cloned()).collect();
    match release(ctx, binding, &record, &slugs).await? {
        Ok(released) => Ok(Kept { notices: released_notice(&released), ..Kept::default() }),
        Err(outcome) => {
            let message = format!(
                "spec.sonarqube was removed; removing the SonarQube bindings it made waits: {}",
                outcome.message
            );
            Ok(Kept {
                status: previous,
                outcome: Some(Outcome { message, ..outcome }),
                keep_departed: true,
                ..Kept::default()
            })
        }
    }
}

/// Removes the bindings a binding's record says it made, for these repositories: `Err` with
/// the outcome to wait in when it cannot yet.
pub(super) async fn release(
    ctx: &Context,
    binding: &ProjectBinding,
    record: &SonarQubeBindingStatus,
    slugs: &[String],
) -> Result<Result<Released, Outcome>, Error> {
    let (Some(keys), Some(alm_setting)) = (&record.project_keys, &record.alm_setting_key) else {
        return Ok(Ok(Released::default()));
    };
    // Without the configuration's integration or its setting (deleted, which drops every
    // binding with it) there is nothing left to remove them through.
    let Some(side) = sonarqube_side(ctx, binding).filter(|s| s.record.is_some()) else {
        return Ok(Ok(Released::default()));
    };
    let client = match connected(ctx, binding, side) {
        Ok(connected) => connected.client,
        Err(outcome) => return Ok(Err(outcome)),
    };
    let spec = spec_of_record(keys);
    let project = &binding.spec.project_key;
    let targets = slugs
        .iter()
        .filter_map(|slug| {
            project_key(&spec, project, slug).ok().map(|key| DesiredBinding {
                project: key,
                alm_setting: alm_setting.clone(),
                repository: project.clone(),
                slug: slug.clone(),
                monorepo: binding.spec.monorepo,
            })
        })
        .collect();
    Ok(match release_projects(&client, targets).await {
        Ok(released) => Ok(released),
        Err((key, error)) => {
            let outcome = crate::plan::sonarqube::connection::outcome_of(&error);
            Err(Outcome {
                message: format!("cannot remove the SonarQube binding of project {key}: {}", outcome.message),
                ..outcome
            })
        }
    })
}

/// The Event of removed bindings, and of those Community Build cannot remove.
pub(super) fn released_notice(released: &Released) -> Vec<Notice> {
    let mut notices = Vec::new();
    if released.removed > 0 {
        notices.push(Notice {
            warning: false,
            reason: "SonarQubeBindingsRemoved",
            action: "BindSonarQubeProjects",
            note: format!("removed the SonarQube bindings of {} project(s) (the projects stay)", released.removed),
        });
    }
    if !released.kept.is_empty() {
        notices.push(Notice {
            warning: true,
            reason: "SonarQubeBindingsKept",
            action: "BindSonarQubeProjects",
            note: format!(
                "this SonarQube edition cannot unbind projects over its API; unbind {} in its UI if they should go",
                listed(&released.kept)
            ),
        });
    }
    notices
}

/// The Events of a round's bindings, and how many corrected a change made in SonarQube.
fn bound_notices(results: &[RepositoryProject]) -> (Vec<Notice>, usize) {
    let mut notices = Vec::new();
    let mut bound = Vec::new();
    let mut created = 0;
    let mut corrected = Vec::new();
    for r in results {
        if let ProjectResult::Bound { created: made, was } = &r.result {
            bound.push(r.project.clone());
            created += usize::from(*made);
            if was.is_some() {
                corrected.push(r.project.clone());
            }
        }
    }
    if !bound.is_empty() {
        bound.sort();
        notices.push(Notice {
            warning: false,
            reason: "SonarQubeProjectsBound",
            action: "BindSonarQubeProjects",
            note: format!("bound {} SonarQube project(s), {created} of them created: {}", bound.len(), listed(&bound)),
        });
    }
    if !corrected.is_empty() {
        corrected.sort();
        notices.push(Notice {
            warning: true,
            reason: "SonarQubeBindingCorrected",
            action: "BindSonarQubeProjects",
            note: format!(
                "the SonarQube binding of {} was changed outside the operator (in SonarQube's UI?) and was put back",
                listed(&corrected)
            ),
        });
    }
    let count = corrected.len();
    (notices, count)
}
