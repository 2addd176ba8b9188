//! The request pipeline: URL building, auth, rate limit, concurrency, retries, bounded bodies,
//! and the mapping of Bitbucket's status codes and error bodies onto [`Error`].

use std::{sync::atomic::Ordering, time::Duration};

use reqwest::{Method, StatusCode, Url, header::HeaderMap};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

use super::{
    Client, Error,
    error::{bounded_message, identifier},
};

/// Largest response body read; a bigger one is an error, not an allocation. The largest real
/// answer is a page of 1000 repositories: a recorded repository weighs about 0.5 KiB, 1 to 2 KiB
/// with a long host, a description or a fork's `origin`, so such a page holds 0.5 to 2 MiB.
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;
/// What to do about an oversized answer.
const BODY_ADVICE: &str =
    "check that the URL leads to Bitbucket itself and not to a proxy, a login page or another server";
/// `Retry-After` when a 429 carries none or an unreadable one (what Atlassian's own client does).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Longest `Retry-After` honoured, so a garbled header cannot stall the operator for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Parses and normalises a base URL: http(s), no credentials, query or fragment, no trailing
/// slash in the path.
pub(crate) fn parse_base_url(text: &str) -> Result<Url, Error> {
    // A parser that reads `\\` as `/` (as URL parsers do for http) puts the host somewhere other
    // than where a reader sees it; control and bidirectional-override characters hide what a URL
    // says. Such text is refused whole, before it is parsed.
    if text.chars().any(|c| c == '\\' || c.is_control() || is_bidi_control(c)) {
        return Err(Error::Configuration(
            "the URL holds a backslash, a control character or a bidirectional-text character; write it plainly".into(),
        ));
    }
    let mut url =
        Url::parse(text.trim()).map_err(|_| Error::Configuration("the URL is not a valid absolute URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Configuration("the URL must start with https:// or http://".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Configuration("the URL must not hold a user name or password".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Configuration("the URL must not have a query or fragment".into()));
    }
    if url.host().is_none() {
        return Err(Error::Configuration("the URL has no host".into()));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

/// Unicode's bidirectional formatting characters (embeddings, overrides, isolates, marks).
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The host requests to `url` go to, lower-cased (an IPv6 address without brackets), as the
/// client itself parses the URL: the one answer both the host allow-list and the requests use.
pub fn host_of(url: &str) -> Result<String, Error> {
    let url = parse_base_url(url)?;
    let host = url.host_str().ok_or_else(|| Error::Configuration("the URL has no host".into()))?;
    Ok(host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase())
}

/// Whether `host` is allowed by `allowed`: an empty list allows every host; otherwise the host
/// itself, or a `*.domain` pattern that it is under.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    allowed.is_empty()
        || allowed.iter().any(|pattern| {
            let pattern = pattern.trim().to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == pattern,
            }
        })
}

/// One API call: what to send, and how to describe it in errors.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    /// Path segments below the base URL, each percent-encoded on its own.
    pub segments: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    /// The endpoint template, such as `GET /rest/api/1.0/projects/{key}`.
    pub endpoint: &'static str,
    /// What the call does, for permission errors: `read project PAY`.
    pub action: String,
    /// Send credentials (everything but `/status`).
    pub authenticated: bool,
}

impl Call {
    pub fn new(method: Method, endpoint: &'static str, segments: &[&str], action: impl Into<String>) -> Self {
        Self {
            method,
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
            endpoint,
            action: action.into(),
            authenticated: true,
        }
    }

    pub fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn anonymous(mut self) -> Self {
        self.authenticated = false;
        self
    }

    /// GET, PUT and DELETE can be repeated safely; POST cannot.
    fn idempotent(&self) -> bool {
        self.method != Method::POST
    }
}

/// A response read whole (within [`super::Limits::body_bytes`]).
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

    /// The first error of Bitbucket's error envelope, or the `{"message"}` some answers carry.
    pub fn error_detail(&self) -> ErrorDetail {
        #[derive(Deserialize)]
        struct Envelope {
            errors: Vec<ErrorDetail>,
        }
        if let Ok(envelope) = serde_json::from_slice::<Envelope>(&self.body)
            && let Some(first) = envelope.errors.into_iter().next()
        {
            return ErrorDetail { enveloped: true, ..first };
        }
        #[derive(Deserialize)]
        struct Plain {
            message: String,
        }
        match serde_json::from_slice::<Plain>(&self.body) {
            Ok(plain) => ErrorDetail { message: Some(plain.message), ..ErrorDetail::default() },
            Err(_) => ErrorDetail::default(),
        }
    }
}

