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

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use kube::ResourceExt as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    api::{
        BitbucketConfiguration, BitbucketConfigurationSpec, ClusterBitbucketConfiguration, GROUP, ProjectBinding,
        RequiredReport, VERSION,
        refs::ConfigurationKind,
        validation::{is_dns_subdomain, validator_for},
    },
    bitbucket::ClientConfig,
    plan::{
        connection::{ConnectionError, SecretData, client_config},
        reasons,
        status::Outcome,
        webhooks::desired_webhooks,
    },
};

use super::plan::{BindingTarget, ConfigurationTarget, ReportTarget, ResourceId, Targets};

/// What the CLI reads, for messages.
const SUPPORTED: &str = "bitbucket.integrations.dev/v1alpha1 BitbucketConfiguration, ClusterBitbucketConfiguration, \
                         ProjectBinding and RequiredReport, v1 Secret, and a v1 List of those";

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
    fn new(file: &Path, document: usize) -> Self {
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
    /// Secrets by (namespace, name), decoded.
    pub secrets: BTreeMap<(String, String), Item<SecretData>>,
    /// The operator's namespace (see [`LoadOptions::operator_namespace`]).
    pub operator_namespace: String,
    /// Files left out because their first document is not a Kubernetes object (no `apiVersion`
    /// and no `kind`), such as the simulator's seed.
    pub skipped: Vec<PathBuf>,
}

/// One problem with the manifests. Each names the file and the document, and where known the
/// object and the field, and says what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A path given does not exist.
    #[error("{}: no such file or folder; check the path", path.display())]
    Missing {
        /// The path as given.
        path: PathBuf,
    },
    /// A file or folder cannot be read.
    #[error("{}: cannot read it ({error}); check that it is a readable YAML file or folder", path.display())]
    Unreadable {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        error: String,
    },
    /// A document is not YAML.
    #[error("{origin}, line {line} column {column}: not valid YAML: {message}; fix the syntax there")]
    Yaml {
        /// The document.
        origin: Source,
        /// Line in the file, from 1.
        line: u64,
        /// Column, from 1.
        column: u64,
        /// What the parser said, without the text around it.
        message: String,
    },
    /// A document is not a Kubernetes object.
    #[error(
        "{origin}: not a Kubernetes object (a mapping with apiVersion, kind and metadata); remove the document or complete it"
    )]
    NotAnObject {
        /// The document.
        origin: Source,
    },
    /// An object lacks `apiVersion` or `kind`.
    #[error("{origin}: the object has no {missing}; every object needs apiVersion and kind ({SUPPORTED})")]
    MissingType {
        /// The document.
        origin: Source,
        /// `apiVersion` or `kind`.
        missing: &'static str,
    },
    /// An object of a kind the CLI does not read.
    #[error("{origin}: apiVersion {api_version:?} kind {kind:?} is not understood; the CLI reads {SUPPORTED}")]
    Unsupported {
        /// The document.
        origin: Source,
        /// As written.
        api_version: String,
        /// As written.
        kind: String,
    },
    /// An object has no name.
    #[error("{origin}: {kind} has no metadata.name; give the object a name")]
    MissingName {
        /// The document.
        origin: Source,
        /// The object's kind.
        kind: String,
    },
    /// The CRD's schema or CEL rules (or Kubernetes' rules for a Secret) reject a field.
    #[error("{origin} {object}: {field}: {message}")]
    Rejected {
        /// The document.
        origin: Source,
        /// `KIND NAMESPACE/NAME`, or `KIND NAME` for a cluster-scoped object.
        object: String,
        /// The field, such as `spec.projectKey`.
        field: String,
        /// Why, as the API server would say it.
        message: String,
    },
    /// An admitted object does not fit its Rust type (a bug, or a newer CRD than this binary).
    #[error("{origin} {object}: {message}; check that this binary is as new as the CRDs")]
    Malformed {
        /// The document.
        origin: Source,
        /// `KIND NAMESPACE/NAME`.
        object: String,
        /// What did not fit.
        message: String,
    },
    /// The same object twice.
    #[error("{origin} {object}: defined twice (first in {first}); keep one")]
    Duplicate {
        /// The second definition.
        origin: Source,
        /// `KIND NAMESPACE/NAME`.
        object: String,
        /// The first definition.
        first: Source,
    },
    /// A Secret's `data` value is not base64 (the value is never shown).
    #[error("{origin} {object}: data.{key} is not base64; encode the value (base64 -w0), or put it under stringData")]
    InvalidBase64 {
        /// The document.
        origin: Source,
        /// `Secret NAMESPACE/NAME`.
        object: String,
        /// The key.
        key: String,
    },
    /// A field that must be a string is not.
    #[error("{origin} {object}: {field} must be a string; quote it (\"true\", not true)")]
    NotAString {
        /// The document.
        origin: Source,
        /// `KIND NAMESPACE/NAME`.
        object: String,
        /// The field.
        field: String,
    },
}

