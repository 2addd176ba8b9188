//! Reading the manifests a team commits: YAML files or folders, several documents each, with the
//! operator's kinds and the Secrets they name. Every object is checked against its CRD's schema
//! and CEL rules exactly as the API server would, and defaulted the same way, so the CLI works on
//! what the cluster would store. Errors name the file, the document, the object and the field.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    api::{
        BitbucketConfiguration, ClusterBitbucketConfiguration, GROUP, ProjectBinding, RequiredReport, VERSION,
        refs::ConfigurationKind, validation::validator_for,
    },
    plan::{
        connection::{SecretData, client_config},
        reasons,
        status::Outcome,
        webhooks::desired_webhooks,
    },
};

use super::plan::{BindingTarget, ConfigurationTarget, ReportTarget, ResourceId, Targets};

/// Where an object was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The file.
    pub file: PathBuf,
    /// The document in it, from 1.
    pub document: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.document)
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
    /// The namespace of objects that name none (as `kubectl apply` without `-n`).
    pub default_namespace: String,
    /// The operator's namespace, where the Secrets of ClusterBitbucketConfigurations live.
    pub operator_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { default_namespace: "default".into(), operator_namespace: "bitbucket-operator".into() }
    }
}

/// Everything read.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    /// BitbucketConfigurations.
    pub configurations: Vec<Item<BitbucketConfiguration>>,
    /// ClusterBitbucketConfigurations.
    pub cluster_configurations: Vec<Item<ClusterBitbucketConfiguration>>,
    /// ProjectBindings.
    pub bindings: Vec<Item<ProjectBinding>>,
    /// RequiredReports.
    pub reports: Vec<Item<RequiredReport>>,
    /// Secrets by (namespace, name).
    pub secrets: BTreeMap<(String, String), Item<SecretData>>,
    /// The operator's namespace.
    pub operator_namespace: String,
}

/// Why manifests cannot be used: every problem found, one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct ManifestError {
    /// Each names the file and, where known, the object and the field, and says what to do.
    pub problems: Vec<String>,
}

/// Reads files and folders (recursively, `*.yaml` and `*.yml`, hidden ones skipped).
pub fn load(paths: &[PathBuf], options: &LoadOptions) -> Result<Manifests, ManifestError> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        collect(path, &mut files, &mut problems);
    }
    let mut manifests = Manifests { operator_namespace: options.operator_namespace.clone(), ..Default::default() };
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => manifests.add_text(&text, &file, options, &mut problems),
            Err(error) => problems.push(format!("{}: cannot read: {error}", file.display())),
        }
    }
    if problems.is_empty() { Ok(manifests) } else { Err(ManifestError { problems }) }
}

fn collect(path: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<String>) {
    if path.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(error) => return problems.push(format!("{}: cannot read the folder: {error}", path.display())),
        };
        let mut children: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        children.sort();
        for child in children {
            let name = child.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
            if name.starts_with('.') || !(child.is_dir() || yaml) {
                continue;
            }
            collect(&child, files, problems);
        }
    } else if path.exists() {
        files.push(path.to_owned());
    } else {
        problems.push(format!("{}: no such file or folder", path.display()));
    }
}

/// The documents of a YAML stream with their numbers (from 1), split at `---` lines.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            documents.push(String::new());
        } else if let Some(current) = documents.last_mut() {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents.into_iter().enumerate().map(|(i, d)| (i + 1, d)).collect()
}

fn is_blank(document: &str) -> bool {
    document.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
}

impl Manifests {
    /// Adds the objects of one YAML text (a file's content), recording problems.
    pub fn add_text(&mut self, text: &str, file: &Path, options: &LoadOptions, problems: &mut Vec<String>) {
        for (number, document) in documents(text) {
            if is_blank(&document) {
                continue;
            }
            let source = Source { file: file.to_owned(), document: number };
            let value: Value = match serde_saphyr::from_str(&document) {
                Ok(value) => value,
                Err(error) => {
                    problems.push(format!("{source}: not valid YAML: {}", one_line(&error.to_string())));
                    continue;
                }
            };
            if value.get("apiVersion").is_none() && value.get("kind").is_none() {
                tracing::debug!(%source, "skipped: not a Kubernetes object (no apiVersion or kind)");
                continue;
            }
            self.add_value(value, source, options, problems);
        }
    }

