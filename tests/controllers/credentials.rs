//! Credentials: Secrets that are missing, unlabelled or lack the key; token rotation without a
//! restart; rejected credentials that are not sent again (Bitbucket's CAPTCHA lock-out).

use std::time::Duration;

use bitbucket_operator::{
    api::{BitbucketConfiguration, ProjectBinding},
    simulator::RequestRecord,
};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use crate::harness::{BINDING, CONFIGURATION, Env, OPERATOR_TOKEN, REPORT, SEED, condition, is_true, message, reason};

const CREDENTIAL_LABEL: &str = "bitbucket.integrations.dev/credential";

/// The simulator's CAPTCHA threshold (consecutive failed Basic logins that lock a user).
fn captcha_threshold(env: &Env) -> u64 {
    let threshold = env.bitbucket().state_json()["features"]["captchaThreshold"].as_u64().expect("threshold");
    assert!(threshold > 1, "the CAPTCHA lock-out is off in the simulator");
    threshold
}

/// Requests that carried an `Authorization` header of this kind.
fn sent_with(log: &[RequestRecord], auth: &str) -> usize {
    log.iter().filter(|r| r.auth == auth).count()
}

/// Rounds of BitbucketConfigurations that ended Stalled so far, as the operator's metrics count
/// them (a configuration that remembers a rejection checks nothing, but still has its rounds).
fn stalled_rounds(env: &Env) -> u64 {
    env.options
        .telemetry
        .render()
        .lines()
        .filter(|l| {
            l.starts_with("bitbucket_operator_stalled_total{") && l.contains(r#"kind="BitbucketConfiguration""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits for `resyncs` further rounds of a stalled configuration.
async fn wait_for_checks(env: &Env, resyncs: u64) {
    let target = stalled_rounds(env) + resyncs;
    env.eventually("further rounds of the stalled configuration", || stalled_rounds(env) >= target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_used_without_a_restart() {
    let seed = SEED
        .replace("  - name: reader\n", "  - name: svc-rotated\n    password: \"other pass\"\n  - name: reader\n")
        .replace(
            "svc-operator: PROJECT_ADMIN, reader",
            "svc-operator: PROJECT_ADMIN, svc-rotated: PROJECT_ADMIN, reader",
        );
    let mut env = Env::new(&seed).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BINDING);
    env.apply(REPORT);
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    let before = env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    let ready_since = condition(&before, "Ready").map(|c| c["lastTransitionTime"].clone());

    // A new token (of another user, so the log tells them apart) goes into the Secret; the
    // configuration (resync 10 minutes) picks it up at once.
    env.bitbucket().add_token("svc-rotated", "BBDC-rotated-token").expect("token");
    env.patch::<Secret>("bitbucket-token", json!({"stringData": {"token": "BBDC-rotated-token"}})).await;
    let after = env
        .wait("bitbucketconfigurations", "team-a", "bitbucket", "the new identity", |o| {
            o["status"]["authenticatedAs"] == "svc-rotated"
        })
        .await;
    assert_eq!(reason(&after), "Connected");
    assert_eq!(
        condition(&after, "Ready").map(|c| c["lastTransitionTime"].clone()),
        ready_since,
        "Ready did not stay True through the rotation"
    );

    // The old token is revoked; what the operator sends from now on uses the new one.
    env.bitbucket().revoke_token(OPERATOR_TOKEN);
    env.bitbucket().clear_requests();
    env.patch::<ProjectBinding>(
        "payments",
        json!({"spec": {"webhooks": [{"name": "ci", "url": "https://ci.example.com/v2", "events": ["repo:refs_changed"]}]}}),
    )
    .await;
    env.wait("projectbindings", "team-a", "payments", "the updated webhook", |o| {
        o["status"]["observedGeneration"] == 2 && reason(o) == "Bound"
    })
    .await;
    // The binding's new generation makes its report look again, with the same client.
    env.eventually("the report's round after the binding's", || {
        env.log().iter().any(|r| r.path.contains("/settings/merge-checks/"))
    })
    .await;
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    let log = env.log();
    assert!(log.iter().any(|r| r.method == "PUT" && r.path.contains("/webhooks/")), "{log:#?}");
    assert!(log.iter().all(|r| r.user.as_deref() == Some("svc-rotated") && r.auth == "bearer"), "{log:#?}");
    assert!(log.iter().all(|r| r.status != 401), "{log:#?}");
    let hooks = env.bitbucket().webhooks("PAY", "payments-api").expect("repository");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["url"], "https://ci.example.com/v2");
    let reasons = env.event_reasons("BitbucketConfiguration", "bitbucket");
    assert!(!reasons.iter().any(|r| r == "BadCredentials"), "{reasons:?}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_problems_stall_with_a_reason_naming_the_secret_and_heal_when_fixed() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    let configuration = |name: &str, secret: &str| {
        CONFIGURATION
            .split_once("\n---\n")
            .map(|(_, configuration)| configuration)
            .expect("two documents")
            .replace("name: bitbucket}", &format!("name: {name}}}"))
            .replace("name: bitbucket-token}", &format!("name: {secret}}}"))
    };
    env.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: unlabelled-token}}
stringData: {{token: {OPERATOR_TOKEN}}}
---
apiVersion: v1
kind: Secret
metadata:
  name: keyless-token
  labels: {{{CREDENTIAL_LABEL}: "true"}}
stringData: {{other: x}}
---
apiVersion: v1
kind: Secret
metadata:
  name: invalid-token
  labels: {{{CREDENTIAL_LABEL}: "true"}}
stringData: {{token: "two\nlines"}}
"#
    ));
    env.apply(&configuration("missing", "missing-token"));
    env.apply(&configuration("unlabelled", "unlabelled-token"));
    env.apply(&configuration("keyless", "keyless-token"));
    env.apply(&configuration("invalid", "invalid-token"));
    env.apply(&BINDING.replace("name: bitbucket}", "name: missing}"));

    let cases = [
        ("missing", "missing-token", "SecretNotFound", "missing-token"),
        ("unlabelled", "unlabelled-token", "SecretNotLabelled", CREDENTIAL_LABEL),
        ("keyless", "keyless-token", "SecretKeyMissing", "token"),
        ("invalid", "invalid-token", "InvalidSecret", "token"),
    ];
    for (name, secret, expected, hint) in cases {
        let stalled = env.wait_ready("bitbucketconfigurations", name, "False", expected).await;
        let text = message(&stalled);
        assert!(text.contains(secret) && text.contains(hint), "{name}: {text}");
        assert!(is_true(&stalled, "Stalled") && !is_true(&stalled, "Reconciling"), "{stalled:#?}");
        assert!(env.has_event("BitbucketConfiguration", name, expected), "{name}");
    }
    // Stalled too, once the configuration is.
    let waiting = env
        .wait("projectbindings", "team-a", "payments", "Stalled for its configuration", |o| {
            reason(o) == "ConfigurationNotReady" && is_true(o, "Stalled")
        })
        .await;
    assert!(message(&waiting).contains("missing"), "{}", message(&waiting));
    assert_eq!(env.bitbucket().request_count(), 0, "nothing reaches Bitbucket without a usable credential");

    // Each fixed: Ready without a restart (and without a spec change).
    env.apply(
        &CONFIGURATION.split_once("\n---\n").expect("two documents").0.replace("bitbucket-token", "missing-token"),
    );
    env.patch::<Secret>("unlabelled-token", json!({"metadata": {"labels": {CREDENTIAL_LABEL: "true"}}})).await;
    env.patch::<Secret>("keyless-token", json!({"stringData": {"token": OPERATOR_TOKEN}})).await;
    env.patch::<Secret>("invalid-token", json!({"stringData": {"token": OPERATOR_TOKEN}})).await;
    for (name, ..) in cases {
        let fixed = env.wait_ready("bitbucketconfigurations", name, "True", "Connected").await;
        assert!(!is_true(&fixed, "Stalled"), "{fixed:#?}");
        assert!(env.has_event("BitbucketConfiguration", name, "Connected"), "{name}");
    }
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    env.shutdown().await;
}

