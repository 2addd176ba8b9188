//! Authentication (Bearer, Basic, CAPTCHA lock-out), permission resolution and the per-user
//! rate-limit token bucket (§1 of the contract).

use std::time::Instant;

use axum::http::HeaderValue;
use base64::Engine as _;

use super::{
    respond::ApiError,
    seed::{GlobalPermission, Permission},
    state::{Project, ProjectKind, Repo, State, UserId},
};

/// Which kind of `Authorization` header a request carried (for the request log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthKind {
    None,
    Bearer,
    Basic,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::Bearer => "bearer",
            AuthKind::Basic => "basic",
        }
    }

    pub fn of(header: Option<&HeaderValue>) -> AuthKind {
        let Some(value) = header.and_then(|h| h.to_str().ok()) else {
            return AuthKind::None;
        };
        let scheme = value.split_once(' ').map_or(value, |(s, _)| s);
        if scheme.eq_ignore_ascii_case("bearer") {
            AuthKind::Bearer
        } else if scheme.eq_ignore_ascii_case("basic") {
            AuthKind::Basic
        } else {
            AuthKind::None
        }
    }
}

/// What a token may do at most: levels 0 (nothing) to 3 (admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenCap {
    pub project: u8,
    pub repo: u8,
}

impl TokenCap {
    /// `PROJECT_X` caps projects at X and repositories at X; `REPO_X` caps repositories only.
    pub fn from_permissions(permissions: &[Permission]) -> TokenCap {
        let project = permissions.iter().filter(|p| p.is_project()).map(|p| p.level()).max().unwrap_or(0);
        let repo = permissions.iter().map(|p| p.level()).max().unwrap_or(0);
        TokenCap { project, repo }
    }

    pub fn describe(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if let Some(p) =
            ["PROJECT_READ", "PROJECT_WRITE", "PROJECT_ADMIN"].get(usize::from(self.project).wrapping_sub(1))
        {
            out.push(*p);
        }
        if let Some(r) = ["REPO_READ", "REPO_WRITE", "REPO_ADMIN"].get(usize::from(self.repo).wrapping_sub(1)) {
            out.push(*r);
        }
        out
    }
}

/// Who is calling, as the handlers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caller {
    pub user: Option<UserId>,
    pub cap: Option<TokenCap>,
    pub kind: AuthKind,
}

impl Caller {
    pub const ANONYMOUS: Caller = Caller { user: None, cap: None, kind: AuthKind::None };

    pub fn is_anonymous(&self) -> bool {
        self.user.is_none()
    }
}

/// Why a request is refused before it reaches a handler.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The standard error envelope (401).
    Envelope(ApiError),
    /// 403 with the non-envelope body of Bitbucket 10.
    BasicDisabled,
}

pub(crate) const INCORRECT_PASSWORD: &str = "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException";
pub(crate) const CAPTCHA_REQUIRED: &str = "com.atlassian.bitbucket.auth.CaptchaRequiredAuthenticationException";
pub(crate) const AUTHENTICATION_REQUIRED: &str =
    "com.atlassian.plugins.rest.api.security.exception.AuthenticationRequiredException";
pub(crate) const AUTHORISATION: &str = "com.atlassian.bitbucket.AuthorisationException";
const NOT_PERMITTED: &str = "You are not permitted to access this resource";

fn incorrect_password() -> Refusal {
    Refusal::Envelope(ApiError::new(
        401,
        "Authentication failed. Please check your credentials and try again.",
        Some(INCORRECT_PASSWORD),
    ))
}

