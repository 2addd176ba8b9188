//! The client against loopback servers that answer as real SonarQube servers do.

use serde_json::json;

use super::{
    stub::{Reply, Stub},
    *,
};
use crate::bitbucket::Secret;

const TOKEN: &str = "squ_0123456789abcdef";
const PAT: &str = "BBDC-NDU5OTk5OTk5OTk5OkPAT+/=";

fn pat() -> Secret {
    Secret::new(PAT)
}

#[tokio::test]
async fn the_auth_scheme_follows_the_version_which_is_read_once_without_the_token() {
    use base64::Engine as _;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN}:")));
    let bearer = format!("Bearer {TOKEN}");
    for (version, expected) in [
        ("9.9.4.87374", &basic),
        ("8.9.10.61524", &basic),
        ("10.7.0.96327", &bearer),
        ("26.7.0.124771", &bearer),
        ("2026.3.1.123439", &bearer),
    ] {
        let stub = Stub::start(version, |r| {
            (r.path == "api/alm_settings/count_binding").then(|| Reply::json(200, json!({"key": "bb", "projects": 4})))
        })
        .await;
        let client = stub.client(TOKEN);
        assert_eq!(client.count_binding("bb").await, Ok(4), "{version}");
        assert_eq!(client.count_binding("bb").await, Ok(4), "{version}");
        let versions = stub.to("api/server/version");
        assert_eq!(versions.len(), 1, "{version}: the version is read once");
        assert_eq!(versions[0].header("authorization"), None, "{version}: the version call is anonymous");
        for call in stub.to("api/alm_settings/count_binding") {
            assert_eq!(call.header("authorization"), Some(expected.as_str()), "{version}");
            assert_eq!(call.query_param("almSetting").as_deref(), Some("bb"));
        }
    }
}

