//! HTTP-level tests: a served simulator on 127.0.0.1:0 and raw reqwest calls, with a real
//! Bitbucket simulator behind the settings that `validate` and `bound-projects` call.

use std::time::Duration;

use axum::response::Redirect;
use base64::Engine as _;
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use super::{Edition, RunningSonarQube, SonarQubeSimulator, SonarSeed};
use crate::simulator::{Faults, RunningSimulator, Seed, Simulator};

const ADMIN: &str = "squ_admin";
const DEV: &str = "squ_dev";
const ANALYSIS: &str = "sqa_analysis";

fn seed(extra: &str) -> String {
    format!(
        r#"
users:
  - {{login: admin, name: Administrator, admin: true, tokens: [{{token: {ADMIN}}}, {{token: {ANALYSIS}, kind: globalAnalysis}}, {{token: squ_old, expired: true}}]}}
  - {{login: dev, createProjects: true, tokens: [{{token: {DEV}}}]}}
  - {{login: viewer, tokens: [{{token: squ_viewer}}]}}
projects:
  - {{key: app, name: App, admins: [dev]}}
  - {{key: lib, name: Library}}
{extra}
"#
    )
}

async fn start(yaml: &str) -> (RunningSonarQube, Client, String) {
    let seed = SonarSeed::from_yaml(yaml).unwrap();
    let running = SonarQubeSimulator::new(seed).unwrap().serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = running.base_url();
    (running, Client::new(), base)
}

fn basic(token: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{token}:")))
}

trait As {
    fn token(self, token: &str) -> Self;
}

impl As for RequestBuilder {
    fn token(self, token: &str) -> Self {
        self.header("Authorization", basic(token))
    }
}

/// Status and the v1 `msg` (or the v2 `message`).
async fn failure(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let msg = body["errors"][0]["msg"].as_str().or(body["message"].as_str()).unwrap_or_default();
    (status, msg.to_owned())
}

async fn body(response: Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// A 204 with nothing in it.
async fn empty(response: Response) {
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());
}

/// An `application/x-www-form-urlencoded` body.
fn form_body(form: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    form.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

async fn post(client: &Client, url: String, token: &str, form: &[(&str, &str)]) -> Response {
    client
        .post(url)
        .token(token)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(form))
        .send()
        .await
        .unwrap()
}

const BITBUCKET: &str = r#"
users:
  - name: sonar
    password: pw
    tokens: [{name: t, token: BBDC-sonar}]
  - name: nobody
    tokens: [{name: n, token: BBDC-nobody}]
projects:
  - key: PAY
    permissions: {sonar: PROJECT_READ}
    repositories: [{slug: payments-api}]
"#;

