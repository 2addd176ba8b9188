//! An in-process simulator of Bitbucket Data Center, following the project's wire contract
//! (`shared/bitbucket-api.md`): server info, users, projects, repositories, repository webhooks,
//! the modelled required-report merge checks and the required-builds conditions, with Bitbucket's authentication quirks (anonymous
//! fallback for unknown bearer tokens, CAPTCHA lock-out, 401 for missing permissions), its paging
//! and error envelopes, an optional per-user rate limit, fault injection, request counters and a
//! control API under `/__simulator/`. Its SonarQube counterpart, for the SonarQube side of the
//! integration, is [`sonarqube`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bitbucket_operator::simulator::{Seed, Simulator};
//! let seed = Seed::from_yaml("users: [{name: admin, password: pw, globalPermission: ADMIN}]")?;
//! let running = Simulator::new(seed)?.serve("127.0.0.1:0".parse()?).await?;
//! println!("{}", running.base_url());
//! running.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Both `/rest/api/1.0/...` and `/rest/api/latest/...` are served (same for `/rest/insights` and
//! `/rest/required-builds`). Required builds (§8.3): `GET .../conditions` (paged, REPO_READ),
//! `POST .../condition`, `PUT|DELETE .../condition/{id}` (REPO_ADMIN), under
//! `/rest/required-builds/{version}/projects/{key}/repos/{slug}`, from 7.14 on.
//! Request counters are keyed by `METHOD template` where the template is the route with its
//! parameters as `{name}` and the API version as requested, e.g.
//! `GET /rest/api/1.0/projects/{key}/repos` or
//! `PUT /rest/insights/latest/projects/{key}/repos/{slug}/settings/merge-checks/{reportKey}`;
//! requests that match no route count as `METHOD <unmatched>`. A dropped connection is logged
//! with status 0.
//!
//! # What recorded servers decide (§11)
//!
//! - The server's version in the seed picks the version-dependent answers: the 401 for a caller
//!   who is not authenticated (a missing, unknown or revoked credential) names
//!   `com.atlassian.bitbucket.AuthorisationException` up to 9.x, the same as a missing
//!   permission, and `...AuthenticationRequiredException` from 10.0; repositories carry
//!   `archived` from 8.0.
//! - `X-AREQUESTID` is on every `/rest` response (anonymous, refused and failed ones included);
//!   `X-AUSERNAME`/`X-AUSERID` only when a user is authenticated; `Cache-Control: no-cache,
//!   no-transform` on every `/rest` response, and a second `Cache-Control: private, no-cache`,
//!   `Pragma: no-cache` and `X-ASESSIONID` on those of a Basic login.
//! - SSH clone links only with `features.ssh` (on by default); `forkable` per repository;
//!   `features.pageLimit` caps every page below what was asked.
//!
//! # Guesses where the contract is UNCONFIRMED
//!
//! 1. Anonymous requests carry no `X-AUSERNAME` header at all (not `anonymous`) (§1.3). Every
//!    Basic login opens a new session: no cookie is sent, and none would be honoured.
//! 2. No `WWW-Authenticate` challenge is sent with any 401 (§1.5).
//! 3. A CAPTCHA-locked user's Basic requests get **401** (not 403) with the standard envelope,
//!    exceptionName `com.atlassian.bitbucket.auth.CaptchaRequiredAuthenticationException` and message
//!    "CAPTCHA required. Your Bitbucket account has been locked."; no
//!    `X-Authentication-Denied-Reason` header is sent (§1.6).
//! 4. The lock applies to Basic requests only: a locked user's bearer tokens keep working, and a
//!    token used as the Basic password is refused like the password. Failed Basic logins for an
//!    unknown user name, or with an undecodable header, count for nobody. `captchaThreshold: 0`
//!    disables the lock.
//! 5. The 429 body is the standard envelope (exceptionName
//!    `com.atlassian.bitbucket.throttle.ThrottledException`, a guess) with `Retry-After` as whole
//!    seconds, at least 1, computed from the bucket's refill (60 when the fill rate is 0); no
//!    `X-RateLimit-*` headers (§1.7). The identity headers are present on a 429, since the caller
//!    was authenticated.
//! 6. The rate limit is applied after authentication and before permission checks, to every
//!    `/rest` request of an authenticated (Basic or Bearer) user, anonymous ones excluded; a change
//!    of the rate-limit settings refills every bucket.
//! 7. `GET /status` always answers `{"state":"RUNNING"}`; the other states are never produced (§1.4).
//! 8. `GET /rest/capabilities` is readable anonymously and lists the 16 entries of §11 on every
//!    version, plus `code-insights` from 5.15; the fourth `dev-status-*` name and the paths of a
//!    few entries are guessed (see `server.rs`); none of the linked endpoints is served (404)
//!    (§2.3).
//! 9. Personal projects: every user has one (`~NAME`), visible to its owner and to global admins
//!    only, with no `public` key and no `description`; repository lookups by slug are
//!    case-insensitive like project keys (§4.1).
//! 10. Project visibility: a user who may read any repository of a project may also read the
//!     project (`GET /projects/{key}`), and `GET /projects/{key}/repos` lists only the repositories
//!     the caller may read (§4.2, §4.4). A missing project or repository answers 404 before any
//!     permission check, even for anonymous callers.
//! 11. Token permissions: `PROJECT_X` caps project and repository access at level X, `REPO_X` caps
//!     repository access only (project access then comes only from readable repositories); a token
//!     without `permissions` has its user's full rights; an empty list grants nothing beyond being
//!     authenticated (§1.1).
//! 12. The clone links' order alternates from one rendered repository to the next (both orders occur
//!     within one page) (§4.3).
//! 13. Unparsable or negative `start`/`limit` fall back to the defaults (0 / 25), `limit=0` means 25
//!     (§3); a page cap below 25 also lowers the default. No `filter` key is added to pages.
//! 14. Webhook create answers **200** (spec) rather than 201 (§6.1); the create response never
//!     contains `configuration.secret` (other configuration keys are echoed).
//! 15. Webhook PUT validates its body exactly like POST and answers 400 on the same faults (§6.1).
//!     `active` defaults to true and `sslVerificationRequired` to true when omitted, on POST and on
//!     PUT (full replace). PUT without `credentials` clears them; PUT with `credentials` whose
//!     `password` is absent keeps the stored password (§6.4).
//! 16. Webhook names and URLs need not be unique; repeated events in one body are silently
//!     de-duplicated (first occurrence kept) (§6.4, §10).
//! 17. Accepted repository webhook events: the repository and pull-request keys of §6.3, both
//!     `pr:reviewer:needs_work` and `pr:reviewer:changes_requested` on every version, and nothing
//!     else (`project:modified` and the application-level keys are rejected with 400).
//! 18. Validation messages and field order for webhooks (`name`, `url`, `events`, then type errors
//!     of `active`, `configuration`, `credentials`, `sslVerificationRequired`) are invented; every
//!     invalid field gets its own error entry with `context` set. A body that is not JSON (or not a
//!     JSON object) is a 400 with `context: null` and exceptionName `null`.
//! 19. Unknown webhook id (or a non-numeric one, or one of another repository) → 404 with
//!     exceptionName `com.atlassian.bitbucket.webhook.NoSuchWebhookException`.
//! 20. Required-report merge checks (§8.2): GET without a check → 404 with exceptionName
//!     `com.atlassian.bitbucket.insights.NoSuchRequiredReportException`; all three methods need
//!     REPO_ADMIN; a missing project *or* repository answers `NoSuchRepositoryException` (so a client
//!     never mistakes a missing project for a missing check); PUT needs `mustPass` as a boolean,
//!     `minSeverity` may be absent (= null) and is case-sensitive, a missing `reportKey` is taken from
//!     the path, a different one is a 400 with `context: "reportKey"`.
//! 21. With `requiredReports: false`, every `/rest/insights/{version}/.../settings/merge-checks...`
//!     request (any method) answers 404 `text/html` `<html><body>Not Found</body></html>`, after
//!     authentication (a bad password still gets its 401) but before permission checks.
//! 22. Unknown paths under `/rest` answer 404 with the envelope, message "The resource PATH does not
//!     exist.", exceptionName `null`; a wrong method answers 405 with the envelope (exceptionName
//!     `null`) and an `Allow` header. A body-carrying request without a JSON `Content-Type` gets 415
//!     with the envelope (exceptionName `null`) (§0).
//! 23. Injected 500s use the envelope with exceptionName `java.lang.RuntimeException`.
//! 24. Archived repositories behave like active ones for every endpoint here (settings can still
//!     be changed); `state` is only reported, never enforced.
//! 25. Basic disabled (`basicAuthDisabled`): every Basic request to `/rest` gets the 403
//!     `{"message":"Basic Authentication has been disabled on this instance."}` (JSON content type),
//!     before anything else; the failed-login counter is not touched.
//! 26. `GET /users` needs only authentication (anonymous → 401 on every simulated version, as
//!     reported for 10.x, with that version's body); users come sorted by slug, `filter` matches a substring of name, display
//!     name or e-mail address; `emailAddress` defaults to `<name>@example.com`.
//! 27. 404 messages repeat the project key and slug as written in the URL (not upper-cased); path
//!     parameters that cannot be decoded answer 404 with exceptionName `null`.
//! 28. Fixed `buildDate` values (`"1718000000000"` in application-properties,
//!     `"2024-06-10T06:13:20Z"` in capabilities); `hierarchyId` is 20 random hex digits;
//!     `forkable` defaults to true; the `X-AREQUESTID` node id is 7 random characters per
//!     simulator, the minute of day is UTC and the last part is always 0.
//! 29. `updatedDate` of a webhook changes on every PUT, `createdDate` never; the `event` query
//!     parameter of the webhook list filters by event (any match).
//! 30. Version thresholds nobody recorded: `hierarchyId` from 7.0 (absent on a 2019 server),
//!     webhooks' `scopeType` and `sslVerificationRequired` from 8.0 (absent on 2018/2019 servers),
//!     the 10.x form of the unauthenticated 401 from exactly 10.0.
//! 31. Drops need a connection to kill: with [`Simulator::serve`] the client sees the connection
//!     close without a response; with [`Simulator::router`] served by someone else, a "dropped"
//!     request is answered 500 instead.
//! 32. `GET /rest/api/{version}/repos` (all projects) lists the repositories the caller may read
//!     ordered by project key then slug, personal projects (`~NAME`) last; none of its filters
//!     (`name`, `projectname`, `permission`, `visibility`) is applied.
//! 33. Required builds (§8.3): the API starts at exactly 7.14.0; before, its paths answer like any
//!     unknown `/rest` path (404, exceptionName `null`). Condition ids are one counter across all
//!     repositories, starting at 1. A PUT of an unknown id answers 404 with exceptionName
//!     `com.atlassian.bitbucket.build.requiredbuilds.NoSuchRequiredBuildConditionException`; DELETE
//!     answers 204 for any id, a non-numeric one included. Invalid set-requests answer 400 with one
//!     error per field, `context` `buildParentKeys` (none, more than 100, or an entry that is not a
//!     non-empty string of at most 255 characters), `refMatcher.type` / `refMatcher.id` (and the same
//!     for `exemptRefMatcher`); an `ANY_REF` matcher's id may be left out and is then
//!     `ANY_REF_MATCHER_ID`. The list is ordered by id. Responses carry `displayId` (a branch's name
//!     without `refs/heads/`, a model category or branch capitalised, otherwise the id) and
//!     `type.name` (invented names); `requiredForPullRequest` and `requiredForMergeQueue` are neither
//!     read nor reported.
//! 34. `GET .../repos/{slug}/default-branch` is served by every version (it names the configured
//!     default, pushed or not, as `{"id","displayId","type":"BRANCH"}`) and needs REPO_READ.

