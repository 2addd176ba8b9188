//! The one error type of the SonarQube client. Variants are the failure classes the operator
//! reacts to differently, in the same classes as the Bitbucket client's ([`ErrorClass`]). Texts
//! say what to do; they never hold a token, a PAT or a raw response body, and any server text
//! kept is short and printable.

use std::time::Duration;

pub use crate::bitbucket::ErrorClass;

/// Why SonarQube's `api/alm_settings/validate` refused a Bitbucket setting, in our words
/// (`sonarqube-api.md` §2.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidationFailure {
    /// The setting lacks its URL or PAT.
    Incomplete,
    /// The URL is not http(s).
    UrlScheme,
    /// Bitbucket refused the PAT.
    InvalidPat,
    /// Bitbucket answered 404 at the URL.
    NotFoundAtUrl,
    /// No answer, a non-2xx one, or a redirect.
    Unreachable,
    /// Bitbucket answered something that is not Bitbucket's JSON.
    UnexpectedAnswer,
    /// A message this client does not know.
    Other,
}

impl ValidationFailure {
    /// Maps the message SonarQube gives onto a known cause.
    pub(crate) fn from_message(message: &str) -> Self {
        let message = message.trim();
        let known = [
            ("Your global Bitbucket Server configuration is incomplete.", Self::Incomplete),
            ("url must start with http:// or https://", Self::UrlScheme),
            ("Invalid personal access token", Self::InvalidPat),
            ("Error 404. The requested Bitbucket server is unreachable.", Self::NotFoundAtUrl),
            ("Unable to contact Bitbucket server, got an unexpected response", Self::UnexpectedAnswer),
            ("Unexpected response from Bitbucket server", Self::UnexpectedAnswer),
            ("Unable to contact Bitbucket server", Self::Unreachable),
        ];
        known.iter().find(|(text, _)| message.eq_ignore_ascii_case(text)).map_or(Self::Other, |(_, cause)| *cause)
    }
}

impl std::fmt::Display for ValidationFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Incomplete => "the setting has no URL or no personal access token; set both",
            Self::UrlScheme => "the Bitbucket URL must start with https:// or http://",
            Self::InvalidPat => {
                "Bitbucket refused the personal access token SonarQube holds; update the PAT in the Secret"
            }
            Self::NotFoundAtUrl => "Bitbucket answered 404 at the URL; use Bitbucket's base URL, with its context path",
            Self::Unreachable => {
                "SonarQube cannot reach Bitbucket at the URL, or Bitbucket redirects it; check the URL (scheme, \
                 host, context path) and the network between SonarQube and Bitbucket"
            }
            Self::UnexpectedAnswer => {
                "what answers at the URL is not Bitbucket's API; use Bitbucket's base URL, not a proxy or login page"
            }
            Self::Other => "SonarQube could not check the setting against Bitbucket",
        })
    }
}

