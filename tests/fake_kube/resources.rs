//! The kinds the fake serves: the operator's CRDs plus the built-in kinds it uses (Secrets,
//! Events in both APIs, Leases, Namespaces), their discovery documents, and what the API server
//! does to built-in objects on write (typed decoding, defaults, kind-specific validation).

use base64::Engine;
use bitbucket_operator::api::validation::{SchemaValidator, is_dns_subdomain, validator_for};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

use super::errors::{ApiError, Cause, forbidden_cause, invalid_cause, required_cause};

/// How a resource's objects are shown, compared with how they are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Stored as served.
    Plain,
    /// `events.k8s.io/v1` Events, stored as `core/v1` Events (one storage, two APIs, as on a real
    /// server).
    EventsV1,
}

/// One served resource (group, version, plural).
#[derive(Debug)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub status_subresource: bool,
    /// The CRD's validator; `None` for built-in kinds.
    pub validator: Option<&'static SchemaValidator>,
    /// The CRD's `openAPIV3Schema` (list types for server-side apply, pruning); `None` for
    /// built-in kinds.
    pub schema: Option<Value>,
    /// Index of the resource whose storage this one shares (its own index for most).
    pub storage: usize,
    pub view: View,
    /// Field selectors served besides `metadata.name` and `metadata.namespace`: (selector, JSON
    /// pointer into the object as served).
    pub field_selectors: Vec<(&'static str, &'static str)>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `plural.group` (`plural` for the core group), as error messages name it.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    pub fn is_custom(&self) -> bool {
        self.validator.is_some()
    }

    /// JSON pointer of a field selector, or `None` when the resource does not serve it.
    pub fn field_pointer(&self, field: &str) -> Option<&'static str> {
        match field {
            "metadata.name" => Some("/metadata/name"),
            "metadata.namespace" => Some("/metadata/namespace"),
            _ => self.field_selectors.iter().find(|(name, _)| *name == field).map(|(_, pointer)| *pointer),
        }
    }

    fn verbs(&self) -> Value {
        json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
    }
}

/// Every resource the fake serves.
#[derive(Debug)]
pub struct Registry {
    pub types: Vec<ResourceType>,
}

fn builtin(group: &str, plural: &str, singular: &str, kind: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: group.to_owned(),
        version: "v1".to_owned(),
        plural: plural.to_owned(),
        singular: singular.to_owned(),
        kind: kind.to_owned(),
        short_names: Vec::new(),
        categories: Vec::new(),
        namespaced,
        status_subresource: false,
        validator: None,
        schema: None,
        storage: 0,
        view: View::Plain,
        field_selectors: Vec::new(),
    }
}

