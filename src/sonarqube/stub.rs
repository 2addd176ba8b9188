//! A loopback HTTP server for the client's tests: it answers what a test tells it to, as real
//! SonarQube servers answer (`sonarqube-api.md`), and records every request it received.

use std::sync::{Arc, Mutex};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};

use super::{Client, ClientConfig};
use crate::bitbucket::{RetryPolicy, Secret};

/// One request as the stub received it.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub method: Method,
    /// The path without the leading slash: `api/server/version`.
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Everything that travels in the URL, decoded.
    pub fn url_text(&self) -> String {
        format!("{}?{}", self.path, decode(&self.query))
    }

    /// A form-body parameter, decoded.
    pub fn form(&self, key: &str) -> Option<String> {
        self.body.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (decode(k) == key).then(|| decode(v))
        })
    }

    /// A query parameter, decoded.
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (decode(k) == key).then(|| decode(v))
        })
    }
}

/// Decodes `application/x-www-form-urlencoded` text, independently of the client's encoder.
pub(crate) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                index += 2;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the stub answers.
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self { status, content_type: "application/json", body: body.to_string(), headers: Vec::new() }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self { status, content_type: "text/plain", body: body.to_owned(), headers: Vec::new() }
    }

    pub fn no_content() -> Self {
        Self { status: 204, content_type: "text/plain", body: String::new(), headers: Vec::new() }
    }

    /// A v1 error: `{"errors":[{"msg"}]}`.
    pub fn v1_error(status: u16, msg: &str) -> Self {
        Self::json(status, serde_json::json!({"errors": [{"msg": msg}]}))
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

type Route = dyn Fn(&Received) -> Option<Reply> + Send + Sync;

#[derive(Clone)]
struct Shared {
    version: String,
    route: Arc<Route>,
    received: Arc<Mutex<Vec<Received>>>,
}

/// A running stub.
pub(crate) struct Stub {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Stub {
    /// Serves `route`; what it leaves unanswered gets SonarQube's defaults: the version text, an
    /// `UP` status, and `Unknown url` for anything else.
    pub async fn start(version: &str, route: impl Fn(&Received) -> Option<Reply> + Send + Sync + 'static) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared { version: version.to_owned(), route: Arc::new(route), received: received.clone() };
        let app = axum::Router::new().fallback(answer).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url: format!("http://{address}"), received }
    }

    /// A client for this stub with `token`, fast retries and no rate limit to speak of.
    pub fn client(&self, token: &str) -> Client {
        let config = ClientConfig::new(self.url.clone(), Secret::new(token))
            .with_retry(RetryPolicy {
                max_attempts: 3,
                base_delay: std::time::Duration::from_millis(1),
                max_delay: std::time::Duration::from_millis(5),
            })
            .with_rate_limit(crate::bitbucket::RateLimit { requests_per_second: 1000, burst: 1000 });
        Client::new(config).expect("client")
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// The requests to `path`.
    pub fn to(&self, path: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.path == path).collect()
    }
}

async fn answer(State(shared): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let received = Received {
        method,
        path: uri.path().trim_start_matches('/').to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    shared.received.lock().expect("lock").push(received.clone());
    let reply = (shared.route)(&received).unwrap_or_else(|| match received.path.as_str() {
        "api/server/version" => Reply::text(200, &shared.version),
        "api/system/status" => Reply::json(200, serde_json::json!({"status": "UP"})),
        path => Reply::v1_error(404, &format!("Unknown url : /{path}")),
    });
    let mut response =
        (StatusCode::from_u16(reply.status).expect("status"), [("content-type", reply.content_type)], reply.body)
            .into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().expect("header value"));
    }
    response
}
