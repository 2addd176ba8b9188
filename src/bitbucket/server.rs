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
        // The server chose the text: it is quoted only if it is short and plain.
        let wrong = || match plain_version(text) {
            Some(shown) => format!("{shown:?} is not a version number"),
            None => "the version the server reports is not a version number".to_owned(),
        };
        let mut parts = text.trim().split('.');
        let mut number = |required: bool| -> Result<u32, String> {
            match parts.next() {
                Some(part) => {
                    // Tolerate a suffix on the last part ("9.4.22-rc1").
                    let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().map_err(|_| wrong())
                }
                None if required => Err(wrong()),
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

/// What the connection check proved. Every text in it was checked here (characters, length),
/// so it may be shown in status, Events and messages as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerIdentity {
    /// Parsed version.
    pub version: Version,
    /// Version as the server wrote it if that is short and plain (`9.4.22-rc1`), otherwise the
    /// parsed version.
    pub version_text: String,
    /// Build number, such as `9004022`; `None` unless it is a short string of digits.
    pub build_number: Option<String>,
    /// Product name, normally `Bitbucket`; `None` unless it is a short, plain name.
    pub display_name: Option<String>,
    /// The user the credential authenticates as; `None` when the name the server gave does not
    /// look like a Bitbucket user name (it cannot be shown, though the credential works).
    pub username: Option<String>,
    /// Announced features.
    pub capabilities: Capabilities,
}

/// What messages say instead of a user name that cannot be shown.
pub const UNSHOWN_USER: &str = "a user whose name cannot be shown";

impl ServerIdentity {
    /// The user for a message: the name, or [`UNSHOWN_USER`].
    pub fn shown_user(&self) -> &str {
        self.username.as_deref().unwrap_or(UNSHOWN_USER)
    }
}

/// Longest version text kept as the server wrote it.
const MAX_VERSION_TEXT: usize = 32;
/// Longest build number kept.
const MAX_BUILD_NUMBER: usize = 16;
/// Longest product name kept.
const MAX_DISPLAY_NAME: usize = 64;
/// Longest user name kept: long enough for an e-mail address as a directory's user name.
const MAX_USERNAME: usize = 100;

/// `text`, trimmed, if it is non-empty, at most `max` characters long and made only of
/// characters `allowed` accepts.
pub(crate) fn plain(text: &str, max: usize, allowed: impl Fn(char) -> bool) -> Option<String> {
    let text = text.trim();
    let fits = !text.is_empty() && text.chars().count() <= max && text.chars().all(allowed);
    fits.then(|| text.to_owned())
}

fn plain_version(text: &str) -> Option<String> {
    plain(text, MAX_VERSION_TEXT, |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
}

fn plain_build_number(text: &str) -> Option<String> {
    plain(text, MAX_BUILD_NUMBER, |c| c.is_ascii_digit())
}

fn plain_display_name(text: &str) -> Option<String> {
    plain(text, MAX_DISPLAY_NAME, |c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '(' | ')'))
}

/// A user name as Bitbucket allows them: letters and digits (any script), `.`, `_`, `-`, `@`
/// and `+` (e-mail addresses from a directory).
fn plausible_username(text: &str) -> Option<String> {
    plain(text, MAX_USERNAME, |c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
}

/// What `X-AUSERNAME` says: `None` for an anonymous answer (no header, an empty one, or
/// `anonymous`); otherwise the credential was recognised, and the name if it can be shown.
fn authenticated_user(headers: &reqwest::header::HeaderMap) -> Option<Option<String>> {
    let value = headers.get("x-ausername")?;
    // Header bytes are not always ASCII; a name in UTF-8 is still a name.
    let text = std::str::from_utf8(value.as_bytes()).ok().map(str::trim);
    match text {
        Some("") => None,
        Some(name) if name.eq_ignore_ascii_case("anonymous") => None,
        Some(name) => Some(plausible_username(name)),
        None => Some(None),
    }
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

/// The page `/rest/api/1.0/users` answers with; its users are not needed, but a body that is not
/// such a page proves nothing.
#[derive(Deserialize)]
struct UsersPage {
    #[serde(rename = "values")]
    _values: Vec<serde::de::IgnoredAny>,
    #[serde(rename = "isLastPage")]
    _is_last_page: bool,
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
        let Some(username) = recognised_user(&response) else {
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
        self.parse::<UsersPage>(&call, &response)?;
        self.prove_identity();

        let capabilities = self.capabilities().await?;
        Ok(ServerIdentity {
            version,
            version_text: plain_version(&properties.version).unwrap_or_else(|| version.to_string()),
            build_number: properties.build_number.as_deref().and_then(plain_build_number),
            display_name: properties.display_name.as_deref().and_then(plain_display_name),
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
/// marks by leaving the header out (or, like Jira, by writing `anonymous`). See
/// [`authenticated_user`] for the name inside.
pub(crate) fn recognised_user(response: &Response) -> Option<Option<String>> {
    authenticated_user(&response.headers)
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

    #[test]
    fn a_version_that_is_not_one_is_quoted_only_when_plain() {
        assert_eq!("nine".parse::<Version>(), Err("\"nine\" is not a version number".to_owned()));
        let junk = format!("<script>{}", "x".repeat(100));
        let error = junk.parse::<Version>().expect_err("not a version");
        assert!(!error.contains("script") && !error.contains("xxx"), "{error}");
    }

    #[test]
    fn only_short_plain_server_texts_are_kept() {
        assert_eq!(plain_version("9.4.22-rc1"), Some("9.4.22-rc1".into()));
        assert_eq!(plain_version("9.4.22 <b>junk</b>"), None);
        assert_eq!(plain_version(&format!("9.4.{}", "1".repeat(40))), None);
        assert_eq!(plain_build_number("9004022"), Some("9004022".into()));
        assert_eq!(plain_build_number("9004022; x"), None);
        assert_eq!(plain_build_number(&"9".repeat(17)), None);
        assert_eq!(plain_display_name("Bitbucket"), Some("Bitbucket".into()));
        assert_eq!(plain_display_name("Bitbucket\u{202e}"), None);
        assert_eq!(plain_display_name(&"B".repeat(65)), None);
    }

    #[test]
    fn user_names_are_shown_only_when_plausible() {
        let header = |bytes: &[u8]| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert("x-ausername", reqwest::header::HeaderValue::from_bytes(bytes).expect("header"));
            authenticated_user(&headers)
        };
        assert_eq!(header(b"svc-operator"), Some(Some("svc-operator".into())));
        assert_eq!(header(b"jane.doe+ci@example.com"), Some(Some("jane.doe+ci@example.com".into())));
        assert_eq!(header("j\u{fc}rgen".as_bytes()), Some(Some("j\u{fc}rgen".into())), "UTF-8 letters are letters");
        // Recognised, but the name cannot be shown.
        assert_eq!(header(b"<img src=x onerror=alert(1)>"), Some(None));
        assert_eq!(header(b"svc operator"), Some(None));
        assert_eq!(header("a".repeat(MAX_USERNAME + 1).as_bytes()), Some(None));
        assert_eq!(header(&[0xff, 0xfe, b'a']), Some(None));
        // Anonymous.
        assert_eq!(header(b"anonymous"), None);
        assert_eq!(header(b"  "), None);
        assert_eq!(authenticated_user(&reqwest::header::HeaderMap::new()), None);
        let identity = |username: Option<&str>| ServerIdentity {
            version: MINIMUM_VERSION,
            version_text: MINIMUM_VERSION.to_string(),
            build_number: None,
            display_name: None,
            username: username.map(str::to_owned),
            capabilities: Capabilities::default(),
        };
        assert_eq!(identity(Some("svc")).shown_user(), "svc");
        assert_eq!(identity(None).shown_user(), UNSHOWN_USER);
    }
}