async fn bitbucket() -> RunningSimulator {
    let seed = Seed::from_yaml(BITBUCKET).unwrap();
    Simulator::new(seed).unwrap().serve("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

#[tokio::test]
async fn bearer_needs_10_0_while_basic_token_colon_works_everywhere() {
    let (running, client, base) = start(&seed("version: 9.9.8.100196")).await;
    let url = format!("{base}/api/alm_settings/list_definitions");
    assert_eq!(client.get(&url).token(ADMIN).send().await.unwrap().status(), 200);
    // Before 10.0 a Bearer header is ignored: the caller is anonymous.
    assert_eq!(
        failure(client.get(&url).bearer_auth(ADMIN).send().await.unwrap()).await,
        (401, "Authentication is required".into())
    );
    let me = body(client.get(format!("{base}/api/users/current")).bearer_auth(ADMIN).send().await.unwrap()).await;
    assert_eq!(me["isLoggedIn"], false);
    assert_eq!(client.get(&url).bearer_auth("garbage").send().await.unwrap().status(), 401);

    running.simulator().set_version("10.0.0.68432").unwrap();
    assert_eq!(client.get(&url).bearer_auth(ADMIN).send().await.unwrap().status(), 200);
    running.simulator().set_version("2026.3.1.123439").unwrap();
    assert_eq!(client.get(&url).bearer_auth(ADMIN).send().await.unwrap().status(), 200);
    assert_eq!(
        failure(client.get(&url).bearer_auth("garbage").send().await.unwrap()).await,
        (401, "Authentication is required".into())
    );
    assert!(running.simulator().set_version("ten").is_err());

    assert_eq!(
        failure(client.get(&url).token("squ_unknown").send().await.unwrap()).await,
        (401, "Authentication is required".into())
    );
    assert_eq!(
        failure(client.get(&url).token("squ_old").send().await.unwrap()).await,
        (401, "The token expired on 2026-01-01".into())
    );
    running.simulator().expire_token(ADMIN);
    let (status, msg) = failure(client.get(&url).token(ADMIN).send().await.unwrap()).await;
    assert_eq!((status, msg.starts_with("The token expired on 20")), (401, true), "{msg}");
    running.simulator().add_token("admin", "squ_new").unwrap();
    assert!(running.simulator().add_token("admin", "squ_new").is_err());
    assert!(running.simulator().add_token("ghost", "squ_x").is_err());
    assert_eq!(client.get(&url).token("squ_new").send().await.unwrap().status(), 200);
    running.simulator().revoke_token("squ_new");
    assert_eq!(client.get(&url).token("squ_new").send().await.unwrap().status(), 401);

    // Analysis tokens and users without the permission: 403.
    for token in [ANALYSIS, DEV] {
        assert_eq!(
            failure(client.get(&url).token(token).send().await.unwrap()).await,
            (403, "Insufficient privileges".into())
        );
    }
    assert_eq!(failure(client.get(&url).send().await.unwrap()).await, (401, "Authentication is required".into()));
    running.shutdown().await;
}

#[tokio::test]
async fn authentication_validate_says_valid_for_anonymous_unless_authentication_is_forced() {
    let (running, client, base) = start(&seed("")).await;
    let url = format!("{base}/api/authentication/validate");
    assert_eq!(body(client.get(&url).send().await.unwrap()).await, json!({"valid": true}));
    assert_eq!(body(client.get(&url).token("squ_unknown").send().await.unwrap()).await, json!({"valid": false}));
    assert_eq!(body(client.get(&url).token(DEV).send().await.unwrap()).await, json!({"valid": true}));
    running.simulator().set_force_authentication(true);
    assert_eq!(body(client.get(&url).send().await.unwrap()).await, json!({"valid": false}));
    let projects = client.get(format!("{base}/api/components/show?component=app")).send().await.unwrap();
    assert_eq!(failure(projects).await.0, 401);
    assert_eq!(client.get(format!("{base}/api/system/status")).send().await.unwrap().status(), 200);
    running.shutdown().await;
}

#[tokio::test]
async fn status_version_edition_and_features() {
    let (running, client, base) = start(&seed("edition: developer\nversion: 10.7.0.96327")).await;
    let sim = running.simulator();
    let status = format!("{base}/api/system/status");
    assert_eq!(body(client.get(&status).send().await.unwrap()).await, json!({"status": "UP"}));
    let full = body(client.get(&status).token(DEV).send().await.unwrap()).await;
    assert_eq!((full["version"].as_str(), full["status"].as_str()), (Some("10.7.0.96327"), Some("UP")));
    assert!(full["id"].as_str().is_some_and(|id| !id.is_empty()));
    let version = client.get(format!("{base}/api/server/version")).send().await.unwrap();
    assert!(version.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(version.text().await.unwrap(), "10.7.0.96327");
    let nav = body(client.get(format!("{base}/api/navigation/global")).send().await.unwrap()).await;
    assert_eq!((nav["edition"].as_str(), nav["canAdmin"].as_bool()), (Some("developer"), Some(false)));
    let features = format!("{base}/api/features/list");
    assert_eq!(body(client.get(&features).token(DEV).send().await.unwrap()).await, json!([]));
    sim.set_edition(Edition::Datacenter);
    assert_eq!(body(client.get(&features).token(DEV).send().await.unwrap()).await, json!(["multiple-alm"]));
    let nav = body(client.get(format!("{base}/api/navigation/global")).token(ADMIN).send().await.unwrap()).await;
    assert_eq!((nav["edition"].as_str(), nav["canAdmin"].as_bool()), (Some("datacenter"), Some(true)));
    let me = body(client.get(format!("{base}/api/users/current")).token(ADMIN).send().await.unwrap()).await;
    assert_eq!((me["isLoggedIn"].as_bool(), me["login"].as_str()), (Some(true), Some("admin")));
    assert_eq!(me["permissions"]["global"], json!(["admin", "provisioning"]));

    sim.set_status("DB_MIGRATION_NEEDED").unwrap();
    assert!(sim.set_status("SLEEPING").is_err());
    assert_eq!(body(client.get(&status).send().await.unwrap()).await, json!({"status": "DB_MIGRATION_NEEDED"}));
    assert_eq!(client.get(&features).token(DEV).send().await.unwrap().status(), 503);
    sim.set_status("UP").unwrap();
    assert_eq!(client.get(&features).token(DEV).send().await.unwrap().status(), 200);
    running.shutdown().await;
}

#[tokio::test]
async fn methods_are_enforced_json_bodies_are_not_read_and_mutations_answer_204() {
    let (running, client, base) = start(&seed("")).await;
    let create = format!("{base}/api/alm_settings/create_bitbucket");
    let form = [("key", "bb"), ("url", "https://bitbucket.example.com"), ("personalAccessToken", "BBDC-pat")];
    let get = client.get(&create).token(ADMIN).send().await.unwrap();
    assert_eq!(failure(get).await, (405, "HTTP method POST is required".into()));
    let post_list = client.post(format!("{base}/api/alm_settings/list_definitions")).token(ADMIN).send().await.unwrap();
    assert_eq!(failure(post_list).await, (405, "HTTP method GET is required".into()));
    let as_json = client
        .post(&create)
        .token(ADMIN)
        .json(&json!({"key": "bb", "url": "https://bitbucket.example.com", "personalAccessToken": "BBDC-pat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failure(as_json).await, (400, "The 'key' parameter is missing".into()));
    empty(post(&client, create.clone(), ADMIN, &form).await).await;
    assert_eq!(running.simulator().alm_setting_pat("bb").as_deref(), Some("BBDC-pat"));
    // Query-string parameters are read as well.
    let count = client.get(format!("{base}/api/alm_settings/count_binding?almSetting=bb")).token(ADMIN).send().await;
    assert_eq!(body(count.unwrap()).await, json!({"key": "bb", "projects": 0}));
    let unknown = client.get(format!("{base}/api/alm_settings/nope")).token(ADMIN).send().await.unwrap();
    assert_eq!(failure(unknown).await, (404, "Unknown url : /api/alm_settings/nope".into()));
    let long = "k".repeat(201);
    let too_long =
        post(&client, create, ADMIN, &[("key", &long), ("url", "https://b"), ("personalAccessToken", "p")]).await;
    assert_eq!(failure(too_long).await, (400, "'key' length (201) is longer than the maximum authorized (200)".into()));
    let counts = running.simulator().request_counts();
    assert_eq!(counts["POST /api/alm_settings/create_bitbucket"], 3);
    assert_eq!(counts["GET /api/alm_settings/create_bitbucket"], 1);
    running.shutdown().await;
}

#[tokio::test]
async fn the_edition_caps_bitbucket_settings_and_keys_are_unique_across_types() {
    let settings = "almSettings: [{key: gh1, alm: github, url: 'https://api.github.com'}, {key: cloud, alm: bitbucketcloud, url: acme}]";
    let (running, client, base) = start(&seed(&format!("edition: developer\n{settings}"))).await;
    let create = format!("{base}/api/alm_settings/create_bitbucket");
    let form = |key: &'static str| [("key", key), ("url", "https://bb.example.com"), ("personalAccessToken", "BBDC-1")];
    let capped = post(&client, create.clone(), ADMIN, &form("bb")).await;
    assert_eq!(failure(capped).await, (400, "A BITBUCKET_CLOUD setting is already defined".into()));
    running.simulator().delete_alm_setting("cloud").unwrap();
    assert!(running.simulator().delete_alm_setting("cloud").is_err());
    empty(post(&client, create.clone(), ADMIN, &form("bb")).await).await;
    let second = post(&client, create.clone(), ADMIN, &form("bb2")).await;
    assert_eq!(failure(second).await, (400, "A BITBUCKET setting is already defined".into()));
    running.simulator().set_edition(Edition::Enterprise);
    empty(post(&client, create.clone(), ADMIN, &form("bb2")).await).await;
    let taken = post(&client, create.clone(), ADMIN, &form("gh1")).await;
    assert_eq!(failure(taken).await, (400, "An DevOps Platform setting with key 'gh1' already exists".into()));
    let forbidden = post(&client, create, DEV, &form("bb3")).await;
    assert_eq!(failure(forbidden).await.0, 403);

    let definitions =
        body(client.get(format!("{base}/api/alm_settings/list_definitions")).token(ADMIN).send().await.unwrap()).await;
    assert_eq!(
        definitions["bitbucket"],
        json!([{"key": "bb", "url": "https://bb.example.com"}, {"key": "bb2", "url": "https://bb.example.com"}])
    );
    assert_eq!(definitions["github"][0]["key"], "gh1");
    assert!(!definitions.to_string().contains("BBDC-1"));
    let list = body(client.get(format!("{base}/api/alm_settings/list")).token(DEV).send().await.unwrap()).await;
    let keys: Vec<&str> = list["almSettings"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["bb", "bb2", "gh1"]);
    running.shutdown().await;
}

#[tokio::test]
async fn updates_need_the_pat_for_a_new_url_and_renames_keep_bindings() {
    let extra = "almSettings: [{key: bb, alm: bitbucket, url: 'https://bb.example.com', personalAccessToken: BBDC-1}, {key: other, alm: gitlab, url: 'https://gitlab.com'}]\nbindings: [{project: app, almSetting: bb, repository: PAY, slug: payments-api}]";
    let (running, client, base) = start(&seed(extra)).await;
    let sim = running.simulator();
    let update = format!("{base}/api/alm_settings/update_bitbucket");
    let no_pat = post(&client, update.clone(), ADMIN, &[("key", "bb"), ("url", "https://bb.example.com/")]).await;
    assert_eq!(failure(no_pat).await, (400, "Please provide the Personal Access Token to update the URL.".into()));
    let missing_url = post(&client, update.clone(), ADMIN, &[("key", "bb")]).await;
    assert_eq!(failure(missing_url).await, (400, "The 'url' parameter is missing".into()));
    // Same URL, blank PAT: the stored PAT stays.
    empty(
        post(
            &client,
            update.clone(),
            ADMIN,
            &[("key", "bb"), ("url", "https://bb.example.com"), ("personalAccessToken", "")],
        )
        .await,
    )
    .await;
    assert_eq!(sim.alm_setting_pat("bb").as_deref(), Some("BBDC-1"));
    empty(
        post(
            &client,
            update.clone(),
            ADMIN,
            &[("key", "bb"), ("url", "https://bb2.example.com"), ("personalAccessToken", "BBDC-2")],
        )
        .await,
    )
    .await;
    assert_eq!(sim.alm_setting_pat("bb").as_deref(), Some("BBDC-2"));

    let id_before = sim.alm_settings_json()[0]["id"].clone();
    let collision =
        post(&client, update.clone(), ADMIN, &[("key", "bb"), ("newKey", "other"), ("url", "https://bb2.example.com")])
            .await;
    assert_eq!(failure(collision).await, (400, "An DevOps Platform setting with key 'other' already exists".into()));
    empty(
        post(
            &client,
            update.clone(),
            ADMIN,
            &[("key", "bb"), ("newKey", "bitbucket"), ("url", "https://bb2.example.com")],
        )
        .await,
    )
    .await;
    assert_eq!(sim.alm_settings_json()[0]["id"], id_before);
    let binding = sim.binding("app").unwrap();
    assert_eq!(
        (binding["key"].as_str(), binding["url"].as_str()),
        (Some("bitbucket"), Some("https://bb2.example.com"))
    );
    let count = body(
        client
            .get(format!("{base}/api/alm_settings/count_binding?almSetting=bitbucket"))
            .token(ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(count["projects"], 1);
    let unknown = post(&client, update, ADMIN, &[("key", "unknown"), ("url", "https://x")]).await;
    assert_eq!(failure(unknown).await, (404, "DevOps Platform setting with key 'unknown' cannot be found".into()));
    running.shutdown().await;
}

#[tokio::test]
async fn deleting_a_setting_drops_its_bindings_and_every_users_pat() {
    let extra = "edition: community\nalmSettings: [{key: bb, alm: bitbucket, url: 'https://bb.example.com', personalAccessToken: BBDC-1}]\nbindings: [{project: app, almSetting: bb, repository: PAY, slug: a}, {project: lib, almSetting: bb, repository: PAY, slug: b}]";
    let (running, client, base) = start(&seed(extra)).await;
    let sim = running.simulator();
    empty(post(&client, format!("{base}/api/alm_integrations/set_pat"), DEV, &[("pat", "BBDC-dev")]).await).await;
    assert_eq!(sim.user_pat("dev", "bb").as_deref(), Some("BBDC-dev"));
    let delete = format!("{base}/api/alm_settings/delete");
    empty(post(&client, delete.clone(), ADMIN, &[("key", "bb")]).await).await;
    assert_eq!((sim.binding("app"), sim.binding("lib"), sim.user_pat("dev", "bb")), (None, None, None));
    let dev = &sim.state_json()["users"][1];
    assert_eq!((dev["login"].as_str(), &dev["patsFor"]), (Some("dev"), &json!([])));
    assert_eq!(failure(post(&client, delete, ADMIN, &[("key", "bb")]).await).await.0, 404);
    let unbound =
        client.get(format!("{base}/api/alm_settings/get_binding?project=app")).token(ADMIN).send().await.unwrap();
    assert_eq!(failure(unbound).await, (404, "Project 'app' is not bound to any DevOps Platform".into()));
    running.shutdown().await;
}

#[tokio::test]
async fn commercial_bindings_need_monorepo_overwrite_and_are_unknown_urls_on_community() {
    let extra = "edition: developer\nalmSettings: [{key: bb, alm: bitbucket, url: 'https://bb.example.com/', personalAccessToken: BBDC-1}]";
    let (running, client, base) = start(&seed(extra)).await;
    let sim = running.simulator();
    let set = format!("{base}/api/alm_settings/set_bitbucket_binding");
    let mut form = vec![("almSetting", "bb"), ("project", "app"), ("repository", "PAY"), ("slug", "payments-api")];
    let no_monorepo = post(&client, set.clone(), DEV, &form).await;
    assert_eq!(failure(no_monorepo).await, (400, "The 'monorepo' parameter is missing".into()));
    form.push(("monorepo", "true"));
    empty(post(&client, set.clone(), DEV, &form).await).await;
    let get = format!("{base}/api/alm_settings/get_binding?project=app");
    let binding = body(client.get(&get).token(DEV).send().await.unwrap()).await;
    assert_eq!(
        binding,
        json!({"key": "bb", "alm": "bitbucket", "repository": "PAY", "slug": "payments-api", "url": "https://bb.example.com/", "monorepo": true})
    );
    form[3] = ("slug", "ledger");
    form[4] = ("monorepo", "false");
    empty(post(&client, set.clone(), DEV, &form).await).await;
    assert_eq!(sim.binding("app").unwrap()["slug"], "ledger");
    assert_eq!(failure(post(&client, set.clone(), "squ_viewer", &form).await).await.0, 403);
    let unknown_project =
        client.get(format!("{base}/api/alm_settings/get_binding?project=nope")).token(ADMIN).send().await.unwrap();
    assert_eq!(failure(unknown_project).await, (404, "Project 'nope' not found".into()));
    let delete = format!("{base}/api/alm_settings/delete_binding");
    empty(post(&client, delete.clone(), DEV, &[("project", "app")]).await).await;
    empty(post(&client, delete.clone(), DEV, &[("project", "app")]).await).await;
    assert_eq!(sim.binding("app"), None);

    sim.set_edition(Edition::Community);
    for (path, method) in [("set_bitbucket_binding", "POST"), ("delete_binding", "POST"), ("validate_binding", "GET")] {
        let url = format!("{base}/api/alm_settings/{path}");
        let response = if method == "POST" {
            post(&client, url, ADMIN, &form).await
        } else {
            client.get(url).token(ADMIN).send().await.unwrap()
        };
        assert_eq!(failure(response).await, (404, format!("Unknown url : /api/alm_settings/{path}")));
    }
    // get_binding is in every edition.
    sim.set_binding("app", "bb", "PAY", "web", false).unwrap();
    assert_eq!(body(client.get(&get).token(DEV).send().await.unwrap()).await["slug"], "web");
    assert!(sim.set_binding("app", "nope", "PAY", "web", false).is_err());
    running.shutdown().await;
}

/// A server that redirects every request to `target`.
async fn redirector(target: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move { Redirect::temporary(&target) }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn validate_calls_bitbucket_for_real_and_maps_what_it_answers() {
    let bb = bitbucket().await;
    let (redirecting, task) = redirector(format!("{}/status", bb.base_url())).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let extra = format!(
        "almSettings:\n  - {{key: good, alm: bitbucket, url: '{b}/', personalAccessToken: BBDC-sonar}}\n  - {{key: badpat, alm: bitbucket, url: '{b}', personalAccessToken: BBDC-wrong}}\n  - {{key: moved, alm: bitbucket, url: '{redirecting}', personalAccessToken: BBDC-sonar}}\n  - {{key: path, alm: bitbucket, url: '{b}/bitbucket', personalAccessToken: BBDC-sonar}}\n  - {{key: down, alm: bitbucket, url: 'http://{closed}', personalAccessToken: BBDC-sonar}}\n  - {{key: ftp, alm: bitbucket, url: 'ftp://bb', personalAccessToken: BBDC-sonar}}\n  - {{key: nopat, alm: bitbucket, url: '{b}'}}",
        b = bb.base_url()
    );
    let (running, client, base) = start(&seed(&extra)).await;
    let validate = |key: &str| client.get(format!("{base}/api/alm_settings/validate?key={key}")).token(ADMIN).send();
    empty(validate("good").await.unwrap()).await;
    let expected = [
        ("badpat", "Invalid personal access token"),
        ("moved", "Unable to contact Bitbucket server"),
        ("path", "Error 404. The requested Bitbucket server is unreachable."),
        ("down", "Unable to contact Bitbucket server"),
        ("ftp", "url must start with http:// or https://"),
        ("nopat", "Your global Bitbucket Server configuration is incomplete."),
    ];
    for (key, msg) in expected {
        assert_eq!(failure(validate(key).await.unwrap()).await, (400, msg.to_owned()), "{key}");
    }
    // What Bitbucket saw of the good setting: the three calls, the PAT only as a bearer token.
    let seen: Vec<(String, String)> = bb
        .simulator()
        .requests()
        .iter()
        .filter(|r| r.user.as_deref() == Some("sonar") || r.path == "/status")
        .map(|r| (r.path.clone(), r.auth.clone()))
        .take(3)
        .collect();
    let seen: Vec<(&str, &str)> = seen.iter().map(|(p, a)| (p.as_str(), a.as_str())).collect();
    assert_eq!(seen, [("/status", "none"), ("/rest/api/1.0/users", "bearer"), ("/rest/api/1.0/repos", "bearer")]);
    assert_eq!(
        failure(client.get(format!("{base}/api/alm_settings/validate")).token(ADMIN).send().await.unwrap()).await.0,
        400
    );

    // validate_binding fetches the bound repository with the setting's PAT.
    let sim = running.simulator();
    let validate_binding = |project: &str| {
        client.get(format!("{base}/api/alm_settings/validate_binding?project={project}")).token(ADMIN).send()
    };
    sim.set_binding("app", "good", "PAY", "payments-api", false).unwrap();
    empty(validate_binding("app").await.unwrap()).await;
    sim.set_binding("app", "good", "PAY", "gone", false).unwrap();
    let missing = validate_binding("app").await.unwrap();
    assert_eq!(failure(missing).await, (400, "Error 404. The requested Bitbucket server is unreachable.".into()));
    assert_eq!(failure(validate_binding("lib").await.unwrap()).await.0, 404);
    task.abort();
    running.shutdown().await;
    bb.shutdown().await;
}

#[tokio::test]
async fn community_binds_with_the_callers_own_pat_through_v2_bound_projects() {
    let bb = bitbucket().await;
    let extra = format!(
        "edition: community\nversion: 26.7.0.124771\nalmSettings: [{{key: bb, alm: bitbucket, url: '{}', personalAccessToken: BBDC-global}}]",
        bb.base_url()
    );
    let (running, client, base) = start(&seed(&extra)).await;
    let sim = running.simulator();
    let settings =
        body(client.get(format!("{base}/api/v2/dop-translation/dop-settings")).bearer_auth(DEV).send().await.unwrap())
            .await;
    assert_eq!(settings["dopSettings"][0]["type"], "bitbucket_server");
    assert_eq!(settings["dopSettings"][0]["key"], "bb");
    assert_eq!(settings["page"]["total"], 1);
    let id = settings["dopSettings"][0]["id"].as_str().unwrap().to_owned();
    let bound = format!("{base}/api/v2/dop-translation/bound-projects");
    let request = |key: &str, slug: &str| {
        json!({"projectKey": key, "projectName": "Payments", "devOpsPlatformSettingId": id,
               "repositoryIdentifier": slug, "projectIdentifier": "PAY", "monorepo": false})
    };
    let without_pat =
        client.put(&bound).bearer_auth(DEV).json(&request("payments", "payments-api")).send().await.unwrap();
    assert_eq!(failure(without_pat).await, (400, "personal access token for 'bb' is missing".into()));

    empty(post(&client, format!("{base}/api/alm_integrations/set_pat"), DEV, &[("pat", "BBDC-sonar")]).await).await;
    assert_eq!(sim.user_pat("dev", "bb").as_deref(), Some("BBDC-sonar"));
    let created =
        body(client.put(&bound).bearer_auth(DEV).json(&request("payments", "payments-api")).send().await.unwrap())
            .await;
    assert_eq!(created["newProjectCreated"], true);
    assert!(sim.projects().contains(&("payments".to_owned(), "Payments".to_owned())));
    let binding = sim.binding("payments").unwrap();
    assert_eq!((binding["repository"].as_str(), binding["slug"].as_str()), (Some("PAY"), Some("payments-api")));
    let again =
        body(client.put(&bound).bearer_auth(DEV).json(&request("payments", "payments-api")).send().await.unwrap())
            .await;
    assert_eq!((again["newProjectCreated"].as_bool(), &again["bindingId"]), (Some(false), &created["bindingId"]));
    assert_eq!(again["projectId"], created["projectId"]);

    let no_repo = client.put(&bound).bearer_auth(DEV).json(&request("other", "nope")).send().await.unwrap();
    let (status, message) = failure(no_repo).await;
    assert_eq!(status, 500);
    assert!(message.contains("PAY/nope"), "{message}");
    assert!(!sim.projects().iter().any(|(key, _)| key == "other"));
    let exists = client.post(&bound).bearer_auth(DEV).json(&request("Payments", "payments-api")).send().await.unwrap();
    let (status, message) = failure(exists).await;
    assert_eq!(status, 400);
    assert!(message.contains("A similar key already exists: \"payments\""), "{message}");
    let fresh = client.post(&bound).bearer_auth(DEV).json(&request("fresh", "payments-api")).send().await.unwrap();
    assert_eq!(fresh.status(), StatusCode::CREATED);
    let mut missing = request("x", "payments-api");
    missing.as_object_mut().unwrap().remove("monorepo");
    let invalid = client.put(&bound).bearer_auth(DEV).json(&missing).send().await.unwrap();
    assert_eq!(
        failure(invalid).await,
        (400, "Value null for field monorepo was rejected. Error: must not be null.".into())
    );
    let viewer = client.put(&bound).bearer_auth("squ_viewer").json(&request("v", "payments-api")).send().await.unwrap();
    assert_eq!(failure(viewer).await, (403, "Insufficient privileges".into()));
    let anonymous = client.put(&bound).json(&request("v", "payments-api")).send().await.unwrap();
    assert_eq!(failure(anonymous).await.0, 401);
    let bindings = body(
        client
            .get(format!("{base}/api/v2/dop-translation/project-bindings?repository=payments-api"))
            .bearer_auth(DEV)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let keys: Vec<&str> =
        bindings["projectBindings"].as_array().unwrap().iter().map(|b| b["projectKey"].as_str().unwrap()).collect();
    assert_eq!(keys, ["fresh", "payments"]);

    // Bitbucket saw the user's PAT, not the setting's.
    let users: Vec<Option<String>> = bb.simulator().requests().iter().map(|r| r.user.clone()).collect();
    assert!(users.iter().all(|u| u.as_deref() == Some("sonar")), "{users:?}");
    running.shutdown().await;
    bb.shutdown().await;
}

#[tokio::test]
async fn set_pat_needs_a_setting_when_there_are_several() {
    let extra = "almSettings: [{key: a, alm: bitbucket, url: 'https://a'}, {key: b, alm: bitbucket, url: 'https://b'}]";
    let (running, client, base) = start(&seed(extra)).await;
    let url = format!("{base}/api/alm_integrations/set_pat");
    let ambiguous = post(&client, url.clone(), DEV, &[("pat", "p")]).await;
    assert_eq!(failure(ambiguous).await.0, 400);
    empty(post(&client, url.clone(), DEV, &[("pat", "p"), ("almSetting", "b")]).await).await;
    assert_eq!(
        (running.simulator().user_pat("dev", "a"), running.simulator().user_pat("dev", "b").as_deref()),
        (None, Some("p"))
    );
    assert_eq!(
        failure(post(&client, url.clone(), DEV, &[("almSetting", "b")]).await).await,
        (400, "The 'pat' parameter is missing".into())
    );
    assert_eq!(failure(post(&client, url, "squ_viewer", &[("pat", "p"), ("almSetting", "b")]).await).await.0, 403);
    running.shutdown().await;
}

#[tokio::test]
async fn projects_are_searched_created_once_per_key_ignoring_case_and_shown() {
    let (running, client, base) = start(&seed("")).await;
    let create = format!("{base}/api/projects/create");
    let made = body(post(&client, create.clone(), DEV, &[("project", "Web"), ("name", "Web site")]).await).await;
    assert_eq!(made["project"]["key"], "Web");
    let duplicate = post(&client, create.clone(), DEV, &[("project", "APP"), ("name", "x")]).await;
    assert_eq!(
        failure(duplicate).await,
        (400, "Could not create Project with key: \"APP\". A similar key already exists: \"app\"".into())
    );
    assert_eq!(
        failure(post(&client, create.clone(), "squ_viewer", &[("project", "v"), ("name", "v")]).await).await.0,
        403
    );
    assert_eq!(failure(post(&client, create, DEV, &[("project", "123"), ("name", "n")]).await).await.0, 400);

    let search = |query: &str| client.get(format!("{base}/api/projects/search?{query}")).token(ADMIN).send();
    let all = body(search("").await.unwrap()).await;
    let keys: Vec<&str> = all["components"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["app", "lib", "Web"]);
    assert_eq!(all["paging"], json!({"pageIndex": 1, "pageSize": 100, "total": 3}));
    let page = body(search("p=2&ps=2").await.unwrap()).await;
    assert_eq!((page["components"][0]["key"].as_str(), page["paging"]["total"].as_u64()), (Some("Web"), Some(3)));
    let picked = body(search("projects=lib,Web").await.unwrap()).await;
    assert_eq!(picked["paging"]["total"], 2);
    let q = body(search("q=SITE").await.unwrap()).await;
    assert_eq!(q["components"][0]["key"], "Web");
    assert_eq!(failure(search("ps=501").await.unwrap()).await.0, 400);
    assert_eq!(
        failure(client.get(format!("{base}/api/projects/search")).token(DEV).send().await.unwrap()).await.0,
        403
    );

    let show =
        |key: &str, token: &str| client.get(format!("{base}/api/components/show?component={key}")).token(token).send();
    assert_eq!(body(show("Web", DEV).await.unwrap()).await["component"]["name"], "Web site");
    assert_eq!(failure(show("lib", DEV).await.unwrap()).await.0, 403);
    assert_eq!(failure(show("nope", ADMIN).await.unwrap()).await, (404, "Component key 'nope' not found".into()));
    running.shutdown().await;
}

#[tokio::test]
async fn faults_counters_and_no_secret_in_any_query_string() {
    let (running, client, base) = start(&seed("")).await;
    let sim = running.simulator();
    let form = [("key", "bb"), ("url", "https://bb.example.com"), ("personalAccessToken", "BBDC-secret")];
    empty(post(&client, format!("{base}/api/alm_settings/create_bitbucket"), ADMIN, &form).await).await;
    empty(post(&client, format!("{base}/api/alm_integrations/set_pat"), DEV, &[("pat", "BBDC-mine")]).await).await;
    let records = sim.requests();
    assert_eq!(records.len(), 2);
    for record in &records {
        for secret in ["BBDC-secret", "BBDC-mine", ADMIN, DEV] {
            assert!(!record.query.contains(secret), "{record:?}");
        }
    }
    assert_eq!(records[0].user.as_deref(), Some("admin"));
    let dump = client.get(format!("{base}/__simulator/state")).send().await.unwrap().text().await.unwrap();
    assert!(dump.contains("\"bb\"") && !dump.contains("BBDC-") && !dump.contains("squ_"), "{dump}");
    assert_eq!(sim.request_count(), 2, "the control API is not counted");

    sim.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let (status, msg) = failure(client.get(format!("{base}/api/system/status")).send().await.unwrap()).await;
    assert_eq!((status, msg.as_str()), (500, "An error has occurred. Please contact your administrator"));
    sim.set_faults(Faults { drop_rate: 1.0, ..Faults::default() });
    let dropped = client.get(format!("{base}/api/system/status")).timeout(Duration::from_secs(10)).send().await;
    assert!(dropped.is_err());
    sim.set_faults(Faults::default());
    assert_eq!(sim.requests().last().map(|r| r.status), Some(0));
    assert_eq!(sim.request_counts()["GET /api/system/status"], 2);
    sim.clear_requests();
    assert_eq!((sim.request_count(), sim.requests().len()), (0, 0));
    running.shutdown().await;
}

#[test]
fn bad_seeds_name_the_field() {
    let cases = [
        ("version: ten", "version"),
        ("users: [{login: a}, {login: a}]", "used twice"),
        ("users: [{login: a, tokens: [{token: ''}]}]", "users[a].tokens[0].token"),
        ("projects: [{key: a, admins: [ghost]}]", "projects[0].admins"),
        ("almSettings: [{key: x, alm: bitbucket, url: ''}]", "almSettings[0].url"),
        ("bindings: [{project: nope, almSetting: x, repository: P}]", "bindings[0].project"),
        ("edition: free", "edition"),
        ("colour: red", "colour"),
    ];
    for (yaml, field) in cases {
        let error = SonarSeed::from_yaml(yaml).unwrap_err().to_string();
        assert!(error.contains(field), "{yaml}: {error}");
    }
    let seed = SonarSeed::from_yaml("{}").unwrap();
    assert_eq!((seed.edition, seed.version.as_str()), (Edition::Enterprise, "2026.3.1.123439"));
}
