//! The client against the simulator, endpoint by endpoint and error class by error class, as the
//! wire contract (bitbucket-api.md) describes them. What depends on the server's version (the two
//! 401 flavours, optional fields, request ids) runs against a 7.x, an 8.x, a 9.x and a 10.x
//! simulator; the client's own retry and rate-limit behaviour against the default 9.x one.

use std::{collections::BTreeMap, time::Duration};

use bitbucket_operator::{
    bitbucket::{
        Client, ClientConfig, Credentials, Error, ErrorClass, MergeCheck, RateLimit, RetryPolicy, Secret, Severity,
        WebhookRequest,
    },
    simulator::{Faults, RateLimit as ServerRateLimit, RunningSimulator, Seed, Simulator, seed::Permission},
};

use crate::support::fixtures::{self, OPERATOR_PASSWORD, OPERATOR_TOKEN, READER_TOKEN};

/// Repositories in the big project for the paging tests: three pages of 1000.
const MANY: usize = 2345;
/// Repositories in it for the test of pages of 25: the last page is short.
const SOME: usize = 260;
/// Repositories in it for every other test (a small seed starts fast).
const FEW: usize = 3;

/// The versions the suite runs against, with the build numbers they report.
const VERSIONS: [(&str, &str); 4] =
    [("7.17.0", "7017000"), ("8.19.1", "8019001"), ("9.4.22", "9004022"), ("10.2.1", "10002001")];

/// The shared seed as Bitbucket `version`, with `features` (a YAML flow mapping's entries), BIG of
/// `big` repositories, a personal repository of svc-operator, and an archived and an initialising
/// repository beside payments-api in PAY.
fn seed(version: &str, features: &str, big: usize) -> Seed {
    let fixture = fixtures::many(big);
    let server = "server: {version: \"9.4.22\", displayName: Bitbucket}\n";
    assert_eq!(fixture.matches(server).count(), 1, "the fixture names its server once");
    let yaml = fixture.replacen(
        server,
        &format!("server: {{version: \"{version}\", displayName: Bitbucket}}\nfeatures: {{{features}}}\n"),
        1,
    );
    let yaml = fixtures::insert_after(&yaml, "  - name: svc-operator\n", "    repositories: [{slug: dotfiles}]\n");
    let yaml = fixtures::insert_after(
        &yaml,
        "      - slug: payments-api\n",
        "      - slug: old-ledger\n        archived: true\n      - slug: fresh\n        state: INITIALISING\n",
    );
    Seed::from_yaml(&yaml).expect("the seed parses")
}

async fn serve(seed: Seed) -> RunningSimulator {
    Simulator::new(seed).expect("seed").serve("127.0.0.1:0".parse().expect("addr")).await.expect("serve")
}

/// The default: Bitbucket 9.4.22.
async fn simulator() -> RunningSimulator {
    simulator_as("9.4.22").await
}

async fn simulator_as(version: &str) -> RunningSimulator {
    serve(seed(version, "", FEW)).await
}

fn config(sim: &RunningSimulator, credentials: Credentials) -> ClientConfig {
    let mut config = ClientConfig::new(sim.base_url(), credentials);
    config.rate_limit = RateLimit { requests_per_second: 1000, burst: 1000 };
    config.retry =
        RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(20) };
    config
}

fn token(sim: &RunningSimulator, token: &str) -> Client {
    Client::new(config(sim, Credentials::Token(Secret::new(token)))).expect("client")
}

fn basic(sim: &RunningSimulator, user: &str, password: &str) -> Client {
    Client::new(config(sim, Credentials::Basic { username: user.into(), password: Secret::new(password) }))
        .expect("client")
}

async fn admin(sim: &RunningSimulator) -> Client {
    let client = token(sim, OPERATOR_TOKEN);
    client.verify_connection().await.expect("the admin token works");
    client
}