/// What an error body says. Every part is optional: Bitbucket omits `context`, sends `null`
/// exception names, and proxies answer with HTML.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub exception_name: Option<String>,
    /// The body was Bitbucket's error envelope.
    #[serde(skip)]
    pub enveloped: bool,
}

/// Why a credential was refused, when a 401's body says so unambiguously: a CAPTCHA lock, a wrong
/// password, or (on 10.x) a request served as anonymous.
pub(crate) fn credential_refusal(detail: &ErrorDetail) -> Option<Error> {
    if detail.mentions_captcha() {
        return Some(Error::CaptchaRequired);
    }
    if detail.exception_is("IncorrectPasswordAuthenticationException") {
        return Some(Error::BadCredentials { reason: "wrong username or password".into() });
    }
    if detail.exception_is("AuthenticationRequiredException") {
        return Some(Error::BadCredentials {
            reason: "the credential was not recognised and the request was served as anonymous".into(),
        });
    }
    None
}

/// The reason of a credential that worked at the connection check and is no longer recognised.
pub(crate) const REVOKED: &str =
    "the credential was revoked or is no longer recognised: Bitbucket no longer names its user";

impl ErrorDetail {
    pub fn exception_is(&self, suffix: &str) -> bool {
        self.exception_name.as_deref().is_some_and(|name| name.ends_with(suffix))
    }

    fn mentions_captcha(&self) -> bool {
        self.exception_is("CaptchaRequiredAuthenticationException")
            || self.exception_is("CaptchaAuthenticationException")
            || self.message.as_deref().is_some_and(|m| m.to_ascii_uppercase().contains("CAPTCHA"))
    }
}

impl Client {
    /// Sends a call, waiting on the rate limit and the concurrency bound, retrying transient
    /// failures where that is safe. Returns any response that is not a 429 or 5xx to the caller,
    /// which interprets it; a 401 after the identity was proven first has the identity checked
    /// again (see [`Client::recheck_after_401`]).
    pub(crate) async fn send(&self, call: &Call) -> Result<Response, Error> {
        let response = self.send_with_retries(call).await?;
        if response.status == StatusCode::UNAUTHORIZED && call.authenticated && self.identity_proven() {
            self.recheck_after_401(&response).await?;
        }
        Ok(response)
    }

    /// [`Client::send`] without the 401 re-check (which itself sends through here).
    pub(crate) async fn send_with_retries(&self, call: &Call) -> Result<Response, Error> {
        if call.authenticated
            && let Some(rejected) = self.rejected()
        {
            return Err(rejected);
        }
        with_retries(self.inner.retry, call.endpoint, || self.attempt(call)).await
    }

