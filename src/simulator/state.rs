//! The simulated server's model: users, tokens, projects, repositories, webhooks, merge checks,
//! switches, and the request counters and log. All of it lives behind one mutex in
//! [`super::Simulator`].

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{Map, Value, json};

use super::{
    Faults, RateLimit, RequestRecord, SimError,
    auth::{AUTHENTICATION_REQUIRED, AUTHORISATION, Bucket, TokenCap},
    required_builds::{Input as RequiredBuildInput, RequiredBuild},
    seed::{
        GlobalPermission, MergeCheckSeed, RepositorySeed, RepositoryState, Seed, SeedError, Severity, parse_version,
        valid_slug,
    },
};

/// Largest number of requests kept in the log.
pub const LOG_CAPACITY: usize = 10_000;

pub(crate) type UserId = usize;

/// The default branch of a repository created without one.
pub(crate) const DEFAULT_BRANCH: &str = "refs/heads/main";

/// A branch name as its full ref (`main` is `refs/heads/main`).
fn full_ref(branch: &str) -> String {
    if branch.starts_with("refs/") { branch.to_owned() } else { format!("refs/heads/{branch}") }
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: i64,
    pub name: String,
    pub slug: String,
    pub display_name: String,
    pub email: String,
    pub password: Option<String>,
    pub global: Option<GlobalPermission>,
    pub failed_logins: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub user: UserId,
    pub name: String,
    pub cap: Option<TokenCap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProjectKind {
    Normal,
    Personal(UserId),
}

#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub id: i64,
    /// Upper-case (personal: `~NAME`).
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub public: bool,
    pub kind: ProjectKind,
    /// user → 1 read, 2 write, 3 admin.
    pub permissions: HashMap<UserId, u8>,
    /// By slug, so listings come out in slug order.
    pub repos: BTreeMap<String, Repo>,
}

#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub state: RepositoryState,
    pub archived: bool,
    pub forkable: bool,
    pub hierarchy_id: String,
    pub permissions: HashMap<UserId, u8>,
    pub webhooks: BTreeMap<i64, Webhook>,
    pub merge_checks: BTreeMap<String, MergeCheck>,
    pub required_builds: BTreeMap<i64, RequiredBuild>,
    /// The configured default branch, as a full ref (whether or not it has been pushed).
    pub default_branch: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    pub configuration: Map<String, Value>,
    pub credentials: Option<Credentials>,
    pub ssl_verification_required: bool,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub username: String,
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MergeCheck {
    pub report_key: String,
    pub must_pass: bool,
    pub min_severity: Option<Severity>,
}

impl MergeCheck {
    pub fn to_json(&self) -> Value {
        json!({
            "reportKey": self.report_key,
            "mustPass": self.must_pass,
            "minSeverity": self.min_severity.map(Severity::as_str),
        })
    }

    /// Reads the wire object. `path_key` (when given) must match a present `reportKey`.
    /// Errors are `(field, message)`.
    pub fn from_json(value: &Value, path_key: Option<&str>) -> Result<MergeCheck, (&'static str, String)> {
        let Some(object) = value.as_object() else {
            return Err(("", "The request body must be a JSON object.".into()));
        };
        let report_key = match (object.get("reportKey"), path_key) {
            (Some(Value::String(key)), Some(path)) if key != path => {
                return Err((
                    "reportKey",
                    format!("The report key {key:?} in the body does not match the report key {path:?} in the URL."),
                ));
            }
            (Some(Value::String(key)), _) if !key.trim().is_empty() => key.clone(),
            (None | Some(Value::Null), Some(path)) => path.to_owned(),
            _ => return Err(("reportKey", "The report key must be a non-empty string.".into())),
        };
        let must_pass = match object.get("mustPass") {
            Some(Value::Bool(b)) => *b,
            _ => return Err(("mustPass", "mustPass must be true or false.".into())),
        };
        let min_severity = match object.get("minSeverity") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match Severity::parse(s) {
                Some(sev) => Some(sev),
                None => return Err(("minSeverity", format!("{s:?} is not one of LOW, MEDIUM, HIGH or null."))),
            },
            Some(_) => return Err(("minSeverity", "minSeverity must be one of LOW, MEDIUM, HIGH or null.".into())),
        };
        Ok(MergeCheck { report_key, must_pass, min_severity })
    }
}