#[tokio::test]
async fn connection_check_reports_version_identity_and_capabilities() {
    for (version, build) in VERSIONS {
        let sim = simulator_as(version).await;
        let identity = token(&sim, OPERATOR_TOKEN).verify_connection().await.expect("connects");
        assert_eq!(identity.username.as_deref(), Some("svc-operator"));
        assert_eq!(identity.version_text, version);
        assert_eq!(identity.version.to_string(), version);
        assert_eq!(identity.build_number.as_deref(), Some(build));
        assert!(identity.capabilities.webhooks && identity.capabilities.code_insights, "{version}");

        let basic_identity =
            basic(&sim, "svc-operator", OPERATOR_PASSWORD).verify_connection().await.expect("basic works");
        assert_eq!(basic_identity.username.as_deref(), Some("svc-operator"));

        // /status goes without credentials; everything under /rest with them.
        for record in sim.simulator().requests() {
            let expected = if record.path == "/status" { "none" } else { "bearer" };
            if record.auth != "basic" {
                assert_eq!(record.auth, expected, "{version}: {record:?}");
            }
        }
    }
}

#[tokio::test]
async fn an_unknown_token_is_served_as_anonymous_and_then_never_sent_again() {
    for (version, _) in VERSIONS {
        let sim = simulator_as(version).await;
        let client = token(&sim, "BBDC-revoked");
        let error = client.verify_connection().await.expect_err("an unknown token must not pass");
        assert_eq!(error.class(), ErrorClass::Credentials, "{version}: {error}");
        assert!(error.to_string().contains("anonymous"), "{version}: {error}");
        let sent = sim.simulator().request_count();
        let again = client.list_repositories("PAY").await.expect_err("blocked");
        assert_eq!(again.class(), ErrorClass::Credentials);
        assert_eq!(sim.simulator().request_count(), sent, "{version}: a rejected credential must not be sent again");
    }
}

/// What the client reads to tell a user from anonymous, and what an operator quotes to Atlassian
/// support: every `/rest` answer, anonymous and refused ones included, has a request id; only
/// those answered for a user name one.
#[tokio::test]
async fn request_ids_on_every_answer_and_identity_headers_only_for_users() {
    let http = reqwest::Client::new();
    for (version, _) in VERSIONS {
        let sim = simulator_as(version).await;
        let base = sim.base_url();
        for (what, path, bearer, status, user) in [
            ("anonymous", "/rest/api/1.0/application-properties", None, 200, None),
            ("unknown token", "/rest/api/1.0/application-properties", Some("BBDC-unknown"), 200, None),
            ("anonymous refusal", "/rest/api/1.0/users", None, 401, None),
            (
                "missing repository",
                "/rest/api/1.0/projects/PAY/repos/nope",
                Some(OPERATOR_TOKEN),
                404,
                Some("svc-operator"),
            ),
            (
                "missing permission",
                "/rest/api/1.0/projects/PAY/repos/payments-api/webhooks",
                Some(READER_TOKEN),
                401,
                Some("reader"),
            ),
        ] {
            let mut request = http.get(format!("{base}{path}"));
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("answer");
            assert_eq!(response.status().as_u16(), status, "{version}, {what}");
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let id = header("x-arequestid").unwrap_or_default();
            assert!(id.starts_with('@') && id.split('x').count() == 4, "{version}, {what}: request id {id:?}");
            assert_eq!(header("x-ausername").as_deref(), user, "{version}, {what}");
            assert_eq!(header("x-auserid").is_some(), user.is_some(), "{version}, {what}");
        }
    }
}

#[tokio::test]
async fn a_bad_password_is_tried_once_and_stays_under_the_captcha_threshold() {
    let sim = simulator().await;
    let client = basic(&sim, "svc-operator", "wrong");
    for _ in 0..10 {
        let error = client.verify_connection().await.expect_err("wrong password");
        assert!(matches!(error, Error::BadCredentials { .. }), "{error}");
    }
    assert_eq!(sim.simulator().failed_login_count("svc-operator"), 1, "one failed login, not ten");
    basic(&sim, "svc-operator", OPERATOR_PASSWORD).verify_connection().await.expect("the right password still works");
}