#[tokio::test]
async fn pats_travel_only_in_form_bodies() {
    let stub = Stub::start("10.7.0.96327", |r| r.path.starts_with("api/alm_").then(Reply::no_content)).await;
    let client = stub.client(TOKEN);
    client.create_bitbucket("bb", "https://bitbucket.example.com/", &pat()).await.expect("create");
    client.update_bitbucket("bb", Some("bb2"), "https://bitbucket.example.com", Some(&pat())).await.expect("update");
    client.update_bitbucket("bb2", None, "https://bitbucket.example.com/ctx/", None).await.expect("update");
    client.set_pat("bb2", &pat()).await.expect("set_pat");

    let received = stub.received();
    for request in &received {
        assert!(!request.url_text().contains(PAT), "PAT in the URL of {}", request.path);
        assert!(!request.query.contains("NDU5"), "PAT in the query of {}", request.path);
    }
    let create = &stub.to("api/alm_settings/create_bitbucket")[0];
    assert_eq!(create.method, reqwest::Method::POST);
    assert_eq!(create.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(create.query, "", "nothing in the query of a POST");
    assert_eq!(create.form("key").as_deref(), Some("bb"));
    assert_eq!(create.form("url").as_deref(), Some("https://bitbucket.example.com"), "stored without a slash");
    assert_eq!(create.form("personalAccessToken").as_deref(), Some(PAT), "the PAT arrives intact");

    let updates = stub.to("api/alm_settings/update_bitbucket");
    assert_eq!(updates[0].form("newKey").as_deref(), Some("bb2"));
    assert_eq!(updates[0].form("personalAccessToken").as_deref(), Some(PAT));
    assert_eq!(updates[1].form("url").as_deref(), Some("https://bitbucket.example.com/ctx"), "url always sent");
    assert_eq!(updates[1].form("personalAccessToken"), None, "no PAT: the stored one is kept");
    assert_eq!(updates[1].form("newKey"), None);

    let set_pat = &stub.to("api/alm_integrations/set_pat")[0];
    assert_eq!(set_pat.form("pat").as_deref(), Some(PAT));
    assert_eq!(set_pat.form("almSetting").as_deref(), Some("bb2"));
}

#[tokio::test]
async fn empty_success_answers_are_success() {
    let stub = Stub::start("2026.3.1.123439", |r| match r.path.as_str() {
        "api/alm_settings/delete" => Some(Reply::text(200, "")),
        "api/alm_settings/validate" => Some(Reply::no_content()),
        "api/alm_settings/set_bitbucket_binding" => Some(Reply::no_content()),
        "api/alm_settings/delete_binding" => Some(Reply::no_content()),
        _ => None,
    })
    .await;
    let client = stub.client(TOKEN);
    assert_eq!(client.delete_alm_setting("bb").await, Ok(true));
    assert_eq!(client.validate_alm_setting("bb").await, Ok(()));
    let binding = BitbucketBinding {
        alm_setting: "bb".into(),
        project: "pay-api".into(),
        repository: "PAY".into(),
        slug: "api".into(),
        monorepo: false,
    };
    assert_eq!(client.set_bitbucket_binding(&binding).await, Ok(()));
    assert_eq!(client.delete_binding("pay-api").await, Ok(()));
    let set = &stub.to("api/alm_settings/set_bitbucket_binding")[0];
    assert_eq!(set.form("monorepo").as_deref(), Some("false"), "monorepo is always sent");
    assert_eq!(set.form("repository").as_deref(), Some("PAY"));
    assert_eq!(set.form("slug").as_deref(), Some("api"));
    assert_eq!(set.form("almSetting").as_deref(), Some("bb"));
    assert_eq!(stub.to("api/alm_settings/validate")[0].method, reqwest::Method::GET);
}

/// One call per endpoint family, to see how its errors come out.
async fn each_call(client: &Client) -> Vec<Result<(), Error>> {
    let binding = BitbucketBinding {
        alm_setting: "bb".into(),
        project: "pay-api".into(),
        repository: "PAY".into(),
        slug: "api".into(),
        monorepo: true,
    };
    vec![
        client.create_bitbucket("bb", "https://bitbucket.example.com", &pat()).await,
        client.update_bitbucket("bb", Some("bb2"), "https://bitbucket.example.com", None).await,
        client.set_bitbucket_binding(&binding).await,
        client.create_project("pay-api", "Payments API").await.map(|_| ()),
        client.list_definitions().await.map(|_| ()),
        client.set_pat("bb", &pat()).await,
    ]
}

#[tokio::test]
async fn sonarqube_errors_map_onto_what_the_operator_does_next() {
    struct Case {
        status: u16,
        msg: &'static str,
        expect: fn(&Error) -> bool,
    }
    let cases = [
        Case { status: 401, msg: "Authentication is required", expect: |e| *e == Error::BadToken { expired: false } },
        Case {
            status: 401,
            msg: "The token expired on 2026-11-30T10:00:00+0000",
            expect: |e| *e == Error::BadToken { expired: true },
        },
        Case {
            status: 403,
            msg: "Insufficient privileges",
            expect: |e| matches!(e, Error::Forbidden { permission, .. } if !permission.is_empty()),
        },
        Case {
            status: 404,
            msg: "Unknown url : /api/alm_settings/set_bitbucket_binding",
            expect: |e| matches!(e, Error::EndpointMissing { .. }),
        },
        Case {
            status: 400,
            msg: "A BITBUCKET setting is already defined",
            expect: |e| *e == Error::EditionLimit { platform: "BITBUCKET" },
        },
        Case {
            status: 400,
            msg: "A BITBUCKET_CLOUD setting is already defined",
            expect: |e| *e == Error::EditionLimit { platform: "BITBUCKET_CLOUD" },
        },
        Case {
            status: 400,
            msg: "Please provide the Personal Access Token to update the URL.",
            expect: |e| matches!(e, Error::PatRequiredForUrlChange { .. }),
        },
        Case { status: 503, msg: "", expect: |e| *e == Error::Server { status: 503 } },
        Case {
            status: 405,
            msg: "HTTP method POST is required",
            expect: |e| matches!(e, Error::UnexpectedResponse { status: 405, .. }),
        },
    ];
    for case in cases {
        let (status, msg) = (case.status, case.msg);
        let stub = Stub::start("10.7.0.96327", move |r| {
            (r.path.starts_with("api/alm_") || r.path.starts_with("api/projects")).then(|| Reply::v1_error(status, msg))
        })
        .await;
        for (index, result) in each_call(&stub.client(TOKEN)).await.into_iter().enumerate() {
            let error = result.expect_err("an error");
            assert!((case.expect)(&error), "{status} {msg:?}, call {index}: {error:?}");
        }
    }
}

#[tokio::test]
async fn keys_and_projects_named_in_errors_are_the_ones_sent() {
    let stub = Stub::start("10.7.0.96327", |r| match r.path.as_str() {
        "api/alm_settings/create_bitbucket" => {
            Some(Reply::v1_error(400, "An DevOps Platform setting with key 'bb' already exists"))
        }
        "api/alm_settings/update_bitbucket" => {
            Some(Reply::v1_error(400, "An DevOps Platform setting with key 'bb2' already exists"))
        }
        "api/alm_settings/delete" => {
            Some(Reply::v1_error(404, "DevOps Platform setting with key 'gone' cannot be found"))
        }
        "api/alm_settings/count_binding" => {
            Some(Reply::v1_error(404, "DevOps Platform setting with key '<script>' cannot be found"))
        }
        "api/projects/create" => Some(Reply::v1_error(
            400,
            "Could not create Project with key: \"Pay-API\". A similar key already exists: \"pay-api\"",
        )),
        "api/alm_settings/get_binding" => Some(Reply::v1_error(404, "Project 'pay-api' not found")),
        _ => None,
    })
    .await;
    let client = stub.client(TOKEN);
    assert_eq!(
        client.create_bitbucket("bb", "https://b.example.com", &pat()).await,
        Err(Error::KeyTaken { key: "bb".into() })
    );
    assert_eq!(
        client.update_bitbucket("bb", Some("bb2"), "https://b.example.com", None).await,
        Err(Error::KeyTaken { key: "bb2".into() }),
        "a rename onto a taken key names the new key"
    );
    assert_eq!(client.delete_alm_setting("gone").await, Ok(false), "deleting what is gone is done");
    assert_eq!(
        client.count_binding("bb").await,
        Err(Error::AlmSettingNotFound { key: "bb".into() }),
        "a key the server quotes but we did not send is not repeated"
    );
    assert_eq!(
        client.create_project("Pay-API", "Payments").await,
        Err(Error::ProjectKeyCollision { project: "Pay-API".into() })
    );
    assert_eq!(client.get_binding("pay-api").await, Err(Error::ProjectNotFound { project: "pay-api".into() }));
}

#[tokio::test]
async fn an_unbound_project_has_no_binding_on_new_and_old_servers() {
    for status in [404, 400] {
        let stub = Stub::start("9.9.4.87374", move |r| {
            (r.path == "api/alm_settings/get_binding")
                .then(|| Reply::v1_error(status, "Project 'pay-api' is not bound to any DevOps Platform"))
        })
        .await;
        assert_eq!(stub.client(TOKEN).get_binding("pay-api").await, Ok(None), "{status}");
    }
    let stub = Stub::start("2026.3.1.123439", |r| match r.path.as_str() {
        "api/alm_settings/get_binding" => Some(Reply::json(
            200,
            json!({"key": "bb", "alm": "bitbucket", "repository": "PAY", "slug": "api",
                   "url": "https://bitbucket.example.com", "monorepo": true, "newField": 1}),
        )),
        "api/alm_settings/delete_binding" => {
            Some(Reply::v1_error(404, "Project 'pay-api' is not bound to any DevOps Platform"))
        }
        _ => None,
    })
    .await;
    let client = stub.client(TOKEN);
    let binding = client.get_binding("pay-api").await.expect("read").expect("bound");
    assert_eq!(
        binding,
        Binding {
            alm: Alm::Bitbucket,
            key: "bb".into(),
            repository: Some("PAY".into()),
            slug: Some("api".into()),
            url: Some("https://bitbucket.example.com".into()),
            monorepo: true,
        }
    );
    assert_eq!(stub.to("api/alm_settings/get_binding")[0].query_param("project").as_deref(), Some("pay-api"));
    assert_eq!(client.delete_binding("pay-api").await, Ok(()), "deleting an absent binding is done");
}

#[tokio::test]
async fn a_community_build_lacks_binding_endpoints() {
    let stub = Stub::start("26.7.0.124771", |_| None).await;
    let client = stub.client(TOKEN);
    assert_eq!(
        client.delete_binding("pay-api").await,
        Err(Error::EndpointMissing { endpoint: "POST api/alm_settings/delete_binding" })
    );
}

#[tokio::test]
async fn validation_failures_are_told_in_our_words() {
    let cases = [
        ("Invalid personal access token", ValidationFailure::InvalidPat),
        ("Unable to contact Bitbucket server", ValidationFailure::Unreachable),
        ("Error 404. The requested Bitbucket server is unreachable.", ValidationFailure::NotFoundAtUrl),
        ("something new, with the PAT BBDC-NDU5OTk5OTk5OTk5OkPAT+/=", ValidationFailure::Other),
    ];
    for (msg, reason) in cases {
        let stub = Stub::start("10.7.0.96327", move |r| {
            (r.path == "api/alm_settings/validate").then(|| Reply::v1_error(400, msg))
        })
        .await;
        let error = stub.client(TOKEN).validate_alm_setting("bb").await.expect_err("invalid");
        assert_eq!(error, Error::ValidationFailed { key: "bb".into(), reason }, "{msg}");
        assert!(!error.to_string().contains(msg), "the raw message is not repeated: {error}");
    }
}

#[tokio::test]
async fn no_error_shows_a_token_a_pat_or_a_raw_body() {
    // Every kind of answer echoes the secrets back, as a careless proxy or server might: in
    // SonarQube's error envelope, and as a page that is not JSON at all.
    let echo = format!("token {TOKEN} pat {PAT} <html>raw</html>");
    for status in [400, 401, 403, 404, 405, 409, 418, 500, 302] {
        for enveloped in [true, false] {
            let echo = echo.clone();
            let stub = Stub::start("10.7.0.96327", move |r| {
                let reply = if enveloped { Reply::v1_error(status, &echo) } else { Reply::text(status, &echo) };
                (r.path.starts_with("api/alm_") || r.path.starts_with("api/projects"))
                    .then(|| reply.with_header("location", "https://elsewhere.example.com/"))
            })
            .await;
            for result in each_call(&stub.client(TOKEN)).await {
                let error = result.expect_err("an error");
                for text in [error.to_string(), format!("{error:?}")] {
                    assert!(!text.contains(TOKEN) && !text.contains(PAT) && !text.contains("NDU5"), "{status}: {text}");
                    assert!(!text.contains("{\"errors\""), "{status}: {text}");
                    assert!(enveloped || !text.contains("raw</html>"), "{status}: a raw page is never shown: {text}");
                }
            }
        }
    }
    let config = ClientConfig::new("https://sonar.example.com", Secret::new(TOKEN));
    assert!(!format!("{config:?}").contains(TOKEN));
}

#[tokio::test]
async fn the_connection_check_reports_version_edition_user_and_capabilities() {
    let stub = Stub::start("2026.3.1.123439", |r| match r.path.as_str() {
        "api/navigation/global" => Some(Reply::json(200, json!({"edition": "enterprise", "qualifiers": ["TRK"]}))),
        "api/users/current" => {
            Some(Reply::json(200, json!({"isLoggedIn": true, "login": "svc-operator", "name": "Operator\u{202e}"})))
        }
        "api/alm_settings/list_definitions" => Some(Reply::json(200, json!({"bitbucket": []}))),
        _ => None,
    })
    .await;
    let info = stub.client(TOKEN).server_info().await.expect("info");
    assert_eq!(info.version.scheme, VersionScheme::Server);
    assert_eq!(info.version.to_string(), "2026.3.1.123439");
    assert_eq!(info.edition, Edition::Enterprise);
    assert_eq!(info.user.login.as_deref(), Some("svc-operator"));
    assert_eq!(info.user.name, None, "a name with a bidirectional override is not kept");
    assert!(info.capabilities.several_bitbucket_settings && info.capabilities.monorepo);
    assert_eq!(info.capabilities.bindings, BindingSupport::SetBitbucketBinding);
    assert!(stub.to("api/authentication/validate").is_empty(), "validate proves nothing");
    assert_eq!(stub.to("api/system/status")[0].header("authorization"), None);
}

#[tokio::test]
async fn the_connection_check_fails_for_each_reason_it_can() {
    type Route = fn(&stub::Received) -> Option<Reply>;
    type Expect = fn(&Error) -> bool;
    let cases: [(&str, Route, Expect); 5] = [
        (
            "10.7.0.96327",
            |r| (r.path == "api/system/status").then(|| Reply::json(200, json!({"status": "DB_MIGRATION_RUNNING"}))),
            |e| *e == Error::NotUp { status: "DB_MIGRATION_RUNNING".into() },
        ),
        (
            "10.7.0.96327",
            |r| (r.path == "api/users/current").then(|| Reply::json(200, json!({"isLoggedIn": false}))),
            |e| *e == Error::BadToken { expired: false },
        ),
        (
            "10.7.0.96327",
            |r| match r.path.as_str() {
                "api/users/current" => Some(Reply::json(200, json!({"isLoggedIn": true, "login": "svc"}))),
                "api/navigation/global" => Some(Reply::json(200, json!({}))),
                "api/alm_settings/list_definitions" => Some(Reply::v1_error(403, "Insufficient privileges")),
                _ => None,
            },
            |e| matches!(e, Error::Forbidden { permission: "Administer System", .. }),
        ),
        (
            "<html>not a version</html>",
            |_| None,
            |e| matches!(e, Error::UnsupportedServer { reason } if !reason.contains("html")),
        ),
        ("7.9.6.1234", |_| None, |e| matches!(e, Error::UnsupportedServer { reason } if reason.contains("7.9.6"))),
    ];
    for (version, route, expect) in cases {
        let stub = Stub::start(version, route).await;
        let error = stub.client(TOKEN).server_info().await.expect_err("fails");
        assert!(expect(&error), "{version}: {error:?}");
    }
}

#[tokio::test]
async fn reads_are_retried_and_writes_are_not_except_after_429() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let reads = std::sync::Arc::new(AtomicUsize::new(0));
    let posts = std::sync::Arc::new(AtomicUsize::new(0));
    let (r2, p2) = (reads.clone(), posts.clone());
    let stub = Stub::start("10.7.0.96327", move |r| match r.path.as_str() {
        "api/alm_settings/count_binding" => Some(if r2.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::text(503, "busy")
        } else {
            Reply::json(200, json!({"key": "bb", "projects": 2}))
        }),
        "api/alm_settings/delete" => Some(Reply::text(502, "bad gateway")),
        "api/alm_settings/create_bitbucket" => Some(if p2.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::text(429, "slow down").with_header("retry-after", "0")
        } else {
            Reply::no_content()
        }),
        _ => None,
    })
    .await;
    let client = stub.client(TOKEN);
    assert_eq!(client.count_binding("bb").await, Ok(2));
    assert_eq!(stub.to("api/alm_settings/count_binding").len(), 2);
    assert_eq!(client.delete_alm_setting("bb").await, Err(Error::Server { status: 502 }));
    assert_eq!(stub.to("api/alm_settings/delete").len(), 1, "a POST that may have run is not repeated");
    assert_eq!(client.create_bitbucket("bb", "https://b.example.com", &pat()).await, Ok(()));
    assert_eq!(stub.to("api/alm_settings/create_bitbucket").len(), 2, "a 429 ran nothing: repeated");
}

