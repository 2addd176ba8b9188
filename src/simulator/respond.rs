//! Response building blocks shared by the handlers: JSON bodies with Bitbucket's content type,
//! the error envelope (§5) and the paged envelope (§3).

use axum::{
    body::Body,
    extract::{Path, rejection::PathRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Value, json};

pub(crate) const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 1000;

/// A JSON response with `Content-Type: application/json;charset=UTF-8`.
pub(crate) fn json_response<T: Serialize + ?Sized>(status: u16, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    response
}

pub(crate) fn ok<T: Serialize + ?Sized>(body: &T) -> Response {
    json_response(200, body)
}

pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// One entry of the error envelope.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorEntry {
    pub context: Option<String>,
    pub message: String,
    pub exception_name: Option<&'static str>,
}

/// `{"errors":[{"context","message","exceptionName"}]}` with a status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub errors: Vec<ErrorEntry>,
}

pub(crate) const NO_SUCH_PROJECT: &str = "com.atlassian.bitbucket.project.NoSuchProjectException";
pub(crate) const NO_SUCH_REPOSITORY: &str = "com.atlassian.bitbucket.repository.NoSuchRepositoryException";
pub(crate) const ARGUMENT_VALIDATION: &str = "com.atlassian.bitbucket.validation.ArgumentValidationException";

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>, exception_name: Option<&'static str>) -> ApiError {
        ApiError { status, errors: vec![ErrorEntry { context: None, message: message.into(), exception_name }] }
    }

    /// 400 validation errors, one per field.
    pub fn validation(fields: Vec<(String, String)>) -> ApiError {
        ApiError {
            status: 400,
            errors: fields
                .into_iter()
                .map(|(context, message)| ErrorEntry {
                    context: (!context.is_empty()).then_some(context),
                    message,
                    exception_name: Some(ARGUMENT_VALIDATION),
                })
                .collect(),
        }
    }

    pub fn no_such_project(key: &str) -> ApiError {
        ApiError::new(404, format!("Project {key} does not exist."), Some(NO_SUCH_PROJECT))
    }

    pub fn no_such_repository(key: &str, slug: &str) -> ApiError {
        ApiError::new(404, format!("Repository {key}/{slug} does not exist."), Some(NO_SUCH_REPOSITORY))
    }

    /// Unknown resource under `/rest`.
    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(404, format!("The resource {path} does not exist."), None)
    }

    pub fn body(&self) -> Value {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| json!({"context": e.context, "message": e.message, "exceptionName": e.exception_name}))
            .collect();
        json!({ "errors": errors })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body())
    }
}

/// Handlers answer either a finished response or an error envelope.
pub(crate) type Reply = Result<Response, ApiError>;

/// Turns a handler's result into the response.
pub(crate) fn finish(reply: Reply) -> Response {
    reply.unwrap_or_else(IntoResponse::into_response)
}

/// Path parameters; undecodable ones (bad UTF-8, a non-numeric id...) are a 404 like an unknown
/// entity.
pub(crate) fn params<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(p)| p).map_err(|_| ApiError::new(404, "The requested resource does not exist.", None))
}

/// A JSON request body: 415 without a JSON content type, 400 when it does not parse.
pub(crate) fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let is_json =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_some_and(
            |v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json") || v.to_ascii_lowercase().ends_with("+json")
            },
        );
    if !is_json {
        return Err(ApiError::new(415, "The request body must be sent as application/json.", None));
    }
    serde_json::from_slice(body).map_err(|_| ApiError::new(400, "The request body is not valid JSON.", None))
}

/// `start`/`limit` from a raw query string: defaults 0/25, limit capped at `max` (the server's page
/// cap, itself at most 1000); unreadable values fall back to the defaults and `limit=0` means the
/// default.
pub(crate) fn page_params(query: Option<&str>, max: usize) -> (usize, usize) {
    let max = max.clamp(1, MAX_LIMIT);
    let mut start = 0;
    let mut limit = DEFAULT_LIMIT;
    for (key, value) in query_pairs(query.unwrap_or("")) {
        match key.as_str() {
            "start" => start = value.parse().unwrap_or(0),
            "limit" => {
                limit = match value.parse::<usize>() {
                    Ok(0) | Err(_) => DEFAULT_LIMIT,
                    Ok(n) => n,
                }
            }
            _ => {}
        }
    }
    (start, limit.min(max))
}

