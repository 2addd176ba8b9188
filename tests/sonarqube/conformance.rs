//! The client against the SonarQube simulator, quirk by quirk (sonarqube-api.md §3), then the
//! auth schemes of the three numbering schemes, the error classes, retries and paging.

use std::collections::BTreeSet;

use bitbucket_operator::{
    simulator::{
        Faults,
        sonarqube::{Edition, SonarProjectSeed, SonarSeed},
    },
    sonarqube::{
        Alm, BitbucketBinding, BoundProject, Error, ErrorClass, ServerStatus, ValidationFailure, normalize_url,
    },
};

use crate::common::{
    ADMIN, ANALYSIS, BB_PROJECT, BB_SLUG, CLASSIC_99, COMMUNITY_BUILD, EXPIRED, NEW_PAT, PAT, SERVER, VIEWER, admin,
    bitbucket, client, closed_port, count, enterprise, redirector, secret, serve, sonarqube,
};

const URL: &str = "https://bitbucket.example.com/bitbucket";

fn binding(setting: &str, project: &str, repository: &str, slug: &str, monorepo: bool) -> BitbucketBinding {
    BitbucketBinding {
        alm_setting: setting.into(),
        project: project.into(),
        repository: repository.into(),
        slug: slug.into(),
        monorepo,
    }
}

// §3.1 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn the_pat_is_never_read_back_and_the_last_one_pushed_is_the_one_stored() {
    let sq = enterprise("").await;
    let client = admin(&sq);
    client.create_bitbucket("bb", URL, &secret(PAT)).await.expect("created");
    assert_eq!(sq.simulator().alm_setting_pat("bb").as_deref(), Some(PAT));

    let definitions = client.list_definitions().await.expect("listed");
    let setting = definitions.bitbucket("bb").expect("the setting is listed");
    assert_eq!(setting.url.as_deref(), Some(URL));
    assert!(!format!("{definitions:?}").contains(PAT), "{definitions:?}");
    // Nor is it anywhere in what SonarQube answers.
    let raw = reqwest::Client::new()
        .get(format!("{}/api/alm_settings/list_definitions", sq.base_url()))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    assert!(raw.contains("\"bb\"") && !raw.contains(PAT), "{raw}");

    // A rotated Secret is pushed with the unchanged URL: the new PAT replaces the old.
    client.update_bitbucket("bb", None, URL, Some(&secret(NEW_PAT))).await.expect("updated");
    assert_eq!(sq.simulator().alm_setting_pat("bb").as_deref(), Some(NEW_PAT));
    // An update without a PAT keeps the stored one.
    client.update_bitbucket("bb", None, URL, None).await.expect("updated");
    assert_eq!(sq.simulator().alm_setting_pat("bb").as_deref(), Some(NEW_PAT));
}

// §3.2 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn a_url_change_needs_the_pat_in_the_same_call() {
    let sq = enterprise("").await;
    let client = admin(&sq);
    client.create_bitbucket("bb", URL, &secret(PAT)).await.expect("created");
    let moved = "https://git.example.com/bitbucket";

    let error = client.update_bitbucket("bb", None, moved, None).await.expect_err("no PAT");
    assert_eq!(error, Error::PatRequiredForUrlChange { key: "bb".into() });
    assert_eq!(error.class(), ErrorClass::Invalid);
    assert!(error.to_string().contains("bb"), "{error}");
    let stored = client.list_definitions().await.expect("listed");
    assert_eq!(stored.bitbucket("bb").and_then(|s| s.url.as_deref()), Some(URL), "nothing changed");

    client.update_bitbucket("bb", None, moved, Some(&secret(PAT))).await.expect("with the PAT");
    let stored = client.list_definitions().await.expect("listed");
    assert_eq!(stored.bitbucket("bb").and_then(|s| s.url.as_deref()), Some(moved));
    assert_eq!(sq.simulator().alm_setting_pat("bb").as_deref(), Some(PAT));
}