#[tokio::test]
async fn redirects_are_not_followed_and_large_answers_are_refused() {
    let stub = Stub::start("10.7.0.96327", |r| match r.path.as_str() {
        "api/alm_settings/count_binding" => {
            Some(Reply::text(302, "").with_header("location", "https://login.example.com/"))
        }
        "api/alm_settings/list_definitions" => Some(Reply::text(200, &"x".repeat(64 * 1024))),
        _ => None,
    })
    .await;
    let limits = crate::bitbucket::Limits { body_bytes: 16 * 1024, ..Default::default() };
    let client =
        Client::new(ClientConfig::new(stub.url.clone(), Secret::new(TOKEN)).with_limits(limits)).expect("client");
    assert!(matches!(client.count_binding("bb").await, Err(Error::UnsupportedServer { .. })));
    assert!(matches!(client.list_definitions().await, Err(Error::ResponseTooLarge { .. })));
    assert_eq!(stub.to("api/alm_settings/count_binding").len(), 1, "a redirect is neither followed nor retried");
}

#[tokio::test]
async fn projects_are_searched_in_groups_and_pages() {
    let stub = Stub::start("10.7.0.96327", |r| {
        if r.path != "api/projects/search" {
            return None;
        }
        let keys: Vec<String> = r.query_param("projects")?.split(',').map(str::to_owned).collect();
        let page: usize = r.query_param("p")?.parse().ok()?;
        let size: usize = r.query_param("ps")?.parse().ok()?;
        // Only keys ending in an even digit exist.
        let existing: Vec<&String> = keys.iter().filter(|k| k.ends_with(['0', '2', '4', '6', '8'])).collect();
        let components: Vec<_> = existing
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(|k| json!({"key": k, "name": format!("Name of {k}"), "qualifier": "TRK"}))
            .collect();
        Some(Reply::json(
            200,
            json!({"paging": {"pageIndex": page, "pageSize": size, "total": existing.len()}, "components": components}),
        ))
    })
    .await;
    let keys: Vec<String> = (0..2500).map(|i| format!("p{i}")).collect();
    let found = stub.client(TOKEN).search_projects(&keys).await.expect("search");
    assert_eq!(found.len(), 1250);
    assert!(found.iter().all(|p| p.name == format!("Name of {}", p.key)));
    let calls = stub.to("api/projects/search");
    assert!(calls.iter().all(|c| c.query_param("ps").as_deref() == Some("500")));
    assert!(calls.iter().all(|c| c.query_param("projects").is_some_and(|p| p.split(',').count() <= 1000)));
    // 2500 keys in groups of 1000, 1000, 500; 500, 500 and 250 found: one page each.
    assert_eq!(calls.len(), 3);
}