/// Resolves the `Authorization` header. Unknown bearer tokens (and unknown schemes) are served as
/// anonymous; Basic failures count towards the user's CAPTCHA lock.
pub(crate) fn authenticate(state: &mut State, header: Option<&HeaderValue>) -> Result<Caller, Refusal> {
    let kind = AuthKind::of(header);
    let Some(value) = header.and_then(|h| h.to_str().ok()) else {
        return Ok(Caller::ANONYMOUS);
    };
    let credentials = value.split_once(' ').map_or("", |(_, rest)| rest).trim();
    match kind {
        AuthKind::None => Ok(Caller::ANONYMOUS),
        AuthKind::Bearer => Ok(match state.tokens.get(credentials) {
            Some(token) => Caller { user: Some(token.user), cap: token.cap, kind },
            None => Caller { kind, ..Caller::ANONYMOUS },
        }),
        AuthKind::Basic => {
            if state.features.basic_auth_disabled {
                return Err(Refusal::BasicDisabled);
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            let Some((username, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err(incorrect_password());
            };
            let Some(uid) = state.user_id(username) else {
                return Err(incorrect_password());
            };
            let threshold = state.features.captcha_threshold;
            let Some(user) = state.users.get(uid) else {
                return Err(incorrect_password());
            };
            if threshold > 0 && user.failed_logins >= threshold {
                return Err(Refusal::Envelope(ApiError::new(
                    401,
                    "CAPTCHA required. Your Bitbucket account has been locked.",
                    Some(CAPTCHA_REQUIRED),
                )));
            }
            let password_ok = !password.is_empty() && user.password.as_deref() == Some(password);
            let token =
                if password_ok { None } else { state.tokens.get(password).filter(|t| t.user == uid).map(|t| t.cap) };
            if !password_ok && token.is_none() {
                if let Some(user) = state.users.get_mut(uid) {
                    user.failed_logins = user.failed_logins.saturating_add(1);
                }
                return Err(incorrect_password());
            }
            if let Some(user) = state.users.get_mut(uid) {
                user.failed_logins = 0;
            }
            Ok(Caller { user: Some(uid), cap: token.flatten(), kind })
        }
    }
}

/// The 401 for a caller who may not do something (401, not 403, even for a missing permission).
/// Anonymous callers (an unknown or revoked token included) get the same answer as authenticated
/// ones before 10.x; 10.x asks them to authenticate.
pub(crate) fn denied(state: &State, caller: &Caller) -> ApiError {
    let exception = if caller.is_anonymous() { state.server.unauthenticated_exception() } else { AUTHORISATION };
    ApiError::new(401, NOT_PERMITTED, Some(exception))
}

fn is_global_admin(state: &State, caller: &Caller) -> bool {
    caller
        .user
        .and_then(|uid| state.users.get(uid))
        .is_some_and(|u| matches!(u.global, Some(GlobalPermission::Admin | GlobalPermission::SysAdmin)))
}

/// The caller's level on a project (0 none, 1 read, 2 write, 3 admin), after the token cap.
/// Public projects give everyone (anonymous included) read.
pub(crate) fn project_level(state: &State, caller: &Caller, project: &Project) -> u8 {
    let mut level = 0;
    if let Some(uid) = caller.user {
        if is_global_admin(state, caller) || project.kind == ProjectKind::Personal(uid) {
            level = 3;
        } else {
            level = project.permissions.get(&uid).copied().unwrap_or(0);
        }
        if let Some(cap) = caller.cap {
            level = level.min(cap.project);
        }
    }
    if project.public { level.max(1) } else { level }
}

/// The caller's level on a repository, after the token cap: the best of global, project-level and
/// repository-level grants (a project grant implies the same level on its repositories).
pub(crate) fn repo_level(state: &State, caller: &Caller, project: &Project, repo: &Repo) -> u8 {
    let mut level = 0;
    if let Some(uid) = caller.user {
        if is_global_admin(state, caller) || project.kind == ProjectKind::Personal(uid) {
            level = 3;
        } else {
            let from_project = project.permissions.get(&uid).copied().unwrap_or(0);
            let from_repo = repo.permissions.get(&uid).copied().unwrap_or(0);
            level = from_project.max(from_repo);
        }
        if let Some(cap) = caller.cap {
            level = level.min(cap.repo);
        }
    }
    if project.public { level.max(1) } else { level }
}

/// A project is visible to whoever may read it or any of its repositories.
pub(crate) fn can_view_project(state: &State, caller: &Caller, project: &Project) -> bool {
    project_level(state, caller, project) >= 1
        || project.repos.values().any(|r| repo_level(state, caller, project, r) >= 1)
}

/// Per-user token bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(capacity: u32, now: Instant) -> Bucket {
        Bucket { tokens: f64::from(capacity), last: now }
    }

    /// Takes one token; when none is left, returns the whole seconds until one will be.
    pub fn take(&mut self, capacity: u32, fill_rate: u32, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * f64::from(fill_rate)).min(f64::from(capacity));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if fill_rate == 0 {
            return Err(60);
        }
        let wait = (1.0 - self.tokens) / f64::from(fill_rate);
        Err((wait.ceil() as u64).max(1))
    }
}

