//! An in-process simulator of SonarQube's web API for what the operator manages there, following
//! `shared/sonarqube-api.md`: the DevOps Platform (ALM) settings of type Bitbucket Server, project
//! bindings (commercial `set_bitbucket_binding` and the Community Build's per-user PAT with v2
//! `bound-projects`), projects, the server's status, version and edition, with SonarQube's
//! authentication rules, parameter encoding, method enforcement, error envelopes, fault injection,
//! request counters and a control API under `/__simulator/`.
//!
//! `validate` and `bound-projects` call the configured Bitbucket URL for real (with reqwest, no
//! redirects followed), so point a setting at a running [`crate::simulator::Simulator`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bitbucket_operator::simulator::sonarqube::{SonarQubeSimulator, SonarSeed};
//! let seed = SonarSeed::from_yaml("users: [{login: admin, admin: true, tokens: [{token: squ_1}]}]")?;
//! let running = SonarQubeSimulator::new(seed)?.serve("127.0.0.1:0".parse()?).await?;
//! println!("{}", running.base_url());
//! running.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Request counters are keyed `METHOD /api/...` (the path, without the query string); the log keeps
//! the query string, so a test can assert that no secret was sent there. `/__simulator` requests
//! are neither counted nor logged; a dropped connection is logged with status 0.
//!
//! # Guesses where the contract is open
//!
//! 1. A bad Basic credential (unknown or revoked token, undecodable header, a login with a
//!    password) and an unknown Bearer token on 10.0+ get 401 `{"errors":[{"msg":"Authentication is
//!    required"}]}`; an expired token gets 401 with msg `The token expired on YYYY-MM-DD` (seeded
//!    expired tokens: 2026-01-01; [`SonarQubeSimulator::expire_token`]: today, UTC) (§1.3, open
//!    question 5). Before 10.0 a Bearer header is ignored (the caller is anonymous).
//! 2. A refused credential is ignored (the caller served as anonymous) by `api/system/status` and
//!    `api/server/version`; `api/authentication/validate` answers `{"valid":false}`.
//! 3. Analysis tokens (`globalAnalysis`, `projectAnalysis`) authenticate their user but carry no
//!    web API permission: every permission check answers 403.
//! 4. With `forceAuthentication`, anonymous callers get 401 everywhere but `api/system/status`,
//!    `api/server/version`, `api/authentication/validate` and `api/navigation/global`.
//! 5. While the status is not `UP`, everything but `api/system/status` answers 503
//!    `{"errors":[{"msg":"SonarQube is not available: STATUS"}]}`. An authenticated caller of
//!    `api/system/status` gets `{"id","version","status"}`, an anonymous one `{"status"}`.
//! 6. `api/features/list` is `["multiple-alm"]` on Enterprise and Data Center and `[]` otherwise.
//!    `api/navigation/global` carries `edition`, `version`, `canAdmin` and `qualifiers`.
//!    `api/users/current` is `{"isLoggedIn":true,"login","name","permissions":{"global":[...]}}`
//!    (`admin`, `provisioning`) or `{"isLoggedIn":false,"permissions":{"global":[]}}`.
//! 7. A blank parameter counts as missing. Unknown `/api` paths answer 404 `Unknown url : PATH`, other
//!    paths a plain-text 404.
//! 8. Projects are private: Browse is project Administer or Administer System, and the creator of
//!    a project (v1 `create` or v2) gets project Administer. Since Browse and Administer are held
//!    by the same callers, `get_binding`'s change from Administer to Browse in 10.1 is not modelled.
//! 9. `update_bitbucket` on a key of another DevOps Platform type: 400 `DevOps Platform setting
//!    with key 'x' is not a Bitbucket Server setting`. `validate` of another type: 400 `The
//!    simulator validates Bitbucket Server settings only`. `set_bitbucket_binding` to a setting of
//!    another type: 400 `DevOps Platform setting with key 'x' is not a Bitbucket Server setting`.
//! 10. Developer Edition accepts `set_bitbucket_binding ... monorepo=true` (open question 1).
//!     `delete_binding` on an unbound project answers 204 (open question 3); on an unknown project
//!     404 `Project 'k' not found`.
//! 11. `validate_binding` fetches the bound repository with the setting's PAT; failures are 400
//!     with the messages of `validate`; success 204.
//! 12. The edition cap applies to Community and Developer; seeds are not held to it.
//! 13. `set_pat` without `almSetting`: the only setting when there is exactly one, otherwise 400
//!     `Parameter almSetting is required as there are multiple DevOps Platform configurations.` (or
//!     404 `There is no DevOps Platform configuration.` when there is none). `username` is ignored.
//! 14. v2 `dop-settings` and `project-bindings` need an authenticated caller and answer one page
//!     holding everything (`page.pageIndex` 1); `project-bindings` lists the bindings of projects
//!     the caller may browse, filtered by `repository` (the Bitbucket project key or the slug) and
//!     `dopSettingId`. Setting ids are uuids kept by a rename.
//! 15. v2 `bound-projects`: 401/403 in the v2 envelope; a missing required field is 400 `Value null
//!     for field F was rejected. Error: must not be null.`; an unknown setting id 404 `DevOps
//!     Platform configuration 'id' not found.`; a non-Bitbucket setting 400; a missing PAT 400
//!     `personal access token for 'KEY' is missing`; a failed repository fetch 500 `Unable to
//!     fetch repository P/S from Bitbucket: MSG`. On an existing project PUT needs project
//!     Administer too and keeps the project's name; a key that differs only in case is refused like
//!     v1 `create`. `POST` answers 201, or 400 `Could not create Project with key: ...` when the
//!     project exists.
//! 16. v2 wrong methods answer 405 `{"message":"Request method 'M' is not supported"}`; a body that
//!     is not `application/json` 415.
//! 17. `projects/search` sorts by name then key; `q` matches key or name, ignoring case; `ps` over 500
//!     is 400 `'ps' value (N) must be less than 500`; components have `visibility: "private"`.
//! 18. Injected errors answer 500 `An error has occurred. Please contact your administrator`.

