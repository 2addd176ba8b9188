//! DevOps Platform ("ALM") settings (`sonarqube-api.md` §2.1–2.5, 2.9, 2.10): the Bitbucket
//! setting the operator keeps, and the keys of every other one (keys are unique across
//! platforms).

use serde::Deserialize;
use serde_json::Value;

use super::{Client, Error, ValidationFailure, error::checked, http::Call};
use crate::bitbucket::{Secret, plain};

/// Longest setting key SonarQube accepts.
pub(crate) const MAX_KEY: usize = 200;
/// Longest URL and PAT SonarQube accepts.
const MAX_URL: usize = 2000;
const MAX_PAT: usize = 2000;

const ADMINISTER_SYSTEM: &str = "Administer System";

/// A DevOps platform, as `list_definitions` and `list` name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alm {
    /// Bitbucket Server / Data Center (`bitbucket`).
    Bitbucket,
    /// Bitbucket Cloud (`bitbucketcloud`).
    BitbucketCloud,
    /// GitHub (`github`).
    GitHub,
    /// GitLab (`gitlab`).
    GitLab,
    /// Azure DevOps (`azure`).
    Azure,
    /// A platform this client does not know (such as a newer `gitea`); its name if plain.
    Other(String),
}

impl Alm {
    pub(crate) fn from_name(name: &str) -> Self {
        match name {
            "bitbucket" => Self::Bitbucket,
            "bitbucketcloud" => Self::BitbucketCloud,
            "github" => Self::GitHub,
            "gitlab" => Self::GitLab,
            "azure" => Self::Azure,
            other => Self::Other(
                plain(other, 32, |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                    .unwrap_or_else(|| "unnamed".into()),
            ),
        }
    }

    /// The platform's name, as SonarQube writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Bitbucket => "bitbucket",
            Self::BitbucketCloud => "bitbucketcloud",
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
            Self::Azure => "azure",
            Self::Other(name) => name,
        }
    }
}

/// One setting from `list_definitions`. `key` and `url` are the server's text, kept whole so
/// they compare exactly: check them before showing them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlmDefinition {
    /// The platform.
    pub alm: Alm,
    /// The setting key.
    pub key: String,
    /// The URL, for platforms that have one.
    pub url: Option<String>,
}

/// Every setting of every platform.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlmDefinitions {
    /// In the server's order (by platform, then by creation).
    pub settings: Vec<AlmDefinition>,
}

impl AlmDefinitions {
    /// The Bitbucket Server setting with this key.
    pub fn bitbucket(&self, key: &str) -> Option<&AlmDefinition> {
        self.settings.iter().find(|s| s.alm == Alm::Bitbucket && s.key == key)
    }

    /// The platform whose setting holds this key, of whatever type.
    pub fn holder_of(&self, key: &str) -> Option<&Alm> {
        self.settings.iter().find(|s| s.key == key).map(|s| &s.alm)
    }

    /// Every Bitbucket Server and Bitbucket Cloud setting: they share the edition cap.
    pub fn bitbucket_family(&self) -> impl Iterator<Item = &AlmDefinition> {
        self.settings.iter().filter(|s| matches!(s.alm, Alm::Bitbucket | Alm::BitbucketCloud))
    }

    /// Reads `{"<platform>":[{"key",…}],…}`: unknown platforms are kept by name, anything that
    /// is not a list of objects with a string key is skipped.
    fn from_value(value: &Value) -> Option<Self> {
        let platforms = value.as_object()?;
        let settings = platforms
            .iter()
            .filter_map(|(name, entries)| Some((Alm::from_name(name), entries.as_array()?)))
            .flat_map(|(alm, entries)| {
                entries.iter().filter_map(move |entry| {
                    let key = entry.get("key")?.as_str()?.to_owned();
                    let url = entry.get("url").and_then(Value::as_str).map(str::to_owned);
                    Some(AlmDefinition { alm: alm.clone(), key, url })
                })
            })
            .collect();
        Some(Self { settings })
    }
}

/// One setting from `api/alm_settings/list` (the lower-privilege listing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlmSetting {
    /// The setting key (server text).
    pub key: String,
    /// The platform.
    pub alm: Alm,
    /// The URL (server text).
    pub url: Option<String>,
}

