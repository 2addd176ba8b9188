//! The SonarQube simulator's seed: edition, version, users with their tokens, projects, DevOps
//! Platform (ALM) settings and project bindings at start-up.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::auth::parse_version;

/// Why a seed cannot be loaded. Every variant names the field at fault (token values are never
/// printed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SonarSeedError {
    /// The text is not YAML of the seed's shape (unknown field, wrong type, bad enum value...).
    #[error("the SonarQube seed is not valid: {0}")]
    Yaml(String),
    #[error("version {0:?} is not a SonarQube version (digits separated by dots, e.g. 2026.3.1.123439 or 9.9.8)")]
    InvalidVersion(String),
    #[error("users[{index}].login must not be empty")]
    EmptyLogin { index: usize },
    #[error("users: the login {0:?} is used twice")]
    DuplicateUser(String),
    #[error("users[{user}].tokens[{index}].token must not be empty")]
    EmptyToken { user: String, index: usize },
    #[error("users[{user}].tokens[{index}]: the token value is already used by another token")]
    DuplicateToken { user: String, index: usize },
    #[error("projects[{index}].key must not be empty")]
    EmptyProjectKey { index: usize },
    #[error("projects: the key {0:?} is used twice (keys are compared case-insensitively)")]
    DuplicateProject(String),
    #[error("{field}: the user {user:?} is not defined in users")]
    UnknownUser { field: String, user: String },
    #[error("almSettings[{index}].{field} must not be empty")]
    EmptyAlmField { index: usize, field: &'static str },
    #[error("almSettings: the key {0:?} is used twice (keys are unique across every DevOps Platform type)")]
    DuplicateAlmSetting(String),
    #[error("bindings[{index}].project: the project {project:?} is not defined in projects")]
    UnknownProject { index: usize, project: String },
    #[error("bindings[{index}].almSetting: the setting {key:?} is not defined in almSettings")]
    UnknownAlmSetting { index: usize, key: String },
    #[error("bindings: the project {0:?} is bound twice (a project has at most one binding)")]
    DuplicateBinding(String),
}

/// The SonarQube edition, which decides the binding endpoints and the one-setting cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    Community,
    Developer,
    #[default]
    Enterprise,
    Datacenter,
}

impl Edition {
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Community => "community",
            Edition::Developer => "developer",
            Edition::Enterprise => "enterprise",
            Edition::Datacenter => "datacenter",
        }
    }

    /// The `multiple-alm` feature: more than one setting of a kind.
    pub fn multiple_alm(self) -> bool {
        matches!(self, Edition::Enterprise | Edition::Datacenter)
    }

    /// `set_*_binding`, `delete_binding` and `validate_binding` exist.
    pub fn commercial(self) -> bool {
        self != Edition::Community
    }
}

/// The kind of a user token (§1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TokenKind {
    #[default]
    User,
    GlobalAnalysis,
    ProjectAnalysis,
}

/// A DevOps Platform type as `api/alm_settings/list` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Alm {
    Bitbucket,
    Bitbucketcloud,
    Github,
    Gitlab,
    Azure,
}

impl Alm {
    pub fn as_str(self) -> &'static str {
        match self {
            Alm::Bitbucket => "bitbucket",
            Alm::Bitbucketcloud => "bitbucketcloud",
            Alm::Github => "github",
            Alm::Gitlab => "gitlab",
            Alm::Azure => "azure",
        }
    }

    /// The v2 (`dop-settings`) wording.
    pub fn v2_type(self) -> &'static str {
        match self {
            Alm::Bitbucket => "bitbucket_server",
            Alm::Bitbucketcloud => "bitbucket_cloud",
            Alm::Github => "github",
            Alm::Gitlab => "gitlab",
            Alm::Azure => "azure",
        }
    }
}

/// The whole seed. `SonarSeed::default()` is an empty Enterprise server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SonarSeed {
    pub edition: Edition,
    pub version: String,
    /// `sonar.forceAuthentication`: anonymous callers are refused everywhere but the status pages.
    pub force_authentication: bool,
    pub users: Vec<SonarUserSeed>,
    pub projects: Vec<SonarProjectSeed>,
    pub alm_settings: Vec<AlmSettingSeed>,
    pub bindings: Vec<BindingSeed>,
}

/// The version a seed without one runs (the Enterprise dump of the wire contract).
pub const DEFAULT_VERSION: &str = "2026.3.1.123439";

