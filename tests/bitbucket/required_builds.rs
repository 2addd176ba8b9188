//! The required-builds client against the simulator (bitbucket-api.md §8.3): the round trip with
//! server-assigned ids, paging, the 204 of a delete, permissions, servers without the API and
//! invalid requests.

use std::time::Duration;

use bitbucket_operator::{
    bitbucket::{
        Client, ClientConfig, Credentials, Error, ErrorClass, RateLimit, RefMatcher, RefMatcherType,
        RequiredBuildRequest, RetryPolicy, Secret,
    },
    simulator::{RunningSimulator, Seed, Simulator},
};
use serde_json::json;

use crate::support::fixtures::{OPERATOR_TOKEN, READER_TOKEN, SEED};

/// Versions that have the API, its first one included.
const WITH_API: [&str; 4] = ["7.14.0", "8.19.1", "9.4.22", "10.2.1"];

async fn simulator_as(version: &str) -> RunningSimulator {
    let server = "server: {version: \"9.4.22\", displayName: Bitbucket}";
    assert_eq!(SEED.matches(server).count(), 1, "the fixture names its server once");
    let yaml = SEED.replacen(server, &format!("server: {{version: \"{version}\", displayName: Bitbucket}}"), 1);
    let seed = Seed::from_yaml(&yaml).expect("the seed parses");
    Simulator::new(seed).expect("seed").serve("127.0.0.1:0".parse().expect("addr")).await.expect("serve")
}

async fn client(sim: &RunningSimulator, token: &str) -> Client {
    let mut config = ClientConfig::new(sim.base_url(), Credentials::Token(Secret::new(token)));
    config.rate_limit = RateLimit { requests_per_second: 1000, burst: 1000 };
    config.retry =
        RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(20) };
    let client = Client::new(config).expect("client");
    client.verify_connection().await.expect("the token works");
    client
}

fn branch(name: &str) -> RefMatcher {
    RefMatcher { id: format!("refs/heads/{name}"), kind: RefMatcherType::Branch }
}

fn request(keys: &[&str], target: RefMatcher) -> RequiredBuildRequest {
    RequiredBuildRequest {
        build_parent_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        ref_matcher: target,
        exempt_ref_matcher: None,
    }
}

/// Requests the simulator served for `METHOD template`, over both API versions.
fn served(sim: &RunningSimulator, method_and_suffix: (&str, &str)) -> u64 {
    let (method, suffix) = method_and_suffix;
    sim.simulator()
        .request_counts()
        .into_iter()
        .filter(|(endpoint, _)| endpoint.starts_with(method) && endpoint.ends_with(suffix))
        .map(|(_, count)| count)
        .sum()
}

#[tokio::test]
async fn conditions_are_created_listed_replaced_and_deleted_by_id() {
    for version in WITH_API {
        let sim = simulator_as(version).await;
        let admin = client(&sim, OPERATOR_TOKEN).await;
        assert_eq!(admin.list_required_builds("PAY", "payments-api").await.expect("list"), vec![], "{version}");

        let main = admin
            .create_required_build("PAY", "payments-api", &request(&["ci-build"], branch("main")))
            .await
            .expect("create");
        let mut release =
            request(&["ci-build", "lint"], RefMatcher { id: "release/*".into(), kind: RefMatcherType::Pattern });
        release.exempt_ref_matcher = Some(RefMatcher { id: "HOTFIX".into(), kind: RefMatcherType::ModelCategory });
        let second = admin.create_required_build("PAY", "payments-api", &release).await.expect("create another");
        assert!(second.id > main.id, "{version}: ids are assigned by the server, increasing");
        assert_eq!(second.build_parent_keys, release.build_parent_keys);
        assert_eq!(second.exempt_ref_matcher, release.exempt_ref_matcher, "{version}");
        assert_eq!(
            admin.list_required_builds("PAY", "payments-api").await.expect("list"),
            vec![main.clone(), second.clone()]
        );

        let replaced = admin
            .update_required_build(
                "PAY",
                "payments-api",
                main.id,
                &request(&["deploy"], RefMatcher { id: String::new(), kind: RefMatcherType::AnyRef }),
            )
            .await;
        assert!(
            matches!(&replaced, Err(Error::InvalidArgument { field: "refMatcher", .. })),
            "{version}: an empty id is refused before sending: {replaced:?}"
        );
        let any = RefMatcher { id: "ANY_REF_MATCHER_ID".into(), kind: RefMatcherType::AnyRef };
        let replaced = admin
            .update_required_build("PAY", "payments-api", main.id, &request(&["deploy"], any.clone()))
            .await
            .expect("update");
        assert_eq!(
            (replaced.id, replaced.build_parent_keys.as_slice(), &replaced.ref_matcher),
            (main.id, ["deploy".to_owned()].as_slice(), &any)
        );

        admin.delete_required_build("PAY", "payments-api", main.id).await.expect("delete");
        let left = admin.list_required_builds("PAY", "payments-api").await.expect("list");
        assert_eq!(left.iter().map(|c| c.id).collect::<Vec<_>>(), vec![second.id], "{version}");
        assert_eq!(sim.simulator().required_builds("PAY", "payments-api").expect("state").len(), 1);
    }
}

