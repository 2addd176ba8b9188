//! `RequiredBuild`: the required-builds merge check that blocks a pull request until named CI
//! builds have passed on its latest commit.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{
    coverage::{RepositoryCheck, RepositoryIds},
    refs::BindingRef,
    required_report::{DeletionPolicy, ManagementPolicy},
};

/// Desired state of a `RequiredBuild`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "bitbucket.integrations.dev",
    version = "v1alpha1",
    kind = "RequiredBuild",
    namespaced,
    status = "RequiredBuildStatus",
    shortname = "bbrb",
    category = "bitbucket",
    doc = "A required-builds merge check on every repository of a ProjectBinding: pull requests \
           into the matching branches cannot merge until every listed build has passed on their \
           latest commit.",
    printcolumn(name = "Binding", type_ = "string", json_path = ".spec.bindingRef.name"),
    printcolumn(name = "Builds", type_ = "string", json_path = ".spec.buildParentKeys", priority = 1),
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
pub struct RequiredBuildSpec {
    /// The `ProjectBinding` whose repositories get the merge check. Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf")
        .message("bindingRef is immutable: create a new RequiredBuild for another binding"))]
    pub binding_ref: BindingRef,

    /// Keys of the builds that must pass, as the CI server reports them to Bitbucket (the
    /// build status `key`; for a plan with several jobs, the parent key shared by all of them),
    /// such as `sonarqube-quality-gate`. One to 100, each listed once; every one of them must
    /// have passed.
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 255)))]
    #[x_kube(
        validation = kube::core::Rule::new("self.all(k, k.trim() == k)")
            .message("buildParentKeys must not start or end with a space: write each key exactly as the CI server reports it"),
        validation = kube::core::Rule::new("self.all(k, self.exists_one(x, x == k))")
            .message("buildParentKeys must list each key once: remove the repeated key")
    )]
    pub build_parent_keys: Vec<String>,

    /// Which pull requests the check applies to, by their target branch. Absent: pull requests
    /// into the repository's default branch. Otherwise `{type: Branch, value: main}` (one
    /// branch), `{type: Pattern, value: "release/*"}` (branches matching a Bitbucket pattern),
    /// `{type: AnyRef}` (every branch), `{type: ModelCategory, value: RELEASE}` (the branching
    /// model's `BUGFIX`, `FEATURE`, `HOTFIX` or `RELEASE` branches) or
    /// `{type: ModelBranch, value: production}` (the branching model's `development` or
    /// `production` branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_matcher: Option<RefMatcher>,

    /// Pull requests into these branches are exempt from the check, even when `refMatcher`
    /// matches them. Same shape as `refMatcher`, except that `AnyRef` is not allowed. Absent:
    /// none are exempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.type != 'AnyRef'")
        .message("exemptRefMatcher must not be AnyRef (it would exempt every branch): delete the RequiredBuild, or exempt a Branch, Pattern, ModelCategory or ModelBranch"))]
    pub exempt_ref_matcher: Option<RefMatcher>,

    /// What happens to the merge checks when this resource is deleted or a repository leaves
    /// the binding: `Delete` (default) removes them, `Orphan` leaves them in Bitbucket.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Manage` (default) makes Bitbucket match; `Observe` only reports drift and changes
    /// nothing.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

/// The branches a pull request may target: a `type` and, for every type but `AnyRef`, a `value`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("self.type == 'AnyRef' || has(self.value)")
        .message("value is required for this type: name the branch (Branch), the pattern (Pattern), the category (ModelCategory) or the model branch (ModelBranch)"),
    validation = kube::core::Rule::new("self.type != 'AnyRef' || !has(self.value)")
        .message("AnyRef matches every branch and takes no value: remove value, or use type Branch or Pattern"),
    validation = kube::core::Rule::new("self.type != 'Branch' || !has(self.value) || !self.value.matches('[*?]')")
        .message("a Branch value names one branch: use type Pattern for a value with '*' or '?'"),
    validation = kube::core::Rule::new("self.type != 'ModelCategory' || !has(self.value) || self.value in ['BUGFIX', 'FEATURE', 'HOTFIX', 'RELEASE']")
        .message("a ModelCategory value must be one of the branching model's categories: BUGFIX, FEATURE, HOTFIX or RELEASE"),
    validation = kube::core::Rule::new("self.type != 'ModelBranch' || !has(self.value) || self.value in ['development', 'production']")
        .message("a ModelBranch value must be development or production (the branching model's branches)")
)]
pub struct RefMatcher {
    /// `Branch`, `Pattern`, `AnyRef`, `ModelCategory` or `ModelBranch`.
    #[serde(rename = "type")]
    pub type_: RefMatcherType,
    /// The branch (`main`, or in full `refs/heads/main`), the pattern (`release/*`), the
    /// category (`BUGFIX`, `FEATURE`, `HOTFIX`, `RELEASE`) or the model branch (`development`,
    /// `production`); absent for `AnyRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = kube::core::Rule::new("self.trim() == self")
        .message("value must not start or end with a space"))]
    pub value: Option<String>,
}

/// What a ref matcher matches.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RefMatcherType {
    /// One branch, by name.
    Branch,
    /// Branches whose name matches a Bitbucket ref pattern, such as `release/*`.
    Pattern,
    /// Every branch.
    AnyRef,
    /// The branches of one category of the repository's branching model.
    ModelCategory,
    /// The branching model's development or production branch.
    ModelBranch,
}

/// Observed state of a `RequiredBuild`. It stays small at any number of repositories: counts,
/// the repositories that need attention, the ids of those covered, and what was last applied.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequiredBuildStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, with a reason and a message that says what to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".to_owned()]))]
    pub conditions: Vec<Condition>,
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
    /// The Bitbucket ids of the repositories the check covers, compactly written (ascending,
    /// each as the gap from the one before, `gap+more` for a run of consecutive ids): the
    /// operator's record of where its checks are, so that a repository that leaves the binding
    /// loses its check.
    #[serde(default, skip_serializing_if = "RepositoryIds::is_empty")]
    pub repository_ids: RepositoryIds,
    /// The ids, written alike, of the covered repositories whose check was not in sync after
    /// the last round (so that the next one tells a check restored from one created).
    #[serde(default, skip_serializing_if = "RepositoryIds::is_empty")]
    pub out_of_sync_ids: RepositoryIds,
    /// The build keys and matchers the operator applied that may still be on some repository,
    /// newest first (the first is the spec it last worked to): its record of what its
    /// conditions look like, so that a change to the spec updates them in place instead of
    /// adding a second condition beside each. Older entries stay only while some repository
    /// did not take a later one (at most 8; once every repository holds the spec, only it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<AppliedBuild>,
}

/// How many contents `status.applied` keeps.
pub const MAX_APPLIED: usize = 8;

/// The content of the conditions the operator last applied, as the spec said it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppliedBuild {
    /// The build keys that had to pass.
    #[serde(default)]
    pub build_parent_keys: Vec<String>,
    /// The branches the condition applied to; absent: the repository's default branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_matcher: Option<RefMatcher>,
    /// The branches exempt from it; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exempt_ref_matcher: Option<RefMatcher>,
}

impl From<&RequiredBuildSpec> for AppliedBuild {
    fn from(spec: &RequiredBuildSpec) -> Self {
        Self {
            build_parent_keys: spec.build_parent_keys.clone(),
            ref_matcher: spec.ref_matcher.clone(),
            exempt_ref_matcher: spec.exempt_ref_matcher.clone(),
        }
    }
}