#[tokio::test]
async fn a_trailing_slash_is_a_url_change_unless_both_sides_are_normalised() {
    // Created out of band (in the UI) with a trailing slash.
    let sq =
        enterprise(&format!("almSettings: [{{key: ui, alm: bitbucket, url: '{URL}/', personalAccessToken: {PAT}}}]"))
            .await;
    let client = admin(&sq);
    let listed = client.list_definitions().await.expect("listed");
    let stored = listed.bitbucket("ui").and_then(|s| s.url.clone()).expect("a URL");
    let wanted = normalize_url(URL).expect("a good URL");
    assert_eq!(normalize_url(&stored).expect("a good URL"), wanted, "the same place once normalised");

    // The client sends the normalised form, which SonarQube compares byte for byte.
    let error = client.update_bitbucket("ui", None, &stored, None).await.expect_err("the slash counts");
    assert_eq!(error, Error::PatRequiredForUrlChange { key: "ui".into() });
    // Sent with the PAT, the setting ends up in the one form the operator compares against.
    client.update_bitbucket("ui", None, &stored, Some(&secret(PAT))).await.expect("with the PAT");
    let listed = client.list_definitions().await.expect("listed");
    assert_eq!(listed.bitbucket("ui").and_then(|s| s.url.clone()), Some(wanted.clone()));
    // From then on a URL that differs only by its slash is no change at all.
    client.update_bitbucket("ui", None, &format!("{URL}/"), None).await.expect("no change");
    let listed = client.list_definitions().await.expect("listed");
    assert_eq!(listed.bitbucket("ui").and_then(|s| s.url.clone()), Some(wanted));
}

// §3.3 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn setting_keys_are_unique_across_platforms() {
    let sq = enterprise("almSettings: [{key: shared, alm: github, url: 'https://api.github.com'}]").await;
    let client = admin(&sq);
    let listed = client.list_definitions().await.expect("listed");
    assert_eq!(listed.holder_of("shared"), Some(&Alm::GitHub));
    assert_eq!(listed.bitbucket("shared"), None, "a GitHub setting is not a Bitbucket one");

    let error = client.create_bitbucket("shared", URL, &secret(PAT)).await.expect_err("taken by GitHub");
    assert_eq!(error, Error::KeyTaken { key: "shared".into() });
    assert!(error.to_string().contains("shared"), "{error}");

    client.create_bitbucket("bb", URL, &secret(PAT)).await.expect("created");
    let error = client.update_bitbucket("bb", Some("shared"), URL, None).await.expect_err("rename onto it");
    assert_eq!(error, Error::KeyTaken { key: "shared".into() });
    assert!(client.list_definitions().await.expect("listed").bitbucket("bb").is_some(), "bb kept its key");
}

// §3.4 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rename_keeps_the_bindings_and_the_pat() {
    let sq = enterprise("").await;
    let client = admin(&sq);
    client.create_bitbucket("old", URL, &secret(PAT)).await.expect("created");
    client.set_bitbucket_binding(&binding("old", "app", BB_PROJECT, BB_SLUG, false)).await.expect("bound");

    client.update_bitbucket("old", Some("new"), URL, None).await.expect("renamed");
    let listed = client.list_definitions().await.expect("listed");
    assert!(listed.bitbucket("old").is_none() && listed.bitbucket("new").is_some(), "{listed:?}");
    let bound = client.get_binding("app").await.expect("read").expect("still bound");
    assert_eq!(bound.key, "new");
    assert_eq!((bound.repository.as_deref(), bound.slug.as_deref()), (Some(BB_PROJECT), Some(BB_SLUG)));
    assert_eq!(client.count_binding("new").await.expect("counted"), 1);
    assert_eq!(sq.simulator().alm_setting_pat("new").as_deref(), Some(PAT));
}