impl Problem {
    /// The file (or path) the problem is in.
    pub fn file(&self) -> &Path {
        match self {
            Self::Missing { path } | Self::Unreadable { path, .. } => path,
            Self::Yaml { origin, .. }
            | Self::NotAnObject { origin }
            | Self::MissingType { origin, .. }
            | Self::Unsupported { origin, .. }
            | Self::MissingName { origin, .. }
            | Self::Rejected { origin, .. }
            | Self::Malformed { origin, .. }
            | Self::Duplicate { origin, .. }
            | Self::InvalidBase64 { origin, .. }
            | Self::NotAString { origin, .. } => &origin.file,
        }
    }
}

/// Why manifests cannot be used: every problem found, one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ManifestError {
    /// In the order of the files and documents.
    pub problems: Vec<Problem>,
}

/// The configuration a binding uses, found as the operator would find it.
#[derive(Clone, Copy, Debug)]
pub struct ResolvedConfiguration<'a> {
    /// `BitbucketConfiguration` or `ClusterBitbucketConfiguration`.
    pub kind: ConfigurationKind,
    /// Its name.
    pub name: &'a str,
    /// Its namespace; `None` for a ClusterBitbucketConfiguration.
    pub namespace: Option<&'a str>,
    /// Its connection settings, defaulted.
    pub spec: &'a BitbucketConfigurationSpec,
    /// Where its Secrets are read: its own namespace, or the operator's for a cluster-scoped one.
    pub secret_namespace: &'a str,
    /// Where it was read from.
    pub source: &'a Source,
}

impl ResolvedConfiguration<'_> {
    /// The kind as written in manifests.
    pub fn kind_name(&self) -> &'static str {
        kind_name(self.kind)
    }

    /// Which configuration, for results.
    pub fn id(&self) -> ResourceId {
        ResourceId { kind: self.kind_name(), namespace: self.namespace.map(str::to_owned), name: self.name.to_owned() }
    }
}

fn kind_name(kind: ConfigurationKind) -> &'static str {
    match kind {
        ConfigurationKind::BitbucketConfiguration => "BitbucketConfiguration",
        ConfigurationKind::ClusterBitbucketConfiguration => "ClusterBitbucketConfiguration",
    }
}

/// A reference the manifests do not satisfy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// `spec.configurationRef` names a configuration that is not among the manifests.
    #[error("{kind} {} is not among the manifests; add it or fix spec.configurationRef", qualified(namespace.as_deref(), name))]
    ConfigurationNotFound {
        /// The kind referred to.
        kind: &'static str,
        /// Its namespace (the binding's), `None` for a cluster-scoped one.
        namespace: Option<String>,
        /// The name referred to.
        name: String,
    },
    /// The ClusterBitbucketConfiguration does not admit the binding's namespace.
    #[error(
        "ClusterBitbucketConfiguration {name} does not allow namespace {namespace}; add it to spec.allowedNamespaces.names"
    )]
    NamespaceNotAllowed {
        /// The configuration.
        name: String,
        /// The binding's namespace.
        namespace: String,
    },
    /// `spec.bindingRef` names a binding that is not among the manifests.
    #[error("ProjectBinding {namespace}/{name} is not among the manifests; add it or fix spec.bindingRef")]
    BindingNotFound {
        /// The report's namespace.
        namespace: String,
        /// The name referred to.
        name: String,
    },
}

impl ReferenceError {
    /// The condition reason, as the controller would write it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ConfigurationNotFound { .. } => reasons::CONFIGURATION_NOT_FOUND,
            Self::NamespaceNotAllowed { .. } => reasons::NAMESPACE_NOT_ALLOWED,
            Self::BindingNotFound { .. } => reasons::BINDING_NOT_FOUND,
        }
    }

    /// The `Stalled` outcome of the resource whose reference this is.
    pub fn outcome(&self) -> Outcome {
        Outcome::stalled(self.reason(), self.to_string())
    }
}

