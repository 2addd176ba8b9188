//! The simulated SonarQube's model: users and tokens, projects, DevOps Platform settings,
//! bindings, per-user PATs, switches, and the request counters and log. All of it lives behind one
//! mutex in [`super::SonarQubeSimulator`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::{Value, json};

use super::{
    SonarSimError,
    auth::parse_version,
    seed::{Alm, Edition, SonarSeed, SonarSeedError, TokenKind},
};
use crate::simulator::{Faults, RequestRecord};

/// Largest number of requests kept in the log.
pub const LOG_CAPACITY: usize = 10_000;

/// The statuses `api/system/status` can report.
pub const STATUSES: [&str; 6] = ["STARTING", "UP", "DOWN", "RESTARTING", "DB_MIGRATION_NEEDED", "DB_MIGRATION_RUNNING"];

/// The date a seeded expired token expired on.
const SEEDED_EXPIRY: &str = "2026-01-01";

pub(crate) type UserId = usize;

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub login: String,
    pub name: String,
    pub admin: bool,
    pub create_projects: bool,
    /// Import PATs set with `set_pat`, by setting uuid.
    pub pats: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub user: UserId,
    pub kind: TokenKind,
    /// `YYYY-MM-DD` once expired.
    pub expired_on: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub uuid: String,
    /// The setting's uuid, so a rename keeps the binding.
    pub setting: String,
    pub repository: String,
    pub slug: String,
    pub monorepo: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub uuid: String,
    pub key: String,
    pub name: String,
    pub admins: BTreeSet<UserId>,
    pub binding: Option<Binding>,
}

#[derive(Debug, Clone)]
pub(crate) struct AlmSetting {
    pub uuid: String,
    pub key: String,
    pub alm: Alm,
    pub url: String,
    pub pat: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    pub total: u64,
    pub by_endpoint: BTreeMap<String, u64>,
    pub log: VecDeque<RequestRecord>,
}

impl Metrics {
    pub fn record(&mut self, endpoint: String, record: RequestRecord) {
        self.total += 1;
        *self.by_endpoint.entry(endpoint).or_insert(0) += 1;
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(record);
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub edition: Edition,
    pub version: String,
    pub status: String,
    pub force_authentication: bool,
    pub server_id: String,
    pub users: Vec<User>,
    pub tokens: HashMap<String, Token>,
    /// By key (exact case).
    pub projects: BTreeMap<String, Project>,
    /// In creation order.
    pub settings: Vec<AlmSetting>,
    pub faults: Faults,
    pub rng: fastrand::Rng,
    pub metrics: Metrics,
}

impl State {
    pub fn from_seed(seed: &SonarSeed) -> Result<State, SonarSeedError> {
        seed.validate()?;
        let mut state = State {
            edition: seed.edition,
            version: seed.version.clone(),
            status: "UP".to_owned(),
            force_authentication: seed.force_authentication,
            server_id: String::new(),
            users: Vec::new(),
            tokens: HashMap::new(),
            projects: BTreeMap::new(),
            settings: Vec::new(),
            faults: Faults::default(),
            rng: fastrand::Rng::new(),
            metrics: Metrics::default(),
        };
        state.server_id = format!("{:08X}-{}", state.rng.u32(..), state.new_uuid());
        for user in &seed.users {
            let uid = state.users.len();
            state.users.push(User {
                login: user.login.clone(),
                name: if user.name.is_empty() { user.login.clone() } else { user.name.clone() },
                admin: user.admin,
                create_projects: user.create_projects,
                pats: BTreeMap::new(),
            });
            for token in &user.tokens {
                let expired_on = token.expired.then(|| SEEDED_EXPIRY.to_owned());
                state.tokens.insert(token.token.clone(), Token { user: uid, kind: token.kind, expired_on });
            }
        }
        for project in &seed.projects {
            let admins = project.admins.iter().filter_map(|login| state.user_id(login)).collect();
            let name = if project.name.is_empty() { project.key.clone() } else { project.name.clone() };
            let uuid = state.new_uuid();
            state
                .projects
                .insert(project.key.clone(), Project { uuid, key: project.key.clone(), name, admins, binding: None });
        }
        for setting in &seed.alm_settings {
            let uuid = state.new_uuid();
            state.settings.push(AlmSetting {
                uuid,
                key: setting.key.clone(),
                alm: setting.alm,
                url: setting.url.clone(),
                pat: setting.personal_access_token.clone().filter(|p| !p.is_empty()),
            });
        }
        for (index, binding) in seed.bindings.iter().enumerate() {
            // `validate` above makes both references resolve; the mapping only keeps errors typed.
            state
                .bind(&binding.project, &binding.alm_setting, &binding.repository, &binding.slug, binding.monorepo)
                .map_err(|_| SonarSeedError::UnknownProject { index, project: binding.project.clone() })?;
        }
        Ok(state)
    }