#[tokio::test]
async fn a_list_longer_than_a_page_is_read_to_the_end() {
    let sim = simulator_as("9.4.22").await;
    sim.simulator().set_page_limit(2);
    let mut added = Vec::new();
    for key in ["a", "b", "c", "d", "e"] {
        let condition =
            json!({"buildParentKeys": [key], "refMatcher": {"id": "refs/heads/main", "type": {"id": "BRANCH"}}});
        added.push(sim.simulator().add_required_build("PAY", "payments-api", condition).expect("added in the UI"));
    }
    let admin = client(&sim, OPERATOR_TOKEN).await;
    let listed = admin.list_required_builds("PAY", "payments-api").await.expect("list");
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), added);
    let keys: Vec<String> = listed.iter().flat_map(|c| c.build_parent_keys.clone()).collect();
    assert_eq!(keys, ["a", "b", "c", "d", "e"]);
    assert_eq!(served(&sim, ("GET", "/conditions")), 3, "pages of two: three requests");
}

#[tokio::test]
async fn deleting_a_condition_that_never_existed_succeeds() {
    let sim = simulator_as("9.4.22").await;
    let condition = json!({"buildParentKeys": ["ci"], "refMatcher": {"type": {"id": "ANY_REF"}}});
    let kept = sim.simulator().add_required_build("PAY", "payments-api", condition).expect("added");
    let admin = client(&sim, OPERATOR_TOKEN).await;
    admin.delete_required_build("PAY", "payments-api", kept + 1000).await.expect("a 204 for an unknown id");
    let left = admin.list_required_builds("PAY", "payments-api").await.expect("list");
    assert_eq!(left.iter().map(|c| c.id).collect::<Vec<_>>(), vec![kept], "the others stay");

    let missing = admin.delete_required_build("PAY", "nope", 1).await.expect_err("no such repository");
    assert!(matches!(missing, Error::RepositoryNotFound { .. }), "{missing}");
    let unknown =
        admin.update_required_build("PAY", "payments-api", kept + 1000, &request(&["ci"], branch("main"))).await;
    assert!(matches!(unknown, Err(Error::NotFound { .. })), "an update needs the condition: {unknown:?}");
}

