//! References: between the kinds (a report before its binding, a binding before its
//! configuration) and into Bitbucket (a project that does not exist, one the credential may only
//! read). Each problem stays with the object that has it.

use serde_json::json;

use crate::harness::{BINDING, CONFIGURATION, Env, REPORT, SEED, SONAR, attention_entry, is_true, message, reason};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_created_before_what_they_refer_to_converge_once_it_exists() {
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(REPORT);
    let waiting = env.wait_ready("requiredreports", "sonarqube", "False", "BindingNotFound").await;
    assert!(is_true(&waiting, "Stalled"), "{waiting:#?}");
    assert!(message(&waiting).contains("payments"), "{}", message(&waiting));

    env.apply(BINDING);
    let waiting = env.wait_ready("projectbindings", "payments", "False", "ConfigurationNotFound").await;
    assert!(is_true(&waiting, "Stalled"), "{waiting:#?}");
    assert!(message(&waiting).contains("bitbucket"), "{}", message(&waiting));
    // The report names the missing configuration itself (through its binding).
    let report = env
        .wait("requiredreports", "team-a", "sonarqube", "waiting for the configuration", |o| {
            reason(o) == "ConfigurationNotFound"
        })
        .await;
    assert!(message(&report).contains("bitbucket"), "{}", message(&report));
    assert_eq!(env.bitbucket().request_count(), 0);

    // The configuration appears: everything converges without a resync or a restart (the
    // binding and the report were told to look again in ten minutes).
    env.apply(CONFIGURATION);
    env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    assert!(env.bitbucket().merge_check("PAY", "payments-api", SONAR).expect("repository").is_some());
    assert_eq!(env.bitbucket().webhooks("PAY", "payments-api").expect("repository").len(), 1);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_forbidden_project_stalls_only_its_own_binding() {
    let seed = format!(
        "{SEED}  - key: SEC\n    name: Security\n    permissions: {{svc-operator: PROJECT_READ}}\n    repositories:\n      - slug: vault\n"
    );
    let mut env = Env::new(&seed).await;
    env.start_operator();
    env.apply(CONFIGURATION);
    env.apply(BINDING);
    env.apply(REPORT);
    env.apply(&BINDING.replace("name: payments}", "name: nowhere}").replace("projectKey: PAY", "projectKey: NOPE"));
    env.apply(
        &BINDING
            .replace("name: payments}", "name: vault}")
            .replace("projectKey: PAY", "projectKey: SEC")
            .replace("repositorySlug: payments-api", "repositorySlug: vault"),
    );
    env.apply(&REPORT.replace("name: sonarqube}", "name: vault-sonarqube}").replace("name: payments}", "name: vault}"));

    let missing = env.wait_ready("projectbindings", "nowhere", "False", "ProjectNotFound").await;
    assert!(is_true(&missing, "Stalled"), "{missing:#?}");
    assert!(message(&missing).contains("NOPE"), "{}", message(&missing));
    assert!(env.has_event("ProjectBinding", "nowhere", "ProjectNotFound"));

    // The credential may read SEC but not administer its repositories: a permission problem
    // of this binding (the credential itself is fine).
    let forbidden = env
        .wait("projectbindings", "team-a", "vault", "refused", |o| {
            reason(o) == "PermissionDenied" && is_true(o, "Stalled")
        })
        .await;
    assert!(message(&forbidden).contains("vault"), "{}", message(&forbidden));
    assert!(env.bitbucket().webhooks("SEC", "vault").expect("repository").is_empty());

    let report = env.wait("requiredreports", "team-a", "vault-sonarqube", "settled", |o| is_true(o, "Stalled")).await;
    // Its report cannot read the checks either, and says so per repository.
    assert_eq!(reason(&report), "PermissionDenied");
    assert_eq!(attention_entry(&report, "vault").map(|r| r["state"].clone()), Some(json!("Failed")));
    assert_eq!(report["status"]["failedCount"], 1);

    // The others are unaffected.
    env.wait_ready("projectbindings", "payments", "True", "Bound").await;
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    let configuration = env.wait_ready("bitbucketconfigurations", "bitbucket", "True", "Connected").await;
    assert_eq!(configuration["status"]["authenticatedAs"], json!("svc-operator"));
    env.shutdown().await;
}
