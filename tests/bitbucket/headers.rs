//! What the client puts on the wire: credentials, User-Agent, the XSRF header on writes only,
//! JSON bodies, and no redirect following.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Method, Response, Uri},
};
use bitbucket_operator::bitbucket::{Client, ClientConfig, Credentials, Error, MergeCheck, Secret, USER_AGENT};

#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
}

async fn recorder() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
        let log = log.clone();
        async move {
            log.lock().expect("lock").push(Seen { method: method.clone(), path: uri.path().to_owned(), headers });
            let (status, location, body) = match uri.path() {
                "/redirect/rest/api/1.0/projects/PAY" => (302, Some("/login"), String::new()),
                p if p.ends_with("/merge-checks/k") => {
                    (200, None, r#"{"reportKey":"k","mustPass":true,"minSeverity":null}"#.to_owned())
                }
                _ => (200, None, r#"{"key":"PAY","id":1,"name":"Payments"}"#.to_owned()),
            };
            let mut response = Response::builder().status(status).header("content-type", "application/json");
            if let Some(location) = location {
                response = response.header("location", location);
            }
            response.body(Body::from(body)).expect("response")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn headers_on_reads_and_writes() {
    let (base, seen) = recorder().await;
    let client = Client::new(ClientConfig::new(format!("{base}/bitbucket/"), Credentials::Token(Secret::new("tok"))))
        .expect("client");
    client.get_project("PAY").await.expect("read");
    let check = MergeCheck { report_key: "k".into(), must_pass: true, min_severity: None };
    client.put_merge_check("PAY", "api", &check).await.expect("write");

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2);
    let (read, write) = (&seen[0], &seen[1]);
    assert_eq!(read.path, "/bitbucket/rest/api/1.0/projects/PAY", "the context path is kept");
    assert_eq!(write.path, "/bitbucket/rest/insights/latest/projects/PAY/repos/api/settings/merge-checks/k");
    for request in [read, write] {
        assert_eq!(request.headers["authorization"], "Bearer tok");
        assert_eq!(request.headers["user-agent"], USER_AGENT);
    }
    assert!(USER_AGENT.starts_with("bitbucket-operator/"));
    assert!(read.headers.get("x-atlassian-token").is_none(), "reads carry no XSRF header");
    assert_eq!(write.method, Method::PUT);
    assert_eq!(write.headers["x-atlassian-token"], "no-check");
    assert_eq!(write.headers["content-type"], "application/json");
}

#[tokio::test]
async fn basic_credentials_are_sent_pre_emptively() {
    let (base, seen) = recorder().await;
    let credentials = Credentials::Basic { username: "svc".into(), password: Secret::new("pw") };
    Client::new(ClientConfig::new(base, credentials)).expect("client").get_project("PAY").await.expect("read");
    assert_eq!(seen.lock().expect("lock")[0].headers["authorization"], "Basic c3ZjOnB3");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (base, seen) = recorder().await;
    let client = Client::new(ClientConfig::new(format!("{base}/redirect"), Credentials::Token(Secret::new("tok"))))
        .expect("client");
    let error = client.get_project("PAY").await.expect_err("a redirect is an error");
    assert!(matches!(error, Error::UnsupportedServer { .. }), "{error}");
    let seen = seen.lock().expect("lock");
    assert_eq!(
        seen.len(),
        1,
        "the login page was not requested: {:?}",
        seen.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
}

#[test]
fn a_bad_ca_bundle_or_url_is_a_configuration_error() {
    let mut config = ClientConfig::new("https://bitbucket.example.com", Credentials::Token(Secret::new("t")));
    config.ca_pem = Some(b"not a certificate".to_vec());
    assert!(matches!(Client::new(config), Err(Error::Configuration(_))));
    let config = ClientConfig::new("https://user:pw@bitbucket.example.com", Credentials::Token(Secret::new("t")));
    let error = Client::new(config).expect_err("credentials in the URL");
    assert!(!error.to_string().contains("pw"), "{error}");
}