/// A Secret that breaks while its configuration is Connected: deleted, or its label taken away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_broken_while_in_use_stalls_its_configuration_and_bindings() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(
        &CONFIGURATION
            .replace("name: bitbucket-token", "name: other-token")
            .replace("name: bitbucket}", "name: other}"),
    );
    env.apply(BINDING);
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    env.wait_ready("bitbucketconfigurations", "other", "True", "Connected").await;

    env.delete::<Secret>("bitbucket-token").await;
    let gone = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "SecretNotFound").await;
    assert!(message(&gone).contains("bitbucket-token"), "{}", message(&gone));
    assert!(is_true(&gone, "Stalled"), "{gone:#?}");
    env.wait("projectbindings", "team-a", "payments", "Stalled for its configuration", |o| {
        reason(o) == "ConfigurationNotReady" && is_true(o, "Stalled")
    })
    .await;

    env.patch::<Secret>("other-token", json!({"metadata": {"labels": {CREDENTIAL_LABEL: null}}})).await;
    let unlabelled = env.wait_ready("bitbucketconfigurations", "other", "False", "SecretNotLabelled").await;
    assert!(message(&unlabelled).contains("other-token"), "{}", message(&unlabelled));
    env.shutdown().await;
}

const BASIC: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: svc-password
  labels: {bitbucket.integrations.dev/credential: "true"}
