//! What the body of a write must be, and what the server keeps of it: parsed (JSON, or YAML for
//! apply patches), user metadata type-checked, unknown fields pruned, validated.

use serde_json::{Map, Value};

use super::{Store, Write};
use crate::fake_kube::{
    errors::{ApiError, Cause, invalid_cause, required_cause},
    resources::{metadata_causes, prepare_builtin},
};

const USER_METADATA: [&str; 5] = ["labels", "annotations", "finalizers", "ownerReferences", "generateName"];

/// The user-settable metadata of a request body, type-checked, with empty fields dropped.
pub(super) fn user_metadata(body: &Value) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    let Some(metadata) = body.get("metadata") else { return Ok(out) };
    if metadata.is_null() {
        return Ok(out);
    }
    if !metadata.is_object() {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    for field in USER_METADATA {
        let Some(value) = metadata.get(field) else { continue };
        let ok = match (field, value) {
            (_, Value::Null) => continue,
            ("labels" | "annotations", Value::Object(map)) => map.values().all(Value::is_string),
            ("finalizers", Value::Array(items)) => items.iter().all(Value::is_string),
            ("ownerReferences", Value::Array(items)) => items.iter().all(Value::is_object),
            ("generateName", Value::String(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(ApiError::bad_request(format!("metadata.{field} has the wrong type: {value}")));
        }
        let empty = match value {
            Value::Object(map) => map.is_empty(),
            Value::Array(items) => items.is_empty(),
            Value::String(text) => text.is_empty(),
            _ => false,
        };
        if !empty {
            out.insert(field.to_owned(), value.clone());
        }
    }
    Ok(out)
}

/// The value at a validator field path such as `spec.webhooks[0].url`.
fn field_value<'a>(object: &'a Value, field: &str) -> Option<&'a Value> {
    let mut node = object;
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = match part.find('[') {
            Some(open) => (&part[..open], &part[open..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            node = node.get(name)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let index: usize = index.trim_end_matches(']').parse().ok()?;
            node = node.get(index)?;
        }
    }
    Some(node)
}

/// Drops fields the schema does not declare, as the API server prunes custom resources;
/// returns their paths.
pub(super) fn prune_unknown(schema: &Value, value: &mut Value, path: &str, root: bool, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let preserve = schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let additional_schema = additional.filter(|a| a.is_object());
            let any_additional = additional.and_then(Value::as_bool) == Some(true) || additional_schema.is_some();
            let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
            if !preserve && !any_additional {
                map.retain(|key, _| {
                    let known = properties.is_some_and(|p| p.contains_key(key))
                        || (root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata"));
                    if !known {
                        pruned.push(join(key));
                    }
                    known
                });
            }
            for (key, child) in map.iter_mut() {
                if root && key == "metadata" {
                    continue;
                }
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional_schema) {
                    prune_unknown(child_schema, child, &join(key), false, pruned);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter_mut().enumerate() {
                    prune_unknown(item_schema, item, &format!("{path}[{index}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}

/// A parsed request body: JSON, or YAML for apply patches.
pub fn parse_body(bytes: &[u8], yaml: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => Ok(value),
        Err(json_error) if yaml => {
            let text =
                std::str::from_utf8(bytes).map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_error})")))
        }
        Err(e) => Err(ApiError::bad_request(format!("couldn't decode the request body as JSON: {e}"))),
    }
}

pub(super) fn object_body(body: Value) -> Result<Value, ApiError> {
    if body.is_object() { Ok(body) } else { Err(ApiError::bad_request("the request body must be a JSON object")) }
}

impl Store {
    /// Validates a new object or an update (served forms) the way the API server does, and
    /// returns what it would store.
    pub(super) fn validate(&self, write: &Write, object: Value, old: Option<&Value>) -> Result<Value, ApiError> {
        let view = write.view;
        let causes = metadata_causes(view, &object);
        if !causes.is_empty() {
            return Err(ApiError::invalid(view, &write.name, causes));
        }
        let Some(validator) = view.validator else {
            return prepare_builtin(view, object, old);
        };
        let mut object = object;
        if let Some(schema) = &view.schema {
            let mut pruned = Vec::new();
            prune_unknown(schema, &mut object, "", true, &mut pruned);
            if write.options.strict && !pruned.is_empty() {
                let fields: Vec<String> = pruned.iter().map(|f| format!("unknown field \"{f}\"")).collect();
                return Err(ApiError::bad_request(format!("strict decoding error: {}", fields.join(", "))));
            }
        }
        validator.admit(&object, old).map_err(|errors| {
            let causes: Vec<Cause> = errors
                .iter()
                .map(|e| {
                    if e.message == "is required" {
                        required_cause(&e.field)
                    } else {
                        invalid_cause(&e.field, field_value(&object, &e.field), &e.message)
                    }
                })
                .collect();
            ApiError::invalid(view, &write.name, causes)
        })
    }
}
