//! Project bindings on commercial editions (`sonarqube-api.md` §2.6–2.8): read, set (an
//! idempotent upsert) and delete.

use serde::Deserialize;

use super::{Alm, Client, Error, alm_settings::MAX_KEY, error::checked, http::Call};

/// Longest project key SonarQube accepts.
pub(crate) const MAX_PROJECT_KEY: usize = 400;
/// Longest Bitbucket project key or slug sent.
const MAX_REPOSITORY: usize = 200;

/// A project's binding as `get_binding` reports it. Texts are the server's: compare them, check
/// them before showing them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The platform of the setting.
    pub alm: Alm,
    /// The setting key.
    pub key: String,
    /// For Bitbucket Server: the Bitbucket project key.
    pub repository: Option<String>,
    /// For Bitbucket Server: the repository slug.
    pub slug: Option<String>,
    /// The setting's URL.
    pub url: Option<String>,
    /// A monorepo binding.
    pub monorepo: bool,
}

/// What `set_bitbucket_binding` binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitbucketBinding {
    /// The Bitbucket setting key.
    pub alm_setting: String,
    /// The SonarQube project key.
    pub project: String,
    /// The Bitbucket project key.
    pub repository: String,
    /// The repository slug.
    pub slug: String,
    /// A monorepo binding (always sent: required since 8.7).
    pub monorepo: bool,
}

#[derive(Deserialize)]
struct BindingBody {
    #[serde(default)]
    alm: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    monorepo: Option<bool>,
}

const NOT_BOUND: &str = "is not bound to any DevOps Platform";

pub(crate) fn project_arg(project: &str) -> Result<&str, Error> {
    checked("the SonarQube project key", project, MAX_PROJECT_KEY)
}

impl Client {
    /// `GET api/alm_settings/get_binding`: the project's binding, `None` when it has none.
    pub async fn get_binding(&self, project: &str) -> Result<Option<Binding>, Error> {
        let call = Call::new("GET api/alm_settings/get_binding", "read a project's binding", "Browse")
            .query("project", project_arg(project)?)
            .about(project);
        let response = self.send(&call).await?;
        if response.status.is_success() {
            let body: BindingBody = self.parse(&call, &response)?;
            return Ok(Some(Binding {
                alm: Alm::from_name(body.alm.as_deref().unwrap_or_default()),
                key: body.key.unwrap_or_default(),
                repository: body.repository,
                slug: body.slug,
                url: body.url,
                monorepo: body.monorepo.unwrap_or(false),
            }));
        }
        // 404 on current servers, 400 on old ones.
        if matches!(response.status.as_u16(), 400 | 404) && response.message().contains(NOT_BOUND) {
            return Ok(None);
        }
        Err(self.failure(&call, &response))
    }

    /// `POST api/alm_settings/set_bitbucket_binding`: binds the project, replacing any binding
    /// it had. Community editions lack it ([`Error::EndpointMissing`]).
    pub async fn set_bitbucket_binding(&self, binding: &BitbucketBinding) -> Result<(), Error> {
        let call = Call::new("POST api/alm_settings/set_bitbucket_binding", "bind a project", "project Administer")
            .form("almSetting", checked("the SonarQube setting key", &binding.alm_setting, MAX_KEY)?)
            .form("project", project_arg(&binding.project)?)
            .form("repository", checked("the Bitbucket project key", &binding.repository, MAX_REPOSITORY)?)
            .form("slug", checked("the Bitbucket repository slug", &binding.slug, MAX_REPOSITORY)?)
            .form("monorepo", binding.monorepo)
            .about(&binding.project)
            .about(&binding.alm_setting);
        self.send_expecting_nothing(&call).await
    }

    /// `POST api/alm_settings/delete_binding`: done when it answers 204, and when the project is
    /// unbound or gone (404).
    pub async fn delete_binding(&self, project: &str) -> Result<(), Error> {
        let call = Call::new("POST api/alm_settings/delete_binding", "unbind a project", "project Administer")
            .form("project", project_arg(project)?)
            .about(project);
        let response = self.send(&call).await?;
        if response.status.is_success() {
            return Ok(());
        }
        match self.failure(&call, &response) {
            Error::ProjectNotFound { .. } => Ok(()),
            _ if response.status == reqwest::StatusCode::NOT_FOUND && response.message().contains(NOT_BOUND) => Ok(()),
            error => Err(error),
        }
    }
}