pub mod seed;

mod alm_settings;
mod auth;
mod bitbucket;
mod community;
mod projects;
mod server;
mod state;
mod ws;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{ConnectInfo, Request, State as AxState},
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

pub use seed::{
    Alm, AlmSettingSeed, BindingSeed, Edition, SonarProjectSeed, SonarSeed, SonarSeedError, SonarTokenSeed,
    SonarUserSeed, TokenKind,
};

use self::{
    auth::Caller,
    state::State,
    ws::{Call, Fail, Reply},
};
use super::{
    Faults, RequestRecord,
    faults::{ConnHandle, SimListener},
};

/// Why a control operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SonarSimError {
    #[error("user {0} does not exist")]
    NoSuchUser(String),
    #[error("project {0} does not exist")]
    NoSuchProject(String),
    #[error("DevOps Platform setting {0} does not exist")]
    NoSuchAlmSetting(String),
    #[error("a token must not be empty")]
    InvalidToken,
    #[error("the token is already in use")]
    TokenInUse,
    #[error("{0:?} is not a SonarQube version (digits separated by dots)")]
    InvalidVersion(String),
    #[error("{0:?} is not a status (STARTING, UP, DOWN, RESTARTING, DB_MIGRATION_NEEDED, DB_MIGRATION_RUNNING)")]
    InvalidStatus(String),
}

/// The simulator: cheap to clone, every clone shares one state.
#[derive(Clone)]
pub struct SonarQubeSimulator {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SonarQubeSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SonarQubeSimulator").finish_non_exhaustive()
    }
}

