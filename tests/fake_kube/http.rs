//! The HTTP face: paths, query parameters and content types as a real API server reads them,
//! responses as it writes them. One axum `Router` serves both the in-process `kube::Client` and
//! the loopback listener for `kubectl --server`.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::to_bytes,
    extract::{Query, Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    errors::ApiError,
    selectors::{FieldSelector, LabelSelector, Selectors},
    store::{ListOptions, PatchType, RequestRecord, Store, Sub, WriteOptions, parse_body},
    watch::{self, WatchRequest},
};

/// Largest request body read, as a real API server: a larger one is answered 413.
const MAX_BODY: usize = 3 * 1024 * 1024;
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

pub fn router(store: Arc<Store>) -> Router {
    Router::new().fallback(handle).with_state(store)
}

fn json_response(code: u16, value: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

fn error_response(error: &ApiError) -> Response {
    json_response(error.code, &error.to_status())
}

async fn handle(State(store): State<Arc<Store>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let response = match dispatch(&store, request).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    };
    store.record_request(RequestRecord { method: method.to_string(), path, query, status: response.status().as_u16() });
    response
}

/// Query parameters, by name (the last one wins).
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }

    fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|_| ApiError::bad_request(format!("{name}: {v:?} is not a number"))))
            .transpose()
    }

    fn selectors(&self, store: &Store, resource: usize) -> Result<Selectors, ApiError> {
        Ok(Selectors {
            labels: LabelSelector::parse(self.get("labelSelector").unwrap_or_default())?,
            fields: FieldSelector::parse(self.get("fieldSelector").unwrap_or_default(), store.resource(resource))?,
        })
    }

    fn write_options(&self, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
        let dry_run = match self.get("dryRun") {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => return Err(ApiError::bad_request(format!("unsupported dryRun value {other:?}"))),
        };
        let strict = match self.get("fieldValidation") {
            None | Some("" | "Ignore" | "Warn") => false,
            Some("Strict") => true,
            Some(other) => return Err(ApiError::bad_request(format!("invalid fieldValidation directive {other:?}"))),
        };
        let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("unknown");
        let user_agent_manager = user_agent.split('/').next().unwrap_or("unknown").to_owned();
        Ok(WriteOptions {
            field_manager: self.get("fieldManager").filter(|m| !m.is_empty()).map(str::to_owned),
            user_agent_manager,
            dry_run,
            strict,
            force: self.flag("force"),
        })
    }
}

/// Whether the client asks for metadata only (`as=PartialObjectMetadata[List]`), as kube's
/// `get_metadata`, `list_metadata`, `watch_metadata` and `metadata_watcher` do.
fn wants_metadata_only(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    accept.split(',').next().is_some_and(|first| {
        first.split(';').map(str::trim).any(|p| p == "as=PartialObjectMetadata" || p == "as=PartialObjectMetadataList")
    })
}

/// An object as `PartialObjectMetadata`; a `Status` stays as it is.
pub fn partial_object(object: &Value) -> Value {
    if object.get("kind").and_then(Value::as_str) == Some("Status") {
        return object.clone();
    }
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn partial_list(list: &Value) -> Value {
    let items: Vec<Value> =
        list.get("items").and_then(Value::as_array).into_iter().flatten().map(partial_object).collect();
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "items": items,
    })
}

/// Whether the client asks for aggregated discovery (`apidiscovery.k8s.io/v2`), as kubectl and
/// kube's `Discovery` do.
fn accepts_aggregated(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        ["g=apidiscovery.k8s.io", "v=v2", "as=APIGroupDiscoveryList"].iter().all(|p| params.contains(p))
    })
}

fn version_document() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