stringData: {username: svc-operator, password: Xq7-not-it}
---
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: BitbucketConfiguration
metadata: {name: bitbucket}
spec:
  url: {URL}
  allowInsecureHttp: true
  auth: {basic: {secretRef: {name: svc-password}}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_password_is_not_sent_again_until_the_secret_changes() {
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(Duration::from_millis(300));
    env.start_operator();
    let threshold = captcha_threshold(&env);
    env.apply(BASIC);
    env.apply(BINDING);
    let refused = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "BadCredentials").await;
    assert!(is_true(&refused, "Stalled"), "{refused:#?}");
    assert!(!message(&refused).contains("Xq7"), "the password leaked: {}", message(&refused));
    assert!(env.has_event("BitbucketConfiguration", "bitbucket", "BadCredentials"));
    env.wait_ready("projectbindings", "payments", "False", "ConfigurationNotReady").await;
    let sent = sent_with(&env.log(), "basic");
    assert!(sent >= 1);

    // Several resyncs later: the password was not sent again, far below the CAPTCHA threshold.
    wait_for_checks(&env, 3).await;
    let log = env.log();
    assert_eq!(sent_with(&log, "basic"), sent, "the rejected password was sent again: {log:#?}");
    assert!(log.iter().all(|r| !r.path.contains("/projects/")), "the binding reached Bitbucket: {log:#?}");
    let failed = u64::from(env.bitbucket().failed_login_count("svc-operator"));
    assert_eq!(failed, 1);
    assert!(failed < threshold);

    env.patch::<Secret>("svc-password", json!({"stringData": {"password": "correct horse"}})).await;
    let connected = env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    assert_eq!(connected["status"]["authenticatedAs"], "svc-operator");
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    assert_eq!(env.bitbucket().webhooks("PAY", "payments-api").expect("repository").len(), 1);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_is_a_bad_credential_and_stops_calls_until_the_secret_changes() {
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(Duration::from_millis(300));
    env.start_operator();
    env.apply(&CONFIGURATION.replace(OPERATOR_TOKEN, "BBDC-unknown"));
    env.apply(BINDING);
    let refused = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "BadCredentials").await;
    assert!(is_true(&refused, "Stalled"), "{refused:#?}");
    assert!(message(&refused).contains("anonymous"), "{}", message(&refused));
    assert!(!message(&refused).contains("BBDC-unknown"), "the token leaked");
    env.wait_ready("projectbindings", "payments", "False", "ConfigurationNotReady").await;
    // Bitbucket served the unknown token as anonymous.
    let log = env.log();
    let sent = sent_with(&log, "bearer");
    assert!(sent >= 1);
    assert!(log.iter().filter(|r| r.auth == "bearer").all(|r| r.user.is_none()), "{log:#?}");

    wait_for_checks(&env, 3).await;
    let log = env.log();
    assert_eq!(sent_with(&log, "bearer"), sent, "the rejected token was sent again: {log:#?}");
    assert!(log.iter().all(|r| !r.path.contains("/projects/")), "the binding reached Bitbucket: {log:#?}");

    env.patch::<Secret>("bitbucket-token", json!({"stringData": {"token": OPERATOR_TOKEN}})).await;
    env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    env.shutdown().await;
}