impl SonarQubeSimulator {
    /// Builds the state from a seed (validated again here).
    pub fn new(seed: SonarSeed) -> Result<SonarQubeSimulator, SonarSeedError> {
        Ok(SonarQubeSimulator { state: Arc::new(Mutex::new(State::from_seed(&seed)?)) })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Binds `addr` (port 0 picks a free port), serves in a background task and returns at once.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<RunningSonarQube> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut graceful = shutdown_rx.clone();
        let app = self.router().into_make_service_with_connect_info::<ConnHandle>();
        let server = axum::serve(SimListener::new(listener, shutdown_rx), app).with_graceful_shutdown(async move {
            let _ = graceful.wait_for(|down| *down).await;
        });
        let task = tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::warn!(%error, "the SonarQube simulator stopped");
            }
        });
        Ok(RunningSonarQube { simulator: self.clone(), addr: local, shutdown: shutdown_tx, task: Some(task) })
    }

    /// The whole application: the web API and the `/__simulator` control API.
    pub fn router(&self) -> Router {
        Router::new().route("/__simulator/state", get(control_state)).fallback(dispatch).with_state(self.clone())
    }

    pub fn set_edition(&self, edition: Edition) {
        self.lock().edition = edition;
    }

    pub fn set_version(&self, version: &str) -> Result<(), SonarSimError> {
        self.lock().set_version(version)
    }

    /// What `api/system/status` reports; anything but `UP` makes the rest of the API answer 503.
    pub fn set_status(&self, status: &str) -> Result<(), SonarSimError> {
        self.lock().set_status(status)
    }

    pub fn set_force_authentication(&self, on: bool) {
        self.lock().force_authentication = on;
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Makes the fault shares reproducible.
    pub fn set_fault_seed(&self, seed: u64) {
        self.lock().rng = fastrand::Rng::with_seed(seed);
    }

    /// Adds a user token for `login`.
    pub fn add_token(&self, login: &str, token: &str) -> Result<(), SonarSimError> {
        self.lock().add_token(login, token)
    }

    /// Removes a token; it is then refused with 401. Unknown tokens are ignored.
    pub fn revoke_token(&self, token: &str) {
        self.lock().tokens.remove(token);
    }

    /// Marks a token expired today. Unknown tokens are ignored.
    pub fn expire_token(&self, token: &str) {
        if let Some(found) = self.lock().tokens.get_mut(token) {
            found.expired_on = Some(auth::today());
        }
    }

    /// Binds a project the way the UI would (an overwrite keeps the binding's id).
    pub fn set_binding(
        &self,
        project: &str,
        alm_setting: &str,
        repository: &str,
        slug: &str,
        monorepo: bool,
    ) -> Result<(), SonarSimError> {
        self.lock().bind(project, alm_setting, repository, slug, monorepo).map(|_| ())
    }

    /// Unbinds a project; unbound or unknown projects are ignored.
    pub fn delete_binding(&self, project: &str) {
        if let Some(found) = self.lock().projects.get_mut(project) {
            found.binding = None;
        }
    }

    /// Deletes a setting out of band, with the cascade of `api/alm_settings/delete`.
    pub fn delete_alm_setting(&self, key: &str) -> Result<(), SonarSimError> {
        self.lock().delete_setting(key)
    }

    /// The PAT stored in a setting (never served over HTTP).
    pub fn alm_setting_pat(&self, key: &str) -> Option<String> {
        self.lock().setting(key).and_then(|s| s.pat.clone())
    }

    /// Every setting in creation order: `[{"id","key","alm","url","bindings"}]`, no PATs.
    pub fn alm_settings_json(&self) -> serde_json::Value {
        self.lock().settings_json()
    }

    /// A project's binding as `get_binding` returns it.
    pub fn binding(&self, project: &str) -> Option<serde_json::Value> {
        let state = self.lock();
        state.projects.get(project).and_then(|p| state.binding_json(p))
    }

    /// `(key, name)` of every project, by key.
    pub fn projects(&self) -> Vec<(String, String)> {
        self.lock().projects.values().map(|p| (p.key.clone(), p.name.clone())).collect()
    }

    /// The import PAT `login` stored with `set_pat` for a setting.
    pub fn user_pat(&self, login: &str, alm_setting: &str) -> Option<String> {
        let state = self.lock();
        let uuid = state.setting(alm_setting)?.uuid.clone();
        state.users.iter().find(|u| u.login == login)?.pats.get(&uuid).cloned()
    }

    /// Requests served since the start or the last [`SonarQubeSimulator::clear_requests`].
    pub fn request_count(&self) -> u64 {
        self.lock().metrics.total
    }

    /// Requests by `METHOD /api/...`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().metrics.by_endpoint.clone()
    }

    /// The last (at most 10 000) requests, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().metrics.log.iter().cloned().collect()
    }

    /// Empties the log and zeroes every counter.
    pub fn clear_requests(&self) {
        self.lock().metrics = state::Metrics::default();
    }

    /// The `/__simulator/state` dump (no tokens or PATs).
    pub fn state_json(&self) -> serde_json::Value {
        self.lock().dump()
    }
}

