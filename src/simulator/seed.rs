//! The simulator's seed: the YAML document that describes the server, its users, projects,
//! repositories, webhooks and required-report merge checks at start-up.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

/// Why a seed cannot be loaded. Every variant names the field or the duplicate key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    /// The text is not YAML of the seed's shape (unknown field, wrong type, bad enum value...).
    #[error("the seed is not valid: {0}")]
    Yaml(String),
    /// `server.version` is not `MAJOR.MINOR[.PATCH]`.
    #[error("server.version {0:?} is not a version of the form MAJOR.MINOR[.PATCH]")]
    InvalidVersion(String),
    /// A user entry has an empty or malformed `name`.
    #[error("users[{index}].name {name:?} is not a valid user name (non-empty; letters, digits, '.', '_', '-', '@')")]
    InvalidUserName { index: usize, name: String },
    /// Two users share a name (compared case-insensitively).
    #[error("users: the user name {0:?} is used twice")]
    DuplicateUser(String),
    /// A token has an empty value or name.
    #[error("users[{user}].tokens: a token needs a non-empty name and token value")]
    InvalidToken { user: String },
    /// Two tokens share a value (the value itself is never printed).
    #[error("users[{user}].tokens[{name}]: the token value is already used by another token")]
    DuplicateToken { user: String, name: String },
    /// A project key breaks the key rule.
    #[error("projects[{index}].key {key:?} is not a valid project key (starts with a letter; letters, digits, '_')")]
    InvalidProjectKey { index: usize, key: String },
    /// Two projects share a key (compared case-insensitively).
    #[error("projects: the project key {0:?} is used twice")]
    DuplicateProject(String),
    /// A default branch that is not one branch name.
    #[error("{field} {branch:?} is not a branch name (no spaces or control characters, not empty)")]
    InvalidDefaultBranch { field: String, branch: String },
    /// A repository slug breaks the slug rule.
    #[error(
        "{project}: repositories[{index}].slug {slug:?} is not a valid slug (lower-case letters, digits, '.', '_', '-')"
    )]
    InvalidSlug { project: String, index: usize, slug: String },
    /// Two repositories of one project share a slug.
    #[error("{project}: the repository slug {slug:?} is used twice")]
    DuplicateRepository { project: String, slug: String },
    /// A permission map names a user that is not in `users`.
    #[error("{field}: the user {user:?} is not defined in users")]
    UnknownUser { field: String, user: String },
    /// A webhook entry is invalid.
    #[error("{field}: {message}")]
    InvalidWebhook { field: String, message: String },
    /// A merge check entry is invalid or repeated.
    #[error("{field}: {message}")]
    InvalidMergeCheck { field: String, message: String },
    /// A project permission in a repository's map or the reverse.
    #[error("{field}: {permission} is not {expected} permission")]
    WrongPermissionKind { field: String, permission: &'static str, expected: &'static str },
    /// A feature setting is out of range.
    #[error("features.{field}: {message}")]
    InvalidFeature { field: String, message: String },
}

/// The whole seed. `Seed::default()` is an empty server (no users, no projects).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub server: ServerSeed,
    #[serde(default)]
    pub features: FeaturesSeed,
    #[serde(default)]
    pub users: Vec<UserSeed>,
    #[serde(default)]
    pub projects: Vec<ProjectSeed>,
}

/// What the server says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServerSeed {
    /// `MAJOR.MINOR[.PATCH]`, default `9.4.22`.
    pub version: String,
    /// Default `Bitbucket`.
    pub display_name: String,
}

impl Default for ServerSeed {
    fn default() -> Self {
        Self { version: "9.4.22".into(), display_name: "Bitbucket".into() }
    }
}

/// Behaviour switches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FeaturesSeed {
    /// Whether the server speaks the modelled required-report contract (§8.2). Default true.
    pub required_reports: bool,
    /// Whether Basic authentication is refused with 403 (Bitbucket 10 default). Default false.
    pub basic_auth_disabled: bool,
    /// Consecutive failed Basic logins that lock a user behind a CAPTCHA. Default 5; 0 = never.
    pub captcha_threshold: u32,
    /// Server-side rate limit (off by default).
    pub rate_limit: RateLimitSeed,
    /// Whether SSH access is on: repositories then carry an `ssh` clone link. Default true.
    pub ssh: bool,
    /// The largest page a list answers: a bigger `limit` is capped to it and the page says so
    /// (a real server answered `limit: 25` to a request for 200). Default 1000.
    pub page_limit: u32,
}

