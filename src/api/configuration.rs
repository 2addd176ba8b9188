//! `BitbucketConfiguration`: one Bitbucket Data Center instance and how to log in to it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema, core::Duration};
use serde::{Deserialize, Serialize};

use super::refs::{BasicSecretRef, CaSecretRef, TokenSecretRef};

/// Desired state of a `BitbucketConfiguration`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "bitbucket.integrations.dev",
    version = "v1alpha1",
    kind = "BitbucketConfiguration",
    namespaced,
    status = "ConfigurationStatus",
    shortname = "bbc",
    category = "bitbucket",
    doc = "A Bitbucket Data Center instance and the credential to log in with. The operator proves \
           the login works and reports the server's version and the identity it acts as.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.server.version"),
    printcolumn(name = "User", type_ = "string", json_path = ".status.authenticatedAs"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "self.url.startsWith('https://') || (has(self.allowInsecureHttp) && self.allowInsecureHttp)"
).message(
    "url must start with https://; to use plain http (the credential then crosses the network \
     unencrypted) set allowInsecureHttp: true"
).field_path(".url"))]
pub struct BitbucketConfigurationSpec {
    /// Base URL of the Bitbucket instance, including any context path, for example
    /// `https://bitbucket.example.com` or `https://example.com/bitbucket`. Must be https unless
    /// `allowInsecureHttp` is true. No credentials, query or fragment.
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^https?://[^/?#@\\\\s]+(/[^?#@\\\\s]*)?$')"
    ).message(
        "url must be an absolute http(s) URL such as https://bitbucket.example.com, without \
         user name, password, query or fragment"
    ))]
    #[x_kube(validation = kube::core::Rule::new(
        "!self.matches('[\\\\\\\\\\\\p{Cc}\\\\x{061C}\\\\x{200E}\\\\x{200F}\\\\x{202A}-\\\\x{202E}\\\\x{2066}-\\\\x{2069}]')"
    ).message(
        "url must not hold a backslash, a control character or a bidirectional-text character: \
         they can hide which host the URL names"
    ))]
    pub url: String,

    /// Allow a plain `http://` URL. Only for test instances: the credential is sent unencrypted.
    #[serde(default)]
    pub allow_insecure_http: bool,

    /// How the operator logs in. Exactly one of `token` (preferred) or `basic`.
    pub auth: AuthSpec,

    /// TLS settings for https URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// The operator's own request budget for this instance, shared by every resource that uses
    /// it. The defaults match Bitbucket Data Center's default per-user rate limit.
    #[serde(default)]
    pub rate_limit: RateLimitSpec,

    /// How often resources using this instance re-check Bitbucket for drift, as a duration
    /// such as `10m` or `1h`. Between 30s and 24h.
    #[serde(default = "default_resync_interval")]
    #[schemars(length(min = 1, max = 32), extend("default" = "10m"))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') && duration(self) >= duration('30s') && duration(self) <= duration('24h')"
    ).message("resyncInterval must be a duration between 30s and 24h, such as 10m or 1h30m"))]
    pub resync_interval: Duration,

    /// How long one request to Bitbucket may take before it is abandoned and retried, as a
    /// duration such as `30s`. Between 1s and 5m.
    #[serde(default = "default_request_timeout")]
    #[schemars(length(min = 1, max = 32), extend("default" = "30s"))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('5m')"
    ).message("requestTimeout must be a duration between 1s and 5m, such as 30s"))]
    pub request_timeout: Duration,

    /// Keep SonarQube's integration with this Bitbucket (its "Bitbucket configuration record",
    /// a DevOps Platform setting) in the named `SonarQubeConfiguration`'s SonarQube. Removing
    /// the block stops keeping the setting and leaves it in SonarQube with its project bindings
    /// (deleting this resource later does not touch it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sonarqube: Option<super::sonarqube::SonarQubeIntegration>,
}

fn default_resync_interval() -> Duration {
    std::time::Duration::from_secs(600).into()
}

fn default_request_timeout() -> Duration {
    std::time::Duration::from_secs(30).into()
}

/// How the operator logs in to Bitbucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.token) != has(self.basic)")
    .message("auth needs exactly one of token or basic"))]