pub mod seed;
pub mod sonarqube;

mod access;
mod auth;
mod control;
mod dump;
mod faults;
mod merge_checks;
mod projects;
mod repositories;
mod required_builds;
mod respond;
mod server;
mod state;
mod webhooks;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{ConnectInfo, MatchedPath, Request, State as AxState},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde::Serialize;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

pub use seed::{Seed, SeedError};

use self::{
    auth::{AuthKind, Caller, Refusal},
    faults::{ConnHandle, FaultAction, SimListener},
    respond::{ApiError, html_not_found, json_response},
    state::State,
};

/// Injected faults for `/rest` requests (never for `/__simulator`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Added to every request before it is answered.
    pub latency: Duration,
    /// Share (0.0–1.0) of requests answered 500 with the error envelope.
    pub error_rate: f64,
    /// Share (0.0–1.0) of requests whose connection is closed without any response.
    pub drop_rate: f64,
}

/// The per-user token bucket (§1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub capacity: u32,
    /// Tokens added per second.
    pub fill_rate: u32,
}

/// One served request, as logged. Credentials are never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The raw query string, empty when there is none.
    pub query: String,
    /// 0 when the connection was dropped without a response.
    pub status: u16,
    /// The authenticated user, `None` for anonymous or refused requests.
    pub user: Option<String>,
    /// `bearer`, `basic` or `none`: the kind of `Authorization` header sent.
    pub auth: String,
}

