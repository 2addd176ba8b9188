//! Configurations pointing at a hostile or broken server: oversized bodies, junk in what the
//! server says about itself, truncated JSON. Every one still gets a condition, its status stays
//! small, and no server-chosen junk reaches status or Events.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{Method, Response, Uri},
};
use serde_json::Value;

use crate::harness::{Env, SEED, message};

/// Put into every piece of junk; it must never reach status or Events.
const JUNK: &str = "JUNK<script>";

/// What the hostile server answers at one path: a body, and the `X-AUSERNAME` it sends.
#[derive(Clone)]
struct Answer {
    body: Bytes,
    username: String,
}

/// A server that answers as Bitbucket does, except where `hostile` says otherwise.
async fn hostile_server(hostile: impl Fn(&str) -> Option<Answer> + Send + Sync + 'static) -> SocketAddr {
    let hostile = Arc::new(hostile);
    let app = Router::new().fallback(move |method: Method, uri: Uri| {
        let hostile = hostile.clone();
        async move {
            let path = uri.path();
            let answer = hostile(path).unwrap_or_else(|| {
                let body: &'static str = match (method.as_str(), path) {
                    ("GET", "/status") => r#"{"state":"RUNNING"}"#,
                    ("GET", "/rest/api/1.0/application-properties") => {
                        r#"{"version":"9.4.22","buildNumber":"9004022","buildDate":"1","displayName":"Bitbucket"}"#
                    }
                    ("GET", "/rest/api/1.0/users") => {
                        r#"{"size":1,"limit":1,"isLastPage":true,"start":0,"values":[{"name":"svc","id":1}]}"#
                    }
                    ("GET", "/rest/capabilities") => r#"{"capabilities":{"webhooks":"w","code-insights":"c"}}"#,
                    _ => "{}",
                };
                Answer { body: Bytes::from_static(body.as_bytes()), username: "svc".into() }
            });
            Response::builder()
                .header("content-type", "application/json;charset=UTF-8")
                .header("x-ausername", answer.username)
                .body(Body::from(answer.body))
                .expect("response")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A configuration `name` of the server at `addr`, with its token Secret.
fn configuration(name: &str, addr: SocketAddr) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: {name}-token
  labels: {{bitbucket.integrations.dev/credential: "true"}}
stringData: {{token: some-token}}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: BitbucketConfiguration
metadata: {{name: {name}}}
spec:
  url: http://{addr}
  allowInsecureHttp: true
  auth: {{token: {{secretRef: {{name: {name}-token}}}}}}
"#
    )
}

/// The application properties with `display_name` and a version followed by `junk` bytes.
fn properties(display_name: &str, junk: usize) -> Bytes {
    let version = format!("9.4.22{}", JUNK.repeat(junk / JUNK.len()));
    let body =
        serde_json::json!({"version": version, "buildNumber": format!("9004022{JUNK}"), "displayName": display_name});
    Bytes::from(body.to_string())
}

/// The status is small, and neither it nor any Event about the configuration holds junk.
fn assert_clean(env: &Env, object: &Value, name: &str) {
    let status = object["status"].to_string();
    assert!(status.len() < 4096, "{name}: a status of {} bytes: {:.300}", status.len(), status);
    assert!(!status.contains("JUNK"), "{name}: junk in status: {status:.300}");
    for event in env.events("BitbucketConfiguration", name) {
        let text = event.to_string();
        assert!(text.len() < 8192, "{name}: an Event of {} bytes", text.len());
        assert!(!text.contains("JUNK"), "{name}: junk in an Event: {text:.300}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_servers_get_conditions_and_small_clean_statuses() {
    let mut env = Env::new(SEED).await;
    env.start_operator();

    // Application properties of 10 MB (a displayName of that size): refused, not stored.
    let huge = hostile_server(|path| {
        (path == "/rest/api/1.0/application-properties")
            .then(|| Answer { body: properties(&"B".repeat(10_000_000), 0), username: "svc".into() })
    })
    .await;
    env.apply(&configuration("huge", huge));

    // Junk that fits the body bound: a 2 MB display name, 200 kB of junk after the version, a
    // junk build number and a 48-character user name that no Bitbucket has. The connection
    // works, so the configuration is Ready, but none of that is shown.
    let junk = hostile_server(|path| {
        (path == "/rest/api/1.0/application-properties").then(|| Answer {
            body: properties(&format!("Bitbucket {}", JUNK.repeat(2_000_000 / JUNK.len())), 200_000),
            username: format!("{JUNK}{}", "x".repeat(48 - JUNK.len())),
        })
    })
    .await;
    env.apply(&configuration("junk", junk));

    // The identity proof answers truncated JSON: not a proof.
    let truncated = hostile_server(|path| {
        (path == "/rest/api/1.0/users").then(|| Answer {
            body: Bytes::from_static(br#"{"size":1,"limit":1,"isLastPage":true,"val"#),
            username: "svc".into(),
        })
    })
    .await;
    env.apply(&configuration("truncated", truncated));

    let object = env.wait_ready("bitbucketconfigurations", "huge", "False", "ResponseTooLarge").await;
    let said = message(&object);
    assert!(said.contains("GET /rest/api/1.0/application-properties") && said.contains("4 MiB"), "{said}");
    assert!(object["status"]["server"].is_null(), "nothing of the answer is kept: {}", object["status"]);
    assert_clean(&env, &object, "huge");

    let object = env.wait_ready("bitbucketconfigurations", "junk", "True", "Connected").await;
    let status = &object["status"];
    assert_eq!(status["server"]["version"], "9.4.22", "the parsed version stands for the junk");
    assert!(status["server"]["displayName"].is_null() && status["server"]["buildNumber"].is_null(), "{status}");
    assert!(status["authenticatedAs"].is_null(), "{status}");
    assert_eq!(message(&object), "connected to Bitbucket 9.4.22 as a user whose name cannot be shown");
    assert_clean(&env, &object, "junk");

    let object = env.wait_ready("bitbucketconfigurations", "truncated", "False", "Unreachable").await;
    let said = message(&object);
    assert!(said.contains("GET /rest/api/1.0/users") && said.contains("truncated"), "{said}");
    assert!(object["status"]["authenticatedAs"].is_null(), "an unproven identity is not shown");
    assert_clean(&env, &object, "truncated");
    env.shutdown().await;
}

#[tokio::test]
async fn the_fake_api_server_refuses_request_bodies_over_3_mib_as_a_real_one() {
    let env = Env::new(SEED).await;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = env.api();
    let mut secret = k8s_openapi::api::core::v1::Secret::default();
    secret.metadata.name = Some("big".into());
    secret.string_data = Some([("data".to_owned(), "x".repeat(4 * 1024 * 1024))].into());
    match secrets.create(&Default::default(), &secret).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 413, "{status:?}"),
        other => panic!("a 4 MiB body was not refused: {:?}", other.map(|s| s.metadata.name)),
    }
    secret.string_data = Some([("data".to_owned(), "x".repeat(1024 * 1024))].into());
    secrets.create(&Default::default(), &secret).await.expect("a 1 MiB body is read");
}