#[tokio::test]
async fn captcha_lock_out_is_recognised() {
    let sim = simulator().await;
    // Five separate clients (as five restarts with a bad Secret would be) lock the account.
    for _ in 0..5 {
        let _ = basic(&sim, "reader", "wrong").verify_connection().await;
    }
    let error = basic(&sim, "reader", "reader pass").verify_connection().await.expect_err("locked");
    assert_eq!(error, Error::CaptchaRequired);
    assert_eq!(error.class(), ErrorClass::Credentials);
    sim.simulator().reset_captcha("reader");
    basic(&sim, "reader", "reader pass").verify_connection().await.expect("works after an admin clears it");
}

#[tokio::test]
async fn basic_auth_turned_off_is_reported_as_such() {
    let sim = simulator().await;
    sim.simulator().set_basic_auth_disabled(true);
    let error = basic(&sim, "svc-operator", OPERATOR_PASSWORD).verify_connection().await.expect_err("basic is off");
    assert_eq!(error, Error::BasicAuthDisabled);
}

#[tokio::test]
async fn a_401_after_the_identity_is_proven_is_a_missing_permission() {
    for (version, _) in VERSIONS {
        let sim = simulator_as(version).await;
        let reader = token(&sim, READER_TOKEN);
        reader.verify_connection().await.expect("the reader token works");
        let repos = reader.list_repositories("PAY").await.expect("a reader may list repositories");
        assert_eq!(repos.len(), 3);
        let error = reader.list_webhooks("PAY", "payments-api").await.expect_err("webhooks need REPO_ADMIN");
        assert!(matches!(error, Error::PermissionDenied { .. }), "{version}: {error}");
        assert!(error.to_string().contains("REPO_ADMIN"), "the message says what to grant: {error}");
        // A permission error is about that object only: the client keeps working.
        reader.get_repository("PAY", "payments-api").await.expect("still works");
    }
}

#[tokio::test]
async fn a_401_before_the_identity_is_proven_counts_as_a_bad_credential() {
    for (version, _) in VERSIONS {
        let sim = simulator_as(version).await;
        let reader = token(&sim, READER_TOKEN);
        let error = reader.list_webhooks("PAY", "payments-api").await.expect_err("unproven 401");
        assert_eq!(error.class(), ErrorClass::Credentials, "{version}: {error}");
    }
}

/// Up to 9.x a revoked token gets the very 401 a missing permission gets; the client asks once
/// more who it is and, told nobody, stops using the token. 10.x says so in the 401 itself.
#[tokio::test]
async fn a_token_revoked_after_the_connection_check_is_rejected_at_its_next_refusal() {
    for (version, _) in VERSIONS {
        let sim = simulator_as(version).await;
        let client = admin(&sim).await;
        client.list_webhooks("PAY", "payments-api").await.expect("allowed while the token is valid");
        sim.simulator().revoke_token(OPERATOR_TOKEN);
        sim.simulator().clear_requests();
        let error = client.list_webhooks("PAY", "payments-api").await.expect_err("revoked");
        assert!(matches!(error, Error::BadCredentials { .. }), "{version}: {error}");
        assert!(error.to_string().contains("update the Secret"), "{version}: {error}");
        let rechecks =
            sim.simulator().requests().iter().filter(|r| r.path.ends_with("/application-properties")).count();
        let expected = if version.starts_with("10.") { 0 } else { 1 };
        assert_eq!(rechecks, expected, "{version}: the identity is asked about once where the 401 is ambiguous");
        let sent = sim.simulator().request_count();
        let again = client.get_repository("PAY", "payments-api").await.expect_err("still rejected");
        assert_eq!(again.class(), ErrorClass::Credentials, "{version}");
        assert_eq!(sim.simulator().request_count(), sent, "{version}: the revoked token was sent again");
    }
}

#[tokio::test]
async fn a_permission_dropped_after_the_connection_check_is_a_missing_permission() {
    for (version, _) in VERSIONS {
        let sim = simulator_as(version).await;
        let client = admin(&sim).await;
        client.list_webhooks("PAY", "payments-api").await.expect("allowed while it administers PAY");
        sim.simulator().set_project_permission("PAY", "svc-operator", Some(Permission::ProjectRead)).expect("grant");
        sim.simulator().clear_requests();
        let error = client.list_webhooks("PAY", "payments-api").await.expect_err("no longer REPO_ADMIN");
        assert!(matches!(error, Error::PermissionDenied { .. }), "{version}: {error}");
        assert_eq!(sim.simulator().request_count(), 1, "{version}: a refusal that names the user needs no re-check");
        client.get_repository("PAY", "payments-api").await.expect("the token still reads");
    }
}

