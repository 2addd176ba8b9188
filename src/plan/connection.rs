//! From a configuration's spec and the Secrets it names to the settings of a Bitbucket client.
//! Pure: the caller looks the Secrets up (in the cluster or in manifest files) and this module
//! enforces the consent rule (the credential label), reads the keys and checks their contents.

use std::{
    collections::BTreeMap,
    hash::{DefaultHasher, Hash, Hasher},
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret as KubeSecret;

use crate::{
    api::{
        BitbucketConfigurationSpec,
        refs::{CREDENTIAL_LABEL, CREDENTIAL_LABEL_VALUE},
    },
    bitbucket::{ClientConfig, Credentials, RateLimit, Secret},
};

use super::reasons;

/// What a Secret holds, as far as the operator cares: its labels and its decoded data
/// (`stringData` merged over `data`, as the API server would store it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData {
    /// The Secret's labels.
    pub labels: BTreeMap<String, String>,
    /// Decoded values by key.
    pub data: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretData")
            .field("labels", &self.labels)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretData {
    /// The data of a Kubernetes Secret.
    pub fn from_secret(secret: &KubeSecret) -> Self {
        let mut data: BTreeMap<String, Vec<u8>> =
            secret.data.iter().flatten().map(|(key, value)| (key.clone(), value.0.clone())).collect();
        for (key, value) in secret.string_data.iter().flatten() {
            data.insert(key.clone(), value.as_bytes().to_vec());
        }
        Self { labels: secret.metadata.labels.clone().unwrap_or_default(), data }
    }

    /// Whether the Secret carries the credential label, the owner's consent to its use.
    pub fn is_labelled(&self) -> bool {
        self.labels.get(CREDENTIAL_LABEL).is_some_and(|v| v == CREDENTIAL_LABEL_VALUE)
    }
}

/// Why a configuration cannot be turned into client settings. Texts name the Secret and key and
/// say what to do; they never hold a Secret's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The Secret does not exist.
    #[error(
        "Secret {name} does not exist in namespace {namespace}; create it (with the label {CREDENTIAL_LABEL}: \"true\") or fix {field}"
    )]
    SecretNotFound {
        /// Secret name.
        name: String,
        /// Where it was looked for.
        namespace: String,
        /// The spec field that names it.
        field: &'static str,
    },
    /// The Secret lacks the credential label.
    #[error("Secret {name} is not labelled {CREDENTIAL_LABEL}: \"true\"; label it to allow the operator to use it")]
    SecretNotLabelled {
        /// Secret name.
        name: String,
    },
    /// The key is not in the Secret.
    #[error("Secret {name} has no key {key}; add it or fix {field}")]
    SecretKeyMissing {
        /// Secret name.
        name: String,
        /// The missing key.
        key: String,
        /// The spec field that names the key.
        field: &'static str,
    },
    /// The value is empty, not UTF-8, spans lines, or is not a CA bundle.
    #[error("Secret {name} key {key} {problem}")]
    InvalidSecretValue {
        /// Secret name.
        name: String,
        /// The key.
        key: String,
        /// What is wrong, without the value.
        problem: &'static str,
    },
}

impl ConnectionError {
    /// The condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretNotFound { .. } => reasons::SECRET_NOT_FOUND,
            Self::SecretNotLabelled { .. } => reasons::SECRET_NOT_LABELLED,
            Self::SecretKeyMissing { .. } => reasons::SECRET_KEY_MISSING,
            Self::InvalidSecretValue { .. } => reasons::INVALID_SECRET,
        }
    }
}

/// The names of the Secrets a configuration reads (credential and CA), for watches.
pub fn referenced_secrets(spec: &BitbucketConfigurationSpec) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(token) = &spec.auth.token {
        names.push(token.secret_ref.name.clone());
    }
    if let Some(basic) = &spec.auth.basic {
        names.push(basic.secret_ref.name.clone());
    }
    if let Some(ca) = spec.tls.as_ref().and_then(|tls| tls.ca_secret_ref.as_ref()) {
        names.push(ca.name.clone());
    }
    // The token SonarQube keeps: a new version is pushed to SonarQube.
    if let Some(sonarqube) = &spec.sonarqube {
        names.push(sonarqube.token_secret_ref.name.clone());
    }
    names.sort();
    names.dedup();
    names
}

