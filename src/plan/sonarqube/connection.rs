//! From a `SonarQubeConfiguration` and the Secrets it names to a SonarQube client's settings,
//! and from what the connection check found to the configuration's status and outcome. The
//! consent rule (the credential label) and the Secret checks are the Bitbucket side's.

use std::time::Duration;

use crate::{
    api::sonarqube::{SonarQubeConfigurationSpec, SonarQubeServerInfo},
    bitbucket::{RateLimit, Secret},
    plan::{
        connection::{ClientShape, ConnectionError, SecretData, ca_bundle, client_fingerprint, labelled, single_line},
        reasons,
        status::Outcome,
    },
    sonarqube::{BindingSupport, ClientConfig, Error, ErrorClass, ServerInfo, VersionScheme},
};

/// The names of the Secrets a SonarQube configuration reads (token and CA), for watches.
pub fn referenced_secrets(spec: &SonarQubeConfigurationSpec) -> Vec<String> {
    let mut names = vec![spec.auth.token.secret_ref.name.clone()];
    if let Some(ca) = spec.tls.as_ref().and_then(|tls| tls.ca_secret_ref.as_ref()) {
        names.push(ca.name.clone());
    }
    names.sort();
    names.dedup();
    names
}

/// The client settings of a SonarQube configuration; `namespace` is where its Secrets are.
pub fn client_config(
    spec: &SonarQubeConfigurationSpec,
    namespace: &str,
    secret: impl Fn(&str) -> Option<SecretData>,
) -> Result<ClientConfig, ConnectionError> {
    let reference = &spec.auth.token.secret_ref;
    let data = labelled(&secret, &reference.name, namespace, "auth.token.secretRef.name")?;
    let token = single_line(&data, &reference.name, &reference.key, "auth.token.secretRef.key")?;
    let mut config = ClientConfig::new(spec.url.trim_end_matches('/'), Secret::new(token));
    if let Some(tls) = &spec.tls {
        config.insecure_skip_verify = tls.insecure_skip_verify;
        config.ca_pem = ca_bundle(tls, namespace, &secret)?;
    }
    let timeout = Duration::from(spec.request_timeout);
    config.request_timeout = timeout;
    config.connect_timeout = timeout.min(Duration::from_secs(10));
    config.rate_limit = RateLimit {
        requests_per_second: u32::try_from(spec.rate_limit.requests_per_second).unwrap_or(1).max(1),
        burst: u32::try_from(spec.rate_limit.burst).unwrap_or(1).max(1),
    };
    Ok(config)
}

/// A fingerprint of everything that shapes a client, so that a change to the spec or to a
/// Secret's value gives a new one. Never printed.
pub fn fingerprint(config: &ClientConfig) -> u64 {
    client_fingerprint(&ClientShape {
        base_url: &config.base_url,
        credential: config.token.expose(),
        ca_pem: config.ca_pem.as_deref(),
        insecure_skip_verify: config.insecure_skip_verify,
        request_timeout: config.request_timeout,
        connect_timeout: config.connect_timeout,
        rate_limit: &config.rate_limit,
    })
}

/// What the status says about a server the check reached.
pub fn server_info(info: &ServerInfo) -> SonarQubeServerInfo {
    SonarQubeServerInfo {
        version: info.version.to_string(),
        version_scheme: match info.version.scheme {
            VersionScheme::Classic => "Classic",
            VersionScheme::CommunityBuild => "CommunityBuild",
            VersionScheme::Server => "Server",
        }
        .to_owned(),
        edition: Some(info.edition.as_str().to_owned()),
    }
}

/// The names `status.capabilities` of a SonarQubeConfiguration lists, which the binding and
/// report rounds read back.
pub mod capability {
    /// DevOps Platform settings.
    pub const ALM_SETTINGS: &str = "almSettings";
    /// Binding with `set_bitbucket_binding` (commercial editions).
    pub const PROJECT_BINDINGS: &str = "projectBindings";
    /// Binding through v2 `bound-projects` with a per-user token (Community Build).
    pub const BOUND_PROJECTS: &str = "boundProjects";
    /// Monorepo bindings.
    pub const MONOREPO: &str = "monorepo";
    /// More than one Bitbucket setting.
    pub const MULTIPLE_BITBUCKET_SETTINGS: &str = "multipleBitbucketSettings";
    /// SonarQube posts the Code Insights report of a pull request.
    pub const PULL_REQUEST_DECORATION: &str = "pullRequestDecoration";
}

/// What a SonarQubeConfiguration's status says the server can do (see [`capability`]).
pub fn has_capability(status: &crate::api::sonarqube::SonarQubeConfigurationStatus, name: &str) -> bool {
    status.capabilities.iter().any(|c| c == name)
}