#[tokio::test]
async fn a_reader_may_list_but_its_changes_are_a_missing_permission() {
    for version in ["8.19.1", "9.4.22", "10.2.1"] {
        let sim = simulator_as(version).await;
        let condition =
            json!({"buildParentKeys": ["ci"], "refMatcher": {"id": "refs/heads/main", "type": {"id": "BRANCH"}}});
        let id = sim.simulator().add_required_build("PAY", "payments-api", condition).expect("added");
        let reader = client(&sim, READER_TOKEN).await;
        assert_eq!(reader.list_required_builds("PAY", "payments-api").await.expect("REPO_READ lists").len(), 1);

        let wanted = request(&["ci"], branch("develop"));
        let refusals = [
            reader.create_required_build("PAY", "payments-api", &wanted).await.expect_err("needs REPO_ADMIN"),
            reader.update_required_build("PAY", "payments-api", id, &wanted).await.expect_err("needs REPO_ADMIN"),
            reader.delete_required_build("PAY", "payments-api", id).await.expect_err("needs REPO_ADMIN"),
        ];
        for error in refusals {
            assert_eq!(error.class(), ErrorClass::Permission, "{version}: {error}");
            assert!(error.to_string().contains("REPO_ADMIN"), "says what to grant: {error}");
        }
        // Not taken for a bad credential: the token keeps working.
        reader.list_required_builds("PAY", "payments-api").await.expect("still works");
        assert_eq!(sim.simulator().required_builds("PAY", "payments-api").expect("state").len(), 1, "{version}");
    }
}

#[tokio::test]
async fn a_server_older_than_7_14_is_unsupported_not_empty() {
    let sim = simulator_as("7.13.1").await;
    let admin = client(&sim, OPERATOR_TOKEN).await;
    let wanted = request(&["ci"], branch("main"));
    for error in [
        admin.list_required_builds("PAY", "payments-api").await.expect_err("unsupported"),
        admin.create_required_build("PAY", "payments-api", &wanted).await.expect_err("unsupported"),
        admin.update_required_build("PAY", "payments-api", 1, &wanted).await.expect_err("unsupported"),
        admin.delete_required_build("PAY", "payments-api", 1).await.expect_err("unsupported"),
    ] {
        assert!(matches!(error, Error::UnsupportedServer { .. }), "{error}");
        assert!(error.to_string().contains("required-builds API"), "names the API: {error}");
    }
}

#[tokio::test]
async fn invalid_requests_name_the_field() {
    let sim = simulator_as("9.4.22").await;
    let admin = client(&sim, OPERATOR_TOKEN).await;
    let before = sim.simulator().request_count();
    let too_many: Vec<String> = (0..101).map(|i| format!("build-{i}")).collect();
    for keys in [Vec::new(), too_many, vec!["ci".to_owned(), String::new()]] {
        let wanted =
            RequiredBuildRequest { build_parent_keys: keys, ref_matcher: branch("main"), exempt_ref_matcher: None };
        let error = admin.create_required_build("PAY", "payments-api", &wanted).await.expect_err("invalid");
        assert_eq!(error.class(), ErrorClass::Invalid, "{error}");
        assert!(error.to_string().starts_with("buildParentKeys "), "names the field: {error}");
    }
    assert_eq!(sim.simulator().request_count(), before, "nothing is sent that Bitbucket would refuse");

    // A matcher type the server does not know is Bitbucket's 400.
    let tag = request(&["ci"], RefMatcher { id: "refs/tags/v1".into(), kind: RefMatcherType::Other("TAG".into()) });
    let error = admin.create_required_build("PAY", "payments-api", &tag).await.expect_err("unknown type");
    assert_eq!(error, Error::InvalidRequest { field: Some("refMatcher.type".into()) });
    assert!(sim.simulator().required_builds("PAY", "payments-api").expect("state").is_empty());
}

#[tokio::test]
async fn the_default_branch_is_read_as_a_full_ref_and_follows_a_change() {
    let sim = simulator_as("8.19.1").await;
    let reader = client(&sim, READER_TOKEN).await;
    let before = reader.default_branch("PAY", "payments-api").await.expect("read");
    assert!(before.starts_with("refs/heads/"), "{before}");
    sim.simulator().set_default_branch("PAY", "payments-api", "develop").expect("change it");
    assert_eq!(reader.default_branch("PAY", "payments-api").await.expect("read"), "refs/heads/develop");
    let missing = reader.default_branch("PAY", "no-such-repo").await.expect_err("a missing repository");
    assert_eq!(missing.class(), ErrorClass::NotFound, "{missing}");
}