/// A 9.x server whose refusals do not name the user (the simulator's, with the identity headers
/// taken off every 401): only asking again tells a missing permission from a revoked token.
#[tokio::test]
async fn refusals_that_do_not_name_the_user_are_told_apart_by_asking_again() {
    let simulator = Simulator::new(seed("9.4.22", "", FEW)).expect("seed");
    let router =
        simulator.router().layer(axum::middleware::map_response(|mut response: axum::response::Response| async move {
            if response.status() == axum::http::StatusCode::UNAUTHORIZED {
                response.headers_mut().remove("x-ausername");
                response.headers_mut().remove("x-auserid");
            }
            response
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = |token: &str| {
        let mut config = ClientConfig::new(base.clone(), Credentials::Token(Secret::new(token)));
        config.rate_limit = RateLimit { requests_per_second: 1000, burst: 1000 };
        Client::new(config).expect("client")
    };
    let rechecks = || simulator.requests().iter().filter(|r| r.path.ends_with("/application-properties")).count();

    let reader = client(READER_TOKEN);
    reader.verify_connection().await.expect("the reader token works");
    simulator.clear_requests();
    let error = reader.list_webhooks("PAY", "payments-api").await.expect_err("webhooks need REPO_ADMIN");
    assert!(matches!(error, Error::PermissionDenied { .. }), "{error}");
    assert_eq!(rechecks(), 1, "one re-check, which found the user");

    // Concurrent refusals wait for one re-check and share its answer where they can.
    simulator.clear_requests();
    let refusals = (0..8).map(|_| reader.list_webhooks("PAY", "payments-api"));
    for result in futures::future::join_all(refusals).await {
        assert!(matches!(result, Err(Error::PermissionDenied { .. })), "{result:?}");
    }
    println!("8 concurrent refusals of a recognised token: {} identity re-check(s)", rechecks());
    reader.get_repository("PAY", "payments-api").await.expect("a permission problem leaves the client working");

    let operator = client(OPERATOR_TOKEN);
    operator.verify_connection().await.expect("the operator token works");
    simulator.revoke_token(OPERATOR_TOKEN);
    let error = operator.list_webhooks("PAY", "payments-api").await.expect_err("revoked");
    assert!(matches!(&error, Error::BadCredentials { reason } if reason.contains("revoked")), "{error}");
    server.abort();
}

#[tokio::test]
async fn projects_and_repositories() {
    for (version, _) in VERSIONS {
        projects_and_repositories_on(version).await;
    }
}

async fn projects_and_repositories_on(version: &str) {
    let sim = simulator_as(version).await;
    let client = admin(&sim).await;
    let project = client.get_project("PAY").await.expect("project");
    assert_eq!((project.key.as_str(), project.name.as_str()), ("PAY", "Payments"));
    assert_eq!(client.get_project("pay").await.expect("keys are case-insensitive").key, "PAY");
    assert_eq!(
        client.get_project("NOPE").await.expect_err("missing"),
        Error::ProjectNotFound { project: "NOPE".into() }
    );

    let personal = client.get_project("~svc-operator").await.expect("personal project");
    assert_eq!(personal.project_type.as_deref(), Some("PERSONAL"));
    let dotfiles = client.list_repositories("~svc-operator").await.expect("personal repos");
    assert_eq!(dotfiles.iter().map(|r| r.slug.as_str()).collect::<Vec<_>>(), ["dotfiles"]);

    let repo = client.get_repository("PAY", "payments-api").await.expect("repo");
    assert_eq!(repo.project_key, "PAY");
    assert!(repo.clone.http.as_deref().is_some_and(|h| h.ends_with("/scm/pay/payments-api.git")), "{repo:?}");
    assert!(repo.clone.ssh.as_deref().is_some_and(|s| s.starts_with("ssh://")), "{repo:?}");
    // `archived` exists from 8.0; older servers report nothing, read as not archived.
    let archived = client.get_repository("PAY", "old-ledger").await.expect("archived repo");
    assert_eq!(archived.archived, !version.starts_with("7."), "{version}");
    assert_eq!(client.get_repository("PAY", "fresh").await.expect("repo").state.as_str(), "INITIALISING");
    assert_eq!(
        client.get_repository("PAY", "nope").await.expect_err("missing"),
        Error::RepositoryNotFound { project: "PAY".into(), slug: "nope".into() }
    );
    assert_eq!(
        client.get_repository("NOPE", "x").await.expect_err("missing project"),
        Error::ProjectNotFound { project: "NOPE".into() }
    );
}

#[tokio::test]
async fn paging_follows_next_page_start_across_several_pages() {
    for (version, _) in VERSIONS {
        let sim = serve(seed(version, "", MANY)).await;
        let client = admin(&sim).await;
        sim.simulator().clear_requests();
        let repos = client.list_repositories("BIG").await.expect("all pages");
        assert_eq!(repos.len(), MANY);
        let mut slugs: Vec<&str> = repos.iter().map(|r| r.slug.as_str()).collect();
        slugs.dedup();
        assert_eq!(slugs.len(), MANY, "no repository twice");
        let pages: Vec<_> =
            sim.simulator().requests().into_iter().filter(|r| r.path.ends_with("/projects/BIG/repos")).collect();
        assert_eq!(pages.len(), MANY.div_ceil(1000), "{version}: one request per page of 1000: {pages:?}");
        assert!(pages.iter().all(|p| p.query.contains("limit=1000")), "{pages:?}");
    }
}

/// A server may answer `limit: 25` to a request for 1000: the client follows the pages it gets.
#[tokio::test]
async fn pages_smaller_than_asked_are_followed_to_the_end() {
    for (version, _) in VERSIONS {
        let sim = serve(seed(version, "pageLimit: 25", SOME)).await;
        let client = admin(&sim).await;
        sim.simulator().clear_requests();
        let repos = client.list_repositories("BIG").await.expect("all pages");
        let mut slugs: Vec<String> = repos.into_iter().map(|r| r.slug).collect();
        let listed = slugs.len();
        slugs.sort();
        slugs.dedup();
        assert_eq!((listed, slugs.len()), (SOME, SOME), "{version}: every repository once");
        let pages = sim.simulator().requests().iter().filter(|r| r.path.ends_with("/projects/BIG/repos")).count();
        assert_eq!(pages, SOME.div_ceil(25), "{version}: one request per page of 25");
    }
}

/// Fields older or differently configured servers leave out parse as absent.
#[tokio::test]
async fn optional_fields_parse_when_absent() {
    for (version, _) in VERSIONS {
        let sim = serve(seed(version, "ssh: false", FEW)).await;
        let client = admin(&sim).await;
        let repo = client.get_repository("PAY", "payments-api").await.expect("repo");
        assert!(repo.clone.http.is_some() && repo.clone.ssh.is_none(), "{version}: {repo:?}");
        let id = client.create_webhook("PAY", "payments-api", &hook("ci", None)).await.expect("create");
        let created = client.get_webhook("PAY", "payments-api", id).await.expect("read");
        let reported = if version.starts_with("7.") { None } else { Some(true) };
        assert_eq!(created.ssl_verification_required, reported, "{version}");
        assert_eq!(client.list_webhooks("PAY", "payments-api").await.expect("list"), vec![created]);
    }
}

fn hook(name: &str, secret: Option<&str>) -> WebhookRequest {
    WebhookRequest {
        name: name.into(),
        url: "https://ci.example.com/hook".into(),
        events: vec!["pr:opened".into(), "repo:refs_changed".into()],
        active: true,
        ssl_verification_required: true,
        secret: secret.map(Secret::new),
        configuration: BTreeMap::from([("managedBy".into(), "bitbucket-operator".into())]),
    }
}

#[tokio::test]
async fn webhooks_create_read_replace_and_delete() {
    for (version, _) in VERSIONS {
        webhooks_on(version).await;
    }
}

async fn webhooks_on(version: &str) {
    let sim = simulator_as(version).await;
    let client = admin(&sim).await;
    let id = client.create_webhook("PAY", "payments-api", &hook("ci", Some("s3cret"))).await.expect("create");
    let created = client.get_webhook("PAY", "payments-api", id).await.expect("read");
    assert_eq!(created.name, "ci");
    assert_eq!(created.secret.as_ref().map(Secret::expose), Some("s3cret"), "the secret is stored");
    assert_eq!(created.configuration.get("managedBy").map(String::as_str), Some("bitbucket-operator"));
    assert_eq!(created.events, ["pr:opened", "repo:refs_changed"]);

    let listed = client.list_webhooks("PAY", "payments-api").await.expect("list");
    assert_eq!(listed, vec![created.clone()]);

    // PUT is a full replacement: leaving out the secret clears it.
    let mut change = hook("ci", None);
    change.active = false;
    let updated = client.update_webhook("PAY", "payments-api", created.id, &change).await.expect("update");
    assert!(!updated.active);
    assert_eq!(updated.secret, None);

    let invalid = WebhookRequest { url: "not a url".into(), ..hook("bad", None) };
    let error = client.create_webhook("PAY", "payments-api", &invalid).await.expect_err("invalid url");
    assert!(matches!(&error, Error::InvalidRequest { field: Some(f) } if f == "url"), "{error}");

    client.delete_webhook("PAY", "payments-api", created.id).await.expect("delete");
    client.delete_webhook("PAY", "payments-api", created.id).await.expect("deleting what is gone is fine");
    assert!(client.list_webhooks("PAY", "payments-api").await.expect("list").is_empty());
    assert!(matches!(client.get_webhook("PAY", "payments-api", created.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(client.list_webhooks("PAY", "nope").await, Err(Error::RepositoryNotFound { .. })));
}

#[tokio::test]
async fn required_report_merge_checks() {
    for (version, _) in VERSIONS {
        required_report_merge_checks_on(version).await;
    }
}

async fn required_report_merge_checks_on(version: &str) {
    let sim = simulator_as(version).await;
    let client = admin(&sim).await;
    let key = "com.sonarsource.sonarqube";
    assert_eq!(client.get_merge_check("PAY", "payments-api", key).await.expect("read"), None);
    let check = MergeCheck { report_key: key.into(), must_pass: true, min_severity: Some(Severity::Low) };
    assert_eq!(client.put_merge_check("PAY", "payments-api", &check).await.expect("put"), check);
    assert_eq!(client.get_merge_check("PAY", "payments-api", key).await.expect("read"), Some(check.clone()));
    let relaxed = MergeCheck { min_severity: None, must_pass: false, ..check.clone() };
    assert_eq!(client.put_merge_check("PAY", "payments-api", &relaxed).await.expect("replace"), relaxed);
    client.delete_merge_check("PAY", "payments-api", key).await.expect("delete");
    client.delete_merge_check("PAY", "payments-api", key).await.expect("delete again");
    assert_eq!(client.get_merge_check("PAY", "payments-api", key).await.expect("read"), None);
    assert!(matches!(client.get_merge_check("PAY", "nope", key).await, Err(Error::RepositoryNotFound { .. })));
    assert!(matches!(client.put_merge_check("PAY", "nope", &check).await, Err(Error::RepositoryNotFound { .. })));

    let monorepo_key = "com.sonarsource.sonarqube_shop:checkout";
    let monorepo = MergeCheck { report_key: monorepo_key.into(), must_pass: true, min_severity: Some(Severity::High) };
    client.put_merge_check("PAY", "payments-api", &monorepo).await.expect("a key with a colon");
    assert_eq!(
        sim.simulator()
            .merge_check("PAY", "payments-api", monorepo_key)
            .expect("state")
            .map(|c| c["minSeverity"].clone()),
        Some("HIGH".into())
    );
}

#[tokio::test]
async fn a_server_without_the_merge_check_api_is_unsupported_not_empty() {
    let sim = simulator().await;
    let client = admin(&sim).await;
    sim.simulator().set_required_reports_supported(false);
    let check = MergeCheck {
        report_key: "com.sonarsource.sonarqube".into(),
        must_pass: true,
        min_severity: Some(Severity::Low),
    };
    for error in [
        client.get_merge_check("PAY", "payments-api", "com.sonarsource.sonarqube").await.expect_err("unsupported"),
        client.put_merge_check("PAY", "payments-api", &check).await.expect_err("unsupported"),
        client.delete_merge_check("PAY", "payments-api", "com.sonarsource.sonarqube").await.expect_err("unsupported"),
    ] {
        assert_eq!(error.class(), ErrorClass::Unsupported, "{error}");
        assert!(error.to_string().contains("Code Insights > Add required report"), "names the manual steps: {error}");
    }
}

#[tokio::test]
async fn a_429_pauses_the_client_for_retry_after_and_then_succeeds() {
    let sim = simulator().await;
    let client = admin(&sim).await;
    sim.simulator().set_rate_limit(Some(ServerRateLimit { capacity: 3, fill_rate: 1 }));
    sim.simulator().clear_requests();
    let started = std::time::Instant::now();
    for _ in 0..6 {
        client.get_repository("PAY", "payments-api").await.expect("succeeds after waiting");
    }
    let limited = sim.simulator().requests().iter().filter(|r| r.status == 429).count();
    assert!(limited >= 1, "the server's bucket of 3 must have answered 429");
    assert!(started.elapsed() >= Duration::from_secs(1), "the client waited for Retry-After");
}

#[tokio::test]
async fn the_client_never_exceeds_its_own_rate() {
    let sim = simulator().await;
    let mut slow = config(&sim, Credentials::Token(Secret::new(OPERATOR_TOKEN)));
    slow.rate_limit = RateLimit { requests_per_second: 20, burst: 1 };
    let client = Client::new(slow).expect("client");
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let client = client.clone();
        tasks.spawn(async move { client.get_repository("PAY", "payments-api").await });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task").expect("ok");
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1900), "40 requests at 20/s take about 2 s, took {elapsed:?}");
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_and_not_for_creates() {
    let sim = simulator().await;
    let client = admin(&sim).await;
    sim.simulator().set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    sim.simulator().clear_requests();
    let error = client.get_repository("PAY", "payments-api").await.expect_err("always 500");
    assert_eq!(error, Error::Server { status: 500 });
    assert!(error.is_transient());
    assert_eq!(sim.simulator().request_count(), 3, "a read is tried max_attempts times");

    sim.simulator().clear_requests();
    let error = client.create_webhook("PAY", "payments-api", &hook("ci", None)).await.expect_err("500");
    assert!(error.is_transient());
    assert_eq!(sim.simulator().request_count(), 1, "a create is never repeated blindly");
}

#[tokio::test]
async fn dropped_connections_are_transport_errors() {
    let sim = simulator().await;
    let client = admin(&sim).await;
    sim.simulator().set_faults(Faults { drop_rate: 1.0, ..Faults::default() });
    let error = client.get_repository("PAY", "payments-api").await.expect_err("dropped");
    assert!(matches!(error, Error::Transport { .. }), "{error}");
    assert!(error.is_transient());
    sim.simulator().set_faults(Faults::default());
    client.get_repository("PAY", "payments-api").await.expect("recovers");
}

#[tokio::test]
async fn a_timeout_is_a_transient_transport_error() {
    let sim = simulator().await;
    let mut impatient = config(&sim, Credentials::Token(Secret::new(OPERATOR_TOKEN)));
    impatient.request_timeout = Duration::from_millis(100);
    impatient.retry = RetryPolicy { max_attempts: 1, ..impatient.retry };
    let client = Client::new(impatient).expect("client");
    sim.simulator().set_faults(Faults { latency: Duration::from_millis(500), ..Faults::default() });
    let error = client.get_repository("PAY", "payments-api").await.expect_err("too slow");
    assert!(matches!(error, Error::Transport { timeout: true, .. }), "{error}");
}

#[tokio::test]
async fn nothing_reaches_a_server_that_is_not_bitbucket() {
    let error = Client::new(ClientConfig::new("http://127.0.0.1:9", Credentials::Token(Secret::new("t"))))
        .expect("client")
        .verify_connection()
        .await
        .expect_err("nothing listens on port 9");
    assert!(matches!(error, Error::Transport { .. }), "{error}");
}