/// A failed call to SonarQube.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// SonarQube answers but is not up (starting, migrating its database, down).
    #[error("SonarQube is not up (its status is {status}); waiting for it")]
    NotUp {
        /// The status `api/system/status` reported, if it is a plain word.
        status: String,
    },
    /// SonarQube did not accept the token.
    #[error(
        "SonarQube rejected the token ({}); create a new user token and put it in the Secret",
        if *expired { "it has expired" } else { "it is unknown, revoked or not a user token" }
    )]
    BadToken {
        /// The server said the token expired.
        expired: bool,
    },
    /// The token's user lacks a permission.
    #[error("the SonarQube user may not {action}; grant it the {permission} permission")]
    Forbidden {
        /// The refused action, such as `create a DevOps Platform setting`.
        action: String,
        /// The permission that allows it, such as `Administer System`.
        permission: &'static str,
    },
    /// The endpoint does not exist on this server: its edition lacks the API.
    #[error("SonarQube has no {endpoint} (this edition or version lacks it; Developer Edition or later has it)")]
    EndpointMissing {
        /// The endpoint template.
        endpoint: &'static str,
    },
    /// The edition allows one Bitbucket (Server or Cloud) setting, and one exists.
    #[error(
        "this SonarQube edition allows only one Bitbucket setting and a {platform} setting already exists; reuse \
         its key, remove it, or use Enterprise Edition or later"
    )]
    EditionLimit {
        /// `BITBUCKET` or `BITBUCKET_CLOUD`.
        platform: &'static str,
    },
    /// The setting key is used by another setting (of any platform).
    #[error("SonarQube already has a DevOps Platform setting with key {key}; choose another key")]
    KeyTaken {
        /// The key that was asked for.
        key: String,
    },
    /// A URL change was sent without the PAT.
    #[error("SonarQube changes the URL of setting {key} only together with its personal access token; send both")]
    PatRequiredForUrlChange {
        /// The setting key.
        key: String,
    },
    /// No setting has this key.
    #[error("SonarQube has no DevOps Platform setting with key {key}")]
    AlmSettingNotFound {
        /// The setting key.
        key: String,
    },
    /// No project has this key (or the user cannot see it).
    #[error("SonarQube has no project {project} (or the user may not browse it)")]
    ProjectNotFound {
        /// The project key.
        project: String,
    },
    /// A project whose key differs only in case exists.
    #[error("SonarQube already has a project whose key matches {project} ignoring case; choose another key")]
    ProjectKeyCollision {
        /// The key that was asked for.
        project: String,
    },
    /// SonarQube checked the setting against Bitbucket and it failed.
    #[error("SonarQube's check of setting {key} against Bitbucket failed: {reason}")]
    ValidationFailed {
        /// The setting key.
        key: String,
        /// The cause, in our words.
        reason: ValidationFailure,
    },
    /// Community Build binds with the calling user's own Bitbucket PAT, and this user has none.
    #[error(
        "SonarQube's user has no Bitbucket personal access token of its own for DevOps Platform setting \
         {setting}; store one with api/alm_integrations/set_pat (the setting's PAT is not used for binding)"
    )]
    UserPatMissing {
        /// The id of the setting the binding was asked for.
        setting: String,
    },
    /// SonarQube could not read the repository from Bitbucket with the user's stored PAT.
    #[error(
        "SonarQube could not read repository {project}/{slug} from Bitbucket with its user's personal access token; \
         check that the repository exists and that the PAT set with set_pat may read it"
    )]
    RepositoryUnreadable {
        /// The Bitbucket project key.
        project: String,
        /// The repository slug.
        slug: String,
    },
    /// SonarQube refused the request as invalid (400) for a reason this client does not map.
    #[error("SonarQube rejected the request to {endpoint} as invalid{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    InvalidRequest {
        /// The endpoint template.
        endpoint: &'static str,
        /// SonarQube's message, cut short and stripped of control characters and secrets.
        message: Option<String>,
    },
    /// SonarQube (or a proxy in front of it) answered 429.
    #[error("SonarQube is rate limiting the operator; retrying after {}s", retry_after.as_secs())]
    RateLimited {
        /// How long the server asked to wait.
        retry_after: Duration,
    },
    /// The server failed (5xx).
    #[error("SonarQube answered {status} (server error)")]
    Server {
        /// HTTP status.
        status: u16,
    },
    /// The request did not complete.
    #[error("cannot reach SonarQube: {message}")]
    Transport {
        /// What went wrong, without the URL.
        message: String,
        /// The request timed out.
        timeout: bool,
    },
    /// The server is not a SonarQube this client can work with.
    #[error("unsupported server: {reason}")]
    UnsupportedServer {
        /// Why.
        reason: String,
    },
    /// The response could not be understood.
    #[error("unexpected response from SonarQube ({status}) to {endpoint}: {reason}")]
    UnexpectedResponse {
        /// HTTP status.
        status: u16,
        /// The endpoint template.
        endpoint: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// An answer beyond the client's bounds.
    #[error("SonarQube's answer to {endpoint} exceeds the operator's bounds ({bound}); {advice}")]
    ResponseTooLarge {
        /// The endpoint template.
        endpoint: &'static str,
        /// Which bound.
        bound: String,
        /// What to do.
        advice: &'static str,
    },
    /// An argument the operator was given cannot be sent (empty, too long).
    #[error("{field} {problem}")]
    InvalidArgument {
        /// What the argument is, such as `the SonarQube setting key`.
        field: &'static str,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The client could not be built.
    #[error("invalid SonarQube client configuration: {0}")]
    Configuration(String),
}

impl Error {
    /// How to react to this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::NotUp { .. } | Self::RateLimited { .. } | Self::Server { .. } | Self::Transport { .. } => {
                ErrorClass::Transient
            }
            // A garbled answer is most often a proxy or a server in trouble.
            Self::UnexpectedResponse { .. } => ErrorClass::Transient,
            Self::BadToken { .. } => ErrorClass::Credentials,
            Self::Forbidden { .. } => ErrorClass::Permission,
            Self::AlmSettingNotFound { .. } | Self::ProjectNotFound { .. } => ErrorClass::NotFound,
            Self::KeyTaken { .. }
            | Self::PatRequiredForUrlChange { .. }
            | Self::ProjectKeyCollision { .. }
            | Self::ValidationFailed { .. }
            | Self::RepositoryUnreadable { .. }
            | Self::UserPatMissing { .. }
            | Self::InvalidRequest { .. }
            | Self::InvalidArgument { .. }
            | Self::Configuration(_) => ErrorClass::Invalid,
            // Terminal until the edition or version changes: no retry loop.
            Self::EndpointMissing { .. } | Self::EditionLimit { .. } | Self::UnsupportedServer { .. } => {
                ErrorClass::Unsupported
            }
            Self::ResponseTooLarge { .. } => ErrorClass::TooLarge,
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// How long the server asked to wait, for 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// `value`, if it is neither blank nor longer than `max` characters (SonarQube's own limits).
pub(crate) fn checked<'a>(field: &'static str, value: &'a str, max: usize) -> Result<&'a str, Error> {
    if value.trim().is_empty() {
        return Err(Error::InvalidArgument { field, problem: "is empty; set it".into() });
    }
    let length = value.chars().count();
    if length > max {
        return Err(Error::InvalidArgument {
            field,
            problem: format!("is {length} characters long; SonarQube allows at most {max}"),
        });
    }
    Ok(value)
}

/// Longest server message kept in an [`Error::InvalidRequest`].
const MAX_KEPT_MESSAGE: usize = 120;

/// A server message made fit for an error text: every secret the request carried replaced, one
/// printable line, cut short. `None` when nothing readable is left.
pub(crate) fn kept_message(message: &str, secrets: &[&str]) -> Option<String> {
    let mut text = message.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "<redacted>");
    }
    let text: String = text.chars().filter(|c| !crate::bitbucket::is_bidi_control(*c)).collect();
    // A secret this request did not carry (a stored PAT, another token) looks like one.
    let text: Vec<String> = text
        .split(' ')
        .map(|word| if looks_like_secret(word) { "<redacted>".into() } else { word.to_owned() })
        .collect();
    let text = crate::bitbucket::bounded_message(&text.join(" "));
    let text = if text.chars().count() > MAX_KEPT_MESSAGE {
        format!("{}…", text.chars().take(MAX_KEPT_MESSAGE).collect::<String>())
    } else {
        text
    };
    (!text.is_empty()).then_some(text)
}