impl Default for FeaturesSeed {
    fn default() -> Self {
        Self {
            required_reports: true,
            basic_auth_disabled: false,
            captcha_threshold: 5,
            rate_limit: RateLimitSeed::default(),
            ssh: true,
            page_limit: 1000,
        }
    }
}

/// The per-user token bucket of §1.7.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RateLimitSeed {
    pub enabled: bool,
    /// Bucket size, default 60.
    pub capacity: u32,
    /// Tokens added per second, default 5.
    pub fill_rate: u32,
}

impl Default for RateLimitSeed {
    fn default() -> Self {
        Self { enabled: false, capacity: 60, fill_rate: 5 }
    }
}

/// A user; its name is also its slug (lower-cased).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSeed {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Default `<name>@example.com`.
    #[serde(default)]
    pub email_address: Option<String>,
    /// Password for Basic authentication; without it only tokens work.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub global_permission: Option<GlobalPermission>,
    #[serde(default)]
    pub tokens: Vec<TokenSeed>,
    /// Repositories of the personal project `~NAME`.
    #[serde(default)]
    pub repositories: Vec<RepositorySeed>,
}

/// Global permissions that matter here: both see and administer everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GlobalPermission {
    Admin,
    SysAdmin,
}

impl GlobalPermission {
    pub fn as_str(self) -> &'static str {
        match self {
            GlobalPermission::Admin => "ADMIN",
            GlobalPermission::SysAdmin => "SYS_ADMIN",
        }
    }
}

/// A personal access token (usable as `Bearer` or as the Basic password).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenSeed {
    pub name: String,
    pub token: String,
    /// Caps what the token may do; absent = everything its user may do.
    #[serde(default)]
    pub permissions: Option<Vec<Permission>>,
}

/// Project and repository permission levels (also token caps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    ProjectRead,
    ProjectWrite,
    ProjectAdmin,
    RepoRead,
    RepoWrite,
    RepoAdmin,
}

impl Permission {
    /// 1 = read, 2 = write, 3 = admin.
    pub fn level(self) -> u8 {
        match self {
            Permission::ProjectRead | Permission::RepoRead => 1,
            Permission::ProjectWrite | Permission::RepoWrite => 2,
            Permission::ProjectAdmin | Permission::RepoAdmin => 3,
        }
    }

    pub fn is_project(self) -> bool {
        matches!(self, Permission::ProjectRead | Permission::ProjectWrite | Permission::ProjectAdmin)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ProjectRead => "PROJECT_READ",
            Permission::ProjectWrite => "PROJECT_WRITE",
            Permission::ProjectAdmin => "PROJECT_ADMIN",
            Permission::RepoRead => "REPO_READ",
            Permission::RepoWrite => "REPO_WRITE",
            Permission::RepoAdmin => "REPO_ADMIN",
        }
    }
}

/// A normal (non-personal) project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectSeed {
    /// Stored upper-case.
    pub key: String,
    /// Default: the key.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Anonymous users may read a public project and its repositories.
    #[serde(default)]
    pub public: bool,
    /// user name → PROJECT_READ | PROJECT_WRITE | PROJECT_ADMIN.
    #[serde(default)]
    pub permissions: BTreeMap<String, Permission>,
    #[serde(default)]
    pub repositories: Vec<RepositorySeed>,
}

/// A repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositorySeed {
    pub slug: String,
    /// Default: the slug.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub state: RepositoryState,
    /// Reported only by servers from 8.0 on.
    #[serde(default)]
    pub archived: bool,
    /// Whether the repository may be forked. Default true.
    #[serde(default = "yes")]
    pub forkable: bool,
    /// user name → REPO_READ | REPO_WRITE | REPO_ADMIN.
    #[serde(default)]
    pub permissions: BTreeMap<String, Permission>,
    #[serde(default)]
    pub webhooks: Vec<WebhookSeed>,
    #[serde(default)]
    pub merge_checks: Vec<MergeCheckSeed>,
    /// The default branch, by name or full ref. Default `main`.
    #[serde(default)]
    pub default_branch: Option<String>,
}

impl Default for RepositorySeed {
    fn default() -> Self {
        Self {
            slug: String::new(),
            name: None,
            description: None,
            state: RepositoryState::default(),
            archived: false,
            forkable: true,
            permissions: BTreeMap::new(),
            webhooks: Vec::new(),
            merge_checks: Vec::new(),
            default_branch: None,
        }
    }
}

/// `state` of a repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RepositoryState {
    #[default]
    Available,
    Initialising,
    InitialisationFailed,
    Offline,
}