fn qualified(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
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
        collect(path, true, &mut files, &mut visited, &mut problems);
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

fn collect(
    path: &Path,
    given: bool,
    files: &mut Vec<PathBuf>,
    visited: &mut BTreeSet<PathBuf>,
    problems: &mut Vec<Problem>,
) {
    if path.is_dir() {
        // A symbolic link back up the tree must not loop.
        if let Ok(canonical) = path.canonicalize()
            && !visited.insert(canonical)
        {
            return;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(error) => {
                return problems.push(Problem::Unreadable { path: path.to_owned(), error: error.to_string() });
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        children.sort();
        for child in children {
            let name = child.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
            if name.starts_with('.') || !(child.is_dir() || yaml) {
                continue;
            }
            collect(&child, false, files, visited, problems);
        }
    } else if path.exists() {
        files.push(path.to_owned());
    } else if given {
        problems.push(Problem::Missing { path: path.to_owned() });
    }
}

/// One document of a YAML stream.
struct Document {
    /// From 1.
    number: usize,
    /// The file's line the document's text starts on, from 1.
    first_line: u64,
    /// The text, `---` marker included, so that the parser's lines map onto the file's.
    text: String,
}

/// Splits a YAML stream at `---` lines. Documents holding nothing (a file that starts with
/// `---`, perhaps after comments, or `---` twice) are dropped and not counted, so that document
/// N is the N-th object in the file.
fn documents(text: &str) -> Vec<Document> {
    let mut documents = vec![Document { number: 1, first_line: 1, text: String::new() }];
    for (index, line) in text.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        let line_number = index as u64 + 1;
        let Some(current) = documents.last_mut() else { break };
        if marker && is_blank(&current.text) {
            // Replace what held nothing: the parser must see one document only.
            current.first_line = line_number;
            current.text.clear();
        } else if marker {
            let number = current.number + 1;
            documents.push(Document { number, first_line: line_number, text: String::new() });
        }
        if let Some(current) = documents.last_mut() {
            current.text.push_str(line);
            current.text.push('\n');
        }
    }
    documents
}

/// Whether a document holds nothing but comments, directives and markers.
fn is_blank(document: &str) -> bool {
    document.lines().all(|line| {
        let line = line.trim();
        line.is_empty()
            || line.starts_with('#')
            || line.starts_with('%')
            || line == "---"
            || line == "..."
            || line.starts_with("--- #")
    })
}

/// A parser error without the quoted text around it (which could hold a credential), with the
/// position counted in the file.
fn yaml_problem(error: &serde_saphyr::Error, document: &Document, file: &Path) -> Problem {
    let plain = error.without_snippet().to_string();
    let mut message = plain.as_str();
    if let Some(at) = message.rfind(" at line ") {
        message = &message[..at];
    }
    if let Some(at) = message.find(", set DuplicateKeyPolicy") {
        message = &message[..at];
    }
    let (line, column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
    Problem::Yaml {
        origin: Source::new(file, document.number),
        line: document.first_line + line.saturating_sub(1),
        column,
        message: one_line(message),
    }
}

impl Manifests {
    /// Reads the objects of one YAML text (a file's content, named `file` in messages) into
    /// these manifests and returns the problems found. A text whose first document is not a
    /// Kubernetes object (no `apiVersion` and no `kind`) is skipped whole.
    pub fn read_text(&mut self, text: &str, file: &Path, options: &LoadOptions) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut first = true;
        for document in documents(text) {
            if is_blank(&document.text) {
                continue;
            }
            let value: Value = match serde_saphyr::from_str(&document.text) {
                Ok(value) => value,
                Err(error) => {
                    problems.push(yaml_problem(&error, &document, file));
                    first = false;
                    continue;
                }
            };
            if value.is_null() {
                continue;
            }
            if first && value.get("apiVersion").is_none() && value.get("kind").is_none() {
                tracing::debug!(
                    file = %file.display(),
                    "skipped: its first document is not a Kubernetes object (no apiVersion or kind)"
                );
                self.skipped.push(file.to_owned());
                return problems;
            }
            first = false;
            self.add_value(value, Source::new(file, document.number), options, &mut problems);
        }
        problems
    }

    /// [`Manifests::read_text`] with the problems as text, for callers that only show them.
    pub fn add_text(&mut self, text: &str, file: &Path, options: &LoadOptions, problems: &mut Vec<String>) {
        problems.extend(self.read_text(text, file, options).iter().map(ToString::to_string));
    }

    fn add_value(&mut self, mut value: Value, origin: Source, options: &LoadOptions, problems: &mut Vec<Problem>) {
        if !value.is_object() {
            return problems.push(Problem::NotAnObject { origin });
        }
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let (api_version, kind) = match (text("apiVersion"), text("kind")) {
            (Some(api_version), Some(kind)) => (api_version, kind),
            (None, _) => return problems.push(Problem::MissingType { origin, missing: "apiVersion" }),
            (_, None) => return problems.push(Problem::MissingType { origin, missing: "kind" }),
        };
        let ours = format!("{GROUP}/{VERSION}");
        let known = match (api_version.as_str(), kind.as_str()) {
            ("v1", "List") => {
                let Some(items) = value.get_mut("items").map(Value::take).and_then(|v| match v {
                    Value::Array(items) => Some(items),
                    _ => None,
                }) else {
                    let object = "List".to_owned();
                    return problems.push(Problem::Rejected {
                        origin,
                        object,
                        field: "items".into(),
                        message: "must be a list of objects".into(),
                    });
                };
                for (index, item) in items.into_iter().enumerate() {
                    let origin = Source { item: Some(index), ..origin.clone() };
                    self.add_value(item, origin, options, problems);
                }
                return;
            }
            ("v1", "Secret") => true,
            (
                version,
                "BitbucketConfiguration" | "ClusterBitbucketConfiguration" | "ProjectBinding" | "RequiredReport",
            ) => version == ours,
            _ => false,
        };
        if !known {
            return problems.push(Problem::Unsupported { origin, api_version, kind });
        }
        let Some(name) = value.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned) else {
            return problems.push(Problem::MissingName { origin, kind });
        };
        let namespace = if kind == "ClusterBitbucketConfiguration" {
            // As the API server does for a cluster-scoped object.
            if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("namespace");
            }
            None
        } else {
            let namespace = match value.pointer("/metadata/namespace") {
                None | Some(Value::Null) => options.default_namespace.clone(),
                Some(Value::String(namespace)) => namespace.clone(),
                Some(_) => {
                    let object = format!("{kind} {name}");
                    let field = "metadata.namespace".into();
                    return problems.push(Problem::NotAString { origin, object, field });
                }
            };
            value["metadata"]["namespace"] = Value::String(namespace.clone());
            Some(namespace)
        };
        let object = format!("{kind} {}", qualified(namespace.as_deref(), &name));
        if let Some(first) = self.source_of(&kind, namespace.as_deref(), &name) {
            let first = first.clone();
            return problems.push(Problem::Duplicate { origin, object, first });
        }
        match kind.as_str() {
            "Secret" => {
                if let Some(data) = secret_data(&value, &name, &origin, &object, problems) {
                    let key = (namespace.unwrap_or_default(), name);
                    self.secrets.insert(key, Item { object: data, source: origin });
                }
            }
            "BitbucketConfiguration" => {
                if let Some(object) = admit(&value, &origin, &object, problems) {
                    self.configurations.push(Item { object, source: origin });
                }
            }
            "ClusterBitbucketConfiguration" => {
                if let Some(object) = admit(&value, &origin, &object, problems) {
                    self.cluster_configurations.push(Item { object, source: origin });
                }
            }
            "ProjectBinding" => {
                if let Some(object) = admit(&value, &origin, &object, problems) {
                    self.bindings.push(Item { object, source: origin });
                }
            }
            "RequiredReport" => {
                if let Some(object) = admit(&value, &origin, &object, problems) {
                    self.reports.push(Item { object, source: origin });
                }
            }
            _ => problems.push(Problem::Unsupported { origin, api_version, kind }),
        }
    }

    /// Where an object of this kind, namespace and name was read, if it was.
    fn source_of(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<&Source> {
        fn find<'a, K: kube::Resource>(
            items: &'a [Item<K>],
            namespace: Option<&str>,
            name: &str,
        ) -> Option<&'a Source> {
            items
                .iter()
                .find(|i| {
                    i.object.meta().name.as_deref() == Some(name) && i.object.meta().namespace.as_deref() == namespace
                })
                .map(|i| &i.source)
        }
        match kind {
            "Secret" => {
                self.secrets.get(&(namespace.unwrap_or_default().to_owned(), name.to_owned())).map(|i| &i.source)
            }
            "BitbucketConfiguration" => find(&self.configurations, namespace, name),
            "ClusterBitbucketConfiguration" => find(&self.cluster_configurations, None, name),
            "ProjectBinding" => find(&self.bindings, namespace, name),
            "RequiredReport" => find(&self.reports, namespace, name),
            _ => None,
        }
    }

    /// Points every configuration at `url` (allowing plain http, dropping TLS settings), for the
    /// demo and for trying manifests against a simulator.
    pub fn point_at(&mut self, url: &str) {
        for item in &mut self.configurations {
            item.object.spec.url = url.to_owned();
            item.object.spec.allow_insecure_http = true;
            item.object.spec.tls = None;
        }
        for item in &mut self.cluster_configurations {
            item.object.spec.connection.url = url.to_owned();
            item.object.spec.connection.allow_insecure_http = true;
            item.object.spec.connection.tls = None;
        }
    }

    /// Whether nothing of the operator's kinds was read (Secrets alone do not count).
    pub fn is_empty(&self) -> bool {
        self.configurations.is_empty()
            && self.cluster_configurations.is_empty()
            && self.bindings.is_empty()
            && self.reports.is_empty()
    }

    /// The Secret `namespace/name`, decoded.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<SecretData> {
        self.secrets.get(&(namespace.to_owned(), name.to_owned())).map(|i| i.object.clone())
    }

    /// Every configuration, the namespaced ones first, in the order read.
    pub fn all_configurations(&self) -> Vec<ResolvedConfiguration<'_>> {
        let namespaced = self.configurations.iter().map(|item| {
            let namespace = item.object.metadata.namespace.as_deref().unwrap_or_default();
            ResolvedConfiguration {
                kind: ConfigurationKind::BitbucketConfiguration,
                name: item.object.metadata.name.as_deref().unwrap_or_default(),
                namespace: Some(namespace),
                spec: &item.object.spec,
                secret_namespace: namespace,
                source: &item.source,
            }
        });
        let cluster = self.cluster_configurations.iter().map(|item| ResolvedConfiguration {
            kind: ConfigurationKind::ClusterBitbucketConfiguration,
            name: item.object.metadata.name.as_deref().unwrap_or_default(),
            namespace: None,
            spec: &item.object.spec.connection,
            secret_namespace: &self.operator_namespace,
            source: &item.source,
        });
        namespaced.chain(cluster).collect()
    }

    /// The client settings of a configuration, with its credential from the manifests' Secrets
    /// (exactly the operator's rules: own namespace, credential label, keys).
    pub fn client_config(&self, configuration: &ResolvedConfiguration<'_>) -> Result<ClientConfig, ConnectionError> {
        let namespace = configuration.secret_namespace;
        client_config(configuration.spec, namespace, |name| self.secret(namespace, name))
    }

    /// The configuration a binding uses: the BitbucketConfiguration of its `configurationRef` in
    /// its namespace, or the ClusterBitbucketConfiguration of that name if its
    /// `allowedNamespaces` admits the binding's namespace (see the module's notes on labels).
    pub fn configuration_for(&self, binding: &ProjectBinding) -> Result<ResolvedConfiguration<'_>, ReferenceError> {
        let namespace = binding.namespace().unwrap_or_default();
        let reference = &binding.spec.configuration_ref;
        let found = self.all_configurations().into_iter().find(|c| {
            c.kind == reference.kind
                && c.name == reference.name
                && (c.kind == ConfigurationKind::ClusterBitbucketConfiguration || c.namespace == Some(&namespace))
        });
        let Some(configuration) = found else {
            return Err(ReferenceError::ConfigurationNotFound {
                kind: kind_name(reference.kind),
                namespace: (reference.kind == ConfigurationKind::BitbucketConfiguration).then_some(namespace),
                name: reference.name.clone(),
            });
        };
        if configuration.kind == ConfigurationKind::ClusterBitbucketConfiguration {
            let allowed = self
                .cluster_configurations
                .iter()
                .find(|c| c.object.metadata.name.as_deref() == Some(configuration.name))
                .is_some_and(|c| c.object.spec.allowed_namespaces.admits(&namespace, &namespace_labels(&namespace)));
            if !allowed {
                return Err(ReferenceError::NamespaceNotAllowed { name: reference.name.clone(), namespace });
            }
        }
        Ok(configuration)
    }

    /// The binding a required report applies to: the ProjectBinding of its `bindingRef` in its
    /// namespace.
    pub fn binding_for(&self, report: &RequiredReport) -> Result<&Item<ProjectBinding>, ReferenceError> {
        let namespace = report.namespace().unwrap_or_default();
        let name = &report.spec.binding_ref.name;
        self.bindings
            .iter()
            .find(|b| b.object.metadata.namespace.as_deref() == Some(&namespace) && &b.object.name_any() == name)
            .ok_or_else(|| ReferenceError::BindingNotFound { namespace, name: name.clone() })
    }

    /// What `plan`/`apply` work on: configurations with their client settings, bindings with
    /// their configuration and webhooks, reports with their binding. A reference that the
    /// manifests do not satisfy becomes that resource's `Stalled` outcome.
    pub fn targets(&self) -> Targets {
        let mut targets = Targets::default();
        for configuration in self.all_configurations() {
            targets.configurations.push(ConfigurationTarget {
                source: configuration.source.to_string(),
                id: configuration.id(),
                settings: self.client_config(&configuration),
            });
        }
        for item in &self.bindings {
            let binding = &item.object;
            let namespace = binding.namespace().unwrap_or_default();
            let configuration = self.configuration_for(binding).map_err(|e| e.outcome()).and_then(|found| {
                let id = found.id();
                targets.configurations.iter().position(|c| c.id == id).ok_or_else(|| {
                    ReferenceError::ConfigurationNotFound {
                        kind: found.kind_name(),
                        namespace: found.namespace.map(str::to_owned),
                        name: found.name.to_owned(),
                    }
                    .outcome()
                })
            });
            targets.bindings.push(BindingTarget {
                source: item.source.to_string(),
                id: ResourceId { kind: "ProjectBinding", namespace: Some(namespace.clone()), name: binding.name_any() },
                spec: binding.spec.clone(),
                configuration,
                webhooks: desired_webhooks(&binding.spec, &namespace, |name| self.secret(&namespace, name)),
            });
        }
        for item in &self.reports {
            let report = &item.object;
            let namespace = report.namespace().unwrap_or_default();
            let binding = self.binding_for(report).map_err(|e| e.outcome()).and_then(|found| {
                let name = found.object.name_any();
                targets
                    .bindings
                    .iter()
                    .position(|b| b.id.namespace.as_deref() == Some(namespace.as_str()) && b.id.name == name)
                    .ok_or_else(|| ReferenceError::BindingNotFound { namespace: namespace.clone(), name }.outcome())
            });
            targets.reports.push(ReportTarget {
                source: item.source.to_string(),
                id: ResourceId { kind: "RequiredReport", namespace: Some(namespace), name: report.name_any() },
                spec: report.spec.clone(),
                binding,
            });
        }
        targets
    }
}