    /// One attempt, classified for [`with_retries`].
    async fn attempt(&self, call: &Call) -> Attempt<Response, Error> {
        match self.send_once(call).await {
            Ok(response) if response.status == StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = parse_retry_after(response.header("retry-after"));
                self.inner.limiter.pause(retry_after).await;
                // Refused before any processing: safe to repeat, even a POST.
                Attempt::RateLimited(Error::RateLimited { retry_after })
            }
            Ok(response) if response.status.is_server_error() => Attempt::Failed {
                error: Error::Server { status: response.status.as_u16() },
                retryable: call.idempotent(),
            },
            Ok(response) => Attempt::Answer(response),
            Err((error, sent)) => {
                // A request that never left (connection refused) is safe to repeat; an
                // answer over a bound would only be read again.
                let retryable = error.is_transient() && (call.idempotent() || !sent);
                Attempt::Failed { error, retryable }
            }
        }
    }

    /// One attempt. On failure, also says whether the request may have reached the server.
    async fn send_once(&self, call: &Call) -> Result<Response, (Error, bool)> {
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
        // Asked after every wait, right before the request leaves: a request refused here is
        // neither sent nor counted.
        if let Some(gate) = &self.inner.gate {
            gate.admit().await.map_err(|why| (Error::Transport { message: why, timeout: false }, false))?;
        }
        let started = tokio::time::Instant::now();
        let result = self.exchange(call).await;
        if let Some(observer) = &self.inner.observer {
            let status = result.as_ref().map_or(0, |r| r.status.as_u16());
            observer.request(call.endpoint, status, started.elapsed());
        }
        result
    }

    async fn exchange(&self, call: &Call) -> Result<Response, (Error, bool)> {
        let mut url = self.inner.base.clone();
        {
            let Ok(mut path) = url.path_segments_mut() else {
                return Err((Error::Configuration("the URL cannot carry a path".into()), false));
            };
            path.pop_if_empty().extend(&call.segments);
        }
        let mut request = self.inner.http.request(call.method.clone(), url).header("Accept", "application/json");
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if call.authenticated {
            request = request.header("Authorization", self.inner.credentials.header_value());
        }
        if call.method != Method::GET {
            request = request.header("X-Atlassian-Token", "no-check");
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let mut response = request.send().await.map_err(|e| {
            let sent = !e.is_connect();
            (transport_error(&e), sent)
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let limit = self.inner.limits.body_bytes;
        let too_large = || {
            let error = Error::ResponseTooLarge {
                endpoint: call.endpoint.to_owned(),
                bound: format!("more than {} in one response", bytes(limit)),
                advice: BODY_ADVICE,
            };
            (error, true)
        };
        // A declared length over the bound is refused before a byte of the body is read.
        if response.content_length().is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        // Room for the declared length up front (it is within the bound): no doubling on the way.
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
                Err(e) => return Err((transport_error(&e), true)),
            }
        }
        Ok(Response { status, headers, body })
    }

    /// The error a credential rejection left behind, if any.
    pub(crate) fn rejected(&self) -> Option<Error> {
        self.inner.rejected.lock().map(|guard| guard.clone()).unwrap_or(None)
    }

    pub(crate) fn reject(&self, error: Error) -> Error {
        tracing::warn!(%error, "Bitbucket rejected the credential; no further calls are made with it");
        if let Ok(mut guard) = self.inner.rejected.lock() {
            *guard = Some(error.clone());
        }
        error
    }

    /// Records that Bitbucket rejected the credential, for `reason`.
    pub(crate) fn reject_credentials(&self, reason: &str) -> Error {
        self.reject(Error::BadCredentials { reason: reason.to_owned() })
    }

    pub(crate) fn identity_proven(&self) -> bool {
        self.inner.identity_proven.load(Ordering::Acquire)
    }

    pub(crate) fn prove_identity(&self) {
        self.inner.identity_proven.store(true, Ordering::Release);
    }

    /// Maps a response that is not the success the caller expected onto an [`Error`].
    /// `not_found` is used for 404s whose body names no known missing project or repository.
    pub(crate) fn failure(&self, call: &Call, response: &Response, not_found: impl FnOnce() -> Error) -> Error {
        let detail = response.error_detail();
        match response.status.as_u16() {
            400 => Error::InvalidRequest { field: identifier(detail.context.as_deref()) },
            401 => self.unauthorized(call, &detail),
            403 if detail
                .message
                .as_deref()
                .is_some_and(|m| m.to_ascii_lowercase().contains("basic authentication")) =>
            {
                self.reject(Error::BasicAuthDisabled)
            }
            403 if detail.mentions_captcha() => self.reject(Error::CaptchaRequired),
            403 => Error::PermissionDenied { action: format!("{} (Bitbucket answered 403)", call.action) },
            404 => not_found(),
            409 => Error::Conflict {
                exception: identifier(detail.exception_name.as_deref().and_then(|e| e.rsplit('.').next())),
            },
            429 => Error::RateLimited { retry_after: parse_retry_after(response.header("retry-after")) },
            300..=399 => Error::UnsupportedServer {
                reason: "the server answered with a redirect; check the URL and its context path (Bitbucket \
                         sends requests it does not serve to its login page)"
                    .into(),
            },
            status if status >= 500 => Error::Server { status },
            status => Error::UnexpectedResponse {
                status,
                endpoint: call.endpoint.to_owned(),
                reason: "an answer the client does not expect".into(),
            },
        }
    }

    /// Bitbucket answers 401 for a bad credential and for a missing permission alike. After the
    /// identity was proven, [`Client::send`] has already re-checked it for the ambiguous forms, so
    /// a 401 that reaches here then is a missing permission.
    fn unauthorized(&self, call: &Call, detail: &ErrorDetail) -> Error {
        if let Some(refusal) = credential_refusal(detail) {
            return self.reject(refusal);
        }
        if self.identity_proven() {
            Error::PermissionDenied { action: call.action.clone() }
        } else {
            self.reject(Error::BadCredentials { reason: "401 before the credential was proven".into() })
        }
    }

    /// Up to 9.x, Bitbucket answers an unknown or revoked credential with the same
    /// `AuthorisationException` as a missing permission, so a 401 after the connection check
    /// proves nothing by itself: unless its body or headers settle it, the identity is checked
    /// again, once, before the 401 is taken as a permission problem. A credential that is no
    /// longer recognised is rejected, which stops every further request with it. 401s that
    /// arrive while a check is under way wait for it and share its answer.
    async fn recheck_after_401(&self, response: &Response) -> Result<(), Error> {
        // The unambiguous forms are classified by `failure` on their own.
        if credential_refusal(&response.error_detail()).is_some() {
            return Ok(());
        }
        // A 401 that names the user was answered for a recognised credential.
        if super::server::recognised_user(response).is_some() {
            return Ok(());
        }
        let received = tokio::time::Instant::now();
        let mut last_confirmed = self.inner.identity_recheck.lock().await;
        if let Some(rejected) = self.rejected() {
            return Err(rejected);
        }
        if last_confirmed.is_some_and(|sent| sent >= received) {
            return Ok(());
        }
        let sent = tokio::time::Instant::now();
        if self.identity_recognised().await? {
            *last_confirmed = Some(sent);
            Ok(())
        } else {
            Err(self.reject_credentials(REVOKED))
        }
    }

    /// Parses a JSON body into `T`; a body that does not fit is an error that names the endpoint
    /// and never repeats the body.
    pub(crate) fn parse<T: DeserializeOwned>(&self, call: &Call, response: &Response) -> Result<T, Error> {
        serde_json::from_slice(&response.body).map_err(|e| Error::UnexpectedResponse {
            status: response.status.as_u16(),
            endpoint: call.endpoint.to_owned(),
            reason: format!("the body is not the expected JSON ({})", json_error_kind(&e)),
        })
    }
}