impl Default for SonarSeed {
    fn default() -> Self {
        SonarSeed {
            edition: Edition::default(),
            version: DEFAULT_VERSION.to_owned(),
            force_authentication: false,
            users: Vec::new(),
            projects: Vec::new(),
            alm_settings: Vec::new(),
            bindings: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SonarUserSeed {
    pub login: String,
    #[serde(default)]
    pub name: String,
    /// Administer System.
    #[serde(default)]
    pub admin: bool,
    /// The global Create Projects permission.
    #[serde(default)]
    pub create_projects: bool,
    #[serde(default)]
    pub tokens: Vec<SonarTokenSeed>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SonarTokenSeed {
    pub token: String,
    #[serde(default)]
    pub kind: TokenKind,
    #[serde(default)]
    pub expired: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SonarProjectSeed {
    pub key: String,
    /// Defaults to the key.
    #[serde(default)]
    pub name: String,
    /// Logins with the project's Administer permission.
    #[serde(default)]
    pub admins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlmSettingSeed {
    pub key: String,
    pub alm: Alm,
    /// For `bitbucketcloud`, the workspace.
    pub url: String,
    #[serde(default)]
    pub personal_access_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindingSeed {
    pub project: String,
    pub alm_setting: String,
    /// For Bitbucket Server: the Bitbucket project key.
    pub repository: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub monorepo: bool,
}

impl SonarSeed {
    /// Parses and validates a YAML seed.
    pub fn from_yaml(text: &str) -> Result<SonarSeed, SonarSeedError> {
        let seed: SonarSeed = serde_saphyr::from_str(text).map_err(|e| SonarSeedError::Yaml(e.to_string()))?;
        seed.validate()?;
        Ok(seed)
    }

    /// Checks what the types alone do not: empty names, duplicates, references.
    pub fn validate(&self) -> Result<(), SonarSeedError> {
        if parse_version(&self.version).is_none() {
            return Err(SonarSeedError::InvalidVersion(self.version.clone()));
        }
        let mut logins = HashSet::new();
        let mut tokens = HashSet::new();
        for (index, user) in self.users.iter().enumerate() {
            if user.login.trim().is_empty() {
                return Err(SonarSeedError::EmptyLogin { index });
            }
            if !logins.insert(user.login.as_str()) {
                return Err(SonarSeedError::DuplicateUser(user.login.clone()));
            }
            for (index, token) in user.tokens.iter().enumerate() {
                if token.token.is_empty() {
                    return Err(SonarSeedError::EmptyToken { user: user.login.clone(), index });
                }
                if !tokens.insert(token.token.as_str()) {
                    return Err(SonarSeedError::DuplicateToken { user: user.login.clone(), index });
                }
            }
        }
        let mut keys = HashSet::new();
        for (index, project) in self.projects.iter().enumerate() {
            if project.key.trim().is_empty() {
                return Err(SonarSeedError::EmptyProjectKey { index });
            }
            if !keys.insert(project.key.to_lowercase()) {
                return Err(SonarSeedError::DuplicateProject(project.key.clone()));
            }
            if let Some(user) = project.admins.iter().find(|login| !logins.contains(login.as_str())) {
                return Err(SonarSeedError::UnknownUser {
                    field: format!("projects[{index}].admins"),
                    user: user.clone(),
                });
            }
        }
        let mut settings = HashSet::new();
        for (index, setting) in self.alm_settings.iter().enumerate() {
            if setting.key.trim().is_empty() {
                return Err(SonarSeedError::EmptyAlmField { index, field: "key" });
            }
            if setting.url.trim().is_empty() {
                return Err(SonarSeedError::EmptyAlmField { index, field: "url" });
            }
            if !settings.insert(setting.key.as_str()) {
                return Err(SonarSeedError::DuplicateAlmSetting(setting.key.clone()));
            }
        }
        let mut bound = HashSet::new();
        for (index, binding) in self.bindings.iter().enumerate() {
            if !self.projects.iter().any(|p| p.key == binding.project) {
                return Err(SonarSeedError::UnknownProject { index, project: binding.project.clone() });
            }
            if !settings.contains(binding.alm_setting.as_str()) {
                return Err(SonarSeedError::UnknownAlmSetting { index, key: binding.alm_setting.clone() });
            }
            if !bound.insert(binding.project.as_str()) {
                return Err(SonarSeedError::DuplicateBinding(binding.project.clone()));
            }
        }
        Ok(())
    }
}
