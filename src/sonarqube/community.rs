//! Binding on Community editions (`sonarqube-api.md` §2.13), which lack `set_bitbucket_binding`:
//! the operator's user stores its own Bitbucket PAT (`set_pat`), then binds through v2
//! `bound-projects`, which names the setting by id, not key.

use serde::Deserialize;
use serde_json::json;

use super::{Client, Error, alm_settings::MAX_KEY, bindings::project_arg, error::checked, http::Call};
use crate::bitbucket::Secret;

/// Longest PAT `set_pat` takes.
const MAX_PAT: usize = 2000;

/// A setting as v2 `dop-settings` reports it (server text).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DopSetting {
    /// The id v2 calls name it by.
    pub id: String,
    /// The key v1 calls name it by.
    #[serde(default)]
    pub key: String,
    /// The platform in v2 words (`bitbucket_server` for Bitbucket Data Center).
    #[serde(default, rename = "type")]
    pub kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DopSettings {
    #[serde(default)]
    dop_settings: Vec<DopSetting>,
}

/// What `PUT bound-projects` creates or updates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundProject {
    /// The SonarQube project key.
    pub project_key: String,
    /// The SonarQube project name.
    pub project_name: String,
    /// The setting's id ([`DopSetting::id`]).
    pub dev_ops_platform_setting_id: String,
    /// The Bitbucket project key.
    pub bitbucket_project: String,
    /// The repository slug.
    pub slug: String,
    /// A monorepo binding.
    pub monorepo: bool,
}

/// What `PUT bound-projects` answers.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoundProjectResult {
    /// The project's id.
    pub project_id: String,
    /// The binding's id.
    pub binding_id: String,
    /// Whether the call created the project.
    #[serde(default)]
    pub new_project_created: bool,
}

impl Client {
    /// `POST api/alm_integrations/set_pat`: stores a Bitbucket PAT for the token's own user (the
    /// one v2 binding uses). The PAT travels only in the form body.
    pub async fn set_pat(&self, alm_setting: &str, pat: &Secret) -> Result<(), Error> {
        checked("the Bitbucket personal access token for SonarQube", pat.expose(), MAX_PAT)?;
        let call = Call::new(
            "POST api/alm_integrations/set_pat",
            "store its Bitbucket personal access token",
            "Create Projects",
        )
        .form("almSetting", checked("the SonarQube setting key", alm_setting, MAX_KEY)?)
        .secret("pat", pat)
        .about(alm_setting);
        self.send_expecting_nothing(&call).await
    }

    /// `GET api/v2/dop-translation/dop-settings`: every setting with its id.
    pub async fn dop_settings(&self) -> Result<Vec<DopSetting>, Error> {
        let call =
            Call::new("GET api/v2/dop-translation/dop-settings", "list DevOps Platform settings", "Create Projects");
        let body: DopSettings = self.send_for(&call).await?;
        Ok(body.dop_settings)
    }

    /// `PUT api/v2/dop-translation/bound-projects`: creates the project bound to the repository,
    /// or rebinds it (idempotent).
    pub async fn put_bound_project(&self, bound: &BoundProject) -> Result<BoundProjectResult, Error> {
        let call = Call::new("PUT api/v2/dop-translation/bound-projects", "bind a project", "Create Projects")
            .json(json!({
                "projectKey": project_arg(&bound.project_key)?,
                "projectName": checked("the SonarQube project name", &bound.project_name, 500)?,
                "devOpsPlatformSettingId": checked("the DevOps Platform setting id", &bound.dev_ops_platform_setting_id, 40)?,
                "repositoryIdentifier": checked("the Bitbucket repository slug", &bound.slug, 200)?,
                "projectIdentifier": checked("the Bitbucket project key", &bound.bitbucket_project, 200)?,
                "monorepo": bound.monorepo,
            }))
            .about(&bound.project_key);
        match self.send_for(&call).await {
            // SonarQube answers 500 when it cannot read the repository with the user's PAT.
            Err(Error::Server { status: 500 }) => {
                Err(Error::RepositoryUnreadable { project: bound.bitbucket_project.clone(), slug: bound.slug.clone() })
            }
            // Only the text tells this 400 apart; the id is ours, so nothing of the server's is kept.
            Err(Error::InvalidRequest { message: Some(message), .. })
                if message.starts_with("personal access token for") && message.contains("is missing") =>
            {
                Err(Error::UserPatMissing { setting: bound.dev_ops_platform_setting_id.clone() })
            }
            other => other,
        }
    }
}
