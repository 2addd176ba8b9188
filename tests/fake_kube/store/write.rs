//! Writes: create, replace, merge and JSON patches, and server-side apply, down to the commit.

use serde_json::{Value, json};

use super::{
    EventType, Managers, PatchType, State, Store, Stored, Sub, Write, WriteOptions, finalizers, is_terminating, meta,
    meta_str, metadata_mut, now,
    validate::{object_body, parse_body, prune_unknown, user_metadata},
};
use crate::fake_kube::{
    apply,
    errors::{ApiError, Cause, forbidden_cause, invalid_cause},
    patch,
    resources::{from_view, to_view},
};

fn new_uid() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        fastrand::u16(0x8000..0xc000),
        fastrand::u64(..1 << 48)
    )
}

fn generated_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| CHARS[fastrand::usize(..CHARS.len())] as char).collect()
}

/// What `generation` counts changes of: everything but `metadata`, and but `status` when the
/// kind has a status subresource.
fn spec_part(object: &Value, status_subresource: bool) -> Value {
    let mut object = object.clone();
    if let Value::Object(map) = &mut object {
        map.remove("metadata");
        if status_subresource {
            map.remove("status");
        }
    }
    object
}

fn without_resource_version(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.remove("resourceVersion");
    }
    object
}

const SYSTEM_METADATA: [&str; 7] =
    ["name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds"];