#[derive(Deserialize)]
struct ListBody {
    #[serde(default, rename = "almSettings")]
    alm_settings: Vec<ListEntry>,
}

#[derive(Deserialize)]
struct ListEntry {
    key: String,
    #[serde(default)]
    alm: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct CountBody {
    projects: u64,
}

/// A Bitbucket URL in the one form the operator stores and compares: checked (http(s), a host,
/// no credentials, query or fragment) and without a trailing slash. SonarQube compares URLs as
/// strings, so a trailing slash would count as a change of URL.
pub fn normalize_url(url: &str) -> Result<String, Error> {
    let parsed = crate::bitbucket::parse_base_url(url).map_err(|e| Error::InvalidArgument {
        field: "the Bitbucket URL for SonarQube",
        problem: match e {
            crate::bitbucket::Error::Configuration(problem) => problem.replacen("the URL ", "is wrong: it ", 1),
            other => other.to_string(),
        },
    })?;
    let normalized = parsed.as_str().trim_end_matches('/').to_owned();
    checked("the Bitbucket URL for SonarQube", &normalized, MAX_URL)?;
    Ok(normalized)
}

fn key_arg(key: &str) -> Result<&str, Error> {
    checked("the SonarQube setting key", key, MAX_KEY)
}

fn pat_arg(pat: &Secret) -> Result<&Secret, Error> {
    checked("the Bitbucket personal access token for SonarQube", pat.expose(), MAX_PAT)?;
    Ok(pat)
}

impl Client {
    /// `GET api/alm_settings/list_definitions`: every setting of every platform. Needs
    /// Administer System, so it is also the permission probe.
    pub async fn list_definitions(&self) -> Result<AlmDefinitions, Error> {
        let call =
            Call::new("GET api/alm_settings/list_definitions", "list DevOps Platform settings", ADMINISTER_SYSTEM);
        let body: Value = self.send_for(&call).await?;
        AlmDefinitions::from_value(&body).ok_or(Error::UnexpectedResponse {
            status: 200,
            endpoint: call.endpoint,
            reason: "the body is not an object of platforms".into(),
        })
    }

    /// `GET api/alm_settings/list`: keys, platforms and URLs (needs only Create Projects).
    pub async fn list_alm_settings(&self) -> Result<Vec<AlmSetting>, Error> {
        let call = Call::new("GET api/alm_settings/list", "list DevOps Platform settings", "Create Projects");
        let body: ListBody = self.send_for(&call).await?;
        Ok(body
            .alm_settings
            .into_iter()
            .map(|entry| AlmSetting {
                key: entry.key,
                alm: Alm::from_name(entry.alm.as_deref().unwrap_or_default()),
                url: entry.url,
            })
            .collect())
    }

    /// `POST api/alm_settings/create_bitbucket`. The URL is stored normalised
    /// ([`normalize_url`]); the PAT travels only in the form body.
    pub async fn create_bitbucket(&self, key: &str, url: &str, pat: &Secret) -> Result<(), Error> {
        let url = normalize_url(url)?;
        let call =
            Call::new("POST api/alm_settings/create_bitbucket", "create a DevOps Platform setting", ADMINISTER_SYSTEM)
                .form("key", key_arg(key)?)
                .form("url", url)
                .secret("personalAccessToken", pat_arg(pat)?)
                .about(key);
        self.send_expecting_nothing(&call).await
    }

    /// `POST api/alm_settings/update_bitbucket`. The URL is always sent (SonarQube requires it);
    /// a new URL needs the PAT in the same call; `new_key` renames the setting and keeps its
    /// bindings.
    pub async fn update_bitbucket(
        &self,
        key: &str,
        new_key: Option<&str>,
        url: &str,
        pat: Option<&Secret>,
    ) -> Result<(), Error> {
        let url = normalize_url(url)?;
        let mut call =
            Call::new("POST api/alm_settings/update_bitbucket", "update a DevOps Platform setting", ADMINISTER_SYSTEM)
                .form("key", key_arg(key)?)
                .form("url", url)
                .about(key);
        if let Some(new_key) = new_key {
            // A collision quotes the new key, which finds it among the subjects.
            call = call.form("newKey", key_arg(new_key)?).about(new_key);
        }
        if let Some(pat) = pat {
            call = call.secret("personalAccessToken", pat_arg(pat)?);
        }
        self.send_expecting_nothing(&call).await
    }