/// A simulator serving in the background. Dropping it stops the server and its connections.
#[derive(Debug)]
pub struct RunningSonarQube {
    simulator: SonarQubeSimulator,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningSonarQube {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn simulator(&self) -> &SonarQubeSimulator {
        &self.simulator
    }

    /// Stops accepting, closes every connection and waits (at most 5 s) for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for RunningSonarQube {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn control_state(AxState(sim): AxState<SonarQubeSimulator>) -> Response {
    ws::json(200, &sim.lock().dump())
}

/// Served whatever the credential (a refused one counts as anonymous there).
const NO_AUTH: [&str; 2] = ["/api/system/status", "/api/server/version"];
/// Open to anonymous callers even with `forceAuthentication`.
const OPEN: [&str; 4] =
    ["/api/system/status", "/api/server/version", "/api/authentication/validate", "/api/navigation/global"];

const INJECTED_ERROR: &str = "An error has occurred. Please contact your administrator";

/// Every request: faults, the status gate, authentication, then the action.
async fn dispatch(AxState(sim): AxState<SonarQubeSimulator>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
    if !(path == "/api" || path.starts_with("/api/")) {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let body = axum::body::to_bytes(body, 4 << 20).await.unwrap_or_else(|_| Bytes::new());

    let (latency, action) = roll(&mut sim.lock());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (caller, response, dropped) = match action {
        FaultAction::Drop => {
            let killed = match parts.extensions.get::<ConnectInfo<ConnHandle>>() {
                Some(ConnectInfo(conn)) => {
                    conn.kill();
                    true
                }
                // Served by someone else's listener: nothing to kill, answer 500 instead.
                None => false,
            };
            (Caller::ANONYMOUS, Fail::v1(500, INJECTED_ERROR).into_response(), killed)
        }
        FaultAction::Error => (Caller::ANONYMOUS, Fail::v1(500, INJECTED_ERROR).into_response(), false),
        FaultAction::Serve => {
            let admitted = admit(&sim, &path, authorization.as_ref());
            match admitted {
                Err(refused) => (Caller::ANONYMOUS, refused.into_response(), false),
                Ok(caller) => {
                    let call = Call::new(method.clone(), path.clone(), &query, parts.headers, body, caller);
                    let response = route(&sim, &call).await.unwrap_or_else(IntoResponse::into_response);
                    (caller, response, false)
                }
            }
        }
    };
    let mut state = sim.lock();
    let user = caller.user.and_then(|uid| state.users.get(uid)).map(|u| u.login.clone());
    let record = RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        query,
        status: if dropped { 0 } else { response.status().as_u16() },
        user,
        auth: auth::auth_kind(authorization.as_ref()).to_owned(),
    };
    state.metrics.record(format!("{method} {path}"), record);
    response
}

/// Why a request is not served.
enum Refused {
    Fail(Fail),
    /// `api/authentication/validate` with a refused credential: 200 `{"valid":false}`.
    NotValid,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Fail(fail) => fail.into_response(),
            Refused::NotValid => ws::json(200, &serde_json::json!({"valid": false})),
        }
    }
}

