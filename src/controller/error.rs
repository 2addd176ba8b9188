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
    /// A transient SonarQube failure (not up, server error, timeout).
    #[error("{0}")]
    SonarQube(crate::sonarqube::Error),
    /// Deletion waits for something (dependents, or Bitbucket cleanup that failed).
    #[error("{0}")]
    Waiting(String),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// Another writer changed the object's finalizers first; the next round tries again with
    /// the object as it is now.
    #[error("the finalizers changed while the operator wrote its own; trying again")]
    Conflict,
    /// This replica lost the leader Lease: it does no more work.
    #[error("no longer the leader; another replica does the work")]
    NotLeading,
}

impl Error {
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Bitbucket(error) => error.retry_after(),
            Self::SonarQube(error) => error.retry_after(),
            _ => None,
        }
    }

    /// The error class of a failed reconcile, for metrics.
    pub(crate) fn class(&self) -> &'static str {
        match self {
            Self::Kube(_) | Self::Finalizer(_) => "kubernetes",
            Self::Conflict => "conflict",
            Self::NotLeading => "not_leading",
            Self::Waiting(_) => "waiting",
            Self::Bitbucket(error) => class_name(error.class()),
            Self::SonarQube(error) => class_name(error.class()),
        }
    }

    pub(crate) fn from_finalizer(error: finalizer::Error<Error>) -> Self {
        match error {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) if lost_race(&e) => Self::Conflict,
            finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => Self::Kube(e),
            other => Self::Finalizer(other.to_string()),
        }
    }
}

/// The metrics name of an error class.
fn class_name(class: bitbucket::ErrorClass) -> &'static str {
    match class {
        bitbucket::ErrorClass::Transient => "transient",
        bitbucket::ErrorClass::Credentials => "credentials",
        bitbucket::ErrorClass::Permission => "permission",
        bitbucket::ErrorClass::NotFound => "not_found",
        bitbucket::ErrorClass::Invalid => "invalid",
        bitbucket::ErrorClass::Unsupported => "unsupported",
        bitbucket::ErrorClass::TooLarge => "too_large",
    }
}

/// Whether a failed finalizer patch lost a race. The finalizer helper writes JSON patches whose
/// `test` operation guards the list it read; when the list changed meanwhile, real API servers
/// answer 422 `Invalid` without any cause (a patch that cannot apply), unlike a rejected value,
/// which names its field. 409 is a conflict anyway.
fn lost_race(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => {
            status.code == 409
                || (status.code == 422 && status.details.as_ref().is_none_or(|details| details.causes.is_empty()))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn answered(status: Value) -> finalizer::Error<Error> {
        let status: kube::core::Status = serde_json::from_value(status).expect("a Status");
        finalizer::Error::AddFinalizer(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn a_finalizer_patch_that_lost_a_race_is_a_conflict_and_a_rejected_one_is_not() {
        // What a real API server answers when the patch's `test` fails.
        let lost = answered(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server rejected our request due to an error in our request",
            "reason": "Invalid", "details": {}, "code": 422,
        }));
        assert!(matches!(Error::from_finalizer(lost), Error::Conflict));
        let conflict = answered(json!({"status": "Failure", "reason": "Conflict", "code": 409}));
        assert!(matches!(Error::from_finalizer(conflict), Error::Conflict));
        // A value the server refuses names its field: that is no race, and retrying won't help.
        let refused = Error::from_finalizer(answered(json!({
            "status": "Failure", "reason": "Invalid", "code": 422,
            "message": "ProjectBinding.bitbucket.integrations.dev \"payments\" is invalid",
            "details": {"causes": [{
                "reason": "FieldValueInvalid", "field": "metadata.finalizers[0]",
                "message": "name is neither a standard finalizer name nor is it fully qualified",
            }]},
        })));
        assert!(matches!(refused, Error::Kube(_)), "{refused}");
        let failed =
            Error::from_finalizer(answered(json!({"status": "Failure", "reason": "InternalError", "code": 500})));
        assert!(matches!(failed, Error::Kube(_)), "{failed}");
    }
}
