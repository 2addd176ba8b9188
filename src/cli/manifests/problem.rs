//! What can be wrong with manifests, each problem naming where it is and what to do.

use std::path::{Path, PathBuf};

use super::Source;

/// What the CLI reads, for messages.
const SUPPORTED: &str = "bitbucket.integrations.dev/v1alpha1 BitbucketConfiguration, ClusterBitbucketConfiguration, \
                         ProjectBinding, RequiredReport, RequiredBuild and SonarQubeConfiguration, v1 Secret, and a v1 List of \
                         those";
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