/// The client settings of a configuration. `namespace` is where the Secrets are looked up
/// (for messages); `secret` finds one by name in it.
pub fn client_config(
    spec: &BitbucketConfigurationSpec,
    namespace: &str,
    secret: impl Fn(&str) -> Option<SecretData>,
) -> Result<ClientConfig, ConnectionError> {
    let credentials = if let Some(token) = &spec.auth.token {
        let reference = &token.secret_ref;
        let data = labelled(&secret, &reference.name, namespace, "auth.token.secretRef.name")?;
        Credentials::Token(Secret::new(single_line(
            &data,
            &reference.name,
            &reference.key,
            "auth.token.secretRef.key",
        )?))
    } else if let Some(basic) = &spec.auth.basic {
        let reference = &basic.secret_ref;
        let data = labelled(&secret, &reference.name, namespace, "auth.basic.secretRef.name")?;
        let username =
            single_line(&data, &reference.name, &reference.username_key, "auth.basic.secretRef.usernameKey")?;
        let password =
            single_line(&data, &reference.name, &reference.password_key, "auth.basic.secretRef.passwordKey")?;
        Credentials::Basic { username, password: Secret::new(password) }
    } else {
        // The schema makes this unreachable on a real server; manifests read by the CLI are
        // validated against the same schema first.
        return Err(ConnectionError::SecretNotFound {
            name: String::new(),
            namespace: namespace.to_owned(),
            field: "auth.token or auth.basic",
        });
    };
    let mut config = ClientConfig::new(spec.url.trim_end_matches('/'), credentials);
    if let Some(tls) = &spec.tls {
        config.insecure_skip_verify = tls.insecure_skip_verify;
        config.ca_pem = ca_bundle(tls, namespace, &secret)?;
    }
    config.request_timeout = Duration::from(spec.request_timeout);
    config.connect_timeout = config.request_timeout.min(Duration::from_secs(10));
    config.rate_limit = RateLimit {
        requests_per_second: u32::try_from(spec.rate_limit.requests_per_second).unwrap_or(1).max(1),
        burst: u32::try_from(spec.rate_limit.burst).unwrap_or(1).max(1),
    };
    Ok(config)
}

/// The extra CA bundle of a TLS spec, checked to hold a PEM certificate. A CA is not a
/// credential: the label is not required for its Secret.
pub fn ca_bundle(
    tls: &crate::api::configuration::TlsSpec,
    namespace: &str,
    secret: &impl Fn(&str) -> Option<SecretData>,
) -> Result<Option<Vec<u8>>, ConnectionError> {
    let Some(reference) = &tls.ca_secret_ref else { return Ok(None) };
    let data = secret(&reference.name).ok_or_else(|| ConnectionError::SecretNotFound {
        name: reference.name.clone(),
        namespace: namespace.to_owned(),
        field: "tls.caSecretRef.name",
    })?;
    let pem = data.data.get(&reference.key).ok_or_else(|| ConnectionError::SecretKeyMissing {
        name: reference.name.clone(),
        key: reference.key.clone(),
        field: "tls.caSecretRef.key",
    })?;
    if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(ConnectionError::InvalidSecretValue {
            name: reference.name.clone(),
            key: reference.key.clone(),
            problem: "holds no PEM certificate; put the CA bundle (-----BEGIN CERTIFICATE-----) there",
        });
    }
    Ok(Some(pem.clone()))
}

