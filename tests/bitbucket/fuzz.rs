//! The client against hostile answers: malformed, truncated, oversized and wrongly shaped bodies
//! under every status. It returns errors, never panics, and never repeats the body in an error.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Body, http::Response};
use bitbucket_operator::bitbucket::{Client, ClientConfig, Credentials, RateLimit, RetryPolicy, Secret};
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
            check(client.verify_connection().await.map(|i| i.username).map_err(|e| e.to_string()));
        });
    }
}

fn client_fresh(addr: SocketAddr) -> Client {
    // A 401 blocks a client for good; each endpoint gets its own so every one is exercised.
    client(addr)
}

#[test]
fn an_oversized_body_is_refused_without_reading_it_all() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let server = start(&runtime);
    let mut body = br#"{"isLastPage":true,"values":[{"slug":""#.to_vec();
    body.extend(std::iter::repeat_n(b'a', 17 * 1024 * 1024));
    body.extend(br#"","id":1}]}"#);
    *server.answer.lock().expect("lock") = Answer { status: 200, content_type: "application/json", body };
    let error = runtime.block_on(client(server.addr).list_repositories("PAY")).expect_err("too large");
    assert!(error.to_string().contains("larger than 16 MiB"), "{error}");
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