/// A long run of token characters with letters and digits in it: what tokens and PATs are made
/// of, and what words, keys and URLs are not.
fn looks_like_secret(word: &str) -> bool {
    let word = word.trim_matches(|c: char| matches!(c, '\'' | '"' | '(' | ')' | '[' | ']' | ',' | '.' | ':' | ';'));
    word.len() >= 20
        && word.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '/' | '='))
        && word.chars().any(|c| c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_validation_message_has_its_own_cause_and_others_are_not_echoed() {
        let cases = [
            ("Your global Bitbucket Server configuration is incomplete.", ValidationFailure::Incomplete),
            ("url must start with http:// or https://", ValidationFailure::UrlScheme),
            ("Invalid personal access token", ValidationFailure::InvalidPat),
            ("Error 404. The requested Bitbucket server is unreachable.", ValidationFailure::NotFoundAtUrl),
            ("Unable to contact Bitbucket server", ValidationFailure::Unreachable),
            ("Unexpected response from Bitbucket server", ValidationFailure::UnexpectedAnswer),
            ("Unable to contact Bitbucket server, got an unexpected response", ValidationFailure::UnexpectedAnswer),
            ("<b>token abc123 leaked</b>", ValidationFailure::Other),
        ];
        for (message, cause) in cases {
            assert_eq!(ValidationFailure::from_message(message), cause, "{message}");
            let shown = Error::ValidationFailed { key: "bb".into(), reason: cause }.to_string();
            assert!(!shown.contains("abc123") && !shown.contains("<b>"), "{shown}");
        }
    }

    #[test]
    fn kept_messages_lose_secrets_controls_and_length() {
        assert_eq!(
            kept_message("bad value 's3cret'\n\u{202e}x", &["s3cret"]).as_deref(),
            Some("bad value '<redacted>' x")
        );
        let long = kept_message(&"y".repeat(500), &[]).unwrap_or_default();
        assert_eq!(long.chars().count(), MAX_KEPT_MESSAGE + 1);
        assert_eq!(kept_message(" \n ", &[]), None);
        assert_eq!(
            kept_message("stored 'BBDC-NDU5OTk5OTk5OTk5OkPAT+/=' and squ_0123456789abcdef", &[]).as_deref(),
            Some("stored <redacted> and <redacted>")
        );
        let plain = "The 'key' parameter is missing for https://bitbucket.example.com/context";
        assert_eq!(kept_message(plain, &[]).as_deref(), Some(plain));
    }

    #[test]
    fn terminal_conditions_are_not_retried_and_outages_are() {
        assert!(Error::NotUp { status: "DB_MIGRATION_RUNNING".into() }.is_transient());
        assert!(Error::Server { status: 502 }.is_transient());
        assert_eq!(Error::EditionLimit { platform: "BITBUCKET" }.class(), ErrorClass::Unsupported);
        assert_eq!(Error::EndpointMissing { endpoint: "x" }.class(), ErrorClass::Unsupported);
        assert_eq!(Error::BadToken { expired: true }.class(), ErrorClass::Credentials);
        assert_eq!(
            Error::Forbidden { action: "x".into(), permission: "Administer System" }.class(),
            ErrorClass::Permission
        );
    }
}