impl RepositoryState {
    pub fn as_str(self) -> &'static str {
        match self {
            RepositoryState::Available => "AVAILABLE",
            RepositoryState::Initialising => "INITIALISING",
            RepositoryState::InitialisationFailed => "INITIALISATION_FAILED",
            RepositoryState::Offline => "OFFLINE",
        }
    }

    pub fn status_message(self) -> &'static str {
        match self {
            RepositoryState::Available => "Available",
            RepositoryState::Initialising => "Initialising",
            RepositoryState::InitialisationFailed => "Initialisation failed",
            RepositoryState::Offline => "Offline",
        }
    }
}

/// A repository webhook present at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSeed {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default = "yes")]
    pub ssl_verification_required: bool,
}

fn yes() -> bool {
    true
}

/// A required-report merge check present at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MergeCheckSeed {
    pub report_key: String,
    #[serde(default)]
    pub must_pass: bool,
    #[serde(default)]
    pub min_severity: Option<Severity>,
}

/// Annotation severity threshold of a required report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "LOW" => Some(Severity::Low),
            "MEDIUM" => Some(Severity::Medium),
            "HIGH" => Some(Severity::High),
            _ => None,
        }
    }
}

/// `MAJOR.MINOR[.PATCH]` → numbers.
pub(crate) fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || minor >= 1000 || patch >= 1000 || major >= 1_000_000 {
        return None;
    }
    Some((major, minor, patch))
}

pub(crate) fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

