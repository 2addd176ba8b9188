//! The one error type of the Bitbucket client. Each variant is a failure class the operator
//! reacts to differently (retry, wait for a Secret change, report a permission or spec problem).
//! Texts are short, bounded, and never hold a credential or a raw response body.

use std::time::Duration;

/// How the operator should react to an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later (server error, timeout, connection problem, rate limit).
    Transient,
    /// The credential is wrong, revoked or locked: stop using it until the Secret changes.
    Credentials,
    /// The credential works but may not do this: fix permissions in Bitbucket.
    Permission,
    /// The project, repository or object does not exist.
    NotFound,
    /// The request or configuration is wrong: fix the spec.
    Invalid,
    /// The server cannot do what is asked (version, disabled feature, unknown API).
    Unsupported,
    /// The server's answer is beyond the client's bounds (size, pages, items, time): retrying at
    /// once would read the same again, so it waits for the next resync.
    TooLarge,
}

/// A failed call to Bitbucket.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The project does not exist (or is invisible to this user).
    #[error("project {project} does not exist in Bitbucket")]
    ProjectNotFound {
        /// Project key.
        project: String,
    },
    /// The repository does not exist.
    #[error("repository {project}/{slug} does not exist in Bitbucket")]
    RepositoryNotFound {
        /// Project key.
        project: String,
        /// Repository slug.
        slug: String,
    },
    /// Some other object (a webhook by id) does not exist.
    #[error("{what} does not exist in Bitbucket")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// Bitbucket did not accept the credential (wrong, expired or revoked).
    #[error("Bitbucket rejected the credential ({reason}); update the Secret")]
    BadCredentials {
        /// Why the credential is considered bad.
        reason: String,
    },
    /// The credential works but lacks a permission.
    #[error("the Bitbucket user may not {action}; grant it the permission it needs")]
    PermissionDenied {
        /// The refused action, such as `read repository PAY/api`.
        action: String,
    },
    /// Bitbucket locked the user behind a CAPTCHA after failed logins.
    #[error(
        "Bitbucket locked the user behind a CAPTCHA after failed logins; an admin must clear it, and the Secret must hold the right password"
    )]
    CaptchaRequired,
    /// Basic authentication is turned off on the server.
    #[error("Bitbucket has basic authentication turned off; use an HTTP access token")]
    BasicAuthDisabled,
    /// Bitbucket's rate limit answered 429.
    #[error("Bitbucket is rate limiting this user; retrying after {}s", retry_after.as_secs())]
    RateLimited {
        /// How long the server asked to wait.
        retry_after: Duration,
    },
    /// Bitbucket refused the request as invalid (400).
    #[error("Bitbucket rejected the request as invalid{}", field.as_deref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    InvalidRequest {
        /// The field Bitbucket named, if it looks like a field name.
        field: Option<String>,
    },
    /// The request conflicts with the server's state (409).
    #[error("Bitbucket reported a conflict{}", exception.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Conflict {
        /// The short name of Bitbucket's exception, if it looks like one.
        exception: Option<String>,
    },
    /// The server failed (5xx).
    #[error("Bitbucket answered {status} (server error)")]
    Server {
        /// HTTP status.
        status: u16,
    },
    /// The server answers but is not running (starting, stopping, in maintenance).
    #[error("Bitbucket is not running (its state is {state})")]
    NotRunning {
        /// The state `/status` reported.
        state: String,
    },
    /// The request did not complete: connection refused, reset, TLS failure or timeout.
    #[error("cannot reach Bitbucket: {message}")]
    Transport {
        /// What went wrong, without URLs that could hold secrets.
        message: String,
        /// The request timed out.
        timeout: bool,
    },
    /// The server is not a Bitbucket Data Center this client can work with.
    #[error("unsupported server: {reason}")]
    UnsupportedServer {
        /// Why.
        reason: String,
    },
    /// The response could not be understood.
    #[error("unexpected response from Bitbucket ({status}) to {endpoint}: {reason}")]
    UnexpectedResponse {
        /// HTTP status.
        status: u16,
        /// The endpoint template.
        endpoint: String,
        /// What was wrong with it.
        reason: String,
    },
    /// An answer beyond the client's bounds: one body too large, or a paged list with too many
    /// pages, items or bytes, or one that took too long in all.
    #[error("Bitbucket's answer to {endpoint} exceeds the operator's bounds ({bound}); {advice}")]
    ResponseTooLarge {
        /// The endpoint template.
        endpoint: String,
        /// Which bound, such as `more than 4 MiB in one response`.
        bound: String,
        /// What to do.
        advice: &'static str,
    },
    /// An argument the operator was given cannot be sent (empty, too long, too many).
    #[error("{field} {problem}")]
    InvalidArgument {
        /// The field, as the API names it, such as `buildParentKeys`.
        field: &'static str,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The client could not be built from its configuration.
    #[error("invalid client configuration: {0}")]
    Configuration(String),
}

