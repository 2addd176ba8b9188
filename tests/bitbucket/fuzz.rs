//! The client against hostile answers: malformed, truncated, oversized and wrongly shaped bodies
//! under every status, per endpoint, and paged lists that never end. It returns errors, never
//! panics, never repeats the body in an error, and its memory stays bounded.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{Method, Response, Uri},
};
use bitbucket_operator::bitbucket::{
    Client, ClientConfig, Credentials, Error, Limits, MergeCheck, RateLimit, RetryPolicy, Secret, WebhookRequest,
};
use proptest::prelude::*;

/// A marker put into every body; no error text may contain it. The slash keeps it from passing
/// as a field or exception name, which errors do name.
const MARKER: &str = "BODY/MARKER";

#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

struct Server {
    addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
}

fn start(runtime: &tokio::runtime::Runtime) -> Server {
    let answer = Arc::new(Mutex::new(Answer { status: 200, content_type: "application/json", body: Vec::new() }));
    let shared = answer.clone();
    let app = Router::new().fallback(move || {
        let answer = shared.lock().expect("answer lock").clone();
        async move {
            Response::builder()
                .status(answer.status)
                .header("content-type", answer.content_type)
                .header("x-ausername", "svc")
                .body(Body::from(answer.body))
                .expect("response")
        }
    });
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(async move { axum::serve(listener, app).await });
    Server { addr, answer }
}

fn client(addr: SocketAddr) -> Client {
    let mut config = ClientConfig::new(format!("http://{addr}"), Credentials::Token(Secret::new("t")));
    config.rate_limit = RateLimit { requests_per_second: 1000, burst: 1000 };
    config.retry =
        RetryPolicy { max_attempts: 2, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2) };
    config.request_timeout = Duration::from_secs(5);
    Client::new(config).expect("client")
}