/// What kind of JSON problem, without the snippet serde would quote.
pub(crate) fn json_error_kind(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Io => "unreadable".into(),
        Category::Syntax => format!("malformed at line {} column {}", error.line(), error.column()),
        Category::Data => {
            format!("a field is missing or of the wrong type at line {} column {}", error.line(), error.column())
        }
        Category::Eof => "truncated".into(),
    }
}

/// A byte count as people read it: `4 MiB`, `512 KiB`, `300 bytes`.
pub(crate) fn bytes(count: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    if count >= MIB && count.is_multiple_of(MIB) {
        format!("{} MiB", count / MIB)
    } else if count >= KIB && count.is_multiple_of(KIB) {
        format!("{} KiB", count / KIB)
    } else {
        format!("{count} bytes")
    }
}

/// `Retry-After` as integer seconds (the form Bitbucket and SonarQube send), else the default.
pub(crate) fn parse_retry_after(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
        .unwrap_or(DEFAULT_RETRY_AFTER)
}

/// One attempt of a call, as the retry loop both clients share sees it.
pub(crate) enum Attempt<T, E> {
    /// An answer for the caller to interpret.
    Answer(T),
    /// A 429: the rate limiter is already paused for the server's `Retry-After`, which is the
    /// wait before the next attempt. Refused before any processing, so safe to repeat.
    RateLimited(E),
    /// A failure, which may be sent again only when `retryable`.
    Failed {
        /// What went wrong.
        error: E,
        /// Whether sending it again is safe and may help.
        retryable: bool,
    },
}

/// Makes attempts until one answers, a failure may not be repeated, or the policy's attempts
/// are spent; with jittered backoff between them (after a 429 the limiter's pause is the wait).
pub(crate) async fn with_retries<T, E: std::fmt::Display, F: Future<Output = Attempt<T, E>>>(
    policy: super::RetryPolicy,
    endpoint: &str,
    mut attempt: impl FnMut() -> F,
) -> Result<T, E> {
    let mut number = 1;
    loop {
        let (error, retryable, rate_limited) = match attempt().await {
            Attempt::Answer(answer) => return Ok(answer),
            Attempt::RateLimited(error) => (error, true, true),
            Attempt::Failed { error, retryable } => (error, retryable, false),
        };
        if !retryable || number >= policy.max_attempts.max(1) {
            return Err(error);
        }
        if !rate_limited {
            tokio::time::sleep(backoff(policy, number)).await;
        }
        tracing::debug!(endpoint, attempt = number, %error, "retrying");
        number += 1;
    }
}

/// Exponential backoff with jitter: half the nominal delay plus a random share of the other half.
pub(crate) fn backoff(policy: super::RetryPolicy, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let nominal = policy.base_delay.saturating_mul(1 << exponent).min(policy.max_delay);
    nominal / 2 + nominal.mul_f64(fastrand::f64() / 2.0)
}

/// A transport failure as a short message without the URL.
fn transport_error(error: &reqwest::Error) -> Error {
    Error::Transport { message: transport_message(error), timeout: error.is_timeout() }
}