// §3.5 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn one_bitbucket_setting_below_enterprise_and_several_from_it() {
    for (edition, version) in [(Edition::Developer, SERVER), (Edition::Community, COMMUNITY_BUILD)] {
        let sq = sonarqube(edition, version, "").await;
        let client = admin(&sq);
        client.create_bitbucket("first", URL, &secret(PAT)).await.expect("the first is allowed");
        let error = client.create_bitbucket("second", URL, &secret(PAT)).await.expect_err("capped");
        assert_eq!(error, Error::EditionLimit { platform: "BITBUCKET" }, "{edition:?}");
        assert_eq!(error.class(), ErrorClass::Unsupported, "not a retry loop");
        assert!(client.list_definitions().await.expect("listed").bitbucket("second").is_none());

        // A Bitbucket Cloud setting takes the same one place.
        let cloud = sonarqube(edition, version, "almSettings: [{key: cloud, alm: bitbucketcloud, url: team}]").await;
        let error = admin(&cloud).create_bitbucket("bb", URL, &secret(PAT)).await.expect_err("capped by Cloud");
        assert_eq!(error, Error::EditionLimit { platform: "BITBUCKET_CLOUD" }, "{edition:?}");
    }

    let sq = enterprise("almSettings: [{key: cloud, alm: bitbucketcloud, url: team}]").await;
    let client = admin(&sq);
    for key in ["first", "second"] {
        client.create_bitbucket(key, URL, &secret(PAT)).await.expect("Enterprise allows several");
    }
    assert_eq!(client.list_definitions().await.expect("listed").bitbucket_family().count(), 3);
}

// §3.6 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn a_second_binding_of_a_project_replaces_the_first() {
    let sq = enterprise("").await;
    let client = admin(&sq);
    for key in ["one", "two"] {
        client.create_bitbucket(key, URL, &secret(PAT)).await.expect("created");
    }
    client.set_bitbucket_binding(&binding("one", "app", BB_PROJECT, BB_SLUG, false)).await.expect("bound");
    client.set_bitbucket_binding(&binding("two", "app", "PLAT", "api-gateway", false)).await.expect("re-bound");

    let bound = client.get_binding("app").await.expect("read").expect("bound");
    assert_eq!(
        (bound.alm, bound.key.as_str(), bound.repository.as_deref(), bound.slug.as_deref()),
        (Alm::Bitbucket, "two", Some("PLAT"), Some("api-gateway"))
    );
    assert_eq!(client.count_binding("one").await.expect("counted"), 0, "one project, one binding");
    assert_eq!(client.count_binding("two").await.expect("counted"), 1);
    // Repeating it changes nothing: the call is its own update.
    client.set_bitbucket_binding(&binding("two", "app", "PLAT", "api-gateway", false)).await.expect("again");
    assert_eq!(client.get_binding("app").await.expect("read").expect("bound").key, "two");
}

// §3.7 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unbound_project_has_no_binding_and_a_missing_one_is_named() {
    let sq = enterprise("").await;
    let client = admin(&sq);
    assert_eq!(client.get_binding("lib").await, Ok(None));

    let error = client.get_binding("ghost").await.expect_err("no such project");
    assert_eq!(error, Error::ProjectNotFound { project: "ghost".into() });
    assert_eq!(error.class(), ErrorClass::NotFound);
    assert!(error.to_string().contains("ghost"), "{error}");
}

// §3.8 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn monorepo_is_sent_either_way_and_read_back() {
    let sq = enterprise("").await;
    let client = admin(&sq);
    client.create_bitbucket("bb", URL, &secret(PAT)).await.expect("created");

    // The simulator refuses a binding without `monorepo`, as SonarQube does since 8.7.
    let raw = reqwest::Client::new()
        .post(format!("{}/api/alm_settings/set_bitbucket_binding", sq.base_url()))
        .bearer_auth(ADMIN)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("almSetting=bb&project=app&repository={BB_PROJECT}&slug={BB_SLUG}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(sq.simulator().binding("app"), None);

    for monorepo in [false, true, false] {
        client.set_bitbucket_binding(&binding("bb", "app", BB_PROJECT, BB_SLUG, monorepo)).await.expect("bound");
        let bound = client.get_binding("app").await.expect("read").expect("bound");
        assert_eq!(bound.monorepo, monorepo);
    }
}