impl From<&MergeCheckSeed> for MergeCheck {
    fn from(seed: &MergeCheckSeed) -> Self {
        MergeCheck { report_key: seed.report_key.clone(), must_pass: seed.must_pass, min_severity: seed.min_severity }
    }
}

/// Server identity and switches.
#[derive(Debug, Clone)]
pub(crate) struct ServerInfo {
    pub version: String,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub display_name: String,
}

impl ServerInfo {
    pub fn build_number(&self) -> u64 {
        u64::from(self.major) * 1_000_000 + u64::from(self.minor) * 1_000 + u64::from(self.patch)
    }

    pub fn has_code_insights(&self) -> bool {
        (self.major, self.minor) >= (5, 15)
    }

    /// The required-builds API arrived with 7.14 (§8.3).
    pub fn has_required_builds(&self) -> bool {
        (self.major, self.minor) >= (7, 14)
    }

    /// Repositories report `archived` from 8.0, when archiving arrived (§2.4).
    pub fn reports_archived(&self) -> bool {
        self.major >= 8
    }

    /// `hierarchyId` is absent on a 2019 (6.x) server and present on 8.x recordings; 7.0 is a
    /// guess at where it starts.
    pub fn reports_hierarchy_id(&self) -> bool {
        self.major >= 7
    }

    /// Webhooks' `scopeType` and `sslVerificationRequired` are absent on 2018/2019 servers and
    /// present on 10.x; 8.0 is a guess, taken from the first specs with project-scoped webhooks
    /// (which `scopeType` tells apart).
    pub fn reports_webhook_scope(&self) -> bool {
        self.major >= 8
    }

    /// The exceptionName of the 401 for a caller who is not authenticated (a missing, unknown or
    /// revoked credential): 10.x names the missing authentication, older servers answer as for a
    /// missing permission (§11).
    pub fn unauthenticated_exception(&self) -> &'static str {
        if self.major >= 10 { AUTHENTICATION_REQUIRED } else { AUTHORISATION }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Features {
    pub required_reports: bool,
    pub basic_auth_disabled: bool,
    pub captcha_threshold: u32,
    pub ssh: bool,
    /// The largest page a list answers.
    pub page_limit: usize,
}

/// Request counters and the bounded log.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub total: u64,
    pub by_endpoint: BTreeMap<String, u64>,
    pub by_endpoint_status: BTreeMap<(String, u16), u64>,
    pub log: VecDeque<RequestRecord>,
}

impl Metrics {
    pub fn record(&mut self, endpoint: String, record: RequestRecord) {
        self.total += 1;
        *self.by_endpoint_status.entry((endpoint.clone(), record.status)).or_insert(0) += 1;
        *self.by_endpoint.entry(endpoint).or_insert(0) += 1;
        if self.log.len() >= LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(record);
    }

    pub fn clear(&mut self) {
        *self = Metrics::default();
    }
}

/// Everything the simulator knows.
pub(crate) struct State {
    pub server: ServerInfo,
    pub features: Features,
    pub rate_limit: Option<RateLimit>,
    pub buckets: HashMap<UserId, Bucket>,
    pub faults: Faults,
    pub rng: fastrand::Rng,
    pub users: Vec<User>,
    pub user_index: HashMap<String, UserId>,
    pub tokens: HashMap<String, Token>,
    pub projects: BTreeMap<String, Project>,
    pub next_project_id: i64,
    pub next_repo_id: i64,
    pub next_webhook_id: i64,
    pub next_required_build_id: i64,
    pub next_token_number: u64,
    /// Flipped on every rendered repository: the order of `links.clone` alternates.
    pub clone_flip: bool,
    /// `http://127.0.0.1:PORT` once served; otherwise links use the request's Host.
    pub base_url: Option<Arc<str>>,
    /// `X-AREQUESTID` parts.
    pub node_id: String,
    pub request_counter: u64,
    pub metrics: Metrics,
    pub started: Instant,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

fn hex_id(rng: &mut fastrand::Rng) -> String {
    (0..20).map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)])).collect()
}