#[tokio::test]
async fn the_community_path_binds_through_v2_with_json() {
    let stub = Stub::start("26.7.0.124771", |r| match r.path.as_str() {
        "api/v2/dop-translation/dop-settings" => Some(Reply::json(
            200,
            json!({"dopSettings": [{"id": "AY1234", "type": "bitbucket_server", "key": "bb", "url": "https://b"}],
                   "page": {"pageIndex": 1, "pageSize": 100, "total": 1}}),
        )),
        "api/v2/dop-translation/bound-projects" if r.body.contains("\"broken\"") => {
            Some(Reply::json(500, json!({"message": format!("cannot fetch with {PAT}")})))
        }
        "api/v2/dop-translation/bound-projects" => {
            Some(Reply::json(200, json!({"projectId": "P1", "bindingId": "B1", "newProjectCreated": true})))
        }
        _ => None,
    })
    .await;
    let client = stub.client(TOKEN);
    let settings = client.dop_settings().await.expect("settings");
    assert_eq!(settings, [DopSetting { id: "AY1234".into(), key: "bb".into(), kind: "bitbucket_server".into() }]);
    let mut bound = BoundProject {
        project_key: "pay-api".into(),
        project_name: "Payments API".into(),
        dev_ops_platform_setting_id: "AY1234".into(),
        bitbucket_project: "PAY".into(),
        slug: "api".into(),
        monorepo: false,
    };
    let result = client.put_bound_project(&bound).await.expect("bound");
    assert_eq!(
        result,
        BoundProjectResult { project_id: "P1".into(), binding_id: "B1".into(), new_project_created: true }
    );
    let put = &stub.to("api/v2/dop-translation/bound-projects")[0];
    assert_eq!(put.method, reqwest::Method::PUT);
    assert_eq!(put.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&put.body).expect("json");
    assert_eq!(
        body,
        json!({"projectKey": "pay-api", "projectName": "Payments API", "devOpsPlatformSettingId": "AY1234",
               "repositoryIdentifier": "api", "projectIdentifier": "PAY", "monorepo": false})
    );
    bound.slug = "broken".into();
    let error = client.put_bound_project(&bound).await.expect_err("unreadable");
    assert_eq!(error, Error::RepositoryUnreadable { project: "PAY".into(), slug: "broken".into() });
    assert!(!error.to_string().contains(PAT));
}