// §3.9: the report key in monorepo mode is the decorator's business; the client has none.

// §3.10 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn validate_is_a_get_that_passes_on_204_and_fails_in_our_words() {
    let bb = bitbucket().await;
    let (redirecting, task) = redirector(format!("{}/status", bb.base_url())).await;
    let b = bb.base_url();
    let down = closed_port();
    let sq = enterprise(&format!(
        "almSettings:\n  - {{key: good, alm: bitbucket, url: '{b}', personalAccessToken: {PAT}}}\n  - {{key: badpat, alm: bitbucket, url: '{b}', personalAccessToken: {NEW_PAT}}}\n  - {{key: moved, alm: bitbucket, url: '{redirecting}', personalAccessToken: {PAT}}}\n  - {{key: down, alm: bitbucket, url: '{down}', personalAccessToken: {PAT}}}\n  - {{key: context, alm: bitbucket, url: '{b}/bitbucket', personalAccessToken: {PAT}}}"
    ))
    .await;
    let client = admin(&sq);

    client.validate_alm_setting("good").await.expect("a good setting passes");
    let validations: Vec<u16> =
        sq.simulator().requests().iter().filter(|r| r.path == "/api/alm_settings/validate").map(|r| r.status).collect();
    assert_eq!(validations, [204], "one call, answered 204");
    assert!(sq.simulator().requests().iter().all(|r| r.method == "GET"), "validate is a GET");

    let cases = [
        ("badpat", ValidationFailure::InvalidPat),
        ("moved", ValidationFailure::Unreachable),
        ("down", ValidationFailure::Unreachable),
        ("context", ValidationFailure::NotFoundAtUrl),
    ];
    for (key, reason) in cases {
        let error = client.validate_alm_setting(key).await.expect_err(key);
        assert_eq!(error, Error::ValidationFailed { key: key.into(), reason }, "{key}");
        assert_eq!(error.class(), ErrorClass::Invalid, "{key}: fixing it takes a change, not a retry");
        let shown = error.to_string();
        // Our words, not SonarQube's.
        for theirs in ["Invalid personal access token", "Unable to contact", "Error 404"] {
            assert!(!shown.contains(theirs), "{key}: {shown}");
        }
        assert!(shown.contains(key), "{key}: {shown}");
    }
    // A failed check writes nothing: every call was a GET.
    assert!(sq.simulator().requests().iter().all(|r| r.method == "GET"));
    task.abort();
}

