//! Following references as the operator would: a binding to its configuration (namespaced, or
//! cluster-scoped and admitting the binding's namespace), a report or a build to its binding, and the
//! targets `plan` and `apply` work on.

use std::collections::BTreeMap;

use kube::ResourceExt as _;

use crate::{
    api::{BitbucketConfigurationSpec, ProjectBinding, RequiredBuild, RequiredReport, refs::ConfigurationKind},
    bitbucket::ClientConfig,
    cli::plan::{
        BindingTarget, BuildTarget, ConfigurationTarget, ReportTarget, ResourceId, SettingTarget, SonarQubeTarget,
        Targets,
    },
    plan::{
        connection::{ConnectionError, client_config, labelled, single_line},
        reasons,
        sonarqube::setting::DesiredSetting,
        status::Outcome,
        webhooks::desired_webhooks,
    },
};

use super::{Item, Manifests, Source};

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
        /// The namespace of the report (or build).
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

/// `namespace/name`, or `name` for a cluster-scoped object.
pub(super) fn qualified(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

impl Manifests {
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
        self.binding_named(report.namespace().unwrap_or_default(), &report.spec.binding_ref.name)
    }

    /// The binding a required build applies to: the ProjectBinding of its `bindingRef` in its
    /// namespace.
    pub fn binding_for_build(&self, build: &RequiredBuild) -> Result<&Item<ProjectBinding>, ReferenceError> {
        self.binding_named(build.namespace().unwrap_or_default(), &build.spec.binding_ref.name)
    }

    fn binding_named(&self, namespace: String, name: &str) -> Result<&Item<ProjectBinding>, ReferenceError> {
        self.bindings
            .iter()
            .find(|b| b.object.metadata.namespace.as_deref() == Some(&namespace) && b.object.name_any() == name)
            .ok_or_else(|| ReferenceError::BindingNotFound { namespace, name: name.to_owned() })
    }

    /// What `plan`/`apply` work on: configurations with their client settings, bindings with
    /// their configuration and webhooks, reports and builds with their binding. A reference that the
    /// manifests do not satisfy becomes that resource's `Stalled` outcome.
    pub fn targets(&self) -> Targets {
        let mut targets = Targets::default();
        for item in &self.sonarqube_configurations {
            let object = &item.object;
            let namespace = object.namespace().unwrap_or_default();
            targets.sonarqube.push(SonarQubeTarget {
                source: item.source.to_string(),
                id: ResourceId {
                    kind: "SonarQubeConfiguration",
                    namespace: Some(namespace.clone()),
                    name: object.name_any(),
                },
                settings: crate::plan::sonarqube::connection::client_config(&object.spec, &namespace, |name| {
                    self.secret(&namespace, name)
                }),
            });
        }
        for configuration in self.all_configurations() {
            targets.configurations.push(ConfigurationTarget {
                source: configuration.source.to_string(),
                id: configuration.id(),
                settings: self.client_config(&configuration),
                sonarqube: self.setting_target(&configuration, &targets.sonarqube),
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
            let binding = binding_index(&targets, &namespace, self.binding_for(report));
            targets.reports.push(ReportTarget {
                source: item.source.to_string(),
                id: ResourceId { kind: "RequiredReport", namespace: Some(namespace), name: report.name_any() },
                spec: report.spec.clone(),
                binding,
            });
        }
        for item in &self.builds {
            let build = &item.object;
            let namespace = build.namespace().unwrap_or_default();
            let binding = binding_index(&targets, &namespace, self.binding_for_build(build));
            targets.builds.push(BuildTarget {
                source: item.source.to_string(),
                id: ResourceId { kind: "RequiredBuild", namespace: Some(namespace), name: build.name_any() },
                spec: build.spec.clone(),
                binding,
            });
        }
        targets
    }
}

/// The index among the targets' bindings of the binding found for a report or build in
/// `namespace`, or the outcome that says why there is none.
fn binding_index(
    targets: &Targets,
    namespace: &str,
    found: Result<&Item<ProjectBinding>, ReferenceError>,
) -> Result<usize, Outcome> {
    let found = found.map_err(|e| e.outcome())?;
    let name = found.object.name_any();
    targets
        .bindings
        .iter()
        .position(|b| b.id.namespace.as_deref() == Some(namespace) && b.id.name == name)
        .ok_or_else(|| ReferenceError::BindingNotFound { namespace: namespace.to_owned(), name }.outcome())
}

impl Manifests {
    /// The SonarQube side of a configuration (`spec.sonarqube`), with its SonarQubeConfiguration
    /// (an index into `sonarqube`) and the token SonarQube is to keep, or why it cannot be kept.
    fn setting_target(
        &self,
        configuration: &ResolvedConfiguration<'_>,
        sonarqube: &[SonarQubeTarget],
    ) -> Option<Result<SettingTarget, Outcome>> {
        let block = configuration.spec.sonarqube.as_ref()?;
        let namespace = configuration.secret_namespace;
        let name = &block.configuration_ref.name;
        let Some(index) =
            sonarqube.iter().position(|s| s.id.namespace.as_deref() == Some(namespace) && &s.id.name == name)
        else {
            return Some(Err(Outcome::stalled(
                reasons::SONARQUBE_NOT_READY,
                format!(
                    "SonarQubeConfiguration {namespace}/{name} is not among the manifests; add it or fix spec.sonarqube.configurationRef.name"
                ),
            )));
        };
        let reference = &block.token_secret_ref;
        let token = labelled(
            &|name: &str| self.secret(namespace, name),
            &reference.name,
            namespace,
            "sonarqube.tokenSecretRef.name",
        )
        .and_then(|data| single_line(&data, &reference.name, &reference.key, "sonarqube.tokenSecretRef.key"));
        let token = match token {
            Ok(token) => crate::bitbucket::Secret::new(token),
            Err(error) => return Some(Err(Outcome::stalled(reasons::SONARQUBE_INTEGRATION_FAILED, error.to_string()))),
        };
        let url = block.bitbucket_url.as_deref().unwrap_or(&configuration.spec.url);
        let url = match crate::sonarqube::normalize_url(url) {
            Ok(url) => url,
            Err(error) => return Some(Err(Outcome::stalled(reasons::SONARQUBE_INTEGRATION_FAILED, error.to_string()))),
        };
        // Files carry no Secret versions: the name is all there is to record.
        let version = crate::api::configuration::SecretVersion {
            name: reference.name.clone(),
            uid: None,
            resource_version: None,
        };
        let key = block.alm_setting_key.clone().unwrap_or_else(|| configuration.name.to_owned());
        Some(Ok(SettingTarget { sonarqube: index, desired: DesiredSetting { key, url, token: version }, token }))
    }
}

/// The labels a namespace has when all that is known is its name: the one Kubernetes sets on
/// every namespace.
fn namespace_labels(namespace: &str) -> BTreeMap<String, String> {
    [("kubernetes.io/metadata.name".to_owned(), namespace.to_owned())].into()
}