#[tokio::test]
async fn bad_arguments_are_refused_before_anything_is_sent() {
    let stub = Stub::start("10.7.0.96327", |_| Some(Reply::no_content())).await;
    let client = stub.client(TOKEN);
    let long_key = "k".repeat(201);
    let errors = [
        client.create_bitbucket("", "https://b.example.com", &pat()).await,
        client.create_bitbucket(&long_key, "https://b.example.com", &pat()).await,
        client.create_bitbucket("bb", "https://b.example.com", &Secret::new(" ")).await,
        client.create_bitbucket("bb", "ftp://b.example.com", &pat()).await,
    ];
    for result in errors {
        let error = result.expect_err("refused");
        assert!(matches!(error, Error::InvalidArgument { .. }), "{error:?}");
        assert_eq!(error.class(), ErrorClass::Invalid);
    }
    assert!(stub.to("api/alm_settings/create_bitbucket").is_empty());
    assert!(matches!(
        Client::new(ClientConfig::new("https://sonar.example.com", Secret::new(""))),
        Err(Error::Configuration(_))
    ));
    assert!(matches!(
        Client::new(
            ClientConfig::new("https://sonar.evil.test", Secret::new(TOKEN))
                .with_allowed_hosts(vec!["*.example.com".into()])
        ),
        Err(Error::Configuration(_))
    ));
}