/// DESIGN §2: a credential rejected before the identity was proven is not sent again until the
/// Secret changes. Editing something else in the spec (the rate limit, the timeout) leaves the
/// credential as it was, so it must not be sent again either: five such edits would lock the
/// account behind Bitbucket's CAPTCHA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_does_not_resend_a_rejected_password() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    let threshold = captcha_threshold(&env);
    env.apply(BASIC);
    env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "BadCredentials").await;
    let sent = sent_with(&env.log(), "basic");
    let edits = threshold;
    for i in 1..=edits {
        let patch: Value = json!({"spec": {"rateLimit": {"requestsPerSecond": 5 + i, "burst": 60}}});
        env.patch::<BitbucketConfiguration>("bitbucket", patch).await;
        env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the edit observed", |o| {
            o["status"]["observedGeneration"] == o["metadata"]["generation"] && o["metadata"]["generation"] == 1 + i
        })
        .await;
    }
    let configuration = env.fake.object("bitbucketconfigurations", "team-a", "bitbucket").expect("configuration");
    let failed = u64::from(env.bitbucket().failed_login_count("svc-operator"));
    assert!(
        failed < threshold,
        "{edits} edits of the rate limit locked svc-operator: {failed} failed logins; Ready: {}",
        message(&configuration)
    );
    assert_eq!(sent_with(&env.log(), "basic"), sent, "the rejected password was sent again after a spec edit");
    env.shutdown().await;
}

/// A token revoked (or expired) while in use: Bitbucket serves it as anonymous. Everything that
/// uses it stops and says why; a new token in the Secret brings it all back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_while_in_use_stops_every_call_until_the_secret_changes() {
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(Duration::from_millis(300));
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BINDING);
    env.apply(REPORT);
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;

    env.bitbucket().revoke_token(OPERATOR_TOKEN);
    let refused = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "BadCredentials").await;
    assert!(is_true(&refused, "Stalled"), "{refused:#?}");
    for (resource, name) in [("projectbindings", "payments"), ("requiredreports", "sonarqube")] {
        // Stalled for the credential: found by itself, or through its configuration.
        let stopped = env.wait(resource, "team-a", name, "stalled", |o| is_true(o, "Stalled")).await;
        assert!(["BadCredentials", "ConfigurationNotReady"].contains(&reason(&stopped).as_str()), "{stopped:#?}");
        assert!(message(&stopped).contains("Secret"), "{}", message(&stopped));
    }
    let sent = sent_with(&env.log(), "bearer");
    wait_for_checks(&env, 3).await;
    let log = env.log();
    assert_eq!(sent_with(&log, "bearer"), sent, "the revoked token was sent again: {log:#?}");

    env.bitbucket().add_token("svc-operator", "BBDC-new-token").expect("token");
    env.patch::<Secret>("bitbucket-token", json!({"stringData": {"token": "BBDC-new-token"}})).await;
    env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    env.shutdown().await;
}

const RETRY_ANNOTATION: &str = "bitbucket.integrations.dev/retry-credentials";

