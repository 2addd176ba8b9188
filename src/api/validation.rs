//! Validates objects of the operator's kinds the way a Kubernetes API server does: prune `null`s,
//! apply schema defaults, check the structural schema (types, required fields, enums, bounds,
//! list uniqueness, unknown fields as with `kubectl`'s strict field validation), then evaluate the
//! CEL rules (`x-kubernetes-validations`), including transition rules against the old object.
//!
//! The CLI uses it to reject bad manifests before anything reaches Bitbucket, and the tests use it
//! to prove the generated CRDs accept the examples and reject what they should.

use std::{collections::HashSet, fmt, str::FromStr, sync::LazyLock};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use regex::Regex;
use serde_json::{Map, Value};

/// One reason an object is invalid, with the path of the field it concerns
/// (such as `spec.webhooks[0].url`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field, `metadata.name` style; empty for the object itself.
    pub field: String,
    /// What is wrong and, where it helps, what to write instead.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.field, self.message) }
    }
}

fn error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), message: message.into() }
}

/// The schema of one served version of a CRD, ready to validate objects.
pub struct SchemaValidator {
    api_version: String,
    kind: String,
    schema: Value,
    compiled: CompiledSchema,
}

impl fmt::Debug for SchemaValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaValidator").field("api_version", &self.api_version).field("kind", &self.kind).finish()
    }
}

/// Validators for every version of every CRD the operator serves.
static VALIDATORS: LazyLock<Vec<SchemaValidator>> =
    LazyLock::new(|| super::crds().iter().flat_map(SchemaValidator::for_crd).collect());

/// The validator for `apiVersion` and `kind`, if that is one of the operator's kinds.
pub fn validator_for(api_version: &str, kind: &str) -> Option<&'static SchemaValidator> {
    VALIDATORS.iter().find(|v| v.api_version == api_version && v.kind == kind)
}

impl SchemaValidator {
    /// One validator per version of `crd` that has a schema.
    pub fn for_crd(crd: &CustomResourceDefinition) -> Vec<Self> {
        let group = &crd.spec.group;
        crd.spec
            .versions
            .iter()
            .filter_map(|version| {
                let schema = version.schema.as_ref()?.open_api_v3_schema.as_ref()?;
                let schema = serde_json::to_value(schema).ok()?;
                Some(Self {
                    api_version: format!("{group}/{}", version.name),
                    kind: crd.spec.names.kind.clone(),
                    compiled: compile_schema(&schema),
                    schema,
                })
            })
            .collect()
    }

    /// `group/version` this validator checks.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// Kind this validator checks.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Checks a new object (`old` is `None`) or an update of `old`. Returns the object as the API
    /// server would store it (nulls pruned, defaults applied), or every problem found.
    pub fn admit(&self, object: &Value, old: Option<&Value>) -> Result<Value, Vec<FieldError>> {
        let object = self.normalize(object);
        let old = old.map(|old| self.normalize(old));
        let mut errors = Vec::new();
        check_metadata(&object, &mut errors);
        if let Value::Object(root) = &object {
            for (key, expected) in [("apiVersion", &self.api_version), ("kind", &self.kind)] {
                match root.get(key) {
                    Some(Value::String(actual)) if actual == expected => {}
                    _ => errors.push(error(key, format!("must be {expected:?}"))),
                }
            }
        }
        check_node(&self.schema, &object, "", true, &mut errors);
        // CEL on a structurally broken object only adds noise: fix the structure first.
        // A real API server's CEL treats a nullable field set to null as absent (`has()` is
        // false); kube-cel would see it as present, so the rules see the object without nulls.
        if errors.is_empty()
            && let Err(failures) = Validator::new().validate_compiled(
                &self.compiled,
                &without_nulls(&object),
                old.as_ref().map(without_nulls).as_ref(),
            )
        {
            errors.extend(failures.iter().map(|failure| error(&failure.field_path, failure.message.clone())));
        }
        if errors.is_empty() { Ok(object) } else { Err(errors) }
    }

    /// Prunes `null`s where the schema does not allow them and applies schema defaults.
    pub fn normalize(&self, object: &Value) -> Value {
        let mut object = object.clone();
        prune_nulls(&self.schema, &mut object);
        kube::core::cel::apply_defaults(&self.schema, &object)
    }
}