/// The labels a namespace has when all that is known is its name: the one Kubernetes sets on
/// every namespace.
fn namespace_labels(namespace: &str) -> BTreeMap<String, String> {
    [("kubernetes.io/metadata.name".to_owned(), namespace.to_owned())].into()
}

/// A Secret's labels and decoded data, checked as the API server would (string labels, base64
/// `data`, string `stringData`, which wins over `data`). Values never reach a message.
fn secret_data(
    value: &Value,
    name: &str,
    origin: &Source,
    object: &str,
    problems: &mut Vec<Problem>,
) -> Option<SecretData> {
    let before = problems.len();
    let rejected = |field: &str, message: &str| Problem::Rejected {
        origin: origin.clone(),
        object: object.to_owned(),
        field: field.to_owned(),
        message: message.to_owned(),
    };
    let not_a_string = |field: String| Problem::NotAString { origin: origin.clone(), object: object.to_owned(), field };
    if !is_dns_subdomain(name) || name.len() > 253 {
        problems.push(rejected(
            "metadata.name",
            "must consist of lower-case letters, digits, '-' or '.', and start and end with a letter or digit",
        ));
    }
    let mut data = SecretData::default();
    for (path, field) in [("/metadata/labels", "metadata.labels"), ("/data", "data"), ("/stringData", "stringData")] {
        if !matches!(value.pointer(path), None | Some(Value::Null) | Some(Value::Object(_))) {
            problems.push(rejected(field, "must be a mapping of keys to strings"));
        }
    }
    for (key, label) in value.pointer("/metadata/labels").and_then(Value::as_object).into_iter().flatten() {
        match label.as_str() {
            Some(label) => {
                data.labels.insert(key.clone(), label.to_owned());
            }
            None => problems.push(not_a_string(format!("metadata.labels.{key}"))),
        }
    }
    for (key, encoded) in value.get("data").and_then(Value::as_object).into_iter().flatten() {
        let Some(text) = encoded.as_str() else {
            problems.push(not_a_string(format!("data.{key}")));
            continue;
        };
        match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(bytes) => {
                data.data.insert(key.clone(), bytes);
            }
            Err(_) => problems.push(Problem::InvalidBase64 {
                origin: origin.clone(),
                object: object.to_owned(),
                key: key.clone(),
            }),
        }
    }
    for (key, plain) in value.get("stringData").and_then(Value::as_object).into_iter().flatten() {
        match plain.as_str() {
            Some(text) => {
                data.data.insert(key.clone(), text.as_bytes().to_vec());
            }
            None => problems.push(not_a_string(format!("stringData.{key}"))),
        }
    }
    (problems.len() == before).then_some(data)
}

