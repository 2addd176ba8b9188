//! `GET /rest/api/{version}/projects/{key}/repos[/{slug}]`, `GET /rest/api/{version}/repos`, the
//! repository object, and the repository lookup shared by the webhook and merge-check handlers.

use axum::{
    Extension,
    extract::{Path, RawQuery, State as AxState, rejection::PathRejection},
    response::Response,
};
use serde::Serialize;

use super::{
    Ctx, Simulator,
    auth::{Caller, can_view_project, denied, repo_level},
    projects::{ProjectView, project_view},
    respond::{ApiError, finish, ok, page, page_params, params},
    server::Href,
    state::{Project, ProjectKind, Repo, State},
};

/// The repository object (§4.3); `hierarchyId` and `archived` only on the versions that report
/// them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RepoView<'a> {
    slug: &'a str,
    id: i64,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hierarchy_id: Option<&'a str>,
    scm_id: &'static str,
    state: &'static str,
    status_message: &'static str,
    forkable: bool,
    project: ProjectView<'a>,
    public: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    archived: Option<bool>,
    links: RepoLinks,
}

#[derive(Debug, Serialize)]
pub(crate) struct RepoLinks {
    /// `http` alone when SSH is off.
    clone: Vec<CloneLink>,
    #[serde(rename = "self")]
    self_: [Href; 1],
}

#[derive(Debug, Serialize)]
pub(crate) struct CloneLink {
    href: String,
    name: &'static str,
}

/// `ssh_first` decides the order of `links.clone` (when there is an `ssh` link).
pub(crate) fn repo_view<'a>(
    state: &'a State,
    project: &'a Project,
    repo: &'a Repo,
    base: &str,
    ssh_first: bool,
) -> RepoView<'a> {
    let key_lower = project.key.to_lowercase();
    let http = CloneLink { href: format!("{base}/scm/{key_lower}/{}.git", repo.slug), name: "http" };
    let clone = if state.features.ssh {
        let ssh = CloneLink { href: format!("ssh://git@127.0.0.1:7999/{key_lower}/{}.git", repo.slug), name: "ssh" };
        if ssh_first { vec![ssh, http] } else { vec![http, ssh] }
    } else {
        vec![http]
    };
    let browse = match project.kind {
        ProjectKind::Personal(owner) => format!(
            "{base}/users/{}/repos/{}/browse",
            state.users.get(owner).map_or("", |u| u.slug.as_str()),
            repo.slug
        ),
        ProjectKind::Normal => format!("{base}/projects/{}/repos/{}/browse", project.key, repo.slug),
    };
    RepoView {
        slug: &repo.slug,
        id: repo.id,
        name: &repo.name,
        description: repo.description.as_deref(),
        hierarchy_id: state.server.reports_hierarchy_id().then_some(repo.hierarchy_id.as_str()),
        scm_id: "git",
        state: repo.state.as_str(),
        status_message: repo.state.status_message(),
        forkable: repo.forkable,
        project: project_view(state, project, base),
        public: project.public,
        archived: state.server.reports_archived().then_some(repo.archived),
        links: RepoLinks { clone, self_: [Href { href: browse }] },
    }
}

/// `GET .../repos/{slug}/default-branch`: the configured default branch, pushed or not.
pub(crate) async fn default_branch(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    finish((|| {
        let (key, slug) = params(path)?;
        let state = sim.lock();
        require(&state, &ctx.caller, &key, &slug, 1, false)?;
        let (_, repo) = find(&state, &key, &slug, false)?;
        let id = repo.default_branch.as_str();
        let display = id.strip_prefix("refs/heads/").unwrap_or(id);
        Ok(ok(&serde_json::json!({"id": id, "displayId": display, "type": "BRANCH"})))
    })())
}

/// Finds a repository: 404 `NoSuchProjectException` for a missing project (or
/// `NoSuchRepositoryException` when `project_as_repo`), 404 `NoSuchRepositoryException` for a
/// missing repository.
pub(crate) fn find<'a>(
    state: &'a State,
    key: &str,
    slug: &str,
    project_as_repo: bool,
) -> Result<(&'a Project, &'a Repo), ApiError> {
    let Some(project) = state.project(key) else {
        return Err(if project_as_repo {
            ApiError::no_such_repository(key, slug)
        } else {
            ApiError::no_such_project(key)
        });
    };
    let repo = project.repos.get(&slug.to_lowercase()).ok_or_else(|| ApiError::no_such_repository(key, slug))?;
    Ok((project, repo))
}

/// Finds a repository and requires `level` (1 read, 2 write, 3 admin) on it.
pub(crate) fn require(
    state: &State,
    caller: &Caller,
    key: &str,
    slug: &str,
    level: u8,
    project_as_repo: bool,
) -> Result<(), ApiError> {
    let (project, repo) = find(state, key, slug, project_as_repo)?;
    if repo_level(state, caller, project, repo) < level {
        return Err(denied(state, caller));
    }
    Ok(())
}

/// `GET /projects/{key}/repos`: the repositories the caller may read, by slug.
pub(crate) async fn list(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    finish((|| {
        let key = params(path)?;
        let mut guard = sim.lock();
        let (start, limit) = page_params(query.as_deref(), guard.features.page_limit);
        let flip = guard.clone_flip;
        guard.clone_flip = !flip;
        let state = &*guard;
        let project = state.project(&key).ok_or_else(|| ApiError::no_such_project(&key))?;
        if !can_view_project(state, &ctx.caller, project) {
            return Err(denied(state, &ctx.caller));
        }
        let readable: Vec<&Repo> =
            project.repos.values().filter(|r| repo_level(state, &ctx.caller, project, r) >= 1).collect();
        let mut n = 0usize;
        Ok(ok(&page(&readable, start, limit, |repo| {
            n += 1;
            repo_view(state, project, repo, &ctx.base, flip ^ n.is_multiple_of(2))
        })))
    })())
}

/// `GET /repos`: every repository the caller may read, by project key then slug (anonymous
/// callers see the public ones). SonarQube's `validate` calls it as its read-permission check.
pub(crate) async fn list_all(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut guard = sim.lock();
    let (start, limit) = page_params(query.as_deref(), guard.features.page_limit);
    let flip = guard.clone_flip;
    guard.clone_flip = !flip;
    let state = &*guard;
    let readable: Vec<(&Project, &Repo)> = state
        .projects
        .values()
        .flat_map(|p| p.repos.values().map(move |r| (p, r)))
        .filter(|(p, r)| repo_level(state, &ctx.caller, p, r) >= 1)
        .collect();
    let mut n = 0usize;
    ok(&page(&readable, start, limit, |(project, repo)| {
        n += 1;
        repo_view(state, project, repo, &ctx.base, flip ^ n.is_multiple_of(2))
    }))
}

/// `GET /projects/{key}/repos/{slug}`: needs REPO_READ.
pub(crate) async fn get(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    finish((|| {
        let (key, slug) = params(path)?;
        let mut guard = sim.lock();
        let flip = guard.clone_flip;
        guard.clone_flip = !flip;
        let state = &*guard;
        require(state, &ctx.caller, &key, &slug, 1, false)?;
        let (project, repo) = find(state, &key, &slug, false)?;
        Ok(ok(&repo_view(state, project, repo, &ctx.base, flip)))
    })())
}
