//! Projects (bitbucket-api.md §4.1–4.2).

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::{
    Client, Error,
    http::{Call, Response},
};

/// A Bitbucket project.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// Key, upper-case (`~USER` for a personal project).
    pub key: String,
    /// Numeric id.
    pub id: i64,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// `NORMAL` or `PERSONAL`.
    #[serde(default, rename = "type")]
    pub project_type: Option<String>,
    /// Readable by anyone, anonymous users included.
    #[serde(default)]
    pub public: bool,
}

/// The error for a 404 under a project (and maybe a repository), decided by the exception name.
pub(crate) fn not_found_under(response: &Response, project: &str, slug: Option<&str>) -> Error {
    let detail = response.error_detail();
    match slug {
        Some(slug) if !detail.exception_is("NoSuchProjectException") => {
            Error::RepositoryNotFound { project: project.to_owned(), slug: slug.to_owned() }
        }
        _ => Error::ProjectNotFound { project: project.to_owned() },
    }
}

impl Client {
    /// `GET /rest/api/1.0/projects/{key}`.
    pub async fn get_project(&self, key: &str) -> Result<Project, Error> {
        let call = Call::new(
            Method::GET,
            "GET /rest/api/1.0/projects/{key}",
            &["rest", "api", "1.0", "projects", key],
            format!("read project {key}"),
        );
        let response = self.send(&call).await?;
        if response.status != StatusCode::OK {
            return Err(self.failure(&call, &response, || not_found_under(&response, key, None)));
        }
        self.parse(&call, &response)
    }
}