#[tokio::test]
async fn every_request_is_reported_under_its_stable_endpoint_name() {
    #[derive(Debug, Default)]
    struct Seen(std::sync::Mutex<Vec<(&'static str, u16)>>);
    impl crate::bitbucket::Observer for Seen {
        fn request(&self, endpoint: &'static str, status: u16, _elapsed: std::time::Duration) {
            self.0.lock().expect("lock").push((endpoint, status));
        }
        fn rate_limited(&self, _waited: std::time::Duration) {}
    }
    let stub = Stub::start("10.7.0.96327", |r| {
        (r.path == "api/alm_settings/get_binding")
            .then(|| Reply::v1_error(404, "Project 'pay-api' is not bound to any DevOps Platform"))
    })
    .await;
    let seen = std::sync::Arc::new(Seen::default());
    let client = Client::new(ClientConfig::new(stub.url.clone(), Secret::new(TOKEN)).with_observer(seen.clone()))
        .expect("client");
    assert_eq!(client.get_binding("pay-api").await, Ok(None));
    assert_eq!(client.search_projects(&[]).await, Ok(Vec::new()), "no keys: nothing to ask");
    assert_eq!(
        *seen.0.lock().expect("lock"),
        [("GET api/server/version", 200), ("GET api/alm_settings/get_binding", 404)]
    );
}

#[tokio::test]
async fn v2_errors_are_read_from_their_message() {
    let stub = Stub::start("26.7.0.124771", |r| match r.path.as_str() {
        "api/v2/dop-translation/dop-settings" => Some(Reply::json(403, json!({"message": "Insufficient privileges"}))),
        "api/v2/dop-translation/bound-projects" => {
            Some(Reply::json(400, json!({"message": "No personal access token found"})))
        }
        _ => None,
    })
    .await;
    let client = stub.client(TOKEN);
    assert!(matches!(client.dop_settings().await, Err(Error::Forbidden { permission: "Create Projects", .. })));
    let bound = BoundProject {
        project_key: "pay-api".into(),
        project_name: "Payments API".into(),
        dev_ops_platform_setting_id: "AY1234".into(),
        bitbucket_project: "PAY".into(),
        slug: "api".into(),
        monorepo: false,
    };
    assert_eq!(
        client.put_bound_project(&bound).await,
        Err(Error::InvalidRequest {
            endpoint: "PUT api/v2/dop-translation/bound-projects",
            message: Some("No personal access token found".into())
        })
    );
}
