//! References from one resource to another: Secrets, configurations, bindings.
//!
//! Every reference is namespace-local unless its doc says otherwise, so that nobody can point the
//! operator at objects in a namespace they do not control.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Label a Secret must carry before the operator reads it: the owner's consent to have its
/// content sent to a Bitbucket server.
pub const CREDENTIAL_LABEL: &str = "bitbucket.integrations.dev/credential";
/// Annotation on a configuration that asks for one new attempt with a credential Bitbucket
/// rejected (after an administrator cleared a CAPTCHA, say): any value not tried before.
pub const RETRY_CREDENTIALS_ANNOTATION: &str = "bitbucket.integrations.dev/retry-credentials";
/// Value [`CREDENTIAL_LABEL`] must have.
pub const CREDENTIAL_LABEL_VALUE: &str = "true";

/// A CEL rule that accepts a Kubernetes object name (RFC 1123 subdomain).
macro_rules! object_name_rule {
    ($what:literal) => {
        kube::core::Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')")
            .message(concat!(
                $what,
                " must be a Kubernetes object name: lower-case letters, digits, '-' and '.', \
             starting and ending with a letter or digit"
            ))
    };
}

/// A CEL rule that accepts a key of a Secret's data.
macro_rules! secret_key_rule {
    ($what:literal) => {
        kube::core::Rule::new("self.matches('^[-._a-zA-Z0-9]+$')")
            .message(concat!($what, " must be a Secret data key: letters, digits, '-', '_' and '.'"))
    };
}

fn default_token_key() -> String {
    "token".to_owned()
}
fn default_username_key() -> String {
    "username".to_owned()
}
fn default_password_key() -> String {
    "password".to_owned()
}
fn default_ca_key() -> String {
    "ca.crt".to_owned()
}
fn default_webhook_secret_key() -> String {
    "secret".to_owned()
}

/// Where a Bitbucket HTTP access token is kept.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenSecretRef {
    /// Name of a Secret in the same namespace. It must carry the label
    /// `bitbucket.integrations.dev/credential: "true"`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = object_name_rule!("secretRef.name"))]
    pub name: String,
    /// Key in the Secret's data that holds the token.
    #[serde(default = "default_token_key")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule!("secretRef.key"))]
    pub key: String,
}

/// Where a Bitbucket username and password (or a token used as password) are kept.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BasicSecretRef {
    /// Name of a Secret in the same namespace. It must carry the label
    /// `bitbucket.integrations.dev/credential: "true"`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = object_name_rule!("secretRef.name"))]
    pub name: String,
    /// Key in the Secret's data that holds the username.
    #[serde(default = "default_username_key")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule!("secretRef.usernameKey"))]
    pub username_key: String,
    /// Key in the Secret's data that holds the password.
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule!("secretRef.passwordKey"))]
    pub password_key: String,
}

/// Where a PEM bundle of certificate authorities is kept.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaSecretRef {
    /// Name of a Secret in the same namespace. It must carry the label
    /// `bitbucket.integrations.dev/credential: "true"`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = object_name_rule!("caSecretRef.name"))]
    pub name: String,
    /// Key in the Secret's data that holds the PEM-encoded CA certificates.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule!("caSecretRef.key"))]
    pub key: String,
}

/// Where the HMAC secret of a webhook is kept.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSecretRef {
    /// Name of a Secret in the same namespace. It must carry the label
    /// `bitbucket.integrations.dev/credential: "true"`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = object_name_rule!("secretRef.name"))]
    pub name: String,
    /// Key in the Secret's data that holds the secret Bitbucket signs deliveries with
    /// (the `X-Hub-Signature` header).
    #[serde(default = "default_webhook_secret_key")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule!("secretRef.key"))]
    pub key: String,
}

/// The two kinds of resource that describe a Bitbucket instance.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConfigurationKind {
    /// A `BitbucketConfiguration` in the same namespace.
    #[default]
    BitbucketConfiguration,
    /// A cluster-scoped `ClusterBitbucketConfiguration` whose `allowedNamespaces` admits this
    /// namespace.
    ClusterBitbucketConfiguration,
}

/// Names the Bitbucket instance a binding uses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationRef {
    /// `BitbucketConfiguration` (same namespace, the default) or `ClusterBitbucketConfiguration`.
    #[serde(default)]
    pub kind: ConfigurationKind,
    /// Name of the configuration.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = object_name_rule!("configurationRef.name"))]
    pub name: String,
}

/// Names a `ProjectBinding` in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BindingRef {
    /// Name of the `ProjectBinding`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = object_name_rule!("bindingRef.name"))]
    pub name: String,
}
