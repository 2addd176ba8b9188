//! `RequiredReport`: the Code Insights merge check that blocks a pull request until a report
//! passes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{
    coverage::{RepositoryCheck, RepositoryIds},
    refs::BindingRef,
};

/// Report key SonarQube publishes its analysis under.
pub const SONARQUBE_REPORT_KEY: &str = "com.sonarsource.sonarqube";

/// Desired state of a `RequiredReport`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "bitbucket.integrations.dev",
    version = "v1alpha1",
    kind = "RequiredReport",
    namespaced,
    status = "RequiredReportStatus",
    shortname = "bbrr",
    category = "bitbucket",
    doc = "A Code Insights required report on every repository of a ProjectBinding: pull requests \
           cannot merge until the report (by default SonarQube's) exists, passes and has no \
           annotations above the allowed severity.",
    printcolumn(name = "Binding", type_ = "string", json_path = ".spec.bindingRef.name"),
    printcolumn(name = "Report", type_ = "string", json_path = ".status.reportKey"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".spec.managementPolicy", priority = 1),
    printcolumn(name = "In-Sync", type_ = "integer", json_path = ".status.inSyncCount"),
    printcolumn(name = "Repositories", type_ = "integer", json_path = ".status.repositoryCount"),
    printcolumn(name = "Drifted", type_ = "integer", json_path = ".status.driftedCount", priority = 1),
    printcolumn(name = "Failed", type_ = "integer", json_path = ".status.failedCount", priority = 1),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.reportKey) == has(oldSelf.reportKey) && (!has(self.reportKey) || self.reportKey == oldSelf.reportKey)"
).message("reportKey is immutable (checks under the old key would be left behind): create a new RequiredReport instead")
    .field_path(".reportKey"))]
pub struct RequiredReportSpec {
    /// The `ProjectBinding` whose repositories get the merge check. Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf")
        .message("bindingRef is immutable: create a new RequiredReport for another binding"))]
    pub binding_ref: BindingRef,

    /// Key of the Code Insights report that must pass. Defaults to `com.sonarsource.sonarqube`,
    /// or `com.sonarsource.sonarqube_<sonarqube.projectKey>` when the binding is a monorepo.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 450))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z0-9][A-Za-z0-9._:-]*$')")
        .message("reportKey must start with a letter or digit and hold only letters, digits, '.', '_', ':' and '-', such as com.sonarsource.sonarqube"))]
    pub report_key: Option<String>,

    /// The report must have the result PASS ("Required status: Must pass"). When false, the
    /// report only has to exist. Default true.
    #[serde(default = "default_true")]
    pub must_pass: bool,

    /// Which annotations on the report block the merge: `NoneAllowed` (default; any annotation
    /// blocks, "Must not have any annotations"), `NoMediumOrHigh` (medium- and high-severity ones
    /// block), `NoHighSeverity` (only high-severity ones block) or `Ignore` (none block).
    #[serde(default)]
    pub annotations: AnnotationRequirement,

    /// What happens to the merge checks when this resource is deleted or a repository leaves
    /// the binding: `Delete` (default) removes them, `Orphan` leaves them in Bitbucket.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Manage` (default) makes Bitbucket match; `Observe` only reports drift and changes
    /// nothing.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

fn default_true() -> bool {
    true
}

/// Which annotations block the merge.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AnnotationRequirement {
    /// Annotations never block the merge.
    Ignore,
    /// Any annotation blocks the merge.
    #[default]
    NoneAllowed,
    /// Only high-severity annotations block the merge.
    NoHighSeverity,
    /// Medium- and high-severity annotations block the merge.
    NoMediumOrHigh,
}

/// What deleting the resource does in Bitbucket.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Remove the merge checks.
    #[default]
    Delete,
    /// Leave the merge checks in Bitbucket.
    Orphan,
}

/// Whether the operator changes Bitbucket.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ManagementPolicy {
    /// Create, update and remove merge checks so Bitbucket matches the spec.
    #[default]
    Manage,
    /// Only report drift; change nothing.
    Observe,
}

/// Observed state of a `RequiredReport`. It stays small at any number of repositories: counts,
/// the repositories that need attention, and the ids of those covered; `bitbucket-operator
/// inventory` shows every repository's check from Bitbucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequiredReportStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, with a reason and a message that says what to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".to_owned()]))]
    pub conditions: Vec<Condition>,
    /// The report key in effect (the spec's, or the default the binding implies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_key: Option<String>,
    /// How many bound repositories there are.
    #[serde(default)]
    pub repository_count: i32,
    /// How many of them have a merge check that matches the spec.
    #[serde(default)]
    pub in_sync_count: i32,
    /// How many differ from the spec and were left alone (`managementPolicy: Observe`).
    #[serde(default)]
    pub drifted_count: i32,
    /// How many could not be read or written.
    #[serde(default)]
    pub failed_count: i32,
    /// The repositories whose check needs attention, with what differs or failed (at most 20,
    /// by slug).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["slug".to_owned()]))]
    pub needs_attention: Vec<RepositoryCheck>,
    /// How many more repositories need attention than are listed.
    #[serde(default, skip_serializing_if = "super::binding::is_zero")]
    pub needs_attention_omitted: i32,
    /// The Bitbucket ids of the repositories the report covers, compactly written (ascending,
    /// each as the gap from the one before, `gap+more` for a run of consecutive ids): the
    /// operator's record of where its checks are, so that a repository that leaves the binding
    /// loses its check.
    #[serde(default, skip_serializing_if = "RepositoryIds::is_empty")]
    pub repository_ids: RepositoryIds,
    /// The ids, written alike, of the covered repositories whose check was not in sync after
    /// the last round (so that the next one tells a check restored from one created).
    #[serde(default, skip_serializing_if = "RepositoryIds::is_empty")]
    pub out_of_sync_ids: RepositoryIds,
}