impl Store {
    /// Checks `apiVersion`, `kind` and `metadata.namespace` of a body against the URL and fills
    /// them in when absent.
    fn check_identity(write: &Write, body: &mut Value) -> Result<(), ApiError> {
        let view = write.view;
        let api_version = view.api_version();
        match body.get("apiVersion").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != api_version => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({given}) does not match the expected API version ({api_version})"
                )));
            }
            _ => body["apiVersion"] = json!(api_version),
        }
        match body.get("kind").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != view.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({given}) does not match the expected kind ({})",
                    view.kind
                )));
            }
            _ => body["kind"] = json!(view.kind),
        }
        let given = meta_str(body, "namespace").to_owned();
        if view.namespaced {
            if !given.is_empty() && given != write.namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        } else if !given.is_empty() {
            metadata_mut(body).remove("namespace");
        }
        Ok(())
    }

    fn check_name(write: &Write, body: &Value) -> Result<(), ApiError> {
        let given = meta_str(body, "name");
        if !given.is_empty() && given != write.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({})",
                write.name
            )));
        }
        Ok(())
    }

    pub fn create(
        &self,
        resource: usize,
        namespace: Option<&str>,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut body = object_body(body)?;
        let mut state = self.state();
        let mut write = self.write(resource, namespace, meta_str(&body, "name"), Sub::Main, options);
        Self::check_identity(&write, &mut body)?;
        if write.name.is_empty() {
            let prefix = meta_str(&body, "generateName");
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    write.view,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired",
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                ));
            }
            write.name = format!("{prefix}{}", generated_suffix());
        }
        self.create_locked(&mut state, &write, body, None)
    }

    /// Creates `body` (served form, identity checked); `managers` comes from an apply.
    fn create_locked(
        &self,
        state: &mut State,
        write: &Write,
        body: Value,
        managers: Option<Managers>,
    ) -> Result<Value, ApiError> {
        let mut metadata = user_metadata(&body)?;
        metadata.insert("name".into(), json!(write.name));
        if write.view.namespaced {
            metadata.insert("namespace".into(), json!(write.namespace));
        }
        metadata.insert("uid".into(), json!(new_uid()));
        metadata.insert("creationTimestamp".into(), json!(now()));
        if write.storage.is_custom() {
            metadata.insert("generation".into(), json!(1));
        }
        let mut object = body;
        object["metadata"] = Value::Object(metadata);
        if write.storage.status_subresource
            && let Value::Object(map) = &mut object
        {
            map.remove("status");
        }
        let object = self.validate(write, object, None)?;
        if state.objects.contains_key(&write.key()) {
            return Err(ApiError::already_exists(write.view, &write.name));
        }
        if write.options.dry_run {
            return Ok(object);
        }
        let stored = from_view(write.view, &object);
        let managers = managers.unwrap_or_else(|| {
            let mut managers = Managers::new();
            apply::record_update(&mut managers, &write.entry(false), &json!({}), &stored, write.schema());
            managers
        });
        let stored = self.commit(state, write.key(), stored, managers, EventType::Added)?;
        Ok(to_view(write.view, &stored))
    }

    /// Finishes an update of `old` to `candidate` (served form): the status subresource rules,
    /// system metadata, finalizer rules, validation, generation, no-op detection, commit.
    fn update_locked(
        &self,
        state: &mut State,
        write: &Write,
        old: &Stored,
        candidate: Value,
        managers: Option<Managers>,
    ) -> Result<Value, ApiError> {
        let old_view = to_view(write.view, &old.object);
        let mut new = match write.sub {
            Sub::Status => {
                let mut new = old_view.clone();
                match candidate.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Value::Object(map) = &mut new {
                            map.remove("status");
                        }
                    }
                }
                new
            }
            Sub::Main => {
                let mut new = candidate;
                let mut metadata = user_metadata(&new)?;
                for field in SYSTEM_METADATA {
                    if let Some(value) = meta(&old_view, field) {
                        metadata.insert(field.to_owned(), value.clone());
                    }
                }
                new["metadata"] = Value::Object(metadata);
                new["apiVersion"] = json!(write.view.api_version());
                new["kind"] = json!(write.view.kind);
                if write.storage.status_subresource
                    && let Value::Object(map) = &mut new
                {
                    match old_view.get("status") {
                        Some(status) => {
                            map.insert("status".into(), status.clone());
                        }
                        None => {
                            map.remove("status");
                        }
                    }
                }
                new
            }
        };
        if is_terminating(&old_view) {
            let before = finalizers(&old_view);
            let added: Vec<String> = finalizers(&new).into_iter().filter(|f| !before.contains(f)).collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    write.view,
                    &write.name,
                    vec![forbidden_cause(
                        "metadata.finalizers",
                        &format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }
        let resource_version = meta(&old_view, "resourceVersion").cloned().unwrap_or(Value::Null);
        metadata_mut(&mut new).insert("resourceVersion".into(), resource_version);
        let mut new = self.validate(write, new, Some(&old_view))?;
        let with_status = write.storage.status_subresource;
        if write.storage.is_custom() && spec_part(&new, with_status) != spec_part(&old_view, with_status) {
            let generation = meta(&old_view, "generation").and_then(Value::as_i64).unwrap_or(0);
            metadata_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        let stored = from_view(write.view, &new);
        if without_resource_version(&stored) == without_resource_version(&old.object) {
            return Ok(old_view);
        }
        if write.options.dry_run {
            return Ok(new);
        }
        let managers = managers.unwrap_or_else(|| {
            let mut managers = old.managers.clone();
            apply::record_update(&mut managers, &write.entry(false), &old.object, &stored, write.schema());
            managers
        });
        let finished = is_terminating(&stored) && finalizers(&stored).is_empty();
        let stored = self.commit(state, write.key(), stored, managers, EventType::Modified)?;
        if finished {
            self.commit_delete(state, write.key());
        }
        Ok(to_view(write.view, &stored))
    }

    pub fn replace(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        sub: Sub,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut body = object_body(body)?;
        let mut state = self.state();
        let write = self.write(resource, namespace, name, sub, options);
        Self::check_name(&write, &body)?;
        Self::check_identity(&write, &mut body)?;
        let old = self.existing(&state, &write)?;
        let given = meta_str(&body, "resourceVersion");
        if given.is_empty() {
            if write.storage.is_custom() {
                return Err(ApiError::invalid(
                    write.view,
                    name,
                    vec![invalid_cause(
                        "metadata.resourceVersion",
                        Some(&json!("0x0")),
                        "must be specified for an update",
                    )],
                ));
            }
        } else if given != meta_str(&old.object, "resourceVersion") {
            return Err(ApiError::stale(write.view, name));
        }
        self.update_locked(&mut state, &write, &old, body, None)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        sub: Sub,
        patch_type: PatchType,
        body: &[u8],
        options: &WriteOptions,
    ) -> Result<(u16, Value), ApiError> {
        let view = self.resource(resource);
        if patch_type == PatchType::Strategic && view.is_custom() {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let patch_document = parse_body(body, patch_type == PatchType::Apply)?;
        if patch_type == PatchType::Apply {
            return self.apply(resource, namespace, name, sub, patch_document, options);
        }
        if patch_type == PatchType::Json {
            patch::check_json_patch(&patch_document).map_err(ApiError::bad_request)?;
        } else if !patch_document.is_object() {
            return Err(ApiError::bad_request("a merge patch must be a JSON object"));
        }
        let mut state = self.state();
        let write = self.write(resource, namespace, name, sub, options);
        let old = self.existing(&state, &write)?;
        let old_view = to_view(view, &old.object);
        let mut patched = old_view.clone();
        match patch_type {
            PatchType::Json => {
                patch::json_patch(&mut patched, &patch_document).map_err(|_| ApiError::patch_not_applied())?
            }
            _ => patch::merge_patch(&mut patched, &patch_document),
        }
        let mut patched = object_body(patched)?;
        Self::check_name(&write, &patched)?;
        Self::check_identity(&write, &mut patched)?;
        let given = meta_str(&patched, "resourceVersion");
        if !given.is_empty() && given != meta_str(&old_view, "resourceVersion") {
            return Err(ApiError::stale(view, name));
        }
        Ok((200, self.update_locked(&mut state, &write, &old, patched, None)?))
    }

    fn apply(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        sub: Sub,
        applied: Value,
        options: &WriteOptions,
    ) -> Result<(u16, Value), ApiError> {
        if options.field_manager.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request("fieldManager is required for apply requests"));
        }
        let mut applied = object_body(applied)?;
        let mut state = self.state();
        let write = self.write(resource, namespace, name, sub, options);
        let view = write.view;
        for field in ["apiVersion", "kind"] {
            if applied.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(format!("{field} must be set in an apply patch")));
            }
        }
        Self::check_name(&write, &applied)?;
        Self::check_identity(&write, &mut applied)?;
        if let Some(schema) = &view.schema {
            let mut pruned = Vec::new();
            prune_unknown(schema, &mut applied, "", true, &mut pruned);
            if options.strict && !pruned.is_empty() {
                return Err(ApiError::bad_request(format!("strict decoding error: unknown fields {pruned:?}")));
            }
        }
        let given = meta_str(&applied, "resourceVersion").to_owned();
        if let Value::Object(map) = &mut applied {
            match sub {
                Sub::Status => map.retain(|key, _| matches!(key.as_str(), "apiVersion" | "kind" | "status")),
                Sub::Main if write.storage.status_subresource => {
                    map.remove("status");
                }
                Sub::Main => {}
            }
        }
        let entry = write.entry(true);
        let existing = state.objects.get(&write.key()).cloned();
        match existing {
            None if sub == Sub::Status => Err(ApiError::not_found(view, name)),
            None => {
                let mut live = json!({"apiVersion": view.api_version(), "kind": view.kind, "metadata": {"name": name}});
                if view.namespaced {
                    live["metadata"]["namespace"] = json!(write.namespace);
                }
                let result = apply::apply(&live, &applied, write.schema(), &Managers::new(), &entry, options.force)
                    .map_err(|conflicts| ApiError::apply_conflicts(view, name, &conflicts))?;
                Ok((201, self.create_locked(&mut state, &write, result.object, Some(result.managers))?))
            }
            Some(old) => {
                let old_view = to_view(view, &old.object);
                if !given.is_empty() && given != meta_str(&old_view, "resourceVersion") {
                    return Err(ApiError::stale(view, name));
                }
                let result = apply::apply(&old_view, &applied, write.schema(), &old.managers, &entry, options.force)
                    .map_err(|conflicts| ApiError::apply_conflicts(view, name, &conflicts))?;
                let updated =
                    self.update_locked(&mut state, &write, &old, result.object, Some(result.managers.clone()))?;
                // A no-op apply still records who applied what (the object is unchanged).
                if !options.dry_run
                    && let Some(stored) = state.objects.get_mut(&write.key())
                {
                    stored.managers = result.managers;
                }
                Ok((200, updated))
            }
        }
    }
}
