//! Deletes: one object (preconditions, finalizers, deletionTimestamp) or a collection.

use serde_json::{Value, json};

use super::{
    EventType, State, Store, Sub, WriteOptions, finalizers, is_terminating, meta_str, metadata_mut, now, scan,
};
use crate::fake_kube::{errors::ApiError, resources::to_view, selectors::Selectors};

impl Store {
    /// Deletes an object, or marks it for deletion while finalizers remain. Returns the
    /// object (custom resources, or any kind still finalizing) or a success `Status`.
    pub fn delete(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        delete_options: &Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut state = self.state();
        self.delete_locked(&mut state, resource, namespace, name, delete_options, options)
    }

    fn delete_locked(
        &self,
        state: &mut State,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        delete_options: &Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let write = self.write(resource, namespace, name, Sub::Main, options);
        let view = write.view;
        let old = self.existing(state, &write)?;
        let old_view = to_view(view, &old.object);
        if let Some(uid) = delete_options.pointer("/preconditions/uid").and_then(Value::as_str)
            && uid != meta_str(&old_view, "uid")
        {
            return Err(ApiError::conflict(
                view,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old_view, "uid")
                ),
            ));
        }
        if let Some(rv) = delete_options.pointer("/preconditions/resourceVersion").and_then(Value::as_str)
            && rv != meta_str(&old_view, "resourceVersion")
        {
            return Err(ApiError::conflict(
                view,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old_view, "resourceVersion")
                ),
            ));
        }
        if !finalizers(&old.object).is_empty() {
            if is_terminating(&old.object) || options.dry_run {
                return Ok(old_view);
            }
            let mut object = old.object.clone();
            let metadata = metadata_mut(&mut object);
            metadata.insert("deletionTimestamp".into(), json!(now()));
            metadata.insert("deletionGracePeriodSeconds".into(), json!(0));
            if let Some(generation) = metadata.get("generation").and_then(Value::as_i64).filter(|g| *g > 0) {
                metadata.insert("generation".into(), json!(generation + 1));
            }
            let stored = self.commit(state, write.key(), object, old.managers, EventType::Modified)?;
            return Ok(to_view(view, &stored));
        }
        let deleted =
            if options.dry_run { old.object } else { self.commit_delete(state, write.key()).unwrap_or(old.object) };
        if view.is_custom() {
            return Ok(to_view(view, &deleted));
        }
        let mut details = json!({"name": name, "kind": view.plural, "uid": meta_str(&deleted, "uid")});
        if !view.group.is_empty() {
            details["group"] = json!(view.group);
        }
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}))
    }

    pub fn delete_collection(
        &self,
        resource: usize,
        namespace: Option<&str>,
        selectors: &Selectors,
        delete_options: &Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let view = self.resource(resource);
        let mut state = self.state();
        let targets: Vec<(String, String)> = scan(&state, view.storage, namespace)
            .filter(|(_, stored)| selectors.matches(&to_view(view, &stored.object)))
            .map(|((_, ns, name), _)| (ns.clone(), name.clone()))
            .collect();
        let mut items = Vec::new();
        for (ns, name) in targets {
            let ns = if view.namespaced { Some(ns.as_str()) } else { None };
            let result = self.delete_locked(&mut state, resource, ns, &name, delete_options, options)?;
            if result.get("kind").and_then(Value::as_str) != Some("Status") {
                items.push(Self::list_item(view, result));
            }
        }
        Ok(json!({
            "kind": format!("{}List", view.kind),
            "apiVersion": view.api_version(),
            "metadata": {"resourceVersion": state.resource_version.to_string()},
            "items": items,
        }))
    }
}