impl Registry {
    /// The built-in kinds plus every served version of `crds`. Only CRDs the operator's
    /// `validator_for` knows are validated.
    pub fn new(crds: &[CustomResourceDefinition]) -> Self {
        let mut types = Vec::new();
        let mut secrets = builtin("", "secrets", "secret", "Secret", true);
        secrets.field_selectors = vec![("type", "/type")];
        types.push(secrets);

        let mut core_events = builtin("", "events", "event", "Event", true);
        core_events.short_names = vec!["ev".to_owned()];
        core_events.field_selectors = vec![
            ("involvedObject.kind", "/involvedObject/kind"),
            ("involvedObject.namespace", "/involvedObject/namespace"),
            ("involvedObject.name", "/involvedObject/name"),
            ("involvedObject.uid", "/involvedObject/uid"),
            ("involvedObject.apiVersion", "/involvedObject/apiVersion"),
            ("involvedObject.resourceVersion", "/involvedObject/resourceVersion"),
            ("involvedObject.fieldPath", "/involvedObject/fieldPath"),
            ("reason", "/reason"),
            ("reportingComponent", "/reportingComponent"),
            ("source", "/source/component"),
            ("type", "/type"),
        ];
        types.push(core_events);
        let core_events_index = types.len() - 1;

        let mut namespaces = builtin("", "namespaces", "namespace", "Namespace", false);
        namespaces.short_names = vec!["ns".to_owned()];
        namespaces.status_subresource = true;
        namespaces.field_selectors = vec![("status.phase", "/status/phase")];
        types.push(namespaces);

        let mut events_v1 = builtin("events.k8s.io", "events", "event", "Event", true);
        events_v1.short_names = vec!["ev".to_owned()];
        events_v1.view = View::EventsV1;
        events_v1.storage = core_events_index;
        events_v1.field_selectors = vec![
            ("regarding.kind", "/regarding/kind"),
            ("regarding.namespace", "/regarding/namespace"),
            ("regarding.name", "/regarding/name"),
            ("regarding.uid", "/regarding/uid"),
            ("reason", "/reason"),
            ("reportingController", "/reportingController"),
            ("type", "/type"),
        ];
        types.push(events_v1);

        types.push(builtin("coordination.k8s.io", "leases", "lease", "Lease", true));

        for crd in crds {
            let spec = &crd.spec;
            for version in spec.versions.iter().filter(|v| v.served) {
                let api_version = format!("{}/{}", spec.group, version.name);
                types.push(ResourceType {
                    group: spec.group.clone(),
                    version: version.name.clone(),
                    plural: spec.names.plural.clone(),
                    singular: spec.names.singular.clone().unwrap_or_else(|| spec.names.kind.to_lowercase()),
                    kind: spec.names.kind.clone(),
                    short_names: spec.names.short_names.clone().unwrap_or_default(),
                    categories: spec.names.categories.clone().unwrap_or_default(),
                    namespaced: spec.scope == "Namespaced",
                    status_subresource: version.subresources.as_ref().is_some_and(|s| s.status.is_some()),
                    validator: validator_for(&api_version, &spec.names.kind),
                    schema: version
                        .schema
                        .as_ref()
                        .and_then(|s| s.open_api_v3_schema.as_ref())
                        .and_then(|s| serde_json::to_value(s).ok()),
                    storage: 0,
                    view: View::Plain,
                    field_selectors: Vec::new(),
                });
            }
        }
        for (index, resource) in types.iter_mut().enumerate() {
            if resource.view == View::Plain {
                resource.storage = index;
            }
        }
        Self { types }
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.types.iter().position(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The resource serving `kind` in `apiVersion` (for core Events, the `core/v1` one).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        self.types.iter().position(|r| r.api_version() == api_version && r.kind == kind)
    }

    /// A resource named as tests name it: `plural` (the first served with that name, built-in
    /// kinds first, core before `events.k8s.io`) or `plural.group`.
    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.types.iter().position(|r| r.plural == name || r.group_resource() == name)
    }

    fn groups(&self) -> Vec<&str> {
        let mut groups: Vec<&str> = Vec::new();
        for resource in &self.types {
            if !resource.group.is_empty() && !groups.contains(&resource.group.as_str()) {
                groups.push(&resource.group);
            }
        }
        groups
    }

    fn versions(&self, group: &str) -> Vec<&str> {
        let mut versions: Vec<&str> = Vec::new();
        for resource in self.types.iter().filter(|r| r.group == group) {
            if !versions.contains(&resource.version.as_str()) {
                versions.push(&resource.version);
            }
        }
        versions
    }