fn check_metadata(object: &Value, errors: &mut Vec<FieldError>) {
    let metadata = object.get("metadata");
    let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str);
    let generate_name = metadata.and_then(|m| m.get("generateName")).and_then(Value::as_str);
    match name {
        Some(name) if name.len() > 253 => errors.push(error("metadata.name", "must be no more than 253 characters")),
        Some(name) if !is_dns_subdomain(name) => errors.push(error(
            "metadata.name",
            "must consist of lower-case letters, digits, '-' or '.', and start and end with a letter or digit",
        )),
        Some(_) => {}
        None if generate_name.is_some() => {}
        None => errors.push(error("metadata.name", "is required")),
    }
}

/// An RFC 1123 subdomain: dot-separated labels of lower-case letters, digits and '-', each
/// starting and ending with a letter or digit.
pub fn is_dns_subdomain(name: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.split('.').all(|label| {
            label.starts_with(alphanumeric)
                && label.ends_with(alphanumeric)
                && label.chars().all(|c| alphanumeric(c) || c == '-')
        })
}

/// Removes `null` values from fields that are not `nullable`, as the API server does.
fn prune_nulls(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            map.retain(|key, child| {
                let child_schema = properties.and_then(|p| p.get(key)).or(additional);
                !(child.is_null() && child_schema.is_some_and(|s| !is_nullable(s)))
            });
            for (key, child) in map.iter_mut() {
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
                    prune_nulls(child_schema, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                items.iter_mut().for_each(|item| prune_nulls(item_schema, item));
            }
        }
        _ => {}
    }
}

/// A copy of `value` with every `null` object member removed.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn is_nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A short rendering of a value for an error message; long values are cut.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 64 { format!("{}…", text.chars().take(64).collect::<String>()) } else { text }
}

