//! The standard conditions every kind reports (kstatus conventions, read by kubectl wait,
//! Argo CD and Flux).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// `True` when Bitbucket matches the spec of `status.observedGeneration`.
pub const READY: &str = "Ready";
/// `True` while the operator is still working towards the spec.
pub const RECONCILING: &str = "Reconciling";
/// `True` when the operator cannot progress until something (the spec, a Secret, Bitbucket's
/// permissions) changes.
pub const STALLED: &str = "Stalled";

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}