/// A fingerprint of everything that shapes a client (URL, credential, TLS, limits), so that a
/// change to the spec or to a Secret's value gives a new client. Never printed.
pub fn fingerprint(config: &ClientConfig) -> u64 {
    client_fingerprint(&ClientShape {
        base_url: &config.base_url,
        credential: &config.credentials.header_value(),
        ca_pem: config.ca_pem.as_deref(),
        insecure_skip_verify: config.insecure_skip_verify,
        request_timeout: config.request_timeout,
        connect_timeout: config.connect_timeout,
        rate_limit: &config.rate_limit,
    })
}

/// What shapes an HTTP client of either server, for [`client_fingerprint`].
pub(crate) struct ClientShape<'a> {
    pub base_url: &'a str,
    /// The credential as sent (hashed, never printed).
    pub credential: &'a str,
    pub ca_pem: Option<&'a [u8]>,
    pub insecure_skip_verify: bool,
    pub request_timeout: std::time::Duration,
    pub connect_timeout: std::time::Duration,
    pub rate_limit: &'a crate::bitbucket::RateLimit,
}

/// The fingerprint of a client's shape: the Bitbucket and the SonarQube clients are rebuilt when
/// theirs changes.
pub(crate) fn client_fingerprint(shape: &ClientShape<'_>) -> u64 {
    let mut hasher = DefaultHasher::new();
    shape.base_url.hash(&mut hasher);
    shape.credential.hash(&mut hasher);
    shape.ca_pem.hash(&mut hasher);
    shape.insecure_skip_verify.hash(&mut hasher);
    shape.request_timeout.hash(&mut hasher);
    shape.connect_timeout.hash(&mut hasher);
    shape.rate_limit.requests_per_second.hash(&mut hasher);
    shape.rate_limit.burst.hash(&mut hasher);
    hasher.finish()
}

/// A fingerprint of where a credential goes and what it is: a credential Bitbucket rejected is
/// not sent there again until this changes. Never printed.
pub fn credential_fingerprint(config: &ClientConfig) -> u64 {
    let mut hasher = DefaultHasher::new();
    config.base_url.hash(&mut hasher);
    config.credentials.header_value().hash(&mut hasher);
    hasher.finish()
}

pub(crate) fn labelled(
    secret: &impl Fn(&str) -> Option<SecretData>,
    name: &str,
    namespace: &str,
    field: &'static str,
) -> Result<SecretData, ConnectionError> {
    let data = secret(name).ok_or_else(|| ConnectionError::SecretNotFound {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        field,
    })?;
    if !data.is_labelled() {
        return Err(ConnectionError::SecretNotLabelled { name: name.to_owned() });
    }
    Ok(data)
}