/// Bodies that look like what the endpoints expect, then broken in various ways.
fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    let shaped = prop_oneof![
        Just(format!(
            r#"{{"size":1,"limit":1000,"isLastPage":false,"start":0,"values":[{{"slug":"{MARKER}","id":1}}]}}"#
        )),
        Just(format!(r#"{{"slug":"{MARKER}","id":"not a number","links":{{"clone":[{{"href":"{MARKER}"}}]}}}}"#)),
        Just(format!(r#"{{"errors":[{{"context":"{MARKER}","message":"{MARKER}","exceptionName":null}}]}}"#)),
        Just(r#"{"errors":[]}"#.to_owned()),
        Just(format!(r#"{{"version":"{MARKER}","buildNumber":7}}"#)),
        Just(format!(r#"{{"reportKey":"{MARKER}","mustPass":"yes","minSeverity":"EXTREME"}}"#)),
        Just(format!(r#"{{"id":5,"configuration":{{"secret":["{MARKER}"]}},"events":"{MARKER}"}}"#)),
        Just(format!("<html><body>{MARKER}</body></html>")),
        Just(format!(r#"{{"state":"{MARKER}"}}"#)),
        Just(format!(r#"{{"isLastPage":false,"nextPageStart":0,"values":[{{"slug":"{MARKER}","id":1}}]}}"#)),
    ];
    (shaped, any::<usize>(), proptest::collection::vec(any::<u8>(), 0..64), 0..3_u8).prop_map(
        |(text, cut, noise, mode)| {
            let mut bytes = text.into_bytes();
            match mode {
                0 => bytes,
                1 => {
                    bytes.truncate(cut % (bytes.len() + 1));
                    bytes
                }
                _ => {
                    bytes.extend(noise);
                    bytes.extend(MARKER.as_bytes());
                    bytes
                }
            }
        },
    )
}

fn check(result: Result<String, String>) {
    if let Err(error) = result {
        assert!(!error.contains(MARKER), "an error repeats the body: {error}");
        assert!(error.len() < 600, "an overlong error: {error}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn hostile_bodies_give_errors_not_panics(
        status in prop_oneof![Just(200_u16), Just(201), Just(204), Just(302), Just(400), Just(401), Just(403), Just(404), Just(409), Just(418), Just(500)],
        html in any::<bool>(),
        body in body_strategy(),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let server = start(&runtime);
        *server.answer.lock().expect("lock") =
            Answer { status, content_type: if html { "text/html" } else { "application/json" }, body };
        runtime.block_on(async {
            let client = client(server.addr);
            check(client.get_repository("PAY", "api").await.map(|r| r.slug).map_err(|e| e.to_string()));
            let client = client_fresh(server.addr);
            check(client.list_repositories("PAY").await.map(|r| r.len().to_string()).map_err(|e| e.to_string()));
            let client = client_fresh(server.addr);
            check(client.get_webhook("PAY", "api", 5).await.map(|w| w.name).map_err(|e| e.to_string()));
            let client = client_fresh(server.addr);
            check(client.get_merge_check("PAY", "api", "k").await.map(|c| format!("{c:?}")).map_err(|e| e.to_string()));
            let client = client_fresh(server.addr);
            check(client.verify_connection().await.map(|i| i.shown_user().to_owned()).map_err(|e| e.to_string()));
        });
    }
}

fn client_fresh(addr: SocketAddr) -> Client {
    // A 401 blocks a client for good; each endpoint gets its own so every one is exercised.
    client(addr)
}

#[test]
fn a_page_that_does_not_advance_is_an_error_not_a_loop() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let server = start(&runtime);
    let body = br#"{"isLastPage":false,"nextPageStart":0,"start":0,"values":[{"slug":"a","id":1}]}"#.to_vec();
    *server.answer.lock().expect("lock") = Answer { status: 200, content_type: "application/json", body };
    let error = runtime.block_on(client(server.addr).list_repositories("PAY")).expect_err("loop");
    assert!(error.to_string().contains("does not say where the next one starts"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Per endpoint, and paged lists that never end: a server that answers every path as Bitbucket
// would, except the one under test.

/// A page of a paged list.
const REPOSITORY: &str = r#"{"slug":"api","id":1,"name":"api","state":"AVAILABLE","project":{"key":"PAY"},"links":{"clone":[{"href":"https://bitbucket.example.com/scm/pay/api.git","name":"http"}]}}"#;
const WEBHOOK: &str = r#"{"id":5,"name":"ci","url":"https://ci.example.com/hook","events":["repo:refs_changed"],"active":true,"configuration":{}}"#;
const CHECK: &str = r#"{"reportKey":"k","mustPass":true,"minSeverity":null}"#;
const REPOS: &str = "/rest/api/1.0/projects/PAY/repos";
const WEBHOOKS: &str = "/rest/api/1.0/projects/PAY/repos/api/webhooks";

/// What Bitbucket answers to `method path`, or `None` (404).
fn bitbucket_answer(method: &Method, path: &str) -> Option<String> {
    let last_page = |item: &str| format!(r#"{{"size":1,"limit":1000,"isLastPage":true,"start":0,"values":[{item}]}}"#);
    Some(match (method.as_str(), path) {
        ("GET", "/status") => r#"{"state":"RUNNING"}"#.into(),
        ("GET", "/rest/api/1.0/application-properties") => {
            r#"{"version":"9.4.22","buildNumber":"9004022","buildDate":"1616539597394","displayName":"Bitbucket"}"#
                .into()
        }
        ("GET", "/rest/api/1.0/users") => {
            r#"{"size":1,"limit":1,"isLastPage":false,"start":0,"nextPageStart":1,"values":[{"name":"svc","id":1}]}"#
                .into()
        }
        ("GET", "/rest/capabilities") => r#"{"capabilities":{"webhooks":"w","code-insights":"c"}}"#.into(),
        ("GET", "/rest/api/1.0/projects/PAY") => r#"{"key":"PAY","id":1,"name":"Payments"}"#.into(),
        ("GET", REPOS) => last_page(REPOSITORY),
        ("GET", "/rest/api/1.0/projects/PAY/repos/api") => REPOSITORY.into(),
        ("GET", WEBHOOKS) => last_page(WEBHOOK),
        ("POST", WEBHOOKS) | ("GET" | "PUT", "/rest/api/1.0/projects/PAY/repos/api/webhooks/5") => WEBHOOK.into(),
        ("GET" | "PUT", "/rest/insights/latest/projects/PAY/repos/api/settings/merge-checks/k") => CHECK.into(),
        _ => return None,
    })
}

/// A reply: a status, a body sent whole (with its length) or in chunks (without), a delay.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: Bytes,
    chunked: bool,
    delay: Duration,
}

impl Reply {
    fn json(body: impl Into<Bytes>) -> Self {
        Self { status: 200, body: body.into(), chunked: false, delay: Duration::ZERO }
    }
}

/// Decides the reply to `method`, `path`, `query`.
type Handler = Arc<dyn Fn(&Method, &str, &str) -> Reply + Send + Sync>;

/// A loopback server; it stops when dropped, and what it serves is freed with it.
struct Loopback {
    addr: SocketAddr,
    /// The requests seen, as `METHOD path`.
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `handler` on loopback.
async fn serve(handler: Handler) -> Loopback {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().fallback(move |method: Method, uri: Uri| {
        let handler = handler.clone();
        let log = log.clone();
        async move {
            log.lock().expect("log").push(format!("{method} {}", uri.path()));
            let reply = handler(&method, uri.path(), uri.query().unwrap_or_default());
            tokio::time::sleep(reply.delay).await;
            let body = if reply.chunked {
                // Slices of the one body, so that serving it costs no copies.
                let chunks: Vec<Result<Bytes, std::convert::Infallible>> = (0..reply.body.len())
                    .step_by(64 * 1024)
                    .map(|at| Ok(reply.body.slice(at..(at + 64 * 1024).min(reply.body.len()))))
                    .collect();
                Body::from_stream(futures::stream::iter(chunks))
            } else {
                Body::from(reply.body)
            };
            Response::builder()
                .status(reply.status)
                .header("content-type", "application/json;charset=UTF-8")
                .header("x-ausername", "svc")
                .body(body)
                .expect("response")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Loopback { addr, seen, task }
}

/// Bitbucket, except that `method path` answers `hostile(good body)` (built once).
fn bitbucket_but(method: Method, path: &'static str, hostile: impl Fn(String) -> Reply) -> Handler {
    let reply = hostile(bitbucket_answer(&method, path).expect("an endpoint Bitbucket serves"));
    Arc::new(move |m: &Method, p: &str, _: &str| match bitbucket_answer(m, p) {
        Some(_) if *m == method && p == path => reply.clone(),
        Some(good) => Reply::json(good),
        None => Reply { status: 404, ..Reply::json("{}") },
    })
}

/// A body that is `good` with a string of `size` bytes added: valid JSON, only too large.
fn padded(good: &str, size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + good.len() + 16);
    body.extend(br#"{"padding":""#);
    body.extend(std::iter::repeat_n(b'x', size));
    body.extend(br#"","#);
    body.extend(good.as_bytes()[1..].iter());
    body
}

/// Ten megabytes, as the testers sent.
const TEN_MB: usize = 10 * 1000 * 1000;

/// Every public call that reads a body, by the endpoint whose answer it reads.
struct Endpoint {
    /// The call to make.
    call: &'static str,
    method: Method,
    path: &'static str,
    /// The endpoint template the error names.
    template: &'static str,
}

fn endpoints() -> Vec<Endpoint> {
    let endpoint = |call, method, path, template| Endpoint { call, method, path, template };
    vec![
        endpoint("status", Method::GET, "/status", "GET /status"),
        endpoint("verify", Method::GET, "/status", "GET /status"),
        endpoint(
            "verify",
            Method::GET,
            "/rest/api/1.0/application-properties",
            "GET /rest/api/1.0/application-properties",
        ),
        endpoint("verify", Method::GET, "/rest/api/1.0/users", "GET /rest/api/1.0/users"),
        endpoint("verify", Method::GET, "/rest/capabilities", "GET /rest/capabilities"),
        endpoint("capabilities", Method::GET, "/rest/capabilities", "GET /rest/capabilities"),
        endpoint("get_project", Method::GET, "/rest/api/1.0/projects/PAY", "GET /rest/api/1.0/projects/{key}"),
        endpoint("list_repositories", Method::GET, REPOS, "GET /rest/api/1.0/projects/{key}/repos"),
        endpoint(
            "get_repository",
            Method::GET,
            "/rest/api/1.0/projects/PAY/repos/api",
            "GET /rest/api/1.0/projects/{key}/repos/{slug}",
        ),
        endpoint("list_webhooks", Method::GET, WEBHOOKS, "GET /rest/api/1.0/projects/{key}/repos/{slug}/webhooks"),
        endpoint(
            "get_webhook",
            Method::GET,
            "/rest/api/1.0/projects/PAY/repos/api/webhooks/5",
            "GET /rest/api/1.0/projects/{key}/repos/{slug}/webhooks/{id}",
        ),
        endpoint("create_webhook", Method::POST, WEBHOOKS, "POST /rest/api/1.0/projects/{key}/repos/{slug}/webhooks"),
        endpoint(
            "update_webhook",
            Method::PUT,
            "/rest/api/1.0/projects/PAY/repos/api/webhooks/5",
            "PUT /rest/api/1.0/projects/{key}/repos/{slug}/webhooks/{id}",
        ),
        endpoint(
            "get_merge_check",
            Method::GET,
            "/rest/insights/latest/projects/PAY/repos/api/settings/merge-checks/k",
            "GET /rest/insights/latest/projects/{key}/repos/{slug}/settings/merge-checks/{reportKey}",
        ),
        endpoint(
            "put_merge_check",
            Method::PUT,
            "/rest/insights/latest/projects/PAY/repos/api/settings/merge-checks/k",
            "PUT /rest/insights/latest/projects/{key}/repos/{slug}/settings/merge-checks/{reportKey}",
        ),
    ]
}

/// Makes the call `name`; what it returned, if it succeeded, as text.
async fn call(client: &Client, name: &str) -> Result<String, Error> {
    let webhook = WebhookRequest {
        name: "ci".into(),
        url: "https://ci.example.com/hook".into(),
        events: vec!["repo:refs_changed".into()],
        active: true,
        ssl_verification_required: true,
        secret: None,
        configuration: BTreeMap::new(),
    };
    let check = MergeCheck { report_key: "k".into(), must_pass: true, min_severity: None };
    match name {
        "status" => client.status().await,
        "verify" => client.verify_connection().await.map(|i| format!("{i:?}")),
        "capabilities" => client.capabilities().await.map(|c| format!("{c:?}")),
        "get_project" => client.get_project("PAY").await.map(|p| p.key),
        "list_repositories" => client.list_repositories("PAY").await.map(|r| r.len().to_string()),
        "get_repository" => client.get_repository("PAY", "api").await.map(|r| r.slug),
        "list_webhooks" => client.list_webhooks("PAY", "api").await.map(|w| w.len().to_string()),
        "get_webhook" => client.get_webhook("PAY", "api", 5).await.map(|w| w.name),
        "create_webhook" => client.create_webhook("PAY", "api", &webhook).await.map(|id| id.to_string()),
        "update_webhook" => client.update_webhook("PAY", "api", 5, &webhook).await.map(|w| w.name),
        "get_merge_check" => client.get_merge_check("PAY", "api", "k").await.map(|c| format!("{c:?}")),
        "put_merge_check" => client.put_merge_check("PAY", "api", &check).await.map(|c| format!("{c:?}")),
        other => panic!("no call {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_oversized_truncated_and_html_bodies() {
    for endpoint in endpoints() {
        let what = format!("{} ({} {})", endpoint.call, endpoint.method, endpoint.path);
        // As Bitbucket answers, the call succeeds: what fails below fails for the answer.
        let server = serve(bitbucket_but(endpoint.method.clone(), endpoint.path, Reply::json)).await;
        call(&client(server.addr), endpoint.call)
            .await
            .unwrap_or_else(|e| panic!("{what} fails against Bitbucket: {e}"));

        for chunked in [false, true] {
            let server = serve(bitbucket_but(endpoint.method.clone(), endpoint.path, move |good| Reply {
                chunked,
                ..Reply::json(padded(&good, TEN_MB))
            }))
            .await;
            let error = call(&client(server.addr), endpoint.call).await.expect_err(&what);
            match &error {
                Error::ResponseTooLarge { endpoint: named, bound, .. } => {
                    assert_eq!(named, endpoint.template, "{what}");
                    assert!(bound.contains("4 MiB"), "{what}: {error}");
                }
                other => panic!("{what}, chunked {chunked}: {other:?}"),
            }
            assert!(error.to_string().contains("check that the URL"), "{what}: says what to do: {error}");
            // Reading it again would read as much again: it is not retried.
            let hits = server
                .seen
                .lock()
                .unwrap()
                .iter()
                .filter(|r| **r == format!("{} {}", endpoint.method, endpoint.path))
                .count();
            assert_eq!(hits, 1, "{what}: the oversized answer was asked for {hits} times");
        }

        let truncated = |good: String| Reply::json(good.as_bytes()[..good.len() / 2].to_vec());
        let html = |_| Reply::json(format!("<html><body>{MARKER}</body></html>"));
        for (kind, hostile) in
            [("truncated", Box::new(truncated) as Box<dyn Fn(String) -> Reply>), ("HTML", Box::new(html))]
        {
            let server = serve(bitbucket_but(endpoint.method.clone(), endpoint.path, hostile)).await;
            let result = call(&client(server.addr), endpoint.call).await;
            let error = result.expect_err(&format!("{what}: a {kind} body is an error, never a success"));
            assert!(!error.to_string().contains(MARKER), "{what}: {error}");
        }
    }
}

/// The `start` a page request asks for.
fn start_of(query: &str) -> u64 {
    query.split('&').find_map(|pair| pair.strip_prefix("start=")).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A repository list that holds `total` repositories (`None`: it never ends, every page
/// advancing), served `per_page` at a time, each repository carrying `padding` bytes of name.
fn repository_pages(total: Option<u64>, per_page: u64, padding: usize, delay: Duration) -> Handler {
    let name = "n".repeat(padding);
    Arc::new(move |method: &Method, path: &str, query: &str| {
        if *method != Method::GET || path != REPOS {
            return Reply { status: 404, ..Reply::json("{}") };
        }
        let start = start_of(query);
        let end = total.map_or(start + per_page, |total| (start + per_page).min(total));
        let last = total.is_some_and(|total| end >= total);
        let next = if last { String::new() } else { format!(r#","nextPageStart":{end}"#) };
        // One string, written in place: the server's own copies would count in the figures.
        let mut body = String::with_capacity(256 + (end - start) as usize * (200 + name.len()));
        body.push_str(&format!(
            r#"{{"size":{},"limit":{per_page},"isLastPage":{last},"start":{start}{next},"values":["#,
            end - start
        ));
        for i in start..end {
            if i > start {
                body.push(',');
            }
            body.push_str(&format!(r#"{{"slug":"repo-{i}","id":{i},"name":""#));
            body.push_str(&name);
            body.push_str(&format!(
                r#"","project":{{"key":"PAY"}},"links":{{"clone":[{{"href":"https://bitbucket.example.com/scm/pay/repo-{i}.git","name":"http"}}]}}}}"#
            ));
        }
        body.push_str("]}");
        Reply { delay, ..Reply::json(body) }
    })
}

fn client_with(addr: SocketAddr, limits: Limits) -> Client {
    let mut config = ClientConfig::new(format!("http://{addr}"), Credentials::Token(Secret::new("t")));
    config.rate_limit = RateLimit { requests_per_second: 100_000, burst: 100_000 };
    config.retry =
        RetryPolicy { max_attempts: 2, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2) };
    config.limits = limits;
    Client::new(config).expect("client")
}

/// The bound a list ran into, asserting it is a [`Error::ResponseTooLarge`] naming the list.
fn list_bound(result: Result<Vec<bitbucket_operator::bitbucket::Repository>, Error>) -> String {
    match result {
        Err(Error::ResponseTooLarge { endpoint, bound, .. }) => {
            assert_eq!(endpoint, "GET /rest/api/1.0/projects/{key}/repos");
            bound
        }
        other => panic!("not stopped by a bound: {:?}", other.map(|r| r.len())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_never_ends_stops_at_each_bound() {
    let small = Limits {
        body_bytes: 64 * 1024,
        pages: 30,
        items: 500,
        listing_bytes: 256 * 1024,
        listing_time: Duration::from_secs(60),
    };
    // One repository a page: the page bound.
    let server = serve(repository_pages(None, 1, 0, Duration::ZERO)).await;
    let bound = list_bound(client_with(server.addr, small).list_repositories("PAY").await);
    assert_eq!(bound, "more than 30 pages in one list");
    assert_eq!(server.seen.lock().unwrap().len(), 30, "pages asked for");
    // 100 a page: the item bound, before the page bound.
    let server = serve(repository_pages(None, 100, 0, Duration::ZERO)).await;
    assert_eq!(
        list_bound(client_with(server.addr, small).list_repositories("PAY").await),
        "more than 500 items in one list"
    );
    // Heavy repositories: the byte bound, before the others.
    let server = serve(repository_pages(None, 10, 4000, Duration::ZERO)).await;
    assert_eq!(
        list_bound(client_with(server.addr, small).list_repositories("PAY").await),
        "more than 256 KiB in one list"
    );
    // Slow pages: the time bound. It stops the list about when it is due (a generous margin).
    let slow = Limits { listing_time: Duration::from_secs(1), ..small };
    let server = serve(repository_pages(None, 1, 0, Duration::from_millis(100))).await;
    let started = std::time::Instant::now();
    assert_eq!(
        list_bound(client_with(server.addr, slow).list_repositories("PAY").await),
        "the list took longer than 1.0 s in all"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the time bound did not stop the list: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_list_the_bounds_allow_is_read_whole_even_25_a_page() {
    // A server that caps pages at 25 (a real one did) and a project as large as the item bound.
    let total = Limits::default().items as u64;
    let server = serve(repository_pages(Some(total), 25, 0, Duration::ZERO)).await;
    let repositories =
        client_with(server.addr, Limits::default()).list_repositories("PAY").await.expect("within the bounds");
    assert_eq!(repositories.len() as u64, total);
    assert_eq!(repositories.last().map(|r| r.slug.clone()), Some(format!("repo-{}", total - 1)));
    eprintln!("{total} repositories in {} pages of 25", server.seen.lock().unwrap().len());
    // One more is over the bound.
    let server = serve(repository_pages(Some(total + 1), 1000, 0, Duration::ZERO)).await;
    assert!(list_bound(client_with(server.addr, Limits::default()).list_repositories("PAY").await).contains("items"));
}

/// Runs one memory scenario of [`memory_scenario`] in a child process of this test binary (peak
/// memory cannot be told apart between tests running in parallel in one process) and returns
/// what it printed.
fn in_child(test: &str) -> String {
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads", "1"])
        .output()
        .expect("child");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "the child failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Peak resident memory of this process, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    let kib: f64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number");
    kib / 1024.0
}

#[test]
fn peak_memory_stays_bounded_against_hostile_servers() {
    let output = in_child("fuzz::memory_scenario");
    let figure = |label: &str| -> f64 {
        let line = output
            .lines()
            .find_map(|l| l.split_once(label).map(|(_, figure)| figure))
            .unwrap_or_else(|| panic!("no {label} in {output}"));
        line.trim().trim_end_matches(" MiB").parse().expect("MiB")
    };
    let start = figure("peak RSS at the start:");
    let (bodies, lists) = (figure("peak RSS after 10 MB bodies:"), figure("peak RSS after endless lists:"));
    eprintln!(
        "peak RSS: {start:.1} MiB at the start, {bodies:.1} MiB with 10 MB bodies on every endpoint, {lists:.1} MiB \
         with endless lists too (servers included)"
    );
    // Generous: the bounds allow one 4 MiB body and 64 MiB of one list; without them a 10 MB
    // body per endpoint and an endless list took over 1 GiB.
    assert!(bodies < 200.0 && lists < 200.0, "{output}");
}

/// The memory scenario, run only by [`peak_memory_stays_bounded_against_hostile_servers`] in a
/// process of its own: every endpoint answering 10 MB, then lists that never end.
#[test]
#[ignore = "run in its own process by peak_memory_stays_bounded_against_hostile_servers"]
fn memory_scenario() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        println!("peak RSS at the start: {:.1} MiB", peak_rss_mib());
        for endpoint in endpoints() {
            for chunked in [false, true] {
                let server = serve(bitbucket_but(endpoint.method.clone(), endpoint.path, move |good| Reply {
                    chunked,
                    ..Reply::json(padded(&good, TEN_MB))
                }))
                .await;
                assert!(call(&client(server.addr), endpoint.call).await.is_err());
            }
        }
        println!("peak RSS after 10 MB bodies: {:.1} MiB", peak_rss_mib());
        // 1000 realistic repositories a page, forever: the item bound.
        let server = serve(repository_pages(None, 1000, 20, Duration::ZERO)).await;
        list_bound(client_with(server.addr, Limits::default()).list_repositories("PAY").await);
        println!("peak RSS after the item bound: {:.1} MiB", peak_rss_mib());
        // Pages just under the body bound, forever: the byte bound, with most of it kept.
        let server = serve(repository_pages(None, 1, 4 * 1024 * 1024 - 1024, Duration::ZERO)).await;
        list_bound(client_with(server.addr, Limits::default()).list_repositories("PAY").await);
        // Pages of 10 MB, forever: the first one is refused.
        let server = serve(repository_pages(None, 1, TEN_MB, Duration::ZERO)).await;
        assert!(client_with(server.addr, Limits::default()).list_repositories("PAY").await.is_err());
        println!("peak RSS after endless lists: {:.1} MiB", peak_rss_mib());
    });
}
