//! HTTP-level tests: a served simulator on 127.0.0.1:0 and reqwest.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use super::{Faults, RateLimit, RunningSimulator, Seed, Simulator};

const SEED: &str = r#"
server: {version: "9.4.22"}
features: {captchaThreshold: 3}
users:
  - name: admin
    displayName: The Admin
    password: adminpw
    globalPermission: ADMIN
    tokens: [{name: t, token: admin-token}]
  - name: svc-operator
    password: s3cret
    tokens:
      - {name: operator, token: "BBDC-abc"}
      - {name: reader, token: "BBDC-read", permissions: [PROJECT_READ]}
    repositories: [{slug: dotfiles}]
  - name: jdoe
    password: pw
    tokens: [{name: j, token: jdoe-token}]
projects:
  - key: PAY
    name: Payments
    permissions: {svc-operator: PROJECT_ADMIN, jdoe: PROJECT_READ}
    repositories:
      - slug: payments-api
        webhooks: [{name: ci, url: "https://ci/h", events: ["repo:refs_changed"], secret: "x"}]
        mergeChecks: [{reportKey: com.sonarsource.sonarqube, mustPass: true, minSeverity: LOW}]
      - {slug: ledger, state: INITIALISING, archived: true}
      - {slug: web}
  - key: OPEN
    public: true
    repositories: [{slug: docs}]
"#;

async fn start() -> (RunningSimulator, Client, String) {
    let seed = Seed::from_yaml(SEED).unwrap();
    let running = Simulator::new(seed).unwrap().serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = running.base_url();
    (running, Client::new(), base)
}

async fn body(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

fn exception(value: &Value) -> &str {
    value["errors"][0]["exceptionName"].as_str().unwrap_or("")
}

const REPO: &str = "/rest/api/1.0/projects/PAY/repos/payments-api";
const CHECK: &str =
    "/rest/insights/latest/projects/PAY/repos/payments-api/settings/merge-checks/com.sonarsource.sonarqube";

#[tokio::test]
async fn identity_headers_only_when_authenticated() {
    let (running, client, base) = start().await;
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with('/'));

    let status = client.get(format!("{base}/status")).send().await.unwrap();
    assert_eq!(body(status).await, json!({"state": "RUNNING"}));

    let anonymous = client.get(format!("{base}/rest/api/1.0/application-properties")).send().await.unwrap();
    assert_eq!(anonymous.status(), 200);
    assert_eq!(anonymous.headers()["content-type"], "application/json;charset=UTF-8");
    for name in ["x-ausername", "x-auserid"] {
        assert!(anonymous.headers().get(name).is_none(), "{name} on an anonymous response");
    }
    assert!(anonymous.headers().get("x-arequestid").is_some(), "every /rest response has a request id");
    assert_eq!(
        body(anonymous).await,
        json!({"version": "9.4.22", "buildNumber": "9004022", "buildDate": "1718000000000", "displayName": "Bitbucket"})
    );

    let authed = client
        .get(format!("{base}/rest/api/latest/application-properties"))
        .bearer_auth("BBDC-abc")
        .send()
        .await
        .unwrap();
    assert_eq!(authed.headers()["x-ausername"], "svc-operator");
    assert_eq!(authed.headers()["x-auserid"], "102");
    let request_id = authed.headers()["x-arequestid"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = request_id.trim_start_matches('@').split('x').collect();
    assert!(request_id.starts_with('@') && parts.len() == 4 && parts[3] == "0", "{request_id}");
    assert!(parts[1].parse::<u32>().unwrap() < 1440);

    let basic =
        client.get(format!("{base}/rest/capabilities")).basic_auth("admin", Some("adminpw")).send().await.unwrap();
    assert_eq!(basic.headers()["x-ausername"], "admin");
    let caps = body(basic).await;
    assert_eq!(caps["application"], "stash");
    assert_eq!(caps["capabilities"]["code-insights"], format!("{base}/rest/insights/latest/capabilities"));
    assert_eq!(caps["links"]["self"], format!("{base}/rest/capabilities"));

    // Identity headers also on a permission refusal of an authenticated caller.
    let refused = client.get(format!("{base}{REPO}/webhooks")).bearer_auth("jdoe-token").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["x-ausername"], "jdoe");
    assert_eq!(exception(&body(refused).await), "com.atlassian.bitbucket.AuthorisationException");
    running.shutdown().await;
}

