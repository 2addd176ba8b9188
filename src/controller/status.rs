//! Writing status: server-side apply on the status subresource, under the operator's field
//! manager, so that conditions merge by type and nobody else's fields are touched.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use crate::plan::status::{Outcome, conditions};

use super::{context::MANAGER, error::Error};

/// Applies `status` to the object's status subresource.
pub async fn apply<K>(api: &Api<K>, object: &K, status: &impl Serialize) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(&object.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// The conditions for an outcome, given the previous ones, at the object's generation.
pub fn conditions_for<K: Resource>(object: &K, previous: &[Condition], outcome: &Outcome) -> Vec<Condition> {
    conditions(previous, outcome, object.meta().generation, &now())
}

/// The current time as a Kubernetes timestamp.
pub fn now() -> Time {
    // Kubernetes keeps whole seconds; writing them avoids a difference on every round trip.
    let now = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}
