//! The web service plumbing shared by the handlers: a request's parameters (query string or
//! form body, never JSON), v1 and v2 error envelopes, and the 204 every mutating action answers.

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::Caller;
use crate::simulator::respond::query_pairs;

/// An error in the envelope of its API generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// `{"errors":[{"msg"}]}`.
    V1(u16, String),
    /// `{"message"}`.
    V2(u16, String),
}

impl Fail {
    pub fn v1(status: u16, msg: impl Into<String>) -> Fail {
        Fail::V1(status, msg.into())
    }

    pub fn v2(status: u16, message: impl Into<String>) -> Fail {
        Fail::V2(status, message.into())
    }

    pub fn bad_request(msg: impl Into<String>) -> Fail {
        Fail::v1(400, msg)
    }

    pub fn not_found(msg: impl Into<String>) -> Fail {
        Fail::v1(404, msg)
    }

    /// The same failure in the v2 envelope (for checks shared by both generations).
    pub fn into_v2(self) -> Fail {
        match self {
            Fail::V1(status, msg) => Fail::V2(status, msg),
            v2 => v2,
        }
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        match self {
            Fail::V1(status, msg) => json(status, &json!({"errors": [{"msg": msg}]})),
            Fail::V2(status, message) => json(status, &json!({"message": message})),
        }
    }
}

pub(crate) type Reply = Result<Response, Fail>;

pub(crate) fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) fn ok(body: &Value) -> Reply {
    Ok(json(200, body))
}

pub(crate) fn no_content() -> Reply {
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) fn text(body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// One request as the handlers see it.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub caller: Caller,
    /// Query string pairs, then those of a form body (first one wins, like `getParameter`).
    params: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    pub fn new(method: Method, path: String, query: &str, headers: HeaderMap, body: Bytes, caller: Caller) -> Call {
        let mut params = query_pairs(query);
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if is_form {
            params.extend(query_pairs(&String::from_utf8_lossy(&body)));
        }
        Call { method, path, caller, params, headers, body }
    }

    /// An optional parameter; blank counts as absent.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, Fail> {
        self.param(name).ok_or_else(|| Fail::bad_request(format!("The '{name}' parameter is missing")))
    }

    /// A required parameter with SonarQube's maximum length.
    pub fn required_max(&self, name: &str, max: usize) -> Result<&str, Fail> {
        let value = self.required(name)?;
        check_length(name, value, max)?;
        Ok(value)
    }

    pub fn optional_max(&self, name: &str, max: usize) -> Result<Option<&str>, Fail> {
        let value = self.param(name);
        if let Some(value) = value {
            check_length(name, value, max)?;
        }
        Ok(value)
    }

    /// A required boolean (`true|false|yes|no`).
    pub fn required_bool(&self, name: &str) -> Result<bool, Fail> {
        match self.required(name)? {
            "true" | "yes" => Ok(true),
            "false" | "no" => Ok(false),
            other => Err(Fail::bad_request(format!(
                "Value of parameter '{name}' ({other}) must be one of: [true, false, yes, no]"
            ))),
        }
    }

    /// A positive integer parameter, `default` when absent.
    pub fn number(&self, name: &str, default: usize) -> Result<usize, Fail> {
        match self.param(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| Fail::bad_request(format!("'{v}' is not an integer value"))),
        }
    }

    /// A v2 JSON body: a wrong content type or unreadable JSON is a 400 in the v2 envelope.
    pub fn json_body(&self) -> Result<Value, Fail> {
        let is_json = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(Fail::v2(415, "Content-Type is not supported: the body must be application/json"));
        }
        serde_json::from_slice(&self.body).map_err(|_| Fail::v2(400, "The request body is not valid JSON"))
    }
}

fn check_length(name: &str, value: &str, max: usize) -> Result<(), Fail> {
    let length = value.chars().count();
    if length > max {
        return Err(Fail::bad_request(format!(
            "'{name}' length ({length}) is longer than the maximum authorized ({max})"
        )));
    }
    Ok(())
}
