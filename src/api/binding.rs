//! `ProjectBinding`: the repositories an integration is bound to, and the webhooks each of them
//! must have.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{
    coverage::{RepositoryCheck, RepositoryIds},
    refs::{ConfigurationRef, WebhookSecretRef},
};

/// Desired state of a `ProjectBinding`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "bitbucket.integrations.dev",
    version = "v1alpha1",
    kind = "ProjectBinding",
    namespaced,
    status = "ProjectBindingStatus",
    shortname = "bbpb",
    category = "bitbucket",
    doc = "Binds an integration to Bitbucket repositories: one repository, or a selection inside a \
           project that picks up new repositories by itself. Every bound repository gets the \
           declared webhooks.",
    printcolumn(name = "Configuration", type_ = "string", json_path = ".spec.configurationRef.name", priority = 1),
    printcolumn(name = "Project", type_ = "string", json_path = ".spec.projectKey"),
    printcolumn(name = "Repository", type_ = "string", json_path = ".spec.repositorySlug"),
    printcolumn(name = "In-Sync", type_ = "integer", json_path = ".status.inSyncCount"),
    printcolumn(name = "Repositories", type_ = "integer", json_path = ".status.repositoryCount"),
    printcolumn(name = "Failed", type_ = "integer", json_path = ".status.failedCount", priority = 1),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.repositorySlug) != has(self.repositories)")
        .message("set exactly one of repositorySlug (one repository) or repositories (a selection inside the project)"),
    validation = kube::core::Rule::new("!self.monorepo || has(self.sonarqube)")
        .message("monorepo: true needs sonarqube.projectKey: a monorepo's report key is com.sonarsource.sonarqube_<projectKey>")
        .field_path(".sonarqube"),
    validation = kube::core::Rule::new("!self.monorepo || has(self.repositorySlug)")
        .message("monorepo: true binds one repository: use repositorySlug, not repositories")
        .field_path(".monorepo"),
    validation = kube::core::Rule::new("!has(self.sonarqube) || !has(self.sonarqube.projectKey) || has(self.repositorySlug)")
        .message("sonarqube.projectKey names the project of one repository: with repositories, use sonarqube.projectKeyTemplate")
        .field_path(".sonarqube.projectKey"),
    validation = kube::core::Rule::new("!has(self.sonarqube) || !has(self.sonarqube.projectKeyTemplate) || has(self.repositories)")
        .message("sonarqube.projectKeyTemplate is for a selection (repositories): with repositorySlug, use sonarqube.projectKey")
        .field_path(".sonarqube.projectKeyTemplate"),
)]
pub struct ProjectBindingSpec {
    /// The Bitbucket instance. Immutable: webhooks already created belong to it.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf")
        .message("configurationRef is immutable: what was created belongs to the first Bitbucket; create a new ProjectBinding instead"))]
    pub configuration_ref: ConfigurationRef,

    /// Key of the Bitbucket project, such as `PLATFORM`, or `~username` for a personal project.
    /// Immutable.
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(
        validation = kube::core::Rule::new("self.matches('^([A-Z][A-Z0-9_]*|~[A-Za-z0-9._@+-]+)$')")
            .message("projectKey must be an upper-case project key such as PLATFORM (a letter, then letters, digits or _), or ~username for a personal project"),
        validation = kube::core::Rule::new("self == oldSelf")
            .message("projectKey is immutable: create a new ProjectBinding for another project"),
    )]
    pub project_key: String,

    /// Slug of the one repository to bind, such as `payments-api`. Set this or `repositories`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[a-z0-9][a-z0-9._-]*$')")
        .message("repositorySlug must be a repository slug: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"))]
    pub repository_slug: Option<String>,

    /// A selection of the project's repositories. Repositories created later that match are
    /// bound on the next resync. Set this or `repositorySlug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repositories: Option<RepositorySelection>,

    /// The repository holds several SonarQube projects. Needs `repositorySlug` and
    /// `sonarqube.projectKey`; required reports then default to the key
    /// `com.sonarsource.sonarqube_<sonarqube.projectKey>`.
    #[serde(default)]
    pub monorepo: bool,

    /// The SonarQube projects that analyse the bound repositories, kept bound to them when the
    /// configuration has a SonarQube integration (its `spec.sonarqube`). Without one, only a
    /// monorepo's report key is taken from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sonarqube: Option<SonarQubeProject>,

    /// Webhooks every bound repository must have, matched by name. Webhooks with other names are
    /// left alone; a webhook removed from this list is removed from the repositories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".to_owned()]))]
    pub webhooks: Vec<Webhook>,
}

