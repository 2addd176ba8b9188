//! Why a reconcile did not finish, and what that means for its retry and its metrics.

use std::time::Duration;

use kube::runtime::finalizer;

use crate::bitbucket;

/// Why a reconcile did not finish; every variant is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A transient Bitbucket failure (server error, timeout, rate limit).
    #[error("{0}")]
    Bitbucket(bitbucket::Error),
    /// Deletion waits for something (dependents, or Bitbucket cleanup that failed).
    #[error("{0}")]
    Waiting(String),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Bitbucket(error) => error.retry_after(),
            _ => None,
        }
    }

    /// The error class of a failed reconcile, for metrics.
    pub(crate) fn class(&self) -> &'static str {
        match self {
            Self::Kube(_) | Self::Finalizer(_) => "kubernetes",
            Self::Waiting(_) => "waiting",
            Self::Bitbucket(error) => match error.class() {
                bitbucket::ErrorClass::Transient => "transient",
                bitbucket::ErrorClass::Credentials => "credentials",
                bitbucket::ErrorClass::Permission => "permission",
                bitbucket::ErrorClass::NotFound => "not_found",
                bitbucket::ErrorClass::Invalid => "invalid",
                bitbucket::ErrorClass::Unsupported => "unsupported",
                bitbucket::ErrorClass::TooLarge => "too_large",
            },
        }
    }

    pub(crate) fn from_finalizer(error: finalizer::Error<Error>) -> Self {
        match error {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => Self::Kube(e),
            other => Self::Finalizer(other.to_string()),
        }
    }
}
