//! Where the secrets go: the token only in the Authorization header, PATs only in request bodies,
//! and neither in the text of any error the client returns.

use bitbucket_operator::{
    simulator::{Faults, sonarqube::Edition},
    sonarqube::{BitbucketBinding, BoundProject, Error},
};

use crate::common::{
    ADMIN, ANALYSIS, BB_PROJECT, BB_SLUG, COMMUNITY_BUILD, EXPIRED, NEW_PAT, PAT, VIEWER, admin, bitbucket, client,
    closed_port, enterprise, secret, sonarqube,
};

const SECRETS: [&str; 6] = [ADMIN, VIEWER, ANALYSIS, EXPIRED, NEW_PAT, PAT];

fn assert_clean(errors: &[Error], secrets: &[&str]) {
    assert!(!errors.is_empty());
    for error in errors {
        let shown = format!("{error} | {error:?}");
        for secret in secrets {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}

#[tokio::test]
async fn no_secret_in_a_query_string_or_an_error_text() {
    let bb = bitbucket().await;
    let b = bb.base_url();
    let down = closed_port();
    let sq = enterprise(&format!(
        "almSettings: [{{key: down, alm: bitbucket, url: '{down}', personalAccessToken: {NEW_PAT}}}]"
    ))
    .await;
    let client_ = admin(&sq);
    let mut errors = Vec::new();

    client_.server_info().await.expect("works");
    client_.create_bitbucket("bb", &b, &secret(PAT)).await.expect("created");
    client_.update_bitbucket("bb", None, &b, Some(&secret(NEW_PAT))).await.expect("updated");
    client_.update_bitbucket("bb", None, &b, Some(&secret(PAT))).await.expect("updated");
    client_.validate_alm_setting("bb").await.expect("valid");
    client_.set_pat("bb", &secret(NEW_PAT)).await.expect("stored");
    errors.push(client_.validate_alm_setting("down").await.expect_err("unreachable"));
    errors.push(client_.create_bitbucket("bb", &b, &secret(NEW_PAT)).await.expect_err("taken"));
    errors.push(client_.update_bitbucket("bb", None, "https://elsewhere.example.com", None).await.expect_err("no PAT"));
    errors.push(client_.update_bitbucket("nope", None, &b, Some(&secret(NEW_PAT))).await.expect_err("no setting"));
    let binding = BitbucketBinding {
        alm_setting: "bb".into(),
        project: "ghost".into(),
        repository: BB_PROJECT.into(),
        slug: BB_SLUG.into(),
        monorepo: false,
    };
    errors.push(client_.set_bitbucket_binding(&binding).await.expect_err("no project"));
    for token in [VIEWER, ANALYSIS, EXPIRED, "squ_0unknown0token0009"] {
        errors.push(client(&sq, token).server_info().await.expect_err(token));
    }
    sq.simulator().set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    errors.push(client_.update_bitbucket("bb", None, &b, Some(&secret(NEW_PAT))).await.expect_err("500"));
    sq.simulator().set_faults(Faults { drop_rate: 1.0, ..Faults::default() });
    errors.push(client_.set_pat("bb", &secret(NEW_PAT)).await.expect_err("dropped"));
    sq.simulator().set_faults(Faults::default());

    // Community Build: the v2 JSON body carries no PAT, set_pat's form body does.
    let ce = sonarqube(Edition::Community, COMMUNITY_BUILD, "").await;
    let ce_client = admin(&ce);
    ce_client.create_bitbucket("bb", &b, &secret(PAT)).await.expect("created");
    let id = ce_client.dop_settings().await.expect("listed").into_iter().find(|s| s.key == "bb").expect("bb").id;
    let bound = BoundProject {
        project_key: "svc".into(),
        project_name: "Svc".into(),
        dev_ops_platform_setting_id: id,
        bitbucket_project: BB_PROJECT.into(),
        slug: "does-not-exist".into(),
        monorepo: false,
    };
    errors.push(ce_client.put_bound_project(&bound).await.expect_err("no user PAT"));
    ce_client.set_pat("bb", &secret(NEW_PAT)).await.expect("stored");
    errors.push(ce_client.put_bound_project(&bound).await.expect_err("the PAT cannot read it"));
    errors.push(ce_client.set_bitbucket_binding(&binding).await.expect_err("no such endpoint"));

    assert_clean(&errors, &SECRETS);
    let requests: Vec<_> = sq.simulator().requests().into_iter().chain(ce.simulator().requests()).collect();
    assert!(requests.len() > 20, "the scenario ran");
    for record in &requests {
        for secret in SECRETS {
            assert!(!record.query.contains(secret), "{} {}?{}", record.method, record.path, record.query);
            assert!(!record.path.contains(secret), "{} {}", record.method, record.path);
        }
    }
}