/// Applies the rate limit (when on) to an authenticated caller. `Err` = seconds to wait.
pub(crate) fn rate_limit(state: &mut State, uid: UserId, now: Instant) -> Result<(), u64> {
    let Some(limit) = state.rate_limit else {
        return Ok(());
    };
    state.buckets.entry(uid).or_insert_with(|| Bucket::full(limit.capacity, now)).take(
        limit.capacity,
        limit.fill_rate,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::seed::Seed;

    fn state() -> State {
        let seed = Seed::from_yaml(
            r#"
features: {captchaThreshold: 3}
users:
  - {name: admin, password: pw, globalPermission: ADMIN, tokens: [{name: ro, token: admin-ro, permissions: [PROJECT_READ]}]}
  - {name: jdoe, password: pw, tokens: [{name: t, token: jdoe-full}, {name: r, token: jdoe-repo, permissions: [REPO_READ]}]}
  - {name: writer, password: pw}
  - {name: nobody, password: pw}
projects:
  - key: PAY
    permissions: {jdoe: PROJECT_READ, writer: PROJECT_WRITE}
    repositories:
      - {slug: api, permissions: {jdoe: REPO_ADMIN}}
      - {slug: web}
  - key: PUB
    public: true
    repositories: [{slug: open}]
"#,
        )
        .unwrap();
        State::from_seed(&seed).unwrap()
    }

    fn later(now: Instant, millis: u64) -> Instant {
        now + std::time::Duration::from_millis(millis)
    }

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        header(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
    }

    fn levels(state: &State, caller: &Caller, key: &str, slug: &str) -> (u8, u8) {
        let (project, repo) = state.repo(key, slug).unwrap();
        (project_level(state, caller, project), repo_level(state, caller, project, repo))
    }

    fn as_user(state: &State, name: &str) -> Caller {
        Caller { user: state.user_id(name), cap: None, kind: AuthKind::Basic }
    }

    #[test]
    fn permission_resolution() {
        let s = state();
        assert_eq!(levels(&s, &as_user(&s, "admin"), "pay", "api"), (3, 3));
        assert_eq!(levels(&s, &as_user(&s, "jdoe"), "PAY", "api"), (1, 3));
        assert_eq!(levels(&s, &as_user(&s, "jdoe"), "PAY", "web"), (1, 1));
        assert_eq!(levels(&s, &as_user(&s, "writer"), "PAY", "web"), (2, 2));
        assert_eq!(levels(&s, &as_user(&s, "nobody"), "PAY", "web"), (0, 0));
        assert_eq!(levels(&s, &Caller::ANONYMOUS, "PAY", "web"), (0, 0));
        assert_eq!(levels(&s, &Caller::ANONYMOUS, "PUB", "open"), (1, 1));
        assert_eq!(levels(&s, &as_user(&s, "nobody"), "pub", "open"), (1, 1));
        // Personal project: the owner administers it, nobody else sees it.
        let personal = s.project("~JDOE").unwrap();
        assert_eq!(project_level(&s, &as_user(&s, "jdoe"), personal), 3);
        assert_eq!(project_level(&s, &as_user(&s, "writer"), personal), 0);
        assert_eq!(project_level(&s, &as_user(&s, "admin"), personal), 3);
    }

    #[test]
    fn token_caps_limit_the_user() {
        let mut s = state();
        let admin_ro = authenticate(&mut s, Some(&header("Bearer admin-ro"))).unwrap();
        assert_eq!(admin_ro.cap, Some(TokenCap { project: 1, repo: 1 }));
        assert_eq!(levels(&s, &admin_ro, "PAY", "api"), (1, 1));
        let repo_only = authenticate(&mut s, Some(&header("Bearer jdoe-repo"))).unwrap();
        assert_eq!(levels(&s, &repo_only, "PAY", "api"), (0, 1));
        let (project, _) = s.repo("PAY", "api").unwrap();
        assert!(can_view_project(&s, &repo_only, project));
        let full = authenticate(&mut s, Some(&header("Bearer jdoe-full"))).unwrap();
        assert_eq!(levels(&s, &full, "PAY", "api"), (1, 3));
        // The token also works as a Basic password, with its cap.
        let basic_token = authenticate(&mut s, Some(&basic("jdoe", "jdoe-repo"))).unwrap();
        assert_eq!(basic_token.cap, Some(TokenCap { project: 0, repo: 1 }));
        // Another user's token is not a password.
        assert!(authenticate(&mut s, Some(&basic("writer", "jdoe-full"))).is_err());
    }

    #[test]
    fn unknown_bearer_is_anonymous() {
        let mut s = state();
        let caller = authenticate(&mut s, Some(&header("Bearer nope"))).unwrap();
        assert!(caller.is_anonymous());
        assert_eq!(caller.kind, AuthKind::Bearer);
        assert!(authenticate(&mut s, Some(&header("Negotiate abc"))).unwrap().is_anonymous());
    }

    fn exception(result: Result<Caller, Refusal>) -> Option<&'static str> {
        match result {
            Err(Refusal::Envelope(e)) => e.errors.first().and_then(|e| e.exception_name),
            Err(Refusal::BasicDisabled) => Some("disabled"),
            Ok(_) => None,
        }
    }

    #[test]
    fn captcha_counting() {
        let mut s = state();
        let uid = s.user_id("jdoe").unwrap();
        // A correct login resets the count.
        assert_eq!(exception(authenticate(&mut s, Some(&basic("jdoe", "bad")))), Some(INCORRECT_PASSWORD));
        assert_eq!(exception(authenticate(&mut s, Some(&basic("jdoe", "bad")))), Some(INCORRECT_PASSWORD));
        assert_eq!(s.users[uid].failed_logins, 2);
        assert!(authenticate(&mut s, Some(&basic("jdoe", "pw"))).is_ok());
        assert_eq!(s.users[uid].failed_logins, 0);
        // Three in a row lock the user, even for the right password.
        for _ in 0..3 {
            assert_eq!(exception(authenticate(&mut s, Some(&basic("JDOE", "bad")))), Some(INCORRECT_PASSWORD));
        }
        assert_eq!(s.users[uid].failed_logins, 3);
        assert_eq!(exception(authenticate(&mut s, Some(&basic("jdoe", "pw")))), Some(CAPTCHA_REQUIRED));
        assert_eq!(exception(authenticate(&mut s, Some(&basic("jdoe", "jdoe-full")))), Some(CAPTCHA_REQUIRED));
        assert_eq!(s.users[uid].failed_logins, 3);
        // Bearer tokens neither count nor are blocked.
        assert!(!authenticate(&mut s, Some(&header("Bearer jdoe-full"))).unwrap().is_anonymous());
        assert!(authenticate(&mut s, Some(&header("Bearer wrong"))).unwrap().is_anonymous());
        assert_eq!(s.users[uid].failed_logins, 3);
        // Unknown users and garbage count for nobody.
        assert_eq!(exception(authenticate(&mut s, Some(&basic("ghost", "x")))), Some(INCORRECT_PASSWORD));
        assert_eq!(exception(authenticate(&mut s, Some(&header("Basic %%%")))), Some(INCORRECT_PASSWORD));
        assert_eq!(exception(authenticate(&mut s, Some(&header("Basic")))), Some(INCORRECT_PASSWORD));
        s.users[uid].failed_logins = 0;
        assert!(authenticate(&mut s, Some(&basic("jdoe", "pw"))).is_ok());
        s.features.basic_auth_disabled = true;
        assert_eq!(exception(authenticate(&mut s, Some(&basic("jdoe", "pw")))), Some("disabled"));
    }

    #[test]
    fn token_bucket() {
        let start = Instant::now();
        let mut bucket = Bucket::full(3, start);
        for _ in 0..3 {
            assert_eq!(bucket.take(3, 2, start), Ok(()));
        }
        assert_eq!(bucket.take(3, 2, start), Err(1));
        // Half a second at 2/s refills one token.
        assert_eq!(bucket.take(3, 2, later(start, 500)), Ok(()));
        assert_eq!(bucket.take(3, 2, later(start, 500)), Err(1));
        // A long pause refills to capacity, not beyond.
        let much_later = later(start, 60_000);
        for _ in 0..3 {
            assert_eq!(bucket.take(3, 2, much_later), Ok(()));
        }
        assert!(bucket.take(3, 2, much_later).is_err());
        // A slow refill asks for a longer wait; zero refill never underflows.
        let mut slow = Bucket::full(1, start);
        assert_eq!(slow.take(1, 1, start), Ok(()));
        assert_eq!(slow.take(1, 1, start), Err(1));
        let mut none = Bucket::full(0, start);
        assert_eq!(none.take(0, 0, start), Err(60));
        let mut fractional = Bucket { tokens: 0.0, last: start };
        assert_eq!(fractional.take(10, 1, later(start, 100)), Err(1));
    }
}
