//! The control API under `/__simulator/` (no authentication, no faults, not counted): inspect the
//! state and the request log, inject faults, flip features, and change repositories, tokens and
//! permissions behind the operator's back.

use std::time::Duration;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, RawQuery, State as AxState},
    response::Response,
    routing::{delete, get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Faults, RateLimit, SimError, Simulator,
    respond::{json_response, no_content, ok, query_pairs},
    seed::Permission,
};

pub(crate) fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/__simulator/state", get(state))
        .route("/__simulator/requests", get(requests).delete(clear_requests))
        .route("/__simulator/counters", get(counters))
        .route("/__simulator/faults", put(faults))
        .route("/__simulator/rate-limit", put(rate_limit))
        .route("/__simulator/features", put(features))
        .route("/__simulator/captcha/reset", post(captcha_reset))
        .route("/__simulator/tokens", post(add_token))
        .route("/__simulator/tokens/revoke", post(revoke_token))
        .route("/__simulator/projects/{key}/permissions/{user}", put(project_permission))
        .route("/__simulator/projects/{key}/repos/{slug}/permissions/{user}", put(repository_permission))
        .route("/__simulator/projects/{key}/repos/{slug}", post(create_repo).delete(delete_repo))
        .route("/__simulator/projects/{key}/repos/{slug}/archived", put(archive_repo))
        .route("/__simulator/projects/{key}/repos/{slug}/webhooks/{id}", delete(delete_webhook))
        .route("/__simulator/projects/{key}/repos/{slug}/merge-checks/{report_key}", delete(delete_merge_check))
        .route(
            "/__simulator/projects/{key}/repos/{slug}/required-builds",
            get(required_builds).post(add_required_build),
        )
        .route("/__simulator/projects/{key}/repos/{slug}/required-builds/{id}", delete(delete_required_build))
        .with_state(sim)
}

fn error(status: u16, message: impl Into<String>) -> Response {
    json_response(status, &json!({"error": message.into()}))
}

fn sim_error(e: SimError) -> Response {
    let status = match e {
        SimError::NoSuchProject(_)
        | SimError::NoSuchRepository(_)
        | SimError::NoSuchWebhook(_)
        | SimError::NoSuchRequiredBuild(_) => 404,
        SimError::NoSuchUser(_) => 404,
        SimError::RepositoryExists(_) | SimError::TokenInUse => 409,
        SimError::InvalidSlug(_)
        | SimError::InvalidToken
        | SimError::InvalidMergeCheck(_)
        | SimError::InvalidRequiredBuild(_)
        | SimError::WrongPermissionKind(_) => 400,
    };
    error(status, e.to_string())
}

/// An empty body counts as `{}`.
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    let text = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(text).map_err(|e| format!("invalid body: {e}"))
}

async fn state(AxState(sim): AxState<Simulator>) -> Response {
    ok(&sim.state_json())
}

async fn requests(AxState(sim): AxState<Simulator>) -> Response {
    ok(&json!(sim.requests()))
}

async fn clear_requests(AxState(sim): AxState<Simulator>) -> Response {
    sim.clear_requests();
    no_content()
}

