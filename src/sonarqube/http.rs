//! The request pipeline: auth by version, rate limit, in-flight bound, one write at a time,
//! retries of what may be repeated, bounded bodies, and the mapping of SonarQube's answers onto
//! [`Error`].

use reqwest::{Method, StatusCode, header::HeaderMap};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

use super::{Client, Error, error::kept_message, server::AuthScheme};
use crate::bitbucket::{Attempt, Secret, bytes, json_error_kind, parse_retry_after, transport_message, with_retries};

/// What to do about an oversized answer.
const BODY_ADVICE: &str =
    "check that the URL leads to SonarQube itself and not to a proxy, a login page or another server";

/// One value of a form body: secrets are kept as [`Secret`] until the body is written.
#[derive(Debug)]
pub(crate) enum Param {
    Text(String),
    Secret(Secret),
}

/// One API call: what to send, and how to describe it in errors.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    /// The endpoint name, such as `POST api/alm_settings/create_bitbucket`: the method, a space
    /// and the path below the base URL. Stable, for metrics and logs.
    pub endpoint: &'static str,
    /// GET parameters; never a secret.
    pub query: Vec<(&'static str, String)>,
    /// v1 POST parameters, sent as `application/x-www-form-urlencoded`.
    pub form: Vec<(&'static str, Param)>,
    /// v2 JSON body.
    pub json: Option<Value>,
    /// What the call does, for permission errors: `create a DevOps Platform setting`.
    pub action: &'static str,
    /// The permission it needs.
    pub permission: &'static str,
    /// The keys this call names (setting, project): a key quoted in an error is repeated only if
    /// it is one of these, so no other server text reaches an error.
    pub subjects: Vec<String>,
    /// Send the token (everything but the version and status).
    pub authenticated: bool,
}

impl Call {
    pub fn new(endpoint: &'static str, action: &'static str, permission: &'static str) -> Self {
        let method = if endpoint.starts_with("POST ") {
            Method::POST
        } else if endpoint.starts_with("PUT ") {
            Method::PUT
        } else {
            Method::GET
        };
        Self {
            method,
            endpoint,
            query: Vec::new(),
            form: Vec::new(),
            json: None,
            action,
            permission,
            subjects: Vec::new(),
            authenticated: true,
        }
    }

    /// The path below the base URL.
    fn path(&self) -> &'static str {
        self.endpoint.split_once(' ').map_or(self.endpoint, |(_, path)| path)
    }

    pub fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }

    pub fn form(mut self, key: &'static str, value: impl ToString) -> Self {
        self.form.push((key, Param::Text(value.to_string())));
        self
    }

    pub fn secret(mut self, key: &'static str, value: &Secret) -> Self {
        self.form.push((key, Param::Secret(value.clone())));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.json = Some(body);
        self
    }

    pub fn about(mut self, subject: &str) -> Self {
        self.subjects.push(subject.to_owned());
        self
    }

    pub fn anonymous(mut self) -> Self {
        self.authenticated = false;
        self
    }

    /// GET and PUT can be repeated safely; POST cannot.
    fn idempotent(&self) -> bool {
        self.method != Method::POST
    }

    fn secrets<'a>(&'a self, token: &'a Secret) -> Vec<&'a str> {
        let mut secrets: Vec<&str> = self
            .form
            .iter()
            .filter_map(|(_, value)| match value {
                Param::Secret(secret) => Some(secret.expose()),
                Param::Text(_) => None,
            })
            .collect();
        secrets.push(token.expose());
        secrets
    }

    /// The first subject that the message quotes (`'key'`), or the first subject.
    fn subject_in(&self, message: &str) -> String {
        let quoted = message.split('\'').nth(1);
        quoted
            .and_then(|q| self.subjects.iter().find(|s| s.as_str() == q))
            .or_else(|| self.subjects.first())
            .cloned()
            .unwrap_or_default()
    }
}

/// `application/x-www-form-urlencoded`, as browsers write it: `*-._` and ASCII letters and digits
/// stay, space is `+`, every other byte is `%XX`.
pub(crate) fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        encode_into(&mut out, key);
        out.push('=');
        encode_into(&mut out, value);
    }
    out
}

fn encode_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(byte)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
}

