//! What recorded servers answer (bitbucket-api.md §11), version by version: the 401 of a caller
//! who is not authenticated, the headers of every `/rest` response, the fields only some versions
//! report, SSH, `forkable`, the capabilities, a page cap below the asked limit, the 404 envelopes,
//! and the control API that changes tokens and grants.

use reqwest::{Client, Method, header::HeaderMap};
use serde_json::{Value, json};

use super::{Faults, RateLimit, RunningSimulator, Seed, Simulator};

const VERSIONS: [&str; 4] = ["7.17.0", "8.19.1", "9.4.22", "10.2.1"];

const NOT_PERMITTED: &str = "You are not permitted to access this resource";
const AUTHORISATION: &str = "com.atlassian.bitbucket.AuthorisationException";
const AUTHENTICATION_REQUIRED: &str =
    "com.atlassian.plugins.rest.api.security.exception.AuthenticationRequiredException";

fn seed(version: &str, features: &str) -> Seed {
    Seed::from_yaml(&format!(
        r#"
server: {{version: "{version}"}}
features: {{{features}}}
users:
  - {{name: admin, password: adminpw, globalPermission: ADMIN, tokens: [{{name: a, token: admin-token}}]}}
  - {{name: jdoe, password: pw, tokens: [{{name: j, token: jdoe-token}}]}}
projects:
  - key: PAY
    permissions: {{jdoe: PROJECT_READ}}
    repositories:
      - slug: api
        webhooks: [{{name: ci, url: "https://ci/h", events: ["repo:refs_changed"]}}]
      - {{slug: private, forkable: false, archived: true}}
"#
    ))
    .unwrap()
}

async fn serve(seed: Seed) -> (RunningSimulator, Client, String) {
    let running = Simulator::new(seed).unwrap().serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = running.base_url();
    (running, Client::new(), base)
}