/// Repositories of the project chosen by glob patterns on their slugs (`*` any run of
/// characters, `?` one character).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySelection {
    /// Slug patterns to bind, such as `payments-*`. Defaults to every repository (`*`).
    #[serde(default = "default_include")]
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 128)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(p, p.matches('^[a-z0-9._*?-]+$'))")
        .message("repositories.include patterns may hold lower-case letters, digits, '.', '_', '-' and the wildcards * and ?"))]
    pub include: Vec<String>,
    /// Slug patterns to leave out even when they match `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 128)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(p, p.matches('^[a-z0-9._*?-]+$'))")
        .message("repositories.exclude patterns may hold lower-case letters, digits, '.', '_', '-' and the wildcards * and ?"))]
    pub exclude: Vec<String>,
    /// Leave out archived (read-only) repositories. Default true.
    #[serde(default = "default_true")]
    pub exclude_archived: bool,
}

fn default_include() -> Vec<String> {
    vec!["*".to_owned()]
}

fn default_true() -> bool {
    true
}

/// The SonarQube projects of the bound repositories, and their bindings to them (made through
/// the SonarQube integration of the binding's Bitbucket configuration, `spec.sonarqube` there).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.projectKey) != has(self.projectKeyTemplate)")
    .message("sonarqube needs exactly one of projectKey (one repository) or projectKeyTemplate (a selection)"))]
pub struct SonarQubeProject {
    /// The SonarQube project key of the one bound repository (`repositorySlug`), such as
    /// `payments:api`; for a monorepo, the one SonarQube project of the repository this binding
    /// is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 400))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z0-9_.:-]*[A-Za-z_.:-][A-Za-z0-9_.:-]*$')")
        .message("sonarqube.projectKey must be a SonarQube project key: letters, digits, '-', '_', '.' and ':', with at least one non-digit"))]
    pub project_key: Option<String>,

    /// The SonarQube project key of each repository of a selection, from `{projectKey}` (the
    /// Bitbucket project key) and `{slug}` (the repository slug), such as
    /// `{projectKey}_{slug}`. Must hold `{slug}`, so that every repository has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = kube::core::Rule::new("self.contains('{slug}') && self.matches('^([A-Za-z0-9_.:-]|[{]slug[}]|[{]projectKey[}])+$')")
        .message("sonarqube.projectKeyTemplate must hold {slug} and otherwise only letters, digits, '-', '_', '.', ':' and {projectKey}, such as {projectKey}_{slug}"))]
    pub project_key_template: Option<String>,

    /// Create a SonarQube project, named after its repository, for a bound repository that has
    /// none (the guides' "import"); repositories the selection picks up later get theirs too.
    /// Projects are never deleted by the operator: their analyses belong to their users.
    #[serde(default)]
    pub create_projects: bool,
}