/// A response read whole (within [`crate::bitbucket::Limits::body_bytes`]).
#[derive(Debug)]
pub(crate) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The message of a v1 `{"errors":[{"msg"}]}` or v2 `{"message"}` body; empty when the body
    /// is neither (an HTML page from a proxy, nothing at all).
    pub fn message(&self) -> String {
        #[derive(Deserialize)]
        struct V1 {
            errors: Vec<V1Error>,
        }
        #[derive(Deserialize)]
        struct V1Error {
            msg: String,
        }
        #[derive(Deserialize)]
        struct V2 {
            message: String,
        }
        if let Ok(v1) = serde_json::from_slice::<V1>(&self.body)
            && let Some(first) = v1.errors.into_iter().next()
        {
            return first.msg;
        }
        serde_json::from_slice::<V2>(&self.body).map(|v2| v2.message).unwrap_or_default()
    }
}

impl Client {
    /// Sends a call: for an authenticated one the version is known first (it picks the auth
    /// scheme); then the rate limit, the concurrency bound and, for writes, the write lock.
    /// Transient failures are retried where that is safe. Returns any answer that is not a 429
    /// or 5xx to the caller, which interprets it.
    pub(crate) async fn send(&self, call: &Call) -> Result<Response, Error> {
        let scheme = if call.authenticated { Some(self.version().await?.auth_scheme()) } else { None };
        self.send_with(call, scheme).await
    }

    /// [`Client::send`] with the auth scheme known (`None`: no token); the version itself is
    /// read through here.
    pub(crate) async fn send_with(&self, call: &Call, scheme: Option<AuthScheme>) -> Result<Response, Error> {
        let _write = if call.method == Method::GET { None } else { Some(self.inner.writes.lock().await) };
        with_retries(self.inner.retry, call.endpoint, || self.attempt(call, scheme)).await
    }