/// The status gate and authentication.
fn admit(
    sim: &SonarQubeSimulator,
    path: &str,
    authorization: Option<&axum::http::HeaderValue>,
) -> Result<Caller, Refused> {
    let state = sim.lock();
    if state.status != "UP" && path != "/api/system/status" {
        let msg = format!("SonarQube is not available: {}", state.status);
        return Err(Refused::Fail(Fail::v1(503, msg)));
    }
    let caller = match auth::authenticate(&state, authorization) {
        Ok(caller) => caller,
        Err(_) if NO_AUTH.contains(&path) => Caller::ANONYMOUS,
        Err(_) if path == "/api/authentication/validate" => return Err(Refused::NotValid),
        Err(refusal) => return Err(Refused::Fail(refusal)),
    };
    if caller.user.is_none() && state.force_authentication && !OPEN.contains(&path) {
        return Err(Refused::Fail(auth::unauthorized()));
    }
    Ok(caller)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultAction {
    Serve,
    Error,
    Drop,
}

/// One draw decides, like the Bitbucket simulator: `[0, drop)` drops, then errors, then serves.
fn roll(state: &mut State) -> (Duration, FaultAction) {
    let share = |rate: f64| if rate.is_nan() { 0.0 } else { rate.clamp(0.0, 1.0) };
    let Faults { latency, error_rate, drop_rate } = state.faults;
    let (drop_rate, error_rate) = (share(drop_rate), share(error_rate));
    if drop_rate <= 0.0 && error_rate <= 0.0 {
        return (latency, FaultAction::Serve);
    }
    let draw = state.rng.f64();
    let action = if draw < drop_rate {
        FaultAction::Drop
    } else if draw < drop_rate + error_rate {
        FaultAction::Error
    } else {
        FaultAction::Serve
    };
    (latency, action)
}

/// `(path, method, commercial only)` of every v1 action served.
const V1: &[(&str, Method, bool)] = &[
    ("/api/system/status", Method::GET, false),
    ("/api/server/version", Method::GET, false),
    ("/api/navigation/global", Method::GET, false),
    ("/api/features/list", Method::GET, false),
    ("/api/users/current", Method::GET, false),
    ("/api/authentication/validate", Method::GET, false),
    ("/api/alm_settings/create_bitbucket", Method::POST, false),
    ("/api/alm_settings/update_bitbucket", Method::POST, false),
    ("/api/alm_settings/delete", Method::POST, false),
    ("/api/alm_settings/list_definitions", Method::GET, false),
    ("/api/alm_settings/list", Method::GET, false),
    ("/api/alm_settings/count_binding", Method::GET, false),
    ("/api/alm_settings/validate", Method::GET, false),
    ("/api/alm_settings/get_binding", Method::GET, false),
    ("/api/alm_settings/set_bitbucket_binding", Method::POST, true),
    ("/api/alm_settings/delete_binding", Method::POST, true),
    ("/api/alm_settings/validate_binding", Method::GET, true),
    ("/api/alm_integrations/set_pat", Method::POST, false),
    ("/api/projects/search", Method::GET, false),
    ("/api/projects/create", Method::POST, false),
    ("/api/components/show", Method::GET, false),
];

/// `(path, methods)` of every v2 endpoint served.
const V2: &[(&str, &[Method])] = &[
    ("/api/v2/dop-translation/dop-settings", &[Method::GET]),
    ("/api/v2/dop-translation/bound-projects", &[Method::PUT, Method::POST]),
    ("/api/v2/dop-translation/project-bindings", &[Method::GET]),
];

async fn route(sim: &SonarQubeSimulator, call: &Call) -> Reply {
    let path = call.path.as_str();
    if let Some((_, methods)) = V2.iter().find(|(p, _)| *p == path) {
        if !methods.contains(&call.method) {
            return Err(Fail::v2(405, format!("Request method '{}' is not supported", call.method)));
        }
        return match path {
            "/api/v2/dop-translation/dop-settings" => community::dop_settings(&sim.lock(), call),
            "/api/v2/dop-translation/project-bindings" => community::project_bindings(&sim.lock(), call),
            _ => community::bound_projects(sim, call).await,
        };
    }
    let unknown = || Fail::not_found(format!("Unknown url : {path}"));
    let (_, method, commercial) = V1.iter().find(|(p, _, _)| *p == path).ok_or_else(unknown)?;
    if *commercial && !sim.lock().edition.commercial() {
        return Err(unknown());
    }
    // HEAD is answered like GET by the servlet container.
    if call.method != method && !(call.method == Method::HEAD && method == Method::GET) {
        return Err(Fail::v1(405, format!("HTTP method {method} is required")));
    }
    match path {
        "/api/alm_settings/validate" => alm_settings::validate(sim, call).await,
        "/api/alm_settings/validate_binding" => alm_settings::validate_binding(sim, call).await,
        _ => {
            let mut state = sim.lock();
            let state = &mut *state;
            match path {
                "/api/system/status" => server::status(state, call),
                "/api/server/version" => Ok(ws::text(state.version.clone())),
                "/api/navigation/global" => server::navigation(state, call),
                "/api/features/list" => server::features(state),
                "/api/users/current" => server::current_user(state, call),
                "/api/authentication/validate" => server::validate(state, call),
                "/api/alm_settings/create_bitbucket" => alm_settings::create_bitbucket(state, call),
                "/api/alm_settings/update_bitbucket" => alm_settings::update_bitbucket(state, call),
                "/api/alm_settings/delete" => alm_settings::delete(state, call),
                "/api/alm_settings/list_definitions" => alm_settings::list_definitions(state, call),
                "/api/alm_settings/list" => alm_settings::list(state, call),
                "/api/alm_settings/count_binding" => alm_settings::count_binding(state, call),
                "/api/alm_settings/get_binding" => alm_settings::get_binding(state, call),
                "/api/alm_settings/set_bitbucket_binding" => alm_settings::set_bitbucket_binding(state, call),
                "/api/alm_settings/delete_binding" => alm_settings::delete_binding(state, call),
                "/api/alm_integrations/set_pat" => community::set_pat(state, call),
                "/api/projects/search" => projects::search(state, call),
                "/api/projects/create" => projects::create(state, call),
                "/api/components/show" => projects::show(state, call),
                _ => Err(unknown()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
