//! Reading the manifests a team commits, for `plan`, `apply` and `check -f`: YAML files or
//! folders, several documents each, with the operator's kinds and the Secrets they name.
//!
//! Every operator object is checked against its CRD's schema and CEL rules exactly as the API
//! server would ([`validator_for`]), defaulted the same way, and only then read into its Rust
//! type, so the CLI works on what the cluster would store. Every problem names the file and the
//! document, and where known the object and the field, and says what to do; all problems of all
//! files are reported at once.
//!
//! ```no_run
//! use std::path::PathBuf;
//! use bitbucket_operator::cli::manifests::{LoadOptions, load};
//!
//! let manifests = load(&[PathBuf::from("examples/")], &LoadOptions::default())?;
//! for binding in &manifests.bindings {
//!     let configuration = manifests.configuration_for(&binding.object)?;
//!     println!("{} uses {} {}", binding.source, configuration.kind_name(), configuration.name);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What differs from a cluster:
//! - Objects without `metadata.namespace` go into [`LoadOptions::default_namespace`], as with
//!   `kubectl apply -f` and no `-n`.
//! - The Secrets of a ClusterBitbucketConfiguration are looked up in
//!   [`LoadOptions::operator_namespace`], like the operator does.
//! - Files carry no Namespace objects, so a namespace has only the label Kubernetes gives every
//!   namespace, `kubernetes.io/metadata.name: <name>`. A ClusterBitbucketConfiguration's
//!   `allowedNamespaces` therefore admits a namespace read from files when it lists its name, when
//!   its selector is empty (`{}`), or when its selector asks only for that label; any other
//!   selector admits nothing here (list the namespace under `names` to use it from files).
//!
//! [`validator_for`]: crate::api::validation::validator_for

mod admission;
mod documents;
mod problem;
mod references;
mod secrets;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::{Path, PathBuf},
};

use crate::{
    api::{BitbucketConfiguration, ClusterBitbucketConfiguration, ProjectBinding, RequiredBuild, RequiredReport},
    plan::connection::SecretData,
};

pub use problem::{ManifestError, Problem};
pub use references::{ReferenceError, ResolvedConfiguration};

/// Where an object was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The file.
    pub file: PathBuf,
    /// The document in it, from 1 (documents are separated by `---` lines).
    pub document: usize,
    /// The entry of a `kind: List` document's `items`, from 0 (shown as `items[N]`).
    pub item: Option<usize>,
}

impl Source {
    pub(super) fn new(file: &Path, document: usize) -> Self {
        Self { file: file.to_owned(), document, item: None }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            Some(item) => write!(f, "{} (document {}) items[{item}]", self.file.display(), self.document),
            None => write!(f, "{} (document {})", self.file.display(), self.document),
        }
    }
}

/// An object and where it came from.
#[derive(Clone, Debug)]
pub struct Item<T> {
    /// The object, defaulted as the API server would store it.
    pub object: T,
    /// Its source.
    pub source: Source,
}

/// How to read manifests.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The namespace of objects that name none (as `kubectl apply` without `-n`). Default
    /// `default`.
    pub default_namespace: String,
    /// The operator's namespace, where the Secrets of ClusterBitbucketConfigurations live.
    /// Default `bitbucket-operator`.
    pub operator_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { default_namespace: "default".into(), operator_namespace: "bitbucket-operator".into() }
    }
}

/// Everything read, each object with its [`Source`].
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    /// BitbucketConfigurations, namespace filled in.
    pub configurations: Vec<Item<BitbucketConfiguration>>,
    /// ClusterBitbucketConfigurations.
    pub cluster_configurations: Vec<Item<ClusterBitbucketConfiguration>>,
    /// ProjectBindings, namespace filled in.
    pub bindings: Vec<Item<ProjectBinding>>,
    /// RequiredReports, namespace filled in.
    pub reports: Vec<Item<RequiredReport>>,
    /// RequiredBuilds, namespace filled in.
    pub builds: Vec<Item<RequiredBuild>>,
    /// SonarQubeConfigurations, namespace filled in.
    pub sonarqube_configurations: Vec<Item<crate::api::SonarQubeConfiguration>>,
    /// Secrets by (namespace, name), decoded.
    pub secrets: BTreeMap<(String, String), Item<SecretData>>,
    /// The operator's namespace (see [`LoadOptions::operator_namespace`]).
    pub operator_namespace: String,
    /// Files left out because their first document is not a Kubernetes object (no `apiVersion`
    /// and no `kind`), such as the simulator's seed.
    pub skipped: Vec<PathBuf>,
}

/// Reads YAML files and folders: a folder is read recursively, taking `*.yaml` and `*.yml`
/// files in path order and skipping hidden files and folders; a file given by name is read
/// whatever its extension. A file whose first document has no `apiVersion` and no `kind` is
/// not a manifest and is skipped (see [`Manifests::skipped`]). Returns every problem at once.
pub fn load(paths: &[PathBuf], options: &LoadOptions) -> Result<Manifests, ManifestError> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let mut visited = BTreeSet::new();
    for path in paths {
        documents::collect(path, true, &mut files, &mut visited, &mut problems);
    }
    let mut manifests = Manifests { operator_namespace: options.operator_namespace.clone(), ..Default::default() };
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => problems.extend(manifests.read_text(&text, &file, options)),
            Err(error) => problems.push(Problem::Unreadable { path: file, error: error.to_string() }),
        }
    }
    if problems.is_empty() { Ok(manifests) } else { Err(ManifestError { problems }) }
}

impl Manifests {
    /// Points every configuration at `url` (allowing plain http, dropping TLS settings), for the
    /// demo and for trying manifests against a simulator. SonarQube is given the same URL for
    /// Bitbucket (`sonarqube.bitbucketUrl` is dropped): it must reach the same server.
    pub fn point_at(&mut self, url: &str) {
        let specs = self
            .configurations
            .iter_mut()
            .map(|item| &mut item.object.spec)
            .chain(self.cluster_configurations.iter_mut().map(|item| &mut item.object.spec.connection));
        for spec in specs {
            spec.url = url.to_owned();
            spec.allow_insecure_http = true;
            spec.tls = None;
            if let Some(block) = &mut spec.sonarqube {
                block.bitbucket_url = None;
            }
        }
    }

    /// Points every SonarQubeConfiguration at `url` (allowing plain http, dropping TLS
    /// settings), as [`Manifests::point_at`] does for Bitbucket.
    pub fn point_sonarqube_at(&mut self, url: &str) {
        for item in &mut self.sonarqube_configurations {
            item.object.spec.url = url.to_owned();
            item.object.spec.allow_insecure_http = true;
            item.object.spec.tls = None;
        }
    }

    /// Whether nothing of the operator's kinds was read (Secrets alone do not count).
    pub fn is_empty(&self) -> bool {
        self.configurations.is_empty()
            && self.cluster_configurations.is_empty()
            && self.bindings.is_empty()
            && self.reports.is_empty()
            && self.builds.is_empty()
            && self.sonarqube_configurations.is_empty()
    }

    /// The Secret `namespace/name`, decoded.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<SecretData> {
        self.secrets.get(&(namespace.to_owned(), name.to_owned())).map(|i| i.object.clone())
    }
}