#[tokio::test]
async fn unknown_bearer_token_is_anonymous() {
    let (running, client, base) = start().await;
    let props =
        client.get(format!("{base}/rest/api/1.0/application-properties")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(props.status(), 200);
    assert!(props.headers().get("x-ausername").is_none());
    let users = client.get(format!("{base}/rest/api/1.0/users?limit=1")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(users.status(), 401);
    assert!(users.headers().get("x-ausername").is_none());
    let users = body(users).await;
    // A 9.x server answers the unknown token as it answers a missing permission.
    assert_eq!(exception(&users), "com.atlassian.bitbucket.AuthorisationException");
    assert_eq!(users["errors"][0]["message"], "You are not permitted to access this resource");
    // Public project readable, private not.
    let open = client.get(format!("{base}/rest/api/1.0/projects/open/repos/docs")).bearer_auth("nope").send().await;
    assert_eq!(open.unwrap().status(), 200);
    let private = client.get(format!("{base}{REPO}")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(private.status(), 401);
    // A revoked token becomes anonymous; an added one works.
    running.simulator().revoke_token("jdoe-token");
    let revoked = client.get(format!("{base}/rest/api/1.0/users")).bearer_auth("jdoe-token").send().await.unwrap();
    assert_eq!(revoked.status(), 401);
    running.simulator().add_token("jdoe", "fresh").unwrap();
    let fresh = client.get(format!("{base}/rest/api/1.0/users?limit=1")).bearer_auth("fresh").send().await.unwrap();
    assert_eq!(fresh.status(), 200);
    let page = body(fresh).await;
    assert_eq!(page["size"], 1);
    assert_eq!(page["nextPageStart"], 1);
    assert_eq!(page["values"][0]["type"], "NORMAL");
    let log = running.simulator().requests();
    assert!(log.iter().all(|r| r.auth == "bearer" || r.path == "/status"));
    assert_eq!(log.last().unwrap().user.as_deref(), Some("jdoe"));
}

#[tokio::test]
async fn merge_checks_and_the_html_404_when_switched_off() {
    let (running, client, base) = start().await;
    let sim = running.simulator().clone();
    let get = client.get(format!("{base}{CHECK}")).bearer_auth("BBDC-abc").send().await.unwrap();
    assert_eq!(
        body(get).await,
        json!({"reportKey": "com.sonarsource.sonarqube", "mustPass": true, "minSeverity": "LOW"})
    );

    let put = client
        .put(format!("{base}{CHECK}"))
        .bearer_auth("BBDC-abc")
        .json(&json!({"reportKey": "com.sonarsource.sonarqube", "mustPass": false, "minSeverity": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(body(put).await["mustPass"], false);
    assert_eq!(
        sim.merge_check("pay", "payments-api", "com.sonarsource.sonarqube").unwrap(),
        Some(json!({"reportKey": "com.sonarsource.sonarqube", "mustPass": false, "minSeverity": null}))
    );

    for (bad, field) in [
        (json!({"reportKey": "com.sonarsource.sonarqube", "mustPass": true, "minSeverity": "low"}), "minSeverity"),
        (json!({"reportKey": "other", "mustPass": true}), "reportKey"),
        (json!({"reportKey": "com.sonarsource.sonarqube"}), "mustPass"),
    ] {
        let response = client.put(format!("{base}{CHECK}")).bearer_auth("BBDC-abc").json(&bad).send().await.unwrap();
        assert_eq!(response.status(), 400);
        let error = body(response).await;
        assert_eq!(error["errors"][0]["context"], field);
        assert_eq!(exception(&error), "com.atlassian.bitbucket.validation.ArgumentValidationException");
    }
    let wrong_type = client
        .put(format!("{base}{CHECK}"))
        .bearer_auth("BBDC-abc")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);

    let delete = client.delete(format!("{base}{CHECK}")).bearer_auth("BBDC-abc").send().await.unwrap();
    assert_eq!(delete.status(), 204);
    let again = client.delete(format!("{base}{CHECK}")).bearer_auth("BBDC-abc").send().await.unwrap();
    assert_eq!(again.status(), 204);
    let missing = client.get(format!("{base}{CHECK}")).bearer_auth("BBDC-abc").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(exception(&body(missing).await), "com.atlassian.bitbucket.insights.NoSuchRequiredReportException");
    for path in [
        "/rest/insights/1.0/projects/PAY/repos/nope/settings/merge-checks/k",
        "/rest/insights/1.0/projects/NOPE/repos/nope/settings/merge-checks/k",
    ] {
        let response = client.get(format!("{base}{path}")).bearer_auth("BBDC-abc").send().await.unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(exception(&body(response).await), "com.atlassian.bitbucket.repository.NoSuchRepositoryException");
    }
    // REPO_ADMIN needed; a read-capped token of a project admin is refused.
    let reader = client.get(format!("{base}{CHECK}")).bearer_auth("BBDC-read").send().await.unwrap();
    assert_eq!(reader.status(), 401);

    sim.set_required_reports_supported(false);
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::POST] {
        let response = client
            .request(method.clone(), format!("{base}{CHECK}"))
            .bearer_auth("BBDC-abc")
            .json(&json!({"mustPass": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method}");
        assert_eq!(response.headers()["content-type"], "text/html");
        assert_eq!(response.text().await.unwrap(), "<html><body>Not Found</body></html>");
    }
    // Back on through the control API.
    let features = client
        .put(format!("{base}/__simulator/features"))
        .json(&json!({"requiredReports": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(body(features).await["requiredReports"], true);
    let counts = sim.request_counts();
    assert_eq!(counts["GET /rest/insights/latest/projects/{key}/repos/{slug}/settings/merge-checks/{reportKey}"], 4);
    assert_eq!(counts["GET /rest/insights/1.0/projects/{key}/repos/{slug}/settings/merge-checks/{reportKey}"], 2);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let (running, client, base) = start().await;
    running.simulator().set_rate_limit(Some(RateLimit { capacity: 3, fill_rate: 1 }));
    let url = format!("{base}/rest/api/1.0/projects/PAY");
    for _ in 0..3 {
        assert_eq!(client.get(&url).bearer_auth("BBDC-abc").send().await.unwrap().status(), 200);
    }
    let limited = client.get(&url).bearer_auth("BBDC-abc").send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry));
    assert!(body(limited).await["errors"][0]["message"].is_string());
    // Other users have their own bucket; anonymous callers are not limited.
    assert_eq!(client.get(&url).bearer_auth("admin-token").send().await.unwrap().status(), 200);
    for _ in 0..5 {
        let anonymous = client.get(format!("{base}/rest/api/1.0/application-properties")).send().await.unwrap();
        assert_eq!(anonymous.status(), 200);
    }
    // Through the control API: off again.
    let off = client.put(format!("{base}/__simulator/rate-limit")).json(&json!({"enabled": false})).send().await;
    assert_eq!(off.unwrap().status(), 200);
    assert_eq!(client.get(&url).bearer_auth("BBDC-abc").send().await.unwrap().status(), 200);
    let counts = running.simulator().request_counts_by_status();
    assert_eq!(counts[&("GET /rest/api/1.0/projects/{key}".to_owned(), 429)], 1);
}

#[tokio::test]
async fn dropped_connections_are_transport_errors() {
    let (running, client, base) = start().await;
    let sim = running.simulator();
    // Once on a kept-alive connection, once on a fresh one.
    let warm = client.get(format!("{base}/rest/api/1.0/application-properties")).send().await.unwrap();
    assert!(!warm.bytes().await.unwrap().is_empty());
    sim.set_faults(Faults { latency: Duration::ZERO, error_rate: 0.0, drop_rate: 1.0 });
    for _ in 0..2 {
        let result = client.get(format!("{base}/rest/api/1.0/application-properties")).send().await;
        let error = result.expect_err("a dropped connection must not produce a response");
        assert!(!error.is_status(), "{error:?}");
    }
    sim.clear_requests();
    let result = client.get(format!("{base}/rest/api/1.0/application-properties")).send().await;
    assert!(result.is_err());
    // The control API and /status are never faulted.
    assert_eq!(client.get(format!("{base}/__simulator/state")).send().await.unwrap().status(), 200);
    assert_eq!(client.get(format!("{base}/status")).send().await.unwrap().status(), 200);
    assert_eq!(sim.requests().iter().filter(|r| r.status == 0).count(), 1);

    // Injected 500s, reproducibly, and latency.
    sim.set_fault_seed(42);
    sim.set_faults(Faults { latency: Duration::from_millis(30), error_rate: 1.0, drop_rate: 0.0 });
    let started = std::time::Instant::now();
    let failed = client.get(format!("{base}/rest/api/1.0/application-properties")).send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(failed.status(), 500);
    assert!(body(failed).await["errors"].is_array());
    let reset = client.put(format!("{base}/__simulator/faults")).json(&json!({"latencyMs": 0})).send().await;
    assert_eq!(reset.unwrap().status(), 200);
    assert_eq!(client.get(format!("{base}/rest/api/1.0/application-properties")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn basic_auth_captcha_and_disabled() {
    let (running, client, base) = start().await;
    let sim = running.simulator().clone();
    let url = format!("{base}/rest/api/1.0/users");
    let good = client.get(&url).basic_auth("jdoe", Some("pw")).send().await.unwrap();
    assert_eq!(good.status(), 200);
    let token_as_password = client.get(&url).basic_auth("jdoe", Some("jdoe-token")).send().await.unwrap();
    assert_eq!(token_as_password.status(), 200);
    for _ in 0..3 {
        let bad = client.get(&url).basic_auth("jdoe", Some("wrong")).send().await.unwrap();
        assert_eq!(bad.status(), 401);
        assert!(bad.headers().get("x-ausername").is_none());
        let bad = body(bad).await;
        assert_eq!(exception(&bad), "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException");
        assert_eq!(bad["errors"][0]["message"], "Authentication failed. Please check your credentials and try again.");
    }
    assert_eq!(sim.failed_login_count("jdoe"), 3);
    let locked = client.get(&url).basic_auth("jdoe", Some("pw")).send().await.unwrap();
    assert_eq!(locked.status(), 401);
    let locked = body(locked).await;
    assert_eq!(exception(&locked), "com.atlassian.bitbucket.auth.CaptchaRequiredAuthenticationException");
    assert_eq!(locked["errors"][0]["message"], "CAPTCHA required. Your Bitbucket account has been locked.");
    // Bearer still fine and does not count.
    assert_eq!(client.get(&url).bearer_auth("jdoe-token").send().await.unwrap().status(), 200);
    let reset = client.post(format!("{base}/__simulator/captcha/reset?user=jdoe")).send().await.unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(sim.failed_login_count("jdoe"), 0);
    assert_eq!(client.get(&url).basic_auth("jdoe", Some("pw")).send().await.unwrap().status(), 200);

    sim.set_basic_auth_disabled(true);
    let disabled = client.get(&url).basic_auth("jdoe", Some("pw")).send().await.unwrap();
    assert_eq!(disabled.status(), 403);
    assert_eq!(body(disabled).await, json!({"message": "Basic Authentication has been disabled on this instance."}));
    assert_eq!(sim.failed_login_count("jdoe"), 0);
    // Neither passwords nor tokens reach the log or the state dump.
    let log = serde_json::to_string(&sim.requests()).unwrap();
    let state = client.get(format!("{base}/__simulator/state")).send().await.unwrap().text().await.unwrap();
    for secret in ["pw\"", "wrong", "jdoe-token", "adminpw", "s3cret", "BBDC-abc", "Basic "] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!state.contains(secret), "{secret} in the state");
    }
    assert!(sim.requests().iter().any(|r| r.auth == "basic" && r.user.is_none() && r.status == 401));
}

#[tokio::test]
async fn webhook_lifecycle() {
    let (running, client, base) = start().await;
    let sim = running.simulator().clone();
    let hooks = format!("{base}{REPO}/webhooks");
    let created = client
        .post(&hooks)
        .bearer_auth("BBDC-abc")
        .json(&json!({"name": "op", "url": "https://example.test/hook", "events": ["pr:opened"],
                      "configuration": {"secret": "s3", "createdBy": "operator"}, "active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let created = body(created).await;
    assert_eq!(created["configuration"], json!({"createdBy": "operator"}));
    assert_eq!(created["scopeType"], "repository");
    assert_eq!(created["sslVerificationRequired"], true);
    let id = created["id"].as_i64().unwrap();
    assert!(created["createdDate"].is_i64());

    let read = body(client.get(format!("{hooks}/{id}")).bearer_auth("BBDC-abc").send().await.unwrap()).await;
    assert_eq!(read["configuration"]["secret"], "s3");
    let page = body(client.get(format!("{hooks}?limit=1")).bearer_auth("BBDC-abc").send().await.unwrap()).await;
    assert_eq!(
        (page["size"].clone(), page["isLastPage"].clone(), page["nextPageStart"].clone()),
        (json!(1), json!(false), json!(1))
    );

    let replaced = client
        .put(format!("{hooks}/{id}"))
        .bearer_auth("BBDC-abc")
        .json(&json!({"name": "op2", "url": "http://example.test/h2", "events": ["repo:refs_changed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let replaced = body(replaced).await;
    assert_eq!(replaced["configuration"], json!({}));
    assert_eq!(replaced["name"], "op2");
    assert_eq!(replaced["createdDate"], read["createdDate"]);
    assert_eq!(sim.webhooks("PAY", "payments-api").unwrap().len(), 2);

    let invalid = client
        .post(&hooks)
        .bearer_auth("BBDC-abc")
        .json(&json!({"name": "", "url": "ftp://x", "events": ["nope"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let invalid = body(invalid).await;
    let contexts: Vec<&str> =
        invalid["errors"].as_array().unwrap().iter().map(|e| e["context"].as_str().unwrap()).collect();
    assert_eq!(contexts, ["name", "url", "events"]);
    let not_json = client
        .post(&hooks)
        .bearer_auth("BBDC-abc")
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);

    assert_eq!(client.delete(format!("{hooks}/{id}")).bearer_auth("BBDC-abc").send().await.unwrap().status(), 204);
    assert_eq!(client.delete(format!("{hooks}/{id}")).bearer_auth("BBDC-abc").send().await.unwrap().status(), 404);
    assert_eq!(client.get(format!("{hooks}/abc")).bearer_auth("BBDC-abc").send().await.unwrap().status(), 404);
    // Project readers may not see webhooks, and neither may anonymous callers (same answer on 9.x).
    let reader = client.get(&hooks).bearer_auth("BBDC-read").send().await.unwrap();
    assert_eq!(exception(&body(reader).await), "com.atlassian.bitbucket.AuthorisationException");
    let anonymous = client.get(&hooks).send().await.unwrap();
    assert_eq!(exception(&body(anonymous).await), "com.atlassian.bitbucket.AuthorisationException");
}

#[tokio::test]
async fn projects_repositories_and_paging() {
    let (running, client, base) = start().await;
    let sim = running.simulator().clone();
    let project =
        body(client.get(format!("{base}/rest/api/1.0/projects/pay")).bearer_auth("jdoe-token").send().await.unwrap())
            .await;
    assert_eq!(project["key"], "PAY");
    assert_eq!(project["type"], "NORMAL");
    assert_eq!(project["links"]["self"][0]["href"], format!("{base}/projects/PAY"));
    let missing =
        client.get(format!("{base}/rest/api/1.0/projects/NOPE")).bearer_auth("jdoe-token").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let missing = body(missing).await;
    assert_eq!(missing["errors"][0]["message"], "Project NOPE does not exist.");
    assert_eq!(exception(&missing), "com.atlassian.bitbucket.project.NoSuchProjectException");
    let no_repo = body(
        client
            .get(format!("{base}/rest/api/1.0/projects/PAY/repos/nope"))
            .bearer_auth("jdoe-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(no_repo["errors"][0]["message"], "Repository PAY/nope does not exist.");

    for n in 0..30 {
        sim.create_repository("PAY", &format!("gen-{n:02}")).unwrap();
    }
    assert!(sim.create_repository("PAY", "web").is_err());
    assert!(sim.create_repository("NOPE", "x").is_err());
    let url = format!("{base}/rest/api/1.0/projects/PAY/repos");
    let first = body(client.get(&url).bearer_auth("jdoe-token").send().await.unwrap()).await;
    assert_eq!(
        (first["size"].as_u64(), first["limit"].as_u64(), first["nextPageStart"].as_u64()),
        (Some(25), Some(25), Some(25))
    );
    let rest =
        body(client.get(format!("{url}?start=25&limit=5000")).bearer_auth("jdoe-token").send().await.unwrap()).await;
    assert_eq!(rest["limit"], 1000);
    assert_eq!(rest["size"], 8);
    assert_eq!(rest["isLastPage"], true);
    assert!(rest.get("nextPageStart").is_none());

    // The clone links come in both orders.
    let orders: Vec<String> = first["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["links"]["clone"][0]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(orders.contains(&"ssh".to_owned()) && orders.contains(&"http".to_owned()));
    let repo = body(
        client
            .get(format!("{base}/rest/api/latest/projects/pay/repos/LEDGER"))
            .bearer_auth("jdoe-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(repo["state"], "INITIALISING");
    assert_eq!(repo["archived"], true);
    assert_eq!(repo["project"]["key"], "PAY");
    let mut clone: Vec<(String, String)> = repo["links"]["clone"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap().to_owned(), l["href"].as_str().unwrap().to_owned()))
        .collect();
    clone.sort();
    assert_eq!(
        clone,
        vec![
            ("http".to_owned(), format!("{base}/scm/pay/ledger.git")),
            ("ssh".to_owned(), "ssh://git@127.0.0.1:7999/pay/ledger.git".to_owned())
        ]
    );

    // Personal project and repository.
    let personal = body(
        client
            .get(format!("{base}/rest/api/1.0/projects/~svc-operator/repos/dotfiles"))
            .bearer_auth("BBDC-abc")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(personal["project"]["type"], "PERSONAL");
    assert_eq!(personal["project"]["key"], "~SVC-OPERATOR");
    assert_eq!(personal["project"]["owner"]["name"], "svc-operator");
    assert_eq!(personal["project"]["links"]["self"][0]["href"], format!("{base}/users/svc-operator"));
    assert!(personal["project"].get("public").is_none());
    let stranger = client
        .get(format!("{base}/rest/api/1.0/projects/~SVC-OPERATOR"))
        .bearer_auth("jdoe-token")
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 401);

    // Behind the operator's back, through the control API.
    let created = client.post(format!("{base}/__simulator/projects/PAY/repos/sneaky")).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let deleted = client.delete(format!("{base}/__simulator/projects/PAY/repos/sneaky")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    sim.delete_repository("PAY", "web").unwrap();
    assert_eq!(
        client
            .get(format!("{base}/rest/api/1.0/projects/PAY/repos/web"))
            .bearer_auth("jdoe-token")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    sim.set_repository_archived("PAY", "ledger", false).unwrap();
    assert!(sim.delete_merge_check("PAY", "nope", "k").is_err());
    sim.set_merge_check("PAY", "ledger", json!({"reportKey": "k", "mustPass": true, "minSeverity": "HIGH"})).unwrap();
    assert!(sim.set_merge_check("PAY", "ledger", json!({"reportKey": "k", "mustPass": 1})).is_err());
    let dropped =
        client.delete(format!("{base}/__simulator/projects/PAY/repos/ledger/merge-checks/k")).send().await.unwrap();
    assert_eq!(dropped.status(), 204);
    assert_eq!(sim.merge_check("PAY", "ledger", "k").unwrap(), None);
}

#[tokio::test]
async fn the_global_repository_list_shows_only_what_the_caller_may_read() {
    let (running, client, base) = start().await;
    let url = format!("{base}/rest/api/1.0/repos");
    let slugs = |page: &Value| -> Vec<String> {
        page["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{}/{}", r["project"]["key"].as_str().unwrap(), r["slug"].as_str().unwrap()))
            .collect()
    };
    let jdoe = body(client.get(&url).bearer_auth("jdoe-token").send().await.unwrap()).await;
    assert_eq!(slugs(&jdoe), ["OPEN/docs", "PAY/ledger", "PAY/payments-api", "PAY/web"]);
    let anonymous = body(client.get(&url).send().await.unwrap()).await;
    assert_eq!(slugs(&anonymous), ["OPEN/docs"]);
    let own = body(client.get(&url).bearer_auth("BBDC-abc").send().await.unwrap()).await;
    assert!(slugs(&own).contains(&"~SVC-OPERATOR/dotfiles".to_owned()), "{own}");
    let paged =
        body(client.get(format!("{url}?start=1&limit=2")).bearer_auth("jdoe-token").send().await.unwrap()).await;
    assert_eq!(slugs(&paged), ["PAY/ledger", "PAY/payments-api"]);
    assert_eq!((paged["isLastPage"].as_bool(), paged["nextPageStart"].as_u64()), (Some(false), Some(3)));
    running.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_methods_and_counters() {
    let (running, client, base) = start().await;
    let sim = running.simulator().clone();
    let unknown = client.get(format!("{base}/rest/api/1.0/nothing/here")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(body(unknown).await["errors"][0]["message"].is_string());
    let wrong_version = client.get(format!("{base}/rest/api/2.0/application-properties")).send().await.unwrap();
    assert_eq!(wrong_version.status(), 404);
    let method =
        client.delete(format!("{base}/rest/api/1.0/projects/PAY")).bearer_auth("BBDC-abc").send().await.unwrap();
    assert_eq!(method.status(), 405);
    assert!(method.headers().get("allow").is_some());
    assert!(body(method).await["errors"].is_array());

    let counters = body(client.get(format!("{base}/__simulator/counters")).send().await.unwrap()).await;
    assert_eq!(counters["total"], 3);
    assert_eq!(counters["byEndpoint"]["DELETE /rest/api/1.0/projects/{key}"], 1);
    assert_eq!(counters["byEndpointAndStatus"]["GET <unmatched>"]["404"], 2);
    let log = body(client.get(format!("{base}/__simulator/requests")).send().await.unwrap()).await;
    assert_eq!(log.as_array().unwrap().len(), 3);
    assert_eq!(log[2]["user"], "svc-operator");
    assert_eq!(log[2]["auth"], "bearer");
    let cleared = client.delete(format!("{base}/__simulator/requests")).send().await.unwrap();
    assert_eq!(cleared.status(), 204);
    assert_eq!(sim.request_count(), 0);
    assert!(sim.request_counts().is_empty());

    let _ = client.get(format!("{base}/rest/api/1.0/users?filter=j%20d&limit=3")).bearer_auth("BBDC-abc").send().await;
    let record = &sim.requests()[0];
    assert_eq!(
        (record.method.as_str(), record.path.as_str(), record.query.as_str()),
        ("GET", "/rest/api/1.0/users", "filter=j%20d&limit=3")
    );

    let state = body(client.get(format!("{base}/__simulator/state")).send().await.unwrap()).await;
    assert_eq!(state["server"]["version"], "9.4.22");
    assert!(state["projects"].as_array().unwrap().iter().any(|p| p["key"] == "PAY"));
    let bad = client.put(format!("{base}/__simulator/faults")).json(&json!({"errorRate": 2.0})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn router_alone_and_old_servers() {
    let seed =
        Seed::from_yaml("server: {version: '5.14.0'}\nusers: [{name: a, tokens: [{name: t, token: tok}]}]\n").unwrap();
    let sim = Simulator::new(seed).unwrap();
    let _router = sim.router();
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = Client::new();
    let caps = body(client.get(format!("{}/rest/capabilities", running.base_url())).send().await.unwrap()).await;
    assert!(caps["capabilities"].get("code-insights").is_none());
    assert!(caps["capabilities"]["webhooks"].is_string());
    let addr = running.addr();
    drop(running);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(client.get(format!("http://{addr}/status")).send().await.is_err());
}