async fn dispatch(store: &Arc<Store>, request: Request) -> Result<Response, ApiError> {
    let segments: Vec<String> = request.uri().path().split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let headers = request.headers().clone();
    let get = request.method() == Method::GET;
    let discovery = |value: Value| Ok(json_response(200, &value));
    match segments.as_slice() {
        ["version"] if get => return discovery(version_document()),
        ["healthz" | "livez" | "readyz"] if get => return Ok((StatusCode::OK, "ok").into_response()),
        ["api"] if get && accepts_aggregated(&headers) => return Ok(aggregated(store.registry.aggregated(true))),
        ["apis"] if get && accepts_aggregated(&headers) => return Ok(aggregated(store.registry.aggregated(false))),
        ["api"] if get => return discovery(store.registry.core_versions()),
        ["apis"] if get => return discovery(store.registry.group_list()),
        ["api", "v1"] if get => {
            return discovery(store.registry.resource_list("", "v1").ok_or_else(ApiError::no_route)?);
        }
        ["apis", group] if get => return discovery(store.registry.group(group).ok_or_else(ApiError::no_route)?),
        ["apis", group, version] if get => {
            return discovery(store.registry.resource_list(group, version).ok_or_else(ApiError::no_route)?);
        }
        _ => {}
    }
    let (group, version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", "v1", rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return Err(ApiError::no_route()),
    };
    let namespaced_form = rest.len() >= 3
        && rest[0] == "namespaces"
        && store.registry.find(group, version, rest[2]).is_some_and(|i| store.resource(i).namespaced);
    let (namespace, plural, tail) =
        if namespaced_form { (Some(rest[1]), rest[2], &rest[3..]) } else { (None, rest[0], &rest[1..]) };
    let resource = store.registry.find(group, version, plural).ok_or_else(ApiError::no_route)?;
    let resource_type = store.resource(resource);
    if namespace.is_some() && !resource_type.namespaced {
        return Err(ApiError::no_route());
    }
    let (name, sub) = match tail {
        [] => (None, Sub::Main),
        [name] => (Some(*name), Sub::Main),
        [name, "status"] if resource_type.status_subresource => (Some(*name), Sub::Status),
        _ => return Err(ApiError::no_route()),
    };
    if name.is_some() && resource_type.namespaced && namespace.is_none() {
        return Err(ApiError::no_route());
    }
    if let Some(error) = store.take_failure(request.method().as_str(), Some(resource_type)) {
        return Err(error);
    }
    if let Some(name) = name
        && let Some(patch) = store.take_race(request.method().as_str(), Some(resource_type))
    {
        let options = WriteOptions { user_agent_manager: "another-writer".into(), ..WriteOptions::default() };
        let _ =
            store.patch(resource, namespace, name, Sub::Main, PatchType::Merge, patch.to_string().as_bytes(), &options);
    }
    let params = Params(
        Query::<Vec<(String, String)>>::try_from_uri(request.uri())
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?
            .0,
    );
    let method = request.method().clone();
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let body = to_bytes(request.into_body(), MAX_BODY).await.map_err(|e| {
        // The body's own error says whether it broke off or ran over the limit.
        let mut cause: &dyn std::error::Error = &e;
        while let Some(source) = cause.source() {
            cause = source;
        }
        if cause.to_string().contains("length limit exceeded") {
            ApiError::request_too_large()
        } else {
            ApiError::bad_request(format!("cannot read the request body: {e}"))
        }
    })?;
    let json_body = || {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if !(media.is_empty() || media == "application/json" || media == "*/*") {
            return Err(ApiError::unsupported_media_type(media, "application/json"));
        }
        parse_body(&body, false)
    };

    let metadata_only = wants_metadata_only(&headers);
    let object_response = |code: u16, object: &Value| {
        if metadata_only { json_response(code, &partial_object(object)) } else { json_response(code, object) }
    };
    let list_response = |list: &Value| {
        if metadata_only { json_response(200, &partial_list(list)) } else { json_response(200, list) }
    };

    match (method, name) {
        (Method::GET, Some(name)) => {
            Ok(object_response(200, &store.get(resource, namespace.unwrap_or_default(), name)?))
        }
        (Method::GET, None) if params.flag("watch") => {
            let send_initial_events = params.flag("sendInitialEvents");
            let start = store.watch(resource, namespace, params.get("resourceVersion"), send_initial_events)?;
            let timeout = params
                .number("timeoutSeconds")?
                .filter(|s| *s > 0)
                .map_or(store.config.default_watch_timeout, Duration::from_secs);
            let request = WatchRequest {
                resource,
                selectors: params.selectors(store, resource)?,
                bookmarks: params.flag("allowWatchBookmarks"),
                send_initial_events,
                timeout,
                metadata_only,
            };
            let body = watch::body(store.clone(), request, start);
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::TRANSFER_ENCODING, "chunked")
                .body(body)
                .unwrap_or_else(|_| error_response(&ApiError::bad_request("cannot build the watch response"))))
        }
        (Method::GET, None) => {
            // A slow list (a busy API server, a large collection) is served as of when it ends.
            let delay = store.list_delay(resource_type);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let options = ListOptions {
                selectors: params.selectors(store, resource)?,
                resource_version: params.get("resourceVersion").map(str::to_owned),
                resource_version_match: params.get("resourceVersionMatch").map(str::to_owned),
                limit: params.number("limit")?.map(|n| n as usize),
                continue_token: params.get("continue").map(str::to_owned),
            };
            Ok(list_response(&store.list(resource, namespace, &options)?))
        }
        (Method::POST, None) => {
            if resource_type.namespaced && namespace.is_none() {
                return Err(ApiError::method_not_allowed("create needs a namespace in the path"));
            }
            let options = params.write_options(&headers)?;
            Ok(object_response(201, &store.create(resource, namespace, json_body()?, &options)?))
        }
        (Method::PUT, Some(name)) => {
            let options = params.write_options(&headers)?;
            Ok(object_response(200, &store.replace(resource, namespace, name, sub, json_body()?, &options)?))
        }
        (Method::PATCH, Some(name)) => {
            let patch_type = match content_type.split(';').next().unwrap_or_default().trim() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/json-patch+json" => PatchType::Json,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+json" => PatchType::Apply,
                other => {
                    return Err(ApiError::unsupported_media_type(
                        other,
                        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                    ));
                }
            };
            let options = params.write_options(&headers)?;
            let (code, object) = store.patch(resource, namespace, name, sub, patch_type, &body, &options)?;
            Ok(object_response(code, &object))
        }
        (Method::DELETE, Some(name)) if sub == Sub::Main => {
            let delete_options = if body.is_empty() { json!({}) } else { json_body()? };
            let mut options = params.write_options(&headers)?;
            if delete_options.get("dryRun").and_then(Value::as_array).is_some_and(|d| d.iter().any(|v| v == "All")) {
                options.dry_run = true;
            }
            Ok(object_response(200, &store.delete(resource, namespace, name, &delete_options, &options)?))
        }
        (Method::DELETE, None) => {
            let delete_options = if body.is_empty() { json!({}) } else { json_body()? };
            let options = params.write_options(&headers)?;
            let selectors = params.selectors(store, resource)?;
            Ok(json_response(
                200,
                &store.delete_collection(resource, namespace, &selectors, &delete_options, &options)?,
            ))
        }
        (method, _) => Err(ApiError::method_not_allowed(format!("{method} is not supported here"))),
    }
}

fn aggregated(document: Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, AGGREGATED)], document.to_string()).into_response()
}
