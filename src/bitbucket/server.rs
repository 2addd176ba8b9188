//! What a server says about itself, and the connection check (bitbucket-api.md §1.4):
//! `/status`, application properties with version parsing, the identity proof, capabilities.

use std::{fmt, str::FromStr};

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::{
    Client, Error,
    http::{Call, Response, credential_refusal},
};

/// Oldest Bitbucket supported: HTTP access tokens, repository webhooks over REST and the webhook
/// capabilities endpoint all exist from here on.
pub const MINIMUM_VERSION: Version = Version { major: 6, minor: 6, patch: 0 };

/// A Bitbucket version, compared numerically (`9.10` is newer than `9.9`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version; 0 when the server gives none.
    pub patch: u32,
}

impl FromStr for Version {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.trim().split('.');
        let mut number = |required: bool| -> Result<u32, String> {
            match parts.next() {
                Some(part) => {
                    // Tolerate a suffix on the last part ("9.4.22-rc1").
                    let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().map_err(|_| format!("{text:?} is not a version number"))
                }
                None if required => Err(format!("{text:?} is not a version number")),
                None => Ok(0),
            }
        };
        Ok(Self { major: number(true)?, minor: number(true)?, patch: number(false)? })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Features the server announces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Repository webhooks.
    pub webhooks: bool,
    /// Code Insights (reports, and the required-report merge check from 6.9).
    pub code_insights: bool,
}

/// What the connection check proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerIdentity {
    /// Parsed version.
    pub version: Version,
    /// Version as the server wrote it.
    pub version_text: String,
    /// Build number, such as `9004022`.
    pub build_number: Option<String>,
    /// Product name, normally `Bitbucket`.
    pub display_name: Option<String>,
    /// The user the credential authenticates as.
    pub username: String,
    /// Announced features.
    pub capabilities: Capabilities,
}

#[derive(Deserialize)]
struct Status {
    state: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationProperties {
    version: String,
    #[serde(default)]
    build_number: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct CapabilitiesBody {
    #[serde(default)]
    capabilities: serde_json::Map<String, serde_json::Value>,
}

impl Client {
    /// `GET /status`: the server's state (`RUNNING` when healthy). Sent without credentials.
    pub async fn status(&self) -> Result<String, Error> {
        let call = Call::new(Method::GET, "GET /status", &["status"], "read the server status").anonymous();
        let response = self.send(&call).await?;
        let not_bitbucket = || Error::UnsupportedServer {
            reason: "no Bitbucket answers at this URL (/status is not Bitbucket's)".into(),
        };
        if response.status != StatusCode::OK {
            return Err(self.failure(&call, &response, not_bitbucket));
        }
        serde_json::from_slice::<Status>(&response.body).map(|s| s.state).map_err(|_| not_bitbucket())
    }

    /// The connection check: the server is Bitbucket and running, the credential is recognised
    /// (Bitbucket serves unknown tokens as anonymous, so a 200 alone proves nothing), it may read,
    /// and which features the server has. On success, later 401s count as permission problems.
    pub async fn verify_connection(&self) -> Result<ServerIdentity, Error> {
        // A rejected credential stays rejected: the check costs no request at all.
        if let Some(rejected) = self.rejected() {
            return Err(rejected);
        }
        let state = self.status().await?;
        if state != "RUNNING" {
            let state = super::error::identifier(Some(&state)).unwrap_or_else(|| "unreadable".into());
            return Err(Error::NotRunning { state });
        }

        let call = application_properties();
        let response = self.send(&call).await?;
        if response.status != StatusCode::OK {
            return Err(self.failure(&call, &response, || Error::UnsupportedServer {
                reason: "the server has no /rest/api/1.0/application-properties".into(),
            }));
        }
        let properties: ApplicationProperties = self.parse(&call, &response)?;
        let Some(username) = recognised_user(&response).map(str::to_owned) else {
            return Err(
                self.reject_credentials("the credential was not recognised: Bitbucket served the request as anonymous")
            );
        };
        let version: Version = properties.version.parse().map_err(|reason| Error::UnsupportedServer { reason })?;
        if version < MINIMUM_VERSION {
            return Err(Error::UnsupportedServer {
                reason: format!("Bitbucket {version} is older than {MINIMUM_VERSION}, the oldest version supported"),
            });
        }

        // Reading needs more than a recognised name: this fails for a user without access.
        let call = Call::new(Method::GET, "GET /rest/api/1.0/users", &["rest", "api", "1.0", "users"], "list users")
            .query("limit", 1);
        let response = self.send(&call).await?;
        if response.status != StatusCode::OK {
            return Err(self.failure(&call, &response, || Error::UnsupportedServer {
                reason: "the server has no /rest/api/1.0/users".into(),
            }));
        }
        self.prove_identity();

        let capabilities = self.capabilities().await?;
        Ok(ServerIdentity {
            version,
            version_text: properties.version,
            build_number: properties.build_number,
            display_name: properties.display_name,
            username,
            capabilities,
        })
    }

    /// Whether Bitbucket still recognises the credential, asked again after a 401 that could mean
    /// either a missing permission or a credential gone bad. The application properties are
    /// readable anonymously, so only `X-AUSERNAME` tells; a 401 there is a refused credential.
    pub(crate) async fn identity_recognised(&self) -> Result<bool, Error> {
        let call = application_properties();
        let response = self.send_with_retries(&call).await?;
        match response.status {
            StatusCode::OK => Ok(recognised_user(&response).is_some()),
            StatusCode::UNAUTHORIZED => match credential_refusal(&response.error_detail()) {
                Some(refusal) => Err(self.reject(refusal)),
                None => Ok(false),
            },
            _ => Err(self.failure(&call, &response, || Error::UnsupportedServer {
                reason: "the server has no /rest/api/1.0/application-properties".into(),
            })),
        }
    }

    /// `GET /rest/capabilities`: which features the server announces. A server without the
    /// endpoint announces none.
    pub async fn capabilities(&self) -> Result<Capabilities, Error> {
        let call = Call::new(Method::GET, "GET /rest/capabilities", &["rest", "capabilities"], "read the capabilities");
        let response = self.send(&call).await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(Capabilities::default());
        }
        if response.status != StatusCode::OK {
            return Err(self.failure(&call, &response, || Error::NotFound { what: "/rest/capabilities".into() }));
        }
        let body: CapabilitiesBody = self.parse(&call, &response)?;
        Ok(Capabilities {
            webhooks: body.capabilities.contains_key("webhooks"),
            code_insights: body.capabilities.contains_key("code-insights"),
        })
    }
}

fn application_properties() -> Call {
    Call::new(
        Method::GET,
        "GET /rest/api/1.0/application-properties",
        &["rest", "api", "1.0", "application-properties"],
        "read the application properties",
    )
}

/// The user a response was answered for (`X-AUSERNAME`); `None` for anonymous, which Bitbucket
/// marks by leaving the header out (or, like Jira, by writing `anonymous`).
pub(crate) fn recognised_user(response: &Response) -> Option<&str> {
    response
        .header("x-ausername")
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.eq_ignore_ascii_case("anonymous"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        let parse = |s: &str| s.parse::<Version>().expect(s);
        assert!(parse("9.10.0") > parse("9.9.5"));
        assert_eq!(parse("8.19"), Version { major: 8, minor: 19, patch: 0 });
        assert_eq!(parse("9.4.22-rc1").patch, 22);
        assert!("nine".parse::<Version>().is_err());
        assert!("9".parse::<Version>().is_err());
        assert_eq!(parse("7.11.2").to_string(), "7.11.2");
    }
}