    /// `/api`.
    pub fn core_versions(&self) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
        })
    }

    fn group_document(&self, group: &str) -> Value {
        let versions: Vec<Value> = self
            .versions(group)
            .iter()
            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect();
        let preferred = versions.first().cloned().unwrap_or(Value::Null);
        json!({"name": group, "versions": versions, "preferredVersion": preferred})
    }

    /// `/apis`.
    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self.groups().iter().map(|g| self.group_document(g)).collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/apis/{group}`.
    pub fn group(&self, group: &str) -> Option<Value> {
        if !self.groups().contains(&group) {
            return None;
        }
        let mut document = self.group_document(group);
        document["kind"] = json!("APIGroup");
        document["apiVersion"] = json!("v1");
        Some(document)
    }

    /// `/api/v1` and `/apis/{group}/{version}`.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let served: Vec<&ResourceType> =
            self.types.iter().filter(|r| r.group == group && r.version == version).collect();
        if served.is_empty() {
            return None;
        }
        let mut resources = Vec::new();
        for resource in served {
            let mut entry = json!({
                "name": resource.plural,
                "singularName": resource.singular,
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": resource.verbs(),
            });
            if !resource.short_names.is_empty() {
                entry["shortNames"] = json!(resource.short_names);
            }
            if !resource.categories.is_empty() {
                entry["categories"] = json!(resource.categories);
            }
            resources.push(entry);
            if resource.status_subresource {
                resources.push(json!({
                    "name": format!("{}/status", resource.plural),
                    "singularName": "",
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
        )
    }

    /// Aggregated discovery (`apidiscovery.k8s.io/v2`) for `/api` (`core`) or `/apis`.
    pub fn aggregated(&self, core: bool) -> Value {
        let groups: Vec<&str> = if core { vec![""] } else { self.groups() };
        let items: Vec<Value> = groups
            .iter()
            .map(|group| {
                let versions: Vec<Value> = self
                    .versions(group)
                    .iter()
                    .map(|version| {
                        let resources: Vec<Value> = self
                            .types
                            .iter()
                            .filter(|r| r.group == *group && r.version == *version)
                            .map(|r| {
                                let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
                                let mut entry = json!({
                                    "resource": r.plural,
                                    "responseKind": kind,
                                    "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                    "singularResource": r.singular,
                                    "verbs": r.verbs(),
                                });
                                if !r.short_names.is_empty() {
                                    entry["shortNames"] = json!(r.short_names);
                                }
                                if !r.categories.is_empty() {
                                    entry["categories"] = json!(r.categories);
                                }
                                if r.status_subresource {
                                    entry["subresources"] = json!([{
                                        "subresource": "status",
                                        "responseKind": kind,
                                        "verbs": ["get", "patch", "update"],
                                    }]);
                                }
                                entry
                            })
                            .collect();
                        json!({"version": version, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                let mut metadata = Map::new();
                if !group.is_empty() {
                    metadata.insert("name".into(), json!(group));
                }
                json!({"metadata": metadata, "versions": versions})
            })
            .collect();
        json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
    }
}

// ---------------------------------------------------------------------------------------------
// Events: one storage (core/v1), two APIs.

/// Field names that differ between `core/v1` (first) and `events.k8s.io/v1` (second).
const EVENT_RENAMES: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename_fields(object: &Value, api_version: &str, to_v1: bool) -> Value {
    let Value::Object(map) = object else { return object.clone() };
    let mut out = Map::new();
    for (key, value) in map {
        let renamed = EVENT_RENAMES
            .iter()
            .find(|(core, v1)| if to_v1 { key == core } else { key == v1 })
            .map(|(core, v1)| if to_v1 { *v1 } else { *core })
            .unwrap_or(key);
        out.insert(renamed.to_owned(), value.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    Value::Object(out)
}

/// The object as `resource` serves it, from its stored form.
pub fn to_view(resource: &ResourceType, stored: &Value) -> Value {
    match resource.view {
        View::Plain => stored.clone(),
        View::EventsV1 => rename_fields(stored, "events.k8s.io/v1", true),
    }
}

/// The stored form of an object written through `resource`.
pub fn from_view(resource: &ResourceType, view: &Value) -> Value {
    match resource.view {
        View::Plain => view.clone(),
        View::EventsV1 => {
            let mut core = rename_fields(view, "v1", false);
            if core.get("involvedObject").is_none() {
                core["involvedObject"] = json!({});
            }
            core
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Built-in kinds on write.

/// Decodes a built-in object into its typed form and back, as the API server's typed decoding
/// does: wrong types are rejected, unknown fields dropped.
fn round_trip<T: DeserializeOwned + Serialize>(resource: &ResourceType, object: Value) -> Result<Value, ApiError> {
    let typed: T = serde_json::from_value(object).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = resource.kind,
            version = resource.version
        ))
    })?;
    serde_json::to_value(typed).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// What the API server does to a built-in object before storing it (served form in, served
/// form out); `old` is the served form of the object being updated.
pub fn prepare_builtin(resource: &ResourceType, object: Value, old: Option<&Value>) -> Result<Value, ApiError> {
    use k8s_openapi::api::{coordination::v1::Lease, core::v1 as core, events::v1 as events};
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    match (resource.group.as_str(), resource.plural.as_str()) {
        ("", "secrets") => {
            let mut object = object;
            merge_string_data(&mut object)?;
            if object.get("type").is_none_or(Value::is_null) {
                object["type"] = json!("Opaque");
            }
            let object = round_trip::<core::Secret>(resource, object)?;
            let causes = secret_update_causes(&object, old);
            if causes.is_empty() { Ok(object) } else { Err(ApiError::invalid(resource, &name, causes)) }
        }
        ("", "events") => {
            let mut object = object;
            if object.get("involvedObject").is_none_or(Value::is_null) {
                object["involvedObject"] = json!({});
            }
            let object = round_trip::<core::Event>(resource, object)?;
            let causes = event_causes(&object, false, old.is_none());
            if causes.is_empty() { Ok(object) } else { Err(ApiError::invalid(resource, &name, causes)) }
        }
        ("events.k8s.io", "events") => {
            let object = round_trip::<events::Event>(resource, object)?;
            let causes = event_causes(&from_view(resource, &object), true, old.is_none());
            if causes.is_empty() { Ok(object) } else { Err(ApiError::invalid(resource, &name, causes)) }
        }
        ("coordination.k8s.io", "leases") => {
            let object = round_trip::<Lease>(resource, object)?;
            let mut causes = Vec::new();
            if let Some(duration) = object.pointer("/spec/leaseDurationSeconds").and_then(Value::as_i64)
                && duration <= 0
            {
                causes.push(invalid_cause(
                    "spec.leaseDurationSeconds",
                    Some(&json!(duration)),
                    "must be greater than 0",
                ));
            }
            if let Some(transitions) = object.pointer("/spec/leaseTransitions").and_then(Value::as_i64)
                && transitions < 0
            {
                causes.push(invalid_cause(
                    "spec.leaseTransitions",
                    Some(&json!(transitions)),
                    "must be greater than or equal to 0",
                ));
            }
            if causes.is_empty() { Ok(object) } else { Err(ApiError::invalid(resource, &name, causes)) }
        }
        ("", "namespaces") => {
            let mut object = round_trip::<core::Namespace>(resource, object)?;
            if object.pointer("/status/phase").is_none() {
                object["status"] = json!({"phase": "Active"});
            }
            Ok(object)
        }
        _ => Ok(object),
    }
}

/// `stringData` is write-only: the API server folds it into `data` (base64) and drops it.
fn merge_string_data(secret: &mut Value) -> Result<(), ApiError> {
    let Some(map) = secret.as_object_mut() else { return Ok(()) };
    let Some(string_data) = map.remove("stringData") else { return Ok(()) };
    let Value::Object(string_data) = string_data else {
        if string_data.is_null() {
            return Ok(());
        }
        return Err(ApiError::bad_request(
            "Secret in version \"v1\" cannot be handled as a Secret: stringData must be an object",
        ));
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if data.is_null() {
        *data = json!({});
    }
    let Some(data) = data.as_object_mut() else {
        return Err(ApiError::bad_request(
            "Secret in version \"v1\" cannot be handled as a Secret: data must be an object",
        ));
    };
    for (key, value) in string_data {
        let Value::String(text) = value else {
            return Err(ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: stringData.{key} must be a string"
            )));
        };
        data.insert(key, json!(base64::engine::general_purpose::STANDARD.encode(text)));
    }
    Ok(())
}

fn secret_update_causes(new: &Value, old: Option<&Value>) -> Vec<Cause> {
    let Some(old) = old else { return Vec::new() };
    let mut causes = Vec::new();
    if new.get("type") != old.get("type") {
        causes.push(invalid_cause("type", new.get("type"), "field is immutable"));
    }
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        if new.get("data") != old.get("data") {
            causes.push(forbidden_cause("data", "field is immutable when `immutable` is set"));
        }
        if new.get("immutable") != old.get("immutable") {
            causes.push(forbidden_cause("immutable", "field is immutable when `immutable` is set"));
        }
    }
    causes
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// The API server's Event validation (`core/v1` form in). `strict` adds the rules of
/// `events.k8s.io/v1` creates.
fn event_causes(event: &Value, strict: bool, create: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let namespace = text(event, "/metadata/namespace");
    let involved_namespace = text(event, "/involvedObject/namespace");
    let controller_field = if strict { "reportingController" } else { "reportingComponent" };
    let involved_field = if strict { "regarding.namespace" } else { "involvedObject.namespace" };
    let has_event_time = !text(event, "/eventTime").is_empty();
    let mismatch = || invalid_cause(involved_field, Some(&json!(involved_namespace)), "does not match event.namespace");
    if !has_event_time {
        if involved_namespace.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                causes.push(mismatch());
            }
        } else if namespace != involved_namespace {
            causes.push(mismatch());
        }
    } else {
        if involved_namespace.is_empty() && namespace != "default" && namespace != "kube-system" {
            causes.push(mismatch());
        }
        let controller = text(event, "/reportingComponent");
        if controller.is_empty() {
            causes.push(required_cause(controller_field));
        } else if !is_qualified_name(controller) {
            causes.push(invalid_cause(controller_field, Some(&json!(controller)), QUALIFIED_NAME_MESSAGE));
        }
        for (field, pointer, limit) in
            [("reportingInstance", "/reportingInstance", 128), ("action", "/action", 128), ("reason", "/reason", 128)]
        {
            let value = text(event, pointer);
            if value.is_empty() {
                causes.push(required_cause(field));
            } else if value.chars().count() > limit {
                causes.push(invalid_cause(field, Some(&json!("")), &format!("can have at most {limit} characters")));
            }
        }
        if text(event, "/message").chars().count() > 1024 {
            let field = if strict { "note" } else { "message" };
            causes.push(invalid_cause(field, Some(&json!("")), "can have at most 1024 characters"));
        }
    }
    if strict && create {
        if !has_event_time {
            causes.push(required_cause("eventTime"));
        }
        let type_ = text(event, "/type");
        if type_ != "Normal" && type_ != "Warning" {
            causes.push(invalid_cause("type", Some(&json!("")), &format!("has invalid value: {type_}")));
        }
        for (field, pointer) in [
            ("deprecatedFirstTimestamp", "/firstTimestamp"),
            ("deprecatedLastTimestamp", "/lastTimestamp"),
            ("deprecatedCount", "/count"),
        ] {
            if event.pointer(pointer).is_some_and(|v| !v.is_null() && *v != json!(0)) {
                causes.push(invalid_cause(field, Some(&json!("")), "needs to be unset"));
            }
        }
        if !text(event, "/source/component").is_empty() || !text(event, "/source/host").is_empty() {
            causes.push(invalid_cause("deprecatedSource", Some(&json!("")), "needs to be unset"));
        }
    }
    causes
}

// ---------------------------------------------------------------------------------------------
// Names, labels and annotations (every kind).

const QUALIFIED_NAME_MESSAGE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
     start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/' (e.g. \
     'example.com/MyName')";

fn is_name_part(part: &str) -> bool {
    let edge = |c: char| c.is_ascii_alphanumeric();
    !part.is_empty()
        && part.len() <= 63
        && part.starts_with(edge)
        && part.ends_with(edge)
        && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A label or annotation key: `[prefix/]name`.
pub fn is_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => prefix.len() <= 253 && is_dns_subdomain(prefix) && is_name_part(name),
        None => is_name_part(key),
    }
}

fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_name_part(value)
}

/// An RFC 1123 label (namespace names).
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns_subdomain(name)
}

/// The metadata checks the API server makes on every kind: the name (built-in kinds; CRDs have
/// theirs checked by their validator), label keys and values, annotation keys and size.
pub fn metadata_causes(resource: &ResourceType, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if !resource.is_custom() {
        let (valid, what) = if resource.plural == "namespaces" {
            (is_dns_label(name), "a lowercase RFC 1123 label")
        } else {
            (name.len() <= 253 && is_dns_subdomain(name), "a lowercase RFC 1123 subdomain")
        };
        if name.is_empty() {
            causes.push(required_cause("metadata.name"));
        } else if !valid {
            causes.push(invalid_cause(
                "metadata.name",
                Some(&json!(name)),
                &format!(
                    "{what} must consist of lower case alphanumeric characters, '-' or '.', and must start and end \
                     with an alphanumeric character"
                ),
            ));
        }
    }
    if let Some(labels) = object.pointer("/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            if !is_qualified_name(key) {
                causes.push(invalid_cause("metadata.labels", Some(&json!(key)), QUALIFIED_NAME_MESSAGE));
            }
            let value = value.as_str().unwrap_or_default();
            if !is_label_value(value) {
                causes.push(invalid_cause(
                    "metadata.labels",
                    Some(&json!(value)),
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', \
                     and must start and end with an alphanumeric character, at most 63 characters",
                ));
            }
        }
    }
    if let Some(annotations) = object.pointer("/metadata/annotations").and_then(Value::as_object) {
        let mut size = 0;
        for (key, value) in annotations {
            size += key.len() + value.as_str().map_or(0, str::len);
            if !is_qualified_name(key) {
                causes.push(invalid_cause("metadata.annotations", Some(&json!(key)), QUALIFIED_NAME_MESSAGE));
            }
        }
        if size > 256 * 1024 {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".to_owned(),
                message: format!("Too long: may not be more than 262144 bytes, found {size}"),
            });
        }
    }
    causes
}