/// Issue: each restart forgot the rejection and tried the wrong password once more, until
/// Bitbucket locked the account behind a CAPTCHA. The status remembers which version of which
/// Secret was rejected; ten restarts (some of them crashes), each followed by a spec edit the
/// restarted operator must take in, cost no further failed login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_password_is_not_sent_again_after_restarts() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(BASIC);
    let refused = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "BadCredentials").await;
    let remembered = &refused["status"]["rejectedCredential"];
    assert_eq!(remembered["secret"]["name"], "svc-password", "{refused:#?}");
    assert!(remembered["secret"]["resourceVersion"].is_string(), "{refused:#?}");
    assert!(!refused["status"].to_string().contains("Xq7"), "the password reached the status");
    assert!(message(&refused).contains(RETRY_ANNOTATION), "{}", message(&refused));
    assert_eq!(env.bitbucket().failed_login_count("svc-operator"), 1);

    for restart in 1..=10_i64 {
        if restart % 2 == 0 {
            env.kill_operator().await;
        } else {
            env.stop_operator().await;
        }
        env.start_operator();
        let patch = json!({"spec": {"rateLimit": {"requestsPerSecond": 5 + restart, "burst": 60}}});
        env.patch::<BitbucketConfiguration>("bitbucket", patch).await;
        let seen = env
            .wait("bitbucketconfigurations", "team-a", "bitbucket", "the edit observed after the restart", |o| {
                o["status"]["observedGeneration"] == o["metadata"]["generation"]
                    && o["metadata"]["generation"] == 1 + restart
            })
            .await;
        assert_eq!(reason(&seen), "BadCredentials", "restart {restart}: {seen:#?}");
    }
    let failed = env.bitbucket().failed_login_count("svc-operator");
    assert!(failed <= 1, "10 restarts cost {failed} failed logins");
    assert_eq!(sent_with(&env.log(), "basic"), 1, "the rejected password was sent again: {:#?}", env.log());

    // A new password in the Secret is tried at once, restart or not.
    env.patch::<Secret>("svc-password", json!({"stringData": {"password": "correct horse"}})).await;
    let connected = env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    assert!(connected["status"]["rejectedCredential"].is_null(), "{connected:#?}");
    env.shutdown().await;
}

/// Issue: once an administrator cleared the CAPTCHA, nothing short of another Secret change or a
/// restart made the operator try again. The annotation asks for exactly one attempt per new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_annotation_asks_for_exactly_one_attempt() {
    let mut env = Env::new(SEED).await;
    env.options.max_resync = Some(Duration::from_millis(300));
    env.bitbucket().set_captcha_threshold(1);
    env.start_operator();
    env.apply(BASIC);
    env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "BadCredentials").await;
    // The right password, but the one failed login already locked the account.
    env.patch::<Secret>("svc-password", json!({"stringData": {"password": "correct horse"}})).await;
    let locked = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "CaptchaRequired").await;
    assert_eq!(locked["status"]["rejectedCredential"]["reason"], "CaptchaRequired", "{locked:#?}");
    let sent = sent_with(&env.log(), "basic");

    // Asked to try again while the account is still locked: one attempt, then quiet.
    annotate(&env, "first").await;
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the first retry answered", |o| {
        o["status"]["rejectedCredential"]["retryRequest"] == "first"
    })
    .await;
    let after_first = sent_with(&env.log(), "basic");
    assert_eq!(after_first, sent + 1, "one retry request, one attempt: {:#?}", env.log());
    wait_for_checks(&env, 3).await;
    assert_eq!(sent_with(&env.log(), "basic"), after_first, "a retry request was answered twice");

    // Cleared in Bitbucket: the operator cannot know, and sends nothing until asked.
    env.bitbucket().reset_captcha("svc-operator");
    wait_for_checks(&env, 3).await;
    assert_eq!(sent_with(&env.log(), "basic"), after_first, "the rejected credential was sent unasked");

    // Cleared, asked again: connected.
    env.bitbucket().reset_captcha("svc-operator");
    annotate(&env, "second").await;
    let connected = env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    assert!(connected["status"]["rejectedCredential"].is_null(), "{connected:#?}");
    env.shutdown().await;
}

async fn annotate(env: &Env, value: &str) {
    env.patch::<BitbucketConfiguration>("bitbucket", json!({"metadata": {"annotations": {RETRY_ANNOTATION: value}}}))
        .await;
}