// §3.11 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn community_build_binds_with_the_users_pat_through_v2() {
    let bb = bitbucket().await;
    let sq = sonarqube(Edition::Community, COMMUNITY_BUILD, "").await;
    let client = admin(&sq);
    client.create_bitbucket("bb", &bb.base_url(), &secret(PAT)).await.expect("created");

    // The commercial endpoint is not there.
    let error = client.set_bitbucket_binding(&binding("bb", "app", BB_PROJECT, BB_SLUG, false)).await.expect_err("CE");
    assert!(matches!(error, Error::EndpointMissing { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Unsupported);

    let ids = client.dop_settings().await.expect("listed");
    let id = ids.iter().find(|s| s.key == "bb").map(|s| s.id.clone()).expect("bb has an id");
    assert_ne!(id, "bb", "the id is not the key");
    let bound = BoundProject {
        project_key: "svc-payments".into(),
        project_name: "Payments".into(),
        dev_ops_platform_setting_id: id,
        bitbucket_project: BB_PROJECT.into(),
        slug: BB_SLUG.into(),
        monorepo: false,
    };

    // The global setting's PAT does not count: the calling user needs their own.
    let error = client.put_bound_project(&bound).await.expect_err("no user PAT");
    assert_eq!(error, Error::UserPatMissing { setting: bound.dev_ops_platform_setting_id.clone() });
    assert_eq!(error.class(), ErrorClass::Invalid);
    assert!(error.to_string().contains("set_pat"), "says what to do: {error}");
    assert!(!sq.simulator().projects().iter().any(|(key, _)| key == "svc-payments"), "nothing created");

    client.set_pat("bb", &secret(PAT)).await.expect("stored");
    assert_eq!(sq.simulator().user_pat("operator", "bb").as_deref(), Some(PAT));
    let result = client.put_bound_project(&bound).await.expect("created and bound");
    assert!(result.new_project_created);
    let read = client.get_binding("svc-payments").await.expect("read").expect("bound");
    assert_eq!(
        (read.key.as_str(), read.repository.as_deref(), read.slug.as_deref()),
        ("bb", Some("PAY"), Some(BB_SLUG))
    );

    // Idempotent: again, the project is not created twice.
    let again = client.put_bound_project(&bound).await.expect("again");
    assert!(!again.new_project_created);
    assert_eq!(again.project_id, result.project_id);
}

// Auth schemes -----------------------------------------------------------------------------------

#[tokio::test]
async fn basic_on_9_9_and_bearer_on_calendar_versions_and_no_validate_probe() {
    for (edition, version, scheme) in [
        (Edition::Developer, CLASSIC_99, "basic"),
        (Edition::Developer, "10.7.0.96327", "bearer"),
        (Edition::Community, COMMUNITY_BUILD, "bearer"),
        (Edition::Enterprise, SERVER, "bearer"),
    ] {
        let sq = sonarqube(edition, version, "").await;
        let info = admin(&sq).server_info().await.unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(info.version.to_string(), version);
        assert_eq!(info.user.login.as_deref(), Some("operator"), "{version}: logged in, not anonymous");
        let requests = sq.simulator().requests();
        for record in &requests {
            if record.path == "/api/server/version" || record.path == "/api/system/status" {
                continue;
            }
            assert_eq!((record.auth.as_str(), record.user.as_deref()), (scheme, Some("operator")), "{version}");
        }
        assert_eq!(count(&sq, "GET /api/authentication/validate"), 0, "{version}: validate proves nothing");
        assert!(count(&sq, "GET /api/alm_settings/list_definitions") >= 1, "{version}: an admin-only probe");
    }
}

// Error classes ----------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_and_expired_tokens_are_credential_errors() {
    let sq = enterprise("").await;
    let unknown = client(&sq, "squ_0unknown0token0009").server_info().await.expect_err("unknown token");
    assert_eq!(unknown, Error::BadToken { expired: false });
    let expired = client(&sq, EXPIRED).server_info().await.expect_err("expired token");
    assert_eq!(expired, Error::BadToken { expired: true });
    for error in [unknown, expired] {
        assert_eq!(error.class(), ErrorClass::Credentials);
    }
    // Revoked after it worked.
    let client = client(&sq, ADMIN);
    client.server_info().await.expect("works");
    sq.simulator().revoke_token(ADMIN);
    assert_eq!(client.list_definitions().await.expect_err("revoked").class(), ErrorClass::Credentials);
}

#[tokio::test]
async fn missing_permissions_and_analysis_tokens_are_permission_errors() {
    let sq = enterprise("").await;
    for token in [VIEWER, ANALYSIS] {
        let error = client(&sq, token).server_info().await.expect_err(token);
        assert!(matches!(error, Error::Forbidden { permission: "Administer System", .. }), "{error:?}");
        assert_eq!(error.class(), ErrorClass::Permission);
        assert!(error.to_string().contains("Administer System"), "says what to grant: {error}");
    }
}

