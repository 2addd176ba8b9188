//! `GET /rest/api/{version}/projects/{key}`.

use axum::{
    Extension,
    extract::{Path, State as AxState, rejection::PathRejection},
    response::Response,
};
use serde::Serialize;

use super::{
    Ctx, Simulator,
    auth::{can_view_project, denied},
    respond::{ApiError, finish, ok, params},
    server::{SelfLinks, UserView, user_view},
    state::{Project, ProjectKind, State},
};

/// The project object (§4.1); personal projects carry `owner`, no `public`, and link to
/// `/users/{slug}`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum ProjectView<'a> {
    Normal(NormalProject<'a>),
    Personal(PersonalProject<'a>),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NormalProject<'a> {
    key: &'a str,
    id: i64,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    public: bool,
    #[serde(rename = "type")]
    kind: &'static str,
    links: SelfLinks,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PersonalProject<'a> {
    key: &'a str,
    id: i64,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    owner: Option<UserView<'a>>,
    links: SelfLinks,
}

pub(crate) fn project_view<'a>(state: &'a State, project: &'a Project, base: &str) -> ProjectView<'a> {
    match project.kind {
        ProjectKind::Normal => ProjectView::Normal(NormalProject {
            key: &project.key,
            id: project.id,
            name: &project.name,
            description: project.description.as_deref(),
            public: project.public,
            kind: "NORMAL",
            links: SelfLinks::to(format!("{base}/projects/{}", project.key)),
        }),
        ProjectKind::Personal(owner) => {
            let owner = state.users.get(owner);
            ProjectView::Personal(PersonalProject {
                key: &project.key,
                id: project.id,
                name: &project.name,
                kind: "PERSONAL",
                owner: owner.map(|u| user_view(u, base)),
                links: SelfLinks::to(format!("{base}/users/{}", owner.map_or("", |u| u.slug.as_str()))),
            })
        }
    }
}

/// `GET /projects/{key}`: needs read access to the project or one of its repositories.
pub(crate) async fn get_project(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    finish((|| {
        let key = params(path)?;
        let state = sim.lock();
        let project = state.project(&key).ok_or_else(|| ApiError::no_such_project(&key))?;
        if !can_view_project(&state, &ctx.caller, project) {
            return Err(denied(&state, &ctx.caller));
        }
        Ok(ok(&project_view(&state, project, &ctx.base)))
    })())
}
