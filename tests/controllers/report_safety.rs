//! The safety net across the halves: a RequiredReport of SonarQube's report key that SonarQube
//! will never post keeps its check (the team may post the report by other means) but says that
//! every pull request stays blocked, with a Warning Event; one SonarQube does post is Ready as
//! before, and a change on the SonarQube side is picked up without waiting for a resync.

use bitbucket_operator::api::{BitbucketConfiguration, SonarQubeConfiguration};
use serde_json::{Value, json};

use super::sonarqube::{TOKEN, integrated_configuration, manifests, sonarqube};
use crate::harness::{BINDING, Env, REPORT, SEED, SONAR, is_true, message, reason};

/// The reasons and types of the Events about the report `sonarqube`.
fn report_events(env: &Env) -> Vec<(String, String)> {
    env.events("RequiredReport", "sonarqube")
        .iter()
        .map(|e| {
            (e["reason"].as_str().unwrap_or_default().to_owned(), e["type"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn assert_never_posted(object: &Value, parts: &[&str]) {
    assert!(is_true(object, "Stalled"), "{object:#?}");
    let text = message(object);
    for part in parts {
        assert!(text.contains(part), "{part}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_build_keeps_the_check_but_says_nothing_will_post_it() {
    let sonar = sonarqube("community", "26.7.0.124771").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    env.apply(&integrated_configuration(None));
    env.apply(BINDING);
    env.apply(REPORT);
    let report = env.wait_ready("requiredreports", "sonarqube", "False", "ReportNeverPosted").await;
    assert_never_posted(
        &report,
        &["SonarQubeConfiguration team-a/sonarqube is Community Build", "1 bound repository", "required build"],
    );
    // Enforced all the same, as the spec asks.
    assert!(env.bitbucket().merge_check("PAY", "payments-api", SONAR).expect("repository").is_some());
    assert_eq!(report["status"]["inSyncCount"], 1, "{report:#?}");
    let events = report_events(&env);
    assert!(events.contains(&("ReportNeverPosted".to_owned(), "Warning".to_owned())), "{events:?}");

    // Without the configuration's SonarQube side, nothing is known to be wrong: Ready again,
    // without waiting for the resync.
    env.patch::<BitbucketConfiguration>("bitbucket", json!({"spec": {"sonarqube": null}})).await;
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    assert!(env.bitbucket().merge_check("PAY", "payments-api", SONAR).expect("repository").is_some());
    env.shutdown().await;
    sonar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_posts_the_report_until_sonarqube_turns_out_to_be_community_build() {
    let sonar = sonarqube("enterprise", "2026.3.1.123439").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    env.apply(&integrated_configuration(None));
    env.wait("bitbucketconfigurations", "team-a", "bitbucket", "the SonarQube setting recorded", |o| {
        o["status"]["sonarqube"]["almSettingKey"] == "bitbucket" && reason(o) == "Connected"
    })
    .await;
    env.apply(BINDING);
    env.apply(REPORT);
    env.wait_ready("requiredreports", "sonarqube", "True", "InSync").await;
    assert!(env.bitbucket().merge_check("PAY", "payments-api", SONAR).expect("repository").is_some());

    // The SonarQubeConfiguration now leads to a Community Build: its new check alone tells the
    // report, without waiting for a resync.
    let community = sonarqube("community", "26.7.0.124771").await;
    env.patch::<SonarQubeConfiguration>("sonarqube", json!({"spec": {"url": community.base_url()}})).await;
    let report = env.wait_ready("requiredreports", "sonarqube", "False", "ReportNeverPosted").await;
    assert_never_posted(&report, &["Community Build", "Developer Edition or later"]);
    let events = report_events(&env);
    assert!(events.contains(&("ReportNeverPosted".to_owned(), "Warning".to_owned())), "{events:?}");
    env.shutdown().await;
    sonar.shutdown().await;
    community.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monorepo_binding_on_developer_edition_is_never_reported() {
    let sonar = sonarqube("developer", "10.7.0.96327").await;
    let mut env = Env::new(SEED).await;
    env.start_operator();
    env.apply(&manifests(&sonar.base_url(), TOKEN, true));
    env.apply(&integrated_configuration(None));
    env.apply(&BINDING.replace(
        "  repositorySlug: payments-api\n",
        "  repositorySlug: payments-api\n  monorepo: true\n  sonarqube: {projectKey: payments}\n",
    ));
    env.apply(REPORT);
    let report = env.wait_ready("requiredreports", "sonarqube", "False", "ReportNeverPosted").await;
    let key = format!("{SONAR}_payments");
    assert_eq!(report["status"]["reportKey"], key.as_str());
    assert_never_posted(
        &report,
        &[
            "team-a/payments is a monorepo binding",
            "Developer Edition without monorepo support",
            &key,
            "monorepo: false",
        ],
    );
    assert!(env.bitbucket().merge_check("PAY", "payments-api", &key).expect("repository").is_some());
    env.shutdown().await;
    sonar.shutdown().await;
}