#[tokio::test]
async fn a_server_that_is_not_up_is_waited_for() {
    let sq = enterprise("").await;
    let client = admin(&sq);
    for status in ["STARTING", "DB_MIGRATION_RUNNING", "DB_MIGRATION_NEEDED", "RESTARTING"] {
        sq.simulator().set_status(status).expect("a status");
        assert_eq!(client.status().await, Ok(ServerStatus::NotUp(status.into())));
        let error = client.server_info().await.expect_err(status);
        assert_eq!(error, Error::NotUp { status: status.into() });
        assert!(error.is_transient(), "{status}");
    }
    sq.simulator().set_status("UP").expect("up");
    client.server_info().await.expect("up again");
}

// Retries --------------------------------------------------------------------------------------

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried_for_reads_only() {
    let faults = [
        ("500", Faults { error_rate: 1.0, ..Faults::default() }),
        ("dropped", Faults { drop_rate: 1.0, ..Faults::default() }),
    ];
    for (what, fault) in faults {
        let sq = enterprise("").await;
        let client = admin(&sq);
        client.version().await.expect("the version is read before the faults");
        sq.simulator().clear_requests();
        sq.simulator().set_faults(fault);

        let error = client.list_definitions().await.expect_err(what);
        assert!(error.is_transient(), "{what}: {error:?}");
        assert_eq!(count(&sq, "GET /api/alm_settings/list_definitions"), 3, "{what}: a read is tried three times");

        let error = client.create_bitbucket("bb", URL, &secret(PAT)).await.expect_err(what);
        assert!(error.is_transient(), "{what}: {error:?}");
        assert_eq!(count(&sq, "POST /api/alm_settings/create_bitbucket"), 1, "{what}: a write is sent once");

        // Once SonarQube is healthy again, a read that failed before succeeds.
        sq.simulator().set_faults(Faults::default());
        client.list_definitions().await.expect("healthy again");
    }
}

#[tokio::test]
async fn a_flaky_server_is_read_through() {
    let sq = enterprise("").await;
    let client = admin(&sq);
    client.create_bitbucket("bb", URL, &secret(PAT)).await.expect("created");
    sq.simulator().set_fault_seed(7);
    sq.simulator().set_faults(Faults { error_rate: 0.3, ..Faults::default() });
    let mut answered = 0;
    for _ in 0..20 {
        if let Ok(listed) = client.list_definitions().await {
            assert!(listed.bitbucket("bb").is_some());
            answered += 1;
        }
    }
    // With three attempts a read fails only when all three do (0.3³ ≈ 3%).
    assert!(answered >= 15, "{answered} of 20 reads got through");
    let failed = sq.simulator().requests().iter().filter(|r| r.status == 500).count();
    assert!(failed > 0, "the faults were injected");
}

// Paging ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_search_for_more_projects_than_a_page_finds_them_all() {
    const PROJECTS: usize = 1234;
    let mut seed = SonarSeed::from_yaml(&crate::common::seed_yaml(Edition::Enterprise, SERVER, "")).expect("seed");
    seed.projects = (0..PROJECTS)
        .map(|i| SonarProjectSeed { key: format!("proj-{i:04}"), name: format!("Project {i}"), admins: Vec::new() })
        .collect();
    let sq = serve(seed).await;
    let client = admin(&sq);
    let keys: Vec<String> = (0..PROJECTS).map(|i| format!("proj-{i:04}")).rev().collect();

    let found = client.search_projects(&keys).await.expect("searched");
    let found_keys: BTreeSet<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(found.len(), PROJECTS, "no project twice");
    assert_eq!(found_keys, keys.iter().map(String::as_str).collect::<BTreeSet<_>>());
    let pages = count(&sq, "GET /api/projects/search");
    assert!(pages >= PROJECTS.div_ceil(500) as u64, "{pages} requests for {PROJECTS} projects");
    println!("projects/search: {pages} requests for {PROJECTS} projects");

    // Keys that do not exist are simply not found.
    let some = vec!["proj-0001".to_owned(), "nope".to_owned()];
    let found = client.search_projects(&some).await.expect("searched");
    assert_eq!(found.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["proj-0001"]);
}