impl Error {
    /// How to react to this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::RateLimited { .. } | Self::Server { .. } | Self::Transport { .. } | Self::NotRunning { .. } => {
                ErrorClass::Transient
            }
            Self::BadCredentials { .. } | Self::CaptchaRequired | Self::BasicAuthDisabled => ErrorClass::Credentials,
            Self::PermissionDenied { .. } => ErrorClass::Permission,
            Self::ProjectNotFound { .. } | Self::RepositoryNotFound { .. } | Self::NotFound { .. } => {
                ErrorClass::NotFound
            }
            Self::InvalidRequest { .. }
            | Self::Conflict { .. }
            | Self::InvalidArgument { .. }
            | Self::Configuration(_) => ErrorClass::Invalid,
            Self::UnsupportedServer { .. } => ErrorClass::Unsupported,
            Self::ResponseTooLarge { .. } => ErrorClass::TooLarge,
            // A garbled answer is most often a proxy or a server in trouble: retry.
            Self::UnexpectedResponse { .. } => ErrorClass::Transient,
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

/// `text` if it looks like an identifier (a field or exception name), so that nothing the server
/// chose to echo back (a URL with a token in it, say) reaches an error text.
pub(crate) fn identifier(text: Option<&str>) -> Option<String> {
    let text = text?.trim();
    let plausible = !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']'));
    plausible.then(|| text.to_owned())
}

/// Longest server message kept in an error.
const MAX_MESSAGE: usize = 200;

/// A server-provided message made safe for an error text: one line, printable, bounded.
pub(crate) fn bounded_message(message: &str) -> String {
    let cleaned: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() > MAX_MESSAGE {
        format!("{}…", cleaned.chars().take(MAX_MESSAGE).collect::<String>())
    } else {
        cleaned.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_are_cut_and_flattened() {
        let long = "x".repeat(1000);
        assert_eq!(bounded_message(&long).chars().count(), MAX_MESSAGE + 1);
        assert_eq!(bounded_message(" a\nb\tc "), "a b c");
    }

    #[test]
    fn only_identifiers_pass() {
        assert_eq!(identifier(Some("url")), Some("url".into()));
        assert_eq!(identifier(Some("webhooks[0].url")), Some("webhooks[0].url".into()));
        assert_eq!(identifier(Some("https://x/?token=abc")), None);
        assert_eq!(identifier(Some("two words")), None);
        assert_eq!(identifier(None), None);
    }

    #[test]
    fn classes_drive_the_reaction() {
        assert!(Error::Server { status: 503 }.is_transient());
        assert!(Error::RateLimited { retry_after: Duration::from_secs(5) }.is_transient());
        assert_eq!(Error::CaptchaRequired.class(), ErrorClass::Credentials);
        assert_eq!(Error::PermissionDenied { action: "x".into() }.class(), ErrorClass::Permission);
        assert_eq!(Error::ProjectNotFound { project: "P".into() }.class(), ErrorClass::NotFound);
    }
}