    /// `POST api/alm_settings/delete`: removes the setting, and with it every project binding
    /// to it and every user's PAT for it. `Ok(false)` when there was no such setting.
    pub async fn delete_alm_setting(&self, key: &str) -> Result<bool, Error> {
        let call = Call::new("POST api/alm_settings/delete", "delete a DevOps Platform setting", ADMINISTER_SYSTEM)
            .form("key", key_arg(key)?)
            .about(key);
        match self.send_expecting_nothing(&call).await {
            Ok(()) => Ok(true),
            Err(Error::AlmSettingNotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// `GET api/alm_settings/validate`: SonarQube checks the setting against Bitbucket (three
    /// calls from SonarQube to Bitbucket: rate-limit it).
    pub async fn validate_alm_setting(&self, key: &str) -> Result<(), Error> {
        let call = Call::new("GET api/alm_settings/validate", "validate a DevOps Platform setting", ADMINISTER_SYSTEM)
            .query("key", key_arg(key)?)
            .about(key);
        let response = self.send(&call).await?;
        match response.status.as_u16() {
            200..=299 => Ok(()),
            400 => {
                let message = response.message();
                // The setting-level 400s (a wrong key, say) keep their own mapping.
                match self.failure(&call, &response) {
                    Error::InvalidRequest { .. } => Err(Error::ValidationFailed {
                        key: key.to_owned(),
                        reason: ValidationFailure::from_message(&message),
                    }),
                    other => Err(other),
                }
            }
            _ => Err(self.failure(&call, &response)),
        }
    }

    /// `GET api/alm_settings/count_binding`: how many projects are bound to the setting.
    pub async fn count_binding(&self, key: &str) -> Result<u64, Error> {
        let call = Call::new("GET api/alm_settings/count_binding", "count a setting's bindings", ADMINISTER_SYSTEM)
            .query("almSetting", key_arg(key)?)
            .about(key);
        let body: CountBody = self.send_for(&call).await?;
        Ok(body.projects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_read_tolerantly_and_keep_every_key() {
        let body = serde_json::json!({
            "github": [{"key": "gh1", "url": "https://api.github.com", "appId": "12345"}],
            "azure": [],
            "bitbucket": [{"key": "bb", "url": "https://bitbucket.example.com"}, {"url": "no key"}],
            "gitlab": "not a list",
            "bitbucketcloud": [{"key": "bbc", "workspace": "team", "clientId": "x"}],
            "gitea": [{"key": "tea", "url": "https://gitea.example.com"}],
            "<script>": [{"key": "odd"}],
            "paging": {"total": 3}
        });
        let definitions = AlmDefinitions::from_value(&body).expect("an object");
        let mut keys: Vec<&str> = definitions.settings.iter().map(|s| s.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["bb", "bbc", "gh1", "odd", "tea"]);
        assert_eq!(definitions.bitbucket("bb").and_then(|s| s.url.as_deref()), Some("https://bitbucket.example.com"));
        assert_eq!(definitions.bitbucket("gh1"), None, "another platform's key is not a Bitbucket setting");
        assert_eq!(definitions.holder_of("gh1"), Some(&Alm::GitHub));
        assert_eq!(definitions.holder_of("tea"), Some(&Alm::Other("gitea".into())));
        assert_eq!(definitions.holder_of("odd"), Some(&Alm::Other("unnamed".into())));
        assert_eq!(definitions.bitbucket_family().count(), 2);
        assert_eq!(AlmDefinitions::from_value(&serde_json::json!([])), None);
    }

    #[test]
    fn urls_are_stored_in_one_form() {
        assert_eq!(normalize_url("https://bitbucket.example.com/"), Ok("https://bitbucket.example.com".into()));
        assert_eq!(normalize_url(" https://example.com/bitbucket//"), Ok("https://example.com/bitbucket".into()));
        assert_eq!(normalize_url("https://example.com:7990/bb"), Ok("https://example.com:7990/bb".into()));
        for bad in ["ftp://example.com", "https://u:p@example.com", "https://example.com/?a=1", "nope"] {
            let error = normalize_url(bad).expect_err(bad);
            assert!(error.to_string().starts_with("the Bitbucket URL for SonarQube"), "{error}");
            assert!(!error.to_string().contains("u:p"), "{error}");
        }
    }
}
