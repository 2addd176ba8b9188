//! The Bitbucket Data Center REST client: everything the operator says to Bitbucket goes through
//! one [`Client`] per configuration, shared by every resource that uses it. It follows the wire
//! contract in `bitbucket-api.md`: bearer or basic auth, no redirects, `X-Atlassian-Token` on
//! writes, paging with `limit=1000`, one error type, a shared token bucket, and retries with
//! jittered exponential backoff for idempotent calls only.

mod credentials;
mod error;
mod http;
mod merge_checks;
mod paging;
mod projects;
mod rate_limit;
mod repositories;
mod required_builds;
mod server;
mod webhooks;

use std::{
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::Duration,
};

pub use credentials::{Credentials, Secret};
pub use error::{Error, ErrorClass};
pub use http::{host_allowed, host_of};
// Shared with the SonarQube client, which speaks through the same kind of pipeline.
pub(crate) use error::bounded_message;
pub(crate) use http::{
    Attempt, bytes, http_client, is_bidi_control, json_error_kind, parse_base_url, parse_retry_after,
    transport_message, with_retries,
};
pub use merge_checks::{MANUAL_STEPS, MergeCheck, Severity};
pub use projects::Project;
pub use rate_limit::{RateLimit, RateLimiter};
pub use repositories::{CloneLinks, Repository, RepositoryState};
pub use required_builds::{
    MAX_BUILD_KEY_CHARS, MAX_BUILD_KEYS, MAX_MATCHER_ID_CHARS, RefMatcher, RefMatcherType, RequiredBuildCondition,
    RequiredBuildRequest,
};
pub(crate) use server::plain;
pub use server::{Capabilities, ServerIdentity, UNSHOWN_USER, Version};
pub use webhooks::{Webhook, WebhookRequest};

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("bitbucket-operator/", env!("CARGO_PKG_VERSION"));

/// Retries of transient failures of idempotent calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled for each further one, with jitter.
    pub base_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 4, base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(5) }
    }
}

/// How much the client reads from a server before it gives up with
/// [`Error::ResponseTooLarge`]: whatever a server sends, memory and time stay bounded. The
/// defaults fit the largest real answers with room to spare (see the constants' notes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one response body.
    pub body_bytes: usize,
    /// Pages of one paged list.
    pub pages: usize,
    /// Items of one paged list.
    pub items: usize,
    /// Bytes of all the pages of one list together.
    pub listing_bytes: usize,
    /// Time to read one whole paged list, every page and rate-limit wait included.
    pub listing_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: http::MAX_BODY,
            pages: paging::MAX_PAGES,
            items: paging::MAX_ITEMS,
            listing_bytes: paging::MAX_LISTING_BYTES,
            listing_time: paging::MAX_LISTING_TIME,
        }
    }
}

/// Everything a [`Client`] is built from.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL including any context path, such as `https://example.com/bitbucket`.
    pub base_url: String,
    /// How to log in.
    pub credentials: Credentials,
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
    /// The hosts the client may talk to (`host` or `*.domain`); empty allows every host. A
    /// client for any other host is never built, so it can send nothing.
    pub allowed_hosts: Vec<String>,
    /// How much one answer and one paged list may hold.
    pub limits: Limits,
    /// Asked before every request whether it may be sent at all.
    pub gate: Option<Arc<dyn Gate>>,
}

/// Something that wants to know what the client does, such as a metrics registry.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// A request finished: its endpoint template, status (0 when no response arrived) and time.
    fn request(&self, endpoint: &'static str, status: u16, elapsed: Duration);
    /// A request waited this long for the client's own rate limit.
    fn rate_limited(&self, waited: Duration);
}

/// Decides, right before each request leaves, whether the client may send anything now (such as
/// only while this replica holds the leader Lease).
pub trait Gate: Send + Sync + std::fmt::Debug {
    /// Resolves once the request may go (`Ok`), or must not (`Err` says why); may wait while
    /// that is not known yet.
    fn admit(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>>;
}

impl ClientConfig {
    /// A configuration with the defaults for everything but the URL and credentials.
    pub fn new(base_url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            base_url: base_url.into(),
            credentials,
            ca_pem: None,
            insecure_skip_verify: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            rate_limit: RateLimit::default(),
            max_concurrency: 8,
            retry: RetryPolicy::default(),
            observer: None,
            allowed_hosts: Vec::new(),
            limits: Limits::default(),
            gate: None,
        }
    }
}

/// A client for one Bitbucket instance and one credential. Cheap to clone; clones share the rate
/// limit, the concurrency bound and what the client learnt about the credential.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: reqwest::Url,
    credentials: Credentials,
    limiter: RateLimiter,
    in_flight: tokio::sync::Semaphore,
    retry: RetryPolicy,
    limits: Limits,
    /// Set once the connection check proved the credential: a 401 after that is a permission
    /// problem, not a bad credential, once the identity is checked again.
    identity_proven: AtomicBool,
    /// When the last re-check after a 401 that confirmed the identity was sent; held while a
    /// re-check is under way, so that concurrent 401s share it.
    identity_recheck: tokio::sync::Mutex<Option<tokio::time::Instant>>,
    /// Told about requests and rate-limit waits.
    observer: Option<Arc<dyn Observer>>,
    /// Asked before every request.
    gate: Option<Arc<dyn Gate>>,
    /// Set when Bitbucket rejected the credential: every later call fails at once, without a
    /// request, so that a bad password cannot run into Bitbucket's CAPTCHA lock-out.
    rejected: Mutex<Option<Error>>,
}

impl Client {
    /// Builds a client; fails on a malformed URL or CA bundle.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let base = http::parse_base_url(&config.base_url)?;
        let host = http::host_of(base.as_str())?;
        if !http::host_allowed(&host, &config.allowed_hosts) {
            return Err(Error::Configuration(format!("the operator may not send credentials to {host}")));
        }
        let http = http::http_client(
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
                credentials: config.credentials,
                limiter: RateLimiter::new(config.rate_limit),
                in_flight: tokio::sync::Semaphore::new(config.max_concurrency.max(1)),
                retry: config.retry,
                limits: config.limits,
                observer: config.observer,
                gate: config.gate,
                identity_proven: AtomicBool::new(false),
                identity_recheck: tokio::sync::Mutex::new(None),
                rejected: Mutex::new(None),
            }),
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str().trim_end_matches('/')
    }
}