/// A one-line, non-empty UTF-8 value; a single trailing newline (as `echo` leaves it) is dropped.
pub fn single_line(data: &SecretData, name: &str, key: &str, field: &'static str) -> Result<String, ConnectionError> {
    let raw = data.data.get(key).ok_or_else(|| ConnectionError::SecretKeyMissing {
        name: name.to_owned(),
        key: key.to_owned(),
        field,
    })?;
    let invalid = |problem| ConnectionError::InvalidSecretValue { name: name.to_owned(), key: key.to_owned(), problem };
    let text = std::str::from_utf8(raw).map_err(|_| invalid("is not UTF-8 text"))?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(invalid("is empty"));
    }
    if text.contains(['\n', '\r']) {
        return Err(invalid("spans several lines; it must hold one value"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BitbucketConfiguration, refs::CREDENTIAL_LABEL};

    fn spec(yaml: &str) -> BitbucketConfigurationSpec {
        let object: BitbucketConfiguration = serde_saphyr::from_str(&format!(
            "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: BitbucketConfiguration\nmetadata: {{name: c}}\nspec:\n{yaml}"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        object.spec
    }

    fn secret(labelled: bool, pairs: &[(&str, &str)]) -> SecretData {
        let mut data = SecretData::default();
        if labelled {
            data.labels.insert(CREDENTIAL_LABEL.into(), "true".into());
        }
        for (k, v) in pairs {
            data.data.insert((*k).into(), v.as_bytes().to_vec());
        }
        data
    }

    const TOKEN: &str = "  url: https://bb.example.com/\n  auth: {token: {secretRef: {name: t}}}\n";

    #[test]
    fn a_labelled_token_secret_gives_bearer_credentials() {
        let config = client_config(&spec(TOKEN), "ns", |n| (n == "t").then(|| secret(true, &[("token", "abc\n")])))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.credentials, Credentials::Token(Secret::new("abc")));
        assert_eq!(config.base_url, "https://bb.example.com");
        assert_eq!(config.rate_limit, RateLimit { requests_per_second: 5, burst: 60 });
        assert_eq!(config.request_timeout, Duration::from_secs(30));
    }

    #[test]
    fn every_secret_problem_names_the_secret_and_never_the_value() {
        let cases: Vec<(Option<SecretData>, &str)> = vec![
            (None, reasons::SECRET_NOT_FOUND),
            (Some(secret(false, &[("token", "s3cr3t-value")])), reasons::SECRET_NOT_LABELLED),
            (Some(secret(true, &[("other", "s3cr3t-value")])), reasons::SECRET_KEY_MISSING),
            (Some(secret(true, &[("token", "")])), reasons::INVALID_SECRET),
            (Some(secret(true, &[("token", "s3cr3t-value\nsecond")])), reasons::INVALID_SECRET),
        ];
        for (data, reason) in cases {
            let error = client_config(&spec(TOKEN), "team-a", |_| data.clone()).err();
            let error = error.unwrap_or_else(|| panic!("{reason} accepted"));
            assert_eq!(error.reason(), reason);
            let text = error.to_string();
            assert!(text.contains("Secret t"), "{text}");
            assert!(!text.contains("s3cr3t"), "{text}");
        }
    }

    #[test]
    fn basic_credentials_and_a_ca_bundle() {
        let spec = spec(
            "  url: https://bb.example.com\n  auth: {basic: {secretRef: {name: b}}}\n  tls: {caSecretRef: {name: ca}}\n  rateLimit: {requestsPerSecond: 2, burst: 3}\n  requestTimeout: 5s\n",
        );
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let config = client_config(&spec, "ns", |n| match n {
            "b" => Some(secret(true, &[("username", "svc"), ("password", "pw")])),
            "ca" => Some(secret(false, &[("ca.crt", pem)])),
            _ => None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.credentials, Credentials::Basic { username: "svc".into(), password: Secret::new("pw") });
        assert_eq!(config.ca_pem.as_deref(), Some(pem.as_bytes()));
        assert_eq!(config.rate_limit, RateLimit { requests_per_second: 2, burst: 3 });
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        let not_pem = client_config(&spec, "ns", |n| match n {
            "b" => Some(secret(true, &[("username", "svc"), ("password", "pw")])),
            _ => Some(secret(false, &[("ca.crt", "hello")])),
        });
        assert_eq!(not_pem.err().map(|e| e.reason()), Some(reasons::INVALID_SECRET));
    }

    #[test]
    fn a_rotated_secret_changes_the_fingerprint() {
        let with = |token: &str| {
            let data = secret(true, &[("token", token)]);
            client_config(&spec(TOKEN), "ns", |_| Some(data.clone())).map(|c| fingerprint(&c)).ok()
        };
        assert_eq!(with("one"), with("one"));
        assert_ne!(with("one"), with("two"));
    }

    #[test]
    fn string_data_wins_over_data() {
        let secret = KubeSecret {
            data: Some([("token".to_owned(), k8s_openapi::ByteString(b"old".to_vec()))].into()),
            string_data: Some([("token".to_owned(), "new".to_owned())].into()),
            ..Default::default()
        };
        let data = SecretData::from_secret(&secret);
        assert_eq!(data.data.get("token").map(Vec::as_slice), Some(&b"new"[..]));
        assert!(!format!("{data:?}").contains("new"));
    }
}