/// A webhook that every bound repository must have.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Name of the webhook in Bitbucket; identifies it, so keep it unique per repository.
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = kube::core::Rule::new("self.trim() == self && !self.contains('\\n')")
        .message("webhook name must be one line without leading or trailing spaces"))]
    pub name: String,
    /// Where Bitbucket delivers events, an http or https URL.
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^https?://[^/?#@\\\\s]+([/?#][^\\\\s]*)?$')")
        .message("webhook url must be an absolute http(s) URL such as https://ci.example.com/hook, without user name or password"))]
    #[x_kube(validation = kube::core::Rule::new(
        "!self.matches('[\\\\\\\\\\\\p{Cc}\\\\x{061C}\\\\x{200E}\\\\x{200F}\\\\x{202A}-\\\\x{202E}\\\\x{2066}-\\\\x{2069}]')"
    ).message(
        "webhook url must not hold a backslash, a control character or a bidirectional-text character: \
         they can hide which host the URL names"
    ))]
    pub url: String,
    /// Events that trigger a delivery, such as `repo:refs_changed` (a push), `pr:opened`,
    /// `pr:from_ref_updated` (the source branch was pushed) and `pr:merged`.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub events: Vec<WebhookEvent>,
    /// Secret Bitbucket signs each delivery with (`X-Hub-Signature`), so the receiver can trust
    /// it. Read from a Secret in the same namespace with the credential label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<WebhookSecretRef>,
    /// Verify the target's TLS certificate (https targets). Default true.
    #[serde(default = "default_true")]
    pub ssl_verification_required: bool,
    /// Deliver events. Set false to pause deliveries without deleting the webhook. Default true.
    #[serde(default = "default_true")]
    pub active: bool,
}

/// An event a repository webhook can subscribe to.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookEvent {
    /// A push: branches or tags created, updated or deleted.
    #[serde(rename = "repo:refs_changed")]
    RepoRefsChanged,
    /// The repository was renamed or its settings changed.
    #[serde(rename = "repo:modified")]
    RepoModified,
    /// The repository was forked.
    #[serde(rename = "repo:forked")]
    RepoForked,
    /// A commit comment was added.
    #[serde(rename = "repo:comment:added")]
    RepoCommentAdded,
    /// A commit comment was edited.
    #[serde(rename = "repo:comment:edited")]
    RepoCommentEdited,
    /// A commit comment was deleted.
    #[serde(rename = "repo:comment:deleted")]
    RepoCommentDeleted,
    /// A mirror finished synchronising the repository.
    #[serde(rename = "mirror:repo_synchronized")]
    MirrorRepoSynchronized,
    /// Secret scanning found a secret in a push (Bitbucket 8.x and later).
    #[serde(rename = "repo:secret_detected")]
    RepoSecretDetected,
    /// A pull request was opened.
    #[serde(rename = "pr:opened")]
    PrOpened,
    /// A pull request's source branch was pushed.
    #[serde(rename = "pr:from_ref_updated")]
    PrFromRefUpdated,
    /// A pull request's title, description or target changed.
    #[serde(rename = "pr:modified")]
    PrModified,
    /// A pull request's reviewers changed.
    #[serde(rename = "pr:reviewer:updated")]
    PrReviewerUpdated,
    /// A reviewer approved.
    #[serde(rename = "pr:reviewer:approved")]
    PrReviewerApproved,
    /// A reviewer withdrew approval.
    #[serde(rename = "pr:reviewer:unapproved")]
    PrReviewerUnapproved,
    /// A reviewer marked the pull request "needs work" (Bitbucket 7.x and earlier).
    #[serde(rename = "pr:reviewer:needs_work")]
    PrReviewerNeedsWork,
    /// A reviewer requested changes (Bitbucket 8.x and later).
    #[serde(rename = "pr:reviewer:changes_requested")]
    PrReviewerChangesRequested,
    /// A pull request was merged.
    #[serde(rename = "pr:merged")]
    PrMerged,
    /// A pull request was declined.
    #[serde(rename = "pr:declined")]
    PrDeclined,
    /// A pull request was deleted.
    #[serde(rename = "pr:deleted")]
    PrDeleted,
    /// A pull request comment was added.
    #[serde(rename = "pr:comment:added")]
    PrCommentAdded,
    /// A pull request comment was edited.
    #[serde(rename = "pr:comment:edited")]
    PrCommentEdited,
    /// A pull request comment was deleted.
    #[serde(rename = "pr:comment:deleted")]
    PrCommentDeleted,
}