    /// One attempt, classified for [`with_retries`].
    async fn attempt(&self, call: &Call, scheme: Option<AuthScheme>) -> Attempt<Response, Error> {
        match self.send_once(call, scheme).await {
            Ok(response) if response.status == StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = parse_retry_after(response.header("retry-after"));
                self.inner.limiter.pause(retry_after).await;
                Attempt::RateLimited(Error::RateLimited { retry_after })
            }
            Ok(response) if response.status.is_server_error() => Attempt::Failed {
                error: Error::Server { status: response.status.as_u16() },
                retryable: call.idempotent(),
            },
            Ok(response) => Attempt::Answer(response),
            Err((error, sent)) => {
                let retryable = error.is_transient() && (call.idempotent() || !sent);
                Attempt::Failed { error, retryable }
            }
        }
    }

    /// One attempt. On failure, also says whether the request may have reached the server.
    async fn send_once(&self, call: &Call, scheme: Option<AuthScheme>) -> Result<Response, (Error, bool)> {
        let waited = self.inner.limiter.acquire().await;
        if let Some(observer) = &self.inner.observer
            && !waited.is_zero()
        {
            observer.rate_limited(waited);
        }
        let _permit =
            self.inner.in_flight.acquire().await.map_err(|_| {
                (Error::Transport { message: "the client is shutting down".into(), timeout: false }, false)
            })?;
        if let Some(gate) = &self.inner.gate {
            gate.admit().await.map_err(|why| (Error::Transport { message: why, timeout: false }, false))?;
        }
        let started = tokio::time::Instant::now();
        let result = self.exchange(call, scheme).await;
        if let Some(observer) = &self.inner.observer {
            let status = result.as_ref().map_or(0, |r| r.status.as_u16());
            observer.request(call.endpoint, status, started.elapsed());
        }
        result
    }

    async fn exchange(&self, call: &Call, scheme: Option<AuthScheme>) -> Result<Response, (Error, bool)> {
        let mut url = self.inner.base.clone();
        {
            let Ok(mut path) = url.path_segments_mut() else {
                return Err((Error::Configuration("the URL cannot carry a path".into()), false));
            };
            path.pop_if_empty().extend(call.path().split('/'));
        }
        let mut request = self.inner.http.request(call.method.clone(), url).header("Accept", "application/json");
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(scheme) = scheme {
            request = request.header("Authorization", scheme.header_value(&self.inner.token));
        }
        if !call.form.is_empty() {
            let pairs: Vec<(&str, &str)> = call
                .form
                .iter()
                .map(|(key, value)| match value {
                    Param::Text(text) => (*key, text.as_str()),
                    Param::Secret(secret) => (*key, secret.expose()),
                })
                .collect();
            request = request.header("Content-Type", "application/x-www-form-urlencoded").body(form_encode(&pairs));
        } else if let Some(body) = &call.json {
            request = request.json(body);
        }
        let mut response = request.send().await.map_err(|e| {
            let sent = !e.is_connect();
            (transport(&e), sent)
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let limit = self.inner.limits.body_bytes;
        let too_large = || {
            let error = Error::ResponseTooLarge {
                endpoint: call.endpoint,
                bound: format!("more than {} in one response", bytes(limit)),
                advice: BODY_ADVICE,
            };
            (error, true)
        };
        if response.content_length().is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(response.content_length().map_or(0, |length| length as usize));
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err((transport(&e), true)),
            }
        }
        Ok(Response { status, headers, body })
    }

    /// Sends a call whose success is any 2xx with nothing to read (SonarQube's 204s).
    pub(crate) async fn send_expecting_nothing(&self, call: &Call) -> Result<(), Error> {
        let response = self.send(call).await?;
        if response.status.is_success() { Ok(()) } else { Err(self.failure(call, &response)) }
    }

    /// Sends a call and parses its 2xx JSON answer.
    pub(crate) async fn send_for<T: DeserializeOwned>(&self, call: &Call) -> Result<T, Error> {
        let response = self.send(call).await?;
        if !response.status.is_success() {
            return Err(self.failure(call, &response));
        }
        self.parse(call, &response)
    }

    /// Maps an answer that is not the success the caller expected onto an [`Error`], by status and
    /// by the known texts of SonarQube's messages (`sonarqube-api.md` §1.3).
    pub(crate) fn failure(&self, call: &Call, response: &Response) -> Error {
        let message = response.message();
        let text = message.trim();
        match response.status.as_u16() {
            400 if text.starts_with("A BITBUCKET_CLOUD setting is already defined") => {
                Error::EditionLimit { platform: "BITBUCKET_CLOUD" }
            }
            400 if text.starts_with("A BITBUCKET setting is already defined") => {
                Error::EditionLimit { platform: "BITBUCKET" }
            }
            400 if text.contains("DevOps Platform setting with key") && text.contains("already exists") => {
                Error::KeyTaken { key: call.subject_in(text) }
            }
            400 if text.starts_with("Please provide the Personal Access Token to update the URL") => {
                Error::PatRequiredForUrlChange { key: call.subject_in(text) }
            }
            400 if text.contains("A similar key already exists") => {
                Error::ProjectKeyCollision { project: call.subject_in(text) }
            }
            400 => Error::InvalidRequest {
                endpoint: call.endpoint,
                message: kept_message(text, &call.secrets(&self.inner.token)),
            },
            401 => Error::BadToken { expired: text.to_ascii_lowercase().contains("expired") },
            403 => Error::Forbidden { action: call.action.to_owned(), permission: call.permission },
            404 if text.starts_with("Unknown url") => Error::EndpointMissing { endpoint: call.endpoint },
            404 if text.contains("DevOps Platform setting with key") && text.contains("cannot be found") => {
                Error::AlmSettingNotFound { key: call.subject_in(text) }
            }
            404 if text.starts_with("Project '") && text.ends_with("not found") => {
                Error::ProjectNotFound { project: call.subject_in(text) }
            }
            // A 404 with no SonarQube message: the path leads somewhere else.
            404 if text.is_empty() => Error::UnsupportedServer {
                reason: format!(
                    "the server has no {}; check that the URL leads to SonarQube, with its context path",
                    call.endpoint
                ),
            },
            429 => Error::RateLimited { retry_after: parse_retry_after(response.header("retry-after")) },
            300..=399 => Error::UnsupportedServer {
                reason: "the server answered with a redirect; check the URL's scheme and context path".into(),
            },
            status if status >= 500 => Error::Server { status },
            status => Error::UnexpectedResponse {
                status,
                endpoint: call.endpoint,
                reason: "an answer the client does not expect".into(),
            },
        }
    }

    /// Parses a JSON body into `T`; a body that does not fit is an error that names the endpoint
    /// and never repeats the body.
    pub(crate) fn parse<T: DeserializeOwned>(&self, call: &Call, response: &Response) -> Result<T, Error> {
        serde_json::from_slice(&response.body).map_err(|e| Error::UnexpectedResponse {
            status: response.status.as_u16(),
            endpoint: call.endpoint,
            reason: format!("the body is not the expected JSON ({})", json_error_kind(&e)),
        })
    }
}

fn transport(error: &reqwest::Error) -> Error {
    Error::Transport { message: transport_message(error), timeout: error.is_timeout() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_encode_what_urls_would_misread() {
        assert_eq!(
            form_encode(&[("key", "a b"), ("url", "https://x/y?z=1&w")]),
            "key=a+b&url=https%3A%2F%2Fx%2Fy%3Fz%3D1%26w"
        );
        assert_eq!(form_encode(&[("name", "Zürich*-._")]), "name=Z%C3%BCrich*-._");
        assert_eq!(form_encode(&[]), "");
    }
}