/// Checks an object against its CRD (schema, defaults, CEL) and reads it into its type.
fn admit<K: DeserializeOwned>(value: &Value, origin: &Source, object: &str, problems: &mut Vec<Problem>) -> Option<K> {
    let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(validator) = validator_for(api_version, kind) else {
        problems.push(Problem::Unsupported {
            origin: origin.clone(),
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        });
        return None;
    };
    match validator.admit(value, None) {
        Ok(admitted) => match serde_json::from_value(admitted) {
            Ok(object) => Some(object),
            Err(error) => {
                problems.push(Problem::Malformed {
                    origin: origin.clone(),
                    object: object.to_owned(),
                    message: one_line(&error.to_string()),
                });
                None
            }
        },
        Err(errors) => {
            problems.extend(errors.into_iter().map(|error| Problem::Rejected {
                origin: origin.clone(),
                object: object.to_owned(),
                field: error.field,
                message: error.message,
            }));
            None
        }
    }
}

/// One line, at most 300 bytes.
fn one_line(text: &str) -> String {
    crate::plan::status::shorten(&text.split_whitespace().collect::<Vec<_>>().join(" "), 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP_VERSION: &str = "apiVersion: bitbucket.integrations.dev/v1alpha1";

    fn read(texts: &[(&str, &str)], options: &LoadOptions) -> (Manifests, Vec<Problem>) {
        let mut manifests = Manifests { operator_namespace: options.operator_namespace.clone(), ..Default::default() };
        let mut problems = Vec::new();
        for (file, text) in texts {
            problems.extend(manifests.read_text(text, Path::new(file), options));
        }
        (manifests, problems)
    }

    fn configuration(name: &str, namespace: Option<&str>) -> String {
        let namespace = namespace.map(|n| format!(", namespace: {n}")).unwrap_or_default();
        format!(
            "{GROUP_VERSION}\nkind: BitbucketConfiguration\nmetadata: {{name: {name}{namespace}}}\nspec:\n  url: https://bitbucket.example.com\n  auth: {{token: {{secretRef: {{name: token}}}}}}\n"
        )
    }

    fn cluster_configuration(name: &str, allowed: &str) -> String {
        format!(
            "{GROUP_VERSION}\nkind: ClusterBitbucketConfiguration\nmetadata: {{name: {name}, namespace: ignored}}\nspec:\n  url: https://bitbucket.example.com\n  auth: {{token: {{secretRef: {{name: token}}}}}}\n  allowedNamespaces: {allowed}\n"
        )
    }

    fn binding(name: &str, namespace: &str, reference: &str) -> String {
        format!(
            "{GROUP_VERSION}\nkind: ProjectBinding\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  configurationRef: {reference}\n  projectKey: PAY\n  repositorySlug: payments-api\n"
        )
    }

    const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  labels: {bitbucket.integrations.dev/credential: \"true\"}\nstringData: {token: BBDC-value}\n";

    #[test]
    fn documents_keep_their_numbers_and_the_file_lines() {
        let text = "# header\n---\na: 1\n---\n---\n# only a comment\n--- {b: 2}\n---\n";
        let documents = documents(text);
        let shown: Vec<(usize, u64, bool)> =
            documents.iter().map(|d| (d.number, d.first_line, is_blank(&d.text))).collect();
        // A leading marker does not start a second document; empty documents do not count.
        assert_eq!(shown, vec![(1, 2, false), (2, 7, false), (3, 8, true)]);
        let values: Vec<Value> =
            documents.iter().filter_map(|d| serde_saphyr::from_str::<Value>(&d.text).ok()).collect();
        assert_eq!(values[..2], [serde_json::json!({"a": 1}), serde_json::json!({"b": 2})]);
    }

    #[test]
    fn yaml_errors_give_the_line_in_the_file_and_never_the_text() {
        let text = format!(
            "{SECRET}---\n{SECRET}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: x}}\nstringData: {{token: [BBDC-leaked\n"
        );
        let (_, problems) = read(&[("team.yaml", &text)], &LoadOptions::default());
        assert_eq!(problems.len(), 2, "{problems:?}");
        let Problem::Yaml { origin, line, .. } = &problems[1] else { panic!("{problems:?}") };
        assert_eq!((origin.document, *line), (3, 18), "{}", problems[1]);
        let text = problems[1].to_string();
        assert!(text.starts_with("team.yaml (document 3), line 18 column"), "{text}");
        assert!(!text.contains("BBDC-leaked"), "{text}");
        // The second Secret is the same as the first.
        assert!(problems[0].to_string().contains("defined twice (first in team.yaml (document 1))"), "{}", problems[0]);
    }

    #[test]
    fn a_file_that_is_not_a_manifest_is_skipped_but_a_stray_document_is_not() {
        let seed = "server: {version: \"9.4.22\"}\n---\nusers: []\n";
        let stray = format!("{SECRET}---\nusers: []\n");
        let (manifests, problems) = read(&[("seed.yaml", seed), ("stray.yaml", &stray)], &LoadOptions::default());
        assert_eq!(manifests.skipped, vec![PathBuf::from("seed.yaml")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].to_string().starts_with("stray.yaml (document 2): the object has no apiVersion"));
        assert_eq!(problems[0].file(), Path::new("stray.yaml"));
    }

    #[test]
    fn list_items_and_unsupported_kinds_are_named() {
        let text = "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: c}\n  - apiVersion: bitbucket.integrations.dev/v1beta1\n    kind: ProjectBinding\n    metadata: {name: b}\n";
        let (_, problems) = read(&[("list.yaml", text)], &LoadOptions::default());
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts[0].starts_with("list.yaml (document 1) items[0]: apiVersion \"v1\" kind \"ConfigMap\""));
        assert!(texts[1].contains("(document 1) items[1]: apiVersion \"bitbucket.integrations.dev/v1beta1\""));
        assert!(texts.iter().all(|t| t.contains("the CLI reads")), "{texts:?}");
    }

    #[test]
    fn objects_are_defaulted_and_namespaced_as_the_cluster_would() {
        let report = format!(
            "{GROUP_VERSION}\nkind: RequiredReport\nmetadata: {{name: r}}\nspec: {{bindingRef: {{name: b}}}}\n"
        );
        let options = LoadOptions { default_namespace: "team".into(), ..LoadOptions::default() };
        let text = format!("{report}---\n{}", cluster_configuration("shared", "{names: [team]}"));
        let (manifests, problems) = read(&[("r.yaml", &text)], &options);
        assert!(problems.is_empty(), "{problems:?}");
        let report = &manifests.reports[0].object;
        assert_eq!(report.metadata.namespace.as_deref(), Some("team"));
        assert!(report.spec.must_pass, "mustPass defaults to true");
        assert_eq!(manifests.cluster_configurations[0].object.metadata.namespace, None);
        let missing = manifests.binding_for(report).expect_err("no binding");
        assert_eq!(missing.reason(), reasons::BINDING_NOT_FOUND);
        assert!(missing.to_string().contains("ProjectBinding team/b is not among the manifests"), "{missing}");
    }

    #[test]
    fn secrets_are_checked_without_showing_values() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels: {bitbucket.integrations.dev/credential: true}\ndata: {a: \"c2VjcmV0\", b: \"s3cr3t!\"}\nstringData: {c: 5}\n";
        let (manifests, problems) = read(&[("s.yaml", text)], &LoadOptions::default());
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert!(
            texts[0]
                .contains("Secret default/s: metadata.labels.bitbucket.integrations.dev/credential must be a string")
        );
        assert!(texts[1].contains("data.b is not base64"));
        assert!(texts[2].contains("stringData.c must be a string"));
        assert!(!texts.iter().any(|t| t.contains("s3cr3t") || t.contains("c2VjcmV0")), "{texts:?}");
        assert!(manifests.secrets.is_empty());

        let good =
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {token: c2VjcmV0}\nstringData: {token: plain}\n";
        let (manifests, problems) = read(&[("s.yaml", good)], &LoadOptions::default());
        assert!(problems.is_empty(), "{problems:?}");
        let secret = manifests.secret("default", "s").expect("the Secret");
        assert_eq!(secret.data.get("token").map(Vec::as_slice), Some(&b"plain"[..]), "stringData wins");
    }

    #[test]
    fn bindings_find_their_configuration_as_the_operator_would() {
        let options = LoadOptions { default_namespace: "team".into(), operator_namespace: "ops".into() };
        let texts = [
            ("c.yaml", configuration("bb", None)),
            ("other.yaml", configuration("elsewhere", Some("other"))),
            ("s.yaml", SECRET.replace("name: token", "name: token\n  namespace: ops")),
            ("names.yaml", cluster_configuration("by-name", "{names: [team]}")),
            ("all.yaml", cluster_configuration("everyone", "{selector: {}}")),
            (
                "label.yaml",
                cluster_configuration("by-label", "{selector: {matchLabels: {kubernetes.io/metadata.name: team}}}"),
            ),
            ("env.yaml", cluster_configuration("by-env", "{selector: {matchLabels: {env: prod}}}")),
        ];
        let texts: Vec<(&str, &str)> = texts.iter().map(|(f, t)| (*f, t.as_str())).collect();
        let (manifests, problems) = read(&texts, &options);
        assert!(problems.is_empty(), "{problems:?}");
        let resolve = |reference: &str| {
            let text = binding("b", "team", reference);
            let (extra, problems) = read(&[("b.yaml", &text)], &options);
            assert!(problems.is_empty(), "{problems:?}");
            manifests
                .configuration_for(&extra.bindings[0].object)
                .map(|c| (c.kind_name(), c.name.to_owned(), c.secret_namespace.to_owned()))
        };
        assert_eq!(resolve("{name: bb}"), Ok(("BitbucketConfiguration", "bb".into(), "team".into())));
        for name in ["by-name", "everyone", "by-label"] {
            let found = resolve(&format!("{{kind: ClusterBitbucketConfiguration, name: {name}}}"));
            assert_eq!(found, Ok(("ClusterBitbucketConfiguration", name.into(), "ops".into())));
        }
        let refused = resolve("{kind: ClusterBitbucketConfiguration, name: by-env}").expect_err("a label files lack");
        assert_eq!(refused.reason(), reasons::NAMESPACE_NOT_ALLOWED);
        let missing = resolve("{name: elsewhere}").expect_err("another namespace's");
        assert_eq!(missing.reason(), reasons::CONFIGURATION_NOT_FOUND);
        assert!(missing.to_string().contains("BitbucketConfiguration team/elsewhere"), "{missing}");
        let missing = resolve("{kind: ClusterBitbucketConfiguration, name: bb}").expect_err("wrong kind");
        assert!(missing.to_string().starts_with("ClusterBitbucketConfiguration bb is not"), "{missing}");

        // Cluster-scoped configurations read their Secret in the operator's namespace.
        let all = manifests.all_configurations();
        let cluster = all.iter().find(|c| c.name == "by-name").expect("by-name");
        assert!(manifests.client_config(cluster).is_ok());
        let namespaced = all.iter().find(|c| c.name == "bb").expect("bb");
        assert_eq!(
            manifests.client_config(namespaced).map(|_| ()).map_err(|e| e.reason()),
            Err(reasons::SECRET_NOT_FOUND)
        );
    }

    #[test]
    fn targets_carry_the_resolution() {
        let options = LoadOptions::default();
        let text =
            format!("{}---\n{SECRET}---\n{}", configuration("bb", None), binding("b", "default", "{name: missing}"));
        let (manifests, problems) = read(&[("t.yaml", &text)], &options);
        assert!(problems.is_empty(), "{problems:?}");
        let targets = manifests.targets();
        assert!(targets.configurations[0].settings.is_ok());
        assert_eq!(targets.configurations[0].source, "t.yaml (document 1)");
        let outcome = targets.bindings[0].configuration.as_ref().expect_err("no such configuration");
        assert_eq!(outcome.reason, reasons::CONFIGURATION_NOT_FOUND);
    }
}