/// Why a control operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("project {0} does not exist")]
    NoSuchProject(String),
    #[error("repository {0} does not exist")]
    NoSuchRepository(String),
    #[error("repository {0} already exists")]
    RepositoryExists(String),
    #[error("{0:?} is not a valid repository slug")]
    InvalidSlug(String),
    #[error("webhook {0} does not exist")]
    NoSuchWebhook(i64),
    #[error("user {0} does not exist")]
    NoSuchUser(String),
    #[error("a token must not be empty")]
    InvalidToken,
    #[error("the token is already in use")]
    TokenInUse,
    #[error("invalid merge check: {0}")]
    InvalidMergeCheck(String),
    #[error("required-builds condition {0} does not exist")]
    NoSuchRequiredBuild(i64),
    #[error("invalid required-builds condition: {0}")]
    InvalidRequiredBuild(String),
    #[error("{0}")]
    WrongPermissionKind(String),
}

struct Inner {
    state: Mutex<State>,
}

/// The simulator: cheap to clone, every clone shares one state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").finish_non_exhaustive()
    }
}

impl Simulator {
    /// Builds the state from a seed (validated again here).
    pub fn new(seed: Seed) -> Result<Simulator, SeedError> {
        let state = State::from_seed(&seed)?;
        Ok(Simulator { inner: Arc::new(Inner { state: Mutex::new(state) }) })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Binds `addr` (port 0 picks a free port), serves in a background task and returns at once.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<RunningSimulator> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        self.lock().base_url = Some(Arc::from(format!("http://{local}")));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut graceful = shutdown_rx.clone();
        let app = self.router().into_make_service_with_connect_info::<ConnHandle>();
        let server = axum::serve(SimListener::new(listener, shutdown_rx), app).with_graceful_shutdown(async move {
            let _ = graceful.wait_for(|down| *down).await;
        });
        let task = tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::warn!(%error, "the Bitbucket simulator stopped");
            }
        });
        Ok(RunningSimulator { simulator: self.clone(), addr: local, shutdown: shutdown_tx, task: Some(task) })
    }

    /// The whole application: the Bitbucket endpoints and the `/__simulator` control API.
    pub fn router(&self) -> Router {
        let mut rest =
            Router::new().route("/status", get(server::status)).route("/rest/capabilities", get(server::capabilities));
        for version in ["1.0", "latest"] {
            let api = format!("/rest/api/{version}");
            let repo = format!("{api}/projects/{{key}}/repos/{{slug}}");
            rest = rest
                .route(&format!("{api}/application-properties"), get(server::application_properties))
                .route(&format!("{api}/users"), get(server::users))
                .route(&format!("{api}/repos"), get(repositories::list_all))
                .route(&format!("{api}/projects/{{key}}"), get(projects::get_project))
                .route(&format!("{api}/projects/{{key}}/repos"), get(repositories::list))
                .route(&repo, get(repositories::get))
                .route(&format!("{repo}/default-branch"), get(repositories::default_branch))
                .route(&format!("{repo}/webhooks"), get(webhooks::list).post(webhooks::create))
                .route(
                    &format!("{repo}/webhooks/{{id}}"),
                    get(webhooks::get).put(webhooks::update).delete(webhooks::delete),
                )
                .route(
                    &format!(
                        "/rest/insights/{version}/projects/{{key}}/repos/{{slug}}/settings/merge-checks/{{reportKey}}"
                    ),
                    put(merge_checks::put).get(merge_checks::get).delete(merge_checks::delete),
                )
                .route(
                    &format!("/rest/required-builds/{version}/projects/{{key}}/repos/{{slug}}/conditions"),
                    get(required_builds::list),
                )
                .route(
                    &format!("/rest/required-builds/{version}/projects/{{key}}/repos/{{slug}}/condition"),
                    post(required_builds::create),
                )
                .route(
                    &format!("/rest/required-builds/{version}/projects/{{key}}/repos/{{slug}}/condition/{{id}}"),
                    put(required_builds::update).delete(required_builds::delete),
                );
        }
        let rest = rest
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(self.clone(), pipeline))
            .with_state(self.clone());
        rest.merge(control::router(self.clone()))
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Makes the fault shares reproducible.
    pub fn set_fault_seed(&self, seed: u64) {
        self.lock().rng = fastrand::Rng::with_seed(seed);
    }

    /// `None` switches the rate limit off. Every bucket starts full again.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut state = self.lock();
        state.rate_limit = limit;
        state.buckets.clear();
    }

    pub fn set_required_reports_supported(&self, on: bool) {
        self.lock().features.required_reports = on;
    }

    pub fn set_basic_auth_disabled(&self, on: bool) {
        self.lock().features.basic_auth_disabled = on;
    }

    /// With SSH off, repositories carry only their `http` clone link.
    pub fn set_ssh_enabled(&self, on: bool) {
        self.lock().features.ssh = on;
    }

    /// The largest page a list answers (at least 1, at most 1000).
    pub fn set_page_limit(&self, limit: usize) {
        self.lock().features.page_limit = limit.clamp(1, respond::MAX_LIMIT);
    }

    /// Consecutive failed Basic logins that lock a user (0 = never).
    pub fn set_captcha_threshold(&self, threshold: u32) {
        self.lock().features.captcha_threshold = threshold;
    }

    /// Clears a user's failed-login count (and so the CAPTCHA lock). Unknown users are ignored.
    pub fn reset_captcha(&self, user: &str) {
        let mut state = self.lock();
        if let Some(uid) = state.user_id(user)
            && let Some(u) = state.users.get_mut(uid)
        {
            u.failed_logins = 0;
        }
    }

    /// Consecutive failed Basic logins of a user (0 for unknown users).
    pub fn failed_login_count(&self, user: &str) -> u32 {
        let state = self.lock();
        state.user_id(user).and_then(|uid| state.users.get(uid)).map_or(0, |u| u.failed_logins)
    }

    /// Requests served since the start or the last [`Simulator::clear_requests`].
    pub fn request_count(&self) -> u64 {
        self.lock().metrics.total
    }

    /// Requests by `METHOD template`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().metrics.by_endpoint.clone()
    }

    /// Requests by `METHOD template` and status.
    pub fn request_counts_by_status(&self) -> BTreeMap<(String, u16), u64> {
        self.lock().metrics.by_endpoint_status.clone()
    }

    /// The last (at most 10 000) requests, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().metrics.log.iter().cloned().collect()
    }

    /// Empties the log and zeroes every counter.
    pub fn clear_requests(&self) {
        self.lock().metrics.clear();
    }

    /// Creates an (empty, AVAILABLE) repository behind the operator's back; returns its id.
    pub fn create_repository(&self, project_key: &str, slug: &str) -> Result<i64, SimError> {
        self.lock().create_repository(project_key, slug)
    }

    pub fn delete_repository(&self, project_key: &str, slug: &str) -> Result<(), SimError> {
        self.lock().delete_repository(project_key, slug)
    }

    /// Changes a repository's default branch (a name or a full ref) behind the operator's back.
    pub fn set_default_branch(&self, project_key: &str, slug: &str, branch: &str) -> Result<(), SimError> {
        self.lock().set_default_branch(project_key, slug, branch)
    }

    pub fn set_repository_archived(&self, project_key: &str, slug: &str, archived: bool) -> Result<(), SimError> {
        self.lock().set_repository_archived(project_key, slug, archived)
    }

    /// The repository's webhooks as `GET .../webhooks/{id}` returns them, by id.
    pub fn webhooks(&self, project_key: &str, slug: &str) -> Result<Vec<serde_json::Value>, SimError> {
        self.lock().webhooks(project_key, slug)
    }

    pub fn delete_webhook(&self, project_key: &str, slug: &str, id: i64) -> Result<(), SimError> {
        self.lock().delete_webhook(project_key, slug, id)
    }

    /// The stored check as `GET` returns it, `None` when there is none.
    pub fn merge_check(
        &self,
        project_key: &str,
        slug: &str,
        report_key: &str,
    ) -> Result<Option<serde_json::Value>, SimError> {
        self.lock().merge_check(project_key, slug, report_key)
    }

    /// Stores `{"reportKey","mustPass","minSeverity"}` (validated like `PUT`).
    pub fn set_merge_check(&self, project_key: &str, slug: &str, check: serde_json::Value) -> Result<(), SimError> {
        self.lock().set_merge_check(project_key, slug, &check)
    }

    /// Removes a check; absent checks are fine, a missing repository is not.
    pub fn delete_merge_check(&self, project_key: &str, slug: &str, report_key: &str) -> Result<(), SimError> {
        self.lock().delete_merge_check(project_key, slug, report_key)
    }

    /// The repository's required-builds conditions as the list returns them, by id.
    pub fn required_builds(&self, project_key: &str, slug: &str) -> Result<Vec<serde_json::Value>, SimError> {
        self.lock().required_builds(project_key, slug)
    }

    /// Adds a condition as a user would in the UI: `condition` is a set-request, validated like
    /// `POST`; returns the new id.
    pub fn add_required_build(
        &self,
        project_key: &str,
        slug: &str,
        condition: serde_json::Value,
    ) -> Result<i64, SimError> {
        self.lock().add_required_build(project_key, slug, &condition)
    }

    /// Edits a condition behind the operator's back, keeping its id (as the UI does).
    pub fn edit_required_build(
        &self,
        project_key: &str,
        slug: &str,
        id: i64,
        condition: serde_json::Value,
    ) -> Result<(), SimError> {
        self.lock().edit_required_build(project_key, slug, id, &condition)
    }

    /// Removes a condition behind the operator's back; an unknown id is an error here.
    pub fn delete_required_build(&self, project_key: &str, slug: &str, id: i64) -> Result<(), SimError> {
        self.lock().delete_required_build(project_key, slug, id)
    }

    /// Adds a personal token (no permission cap) for `user`.
    pub fn add_token(&self, user: &str, token: &str) -> Result<(), SimError> {
        self.lock().add_token(user, token)
    }

    /// Removes a token; it is then served as anonymous. Unknown tokens are ignored.
    pub fn revoke_token(&self, token: &str) {
        self.lock().revoke_token(token);
    }

    /// Grants `user` a `PROJECT_*` permission on a project, or drops its grant (`None`).
    pub fn set_project_permission(
        &self,
        project_key: &str,
        user: &str,
        permission: Option<seed::Permission>,
    ) -> Result<(), SimError> {
        self.lock().set_project_permission(project_key, user, permission)
    }

    /// Grants `user` a `REPO_*` permission on a repository, or drops its grant (`None`); a
    /// project grant keeps applying.
    pub fn set_repository_permission(
        &self,
        project_key: &str,
        slug: &str,
        user: &str,
        permission: Option<seed::Permission>,
    ) -> Result<(), SimError> {
        self.lock().set_repository_permission(project_key, slug, user, permission)
    }

    /// The `/__simulator/state` dump (no passwords or token values).
    pub fn state_json(&self) -> serde_json::Value {
        self.lock().dump()
    }
}

