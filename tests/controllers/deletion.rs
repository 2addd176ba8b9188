//! Deletion: finalizers remove what the operator made (unless `deletionPolicy: Orphan`), leave
//! what it did not make, and wait for dependents: a configuration for its bindings, a binding for
//! its reports.

use bitbucket_operator::api::{BitbucketConfiguration, ProjectBinding, RequiredReport};

use crate::harness::{BINDING, CONFIGURATION, Env, REPORT, SEED, SONAR, is_true, message, on_repository, reason};

const KEPT: &str = "com.example.kept";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_waits_for_dependents_removes_what_was_made_and_honours_orphan() {
    let seed = SEED.replace(
        "      - slug: payments-api\n",
        "      - slug: payments-api\n        webhooks:\n          - {name: someone-elses, url: \"https://other.example.com\", events: [\"pr:opened\"]}\n",
    );
    let mut env = Env::new(&seed).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BINDING);
    env.apply(REPORT);
    env.apply(&format!(
        r#"
apiVersion: bitbucket.integrations.dev/v1alpha1
kind: RequiredReport
metadata: {{name: kept}}
spec:
  bindingRef: {{name: payments}}
  reportKey: {KEPT}
  deletionPolicy: Orphan
"#
    ));
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    env.wait_ready("requiredreports", "kept", "True", "InSync").await;
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    let hooks = || env.bitbucket().webhooks("PAY", "payments-api").expect("repository");
    assert_eq!(hooks().len(), 2);
    env.bitbucket().clear_requests();

    // The configuration waits for its binding.
    env.delete::<BitbucketConfiguration>("bitbucket").await;
    let in_use = env.wait_ready("bitbucketconfigurations", "bitbucket", "False", "InUse").await;
    assert!(in_use["metadata"]["deletionTimestamp"].is_string());
    assert!(message(&in_use).contains("payments"), "{}", message(&in_use));
    assert!(env.has_event("BitbucketConfiguration", "bitbucket", "InUse"));

    // The binding waits for its reports, and removes nothing meanwhile.
    env.delete::<ProjectBinding>("payments").await;
    let waiting =
        env.wait("projectbindings", "team-a", "payments", "waiting for its reports", |o| reason(o) == "Deleting").await;
    let text = message(&waiting);
    assert!(text.contains("sonarqube") && text.contains("kept"), "{text}");
    assert!(is_true(&waiting, "Reconciling"), "{waiting:#?}");
    assert_eq!(hooks().len(), 2, "nothing removed yet");

    // A report with the default policy removes its check ...
    env.delete::<RequiredReport>("sonarqube").await;
    env.wait_gone("requiredreports", "sonarqube").await;
    assert!(env.bitbucket().merge_check("PAY", "payments-api", SONAR).expect("repository").is_none());
    assert!(env.has_event("RequiredReport", "sonarqube", "CheckRemoved"));
    // ... and the binding still waits for the other one.
    env.wait("projectbindings", "team-a", "payments", "waiting for kept only", |o| {
        reason(o) == "Deleting" && message(o).contains("kept") && !message(o).contains("sonarqube")
    })
    .await;
    assert_eq!(hooks().len(), 2, "nothing removed yet");

    // An orphaning report leaves its check.
    env.delete::<RequiredReport>("kept").await;
    env.wait_gone("requiredreports", "kept").await;
    assert!(env.bitbucket().merge_check("PAY", "payments-api", KEPT).expect("repository").is_some(), "Orphan");
    assert!(!env.has_event("RequiredReport", "kept", "CheckRemoved"));

    // Then the binding removes its webhook, and the foreign one stays; then the configuration goes.
    env.wait_gone("projectbindings", "payments").await;
    let left = hooks();
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0]["name"], "someone-elses", "a webhook the binding did not make stays");
    assert!(env.has_event("ProjectBinding", "payments", "WebhooksRemoved"));
    env.wait_gone("bitbucketconfigurations", "bitbucket").await;

    let log = env.log();
    let deletes: Vec<_> = log.iter().filter(|r| r.method == "DELETE").collect();
    assert_eq!(deletes.len(), 2, "{deletes:#?}");
    assert_eq!(on_repository(&log, "DELETE", "PAY", "payments-api", SONAR), 1);
    assert_eq!(on_repository(&log, "DELETE", "PAY", "payments-api", KEPT), 0);
    assert!(log.iter().all(|r| r.method != "POST" && r.method != "PUT"), "{log:#?}");
    env.shutdown().await;
}