    fn add_value(&mut self, mut value: Value, source: Source, options: &LoadOptions, problems: &mut Vec<String>) {
        let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
        if api_version == "v1" && kind == "List" {
            let items = value.get_mut("items").map(Value::take).unwrap_or_default();
            for item in items.as_array().cloned().unwrap_or_default() {
                self.add_value(item, source.clone(), options, problems);
            }
            return;
        }
        let Some(name) = value.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned) else {
            problems.push(format!("{source}: {kind} has no metadata.name; give the object a name"));
            return;
        };
        let cluster_scoped = kind == "ClusterBitbucketConfiguration";
        let namespace = if cluster_scoped {
            None
        } else {
            let namespace = value
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map_or_else(|| options.default_namespace.clone(), str::to_owned);
            value["metadata"]["namespace"] = Value::String(namespace.clone());
            Some(namespace)
        };
        let what = match &namespace {
            Some(namespace) => format!("{kind} {namespace}/{name}"),
            None => format!("{kind} {name}"),
        };
        let ours = format!("{GROUP}/{VERSION}");
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Secret") => self.add_secret(&value, namespace.unwrap_or_default(), name, source, &what, problems),
            (version, "BitbucketConfiguration") if version == ours => {
                if let Some(object) = admit::<BitbucketConfiguration>(&value, &source, &what, problems)
                    && self.is_new(&what, &source, problems)
                {
                    self.configurations.push(Item { object, source });
                }
            }
            (version, "ClusterBitbucketConfiguration") if version == ours => {
                if let Some(object) = admit::<ClusterBitbucketConfiguration>(&value, &source, &what, problems)
                    && self.is_new(&what, &source, problems)
                {
                    self.cluster_configurations.push(Item { object, source });
                }
            }
            (version, "ProjectBinding") if version == ours => {
                if let Some(object) = admit::<ProjectBinding>(&value, &source, &what, problems)
                    && self.is_new(&what, &source, problems)
                {
                    self.bindings.push(Item { object, source });
                }
            }
            (version, "RequiredReport") if version == ours => {
                if let Some(object) = admit::<RequiredReport>(&value, &source, &what, problems)
                    && self.is_new(&what, &source, problems)
                {
                    self.reports.push(Item { object, source });
                }
            }
            _ => problems.push(format!(
                "{source}: {what}: apiVersion {api_version:?} kind {kind:?} is not understood; the CLI reads \
                 {ours} BitbucketConfiguration, ClusterBitbucketConfiguration, ProjectBinding, RequiredReport, \
                 and v1 Secret (and v1 List of them)"
            )),
        }
    }

    fn sources_of(&self, what: &str) -> Option<&Source> {
        let id = |kind: &str, ns: Option<String>, name: String| match ns {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        use kube::ResourceExt;
        self.configurations
            .iter()
            .find(|i| id("BitbucketConfiguration", i.object.namespace(), i.object.name_any()) == what)
            .map(|i| &i.source)
            .or_else(|| {
                self.cluster_configurations
                    .iter()
                    .find(|i| id("ClusterBitbucketConfiguration", None, i.object.name_any()) == what)
                    .map(|i| &i.source)
            })
            .or_else(|| {
                self.bindings
                    .iter()
                    .find(|i| id("ProjectBinding", i.object.namespace(), i.object.name_any()) == what)
                    .map(|i| &i.source)
            })
            .or_else(|| {
                self.reports
                    .iter()
                    .find(|i| id("RequiredReport", i.object.namespace(), i.object.name_any()) == what)
                    .map(|i| &i.source)
            })
    }

    /// Whether the object is new; a second definition is a problem and is dropped.
    fn is_new(&self, what: &str, source: &Source, problems: &mut Vec<String>) -> bool {
        match self.sources_of(what) {
            Some(first) => {
                problems.push(format!("{source}: {what} is defined twice (first in {first}); keep one"));
                false
            }
            None => true,
        }
    }

    fn add_secret(
        &mut self,
        value: &Value,
        namespace: String,
        name: String,
        source: Source,
        what: &str,
        problems: &mut Vec<String>,
    ) {
        let mut data = SecretData::default();
        if let Some(labels) = value.pointer("/metadata/labels").and_then(Value::as_object) {
            for (key, label) in labels {
                data.labels.insert(key.clone(), label.as_str().unwrap_or_default().to_owned());
            }
        }
        for (key, encoded) in value.get("data").and_then(Value::as_object).into_iter().flatten() {
            let text = encoded.as_str().unwrap_or_default();
            match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
                Ok(bytes) => {
                    data.data.insert(key.clone(), bytes);
                }
                Err(_) => problems.push(format!(
                    "{source}: {what}: data.{key} is not base64; encode the value, or put it under stringData"
                )),
            }
        }
        for (key, plain) in value.get("stringData").and_then(Value::as_object).into_iter().flatten() {
            match plain.as_str() {
                Some(text) => {
                    data.data.insert(key.clone(), text.as_bytes().to_vec());
                }
                None => problems.push(format!("{source}: {what}: stringData.{key} must be a string; quote it")),
            }
        }
        let key = (namespace, name);
        if let Some(first) = self.secrets.get(&key) {
            problems.push(format!("{source}: {what} is defined twice (first in {}); keep one", first.source));
            return;
        }
        self.secrets.insert(key, Item { object: data, source });
    }

    /// Points every configuration at `url` (allowing plain http), for the demo and for trying
    /// manifests against a simulator.
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

    /// Whether nothing of the operator's kinds was read.
    pub fn is_empty(&self) -> bool {
        self.configurations.is_empty()
            && self.cluster_configurations.is_empty()
            && self.bindings.is_empty()
            && self.reports.is_empty()
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<SecretData> {
        self.secrets.get(&(namespace.to_owned(), name.to_owned())).map(|i| i.object.clone())
    }

    /// What `plan`/`apply` work on: configurations with their client settings, bindings with
    /// their configuration and webhooks, reports with their binding. A reference that the
    /// manifests do not satisfy becomes that resource's `Stalled` outcome.
    pub fn targets(&self) -> Targets {
        use kube::ResourceExt;
        let mut targets = Targets::default();
        for item in &self.configurations {
            let namespace = item.object.namespace().unwrap_or_default();
            targets.configurations.push(ConfigurationTarget {
                source: item.source.to_string(),
                id: ResourceId {
                    kind: "BitbucketConfiguration",
                    namespace: Some(namespace.clone()),
                    name: item.object.name_any(),
                },
                settings: client_config(&item.object.spec, &namespace, |name| self.secret(&namespace, name)),
            });
        }
        for item in &self.cluster_configurations {
            let namespace = self.operator_namespace.clone();
            targets.configurations.push(ConfigurationTarget {
                source: item.source.to_string(),
                id: ResourceId { kind: "ClusterBitbucketConfiguration", namespace: None, name: item.object.name_any() },
                settings: client_config(&item.object.spec.connection, &namespace, |name| self.secret(&namespace, name)),
            });
        }
        for item in &self.bindings {
            let binding = &item.object;
            let namespace = binding.namespace().unwrap_or_default();
            let reference = &binding.spec.configuration_ref;
            let configuration = match reference.kind {
                ConfigurationKind::BitbucketConfiguration => targets
                    .configurations
                    .iter()
                    .position(|c| {
                        c.id.kind == "BitbucketConfiguration"
                            && c.id.namespace.as_deref() == Some(namespace.as_str())
                            && c.id.name == reference.name
                    })
                    .ok_or_else(|| not_found(&format!("BitbucketConfiguration {namespace}/{}", reference.name))),
                ConfigurationKind::ClusterBitbucketConfiguration => {
                    let found = self.cluster_configurations.iter().find(|c| c.object.name_any() == reference.name);
                    // Without a cluster, a namespace has only the label every namespace gets.
                    let labels: BTreeMap<String, String> =
                        [("kubernetes.io/metadata.name".to_owned(), namespace.clone())].into();
                    match found {
                        None => Err(not_found(&format!("ClusterBitbucketConfiguration {}", reference.name))),
                        Some(c) if !c.object.spec.allowed_namespaces.admits(&namespace, &labels) => {
                            Err(Outcome::stalled(
                                reasons::NAMESPACE_NOT_ALLOWED,
                                format!(
                                    "ClusterBitbucketConfiguration {} does not allow namespace {namespace}; add it to spec.allowedNamespaces",
                                    reference.name
                                ),
                            ))
                        }
                        Some(_) => targets
                            .configurations
                            .iter()
                            .position(|c| c.id.kind == "ClusterBitbucketConfiguration" && c.id.name == reference.name)
                            .ok_or_else(|| not_found(&format!("ClusterBitbucketConfiguration {}", reference.name))),
                    }
                }
            };
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
            let binding = targets
                .bindings
                .iter()
                .position(|b| {
                    b.id.namespace.as_deref() == Some(namespace.as_str()) && b.id.name == report.spec.binding_ref.name
                })
                .ok_or_else(|| {
                    Outcome::stalled(
                        reasons::BINDING_NOT_FOUND,
                        format!(
                            "ProjectBinding {namespace}/{} is not among the manifests; add it or fix spec.bindingRef",
                            report.spec.binding_ref.name
                        ),
                    )
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

fn not_found(what: &str) -> Outcome {
    Outcome::stalled(
        reasons::CONFIGURATION_NOT_FOUND,
        format!("{what} is not among the manifests; add it or fix spec.configurationRef"),
    )
}

/// Checks an object against its CRD (schema, defaults, CEL) and reads it into its type.
fn admit<K: DeserializeOwned>(value: &Value, source: &Source, what: &str, problems: &mut Vec<String>) -> Option<K> {
    let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(validator) = validator_for(api_version, kind) else {
        problems.push(format!("{source}: {what}: no schema for {api_version} {kind}"));
        return None;
    };
    match validator.admit(value, None) {
        Ok(admitted) => match serde_json::from_value(admitted) {
            Ok(object) => Some(object),
            Err(error) => {
                problems.push(format!("{source}: {what}: {}", one_line(&error.to_string())));
                None
            }
        },
        Err(errors) => {
            for error in errors {
                problems.push(format!("{source}: {what}: {}: {}", error.field, error.message));
            }
            None
        }
    }
}

fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > 300 {
        let mut end = 300;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &line[..end])
    } else {
        line
    }
}