/// A simulator serving in the background. Dropping it stops the server and its connections.
#[derive(Debug)]
pub struct RunningSimulator {
    simulator: Simulator,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningSimulator {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn simulator(&self) -> &Simulator {
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

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What the request's handler needs besides its parameters: the caller and the base URL for links.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub caller: Caller,
    pub base: Arc<str>,
}

/// The identity headers of an authenticated response.
struct Identity {
    name: String,
    id: i64,
}

enum Admission {
    Serve(Caller),
    Refused(Refusal),
    Limited(Caller, u64),
    Html404(Caller),
    Error,
    Drop,
}

const INJECTED_ERROR: &str = "java.lang.RuntimeException";
const THROTTLED: &str = "com.atlassian.bitbucket.throttle.ThrottledException";

fn is_merge_check_path(path: &str) -> bool {
    path.starts_with("/rest/insights/") && path.contains("/settings/merge-checks")
}

/// Every Bitbucket request passes here: faults, authentication, rate limit, the required-report
/// switch, then the handler; afterwards the identity headers, counters and log.
async fn pipeline(AxState(sim): AxState<Simulator>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let template = request.extensions().get::<MatchedPath>().map_or("<unmatched>", |m| m.as_str());
    let endpoint = format!("{method} {template}");
    let is_rest = path == "/rest" || path.starts_with("/rest/");
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let kind = AuthKind::of(authorization.as_ref());
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);

    let (latency, admission, identity, base, request_id, session) = {
        let mut state = sim.lock();
        let base: Arc<str> = match (&state.base_url, host) {
            (Some(base), _) => base.clone(),
            (None, Some(host)) => Arc::from(format!("http://{host}")),
            (None, None) => Arc::from("http://localhost"),
        };
        let (latency, action) = if is_rest { faults::roll(&mut state) } else { (Duration::ZERO, FaultAction::Serve) };
        let admission = match action {
            FaultAction::Drop => Admission::Drop,
            FaultAction::Error => Admission::Error,
            FaultAction::Serve if !is_rest => Admission::Serve(Caller { kind, ..Caller::ANONYMOUS }),
            FaultAction::Serve => match auth::authenticate(&mut state, authorization.as_ref()) {
                Err(refusal) => Admission::Refused(refusal),
                Ok(caller) => match caller.user.map(|uid| auth::rate_limit(&mut state, uid, Instant::now())) {
                    Some(Err(wait)) => Admission::Limited(caller, wait),
                    _ if !state.features.required_reports && is_merge_check_path(&path) => Admission::Html404(caller),
                    _ => Admission::Serve(caller),
                },
            },
        };
        let caller = match &admission {
            Admission::Serve(c) | Admission::Limited(c, _) | Admission::Html404(c) => Some(*c),
            _ => None,
        };
        let identity = caller.and_then(|c| c.user).and_then(|uid| {
            let (name, id) = state.users.get(uid).map(|u| (u.name.clone(), u.id))?;
            Some(Identity { name, id })
        });
        let request_id = is_rest.then(|| state.next_request_id());
        // A Basic login opens a session; a bearer token does not.
        let basic_login = identity.is_some() && caller.is_some_and(|c| c.kind == AuthKind::Basic);
        let session = (is_rest && basic_login).then(|| state.next_session_id());
        (latency, admission, identity, base, request_id, session)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let (mut response, dropped) = match admission {
        Admission::Drop => {
            // With `serve` the connection dies before the response is written; with `router`
            // alone (no connection to kill) the 500 below is what the caller gets.
            let killed = match request.extensions().get::<ConnectInfo<ConnHandle>>() {
                Some(ConnectInfo(conn)) => {
                    conn.kill();
                    true
                }
                None => false,
            };
            let error = ApiError::new(500, "The connection was dropped by the simulator.", Some(INJECTED_ERROR));
            (error.into_response(), killed)
        }
        Admission::Error => {
            (ApiError::new(500, "An injected server error occurred.", Some(INJECTED_ERROR)).into_response(), false)
        }
        Admission::Refused(Refusal::Envelope(error)) => (error.into_response(), false),
        Admission::Refused(Refusal::BasicDisabled) => (
            json_response(
                403,
                &serde_json::json!({"message": "Basic Authentication has been disabled on this instance."}),
            ),
            false,
        ),
        Admission::Limited(_, wait) => {
            let mut response = ApiError::new(
                429,
                "You have been rate limited. Please wait before making further requests.",
                Some(THROTTLED),
            )
            .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
            (response, false)
        }
        Admission::Html404(_) => (html_not_found(), false),
        Admission::Serve(caller) => {
            request.extensions_mut().insert(Ctx { caller, base });
            let mut response = next.run(request).await;
            if is_rest && response.status() == StatusCode::METHOD_NOT_ALLOWED {
                let allow = response.headers().get(header::ALLOW).cloned();
                response =
                    ApiError::new(405, format!("Method {method} is not supported for {path}."), None).into_response();
                if let Some(allow) = allow {
                    response.headers_mut().insert(header::ALLOW, allow);
                }
            }
            (response, false)
        }
    };
    let status = if dropped { 0 } else { response.status().as_u16() };

    if is_rest {
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
        if let Some(session) = session.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
            headers.append(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            headers.insert(HeaderName::from_static("x-asessionid"), session);
        }
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::VARY, HeaderValue::from_static("x-ausername,x-auserid,cookie,accept-encoding"));
        if let Some(id) = request_id.as_deref().and_then(|id| HeaderValue::from_str(id).ok()) {
            headers.insert(HeaderName::from_static("x-arequestid"), id);
        }
        if let Some(identity) = &identity {
            if let Ok(name) = HeaderValue::from_str(&identity.name) {
                headers.insert(HeaderName::from_static("x-ausername"), name);
            }
            headers.insert(HeaderName::from_static("x-auserid"), HeaderValue::from(identity.id));
        }
    }

    if path.starts_with("/__simulator") {
        return response;
    }
    let record = RequestRecord {
        method: method.to_string(),
        path,
        query,
        status,
        user: identity.map(|i| i.name),
        auth: kind.as_str().to_owned(),
    };
    sim.lock().metrics.record(endpoint, record);
    response
}

/// Unknown paths: the envelope under `/rest`, a bare 404 elsewhere.
async fn not_found(request: Request) -> Response {
    let path = request.uri().path();
    if path == "/rest" || path.starts_with("/rest/") {
        ApiError::not_found(path).into_response()
    } else {
        html_not_found()
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod version_tests;