impl State {
    pub fn from_seed(seed: &Seed) -> Result<State, SeedError> {
        seed.validate()?;
        let (major, minor, patch) = parse_version(&seed.server.version)
            .ok_or_else(|| SeedError::InvalidVersion(seed.server.version.clone()))?;
        let mut rng = fastrand::Rng::new();
        let node_id: String =
            (0..7).map(|_| char::from(b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"[rng.usize(..34)])).collect();
        let rl = &seed.features.rate_limit;
        let mut state = State {
            server: ServerInfo {
                version: seed.server.version.trim().to_owned(),
                major,
                minor,
                patch,
                display_name: seed.server.display_name.clone(),
            },
            features: Features {
                required_reports: seed.features.required_reports,
                basic_auth_disabled: seed.features.basic_auth_disabled,
                captcha_threshold: seed.features.captcha_threshold,
                ssh: seed.features.ssh,
                page_limit: usize::try_from(seed.features.page_limit).unwrap_or(usize::MAX),
            },
            rate_limit: rl.enabled.then_some(RateLimit { capacity: rl.capacity, fill_rate: rl.fill_rate }),
            buckets: HashMap::new(),
            faults: Faults::default(),
            rng,
            users: Vec::new(),
            user_index: HashMap::new(),
            tokens: HashMap::new(),
            projects: BTreeMap::new(),
            next_project_id: 1,
            next_repo_id: 1,
            next_webhook_id: 1,
            next_required_build_id: 1,
            next_token_number: 1,
            clone_flip: false,
            base_url: None,
            node_id,
            request_counter: 0,
            metrics: Metrics::default(),
            started: Instant::now(),
        };
        for (index, user) in seed.users.iter().enumerate() {
            let id = index as i64 + 101;
            state.user_index.insert(user.name.to_lowercase(), index);
            state.users.push(User {
                id,
                name: user.name.clone(),
                slug: user.name.to_lowercase(),
                display_name: user.display_name.clone().unwrap_or_else(|| user.name.clone()),
                email: user
                    .email_address
                    .clone()
                    .unwrap_or_else(|| format!("{}@example.com", user.name.to_lowercase())),
                password: user.password.clone(),
                global: user.global_permission,
                failed_logins: 0,
            });
            for token in &user.tokens {
                let cap = token.permissions.as_deref().map(TokenCap::from_permissions);
                state.tokens.insert(token.token.clone(), Token { user: index, name: token.name.clone(), cap });
            }
        }
        for project in &seed.projects {
            let key = project.key.to_uppercase();
            let mut permissions = HashMap::new();
            for (user, permission) in &project.permissions {
                let uid = state.user_id(user).ok_or_else(|| SeedError::UnknownUser {
                    field: format!("projects[{key}].permissions"),
                    user: user.clone(),
                })?;
                permissions.insert(uid, permission.level());
            }
            let id = state.next_project_id;
            state.next_project_id += 1;
            state.projects.insert(
                key.clone(),
                Project {
                    id,
                    key: key.clone(),
                    name: project.name.clone().unwrap_or_else(|| key.clone()),
                    description: project.description.clone(),
                    public: project.public,
                    kind: ProjectKind::Normal,
                    permissions,
                    repos: BTreeMap::new(),
                },
            );
            for repo in &project.repositories {
                state.add_seed_repo(&key, repo)?;
            }
        }
        // Every user has a personal project, with or without repositories.
        for (index, user) in seed.users.iter().enumerate() {
            let key = format!("~{}", user.name.to_uppercase());
            let id = state.next_project_id;
            state.next_project_id += 1;
            let display = state.users[index].display_name.clone();
            state.projects.insert(
                key.clone(),
                Project {
                    id,
                    key: key.clone(),
                    name: display,
                    description: None,
                    public: false,
                    kind: ProjectKind::Personal(index),
                    permissions: HashMap::new(),
                    repos: BTreeMap::new(),
                },
            );
            for repo in &user.repositories {
                state.add_seed_repo(&key, repo)?;
            }
        }
        Ok(state)
    }

    fn add_seed_repo(&mut self, key: &str, seed: &RepositorySeed) -> Result<(), SeedError> {
        let mut permissions = HashMap::new();
        for (user, permission) in &seed.permissions {
            let uid = self.user_id(user).ok_or_else(|| SeedError::UnknownUser {
                field: format!("{key}/{}.permissions", seed.slug),
                user: user.clone(),
            })?;
            permissions.insert(uid, permission.level());
        }
        let now = now_ms();
        let mut webhooks = BTreeMap::new();
        for hook in &seed.webhooks {
            let id = self.next_webhook_id;
            self.next_webhook_id += 1;
            let mut configuration = Map::new();
            if let Some(secret) = &hook.secret {
                configuration.insert("secret".into(), Value::String(secret.clone()));
            }
            webhooks.insert(
                id,
                Webhook {
                    id,
                    name: hook.name.clone(),
                    url: hook.url.clone(),
                    events: dedup(&hook.events),
                    active: hook.active,
                    configuration,
                    credentials: None,
                    ssl_verification_required: hook.ssl_verification_required,
                    created: now,
                    updated: now,
                },
            );
        }
        let merge_checks = seed.merge_checks.iter().map(|c| (c.report_key.clone(), MergeCheck::from(c))).collect();
        let repo = self.new_repo(&seed.slug, seed.name.clone(), seed.state, seed.archived);
        if let Some(project) = self.projects.get_mut(key) {
            project.repos.insert(
                seed.slug.clone(),
                Repo {
                    description: seed.description.clone(),
                    forkable: seed.forkable,
                    permissions,
                    webhooks,
                    merge_checks,
                    default_branch: seed.default_branch.as_deref().map_or(repo.default_branch.clone(), full_ref),
                    ..repo
                },
            );
        }
        Ok(())
    }

    fn new_repo(&mut self, slug: &str, name: Option<String>, state: RepositoryState, archived: bool) -> Repo {
        let id = self.next_repo_id;
        self.next_repo_id += 1;
        Repo {
            id,
            slug: slug.to_owned(),
            name: name.unwrap_or_else(|| slug.to_owned()),
            description: None,
            state,
            archived,
            forkable: true,
            hierarchy_id: hex_id(&mut self.rng),
            permissions: HashMap::new(),
            webhooks: BTreeMap::new(),
            merge_checks: BTreeMap::new(),
            required_builds: BTreeMap::new(),
            default_branch: DEFAULT_BRANCH.to_owned(),
        }
    }

    pub fn user_id(&self, name: &str) -> Option<UserId> {
        self.user_index.get(&name.to_lowercase()).copied()
    }

    /// Case-insensitive project lookup (`pay`, `PAY`, `~jdoe`).
    pub fn project_key(key: &str) -> String {
        key.to_uppercase()
    }

    pub fn project(&self, key: &str) -> Option<&Project> {
        self.projects.get(&Self::project_key(key))
    }

    pub fn repo(&self, key: &str, slug: &str) -> Option<(&Project, &Repo)> {
        let project = self.project(key)?;
        let repo = project.repos.get(&slug.to_lowercase())?;
        Some((project, repo))
    }

    pub fn repo_mut(&mut self, key: &str, slug: &str) -> Option<&mut Repo> {
        self.projects.get_mut(&Self::project_key(key))?.repos.get_mut(&slug.to_lowercase())
    }

    pub(crate) fn repo_or_err(&mut self, key: &str, slug: &str) -> Result<&mut Repo, SimError> {
        if self.project(key).is_none() {
            return Err(SimError::NoSuchProject(key.to_owned()));
        }
        self.repo_mut(key, slug).ok_or_else(|| SimError::NoSuchRepository(format!("{key}/{slug}")))
    }

    pub fn next_request_id(&mut self) -> String {
        self.request_counter += 1;
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let minute_of_day = (secs % 86_400) / 60;
        format!("@{}x{}x{}x0", self.node_id, minute_of_day, self.request_counter)
    }

    /// A fresh `X-ASESSIONID` (short, lower-case, as recorded: `1ajg59f`).
    pub fn next_session_id(&mut self) -> String {
        (0..7).map(|_| char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[self.rng.usize(..36)])).collect()
    }

    // ---- the control operations behind `Simulator`'s methods ----

    pub fn create_repository(&mut self, key: &str, slug: &str) -> Result<i64, SimError> {
        let slug = slug.to_lowercase();
        if !valid_slug(&slug) {
            return Err(SimError::InvalidSlug(slug));
        }
        let upper = Self::project_key(key);
        match self.projects.get(&upper) {
            None => return Err(SimError::NoSuchProject(key.to_owned())),
            Some(p) if p.repos.contains_key(&slug) => {
                return Err(SimError::RepositoryExists(format!("{}/{slug}", p.key)));
            }
            Some(_) => {}
        }
        let repo = self.new_repo(&slug, None, RepositoryState::Available, false);
        let id = repo.id;
        if let Some(project) = self.projects.get_mut(&upper) {
            project.repos.insert(slug, repo);
        }
        Ok(id)
    }

    pub fn delete_repository(&mut self, key: &str, slug: &str) -> Result<(), SimError> {
        let project =
            self.projects.get_mut(&Self::project_key(key)).ok_or_else(|| SimError::NoSuchProject(key.to_owned()))?;
        project
            .repos
            .remove(&slug.to_lowercase())
            .map(|_| ())
            .ok_or_else(|| SimError::NoSuchRepository(format!("{key}/{slug}")))
    }

    /// Sets the configured default branch (a name or a full ref).
    pub fn set_default_branch(&mut self, key: &str, slug: &str, branch: &str) -> Result<(), SimError> {
        self.repo_or_err(key, slug)?.default_branch = full_ref(branch);
        Ok(())
    }

    pub fn set_repository_archived(&mut self, key: &str, slug: &str, archived: bool) -> Result<(), SimError> {
        self.repo_or_err(key, slug)?.archived = archived;
        Ok(())
    }

    pub fn webhooks(&mut self, key: &str, slug: &str) -> Result<Vec<Value>, SimError> {
        let newer = self.server.reports_webhook_scope();
        Ok(self.repo_or_err(key, slug)?.webhooks.values().map(|w| w.to_json(true, newer)).collect())
    }

    pub fn delete_webhook(&mut self, key: &str, slug: &str, id: i64) -> Result<(), SimError> {
        self.repo_or_err(key, slug)?.webhooks.remove(&id).map(|_| ()).ok_or(SimError::NoSuchWebhook(id))
    }

    pub fn merge_check(&mut self, key: &str, slug: &str, report_key: &str) -> Result<Option<Value>, SimError> {
        Ok(self.repo_or_err(key, slug)?.merge_checks.get(report_key).map(MergeCheck::to_json))
    }

    pub fn set_merge_check(&mut self, key: &str, slug: &str, check: &Value) -> Result<(), SimError> {
        let check = MergeCheck::from_json(check, None)
            .map_err(|(field, message)| SimError::InvalidMergeCheck(format!("{field}: {message}")))?;
        self.repo_or_err(key, slug)?.merge_checks.insert(check.report_key.clone(), check);
        Ok(())
    }

    pub fn delete_merge_check(&mut self, key: &str, slug: &str, report_key: &str) -> Result<(), SimError> {
        self.repo_or_err(key, slug)?.merge_checks.remove(report_key);
        Ok(())
    }

    pub fn required_builds(&mut self, key: &str, slug: &str) -> Result<Vec<Value>, SimError> {
        Ok(self.repo_or_err(key, slug)?.required_builds.values().map(RequiredBuild::to_json).collect())
    }

    /// Adds a condition as a user would in the UI (validated like `POST`); returns its id.
    pub fn add_required_build(&mut self, key: &str, slug: &str, condition: &Value) -> Result<i64, SimError> {
        self.repo_or_err(key, slug)?;
        let input = control_input(condition)?;
        self.insert_required_build(key, slug, input)
            .map(|c| c.id)
            .ok_or_else(|| SimError::NoSuchRepository(format!("{key}/{slug}")))
    }

    /// Edits a condition as a user would in the UI (validated like `PUT`; the id stays).
    pub fn edit_required_build(&mut self, key: &str, slug: &str, id: i64, condition: &Value) -> Result<(), SimError> {
        let input = control_input(condition)?;
        let stored =
            self.repo_or_err(key, slug)?.required_builds.get_mut(&id).ok_or(SimError::NoSuchRequiredBuild(id))?;
        stored.set(input);
        Ok(())
    }

    pub fn delete_required_build(&mut self, key: &str, slug: &str, id: i64) -> Result<(), SimError> {
        self.repo_or_err(key, slug)?.required_builds.remove(&id).map(|_| ()).ok_or(SimError::NoSuchRequiredBuild(id))
    }
}

/// A condition given to a control method, validated like a set-request.
fn control_input(condition: &Value) -> Result<RequiredBuildInput, SimError> {
    RequiredBuildInput::from_json(condition).map_err(|errors| {
        let text: Vec<String> = errors.into_iter().map(|(field, message)| format!("{field}: {message}")).collect();
        SimError::InvalidRequiredBuild(text.join("; "))
    })
}

/// Keeps the first occurrence of every value, in order.
pub(crate) fn dedup(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}
