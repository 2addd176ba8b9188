//! The SonarQube Web API client: what the operator says to SonarQube to keep its Bitbucket
//! "DevOps Platform" setting and its project bindings (`sonarqube-api.md`). Same shape as the
//! Bitbucket client, and built on its parts: the token bucket, retry policy, bounds, TLS options,
//! host allow-list, observer and gate are [`crate::bitbucket`]'s.
//!
//! What is particular to SonarQube:
//! - the token goes as `Bearer` from 10.0 on and as Basic `token:` before, so the version
//!   (`api/server/version`, anonymous) is read first, once, and picks the scheme;
//! - v1 POST parameters go in a form body (so a PAT never sits in a URL), GET parameters in the
//!   query; v2 calls carry JSON;
//! - mutating v1 calls and `validate` answer 204 with no body;
//! - errors are `{"errors":[{"msg"}]}` (v1) or `{"message"}` (v2) and are mapped by their text
//!   onto [`Error`] variants, never passed on raw.

mod alm_settings;
mod bindings;
mod community;
mod error;
mod http;
mod projects;
mod server;

use std::{sync::Arc, time::Duration};

pub use alm_settings::{Alm, AlmDefinition, AlmDefinitions, AlmSetting, normalize_url};
pub use bindings::{Binding, BitbucketBinding};
pub use community::{BoundProject, BoundProjectResult, DopSetting};
pub use error::{Error, ErrorClass, ValidationFailure};
pub use projects::Project;
pub use server::{
    AuthScheme, BindingSupport, Capabilities, Edition, MINIMUM_VERSION, ServerInfo, ServerStatus, UNSHOWN_USER, User,
    Version, VersionScheme,
};

use crate::bitbucket::{Gate, Limits, Observer, RateLimit, RateLimiter, RetryPolicy, Secret};

/// Everything a [`Client`] is built from: [`ClientConfig::new`] gives the defaults, the `with_`
/// methods change one thing each.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL including any context path, such as `https://sonar.example.com/sonarqube`.
    pub base_url: String,
    /// A SonarQube user token (not an analysis token).
    pub token: Secret,
    /// Extra PEM certificate authorities to trust.
    pub ca_pem: Option<Vec<u8>>,
    /// Skip certificate verification (test instances only).
    pub insecure_skip_verify: bool,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one request, response body included.
    pub request_timeout: Duration,
    /// The client's own token bucket.
    pub rate_limit: RateLimit,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Told about every request and every wait on the rate limit (metrics).
    pub observer: Option<Arc<dyn Observer>>,
    /// The hosts the client may talk to (`host` or `*.domain`); empty allows every host.
    pub allowed_hosts: Vec<String>,
    /// How much one answer and one paged list may hold.
    pub limits: Limits,
    /// Asked before every request whether it may be sent at all.
    pub gate: Option<Arc<dyn Gate>>,
}

/// SonarQube has no rate limit of its own; this keeps the operator a light user of it.
const DEFAULT_RATE_LIMIT: RateLimit = RateLimit { requests_per_second: 5, burst: 20 };

impl ClientConfig {
    /// A configuration with the defaults for everything but the URL and token.
    pub fn new(base_url: impl Into<String>, token: Secret) -> Self {
        Self {
            base_url: base_url.into(),
            token,
            ca_pem: None,
            insecure_skip_verify: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            rate_limit: DEFAULT_RATE_LIMIT,
            max_concurrency: 4,
            retry: RetryPolicy::default(),
            observer: None,
            allowed_hosts: Vec::new(),
            limits: Limits::default(),
            gate: None,
        }
    }

    /// Trusts these PEM certificate authorities as well.
    pub fn with_ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_pem = Some(pem);
        self
    }

    /// Skips certificate verification (test instances only).
    pub fn with_insecure_skip_verify(mut self, skip: bool) -> Self {
        self.insecure_skip_verify = skip;
        self
    }

    /// Connection and whole-request timeouts.
    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// The client's token bucket.
    pub fn with_rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// Requests in flight at once (at least 1).
    pub fn with_max_concurrency(mut self, max: usize) -> Self {
        self.max_concurrency = max;
        self
    }

    /// Retries of transient failures.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Told about every request (metrics).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The hosts the client may talk to.
    pub fn with_allowed_hosts(mut self, hosts: Vec<String>) -> Self {
        self.allowed_hosts = hosts;
        self
    }

    /// Bounds on answers.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Asked before every request.
    pub fn with_gate(mut self, gate: Arc<dyn Gate>) -> Self {
        self.gate = Some(gate);
        self
    }
}

/// A client for one SonarQube instance and one token. Cheap to clone; clones share the rate
/// limit, the concurrency bound and the version once read.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: reqwest::Url,
    token: Secret,
    limiter: RateLimiter,
    in_flight: tokio::sync::Semaphore,
    /// Held by every call that changes something: SonarQube's own check-then-insert (the edition
    /// cap on settings) was racy, so the operator never sends two writes to one instance at once.
    writes: tokio::sync::Mutex<()>,
    retry: RetryPolicy,
    limits: Limits,
    observer: Option<Arc<dyn Observer>>,
    gate: Option<Arc<dyn Gate>>,
    /// The server's version, read once before the first authenticated call: it picks the auth
    /// scheme.
    version: tokio::sync::OnceCell<Version>,
}

impl Client {
    /// Builds a client; fails on a malformed URL, a host outside the allow-list or a bad CA
    /// bundle.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let base = crate::bitbucket::parse_base_url(&config.base_url).map_err(configuration)?;
        let host = crate::bitbucket::host_of(base.as_str()).map_err(configuration)?;
        if !crate::bitbucket::host_allowed(&host, &config.allowed_hosts) {
            return Err(Error::Configuration(format!("the operator may not send credentials to {host}")));
        }
        if config.token.expose().trim().is_empty() {
            return Err(Error::Configuration("the SonarQube token is empty; put a user token in the Secret".into()));
        }
        let http = crate::bitbucket::http_client(
            config.ca_pem.as_deref(),
            config.insecure_skip_verify,
            config.connect_timeout,
            config.request_timeout,
        )
        .map_err(Error::Configuration)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                token: config.token,
                limiter: RateLimiter::new(config.rate_limit),
                in_flight: tokio::sync::Semaphore::new(config.max_concurrency.max(1)),
                writes: tokio::sync::Mutex::new(()),
                retry: config.retry,
                limits: config.limits,
                observer: config.observer,
                gate: config.gate,
                version: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str().trim_end_matches('/')
    }
}

/// The Bitbucket client's URL and host checks say what is wrong in a configuration error.
fn configuration(error: crate::bitbucket::Error) -> Error {
    match error {
        crate::bitbucket::Error::Configuration(message) => Error::Configuration(message),
        other => Error::Configuration(other.to_string()),
    }
}

#[cfg(test)]
mod stub;
#[cfg(test)]
mod tests;