async fn get(client: &Client, url: &str, bearer: Option<&str>) -> (u16, HeaderMap, Value) {
    let mut request = client.get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let text = response.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// `@` + 6–7 characters, `x` minute of the day, `x` counter, `x` 0–3.
fn is_request_id(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('@') else { return false };
    let parts: Vec<&str> = rest.split('x').collect();
    parts.len() == 4
        && (6..=7).contains(&parts[0].len())
        && parts[1].parse::<u32>().is_ok_and(|m| m < 1440)
        && parts[2].parse::<u64>().is_ok()
        && ["0", "1", "2", "3"].contains(&parts[3])
}

fn request_id(headers: &HeaderMap) -> String {
    headers.get("x-arequestid").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers.get_all(name).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_401_of_an_unauthenticated_caller_depends_on_the_version() {
    for version in VERSIONS {
        let (running, client, base) = serve(seed(version, "")).await;
        let expected = if version.starts_with("10.") { AUTHENTICATION_REQUIRED } else { AUTHORISATION };
        let envelope = json!({"errors": [{"context": null, "message": NOT_PERMITTED, "exceptionName": expected}]});
        running.simulator().revoke_token("jdoe-token");
        for (what, url, bearer) in [
            ("unknown token", format!("{base}/rest/api/1.0/users?limit=1"), Some("BBDC-unknown")),
            ("revoked token", format!("{base}/rest/api/1.0/projects/PAY/repos/api"), Some("jdoe-token")),
            ("no credential", format!("{base}/rest/api/latest/projects/PAY/repos"), None),
        ] {
            let (status, headers, body) = get(&client, &url, bearer).await;
            assert_eq!((status, &body), (401, &envelope), "{version}, {what}");
            assert_eq!(headers["content-type"], "application/json;charset=UTF-8", "{version}, {what}");
            assert!(headers.get("x-ausername").is_none() && headers.get("x-auserid").is_none(), "{version}, {what}");
            assert!(is_request_id(&request_id(&headers)), "{version}, {what}: {headers:?}");
        }
        // An authenticated caller without the permission: the ≤9.x answer, with its name.
        running.simulator().add_token("jdoe", "jdoe-new").unwrap();
        let url = format!("{base}/rest/api/1.0/projects/PAY/repos/api/webhooks");
        let (status, headers, body) = get(&client, &url, Some("jdoe-new")).await;
        assert_eq!(status, 401, "{version}");
        assert_eq!(body["errors"][0]["exceptionName"], AUTHORISATION, "{version}");
        assert_eq!(headers["x-ausername"], "jdoe", "{version}");
        // Anonymously readable resources still answer an unknown token, as anonymous.
        let url = format!("{base}/rest/api/1.0/application-properties");
        let (status, headers, body) = get(&client, &url, Some("jdoe-token")).await;
        assert_eq!((status, body["version"].as_str()), (200, Some(version)));
        assert!(headers.get("x-ausername").is_none(), "{version}");
        running.shutdown().await;
    }
}

#[tokio::test]
async fn every_rest_response_carries_a_request_id_and_cache_control() {
    let (running, client, base) = serve(seed("9.4.22", "captchaThreshold: 0")).await;
    let sim = running.simulator().clone();
    let mut seen = Vec::new();
    let mut check = |what: &str, headers: &HeaderMap| {
        let id = request_id(headers);
        assert!(is_request_id(&id), "{what}: {headers:?}");
        assert!(!seen.contains(&id), "{what}: the request id {id} was used before");
        seen.push(id);
        assert_eq!(values(headers, "cache-control"), ["no-cache, no-transform"], "{what}");
        assert!(headers.get("pragma").is_none() && headers.get("x-asessionid").is_none(), "{what}");
    };
    let rest = format!("{base}/rest/api/1.0");
    for (what, url, bearer, status) in [
        ("anonymous read", format!("{rest}/application-properties"), None, 200),
        ("bearer read", format!("{rest}/projects/PAY"), Some("admin-token"), 200),
        ("refusal", format!("{rest}/projects/PAY/repos/api/webhooks"), Some("jdoe-token"), 401),
        ("missing repository", format!("{rest}/projects/PAY/repos/nope"), Some("admin-token"), 404),
        ("unknown path", format!("{base}/rest/nothing"), None, 404),
        ("capabilities", format!("{base}/rest/capabilities"), None, 200),
    ] {
        let (got, headers, _) = get(&client, &url, bearer).await;
        assert_eq!(got, status, "{what}");
        check(what, &headers);
    }
    let wrong_method = client.delete(format!("{rest}/projects/PAY")).bearer_auth("admin-token").send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    check("wrong method", wrong_method.headers());
    let not_json = client
        .post(format!("{rest}/projects/PAY/repos/api/webhooks"))
        .bearer_auth("admin-token")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    check("wrong content type", not_json.headers());
    let bad_password = client.get(format!("{rest}/users")).basic_auth("jdoe", Some("wrong")).send().await.unwrap();
    assert_eq!(bad_password.status(), 401);
    check("failed Basic login", bad_password.headers());

    sim.set_required_reports_supported(false);
    let (status, headers, _) = get(
        &client,
        &format!("{base}/rest/insights/latest/projects/PAY/repos/api/settings/merge-checks/k"),
        Some("admin-token"),
    )
    .await;
    assert_eq!(status, 404);
    check("HTML 404", &headers);
    sim.set_rate_limit(Some(RateLimit { capacity: 1, fill_rate: 1 }));
    let _ = get(&client, &format!("{rest}/projects/PAY"), Some("jdoe-token")).await;
    let (status, headers, _) = get(&client, &format!("{rest}/projects/PAY"), Some("jdoe-token")).await;
    assert_eq!(status, 429);
    check("rate limited", &headers);
    sim.set_rate_limit(None);
    sim.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let (status, headers, _) = get(&client, &format!("{rest}/application-properties"), None).await;
    assert_eq!(status, 500);
    check("injected error", &headers);
    sim.set_faults(Faults::default());

    // A Basic login opens a session: the session's headers come on top.
    let basic = client.get(format!("{rest}/projects/PAY")).basic_auth("admin", Some("adminpw")).send().await.unwrap();
    assert_eq!(basic.status(), 200);
    let headers = basic.headers();
    assert!(is_request_id(&request_id(headers)));
    assert_eq!(values(headers, "cache-control"), ["no-cache, no-transform", "private, no-cache"]);
    assert_eq!(headers["pragma"], "no-cache");
    let session = headers["x-asessionid"].to_str().unwrap();
    assert!(session.len() == 7 && session.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{session}");
    assert_eq!(headers["x-ausername"], "admin");

    sim.set_basic_auth_disabled(true);
    let disabled =
        client.get(format!("{rest}/projects/PAY")).basic_auth("admin", Some("adminpw")).send().await.unwrap();
    assert_eq!(disabled.status(), 403);
    check("Basic turned off", disabled.headers());
    running.shutdown().await;
}

#[tokio::test]
async fn fields_only_some_versions_report() {
    for (version, archived, hierarchy, webhook_scope) in [
        ("6.10.0", false, false, false),
        ("7.17.0", false, true, false),
        ("8.19.1", true, true, true),
        ("10.2.1", true, true, true),
    ] {
        let (running, client, base) = serve(seed(version, "")).await;
        let repo = format!("{base}/rest/api/1.0/projects/PAY/repos/private");
        let (_, _, body) = get(&client, &repo, Some("admin-token")).await;
        assert_eq!(body.get("archived").cloned(), archived.then_some(json!(true)), "{version}: {body}");
        assert_eq!(body.get("hierarchyId").is_some(), hierarchy, "{version}: {body}");
        let hooks = format!("{base}/rest/api/1.0/projects/PAY/repos/api/webhooks");
        let (_, _, page) = get(&client, &hooks, Some("admin-token")).await;
        let hook = &page["values"][0];
        assert_eq!(hook["name"], "ci", "{version}");
        assert_eq!(hook.get("scopeType").cloned(), webhook_scope.then_some(json!("repository")), "{version}: {hook}");
        assert_eq!(
            hook.get("sslVerificationRequired").cloned(),
            webhook_scope.then_some(json!(true)),
            "{version}: {hook}"
        );
        running.shutdown().await;
    }
}

#[tokio::test]
async fn ssh_links_forkable_and_the_capabilities() {
    let (running, client, base) = serve(seed("9.4.22", "ssh: false")).await;
    let (_, _, page) = get(&client, &format!("{base}/rest/api/1.0/projects/PAY/repos"), Some("admin-token")).await;
    for repo in page["values"].as_array().unwrap() {
        let slug = repo["slug"].as_str().unwrap();
        assert_eq!(
            repo["links"]["clone"],
            json!([{"href": format!("{base}/scm/pay/{slug}.git"), "name": "http"}]),
            "without SSH only the http link"
        );
        assert_eq!(repo["forkable"], slug != "private", "{slug}");
    }
    running.simulator().set_ssh_enabled(true);
    let (_, _, repo) = get(&client, &format!("{base}/rest/api/1.0/projects/PAY/repos/api"), Some("admin-token")).await;
    let names: Vec<&str> =
        repo["links"]["clone"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"ssh") && names.contains(&"http"), "{names:?}");

    let (_, _, caps) = get(&client, &format!("{base}/rest/capabilities"), None).await;
    let listed = caps["capabilities"].as_object().unwrap();
    assert!((15..=17).contains(&listed.len()), "{} entries", listed.len());
    for name in [
        "webhooks",
        "code-insights",
        "build",
        "deployment",
        "navigation",
        "repository-mirroring",
        "remote-link-aggregation",
        "smart-commit-producer",
        "bitbucket-remote-event-support",
    ] {
        assert!(listed[name].as_str().is_some_and(|href| href.starts_with(&format!("{base}/rest/"))), "{name}");
    }
    assert_eq!(listed.keys().filter(|k| k.starts_with("dev-status-")).count(), 4);
    assert_eq!(listed.keys().filter(|k| k.starts_with("atlassian-remote-event-")).count(), 4);
    running.shutdown().await;
}

#[tokio::test]
async fn a_page_cap_answers_less_than_asked() {
    let (running, client, base) = serve(seed("9.4.22", "pageLimit: 25")).await;
    for n in 0..58 {
        running.simulator().create_repository("PAY", &format!("gen-{n:02}")).unwrap();
    }
    let url = format!("{base}/rest/api/1.0/projects/PAY/repos");
    let (mut start, mut slugs) = (0, Vec::new());
    loop {
        let (_, _, page) = get(&client, &format!("{url}?limit=200&start={start}"), Some("admin-token")).await;
        assert_eq!(page["limit"], 25, "the page says what it used, not what was asked");
        slugs.extend(page["values"].as_array().unwrap().iter().map(|r| r["slug"].as_str().unwrap().to_owned()));
        if page["isLastPage"] == true {
            assert!(page.get("nextPageStart").is_none());
            break;
        }
        start = page["nextPageStart"].as_u64().unwrap();
    }
    assert_eq!(slugs.len(), 60, "every repository once: {slugs:?}");
    let (_, _, users) = get(&client, &format!("{base}/rest/api/1.0/users?limit=1000"), Some("admin-token")).await;
    assert_eq!(users["limit"], 25);

    let raised =
        client.put(format!("{base}/__simulator/features")).json(&json!({"pageLimit": 1000})).send().await.unwrap();
    assert_eq!(raised.json::<Value>().await.unwrap()["pageLimit"], 1000);
    let (_, _, page) = get(&client, &format!("{url}?limit=200"), Some("admin-token")).await;
    assert_eq!((page["limit"].as_u64(), page["size"].as_u64()), (Some(200), Some(60)));
    let zero = client.put(format!("{base}/__simulator/features")).json(&json!({"pageLimit": 0})).send().await;
    assert_eq!(zero.unwrap().status(), 400);
    assert!(Seed::from_yaml("features: {pageLimit: 0}\n").unwrap_err().to_string().contains("features.pageLimit"));
    running.shutdown().await;
}

#[tokio::test]
async fn missing_projects_and_repositories_answer_the_recorded_envelopes() {
    let (running, client, base) = serve(seed("9.4.22", "")).await;
    let rest = format!("{base}/rest/api/1.0");
    let project = |key: &str| {
        json!({"errors": [{"context": null, "message": format!("Project {key} does not exist."),
            "exceptionName": "com.atlassian.bitbucket.project.NoSuchProjectException"}]})
    };
    let repository = |key: &str, slug: &str| {
        json!({"errors": [{"context": null, "message": format!("Repository {key}/{slug} does not exist."),
            "exceptionName": "com.atlassian.bitbucket.repository.NoSuchRepositoryException"}]})
    };
    for (path, expected) in [
        ("/projects/Nope", project("Nope")),
        ("/projects/Nope/repos", project("Nope")),
        ("/projects/Nope/repos/api", project("Nope")),
        ("/projects/Nope/repos/api/webhooks", project("Nope")),
        ("/projects/Nope/repos/api/webhooks/1", project("Nope")),
        ("/projects/pay/repos/Gone", repository("pay", "Gone")),
        ("/projects/PAY/repos/gone/webhooks", repository("PAY", "gone")),
        ("/projects/PAY/repos/gone/webhooks/1", repository("PAY", "gone")),
    ] {
        let (status, _, body) = get(&client, &format!("{rest}{path}"), Some("admin-token")).await;
        assert_eq!((status, body), (404, expected), "{path}");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn the_control_api_adds_and_revokes_tokens_and_changes_grants() {
    let (running, client, base) = serve(seed("9.4.22", "")).await;
    let control = |method: Method, path: &str, body: Value| {
        client.request(method, format!("{base}/__simulator{path}")).json(&body).send()
    };
    let hooks = format!("{base}/rest/api/1.0/projects/PAY/repos/api/webhooks");
    let status = |response: reqwest::Response| response.status().as_u16();

    let added = control(Method::POST, "/tokens", json!({"user": "jdoe", "token": "jdoe-extra"})).await.unwrap();
    assert_eq!(status(added), 204);
    let again = control(Method::POST, "/tokens", json!({"user": "jdoe", "token": "jdoe-extra"})).await.unwrap();
    assert_eq!(status(again), 409);
    let ghost = control(Method::POST, "/tokens", json!({"user": "ghost", "token": "g"})).await.unwrap();
    assert_eq!(status(ghost), 404);
    assert_eq!(get(&client, &hooks, Some("jdoe-extra")).await.2["errors"][0]["exceptionName"], AUTHORISATION);

    // A repository grant gives what the project grant does not; dropping it takes it back.
    let path = "/projects/PAY/repos/api/permissions/jdoe";
    let granted = control(Method::PUT, path, json!({"permission": "REPO_ADMIN"})).await.unwrap();
    assert_eq!(status(granted), 204);
    assert_eq!(get(&client, &hooks, Some("jdoe-extra")).await.0, 200);
    let wrong_kind = control(Method::PUT, path, json!({"permission": "PROJECT_ADMIN"})).await.unwrap();
    assert_eq!(status(wrong_kind), 400);
    let dropped = control(Method::PUT, path, json!({"permission": null})).await.unwrap();
    assert_eq!(status(dropped), 204);
    let (code, headers, _) = get(&client, &hooks, Some("jdoe-extra")).await;
    assert_eq!((code, headers["x-ausername"].to_str().unwrap()), (401, "jdoe"));

    // Dropping the project grant leaves jdoe unable to read PAY at all.
    let repo = format!("{base}/rest/api/1.0/projects/PAY/repos/api");
    assert_eq!(get(&client, &repo, Some("jdoe-extra")).await.0, 200);
    let dropped = control(Method::PUT, "/projects/pay/permissions/jdoe", json!({"permission": null})).await.unwrap();
    assert_eq!(status(dropped), 204);
    assert_eq!(get(&client, &repo, Some("jdoe-extra")).await.0, 401);
    let missing = control(Method::PUT, "/projects/NOPE/permissions/jdoe", json!({"permission": "PROJECT_READ"}));
    assert_eq!(status(missing.await.unwrap()), 404);
    let regranted = control(Method::PUT, "/projects/PAY/permissions/jdoe", json!({"permission": "PROJECT_READ"}));
    assert_eq!(status(regranted.await.unwrap()), 204);
    assert_eq!(get(&client, &repo, Some("jdoe-extra")).await.0, 200);

    let revoked = control(Method::POST, "/tokens/revoke", json!({"token": "jdoe-extra"})).await.unwrap();
    assert_eq!(status(revoked), 204);
    let (code, headers, _) = get(&client, &repo, Some("jdoe-extra")).await;
    assert!(code == 401 && headers.get("x-ausername").is_none(), "a revoked token is served as anonymous");
    let unknown = control(Method::POST, "/tokens/revoke", json!({"token": "jdoe-extra"})).await.unwrap();
    assert_eq!(status(unknown), 404);
    // Token values never reach the log or the state.
    let state = client.get(format!("{base}/__simulator/state")).send().await.unwrap().text().await.unwrap();
    let log = serde_json::to_string(&running.simulator().requests()).unwrap();
    assert!(!state.contains("jdoe-extra") && !log.contains("jdoe-extra"));
    running.shutdown().await;
}
