//! `SonarQubeConfiguration`: one SonarQube instance and the token to log in with; and the
//! SonarQube side of a Bitbucket configuration (its "Bitbucket configuration record", the ALM
//! setting SonarQube keeps for that Bitbucket).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema, core::Duration};
use serde::{Deserialize, Serialize};

use super::{
    configuration::{RateLimitSpec, SecretVersion, TlsSpec, TokenAuth},
    refs::TokenSecretRef,
};

/// Desired state of a `SonarQubeConfiguration`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "bitbucket.integrations.dev",
    version = "v1alpha1",
    kind = "SonarQubeConfiguration",
    namespaced,
    status = "SonarQubeConfigurationStatus",
    shortname = "sqc",
    category = "bitbucket",
    doc = "A SonarQube instance and the user token to log in with. The operator proves the login \
           and reports the server's version, edition, the user it acts as and what the edition \
           can do. Bitbucket configurations name it to keep SonarQube's Bitbucket integration.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.server.version"),
    printcolumn(name = "Edition", type_ = "string", json_path = ".status.server.edition"),
    printcolumn(name = "User", type_ = "string", json_path = ".status.authenticatedAs"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "self.url.startsWith('https://') || (has(self.allowInsecureHttp) && self.allowInsecureHttp)"
).message(
    "url must start with https://; to use plain http (the token then crosses the network \
     unencrypted) set allowInsecureHttp: true"
).field_path(".url"))]
pub struct SonarQubeConfigurationSpec {
    /// Base URL of the SonarQube instance, including any context path, for example
    /// `https://sonarqube.example.com`. Must be https unless `allowInsecureHttp` is true. No
    /// credentials, query or fragment.
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^https?://[^/?#@\\\\s]+(/[^?#@\\\\s]*)?$')"
    ).message(
        "url must be an absolute http(s) URL such as https://sonarqube.example.com, without \
         user name, password, query or fragment"
    ))]
    #[x_kube(validation = kube::core::Rule::new(
        "!self.matches('[\\\\\\\\\\\\p{Cc}\\\\x{061C}\\\\x{200E}\\\\x{200F}\\\\x{202A}-\\\\x{202E}\\\\x{2066}-\\\\x{2069}]')"
    ).message(
        "url must not hold a backslash, a control character or a bidirectional-text character: \
         they can hide which host the URL names"
    ))]
    pub url: String,

    /// Allow a plain `http://` URL. Only for test instances: the token is sent unencrypted.
    #[serde(default)]
    pub allow_insecure_http: bool,

    /// How the operator logs in: a SonarQube user token.
    pub auth: SonarQubeAuth,

    /// TLS settings for https URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// The operator's own request budget for this instance, shared by every resource that uses
    /// it (SonarQube has no limit of its own; the default is gentle).
    #[serde(default)]
    pub rate_limit: RateLimitSpec,

    /// How often the operator re-checks SonarQube for drift (a setting or binding changed in
    /// the UI), as a duration such as `10m` or `1h`. Between 30s and 24h.
    #[serde(default = "default_resync_interval")]
    #[schemars(length(min = 1, max = 32), extend("default" = "10m"))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') && duration(self) >= duration('30s') && duration(self) <= duration('24h')"
    ).message("resyncInterval must be a duration between 30s and 24h, such as 10m or 1h30m"))]
    pub resync_interval: Duration,

    /// How long one request to SonarQube may take before it is abandoned and retried, as a
    /// duration such as `30s`. Between 1s and 5m.
    #[serde(default = "default_request_timeout")]
    #[schemars(length(min = 1, max = 32), extend("default" = "30s"))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('5m')"
    ).message("requestTimeout must be a duration between 1s and 5m, such as 30s"))]
    pub request_timeout: Duration,
}

fn default_resync_interval() -> Duration {
    std::time::Duration::from_secs(600).into()
}

fn default_request_timeout() -> Duration {
    std::time::Duration::from_secs(30).into()
}

/// How the operator logs in to SonarQube.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SonarQubeAuth {
    /// A SonarQube **user** token (analysis tokens cannot administer), of a user with
    /// Administer System (for the Bitbucket integration) and, for project bindings, Create
    /// Projects and Administer on the projects. Sent as `Authorization: Bearer` on 10.0 and
    /// later, as the HTTP Basic user name with an empty password before.
    pub token: TokenAuth,
}