pub struct AuthSpec {
    /// An HTTP access token (personal, project or repository), sent as `Authorization: Bearer`.
    /// Preferred: a bad token cannot lock a user account behind Bitbucket's CAPTCHA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenAuth>,
    /// A username and password (or a token used as password), sent as HTTP Basic. For old
    /// servers and service accounts; Bitbucket 10 disables it by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
}

/// Bearer-token login.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenAuth {
    /// The Secret key that holds the token (key defaults to `token`).
    pub secret_ref: TokenSecretRef,
}

/// HTTP Basic login.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The Secret keys that hold the username and password (keys default to `username` and
    /// `password`).
    pub secret_ref: BasicSecretRef,
}

/// TLS settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.caSecretRef) && has(self.insecureSkipVerify) && self.insecureSkipVerify)")
    .message("tls.caSecretRef and tls.insecureSkipVerify cannot be combined: trust a CA, or skip verification, not both"))]
pub struct TlsSpec {
    /// A Secret holding the PEM certificate authorities to trust in addition to the system
    /// roots, for servers with a private CA (key defaults to `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<CaSecretRef>,
    /// Do not verify the server's certificate. Only for test instances: anyone on the path can
    /// then read the credential.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A token bucket: `burst` requests at once, refilled at `requestsPerSecond`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Sustained requests per second, 1 to 1000.
    #[serde(default = "default_requests_per_second")]
    #[schemars(range(min = 1, max = 1000))]
    pub requests_per_second: i32,
    /// Requests that may be sent at once after a quiet period, 1 to 10000.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1, max = 10000))]
    pub burst: i32,
}

fn default_requests_per_second() -> i32 {
    5
}

fn default_burst() -> i32 {
    60
}

impl Default for RateLimitSpec {
    fn default() -> Self {
        Self { requests_per_second: default_requests_per_second(), burst: default_burst() }
    }
}

/// Observed state of a Bitbucket configuration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, with a reason and a message that says what to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".to_owned()]))]
    pub conditions: Vec<Condition>,
    /// What the server says about itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerInfo>,
    /// The Bitbucket user the credential authenticates as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_as: Option<String>,
    /// Features the server offers that the operator uses: `webhooks`, `codeInsights`,
    /// `requiredReports`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// When the connection was last proven as this status describes it. A check that finds the
    /// same refreshes it only after half the resync interval, so it may lag by that much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_time: Option<Time>,
    /// The credential Bitbucket last rejected, remembered so that no restart sends it again: it
    /// is sent once more only when its Secret changes, or when the annotation
    /// `bitbucket.integrations.dev/retry-credentials` is set to a new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_credential: Option<RejectedCredential>,
    /// SonarQube's integration with this Bitbucket, with `spec.sonarqube`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sonarqube: Option<super::sonarqube::SonarQubeIntegrationStatus>,
}

/// A credential Bitbucket rejected: which Secret, at which version, and why (never its value).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RejectedCredential {
    /// The Secret that holds the credential.
    pub secret: SecretVersion,
    /// The URL it was sent to.
    #[schemars(length(max = 2048))]
    pub url: String,
    /// Why: `BadCredentials`, `CaptchaRequired` or `BasicAuthDisabled`.
    #[schemars(length(max = 64))]
    pub reason: String,
    /// What the operator said about it.
    #[schemars(length(max = 1024))]
    pub message: String,
    /// The value of the `bitbucket.integrations.dev/retry-credentials` annotation when it was
    /// rejected; setting another value asks for exactly one new attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub retry_request: Option<String>,
    /// When Bitbucket rejected it.
    pub rejected_time: Time,
}

/// One version of a Secret: its name, its UID and its `resourceVersion`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersion {
    /// The Secret's name.
    #[schemars(length(max = 253))]
    pub name: String,
    /// Its UID (a Secret deleted and created again is another Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub uid: Option<String>,
    /// Its `resourceVersion` (every change of the Secret gives a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub resource_version: Option<String>,
}

/// The server's own description of itself.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    /// Version, such as `9.4.22`.
    pub version: String,
    /// Build number, such as `9004022`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_number: Option<String>,
    /// Product name, normally `Bitbucket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}