fn check_node(schema: &Value, value: &Value, path: &str, root: bool, errors: &mut Vec<FieldError>) {
    if value.is_null() {
        if !is_nullable(schema) {
            errors.push(error(path, "must not be null"));
        }
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if int_or_string {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            errors.push(error(path, format!("must be an integer or a string, not {}", type_name(value))));
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let matches = actual == expected || (expected == "number" && actual == "integer");
        if !matches {
            errors.push(error(path, format!("must be {} {expected}, not {actual}", article(expected))));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list = allowed.iter().map(Value::to_string).collect::<Vec<_>>().join(", ");
        errors.push(error(path, format!("unsupported value {}: use one of {list}", show(value))));
    }
    match value {
        Value::String(text) => check_string(schema, text, path, errors),
        Value::Number(_) => check_number(schema, value, path, errors),
        Value::Array(items) => check_array(schema, items, path, errors),
        Value::Object(map) => check_object(schema, map, path, root, errors),
        Value::Bool(_) | Value::Null => {}
    }
}

fn article(type_name: &str) -> &'static str {
    if matches!(type_name.as_bytes().first(), Some(b'a' | b'i' | b'o')) { "an" } else { "a" }
}

fn check_string(schema: &Value, text: &str, path: &str, errors: &mut Vec<FieldError>) {
    let length = text.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        errors.push(error(path, format!("is too long: {length} characters, at most {max} allowed")));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        let message =
            if min == 1 { "must not be empty".to_owned() } else { format!("must have at least {min} characters") };
        errors.push(error(path, message));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match Regex::new(pattern) {
            Ok(re) if re.is_match(text) => {}
            Ok(_) => errors.push(error(path, format!("must match the pattern {pattern}"))),
            Err(_) => errors.push(error(path, format!("the schema's pattern {pattern} cannot be compiled"))),
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time")
        && k8s_openapi::jiff::Timestamp::from_str(text).is_err()
    {
        errors.push(error(path, "must be an RFC 3339 date and time such as 2026-01-31T12:00:00Z"));
    }
}

fn check_number(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(number) = value.as_f64() else { return };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && number < min
    {
        errors.push(error(path, format!("must be at least {min}")));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && number > max
    {
        errors.push(error(path, format!("must be at most {max}")));
    }
    let int32 = schema.get("format").and_then(Value::as_str) == Some("int32");
    if int32 && value.as_i64().is_none_or(|n| i32::try_from(n).is_err()) {
        errors.push(error(path, "must fit in a 32-bit integer"));
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    let count = items.len() as u64;
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && count > max
    {
        errors.push(error(path, format!("has {count} items, at most {max} allowed")));
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && count < min
    {
        let message =
            if min == 1 { "must have at least one item".to_owned() } else { format!("must have at least {min} items") };
        errors.push(error(path, message));
    }
    if let Some(item_schema) = schema.get("items") {
        for (index, item) in items.iter().enumerate() {
            check_node(item_schema, item, &format!("{path}[{index}]"), false, errors);
        }
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            let mut seen = HashSet::new();
            for (index, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    errors.push(error(&format!("{path}[{index}]"), format!("duplicate value {}", show(item))));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            for (index, item) in items.iter().enumerate() {
                let key: Vec<String> =
                    keys.iter().map(|k| item.get(*k).map(Value::to_string).unwrap_or_default()).collect();
                if !seen.insert(key.clone()) {
                    errors.push(error(
                        &format!("{path}[{index}]"),
                        format!("duplicate entry: another item already has {} {}", keys.join(", "), key.join(", ")),
                    ));
                }
            }
        }
        _ => {}
    }
}

fn check_object(schema: &Value, map: &Map<String, Value>, path: &str, root: bool, errors: &mut Vec<FieldError>) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for field in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(field) {
                errors.push(error(&join(path, field), "is required"));
            }
        }
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && map.len() as u64 > max
    {
        errors.push(error(path, format!("has {} entries, at most {max} allowed", map.len())));
    }
    let preserve_unknown = schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    for (key, child) in map {
        let child_path = join(path, key);
        if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
            check_node(child_schema, child, &child_path, false, errors);
        } else if let Some(additional) = additional.filter(|a| a.is_object()) {
            check_node(additional, child, &child_path, false, errors);
        } else if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            // Checked by the caller; every object has them.
        } else if !preserve_unknown && additional.and_then(Value::as_bool) != Some(true) {
            errors.push(error(
                &child_path,
                "unknown field: check its spelling and indentation against `kubectl explain`",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn configuration(spec: Value) -> Value {
        json!({
            "apiVersion": "bitbucket.integrations.dev/v1alpha1",
            "kind": "BitbucketConfiguration",
            "metadata": {"name": "bitbucket"},
            "spec": spec,
        })
    }

    fn validator() -> &'static SchemaValidator {
        validator_for("bitbucket.integrations.dev/v1alpha1", "BitbucketConfiguration").expect("served kind")
    }

    #[test]
    fn defaults_are_applied_and_nulls_pruned_as_the_api_server_does() {
        let object = configuration(json!({
            "url": "https://bitbucket.example.com",
            "auth": {"token": {"secretRef": {"name": "t"}}, "basic": null},
            "tls": null,
            "allowInsecureHttp": null,
        }));
        let stored = validator().admit(&object, None).expect("valid");
        assert_eq!(stored["spec"]["rateLimit"], json!({"requestsPerSecond": 5, "burst": 60}));
        assert_eq!(stored["spec"]["resyncInterval"], "10m");
        assert_eq!(stored["spec"]["auth"]["token"]["secretRef"]["key"], "token");
        assert_eq!(stored["spec"]["allowInsecureHttp"], false, "a null non-nullable field is pruned, then defaulted");
        // Nullable fields keep their null, and CEL sees them as absent: `basic: null` is no
        // second auth method.
        assert_eq!(stored["spec"]["auth"]["basic"], Value::Null);
        assert_eq!(stored["spec"]["tls"], Value::Null);
    }

    #[test]
    fn wrong_api_version_and_missing_name_are_reported() {
        let mut object =
            configuration(json!({"url": "https://b.example.com", "auth": {"token": {"secretRef": {"name": "t"}}}}));
        object["apiVersion"] = json!("bitbucket.integrations.dev/v1");
        object["metadata"] = json!({});
        let errors = validator().admit(&object, None).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"apiVersion") && fields.contains(&"metadata.name"), "{errors:?}");
    }

    #[test]
    fn integers_outside_int32_are_rejected() {
        let object = configuration(json!({
            "url": "https://b.example.com",
            "auth": {"token": {"secretRef": {"name": "t"}}},
            "rateLimit": {"requestsPerSecond": 1, "burst": 5_000_000_000_i64},
        }));
        let errors = validator().admit(&object, None).expect_err("invalid");
        assert!(errors.iter().any(|e| e.field == "spec.rateLimit.burst" && e.message.contains("32-bit")), "{errors:?}");
    }

    #[test]
    fn cel_rules_wait_for_a_sound_structure() {
        // `url` is a number: the type error is reported, not a CEL evaluation failure on top.
        let object = configuration(json!({"url": 42, "auth": {}}));
        let errors = validator().admit(&object, None).expect_err("invalid");
        assert_eq!(errors, vec![error("spec.url", "must be a string, not integer")]);
    }
}

#[cfg(test)]
mod name_tests {
    use super::is_dns_subdomain;

    #[test]
    fn dns_subdomains() {
        for good in ["a", "bitbucket", "team-a.bitbucket", "0x1"] {
            assert!(is_dns_subdomain(good), "{good}");
        }
        for bad in ["", "A", "-a", "a-", "a..b", ".a", "a_b", "a.", "ü"] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }
}
