//! The `bitbucket.integrations.dev/v1alpha1` API: one file per kind, plus shared references and
//! conditions.

// The lint mistakes the repeated `type_ = "string"` of `#[kube(printcolumn(...))]` for duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod binding;
pub mod cluster_configuration;
pub mod conditions;
pub mod configuration;
pub mod coverage;
pub mod refs;
pub mod required_build;
pub mod required_report;
pub mod sonarqube;
pub mod validation;

pub use binding::{ProjectBinding, ProjectBindingSpec, ProjectBindingStatus};
pub use cluster_configuration::{ClusterBitbucketConfiguration, ClusterBitbucketConfigurationSpec};
pub use configuration::{BitbucketConfiguration, BitbucketConfigurationSpec, ConfigurationStatus};
pub use required_build::{RequiredBuild, RequiredBuildSpec, RequiredBuildStatus};
pub use required_report::{RequiredReport, RequiredReportSpec, RequiredReportStatus};
pub use sonarqube::{SonarQubeConfiguration, SonarQubeConfigurationSpec, SonarQubeConfigurationStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every kind.
pub const GROUP: &str = "bitbucket.integrations.dev";
/// The API version of every kind.
pub const VERSION: &str = "v1alpha1";

/// Every CRD the operator serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        BitbucketConfiguration::crd(),
        ClusterBitbucketConfiguration::crd(),
        ProjectBinding::crd(),
        RequiredBuild::crd(),
        RequiredReport::crd(),
        SonarQubeConfiguration::crd(),
    ]
}

/// The file a CRD is kept in under `crds/`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.spec.names.plural)
}

/// A CRD as the YAML document that `crds/` holds and `bitbucket-operator crds` prints.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    Ok(format!(
        "# Generated from the Rust types by `bitbucket-operator crds`; do not edit.\n---\n{}",
        serde_saphyr::to_string(crd)?
    ))
}
