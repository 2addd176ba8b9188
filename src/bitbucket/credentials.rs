//! Credentials, in types whose `Debug` and `Display` never show the secret.

use std::fmt;

/// A secret string: a token, a password or a webhook secret. Formatting it prints `<redacted>`;
/// only [`Secret::expose`] gives the value, at the one place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the header or body that carries it. Never log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the client logs in.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// An HTTP access token, sent as `Authorization: Bearer`.
    Token(Secret),
    /// A username and password (or token), sent as HTTP Basic on every request.
    Basic {
        /// The Bitbucket username.
        username: String,
        /// The password or token.
        password: Secret,
    },
}

impl Credentials {
    /// The `Authorization` header value.
    pub(crate) fn header_value(&self) -> String {
        use base64::Engine as _;
        match self {
            Self::Token(token) => format!("Bearer {}", token.expose()),
            Self::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose());
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
            }
        }
    }

    /// `token` or `basic`, for messages.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::Basic { .. } => "basic",
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Credentials::Token(<redacted>)"),
            Self::Basic { username, .. } => {
                write!(f, "Credentials::Basic {{ username: {username:?}, password: <redacted> }}")
            }
        }
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("an HTTP access token"),
            Self::Basic { username, .. } => write!(f, "the password of {username}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_secret() {
        let token = Credentials::Token(Secret::new("BBDC-very-secret"));
        let basic = Credentials::Basic { username: "svc".into(), password: Secret::new("hunter2") };
        for text in [
            format!("{token:?}"),
            format!("{token}"),
            format!("{basic:?}"),
            format!("{basic}"),
            format!("{:?}", Secret::new("x1")),
        ] {
            assert!(!text.contains("very-secret") && !text.contains("hunter2") && !text.contains("x1"), "{text}");
        }
        assert!(format!("{basic:?}").contains("svc"), "the username is not a secret and helps debugging");
    }

    #[test]
    fn header_values() {
        assert_eq!(Credentials::Token(Secret::new("abc")).header_value(), "Bearer abc");
        let basic = Credentials::Basic { username: "svc".into(), password: Secret::new("pw") };
        assert_eq!(basic.header_value(), "Basic c3ZjOnB3");
    }
}
