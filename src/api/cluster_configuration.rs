//! `ClusterBitbucketConfiguration`: a Bitbucket instance shared by several namespaces.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::configuration::{BitbucketConfigurationSpec, ConfigurationStatus};

/// Desired state of a `ClusterBitbucketConfiguration`: the same connection settings as a
/// `BitbucketConfiguration`, plus the namespaces whose bindings may use it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "bitbucket.integrations.dev",
    version = "v1alpha1",
    kind = "ClusterBitbucketConfiguration",
    status = "ConfigurationStatus",
    shortname = "cbbc",
    category = "bitbucket",
    doc = "A Bitbucket Data Center instance shared across namespaces. Its Secrets live in the \
           operator's namespace; allowedNamespaces says which namespaces' bindings may use it.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.server.version"),
    printcolumn(name = "User", type_ = "string", json_path = ".status.authenticatedAs"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterBitbucketConfigurationSpec {
    /// Connection settings, as in `BitbucketConfiguration`. Secrets are read from the
    /// operator's own namespace.
    #[serde(flatten)]
    pub connection: BitbucketConfigurationSpec,
    /// Namespaces whose `ProjectBinding`s may use this configuration.
    pub allowed_namespaces: AllowedNamespaces,
}

/// Namespaces admitted by name, by label, or both (a namespace matching either is admitted).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.selector) || (has(self.names) && size(self.names) > 0)")
    .message("allowedNamespaces needs names or a selector; an empty selector ({}) admits every namespace"))]
pub struct AllowedNamespaces {
    /// Namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    #[x_kube(validation = kube::core::Rule::new("self.all(n, n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))").message(
        "allowedNamespaces.names must be namespace names: lower-case letters, digits and '-', starting and ending with a letter or digit"
    ))]
    pub names: Vec<String>,
    /// A label selector over namespaces. An empty selector admits every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<NamespaceSelector>,
}

/// Selects namespaces by their labels; all given requirements must hold.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    /// Labels a namespace must have, with these exact values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements on a namespace's labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub match_expressions: Vec<NamespaceSelectorRequirement>,
}

/// One requirement of a [`NamespaceSelector`].
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)"
).message("matchExpressions: In and NotIn need values; Exists and DoesNotExist take none"))]
pub struct NamespaceSelectorRequirement {
    /// The label key.
    #[schemars(length(min = 1, max = 317))]
    pub key: String,
    /// How the label relates to `values`.
    pub operator: SelectorOperator,
    /// The values for `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 63)))]
    pub values: Vec<String>,
}

/// Operator of a label requirement.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present, whatever its value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl AllowedNamespaces {
    /// Whether a namespace (by name and labels) may use the configuration: it is listed, or the
    /// selector matches its labels (an empty selector matches every namespace).
    pub fn admits(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.names.iter().any(|n| n == namespace) || self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }
}

impl NamespaceSelector {
    /// Whether the labels satisfy every `matchLabels` entry and every expression.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|requirement| {
                let value = labels.get(&requirement.key);
                match requirement.operator {
                    SelectorOperator::In => value.is_some_and(|v| requirement.values.contains(v)),
                    SelectorOperator::NotIn => value.is_none_or(|v| !requirement.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_admitted_by_name_or_selector() {
        let allowed: AllowedNamespaces = serde_json::from_value(serde_json::json!({
            "names": ["payments"],
            "selector": {"matchLabels": {"team": "platform"},
                         "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["sandbox"]}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        assert!(allowed.admits("payments", &labels(&[])));
        assert!(allowed.admits("ci", &labels(&[("team", "platform")])));
        assert!(!allowed.admits("ci", &labels(&[("team", "platform"), ("env", "sandbox")])));
        assert!(!allowed.admits("ci", &labels(&[("team", "web")])));
        let everyone: AllowedNamespaces =
            serde_json::from_value(serde_json::json!({"selector": {}})).unwrap_or_else(|e| panic!("{e}"));
        assert!(everyone.admits("anything", &labels(&[])));
    }
}
