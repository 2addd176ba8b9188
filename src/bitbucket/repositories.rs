//! Repositories of a project (bitbucket-api.md §4.3–4.4).

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::{Client, Error, http::Call, projects::not_found_under};

/// Bitbucket's repository states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RepositoryState {
    /// Ready.
    Available,
    /// Just created, not ready yet.
    Initialising,
    /// Creation failed.
    InitialisationFailed,
    /// Offline.
    Offline,
    /// A state this client does not know.
    #[serde(other)]
    Unknown,
}

impl RepositoryState {
    /// The state as Bitbucket writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Initialising => "INITIALISING",
            Self::InitialisationFailed => "INITIALISATION_FAILED",
            Self::Offline => "OFFLINE",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// Where a repository can be cloned from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloneLinks {
    /// HTTP(S) clone URL.
    pub http: Option<String>,
    /// SSH clone URL; absent when SSH is off.
    pub ssh: Option<String>,
}

/// A repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    /// Slug, lower-case; changes on rename.
    pub slug: String,
    /// Numeric id; stable across renames.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// State.
    pub state: RepositoryState,
    /// Archived (read-only); always false before Bitbucket 8.0.
    pub archived: bool,
    /// Key of the project it belongs to.
    pub project_key: String,
    /// Clone URLs, picked by name (the server's order is not stable).
    pub clone: CloneLinks,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRepository {
    slug: String,
    id: i64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "unknown_state")]
    state: RepositoryState,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    project: Option<RawProjectRef>,
    #[serde(default)]
    links: RawLinks,
}

fn unknown_state() -> RepositoryState {
    RepositoryState::Unknown
}

#[derive(Deserialize)]
struct RawProjectRef {
    key: String,
}

#[derive(Default, Deserialize)]
struct RawLinks {
    #[serde(default)]
    clone: Vec<RawLink>,
}

#[derive(Deserialize)]
struct RawLink {
    href: String,
    #[serde(default)]
    name: Option<String>,
}

impl RawRepository {
    fn into_repository(self, project_key: &str) -> Repository {
        let link =
            |wanted: &str| self.links.clone.iter().find(|l| l.name.as_deref() == Some(wanted)).map(|l| l.href.clone());
        Repository {
            clone: CloneLinks { http: link("http"), ssh: link("ssh") },
            name: self.name.clone().unwrap_or_else(|| self.slug.clone()),
            project_key: self.project.map(|p| p.key).unwrap_or_else(|| project_key.to_owned()),
            slug: self.slug,
            id: self.id,
            state: self.state,
            archived: self.archived,
        }
    }
}

impl Client {
    /// Every repository of a project, all pages.
    pub async fn list_repositories(&self, project: &str) -> Result<Vec<Repository>, Error> {
        let raw: Vec<RawRepository> = self
            .get_all_pages(
                || {
                    Call::new(
                        Method::GET,
                        "GET /rest/api/1.0/projects/{key}/repos",
                        &["rest", "api", "1.0", "projects", project, "repos"],
                        format!("list the repositories of project {project}"),
                    )
                },
                |call, response| self.failure(call, response, || not_found_under(response, project, None)),
            )
            .await?;
        Ok(raw.into_iter().map(|r| r.into_repository(project)).collect())
    }

    /// One repository.
    pub async fn get_repository(&self, project: &str, slug: &str) -> Result<Repository, Error> {
        let call = Call::new(
            Method::GET,
            "GET /rest/api/1.0/projects/{key}/repos/{slug}",
            &["rest", "api", "1.0", "projects", project, "repos", slug],
            format!("read repository {project}/{slug}"),
        );
        let response = self.send(&call).await?;
        if response.status != StatusCode::OK {
            return Err(self.failure(&call, &response, || not_found_under(&response, project, Some(slug))));
        }
        let raw: RawRepository = self.parse(&call, &response)?;
        Ok(raw.into_repository(project))
    }
}
