//! The command line's one error type: why a command could not do its work. Each text says what
//! is wrong and what to do; `main` prints it after `error: ` and exits with [`Error::exit_code`].
//! A failed check or a failed resource is not an error: it is a result with its own exit code.

use std::{net::SocketAddr, path::PathBuf};

use super::manifests::ManifestError;
use crate::simulator::{
    SeedError, SimError,
    sonarqube::{SonarSeedError, SonarSimError},
};

/// Why a command stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The arguments do not fit together (beyond what the parser itself checks).
    #[error("{0}")]
    Usage(&'static str),
    /// A duration argument is not a duration.
    #[error("{0:?} is not a duration such as 30s, 10m or 1h30m")]
    NotADuration(String),
    /// A duration argument is too short to be useful.
    #[error("{0:?} is shorter than 1s")]
    DurationTooShort(String),
    /// The simulator was asked to listen beyond loopback without consent.
    #[error(
        "{0} is not a loopback address; the simulator has no real security (its credentials are printed at start), \
         so pass --allow-remote to expose it anyway"
    )]
    NotLoopback(SocketAddr),
    /// The manifests cannot be used; every problem is listed.
    #[error("the manifests are not valid:\n{0}")]
    Manifests(#[source] ManifestError),
    /// The examples built into the binary do not load (a bug in the release).
    #[error("{0}")]
    Examples(#[source] ManifestError),
    /// The manifests hold none of the operator's resources.
    #[error(
        "the files hold none of the operator's resources (BitbucketConfiguration, ClusterBitbucketConfiguration, ProjectBinding, RequiredReport, RequiredBuild, SonarQubeConfiguration); give the files or folders that define them"
    )]
    NoResources,
    /// `inventory` found no binding to list among the manifests.
    #[error(
        "the files hold no ProjectBinding; inventory lists the repositories of the bindings, so give the files that define them"
    )]
    NoBindings,
    /// `check` found no configuration to check among the manifests.
    #[error("{}", no_configuration(name.as_deref(), namespace.as_deref(), skipped))]
    NoConfiguration {
        /// The `--name` asked for.
        name: Option<String>,
        /// The `--namespace` asked for.
        namespace: Option<String>,
        /// Files left out as not Kubernetes objects.
        skipped: Vec<PathBuf>,
    },
    /// A file given on the command line cannot be read.
    #[error("{}: cannot read the {what}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What it should hold, such as `token file`.
        what: &'static str,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file meant to hold one secret value holds something else (the value is never shown).
    #[error("{}: the {what} must hold exactly one non-empty line", path.display())]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// `token file` or `password file`.
        what: &'static str,
    },
    /// A file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The command's output cannot be written.
    #[error("{0}")]
    Output(#[source] std::io::Error),
    /// A CustomResourceDefinition cannot be rendered.
    #[error("cannot render the CRD as YAML: {0}")]
    Crd(#[source] serde_saphyr::SerializeError),
    /// A simulator seed is not valid; `origin` names the file or says it is the built-in one.
    #[error("{origin}: {source}")]
    Seed {
        /// The seed's file, or which built-in seed.
        origin: String,
        /// What is wrong with it.
        source: SeedError,
    },
    /// A SonarQube simulator seed is not valid; `origin` names the file or says it is the built-in one.
    #[error("{origin}: {source}")]
    SonarSeed {
        /// The seed's file, or which built-in seed.
        origin: String,
        /// What is wrong with it.
        source: SonarSeedError,
    },
    /// A seed reads but does not hold together.
    #[error("the seed is not consistent: {0}")]
    InconsistentSeed(#[source] SeedError),
    /// The simulator cannot listen on the address.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// A change to the simulator's state failed (the demo's drift step).
    #[error("{0}")]
    Simulator(#[from] SimError),
    /// A change to the SonarQube simulator's state failed (the demo's drift step).
    #[error("{0}")]
    SonarQubeSimulator(#[from] SonarSimError),
    /// The async runtime cannot start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// No Kubernetes API to talk to.
    #[error("cannot reach the Kubernetes API (in-cluster or kubeconfig): {0}")]
    Kubernetes(#[source] kube::Error),
    /// The server of `/metrics`, `/healthz` and `/readyz` failed; the text says how.
    #[error("{0}")]
    Telemetry(String),
    /// The server of `/metrics` stopped abnormally.
    #[error("the metrics server failed: {0}")]
    TelemetryTask(#[source] tokio::task::JoinError),
}

impl Error {
    /// The process's exit code for this error: 1, as for usage errors (2 means "changes pending"
    /// for `plan`).
    pub fn exit_code(&self) -> u8 {
        1
    }
}

fn no_configuration(name: Option<&str>, namespace: Option<&str>, skipped: &[PathBuf]) -> String {
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        let files: Vec<String> = skipped.iter().map(|f| f.display().to_string()).collect();
        format!(" (skipped as not Kubernetes objects: {})", files.join(", "))
    };
    match (name, namespace) {
        (Some(name), Some(namespace)) => {
            format!(
                "no configuration named {name} in namespace {namespace} (or cluster-scoped) in the manifests{skipped}"
            )
        }
        (Some(name), None) => format!("no configuration named {name} in the manifests{skipped}"),
        _ => format!(
            "the manifests hold no BitbucketConfiguration or ClusterBitbucketConfiguration{skipped}; give the files \
             that define them"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_name_what_is_wrong_and_never_a_value() {
        let error = Error::SecretFile { path: "token".into(), what: "token file" };
        assert_eq!(error.to_string(), "token: the token file must hold exactly one non-empty line");
        let error =
            Error::NoConfiguration { name: Some("bb".into()), namespace: None, skipped: vec!["seed.yaml".into()] };
        assert_eq!(
            error.to_string(),
            "no configuration named bb in the manifests (skipped as not Kubernetes objects: seed.yaml)"
        );
        assert_eq!(Error::NoResources.exit_code(), 1);
    }
}