    /// A random uuid (v4 layout), used for projects, settings and bindings.
    pub fn new_uuid(&mut self) -> String {
        let a = self.rng.u64(..);
        let b = self.rng.u64(..);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    pub fn user_id(&self, login: &str) -> Option<UserId> {
        self.users.iter().position(|u| u.login == login)
    }

    pub fn setting(&self, key: &str) -> Option<&AlmSetting> {
        self.settings.iter().find(|s| s.key == key)
    }

    pub fn setting_by_uuid(&self, uuid: &str) -> Option<&AlmSetting> {
        self.settings.iter().find(|s| s.uuid == uuid)
    }

    /// The project whose key equals `key` ignoring case, if any (the creation check).
    pub fn similar_project(&self, key: &str) -> Option<&Project> {
        let lower = key.to_lowercase();
        self.projects.values().find(|p| p.key.to_lowercase() == lower)
    }

    /// Inserts or overwrites a project's binding, keeping the binding's id when it existed.
    pub fn bind(
        &mut self,
        project: &str,
        setting: &str,
        repository: &str,
        slug: &str,
        monorepo: bool,
    ) -> Result<String, SonarSimError> {
        let setting_uuid = self
            .setting(setting)
            .map(|s| s.uuid.clone())
            .ok_or_else(|| SonarSimError::NoSuchAlmSetting(setting.into()))?;
        let fresh = self.new_uuid();
        let project = self.projects.get_mut(project).ok_or_else(|| SonarSimError::NoSuchProject(project.into()))?;
        let uuid = project.binding.as_ref().map_or(fresh, |b| b.uuid.clone());
        project.binding = Some(Binding {
            uuid: uuid.clone(),
            setting: setting_uuid,
            repository: repository.to_owned(),
            slug: slug.to_owned(),
            monorepo,
        });
        Ok(uuid)
    }

    /// Deletes a setting with SonarQube's cascade: its bindings, then every user's PAT for it.
    pub fn delete_setting(&mut self, key: &str) -> Result<(), SonarSimError> {
        let index = self
            .settings
            .iter()
            .position(|s| s.key == key)
            .ok_or_else(|| SonarSimError::NoSuchAlmSetting(key.to_owned()))?;
        let setting = self.settings.remove(index);
        for project in self.projects.values_mut() {
            if project.binding.as_ref().is_some_and(|b| b.setting == setting.uuid) {
                project.binding = None;
            }
        }
        for user in &mut self.users {
            user.pats.remove(&setting.uuid);
        }
        Ok(())
    }

    pub fn count_bindings(&self, uuid: &str) -> usize {
        self.projects.values().filter(|p| p.binding.as_ref().is_some_and(|b| b.setting == uuid)).count()
    }

    /// The `get_binding` body of a bound project.
    pub fn binding_json(&self, project: &Project) -> Option<Value> {
        let binding = project.binding.as_ref()?;
        let setting = self.setting_by_uuid(&binding.setting)?;
        let mut body = json!({
            "key": setting.key,
            "alm": setting.alm.as_str(),
            "repository": binding.repository,
            "url": setting_url(setting),
            "monorepo": binding.monorepo,
        });
        if setting.alm == Alm::Bitbucket {
            body["slug"] = json!(binding.slug);
        } else {
            body["summaryCommentEnabled"] = json!(true);
        }
        Some(body)
    }

    pub fn set_version(&mut self, version: &str) -> Result<(), SonarSimError> {
        if parse_version(version).is_none() {
            return Err(SonarSimError::InvalidVersion(version.to_owned()));
        }
        version.clone_into(&mut self.version);
        Ok(())
    }

    pub fn set_status(&mut self, status: &str) -> Result<(), SonarSimError> {
        if !STATUSES.contains(&status) {
            return Err(SonarSimError::InvalidStatus(status.to_owned()));
        }
        status.clone_into(&mut self.status);
        Ok(())
    }

    pub fn add_token(&mut self, login: &str, token: &str) -> Result<(), SonarSimError> {
        let uid = self.user_id(login).ok_or_else(|| SonarSimError::NoSuchUser(login.to_owned()))?;
        if token.is_empty() {
            return Err(SonarSimError::InvalidToken);
        }
        if self.tokens.contains_key(token) {
            return Err(SonarSimError::TokenInUse);
        }
        self.tokens.insert(token.to_owned(), Token { user: uid, kind: TokenKind::User, expired_on: None });
        Ok(())
    }

    /// The state without any secret: the `/__simulator/state` dump.
    pub fn dump(&self) -> Value {
        let users: Vec<Value> = self
            .users
            .iter()
            .enumerate()
            .map(|(uid, u)| {
                // A PAT of a setting that no longer exists shows as its uuid, so a missed cascade shows.
                let pats: Vec<&str> = u
                    .pats
                    .keys()
                    .map(|uuid| self.setting_by_uuid(uuid).map_or(uuid.as_str(), |s| s.key.as_str()))
                    .collect();
                let tokens = self.tokens.values().filter(|t| t.user == uid).count();
                json!({"login": u.login, "name": u.name, "admin": u.admin, "createProjects": u.create_projects,
                       "tokens": tokens, "patsFor": pats})
            })
            .collect();
        let projects: Vec<Value> = self
            .projects
            .values()
            .map(|p| {
                let admins: Vec<&str> =
                    p.admins.iter().filter_map(|uid| self.users.get(*uid)).map(|u| u.login.as_str()).collect();
                json!({"key": p.key, "name": p.name, "admins": admins, "binding": self.binding_json(p)})
            })
            .collect();
        json!({
            "edition": self.edition.as_str(),
            "version": self.version,
            "status": self.status,
            "forceAuthentication": self.force_authentication,
            "users": users,
            "projects": projects,
            "almSettings": self.settings_json(),
        })
    }

    /// Every setting in creation order, without its PAT.
    pub fn settings_json(&self) -> Value {
        let settings: Vec<Value> = self
            .settings
            .iter()
            .map(|s| {
                json!({"id": s.uuid, "key": s.key, "alm": s.alm.as_str(), "url": setting_url(s),
                       "bindings": self.count_bindings(&s.uuid)})
            })
            .collect();
        Value::Array(settings)
    }
}

/// The URL `list` shows: Bitbucket Cloud's is made from its workspace.
pub(crate) fn setting_url(setting: &AlmSetting) -> String {
    match setting.alm {
        Alm::Bitbucketcloud => format!("https://bitbucket.org/{}/", setting.url),
        _ => setting.url.clone(),
    }
}