/// What went wrong with a request that got no usable answer, in a short text that never holds the
/// URL (its query could carry what a caller put there).
pub(crate) fn transport_message(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let detail = bounded_message(&cause.to_string());
    if error.is_timeout() {
        "the request timed out".to_owned()
    } else if error.is_connect() {
        format!("cannot connect: {detail}")
    } else if error.is_body() || error.is_decode() {
        format!("the response broke off: {detail}")
    } else {
        format!("the request failed: {detail}")
    }
}

/// The HTTP client every API client of the operator builds on: its `User-Agent`, no redirects
/// (a redirect would carry the credential elsewhere, or hide a wrong context path), the
/// timeouts, and the TLS trust the configuration asks for. The error says what is wrong in
/// words fit for a configuration error.
pub(crate) fn http_client(
    ca_pem: Option<&[u8]>,
    insecure_skip_verify: bool,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(super::USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .timeout(request_timeout);
    if let Some(pem) = ca_pem {
        let certificates =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|_| "the CA bundle is not valid PEM".to_owned())?;
        if certificates.is_empty() {
            return Err("the CA bundle holds no certificate".into());
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_where_requests_go_and_hidden_hosts_are_refused() {
        let allowed = vec!["bitbucket.example.com".to_owned(), "*.corp.example".to_owned()];
        struct Case {
            url: &'static str,
            host: Option<&'static str>,
            allowed: bool,
        }
        let cases = [
            Case { url: "https://bitbucket.example.com/context", host: Some("bitbucket.example.com"), allowed: true },
            Case { url: "https://BITBUCKET.example.com:8443", host: Some("bitbucket.example.com"), allowed: true },
            Case { url: "https://git.eu.corp.example", host: Some("git.eu.corp.example"), allowed: true },
            Case { url: "https://corp.example", host: Some("corp.example"), allowed: false },
            Case {
                url: "https://bitbucket.example.com.evil.test",
                host: Some("bitbucket.example.com.evil.test"),
                allowed: false,
            },
            Case { url: "https://evil.test/bitbucket.example.com", host: Some("evil.test"), allowed: false },
            Case { url: "http://[::1]:7990/x", host: Some("::1"), allowed: false },
            // Read as 127.0.0.1 by the client's parser: refused outright.
            Case { url: "http://127.0.0.1\\.bitbucket.corp.example", host: None, allowed: false },
            Case { url: "https://bitbucket.example.com\u{202e}moc.live", host: None, allowed: false },
            Case { url: "https://bitbucket.example.com\t/x", host: None, allowed: false },
            Case { url: "https://u@bitbucket.example.com", host: None, allowed: false },
        ];
        for case in cases {
            let host = host_of(case.url).ok();
            assert_eq!(host.as_deref(), case.host, "{}", case.url);
            let allowed_here = host.as_deref().is_some_and(|h| host_allowed(h, &allowed));
            assert_eq!(allowed_here, case.allowed, "{}", case.url);
        }
        assert!(host_allowed("anything.test", &[]), "no list: everything is allowed");
    }

    #[test]
    fn base_urls_are_checked_and_normalised() {
        assert_eq!(
            parse_base_url("https://example.com/bitbucket/").map(|u| u.to_string()),
            Ok("https://example.com/bitbucket".into())
        );
        assert!(parse_base_url("https://u:p@example.com").is_err());
        assert!(parse_base_url("https://example.com/?a=b").is_err());
        assert!(parse_base_url("ftp://example.com").is_err());
        assert!(parse_base_url("example.com").is_err());
    }

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(bytes(MAX_BODY), "4 MiB");
        assert_eq!(bytes(64 * 1024), "64 KiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }

    #[test]
    fn retry_after_is_read_as_seconds_with_a_default_and_a_ceiling() {
        assert_eq!(parse_retry_after(Some("7")), Duration::from_secs(7));
        assert_eq!(parse_retry_after(Some("soon")), DEFAULT_RETRY_AFTER);
        assert_eq!(parse_retry_after(None), DEFAULT_RETRY_AFTER);
        assert_eq!(parse_retry_after(Some("99999999")), MAX_RETRY_AFTER);
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let policy = super::super::RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        for attempt in 1..40 {
            let delay = backoff(policy, attempt);
            let nominal = Duration::from_millis(100).saturating_mul(1 << (attempt - 1).min(16)).min(policy.max_delay);
            assert!(delay >= nominal / 2 && delay <= nominal, "attempt {attempt}: {delay:?}");
        }
    }
}
