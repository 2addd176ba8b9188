//! Failures as the API server reports them: a `Status` object whose `reason` and `code` are the
//! ones kube's error helpers (`is_not_found`, `is_conflict`, …) and the watcher look at.

use serde_json::{Map, Value, json};

use super::resources::ResourceType;

/// One field-level cause of a rejection (`details.causes[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, `FieldManagerConflict`, …
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

/// A failed request, rendered as a `Status` by [`ApiError::to_status`].
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` object of this failure.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// A request body over what a real API server reads (3 MiB).
    pub fn request_too_large() -> Self {
        Self::new(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
    }

    /// An object etcd refuses to store (over its request limit): 500, worded as etcd words it.
    pub fn object_too_large() -> Self {
        Self::new(500, "InternalError", "etcdserver: request is too large")
    }

    /// An object larger than the gRPC message the API server may send etcd.
    pub fn message_too_large(size: usize, limit: usize) -> Self {
        Self::new(
            500,
            "InternalError",
            format!(
                "rpc error: code = ResourceExhausted desc = trying to send message larger than max ({size} vs. {limit})"
            ),
        )
    }

    pub fn not_found(resource: &ResourceType, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", resource.group_resource()))
            .with_details(resource_details(resource, name))
    }

    /// A path the server does not serve.
    pub fn no_route() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource").with_details(json!({
            "causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]
        }))
    }

    pub fn already_exists(resource: &ResourceType, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", resource.group_resource()))
            .with_details(resource_details(resource, name))
    }

    /// An update based on a stale `resourceVersion` (or a failed delete precondition).
    pub fn conflict(resource: &ResourceType, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {why}", resource.group_resource()),
        )
        .with_details(resource_details(resource, name))
    }

    pub fn stale(resource: &ResourceType, name: &str) -> Self {
        Self::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// Server-side apply found fields owned by other managers (409 with one cause per field).
    pub fn apply_conflicts(resource: &ResourceType, name: &str, conflicts: &[(String, String)]) -> Self {
        let plural = if conflicts.len() == 1 { "conflict" } else { "conflicts" };
        let listed: Vec<String> =
            conflicts.iter().map(|(manager, field)| format!("conflict with \"{manager}\": {field}")).collect();
        let message = format!("Apply failed with {} {plural}: {}", conflicts.len(), listed.join("\n"));
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{manager}\""), "field": field})
            })
            .collect();
        let mut details = resource_details(resource, name);
        details["causes"] = Value::Array(causes);
        Self::new(409, "Conflict", message).with_details(details)
    }

    /// 422 Invalid, the way the API server words schema and validation failures.
    pub fn invalid(resource: &ResourceType, name: &str, causes: Vec<Cause>) -> Self {
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
            .collect();
        let listed = if rendered.len() == 1 { rendered[0].clone() } else { format!("[{}]", rendered.join(", ")) };
        let qualified = if resource.group.is_empty() {
            resource.kind.clone()
        } else {
            format!("{}.{}", resource.kind, resource.group)
        };
        let message = format!("{qualified} \"{name}\" is invalid: {listed}");
        let mut details = Map::new();
        details.insert("name".into(), json!(name));
        if !resource.group.is_empty() {
            details.insert("group".into(), json!(resource.group));
        }
        details.insert("kind".into(), json!(resource.kind));
        details.insert(
            "causes".into(),
            Value::Array(
                causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect(),
            ),
        );
        Self::new(422, "Invalid", message).with_details(Value::Object(details))
    }

    /// A JSON patch that cannot be applied (a failed `test`, a missing path), answered as real
    /// servers do: 422 `Invalid` with a generic message and empty details, so no cause says what
    /// failed (the API server wraps the JSON-patch error without passing its text on).
    pub fn patch_not_applied() -> Self {
        Self::new(422, "Invalid", "the server rejected our request due to an error in our request")
            .with_details(json!({}))
    }

    /// A `resourceVersion` older than the history the server still holds.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: {accepted}"
            ),
        )
    }

    /// An error injected by a test with `FakeKube::fail_next`.
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        };
        Self::new(code, reason, format!("injected failure with code {code}"))
    }
}

fn resource_details(resource: &ResourceType, name: &str) -> Value {
    let mut details = Map::new();
    details.insert("name".into(), json!(name));
    if !resource.group.is_empty() {
        details.insert("group".into(), json!(resource.group));
    }
    details.insert("kind".into(), json!(resource.plural));
    Value::Object(details)
}

/// Renders a value the way the API server's field errors print it: strings quoted, scalars
/// as they are, objects and lists by their type.
pub fn show_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "null".to_owned(),
        Some(Value::String(text)) => format!("{text:?}"),
        Some(Value::Object(_)) => "\"object\"".to_owned(),
        Some(Value::Array(_)) => "\"array\"".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// A cause for `field` holding `value`, worded as the API server words it.
pub fn invalid_cause(field: &str, value: Option<&Value>, message: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field: field.to_owned(),
        message: format!("Invalid value: {}: {message}", show_value(value)),
    }
}

pub fn required_cause(field: &str) -> Cause {
    Cause { reason: "FieldValueRequired", field: field.to_owned(), message: "Required value".to_owned() }
}

pub fn forbidden_cause(field: &str, message: &str) -> Cause {
    Cause { reason: "FieldValueForbidden", field: field.to_owned(), message: format!("Forbidden: {message}") }
}