/// The capability names of the status (see `SonarQubeConfigurationStatus.capabilities`).
pub fn capability_names(info: &ServerInfo) -> Vec<String> {
    let capabilities = &info.capabilities;
    let mut names = Vec::new();
    if capabilities.alm_settings {
        names.push(capability::ALM_SETTINGS);
    }
    match capabilities.bindings {
        BindingSupport::SetBitbucketBinding => names.push(capability::PROJECT_BINDINGS),
        BindingSupport::BoundProjects => names.push(capability::BOUND_PROJECTS),
        BindingSupport::None => {}
    }
    if capabilities.monorepo {
        names.push(capability::MONOREPO);
    }
    if capabilities.several_bitbucket_settings {
        names.push(capability::MULTIPLE_BITBUCKET_SETTINGS);
    }
    if capabilities.pull_request_decoration {
        names.push(capability::PULL_REQUEST_DECORATION);
    }
    names.into_iter().map(str::to_owned).collect()
}

/// The outcome of a check that reached the server and proved the login.
pub fn connected(info: &ServerInfo) -> Outcome {
    let user = info.user.login.as_deref().unwrap_or("its user");
    let mut message = format!("connected to SonarQube {} ({} edition) as {user}", info.version, info.edition.as_str());
    if !info.capabilities.pull_request_decoration {
        message.push_str(
            "; this edition does not analyse pull requests, so it posts no Code Insights report that a RequiredReport could require",
        );
    }
    Outcome::ready(reasons::CONNECTED, message)
}

/// The outcome of a failed SonarQube call: transient failures are retried (`Reconciling`),
/// anything else waits for a change (`Stalled`).
pub fn outcome_of(error: &Error) -> Outcome {
    let reason = match error {
        Error::BadToken { .. } => reasons::BAD_CREDENTIALS,
        Error::Forbidden { .. } => reasons::PERMISSION_DENIED,
        Error::EndpointMissing { .. } | Error::UnsupportedServer { .. } => reasons::UNSUPPORTED_SERVER,
        Error::EditionLimit { .. } => reasons::EDITION_LIMIT,
        Error::KeyTaken { .. } => reasons::ALM_SETTING_KEY_TAKEN,
        Error::ValidationFailed { .. } => reasons::VALIDATION_FAILED,
        Error::ResponseTooLarge { .. } => reasons::RESPONSE_TOO_LARGE,
        Error::InvalidArgument { .. } | Error::Configuration(_) => reasons::INVALID_CONFIGURATION,
        Error::RateLimited { .. } => reasons::RATE_LIMITED,
        _ if error.class() == ErrorClass::Transient => reasons::UNREACHABLE,
        _ => reasons::REJECTED,
    };
    let message = error.to_string();
    if error.is_transient() { Outcome::reconciling(reason, message) } else { Outcome::stalled(reason, message) }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        api::refs::{CREDENTIAL_LABEL, CREDENTIAL_LABEL_VALUE},
        plan::status::Phase,
    };

    fn spec() -> SonarQubeConfigurationSpec {
        serde_json::from_value(serde_json::json!({
            "url": "https://sonarqube.example.com/",
            "auth": {"token": {"secretRef": {"name": "sonar-token"}}},
        }))
        .unwrap()
    }

    fn secret(labelled: bool, value: &str) -> SecretData {
        let labels = if labelled {
            BTreeMap::from([(CREDENTIAL_LABEL.to_owned(), CREDENTIAL_LABEL_VALUE.to_owned())])
        } else {
            BTreeMap::new()
        };
        SecretData { labels, data: BTreeMap::from([("token".to_owned(), value.as_bytes().to_vec())]) }
    }

    #[test]
    fn the_token_comes_from_a_labelled_secret_only() {
        let config = client_config(&spec(), "team-a", |_| Some(secret(true, "squ_abc\n"))).unwrap();
        assert_eq!(config.token.expose(), "squ_abc");
        assert_eq!(config.base_url, "https://sonarqube.example.com");
        let refused = client_config(&spec(), "team-a", |_| Some(secret(false, "squ_abc"))).unwrap_err();
        assert!(matches!(refused, ConnectionError::SecretNotLabelled { .. }), "{refused}");
        let missing = client_config(&spec(), "team-a", |_| None).unwrap_err();
        assert!(missing.to_string().contains("auth.token.secretRef.name"), "{missing}");
    }

    #[test]
    fn a_new_token_is_a_new_client() {
        let a = client_config(&spec(), "ns", |_| Some(secret(true, "one"))).unwrap();
        let b = client_config(&spec(), "ns", |_| Some(secret(true, "two"))).unwrap();
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
    }

    #[test]
    fn errors_stall_or_retry_as_their_class_says_and_never_carry_the_token() {
        let bad = outcome_of(&Error::BadToken { expired: true });
        assert_eq!((bad.phase, bad.reason), (Phase::Stalled, reasons::BAD_CREDENTIALS));
        let down = outcome_of(&Error::NotUp { status: "STARTING".into() });
        assert_eq!(down.phase, Phase::Reconciling);
        let cap = outcome_of(&Error::EditionLimit { platform: "BITBUCKET" });
        assert_eq!((cap.phase, cap.reason), (Phase::Stalled, reasons::EDITION_LIMIT));
    }
}