pub(crate) fn valid_project_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && key.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) fn valid_slug(slug: &str) -> bool {
    let mut chars = slug.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && slug.len() <= 128
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

impl Seed {
    /// Parses and validates a YAML seed.
    pub fn from_yaml(text: &str) -> Result<Seed, SeedError> {
        let seed: Seed = serde_saphyr::from_str(text).map_err(|e| SeedError::Yaml(e.to_string()))?;
        seed.validate()?;
        Ok(seed)
    }

    /// Checks everything that the types alone do not: names, keys, duplicates, references.
    pub fn validate(&self) -> Result<(), SeedError> {
        if parse_version(&self.server.version).is_none() {
            return Err(SeedError::InvalidVersion(self.server.version.clone()));
        }
        if self.features.page_limit == 0 {
            return Err(SeedError::InvalidFeature {
                field: "pageLimit".into(),
                message: "must be at least 1 (it is the largest page a list answers)".into(),
            });
        }
        if self.features.rate_limit.enabled && self.features.rate_limit.capacity == 0 {
            return Err(SeedError::InvalidFeature {
                field: "rateLimit.capacity".into(),
                message: "must be at least 1 when the rate limit is enabled".into(),
            });
        }
        let mut users = HashSet::new();
        let mut tokens = HashSet::new();
        for (index, user) in self.users.iter().enumerate() {
            if !valid_user_name(&user.name) {
                return Err(SeedError::InvalidUserName { index, name: user.name.clone() });
            }
            if !users.insert(user.name.to_lowercase()) {
                return Err(SeedError::DuplicateUser(user.name.clone()));
            }
            for token in &user.tokens {
                if token.token.is_empty() || token.name.is_empty() {
                    return Err(SeedError::InvalidToken { user: user.name.clone() });
                }
                if !tokens.insert(token.token.as_str()) {
                    return Err(SeedError::DuplicateToken { user: user.name.clone(), name: token.name.clone() });
                }
            }
        }
        for user in &self.users {
            let project = format!("users[{}] (~{})", user.name, user.name.to_uppercase());
            validate_repositories(&project, &user.repositories, &users)?;
        }
        let mut keys = HashSet::new();
        for (index, project) in self.projects.iter().enumerate() {
            if !valid_project_key(&project.key) {
                return Err(SeedError::InvalidProjectKey { index, key: project.key.clone() });
            }
            if !keys.insert(project.key.to_uppercase()) {
                return Err(SeedError::DuplicateProject(project.key.to_uppercase()));
            }
            let label = format!("projects[{}]", project.key);
            for (user, permission) in &project.permissions {
                if !users.contains(&user.to_lowercase()) {
                    return Err(SeedError::UnknownUser { field: format!("{label}.permissions"), user: user.clone() });
                }
                if !permission.is_project() {
                    return Err(SeedError::WrongPermissionKind {
                        field: format!("{label}.permissions.{user}"),
                        permission: permission.as_str(),
                        expected: "a project (PROJECT_READ, PROJECT_WRITE, PROJECT_ADMIN)",
                    });
                }
            }
            validate_repositories(&label, &project.repositories, &users)?;
        }
        Ok(())
    }
}

fn validate_repositories(label: &str, repos: &[RepositorySeed], users: &HashSet<String>) -> Result<(), SeedError> {
    let mut slugs = HashSet::new();
    for (index, repo) in repos.iter().enumerate() {
        if !valid_slug(&repo.slug) {
            return Err(SeedError::InvalidSlug { project: label.to_owned(), index, slug: repo.slug.clone() });
        }
        if !slugs.insert(repo.slug.as_str()) {
            return Err(SeedError::DuplicateRepository { project: label.to_owned(), slug: repo.slug.clone() });
        }
        let repo_label = format!("{label}.repositories[{}]", repo.slug);
        for (user, permission) in &repo.permissions {
            if !users.contains(&user.to_lowercase()) {
                return Err(SeedError::UnknownUser { field: format!("{repo_label}.permissions"), user: user.clone() });
            }
            if permission.is_project() {
                return Err(SeedError::WrongPermissionKind {
                    field: format!("{repo_label}.permissions.{user}"),
                    permission: permission.as_str(),
                    expected: "a repository (REPO_READ, REPO_WRITE, REPO_ADMIN)",
                });
            }
        }
        for (i, hook) in repo.webhooks.iter().enumerate() {
            let field = format!("{repo_label}.webhooks[{i}]");
            if let Some((what, message)) =
                crate::simulator::webhooks::validate_fields(&hook.name, &hook.url, &hook.events)
            {
                return Err(SeedError::InvalidWebhook { field: format!("{field}.{what}"), message });
            }
        }
        let mut report_keys = HashSet::new();
        for (i, check) in repo.merge_checks.iter().enumerate() {
            let field = format!("{repo_label}.mergeChecks[{i}].reportKey");
            if check.report_key.trim().is_empty() {
                return Err(SeedError::InvalidMergeCheck { field, message: "must not be empty".into() });
            }
            if !report_keys.insert(check.report_key.as_str()) {
                return Err(SeedError::InvalidMergeCheck {
                    field,
                    message: format!("the report key {:?} is used twice", check.report_key),
                });
            }
        }
        if let Some(branch) = &repo.default_branch
            && (branch.trim().is_empty() || branch.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Err(SeedError::InvalidDefaultBranch {
                field: format!("{repo_label}.defaultBranch"),
                branch: branch.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
server: {version: "8.19.1"}
features: {requiredReports: false, captchaThreshold: 3, rateLimit: {enabled: true, capacity: 10, fillRate: 2}, ssh: false, pageLimit: 25}
users:
  - name: svc-operator
    displayName: Operator Service
    password: s3cret
    globalPermission: ADMIN
    tokens:
      - {name: operator, token: "BBDC-abc", permissions: [PROJECT_ADMIN]}
    repositories: [ {slug: dotfiles} ]
  - name: jdoe
projects:
  - key: PAY
    name: Payments
    public: false
    permissions: {svc-operator: PROJECT_ADMIN, jdoe: PROJECT_READ}
    repositories:
      - slug: payments-api
        name: Payments API
        state: INITIALISING
        archived: true
        forkable: false
        permissions: {jdoe: REPO_ADMIN}
        webhooks: [{name: ci, url: "https://ci/h", events: ["repo:refs_changed"], active: true, secret: "x", sslVerificationRequired: true}]
        mergeChecks: [{reportKey: com.sonarsource.sonarqube, mustPass: true, minSeverity: LOW}]
"#;

    #[test]
    fn parses_the_documented_example() {
        let seed = Seed::from_yaml(GOOD).unwrap();
        assert_eq!(seed.server.version, "8.19.1");
        assert_eq!(seed.server.display_name, "Bitbucket");
        assert!(!seed.features.required_reports);
        assert_eq!(seed.features.captcha_threshold, 3);
        assert_eq!(seed.features.rate_limit, RateLimitSeed { enabled: true, capacity: 10, fill_rate: 2 });
        assert!(!seed.features.ssh);
        assert_eq!(seed.features.page_limit, 25);
        assert_eq!(seed.users.len(), 2);
        assert_eq!(seed.users[0].global_permission, Some(GlobalPermission::Admin));
        assert_eq!(seed.users[0].tokens[0].permissions, Some(vec![Permission::ProjectAdmin]));
        assert_eq!(seed.users[0].repositories[0].slug, "dotfiles");
        let repo = &seed.projects[0].repositories[0];
        assert_eq!(repo.state, RepositoryState::Initialising);
        assert!(repo.archived && !repo.forkable);
        assert_eq!(repo.permissions["jdoe"], Permission::RepoAdmin);
        assert_eq!(repo.webhooks[0].secret.as_deref(), Some("x"));
        assert_eq!(repo.merge_checks[0].min_severity, Some(Severity::Low));
    }

    #[test]
    fn empty_document_parts_take_defaults() {
        let seed = Seed::from_yaml("users: []\n").unwrap();
        assert_eq!(seed.server.version, "9.4.22");
        assert!(seed.features.required_reports);
        assert!(!seed.features.basic_auth_disabled);
        assert_eq!(seed.features.captcha_threshold, 5);
        assert_eq!(seed.features.rate_limit, RateLimitSeed { enabled: false, capacity: 60, fill_rate: 5 });
        assert!(seed.features.ssh);
        assert_eq!(seed.features.page_limit, 1000);
        assert_eq!(Seed::default().users.len(), 0);
        let repo = Seed::from_yaml("projects: [{key: A, repositories: [{slug: r}]}]\n").unwrap();
        assert!(repo.projects[0].repositories[0].forkable, "repositories are forkable unless the seed says not");
        assert!(RepositorySeed::default().forkable);
    }

    fn err(text: &str) -> String {
        Seed::from_yaml(text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        let message = err("users: [{name: a, pasword: x}]\n");
        assert!(message.contains("pasword"), "{message}");
        let message = err("projects: [{key: A, repositories: [{slug: r, hooks: []}]}]\n");
        assert!(message.contains("hooks"), "{message}");
    }

    #[test]
    fn bad_values_name_the_field() {
        assert!(err("server: {version: nine}\n").contains("server.version"));
        assert!(err("users: [{name: a, globalPermission: GOD}]\n").contains("GOD"));
        assert!(err("projects: [{key: 1AB}]\n").contains("1AB"));
        assert!(err("projects: [{key: A, repositories: [{slug: Upper}]}]\n").contains("Upper"));
        assert!(err("projects: [{key: A, permissions: {ghost: PROJECT_READ}}]\n").contains("ghost"));
        let message = err("users: [{name: a}]\nprojects: [{key: A, permissions: {a: REPO_READ}}]\n");
        assert!(message.contains("REPO_READ is not a project"), "{message}");
        let message = err(
            "users: [{name: a}]\nprojects: [{key: A, repositories: [{slug: r, permissions: {a: PROJECT_READ}}]}]\n",
        );
        assert!(message.contains("permissions.a: PROJECT_READ is not a repository"), "{message}");
        let message = err(
            "projects: [{key: A, repositories: [{slug: r, webhooks: [{name: w, url: 'ftp://x', events: ['repo:refs_changed']}]}]}]\n",
        );
        assert!(message.contains("url"), "{message}");
        let message = err(
            "projects: [{key: A, repositories: [{slug: r, webhooks: [{name: w, url: 'http://x', events: ['nope']}]}]}]\n",
        );
        assert!(message.contains("events"), "{message}");
        let message =
            err("projects: [{key: A, repositories: [{slug: r, mergeChecks: [{reportKey: k, minSeverity: low}]}]}]\n");
        assert!(message.contains("low"), "{message}");
    }

    #[test]
    fn duplicates_name_the_key() {
        assert_eq!(err("users: [{name: a}, {name: A}]\n"), SeedError::DuplicateUser("A".into()).to_string());
        assert!(err("projects: [{key: pay}, {key: PAY}]\n").contains("\"PAY\" is used twice"));
        assert!(err("projects: [{key: A, repositories: [{slug: r}, {slug: r}]}]\n").contains("\"r\" is used twice"));
        let message = err(
            "users: [{name: a, tokens: [{name: t1, token: same}]}, {name: b, tokens: [{name: t2, token: same}]}]\n",
        );
        assert!(message.contains("t2") && !message.contains("same"), "{message}");
        let message =
            err("projects: [{key: A, repositories: [{slug: r, mergeChecks: [{reportKey: k}, {reportKey: k}]}]}]\n");
        assert!(message.contains("used twice"), "{message}");
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("9.4.22"), Some((9, 4, 22)));
        assert_eq!(parse_version("10.2"), Some((10, 2, 0)));
        assert_eq!(parse_version("10"), None);
        assert_eq!(parse_version("1.2.3.4"), None);
        assert_eq!(parse_version("1.x.3"), None);
    }
}