async fn counters(AxState(sim): AxState<Simulator>) -> Response {
    let mut by_status = serde_json::Map::new();
    for ((endpoint, status), count) in sim.request_counts_by_status() {
        if let Value::Object(inner) = by_status.entry(endpoint).or_insert_with(|| json!({})) {
            inner.insert(status.to_string(), json!(count));
        }
    }
    ok(&json!({
        "total": sim.request_count(),
        "byEndpoint": sim.request_counts(),
        "byEndpointAndStatus": by_status,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FaultsBody {
    #[serde(default)]
    latency_ms: u64,
    #[serde(default)]
    error_rate: f64,
    #[serde(default)]
    drop_rate: f64,
    #[serde(default)]
    seed: Option<u64>,
}

async fn faults(AxState(sim): AxState<Simulator>, body: Bytes) -> Response {
    let body: FaultsBody = match parse(&body) {
        Ok(b) => b,
        Err(message) => return error(400, message),
    };
    for (name, rate) in [("errorRate", body.error_rate), ("dropRate", body.drop_rate)] {
        if !(0.0..=1.0).contains(&rate) {
            return error(400, format!("{name} must be between 0.0 and 1.0"));
        }
    }
    if let Some(seed) = body.seed {
        sim.set_fault_seed(seed);
    }
    sim.set_faults(Faults {
        latency: Duration::from_millis(body.latency_ms.min(600_000)),
        error_rate: body.error_rate,
        drop_rate: body.drop_rate,
    });
    ok(&sim.state_json()["faults"])
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RateLimitBody {
    enabled: bool,
    #[serde(default = "default_capacity")]
    capacity: u32,
    #[serde(default = "default_fill_rate")]
    fill_rate: u32,
}

fn default_capacity() -> u32 {
    60
}

fn default_fill_rate() -> u32 {
    5
}

async fn rate_limit(AxState(sim): AxState<Simulator>, body: Bytes) -> Response {
    let body: RateLimitBody = match parse(&body) {
        Ok(b) => b,
        Err(message) => return error(400, message),
    };
    sim.set_rate_limit(body.enabled.then_some(RateLimit { capacity: body.capacity, fill_rate: body.fill_rate }));
    ok(&sim.state_json()["rateLimit"])
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FeaturesBody {
    #[serde(default)]
    required_reports: Option<bool>,
    #[serde(default)]
    basic_auth_disabled: Option<bool>,
    #[serde(default)]
    captcha_threshold: Option<u32>,
    #[serde(default)]
    ssh: Option<bool>,
    #[serde(default)]
    page_limit: Option<usize>,
}

async fn features(AxState(sim): AxState<Simulator>, body: Bytes) -> Response {
    let body: FeaturesBody = match parse(&body) {
        Ok(b) => b,
        Err(message) => return error(400, message),
    };
    if let Some(on) = body.required_reports {
        sim.set_required_reports_supported(on);
    }
    if let Some(on) = body.basic_auth_disabled {
        sim.set_basic_auth_disabled(on);
    }
    if let Some(threshold) = body.captcha_threshold {
        sim.set_captcha_threshold(threshold);
    }
    if let Some(on) = body.ssh {
        sim.set_ssh_enabled(on);
    }
    if let Some(limit) = body.page_limit {
        if limit == 0 {
            return error(400, "pageLimit must be at least 1");
        }
        sim.set_page_limit(limit);
    }
    ok(&sim.state_json()["features"])
}

async fn captcha_reset(AxState(sim): AxState<Simulator>, RawQuery(query): RawQuery) -> Response {
    let user = query_pairs(query.as_deref().unwrap_or("")).into_iter().find(|(k, _)| k == "user").map(|(_, v)| v);
    let Some(user) = user else {
        return error(400, "the query parameter user is required");
    };
    if sim.lock().user_id(&user).is_none() {
        return sim_error(SimError::NoSuchUser(user));
    }
    sim.reset_captcha(&user);
    no_content()
}

async fn create_repo(AxState(sim): AxState<Simulator>, Path((key, slug)): Path<(String, String)>) -> Response {
    match sim.create_repository(&key, &slug) {
        Ok(id) => json_response(201, &json!({"id": id})),
        Err(e) => sim_error(e),
    }
}

async fn delete_repo(AxState(sim): AxState<Simulator>, Path((key, slug)): Path<(String, String)>) -> Response {
    match sim.delete_repository(&key, &slug) {
        Ok(()) => no_content(),
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchivedBody {
    archived: bool,
}

async fn archive_repo(
    AxState(sim): AxState<Simulator>,
    Path((key, slug)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: ArchivedBody = match parse(&body) {
        Ok(b) => b,
        Err(message) => return error(400, message),
    };
    match sim.set_repository_archived(&key, &slug, body.archived) {
        Ok(()) => no_content(),
        Err(e) => sim_error(e),
    }
}

async fn delete_webhook(
    AxState(sim): AxState<Simulator>,
    Path((key, slug, id)): Path<(String, String, i64)>,
) -> Response {
    match sim.delete_webhook(&key, &slug, id) {
        Ok(()) => no_content(),
        Err(e) => sim_error(e),
    }
}

async fn delete_merge_check(
    AxState(sim): AxState<Simulator>,
    Path((key, slug, report_key)): Path<(String, String, String)>,
) -> Response {
    match sim.delete_merge_check(&key, &slug, &report_key) {
        Ok(()) => no_content(),
        Err(e) => sim_error(e),
    }
}

async fn required_builds(AxState(sim): AxState<Simulator>, Path((key, slug)): Path<(String, String)>) -> Response {
    match sim.required_builds(&key, &slug) {
        Ok(conditions) => ok(&json!(conditions)),
        Err(e) => sim_error(e),
    }
}

/// The body is a set-request, as the REST API takes it; 201 with the new id.
async fn add_required_build(
    AxState(sim): AxState<Simulator>,
    Path((key, slug)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: Value = match parse(&body) {
        Ok(b) => b,
        Err(message) => return error(400, message),
    };
    match sim.add_required_build(&key, &slug, body) {
        Ok(id) => json_response(201, &json!({"id": id})),
        Err(e) => sim_error(e),
    }
}

async fn delete_required_build(
    AxState(sim): AxState<Simulator>,
    Path((key, slug, id)): Path<(String, String, i64)>,
) -> Response {
    match sim.delete_required_build(&key, &slug, id) {
        Ok(()) => no_content(),
        Err(e) => sim_error(e),
    }
}

/// `{"user", "token"}`: the token value travels in the body, never in a URL.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    user: String,
    token: String,
}

async fn add_token(AxState(sim): AxState<Simulator>, body: Bytes) -> Response {
    let body: TokenBody = match parse(&body) {
        Ok(b) => b,
        Err(message) => return error(400, message),
    };
    match sim.add_token(&body.user, &body.token) {
        Ok(()) => no_content(),
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    token: String,
}

/// 204 when the token was there, 404 when it was not.
async fn revoke_token(AxState(sim): AxState<Simulator>, body: Bytes) -> Response {
    let body: RevokeBody = match parse(&body) {
        Ok(b) => b,
        Err(message) => return error(400, message),
    };
    if sim.lock().revoke_token(&body.token) { no_content() } else { error(404, "no such token") }
}

/// `{"permission": "PROJECT_READ"}` grants, `{"permission": null}` drops the grant.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionBody {
    permission: Option<Permission>,
}

async fn project_permission(
    AxState(sim): AxState<Simulator>,
    Path((key, user)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: PermissionBody = match parse(&body) {
        Ok(b) => b,
        Err(message) => return error(400, message),
    };
    match sim.set_project_permission(&key, &user, body.permission) {
        Ok(()) => no_content(),
        Err(e) => sim_error(e),
    }
}

async fn repository_permission(
    AxState(sim): AxState<Simulator>,
    Path((key, slug, user)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let body: PermissionBody = match parse(&body) {
        Ok(b) => b,
        Err(message) => return error(400, message),
    };
    match sim.set_repository_permission(&key, &slug, &user, body.permission) {
        Ok(()) => no_content(),
        Err(e) => sim_error(e),
    }
}