impl WebhookEvent {
    /// The event key Bitbucket uses on the wire.
    pub fn key(self) -> &'static str {
        match self {
            Self::RepoRefsChanged => "repo:refs_changed",
            Self::RepoModified => "repo:modified",
            Self::RepoForked => "repo:forked",
            Self::RepoCommentAdded => "repo:comment:added",
            Self::RepoCommentEdited => "repo:comment:edited",
            Self::RepoCommentDeleted => "repo:comment:deleted",
            Self::MirrorRepoSynchronized => "mirror:repo_synchronized",
            Self::RepoSecretDetected => "repo:secret_detected",
            Self::PrOpened => "pr:opened",
            Self::PrFromRefUpdated => "pr:from_ref_updated",
            Self::PrModified => "pr:modified",
            Self::PrReviewerUpdated => "pr:reviewer:updated",
            Self::PrReviewerApproved => "pr:reviewer:approved",
            Self::PrReviewerUnapproved => "pr:reviewer:unapproved",
            Self::PrReviewerNeedsWork => "pr:reviewer:needs_work",
            Self::PrReviewerChangesRequested => "pr:reviewer:changes_requested",
            Self::PrMerged => "pr:merged",
            Self::PrDeclined => "pr:declined",
            Self::PrDeleted => "pr:deleted",
            Self::PrCommentAdded => "pr:comment:added",
            Self::PrCommentEdited => "pr:comment:edited",
            Self::PrCommentDeleted => "pr:comment:deleted",
        }
    }
}

/// Observed state of a `ProjectBinding`. It stays small at any number of repositories: counts,
/// the repositories that need attention, and the ids of the bound ones; `bitbucket-operator
/// inventory` lists every bound repository from Bitbucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectBindingStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, with a reason and a message that says what to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".to_owned()]))]
    pub conditions: Vec<Condition>,
    /// How many repositories are bound.
    #[serde(default)]
    pub repository_count: i32,
    /// How many bound repositories have every declared webhook as declared.
    #[serde(default)]
    pub in_sync_count: i32,
    /// How many bound repositories could not be brought in line.
    #[serde(default)]
    pub failed_count: i32,
    /// The bound repositories that need attention, with what to do (at most 20, by slug).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["slug".to_owned()]))]
    pub needs_attention: Vec<RepositoryCheck>,
    /// How many more repositories need attention than are listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub needs_attention_omitted: i32,
    /// The Bitbucket ids of the bound repositories, compactly written (ascending, each as the
    /// gap from the one before, `gap+more` for a run of consecutive ids): the operator's record
    /// of where its webhooks are, so that a repository that leaves the binding loses them.
    #[serde(default, skip_serializing_if = "RepositoryIds::is_empty")]
    pub repository_ids: RepositoryIds,
    /// Names of the webhooks this binding manages on its repositories. A webhook whose name
    /// leaves `spec.webhooks` is removed from every repository; webhooks with other names are
    /// never touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub managed_webhooks: Vec<String>,
    /// The SonarQube side, with `spec.sonarqube`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sonarqube: Option<SonarQubeBindingStatus>,
}

/// How the bound repositories' SonarQube projects compare with the spec. Small at any number
/// of repositories, like the rest of the status.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SonarQubeBindingStatus {
    /// The SonarQube integration the projects are bound through (its setting key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub alm_setting_key: Option<String>,
    /// The `projectKey` or `projectKeyTemplate` the bindings were made with (a new one has the
    /// old bindings removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 400))]
    pub project_keys: Option<String>,
    /// How many bound repositories should have a SonarQube project.
    #[serde(default)]
    pub project_count: i32,
    /// How many of those projects are bound to their repository as the spec says.
    #[serde(default)]
    pub bound_count: i32,
    /// How many projects the operator created (this round and before, as far as it knows).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub created_count: i32,
    /// How many could not be read, created or bound.
    #[serde(default)]
    pub failed_count: i32,
    /// The repositories whose SonarQube project needs attention, with what to do (at most 20,
    /// by slug).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["slug".to_owned()]))]
    pub needs_attention: Vec<RepositoryCheck>,
    /// How many more need attention than are listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub needs_attention_omitted: i32,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes fields by reference
pub(crate) fn is_zero(n: &i32) -> bool {
    *n == 0
}