/// Observed state of a `SonarQubeConfiguration`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SonarQubeConfigurationStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, with a reason and a message that says what to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".to_owned()]))]
    pub conditions: Vec<Condition>,
    /// What the server says about itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<SonarQubeServerInfo>,
    /// The SonarQube user the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub authenticated_as: Option<String>,
    /// What the edition lets the operator do: `almSettings` (keep the Bitbucket integration),
    /// `projectBindings` (bind projects with `set_bitbucket_binding`, commercial editions),
    /// `boundProjects` (bind through the v2 bound-projects API with a per-user token, Community
    /// Build), `monorepo`, `multipleBitbucketSettings` (more than one Bitbucket integration),
    /// `pullRequestDecoration` (SonarQube posts the Code Insights report a RequiredReport
    /// requires).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 64)))]
    pub capabilities: Vec<String>,
    /// When the connection was last proven as this status describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_time: Option<Time>,
}

/// SonarQube's own description of itself.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SonarQubeServerInfo {
    /// Version as the server gives it, such as `9.9.4.87374`, `26.7.0.124771` (Community Build)
    /// or `2026.3.1.123439` (Server).
    #[schemars(length(max = 64))]
    pub version: String,
    /// Which numbering the version follows: `Classic` (up to 10.x), `CommunityBuild` (year and
    /// month) or `Server` (year and release).
    #[schemars(length(max = 32))]
    pub version_scheme: String,
    /// `community`, `developer`, `enterprise` or `datacenter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub edition: Option<String>,
}

/// The SonarQube side of a Bitbucket configuration: the DevOps Platform integration ("ALM
/// setting") SonarQube keeps for this Bitbucket, so that it can import repositories, bind
/// projects and decorate pull requests.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SonarQubeIntegration {
    /// The `SonarQubeConfiguration` to keep it in: in the same namespace, or for a
    /// `ClusterBitbucketConfiguration` in the operator's namespace.
    pub configuration_ref: SonarQubeConfigurationRef,

    /// The setting's key in SonarQube (what its UI calls the configuration name). Defaults to
    /// this resource's name. Changing it renames the setting, which keeps every project bound
    /// to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z0-9][A-Za-z0-9._ -]*$') && !self.endsWith(' ')")
        .message("sonarqube.almSettingKey must start with a letter or digit and hold only letters, digits, '.', '_', '-' and inner spaces"))]
    pub alm_setting_key: Option<String>,

    /// The Bitbucket token SonarQube stores and uses to read repositories and decorate pull
    /// requests. Least privilege: a separate token, read access to the repositories plus what
    /// pull-request decoration needs, not the operator's own. SonarQube never shows it again, so
    /// the operator pushes it again whenever this Secret changes.
    pub token_secret_ref: TokenSecretRef,

    /// The Bitbucket URL as SonarQube reaches it, when that differs from `url` (another network,
    /// a proxy). Defaults to `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 2000))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^https?://[^/?#@\\\\s]+(/[^?#@\\\\s]*)?$') && !self.matches('[\\\\\\\\\\\\p{Cc}]')"
    ).message(
        "sonarqube.bitbucketUrl must be an absolute http(s) URL such as https://bitbucket.example.com, \
         without user name, password, query, fragment, backslash or control character"
    ))]
    pub bitbucket_url: Option<String>,

    /// What happens to the setting when this resource is deleted. `Delete` (the default)
    /// removes it, and SonarQube then drops every project binding to it (the projects and their
    /// analyses stay); `Orphan` leaves it. It applies only while the block is there: removing
    /// the block first leaves the setting.
    #[serde(default)]
    pub deletion_policy: super::required_report::DeletionPolicy,
}

/// Names a `SonarQubeConfiguration`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SonarQubeConfigurationRef {
    /// Name of the `SonarQubeConfiguration`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')")
        .message("sonarqube.configurationRef.name must be an object name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"))]
    pub name: String,
}

/// What the operator keeps of the SonarQube integration of a Bitbucket configuration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SonarQubeIntegrationStatus {
    /// The SonarQube instance (`namespace/name` of its `SonarQubeConfiguration`).
    #[schemars(length(max = 512))]
    pub configuration: String,
    /// The setting's key in SonarQube as the operator last made it (a new `almSettingKey`
    /// renames this one).
    #[schemars(length(max = 200))]
    pub alm_setting_key: String,
    /// The Bitbucket URL SonarQube was given.
    #[schemars(length(max = 2048))]
    pub url: String,
    /// The version of the token Secret SonarQube holds (the token itself cannot be read back:
    /// a new version is pushed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<SecretVersion>,
    /// How many SonarQube projects are bound to the setting (any binding, made by the operator
    /// or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_projects: Option<i64>,
    /// When SonarQube last proved, with the stored token, that it reaches Bitbucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validated_time: Option<Time>,
}