/// The paged envelope; `nextPageStart` only when this is not the last page.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page<V> {
    pub size: usize,
    pub limit: usize,
    pub is_last_page: bool,
    pub start: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_start: Option<usize>,
    pub values: Vec<V>,
}

/// One page of `items` from `start`, at most `limit` long, each item rendered by `render`.
pub(crate) fn page<T, V>(items: &[T], start: usize, limit: usize, render: impl FnMut(&T) -> V) -> Page<V> {
    let total = items.len();
    let from = start.min(total);
    let to = from.saturating_add(limit).min(total);
    let values: Vec<V> = items[from..to].iter().map(render).collect();
    let is_last_page = to >= total;
    Page { size: values.len(), limit, is_last_page, start, next_page_start: (!is_last_page).then_some(to), values }
}

/// Decoded `key=value` pairs of a query string (`+` is a space; bad escapes stay as they are).
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The 404 of a server that does not know a path at all (not the envelope).
pub(crate) fn html_not_found() -> Response {
    let mut response = Response::new(Body::from("<html><body>Not Found</body></html>"));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(n: usize) -> Vec<usize> {
        (0..n).collect()
    }

    fn page<T: Clone + Serialize>(items: &[T], start: usize, limit: usize, _: fn(&T) -> Value) -> Value {
        serde_json::to_value(super::page(items, start, limit, T::clone)).unwrap()
    }

    #[test]
    fn paging_math() {
        let items = numbers(7);
        let first = page(&items, 0, 3, |n| json!(n));
        assert_eq!(first, json!({"size":3,"limit":3,"isLastPage":false,"start":0,"nextPageStart":3,"values":[0,1,2]}));
        let last = page(&items, 6, 3, |n| json!(n));
        assert_eq!(last, json!({"size":1,"limit":3,"isLastPage":true,"start":6,"values":[6]}));
        assert!(last.get("nextPageStart").is_none());
        // Exactly filling the last page: no nextPageStart.
        let exact = page(&items, 4, 3, |n| json!(n));
        assert_eq!(exact["isLastPage"], json!(true));
        assert!(exact.get("nextPageStart").is_none());
        // Past the end: an empty last page.
        let beyond = page(&items, 50, 3, |n| json!(n));
        assert_eq!(beyond, json!({"size":0,"limit":3,"isLastPage":true,"start":50,"values":[]}));
        let empty = page(&numbers(0), 0, 25, |n| json!(n));
        assert_eq!(empty, json!({"size":0,"limit":25,"isLastPage":true,"start":0,"values":[]}));
    }

    #[test]
    fn page_parameters() {
        assert_eq!(page_params(None, MAX_LIMIT), (0, 25));
        assert_eq!(page_params(Some("limit=1000"), MAX_LIMIT), (0, 1000));
        assert_eq!(page_params(Some("limit=5000&start=10"), MAX_LIMIT), (10, 1000));
        assert_eq!(page_params(Some("limit=0"), MAX_LIMIT), (0, 25));
        assert_eq!(page_params(Some("limit=-3&start=x"), MAX_LIMIT), (0, 25));
        assert_eq!(page_params(Some("start=18446744073709551616"), MAX_LIMIT), (0, 25));
        assert_eq!(page_params(Some("&&limit=7&other=%zz"), MAX_LIMIT), (0, 7));
        // A server with a lower cap answers less than asked, the default included.
        assert_eq!(page_params(Some("limit=200"), 25), (0, 25));
        assert_eq!(page_params(None, 10), (0, 10));
        assert_eq!(page_params(Some("limit=3"), 25), (0, 3));
        assert_eq!(page_params(Some("limit=5000"), 5000), (0, 1000));
        let capped = page(&numbers(1500), 0, page_params(Some("limit=99999"), MAX_LIMIT).1, |n| json!(n));
        assert_eq!(capped["limit"], json!(1000));
        assert_eq!(capped["size"], json!(1000));
        assert_eq!(capped["nextPageStart"], json!(1000));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%7Ejdoe"), "~jdoe");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }

    #[test]
    fn envelope() {
        let e = ApiError::validation(vec![("name".into(), "bad".into()), (String::new(), "body".into())]);
        assert_eq!(
            e.body(),
            json!({"errors":[
                {"context":"name","message":"bad","exceptionName":ARGUMENT_VALIDATION},
                {"context":null,"message":"body","exceptionName":ARGUMENT_VALIDATION}
            ]})
        );
    }
}
