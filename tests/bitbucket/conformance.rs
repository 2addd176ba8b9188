//! The client against the simulator, endpoint by endpoint and error class by error class, as the
//! wire contract (bitbucket-api.md) describes them.

use std::{collections::BTreeMap, time::Duration};

use bitbucket_operator::{
    bitbucket::{
        Client, ClientConfig, Credentials, Error, ErrorClass, MergeCheck, RateLimit, RetryPolicy, Secret, Severity,
        WebhookRequest,
    },
    simulator::{Faults, RateLimit as ServerRateLimit, RunningSimulator, Seed, Simulator},
};

use crate::support::fixtures::{self, OPERATOR_PASSWORD, OPERATOR_TOKEN, READER_TOKEN};

/// Repositories in the big project: three pages of 1000.
const MANY: usize = 2345;

/// The shared seed with BIG of [`MANY`] repositories, a personal repository of svc-operator, and
/// an archived and an initialising repository beside payments-api in PAY.
fn seed() -> Seed {
    let yaml = fixtures::insert_after(
        &fixtures::many(MANY),
        "  - name: svc-operator\n",
        "    repositories: [{slug: dotfiles}]\n",
    );
    let yaml = fixtures::insert_after(
        &yaml,
        "      - slug: payments-api\n",
        "      - slug: old-ledger\n        archived: true\n      - slug: fresh\n        state: INITIALISING\n",
    );
    Seed::from_yaml(&yaml).expect("the seed parses")
}

async fn simulator() -> RunningSimulator {
    Simulator::new(seed()).expect("seed").serve("127.0.0.1:0".parse().expect("addr")).await.expect("serve")
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
    let sim = simulator().await;
    let identity = token(&sim, OPERATOR_TOKEN).verify_connection().await.expect("connects");
    assert_eq!(identity.username, "svc-operator");
    assert_eq!(identity.version_text, "9.4.22");
    assert_eq!(identity.version.to_string(), "9.4.22");
    assert_eq!(identity.build_number.as_deref(), Some("9004022"));
    assert!(identity.capabilities.webhooks && identity.capabilities.code_insights);

    let basic_identity = basic(&sim, "svc-operator", OPERATOR_PASSWORD).verify_connection().await.expect("basic works");
    assert_eq!(basic_identity.username, "svc-operator");

    // /status goes without credentials; everything under /rest with them.
    for record in sim.simulator().requests() {
        let expected = if record.path == "/status" { "none" } else { "bearer" };
        if record.auth != "basic" {
            assert_eq!(record.auth, expected, "{record:?}");
        }
    }
}

#[tokio::test]
async fn an_unknown_token_is_served_as_anonymous_and_then_never_sent_again() {
    let sim = simulator().await;
    let client = token(&sim, "BBDC-revoked");
    let error = client.verify_connection().await.expect_err("an unknown token must not pass");
    assert_eq!(error.class(), ErrorClass::Credentials, "{error}");
    assert!(error.to_string().contains("anonymous"), "{error}");
    let sent = sim.simulator().request_count();
    let again = client.list_repositories("PAY").await.expect_err("blocked");
    assert_eq!(again.class(), ErrorClass::Credentials);
    assert_eq!(sim.simulator().request_count(), sent, "a rejected credential must not be sent again");
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
    let sim = simulator().await;
    let reader = token(&sim, READER_TOKEN);
    reader.verify_connection().await.expect("the reader token works");
    let repos = reader.list_repositories("PAY").await.expect("a reader may list repositories");
    assert_eq!(repos.len(), 3);
    let error = reader.list_webhooks("PAY", "payments-api").await.expect_err("webhooks need REPO_ADMIN");
    assert!(matches!(error, Error::PermissionDenied { .. }), "{error}");
    assert!(error.to_string().contains("REPO_ADMIN"), "the message says what to grant: {error}");
    // A permission error is about that object only: the client keeps working.
    reader.get_repository("PAY", "payments-api").await.expect("still works");
}

#[tokio::test]
async fn a_401_before_the_identity_is_proven_counts_as_a_bad_credential() {
    let sim = simulator().await;
    let reader = token(&sim, READER_TOKEN);
    let error = reader.list_webhooks("PAY", "payments-api").await.expect_err("unproven 401");
    assert_eq!(error.class(), ErrorClass::Credentials, "{error}");
}

#[tokio::test]
async fn projects_and_repositories() {
    let sim = simulator().await;
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
    let archived = client.get_repository("PAY", "old-ledger").await.expect("archived repo");
    assert!(archived.archived);
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
    let sim = simulator().await;
    let client = admin(&sim).await;
    sim.simulator().clear_requests();
    let repos = client.list_repositories("BIG").await.expect("all pages");
    assert_eq!(repos.len(), MANY);
    let mut slugs: Vec<&str> = repos.iter().map(|r| r.slug.as_str()).collect();
    slugs.dedup();
    assert_eq!(slugs.len(), MANY, "no repository twice");
    let pages: Vec<_> =
        sim.simulator().requests().into_iter().filter(|r| r.path.ends_with("/projects/BIG/repos")).collect();
    assert_eq!(pages.len(), MANY.div_ceil(1000), "one request per page of 1000: {pages:?}");
    assert!(pages.iter().all(|p| p.query.contains("limit=1000")), "{pages:?}");
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
    let sim = simulator().await;
    let client = admin(&sim).await;
    let created = client.create_webhook("PAY", "payments-api", &hook("ci", Some("s3cret"))).await.expect("create");
    assert_eq!(created.name, "ci");
    assert_eq!(
        created.secret.as_ref().map(Secret::expose),
        Some("s3cret"),
        "the secret is read back, not taken from the create answer"
    );
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
    let sim = simulator().await;
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
