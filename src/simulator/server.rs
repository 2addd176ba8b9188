//! Server-wide endpoints: `/status`, `application-properties`, `/rest/capabilities`, `users`.

use axum::{
    Extension,
    extract::{RawQuery, State as AxState},
    response::Response,
};
use serde::Serialize;
use serde_json::json;

use super::{
    Ctx, Simulator,
    auth::denied,
    respond::{ok, page, page_params, query_pairs},
    state::User,
};

/// A fixed build date: epoch milliseconds for `application-properties`, ISO for capabilities.
const BUILD_DATE_MS: &str = "1718000000000";
const BUILD_DATE_ISO: &str = "2024-06-10T06:13:20Z";

/// `GET /status` (no authentication).
pub(crate) async fn status() -> Response {
    ok(&json!({"state": "RUNNING"}))
}

/// `GET /rest/api/{version}/application-properties` (anonymous allowed).
pub(crate) async fn application_properties(AxState(sim): AxState<Simulator>) -> Response {
    let state = sim.lock();
    ok(&json!({
        "version": state.server.version,
        "buildNumber": state.server.build_number().to_string(),
        "buildDate": BUILD_DATE_MS,
        "displayName": state.server.display_name,
    }))
}

/// What `/rest/capabilities` lists besides `code-insights`, with the paths they point to. The
/// names are those of recorded 2019–2021 servers (§11); the paths of `build`, `deployment`,
/// `repository-mirroring` and `dev-status-detail-branch` are guesses, and so is the name
/// `dev-status-detail-branch` itself (the fourth `dev-status-*`).
const CAPABILITIES: &[(&str, &str)] = &[
    ("webhooks", "/rest/webhooks/latest/capabilities"),
    ("build", "/rest/build-status/latest/capabilities"),
    ("deployment", "/rest/deployments/latest/capabilities"),
    ("navigation", "/rest/capabilities/navigation"),
    ("repository-mirroring", "/rest/mirroring/latest/capabilities"),
    ("dev-status-summary", "/rest/remote-link-aggregation/latest/aggregation"),
    ("dev-status-detail-repository", "/rest/jira-dev/latest/detail/repository"),
    ("dev-status-detail-pullrequest", "/rest/jira-dev/latest/detail/pullrequest"),
    ("dev-status-detail-branch", "/rest/jira-dev/latest/detail/branch"),
    ("remote-link-aggregation", "/rest/remote-link-aggregation/1/capabilities"),
    ("smart-commit-producer", "/rest/jira-dev/latest/smart-commit"),
    ("atlassian-remote-event-producer", "/rest/remote-event-producer/1/capabilities"),
    ("atlassian-remote-event-consumer", "/rest/remote-event-consumer/1/capabilities"),
    ("atlassian-remote-event-status", "/rest/remote-event/1/status"),
    ("atlassian-remote-event-diagnostics-v1", "/rest/remote-event/1/status"),
    ("bitbucket-remote-event-support", "/rest/bitbucket-remote/latest/remote-event-support"),
];

/// `GET /rest/capabilities` (anonymous allowed): 17 entries, 16 before Code Insights (5.15).
pub(crate) async fn capabilities(AxState(sim): AxState<Simulator>, Extension(ctx): Extension<Ctx>) -> Response {
    let insights = sim.lock().server.has_code_insights();
    let base = &ctx.base;
    let mut capabilities: serde_json::Map<String, serde_json::Value> =
        CAPABILITIES.iter().map(|(name, path)| ((*name).to_owned(), json!(format!("{base}{path}")))).collect();
    if insights {
        capabilities.insert("code-insights".into(), json!(format!("{base}/rest/insights/latest/capabilities")));
    }
    ok(&json!({
        "application": "stash",
        "buildDate": BUILD_DATE_ISO,
        "links": {"self": format!("{base}/rest/capabilities")},
        "capabilities": capabilities,
    }))
}

/// `{"href": ...}`.
#[derive(Debug, Serialize)]
pub(crate) struct Href {
    pub href: String,
}

/// `{"self": [{"href": ...}]}`.
#[derive(Debug, Serialize)]
pub(crate) struct SelfLinks {
    #[serde(rename = "self")]
    pub self_: [Href; 1],
}

impl SelfLinks {
    pub fn to(href: String) -> SelfLinks {
        SelfLinks { self_: [Href { href }] }
    }
}

/// The user object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserView<'a> {
    name: &'a str,
    email_address: &'a str,
    id: i64,
    display_name: &'a str,
    active: bool,
    slug: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    links: SelfLinks,
}

pub(crate) fn user_view<'a>(user: &'a User, base: &str) -> UserView<'a> {
    UserView {
        name: &user.name,
        email_address: &user.email,
        id: user.id,
        display_name: &user.display_name,
        active: true,
        slug: &user.slug,
        kind: "NORMAL",
        links: SelfLinks::to(format!("{base}/users/{}", user.slug)),
    }
}

/// `GET /rest/api/{version}/users`: any authenticated user; `filter` matches name, display name
/// or e-mail address (case-insensitive substring).
pub(crate) async fn users(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(query): RawQuery,
) -> Response {
    let state = sim.lock();
    if ctx.caller.is_anonymous() {
        return axum::response::IntoResponse::into_response(denied(&state, &ctx.caller));
    }
    let (start, limit) = page_params(query.as_deref(), state.features.page_limit);
    let filter = query_pairs(query.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "filter")
        .map(|(_, v)| v.to_lowercase())
        .filter(|v| !v.is_empty());
    let mut users: Vec<&User> = state
        .users
        .iter()
        .filter(|u| {
            filter.as_deref().is_none_or(|f| {
                u.slug.contains(f) || u.display_name.to_lowercase().contains(f) || u.email.to_lowercase().contains(f)
            })
        })
        .collect();
    users.sort_by(|a, b| a.slug.cmp(&b.slug));
    ok(&page(&users, start, limit, |u| user_view(u, &ctx.base)))
}
