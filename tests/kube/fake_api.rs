//! The fake API server of `tests/fake_kube`, driven through the real `kube::Api`, watchers,
//! reflectors and helpers, as the controllers will drive it.

use std::{sync::Arc, time::Duration};

use crate::fake_kube::{Config, FakeKube};
use bitbucket_operator::api::{BitbucketConfiguration, ClusterBitbucketConfiguration, ProjectBinding};
use futures::StreamExt;
use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Event as CoreEvent, Namespace, ObjectReference, Secret},
    events::v1::Event as EventV1,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    core::{GroupVersionKind, Status},
    runtime::{
        controller::Action,
        events::{Event as RecorderEvent, EventType, Recorder, Reporter},
        finalizer::{Event as FinalizerEvent, finalizer},
        reflector, watcher,
    },
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

fn from_json<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a valid object")
}

fn binding(name: &str) -> ProjectBinding {
    from_json(json!({
        "apiVersion": "bitbucket.integrations.dev/v1alpha1",
        "kind": "ProjectBinding",
        "metadata": {"name": name},
        "spec": {"configurationRef": {"name": "bitbucket"}, "projectKey": "PAY", "repositorySlug": "payments-api"},
    }))
}

fn configuration(name: &str) -> BitbucketConfiguration {
    from_json(json!({
        "apiVersion": "bitbucket.integrations.dev/v1alpha1",
        "kind": "BitbucketConfiguration",
        "metadata": {"name": name},
        "spec": {"url": "https://bitbucket.example.com", "auth": {"token": {"secretRef": {"name": "token"}}}},
    }))
}

fn secret(name: &str, labels: Value) -> Secret {
    from_json(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "stringData": {"token": "s3cr3t"},
    }))
}

fn condition(type_: &str, status: &str, reason: &str) -> Value {
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": format!("{type_} is {status}"),
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    })
}

/// The `Status` of a failed call.
fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn condition_types(object: &Value) -> Vec<(String, String)> {
    object["status"]["conditions"]
        .as_array()
        .map(|conditions| {
            conditions
                .iter()
                .map(|c| (c["type"].as_str().unwrap_or("").to_owned(), c["status"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn next<S, T>(stream: &mut S) -> T
where
    S: futures::Stream<Item = T> + Unpin,
{
    tokio::time::timeout(WAIT, stream.next()).await.expect("an event within 5 s").expect("the stream goes on")
}

#[tokio::test]
async fn discovery_finds_every_kind() {
    let fake = FakeKube::new();
    let client = fake.client();
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(version.major, "1");
    for discovery in [
        kube::Discovery::new(client.clone()).run().await.expect("discovery"),
        kube::Discovery::new(client.clone()).run_aggregated().await.expect("aggregated discovery"),
    ] {
        for (group, version, kind, plural) in [
            ("bitbucket.integrations.dev", "v1alpha1", "ProjectBinding", "projectbindings"),
            (
                "bitbucket.integrations.dev",
                "v1alpha1",
                "ClusterBitbucketConfiguration",
                "clusterbitbucketconfigurations",
            ),
            ("", "v1", "Secret", "secrets"),
            ("", "v1", "Event", "events"),
            ("events.k8s.io", "v1", "Event", "events"),
            ("coordination.k8s.io", "v1", "Lease", "leases"),
        ] {
            let (resource, capabilities) =
                discovery.resolve_gvk(&GroupVersionKind::gvk(group, version, kind)).expect("discovered");
            assert_eq!(resource.plural, plural);
            let cluster = kind == "ClusterBitbucketConfiguration";
            assert_eq!(capabilities.scope == kube::discovery::Scope::Cluster, cluster, "{kind}");
        }
    }
}

#[tokio::test]
async fn create_get_list_and_selectors() {
    let fake = FakeKube::new();
    let client = fake.client();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    let credential = json!({"bitbucket.integrations.dev/credential": "true", "tier": "gold"});
    let created = secrets.create(&PostParams::default(), &secret("token", credential)).await.expect("created");
    let meta = created.meta();
    assert!(meta.uid.as_deref().is_some_and(|uid| uid.len() == 36), "{meta:?}");
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, None, "Secrets have no generation");
    assert_eq!(meta.namespace.as_deref(), Some("team-a"));
    let data = created.data.as_ref().expect("stringData is folded into data");
    assert_eq!(data["token"].0, b"s3cr3t");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert!(fake.object("secrets", "team-a", "token").is_some_and(|s| s.get("stringData").is_none()));

    secrets.create(&PostParams::default(), &secret("other", json!({"tier": "silver"}))).await.expect("created");
    secrets.create(&PostParams::default(), &secret("plain", json!({}))).await.expect("created");
    let elsewhere: Api<Secret> = Api::namespaced(client.clone(), "team-b");
    elsewhere.create(&PostParams::default(), &secret("token", json!({"tier": "gold"}))).await.expect("created");
    let mut generated = secret("", json!({}));
    generated.metadata.generate_name = Some("gen-".into());
    let generated = secrets.create(&PostParams::default(), &generated).await.expect("generated name");
    assert!(generated.name_any().starts_with("gen-") && generated.name_any().len() == 9);

    let got = secrets.get("token").await.expect("get");
    assert_eq!(got.resource_version(), created.resource_version());

    let names = |list: kube::core::ObjectList<Secret>| list.items.iter().map(ResourceExt::name_any).collect::<Vec<_>>();
    let select = |labels: &str| ListParams::default().labels(labels);
    assert_eq!(names(secrets.list(&select("bitbucket.integrations.dev/credential=true")).await.unwrap()), ["token"]);
    assert_eq!(names(secrets.list(&select("tier==gold")).await.unwrap()), ["token"]);
    assert_eq!(names(secrets.list(&select("tier!=gold")).await.unwrap()).len(), 3, "!= matches absent labels too");
    assert_eq!(names(secrets.list(&select("tier in (gold, silver)")).await.unwrap()), ["other", "token"]);
    assert_eq!(names(secrets.list(&select("tier notin (gold)")).await.unwrap()).len(), 3);
    assert_eq!(names(secrets.list(&select("tier")).await.unwrap()), ["other", "token"]);
    assert_eq!(names(secrets.list(&select("!tier")).await.unwrap()).len(), 2);
    assert_eq!(
        names(secrets.list(&select("tier=gold,!bitbucket.integrations.dev/credential")).await.unwrap()).len(),
        0
    );
    assert_eq!(names(secrets.list(&ListParams::default().fields("metadata.name=other")).await.unwrap()), ["other"]);
    assert_eq!(names(secrets.list(&ListParams::default().fields("metadata.name!=other")).await.unwrap()).len(), 3);

    let all: Api<Secret> = Api::all(client.clone());
    let everywhere = all.list(&select("tier=gold")).await.expect("list in all namespaces");
    let places: Vec<_> = everywhere.items.iter().map(|s| s.namespace().unwrap_or_default()).collect();
    assert_eq!(places, ["team-a", "team-b"]);
    let in_b = all.list(&ListParams::default().fields("metadata.namespace=team-b")).await.unwrap();
    assert_eq!(in_b.items.len(), 1);
    assert!(everywhere.metadata.resource_version.is_some_and(|rv| rv == fake.resource_version().to_string()));

    let bad = api_error(secrets.list(&select("tier in (gold")).await);
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));
    let bad = api_error(secrets.list(&ListParams::default().fields("spec.nope=1")).await);
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));

    let missing = api_error(secrets.get("missing").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "secrets \"missing\" not found");
    assert!(secrets.get_opt("missing").await.expect("get_opt").is_none());
}

#[tokio::test]
async fn pages_of_a_list_follow_continue_tokens() {
    let fake = FakeKube::new();
    let secrets: Api<Secret> = Api::namespaced(fake.client(), "default");
    for index in 0..5 {
        secrets.create(&PostParams::default(), &secret(&format!("s{index}"), json!({}))).await.expect("created");
    }
    let first = secrets.list(&ListParams::default().limit(2)).await.expect("first page");
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().expect("a continue token");
    secrets.create(&PostParams::default(), &secret("late", json!({}))).await.expect("created");
    let second = secrets.list(&ListParams::default().limit(2).continue_token(&token)).await.expect("second page");
    assert_eq!(second.items.iter().map(ResourceExt::name_any).collect::<Vec<_>>(), ["s2", "s3"]);
    assert_eq!(second.metadata.resource_version, first.metadata.resource_version, "one consistent snapshot");
    fake.compact();
    let token = second.metadata.continue_.expect("a continue token");
    let expired = api_error(secrets.list(&ListParams::default().limit(2).continue_token(&token)).await);
    assert_eq!((expired.code, expired.reason.as_str()), (410, "Expired"));
    let listed = collect_watcher(secrets.clone(), watcher::Config::default().page_size(2)).await;
    assert_eq!(listed, 6, "the watcher pages through everything");
}

/// Runs a watcher until its initial list is done; returns how many objects it listed.
async fn collect_watcher<K>(api: Api<K>, config: watcher::Config) -> usize
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut stream = watcher(api, config).boxed();
    let mut count = 0;
    loop {
        match next(&mut stream).await.expect("no watch error") {
            watcher::Event::InitApply(_) => count += 1,
            watcher::Event::InitDone => return count,
            _ => {}
        }
    }
}

#[tokio::test]
async fn create_of_an_existing_object_is_409_already_exists() {
    let fake = FakeKube::new();
    let bindings: Api<ProjectBinding> = Api::namespaced(fake.client(), "default");
    bindings.create(&PostParams::default(), &binding("payments")).await.expect("created");
    let error = api_error(bindings.create(&PostParams::default(), &binding("payments")).await);
    assert_eq!((error.code, error.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(error.message, "projectbindings.bitbucket.integrations.dev \"payments\" already exists");
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_is_409_conflict() {
    let fake = FakeKube::new();
    let bindings: Api<ProjectBinding> = Api::namespaced(fake.client(), "default");
    let created = bindings.create(&PostParams::default(), &binding("payments")).await.expect("created");
    assert_eq!(created.metadata.generation, Some(1));

    let mut first = created.clone();
    first.spec.repository_slug = Some("billing".into());
    let replaced = bindings.replace("payments", &PostParams::default(), &first).await.expect("replaced");
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_ne!(replaced.resource_version(), created.resource_version());

    let mut stale = created.clone();
    stale.spec.repository_slug = Some("ledger".into());
    let error = api_error(bindings.replace("payments", &PostParams::default(), &stale).await);
    assert_eq!((error.code, error.reason.as_str()), (409, "Conflict"));
    assert!(error.message.contains("the object has been modified"), "{}", error.message);

    // Custom resources need a resourceVersion on update.
    stale.metadata.resource_version = None;
    let error = api_error(bindings.replace("payments", &PostParams::default(), &stale).await);
    assert_eq!((error.code, error.reason.as_str()), (422, "Invalid"));
    let error = api_error(bindings.replace("nope", &PostParams::default(), &binding("nope")).await);
    assert_eq!(error.code, 404);

    // An update that changes nothing writes nothing.
    let unchanged = bindings.replace("payments", &PostParams::default(), &replaced).await.expect("no-op");
    assert_eq!(unchanged.resource_version(), replaced.resource_version());
}

#[tokio::test]
async fn merge_and_json_patches() {
    let fake = FakeKube::new();
    let bindings: Api<ProjectBinding> = Api::namespaced(fake.client(), "default");
    let created = bindings.create(&PostParams::default(), &binding("payments")).await.expect("created");

    let labelled = bindings
        .patch("payments", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"team": "pay"}}})))
        .await
        .expect("merge patch");
    assert_eq!(labelled.labels().get("team").map(String::as_str), Some("pay"));
    assert_eq!(labelled.metadata.generation, Some(1), "labels are not the spec");

    let patched = bindings
        .patch(
            "payments",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"repositorySlug": null, "repositories": {"include": ["pay-*"]}}})),
        )
        .await
        .expect("merge patch removing a field");
    assert_eq!(patched.spec.repository_slug, None);
    assert_eq!(patched.metadata.generation, Some(2));
    let repositories = patched.spec.repositories.expect("set");
    assert!(repositories.exclude_archived, "defaults are applied to patched objects");

    let json_patch = |ops: Value| Patch::Json::<()>(serde_json::from_value(ops).expect("a JSON patch"));
    let with_finalizer = bindings
        .patch(
            "payments",
            &PatchParams::default(),
            &json_patch(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["bitbucket.integrations.dev/cleanup"]},
                {"op": "replace", "path": "/spec/projectKey", "value": "PAY"},
            ])),
        )
        .await
        .expect("JSON patch");
    assert_eq!(with_finalizer.finalizers(), ["bitbucket.integrations.dev/cleanup"]);

    let failed = api_error(
        bindings
            .patch(
                "payments",
                &PatchParams::default(),
                &json_patch(json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "someone-else"}])),
            )
            .await,
    );
    // As a real server answers a failed `test`: nothing says which operation failed.
    assert_eq!((failed.code, failed.reason.as_str()), (422, "Invalid"));
    assert_eq!(failed.message, "the server rejected our request due to an error in our request");
    assert!(failed.details.is_none_or(|d| d.causes.is_empty()), "no causes");
    let unchanged = bindings.get("payments").await.expect("get");
    assert_eq!(unchanged.finalizers(), ["bitbucket.integrations.dev/cleanup"], "a failed patch changes nothing");

    // Another writer wins a race: its change lands just before the patch, whose `test` fails.
    fake.race_next("PATCH", "projectbindings", json!({"metadata": {"finalizers": ["example.com/other"]}}));
    let raced = json_patch(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": ["bitbucket.integrations.dev/cleanup"]},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/mine"},
    ]));
    assert_eq!(api_error(bindings.patch("payments", &PatchParams::default(), &raced).await).code, 422);
    assert_eq!(bindings.get("payments").await.expect("get").finalizers(), ["example.com/other"]);

    let stale = json!({"metadata": {"resourceVersion": created.resource_version()}, "spec": {"monorepo": false}});
    let conflict = api_error(bindings.patch("payments", &PatchParams::default(), &Patch::Merge(stale)).await);
    assert_eq!(conflict.code, 409);

    let strategic =
        api_error(bindings.patch("payments", &PatchParams::default(), &Patch::Strategic(json!({"spec": {}}))).await);
    assert_eq!(strategic.code, 415, "custom resources take no strategic merge patch");
    let missing = api_error(bindings.patch("nope", &PatchParams::default(), &Patch::Merge(json!({}))).await);
    assert_eq!(missing.code, 404);
}

#[tokio::test]
async fn server_side_apply_merges_conditions_by_type() {
    let fake = FakeKube::new();
    let bindings: Api<ProjectBinding> = Api::namespaced(fake.client(), "default");
    let apply = |manager: &str| PatchParams::apply(manager).force();
    let object = |status: Value| json!({"apiVersion": "bitbucket.integrations.dev/v1alpha1", "kind": "ProjectBinding", "status": status});

    // Apply creates; status in an apply to the object itself is ignored.
    let mut manifest = serde_json::to_value(binding("payments")).expect("JSON");
    manifest["status"] = json!({"repositoryCount": 7});
    let created = bindings.patch("payments", &apply("gitops"), &Patch::Apply(&manifest)).await.expect("apply creates");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none_or(|s| s.repository_count == 0));

    let ready = object(json!({"conditions": [condition("Ready", "True", "InSync")], "observedGeneration": 1}));
    bindings.patch_status("payments", &apply("ready-writer"), &Patch::Apply(&ready)).await.expect("apply Ready");
    let stalled = object(json!({"conditions": [condition("Stalled", "True", "ProjectNotFound")]}));
    let both = bindings.patch_status("payments", &apply("stall-writer"), &Patch::Apply(&stalled)).await.expect("apply");
    let both = serde_json::to_value(both).expect("JSON");
    assert_eq!(condition_types(&both), [("Ready".into(), "True".into()), ("Stalled".into(), "True".into())]);
    assert_eq!(both["metadata"]["generation"], 1, "status writes do not bump generation");

    // Re-applying Ready replaces it (same key), and leaves the other manager's Stalled alone.
    let not_ready = object(json!({"conditions": [condition("Ready", "False", "Drifted")], "observedGeneration": 1}));
    let after =
        bindings.patch_status("payments", &apply("ready-writer"), &Patch::Apply(&not_ready)).await.expect("apply");
    let after = serde_json::to_value(after).expect("JSON");
    assert_eq!(condition_types(&after), [("Ready".into(), "False".into()), ("Stalled".into(), "True".into())]);
    assert_eq!(after["status"]["conditions"][0]["reason"], "Drifted");

    // A condition its manager stops applying goes away.
    let cleared = object(json!({"conditions": [], "observedGeneration": 1}));
    let after =
        bindings.patch_status("payments", &apply("stall-writer"), &Patch::Apply(&cleared)).await.expect("apply");
    let after = serde_json::to_value(after).expect("JSON");
    assert_eq!(condition_types(&after), [("Ready".into(), "False".into())]);
    let managers = fake.managed_fields("projectbindings", "default", "payments");
    assert!(managers.keys().any(|m| m.starts_with("ready-writer (Apply, status)")), "{managers:?}");

    // Spec lists keyed by name merge the same way; an apply to the object ignores status.
    let webhook =
        |name: &str| json!({"name": name, "url": format!("https://ci.example.com/{name}"), "events": ["pr:opened"]});
    let mut spec_a = manifest.clone();
    spec_a["spec"]["webhooks"] = json!([webhook("ci")]);
    bindings.patch("payments", &apply("gitops"), &Patch::Apply(&spec_a)).await.expect("apply");
    let spec_b = json!({
        "apiVersion": "bitbucket.integrations.dev/v1alpha1", "kind": "ProjectBinding",
        "spec": {"webhooks": [webhook("deploy")]},
        "status": {"conditions": []},
    });
    let merged = bindings.patch("payments", &apply("deployer"), &Patch::Apply(&spec_b)).await.expect("apply");
    let names: Vec<&str> = merged.spec.webhooks.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["ci", "deploy"]);
    assert_eq!(merged.metadata.generation, Some(3), "two spec changes since the create");
    assert_eq!(condition_types(&serde_json::to_value(&merged).expect("JSON")).len(), 1, "status untouched");

    // Another manager changing a field it does not own conflicts, unless it forces.
    let mut takeover = json!({
        "apiVersion": "bitbucket.integrations.dev/v1alpha1", "kind": "ProjectBinding",
        "spec": {"repositorySlug": "billing"},
    });
    let conflict =
        api_error(bindings.patch("payments", &PatchParams::apply("intruder"), &Patch::Apply(&takeover)).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(conflict.message.contains("conflict with \"gitops\": .spec.repositorySlug"), "{}", conflict.message);
    takeover["spec"]["repositorySlug"] = json!("payments-api");
    bindings
        .patch("payments", &PatchParams::apply("intruder"), &Patch::Apply(&takeover))
        .await
        .expect("same value: shared ownership, no conflict");
    takeover["spec"]["repositorySlug"] = json!("billing");
    let forced = bindings.patch("payments", &apply("intruder"), &Patch::Apply(&takeover)).await.expect("forced");
    assert_eq!(forced.spec.repository_slug.as_deref(), Some("billing"));

    // Applying to the status of a missing object is 404; apply needs a field manager.
    let missing = api_error(bindings.patch_status("nope", &apply("x"), &Patch::Apply(&ready)).await);
    assert_eq!(missing.code, 404);
}

#[tokio::test]
async fn status_subresource_separates_spec_and_status() {
    let fake = FakeKube::new();
    let client = fake.client();
    let configurations: Api<BitbucketConfiguration> = Api::namespaced(client.clone(), "default");
    let mut initial = configuration("bitbucket");
    initial.status = Some(from_json(json!({"authenticatedAs": "ignored-on-create"})));
    let created = configurations.create(&PostParams::default(), &initial).await.expect("created");
    assert!(created.status.is_none(), "create ignores status when there is a status subresource");

    // A write to /status changes status only.
    let mut status_write = created.clone();
    status_write.spec.url = "https://other.example.com".into();
    status_write.status = Some(from_json(json!({"authenticatedAs": "operator", "observedGeneration": 1})));
    let after = configurations
        .replace_status("bitbucket", &PostParams::default(), &status_write)
        .await
        .expect("status written");
    assert_eq!(after.spec.url, "https://bitbucket.example.com");
    assert_eq!(after.status.as_ref().and_then(|s| s.authenticated_as.as_deref()), Some("operator"));
    assert_eq!(after.metadata.generation, Some(1));

    // A write to the object ignores status, and a spec change bumps generation.
    let mut object_write = after.clone();
    object_write.spec.url = "https://new.example.com".into();
    object_write.status = None;
    let after = configurations.replace("bitbucket", &PostParams::default(), &object_write).await.expect("replaced");
    assert_eq!(after.spec.url, "https://new.example.com");
    assert_eq!(after.status.as_ref().and_then(|s| s.authenticated_as.as_deref()), Some("operator"));
    assert_eq!(after.metadata.generation, Some(2));

    // Merge patches: on /status spec changes are ignored; labels never bump generation.
    let patched = configurations
        .patch_status(
            "bitbucket",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"url": "https://ignored.example.com"}, "status": {"observedGeneration": 2}})),
        )
        .await
        .expect("status patch");
    assert_eq!(patched.spec.url, "https://new.example.com");
    assert_eq!(patched.status.as_ref().and_then(|s| s.observed_generation), Some(2));
    let labelled = configurations
        .patch("bitbucket", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})))
        .await
        .expect("label patch");
    assert_eq!(labelled.metadata.generation, Some(2));
    let status_only = configurations.get_status("bitbucket").await.expect("get status");
    assert_eq!(status_only.metadata.generation, Some(2));

    // Status writes are validated too.
    let invalid = api_error(
        configurations
            .patch_status(
                "bitbucket",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"observedGeneration": "two"}})),
            )
            .await,
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert!(invalid.message.contains("status.observedGeneration"), "{}", invalid.message);

    // Secrets have no status subresource.
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    secrets.create(&PostParams::default(), &secret("token", json!({}))).await.expect("created");
    assert_eq!(api_error(secrets.get_status("token").await).code, 404);
}

#[tokio::test]
async fn cluster_scoped_configurations() {
    let fake = FakeKube::new();
    let configurations: Api<ClusterBitbucketConfiguration> = Api::all(fake.client());
    let object: ClusterBitbucketConfiguration = from_json(json!({
        "apiVersion": "bitbucket.integrations.dev/v1alpha1",
        "kind": "ClusterBitbucketConfiguration",
        "metadata": {"name": "shared"},
        "spec": {
            "url": "https://bitbucket.example.com",
            "auth": {"token": {"secretRef": {"name": "token"}}},
            "allowedNamespaces": {"names": ["team-a"]},
        },
    }));
    let created = configurations.create(&PostParams::default(), &object).await.expect("created");
    assert_eq!(created.metadata.namespace, None);
    let status = json!({"status": {"authenticatedAs": "operator"}});
    configurations.patch_status("shared", &PatchParams::default(), &Patch::Merge(status)).await.expect("status");
    assert_eq!(
        fake.object("clusterbitbucketconfigurations", "", "shared").expect("stored")["status"]["authenticatedAs"],
        "operator"
    );
    assert_eq!(configurations.list(&ListParams::default()).await.expect("list").items.len(), 1);
    configurations.delete("shared", &DeleteParams::default()).await.expect("deleted");
    assert!(fake.objects("clusterbitbucketconfigurations", None).is_empty());
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let fake = FakeKube::new();
    let bindings: Api<ProjectBinding> = Api::namespaced(fake.client(), "default");
    let mut events = bindings.watch(&WatchParams::default(), "0").await.expect("watch").boxed();
    let created = bindings.create(&PostParams::default(), &binding("payments")).await.expect("created");
    let name = "bitbucket.integrations.dev/cleanup";
    let reconcile = |event: FinalizerEvent<ProjectBinding>| async move {
        let _ = event;
        Ok::<_, std::convert::Infallible>(Action::await_change())
    };

    // kube's finalizer helper adds the finalizer with a JSON patch (test null, add).
    finalizer(&bindings, name, Arc::new(created), reconcile).await.expect("finalizer added");
    let held = bindings.get("payments").await.expect("get");
    assert_eq!(held.finalizers(), [name]);

    let deleting = bindings.delete("payments", &DeleteParams::default()).await.expect("delete");
    let deleting = deleting.left().expect("the object comes back while finalizers remain");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(deleting.metadata.generation, Some(2), "marking for deletion bumps generation");
    let again =
        bindings.delete("payments", &DeleteParams::default()).await.expect("delete again").left().expect("object");
    assert_eq!(again.resource_version(), deleting.resource_version(), "deleting again changes nothing");

    let more = Patch::Merge(json!({"metadata": {"finalizers": [name, "someone/else"]}}));
    let refused = api_error(bindings.patch("payments", &PatchParams::default(), &more).await);
    assert_eq!((refused.code, refused.reason.as_str()), (422, "Invalid"));
    assert!(refused.message.contains("no new finalizers"), "{}", refused.message);
    let spec_change = Patch::Merge(json!({"spec": {"repositorySlug": "billing"}}));
    bindings.patch("payments", &PatchParams::default(), &spec_change).await.expect("other updates still work");

    // The helper's cleanup removes the finalizer (test + remove), and the object goes.
    let current = bindings.get("payments").await.expect("still there");
    finalizer(&bindings, name, Arc::new(current), reconcile).await.expect("finalizer removed");
    assert_eq!(api_error(bindings.get("payments").await).code, 404);

    let mut seen = Vec::new();
    loop {
        match next(&mut events).await.expect("a watch event") {
            WatchEvent::Added(o) => seen.push(("ADDED", o.finalizers().len())),
            WatchEvent::Modified(o) => seen.push(("MODIFIED", o.finalizers().len())),
            WatchEvent::Deleted(o) => {
                seen.push(("DELETED", o.finalizers().len()));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        [("ADDED", 0), ("MODIFIED", 1), ("MODIFIED", 1), ("MODIFIED", 1), ("MODIFIED", 0), ("DELETED", 0)]
    );

    // Without finalizers, delete removes at once and returns the object (custom resources) or
    // a success Status (built-in kinds).
    bindings.create(&PostParams::default(), &binding("quick")).await.expect("created");
    assert!(bindings.delete("quick", &DeleteParams::default()).await.expect("deleted").is_left());
    let secrets: Api<Secret> = Api::namespaced(fake.client(), "default");
    secrets.create(&PostParams::default(), &secret("token", json!({}))).await.expect("created");
    let status = secrets.delete("token", &DeleteParams::default()).await.expect("deleted").right().expect("Status");
    assert!(status.is_success());
    assert_eq!(api_error(secrets.delete("token", &DeleteParams::default()).await).code, 404);
}

#[tokio::test]
async fn schema_violations_are_422_invalid() {
    let fake = FakeKube::new();
    let client = fake.client();
    let bindings: Api<ProjectBinding> = Api::namespaced(client.clone(), "default");
    let mut both = binding("both");
    both.spec.repositories = Some(from_json(json!({"include": ["*"]})));
    let error = api_error(bindings.create(&PostParams::default(), &both).await);
    assert_eq!((error.code, error.reason.as_str()), (422, "Invalid"));
    assert!(
        error.message.starts_with("ProjectBinding.bitbucket.integrations.dev \"both\" is invalid: spec"),
        "{}",
        error.message
    );
    assert!(error.message.contains("set exactly one of repositorySlug"), "{}", error.message);
    let details = error.details.expect("details");
    assert_eq!(details.kind, "ProjectBinding");
    assert_eq!(details.causes[0].reason, "FieldValueInvalid");
    assert!(details.causes[0].field.starts_with("spec"));

    let configurations: Api<BitbucketConfiguration> = Api::namespaced(client.clone(), "default");
    let mut insecure = configuration("insecure");
    insecure.spec.url = "http://bitbucket.example.com".into();
    let error = api_error(configurations.create(&PostParams::default(), &insecure).await);
    assert_eq!(error.code, 422);
    assert!(error.message.contains("spec.url"), "{}", error.message);

    // Transition rules see the old object.
    let created = bindings.create(&PostParams::default(), &binding("payments")).await.expect("created");
    let mut moved = created.clone();
    moved.spec.project_key = "OTHER".into();
    let error = api_error(bindings.replace("payments", &PostParams::default(), &moved).await);
    assert_eq!(error.code, 422);
    assert!(error.message.contains("projectKey is immutable"), "{}", error.message);

    // Wrong types and bad names too; unknown fields are pruned, or rejected when strict.
    let raw: Api<kube::core::DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &kube::core::ApiResource::erase::<ProjectBinding>(&()));
    let mut typed_wrong: kube::core::DynamicObject = from_json(json!({
        "apiVersion": "bitbucket.integrations.dev/v1alpha1", "kind": "ProjectBinding",
        "metadata": {"name": "wrong"},
        "spec": {"configurationRef": {"name": "bitbucket"}, "projectKey": 42, "repositorySlug": "a"},
    }));
    let error = api_error(raw.create(&PostParams::default(), &typed_wrong).await);
    assert_eq!(error.code, 422);
    assert!(error.message.contains("spec.projectKey"), "{}", error.message);
    typed_wrong.data["spec"]["projectKey"] = json!("PAY");
    typed_wrong.data["spec"]["surprise"] = json!(true);
    let strict = axum::http::Request::post(
        "/apis/bitbucket.integrations.dev/v1alpha1/namespaces/default/projectbindings?fieldValidation=Strict",
    )
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&typed_wrong).expect("JSON"))
    .expect("a request");
    let error = api_error(client.request_text(strict).await);
    assert_eq!((error.code, error.reason.as_str()), (400, "BadRequest"));
    assert!(error.message.contains("spec.surprise"), "{}", error.message);
    let pruned = raw.create(&PostParams::default(), &typed_wrong).await.expect("unknown fields pruned");
    assert!(pruned.data["spec"].get("surprise").is_none());
    assert_eq!(pruned.data["spec"]["monorepo"], false, "schema defaults are stored");
    assert_eq!(pruned.data["spec"]["configurationRef"]["kind"], "BitbucketConfiguration");
    typed_wrong.metadata.name = Some("Not_A_Name".into());
    assert_eq!(api_error(raw.create(&PostParams::default(), &typed_wrong).await).code, 422);

    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let error = api_error(secrets.create(&PostParams::default(), &secret("bad", json!({"bad key!": "x"}))).await);
    assert_eq!((error.code, error.reason.as_str()), (422, "Invalid"));
    assert!(error.message.contains("metadata.labels"), "{}", error.message);
}

#[tokio::test]
async fn watch_events_arrive_in_order_and_follow_selectors() {
    let fake = FakeKube::new();
    let secrets: Api<Secret> = Api::namespaced(fake.client(), "default");
    secrets.create(&PostParams::default(), &secret("before", json!({}))).await.expect("created");
    let start = fake.resource_version().to_string();
    let mut all = secrets.watch(&WatchParams::default(), &start).await.expect("watch").boxed();
    let mut gold = secrets.watch(&WatchParams::default().labels("tier=gold"), &start).await.expect("watch").boxed();

    secrets.create(&PostParams::default(), &secret("s", json!({"tier": "silver"}))).await.expect("created");
    let to_gold = Patch::Merge(json!({"metadata": {"labels": {"tier": "gold"}}}));
    secrets.patch("s", &PatchParams::default(), &to_gold).await.expect("patched");
    let to_bronze = Patch::Merge(json!({"metadata": {"labels": {"tier": "bronze"}}}));
    secrets.patch("s", &PatchParams::default(), &to_bronze).await.expect("patched");
    secrets.delete("s", &DeleteParams::default()).await.expect("deleted");

    let mut versions = Vec::new();
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let (kind, object) = match next(&mut all).await.expect("event") {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            other => panic!("unexpected {other:?}"),
        };
        kinds.push(kind);
        versions.push(object.resource_version().expect("rv").parse::<u64>().expect("number"));
    }
    assert_eq!(kinds, ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]);
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");

    // Entering the selection is ADDED, leaving it DELETED.
    let first = next(&mut gold).await.expect("event");
    assert!(matches!(first, WatchEvent::Added(_)), "{first:?}");
    let second = next(&mut gold).await.expect("event");
    assert!(matches!(second, WatchEvent::Deleted(_)), "{second:?}");

    // A watch from "0" starts with the current objects.
    let mut from_zero = secrets.watch(&WatchParams::default(), "0").await.expect("watch").boxed();
    match next(&mut from_zero).await.expect("event") {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "before"),
        other => panic!("unexpected {other:?}"),
    }

    // A watch from a compacted resourceVersion gets a 410 ERROR event.
    fake.compact();
    let mut expired = secrets.watch(&WatchParams::default(), &start).await.expect("watch starts").boxed();
    match next(&mut expired).await.expect("event") {
        WatchEvent::Error(status) => assert_eq!((status.code, status.reason.as_str()), (410, "Expired")),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn watcher_relists_after_410_and_goes_on() {
    let fake = FakeKube::new();
    let bindings: Api<ProjectBinding> = Api::namespaced(fake.client(), "default");
    bindings.create(&PostParams::default(), &binding("first")).await.expect("created");
    let (reader, writer) = reflector::store();
    let mut stream = reflector(writer, watcher(bindings.clone(), watcher::Config::default())).boxed();

    let mut init_done = false;
    while !init_done {
        init_done = matches!(next(&mut stream).await.expect("no error"), watcher::Event::InitDone);
    }
    bindings.create(&PostParams::default(), &binding("second")).await.expect("created");
    match next(&mut stream).await.expect("no error") {
        watcher::Event::Apply(o) => assert_eq!(o.name_any(), "second"),
        other => panic!("unexpected {other:?}"),
    }

    // Everything the watcher has seen expires, and its watch ends: it resumes from its last
    // resourceVersion, gets 410, lists again and watches on.
    fake.compact();
    fake.close_watches();
    match next(&mut stream).await {
        Err(watcher::Error::WatchError(status)) => assert_eq!(status.code, 410),
        other => panic!("expected the 410, got {other:?}"),
    }
    let mut relisted = Vec::new();
    loop {
        match next(&mut stream).await.expect("no error") {
            watcher::Event::Init => {}
            watcher::Event::InitApply(o) => relisted.push(o.name_any()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(relisted, ["first", "second"]);
    bindings.create(&PostParams::default(), &binding("third")).await.expect("created");
    match next(&mut stream).await.expect("no error") {
        watcher::Event::Apply(o) => assert_eq!(o.name_any(), "third"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(reader.state().len(), 3);
}

#[tokio::test]
async fn bookmarks_and_streaming_lists() {
    let config = Config { bookmark_interval: Duration::from_millis(50), ..Config::default() };
    let fake = FakeKube::with_config(config);
    let secrets: Api<Secret> = Api::namespaced(fake.client(), "default");
    secrets.create(&PostParams::default(), &secret("a", json!({}))).await.expect("created");
    let start = fake.resource_version().to_string();
    // kube asks for bookmarks by default.
    let mut stream = secrets.watch(&WatchParams::default(), &start).await.expect("watch").boxed();
    secrets.create(&PostParams::default(), &secret("b", json!({}))).await.expect("created");
    assert!(matches!(next(&mut stream).await.expect("event"), WatchEvent::Added(_)));
    match next(&mut stream).await.expect("event") {
        WatchEvent::Bookmark(bookmark) => {
            assert_eq!(bookmark.metadata.resource_version, fake.resource_version().to_string());
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
    // Without asking, no bookmarks; at timeoutSeconds the watch ends.
    let quiet = WatchParams::default().disable_bookmarks().timeout(1);
    let mut stream = secrets.watch(&quiet, &fake.resource_version().to_string()).await.expect("watch").boxed();
    let ended = tokio::time::timeout(WAIT, stream.next()).await.expect("the watch ends at its timeout");
    assert!(ended.is_none(), "{ended:?}");

    // kube's streaming-list watcher (sendInitialEvents) gets its initial-events-end bookmark.
    let listed = collect_watcher(secrets, watcher::Config::default().streaming_lists()).await;
    assert_eq!(listed, 2);
}

#[tokio::test]
async fn events_in_both_apis_share_one_store() {
    let fake = FakeKube::new();
    let client = fake.client();
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let v1: Api<EventV1> = Api::namespaced(client.clone(), "default");
    let legacy: CoreEvent = from_json(json!({
        "metadata": {"name": "legacy.1"},
        "involvedObject": {"kind": "ProjectBinding", "name": "payments", "namespace": "default"},
        "reason": "Bound", "message": "bound 3 repositories", "type": "Normal",
        "source": {"component": "bitbucket-operator"},
    }));
    core.create(&PostParams::default(), &legacy).await.expect("core event created");

    let reference = ObjectReference {
        api_version: Some("bitbucket.integrations.dev/v1alpha1".into()),
        kind: Some("ProjectBinding".into()),
        name: Some("payments".into()),
        namespace: Some("default".into()),
        ..Default::default()
    };
    let recorder = Recorder::new(client.clone(), Reporter { controller: "bitbucket-operator".into(), instance: None });
    let event = RecorderEvent {
        type_: EventType::Warning,
        reason: "ProjectNotFound".into(),
        note: Some("project PAY does not exist".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.expect("published");
    recorder.publish(&event, &reference).await.expect("published again (a series, by merge patch)");

    let through_v1 = v1.list(&ListParams::default()).await.expect("list events.k8s.io");
    assert_eq!(through_v1.items.len(), 2);
    let legacy_as_v1 = through_v1.items.iter().find(|e| e.name_any() == "legacy.1").expect("core event");
    assert_eq!(legacy_as_v1.note.as_deref(), Some("bound 3 repositories"));
    let recorded = through_v1.items.iter().find(|e| e.name_any() != "legacy.1").expect("recorded event");
    assert_eq!(recorded.series.as_ref().map(|s| s.count), Some(2));

    let through_core = core.list(&ListParams::default().fields("reason=ProjectNotFound")).await.expect("list core");
    assert_eq!(through_core.items.len(), 1);
    assert_eq!(through_core.items[0].message.as_deref(), Some("project PAY does not exist"));
    assert_eq!(through_core.items[0].reporting_component.as_deref(), Some("bitbucket-operator"));

    // events.k8s.io/v1 creates follow that API's rules.
    let incomplete: EventV1 = from_json(json!({
        "metadata": {"name": "incomplete"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reason": "Bound", "type": "Normal",
        "regarding": {"kind": "ProjectBinding", "name": "payments", "namespace": "default"},
    }));
    let error = api_error(v1.create(&PostParams::default(), &incomplete).await);
    assert_eq!((error.code, error.reason.as_str()), (422, "Invalid"));
    assert!(error.message.contains("reportingController"), "{}", error.message);
}

#[tokio::test]
async fn leases_replace_with_optimistic_concurrency() {
    let fake = FakeKube::new();
    let leases: Api<Lease> = Api::namespaced(fake.client(), "operators");
    let lease: Lease = from_json(json!({
        "metadata": {"name": "bitbucket-operator"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15, "renewTime": "2026-01-01T00:00:00.123456Z"},
    }));
    let created = leases.create(&PostParams::default(), &lease).await.expect("created");
    let mut renewed = created.clone();
    if let Some(spec) = renewed.spec.as_mut() {
        spec.lease_transitions = Some(1);
        spec.holder_identity = Some("pod-b".into());
    }
    let taken = leases.replace("bitbucket-operator", &PostParams::default(), &renewed).await.expect("taken over");
    assert_eq!(taken.spec.as_ref().and_then(|s| s.holder_identity.as_deref()), Some("pod-b"));

    let mut late = created;
    if let Some(spec) = late.spec.as_mut() {
        spec.holder_identity = Some("pod-c".into());
    }
    let error = api_error(leases.replace("bitbucket-operator", &PostParams::default(), &late).await);
    assert_eq!((error.code, error.reason.as_str()), (409, "Conflict"));
    assert!(
        error.message.starts_with("Operation cannot be fulfilled on leases.coordination.k8s.io"),
        "{}",
        error.message
    );
    let stored = fake.object("leases", "operators", "bitbucket-operator").expect("stored");
    assert_eq!(stored["spec"]["holderIdentity"], "pod-b");
}

#[tokio::test]
async fn bad_requests_are_status_objects() {
    let fake = FakeKube::new();
    let client = fake.client();
    let request = |method: &str, uri: &str, content_type: &str, body: &str| {
        axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .body(body.as_bytes().to_vec())
            .expect("a request")
    };
    let failure = |result: kube::Result<String>| api_error(result);
    let secrets = "/api/v1/namespaces/default/secrets";
    let bad = failure(client.request_text(request("POST", secrets, "application/json", "{not json")).await);
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));
    let bad = failure(client.request_text(request("POST", secrets, "application/json", "[1, 2]")).await);
    assert_eq!(bad.code, 400);
    let bad = failure(
        client
            .request_text(request(
                "POST",
                secrets,
                "application/json",
                r#"{"data": {"k": "not base64!"}, "metadata": {"name": "x"}}"#,
            ))
            .await,
    );
    assert_eq!(bad.code, 400);
    let wrong_kind = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}"#;
    assert_eq!(failure(client.request_text(request("POST", secrets, "application/json", wrong_kind)).await).code, 400);
    let other_namespace = r#"{"metadata": {"name": "x", "namespace": "elsewhere"}}"#;
    assert_eq!(
        failure(client.request_text(request("POST", secrets, "application/json", other_namespace)).await).code,
        400
    );

    let token = format!("{secrets}/token");
    client
        .request_text(request("POST", secrets, "application/json", r#"{"metadata": {"name": "token"}}"#))
        .await
        .expect("created");
    let bad = failure(client.request_text(request("PATCH", &token, "text/plain", "{}")).await);
    assert_eq!((bad.code, bad.reason.as_str()), (415, "UnsupportedMediaType"));
    let bad =
        failure(client.request_text(request("PATCH", &token, "application/json-patch+json", r#"{"op": "add"}"#)).await);
    assert_eq!(bad.code, 400);
    let bad = failure(client.request_text(request("PATCH", &token, "application/merge-patch+json", "{{")).await);
    assert_eq!(bad.code, 400);
    let bad = failure(client.request_text(request("PATCH", &token, "application/apply-patch+yaml", "a: [")).await);
    assert_eq!(bad.code, 400);
    let renamed = r#"{"metadata": {"name": "other"}}"#;
    assert_eq!(failure(client.request_text(request("PUT", &token, "application/json", renamed)).await).code, 400);
    let bad = failure(client.request_text(request("GET", "/apis/nope.example.com/v1/things", "", "")).await);
    assert_eq!((bad.code, bad.reason.as_str()), (404, "NotFound"));
    let bad = failure(
        client.request_text(request("GET", &format!("{secrets}?watch=true&resourceVersion=abc"), "", "")).await,
    );
    assert_eq!(bad.code, 400);
    let bad = failure(client.request_text(request("POST", &token, "application/json", "{}")).await);
    assert_eq!(bad.code, 405);

    // Apply without a field manager, and an apply patch in YAML.
    let apply = format!("{token}?fieldManager=tests");
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  labels:\n    from: yaml\n";
    client.request_text(request("PATCH", &apply, "application/apply-patch+yaml", yaml)).await.expect("YAML apply");
    assert_eq!(fake.object("secrets", "default", "token").expect("stored")["metadata"]["labels"]["from"], "yaml");
    let bad = failure(client.request_text(request("PATCH", &token, "application/apply-patch+yaml", yaml)).await);
    assert_eq!(bad.code, 400);
}

#[tokio::test]
async fn malformed_requests_never_break_the_server() {
    let fake = FakeKube::new();
    let client = fake.client();
    let bindings: Api<ProjectBinding> = Api::namespaced(client.clone(), "default");
    bindings.create(&PostParams::default(), &binding("payments")).await.expect("created");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets.create(&PostParams::default(), &secret("token", json!({}))).await.expect("created");
    let events: Api<EventV1> = Api::namespaced(client.clone(), "default");
    let bodies = [
        "",
        "null",
        "1",
        "\"text\"",
        "[]",
        "[{}]",
        "{}",
        "{{",
        "\u{0}",
        r#"{"metadata": "x"}"#,
        r#"{"metadata": {"name": 5, "labels": 5, "finalizers": "x", "annotations": {"a": 1}}}"#,
        r#"{"metadata": {"name": "payments", "resourceVersion": 7}, "spec": "x", "status": []}"#,
        r#"{"apiVersion": 1, "kind": [], "metadata": {"name": "token"}, "data": {"k": 1}}"#,
        r#"{"metadata": {"name": "payments"}, "spec": {"webhooks": [1, null, {"name": []}]}}"#,
        r#"[{"op": "move", "from": "/metadata", "path": "/metadata/name"}, {"op": "copy", "from": "/x", "path": "/y"}]"#,
        r#"[{"op": "replace", "path": "", "value": 1}]"#,
        r#"[{"op": "add", "path": "/metadata/finalizers/99", "value": "x"}, {"op": "remove", "path": "/a~2b"}]"#,
        r#"{"status": {"conditions": [{"type": "Ready"}, {"type": "Ready"}]}}"#,
        r#"{"regarding": 5, "series": {"count": "x"}, "eventTime": "yesterday"}"#,
        "apiVersion: v1\nkind: [\n",
    ];
    let paths = [
        "/apis/bitbucket.integrations.dev/v1alpha1/namespaces/default/projectbindings",
        "/apis/bitbucket.integrations.dev/v1alpha1/namespaces/default/projectbindings/payments",
        "/apis/bitbucket.integrations.dev/v1alpha1/namespaces/default/projectbindings/payments/status",
        "/api/v1/namespaces/default/secrets",
        "/api/v1/namespaces/default/secrets/token",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases/x?limit=-1&timeoutSeconds=99999999999999999999",
        "/api/v1/namespaces/default/secrets?watch=1&resourceVersion=18446744073709551616&labelSelector=%28%28",
        "/api/v1/namespaces/default/secrets?fieldManager=m&dryRun=Some&fieldValidation=Loud",
        "/apis/bitbucket.integrations.dev/v1alpha1/namespaces/default/projectbindings/payments?fieldManager=m&force=true",
        "/api/v1/namespaces//secrets/",
        "/apis/bitbucket.integrations.dev/v1alpha1/clusterbitbucketconfigurations/x/status/extra",
    ];
    let patch_types = [
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/apply-patch+yaml",
        "application/strategic-merge-patch+json",
    ];
    let mut requests = 0;
    for path in paths {
        for body in bodies {
            let mut calls =
                vec![("POST", "application/json"), ("PUT", "application/json"), ("DELETE", "application/json")];
            calls.extend(patch_types.iter().map(|t| ("PATCH", *t)));
            for (method, content_type) in calls {
                let request = axum::http::Request::builder()
                    .method(method)
                    .uri(path)
                    .header("content-type", content_type)
                    .body(body.as_bytes().to_vec())
                    .expect("a request");
                match client.request_text(request).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) => {
                        assert!((400..500).contains(&status.code), "{method} {path} {body:?}: {status:?}")
                    }
                    Err(other) => panic!("{method} {path} {body:?}: {other:?}"),
                }
                requests += 1;
            }
        }
    }
    assert!(requests > 500);
    // Still serving, and the objects are still valid.
    bindings.list(&ListParams::default()).await.expect("still serving");
    for secret in secrets.list(&ListParams::default()).await.expect("list").items {
        assert!(secret.metadata.name.is_some());
    }
    events.list(&ListParams::default()).await.expect("list events");
}

#[tokio::test]
async fn dry_run_changes_nothing_and_failures_can_be_injected() {
    let fake = FakeKube::new();
    let secrets: Api<Secret> = Api::namespaced(fake.client(), "default");
    let before = fake.resource_version();
    secrets.create(&PostParams { dry_run: true, ..Default::default() }, &secret("dry", json!({}))).await.expect("dry");
    assert!(fake.object("secrets", "default", "dry").is_none());
    assert_eq!(fake.resource_version(), before);

    fake.fail_next("GET", "secrets", 503);
    assert_eq!(api_error(secrets.list(&ListParams::default()).await).code, 503);
    secrets.list(&ListParams::default()).await.expect("only the next request fails");
    let (requests, count) = fake.requests();
    assert_eq!(count, 3);
    assert_eq!(requests[1].status, 503);
    assert_eq!(requests[1].path, "/api/v1/namespaces/default/secrets");
}

#[tokio::test]
async fn serves_kubectl_on_loopback() {
    let fake = FakeKube::new();
    let (address, handle) = fake.serve("127.0.0.1:0".parse().expect("address")).await.expect("listening");
    let url = format!("http://{address}").parse().expect("URL");
    let client = Client::try_from(kube::Config::new(url)).expect("an HTTP client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = from_json(json!({"metadata": {"name": "team-a", "labels": {"team": "a"}}}));
    namespaces.create(&PostParams::default(), &namespace).await.expect("created over TCP");
    let listed = namespaces.list(&ListParams::default().labels("team=a")).await.expect("listed");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].status.as_ref().and_then(|s| s.phase.as_deref()), Some("Active"));
    let bindings: Api<ProjectBinding> = Api::namespaced(client, "team-a");
    bindings.create(&PostParams::default(), &binding("payments")).await.expect("created over TCP");
    assert!(fake.object("projectbindings", "team-a", "payments").is_some(), "one store behind both clients");
    handle.shutdown().await;
}

#[tokio::test]
async fn on_loopback_it_goes_away_cutting_every_connection_and_comes_back_on_the_same_address() {
    let fake = FakeKube::new();
    let (address, mut server) = fake.serve("127.0.0.1:0".parse().expect("address")).await.expect("listening");
    let client =
        Client::try_from(kube::Config::new(format!("http://{address}").parse().expect("URL"))).expect("client");
    let bindings: Api<ProjectBinding> = Api::namespaced(client, "team-a");
    bindings.create(&PostParams::default(), &binding("payments")).await.expect("created");
    let mut watch = bindings.watch(&WatchParams::default(), "0").await.expect("watching").boxed();
    match tokio::time::timeout(WAIT, watch.next()).await.expect("in time") {
        Some(Ok(WatchEvent::Added(added))) => assert_eq!(added.name_any(), "payments"),
        other => panic!("unexpected {other:?}"),
    }

    server.go_away();
    // The open watch breaks off at once, in the middle of its response ...
    match tokio::time::timeout(WAIT, watch.next()).await.expect("the watch ends at once") {
        None | Some(Err(_)) => {}
        other => panic!("unexpected {other:?}"),
    }
    // ... and nothing is accepted while the server is away; the objects stay.
    let refused = bindings.get("payments").await.expect_err("refused");
    assert!(!matches!(refused, kube::Error::Api(_)), "refused before any HTTP answer: {refused}");
    let mut billing = serde_json::to_value(binding("billing")).expect("JSON");
    billing["metadata"]["namespace"] = "team-a".into();
    fake.create(billing).expect("written meanwhile");

    server.come_back().await.expect("listening again");
    assert_eq!(server.addr(), address);
    let listed = bindings.list(&ListParams::default()).await.expect("served again on the same address");
    assert_eq!(listed.items.len(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn metadata_only_requests_and_waiting_for_a_condition() {
    let fake = FakeKube::new();
    let client = fake.client();
    fake.create(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "token", "namespace": "team-a", "labels": {"a": "b"}},
        "data": {"token": "czNjcjN0"},
    }))
    .expect("seeded");
    let seeded = fake.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "BAD"}}));
    assert_eq!(seeded.expect_err("invalid name")["code"], 422);

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    let meta = secrets.get_metadata("token").await.expect("metadata");
    assert_eq!(meta.metadata.labels.as_ref().and_then(|l| l.get("a")).map(String::as_str), Some("b"));
    assert_eq!(meta.types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
    let listed = secrets.list_metadata(&ListParams::default()).await.expect("metadata list");
    assert_eq!(listed.items.len(), 1);

    // A metadata watcher sees changes without the Secret's data.
    let metadata: Api<kube::core::PartialObjectMeta<Secret>> = Api::namespaced(fake.client(), "team-a");
    let mut stream = watcher(metadata, watcher::Config::default()).boxed();
    loop {
        if matches!(next(&mut stream).await.expect("no error"), watcher::Event::InitDone) {
            break;
        }
    }
    let rotate = Patch::Merge(json!({"stringData": {"token": "rotated"}}));
    secrets.patch("token", &PatchParams::default(), &rotate).await.expect("rotated");
    match next(&mut stream).await.expect("no error") {
        watcher::Event::Apply(meta) => assert_eq!(meta.name_any(), "token"),
        other => panic!("unexpected {other:?}"),
    }

    // kube's await_condition watches one object by a metadata.name field selector.
    let bindings: Api<ProjectBinding> = Api::namespaced(client, "default");
    bindings.create(&PostParams::default(), &binding("payments")).await.expect("created");
    let is_ready = |binding: Option<&ProjectBinding>| {
        binding.and_then(|b| b.status.as_ref()).is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready"))
    };
    let waiting = tokio::spawn(kube::runtime::wait::await_condition(bindings.clone(), "payments", is_ready));
    let status = json!({
        "apiVersion": "bitbucket.integrations.dev/v1alpha1", "kind": "ProjectBinding",
        "status": {"conditions": [condition("Ready", "True", "InSync")]},
    });
    bindings
        .patch_status("payments", &PatchParams::apply("operator").force(), &Patch::Apply(&status))
        .await
        .expect("status applied");
    let ready = tokio::time::timeout(WAIT, waiting).await.expect("in time").expect("joined").expect("no error");
    assert!(is_ready(ready.as_ref()));
}

/// Not a test: serves the examples on loopback for `kubectl` until interrupted.
/// `FAKE_KUBE_ADDR=127.0.0.1:8001 cargo test --test kube -- --ignored --nocapture serve_examples_for_kubectl`,
/// then `kubectl --server http://127.0.0.1:8001 get bitbucket -A`.
#[tokio::test]
#[ignore = "runs until interrupted"]
async fn serve_examples_for_kubectl() {
    let fake = FakeKube::new();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&examples).expect("examples/").flatten().map(|e| e.path()).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
        for document in documents.into_iter().filter(|d| !d.is_null()) {
            if let Err(status) = fake.create(document) {
                println!("{}: {}", file.display(), status["message"]);
            }
        }
    }
    let address = std::env::var("FAKE_KUBE_ADDR").unwrap_or_else(|_| "127.0.0.1:8001".into());
    let (bound, _handle) = fake.serve(address.parse().expect("FAKE_KUBE_ADDR")).await.expect("listening");
    println!("kubectl --server http://{bound} get bitbucket -A");
    let _ = tokio::signal::ctrl_c().await;
}

/// A `Status` that says etcd refused the object as too large.
fn assert_too_large(status: &Status) {
    assert_eq!((status.code, status.reason.as_str()), (500, "InternalError"), "{status:?}");
    assert_eq!(status.message, "etcdserver: request is too large");
}

#[tokio::test]
async fn objects_too_large_for_etcd_are_refused_as_a_real_server_refuses_them() {
    let fake = FakeKube::new();
    let secrets: Api<Secret> = Api::namespaced(fake.client(), "default");
    let with_data = |name: &str, bytes: usize| {
        let mut secret = secret(name, json!({}));
        secret.string_data = Some([("data".to_owned(), "x".repeat(bytes))].into());
        secret
    };
    // Stored base64-encoded: a third larger than sent.
    assert_too_large(&api_error(secrets.create(&PostParams::default(), &with_data("over", 1200 * 1024)).await));
    let huge = api_error(secrets.create(&PostParams::default(), &with_data("huge", 2200 * 1024)).await);
    assert_eq!(huge.code, 500, "{huge:?}");
    let sent = huge
        .message
        .strip_prefix("rpc error: code = ResourceExhausted desc = trying to send message larger than max (")
        .and_then(|rest| rest.strip_suffix(" vs. 2097152)"))
        .and_then(|n| n.parse::<usize>().ok());
    assert!(sent.is_some_and(|n| n > 2200 * 1024 * 4 / 3), "{}", huge.message);
    assert!(fake.object("secrets", "default", "over").is_none() && fake.object("secrets", "default", "huge").is_none());
    secrets.create(&PostParams::default(), &with_data("fits", 1024 * 1024)).await.expect("1.33 MiB stored");
    // The request body limit comes first, worded as a real server words it.
    let body = api_error(secrets.create(&PostParams::default(), &with_data("body", 4 * 1024 * 1024)).await);
    assert_eq!((body.code, body.message.as_str()), (413, "Request entity too large: limit is 3145728"));
}

#[tokio::test]
async fn a_lowered_object_limit_applies_to_every_kind_of_write_until_raised() {
    let fake = FakeKube::with_config(Config { max_object_bytes: 4096, ..Config::default() });
    let client = fake.client();
    let bindings: Api<ProjectBinding> = Api::namespaced(client.clone(), "default");
    bindings.create(&PostParams::default(), &binding("payments")).await.expect("a small object is stored");
    let long = "x".repeat(5000);

    let mut bigger = binding("bigger");
    bigger.metadata.annotations = Some([("note".to_owned(), long.clone())].into());
    assert_too_large(&api_error(bindings.create(&PostParams::default(), &bigger).await));

    let mut replaced = bindings.get("payments").await.expect("get");
    replaced.metadata.annotations = Some([("note".to_owned(), long.clone())].into());
    assert_too_large(&api_error(bindings.replace("payments", &PostParams::default(), &replaced).await));

    let annotate = json!({"metadata": {"annotations": {"note": long}}});
    assert_too_large(&api_error(bindings.patch("payments", &PatchParams::default(), &Patch::Merge(&annotate)).await));

    let ssa = PatchParams::apply("tester");
    let applied = json!({
        "apiVersion": "bitbucket.integrations.dev/v1alpha1", "kind": "ProjectBinding",
        "metadata": {"name": "payments", "annotations": {"note": long}},
    });
    assert_too_large(&api_error(bindings.patch("payments", &ssa, &Patch::Apply(&applied)).await));

    let mut stalled = condition("Stalled", "True", "Stuck");
    stalled["message"] = json!("y".repeat(5000));
    let status = json!({
        "apiVersion": "bitbucket.integrations.dev/v1alpha1", "kind": "ProjectBinding",
        "status": {"conditions": [stalled]},
    });
    assert_too_large(&api_error(bindings.patch_status("payments", &ssa, &Patch::Apply(&status)).await));
    let merged = json!({"status": {"conditions": [stalled]}});
    assert_too_large(&api_error(
        bindings.patch_status("payments", &PatchParams::default(), &Patch::Merge(&merged)).await,
    ));

    // Nothing of the refused writes was stored.
    let stored = fake.object("projectbindings", "default", "payments").expect("payments");
    assert!(stored["metadata"]["annotations"].is_null() && stored["status"].is_null(), "{stored:#}");
    assert!(fake.object("projectbindings", "default", "bigger").is_none());

    fake.limit_object_size(crate::fake_kube::MAX_OBJECT_BYTES);
    let written = bindings.patch_status("payments", &ssa, &Patch::Apply(&status)).await.expect("fits now");
    assert_eq!(written.status.map(|s| s.conditions.len()), Some(1));
}

#[tokio::test]
async fn an_empty_map_a_manager_applied_is_filled_by_its_next_apply() {
    let fake = FakeKube::new();
    let bindings: Api<ProjectBinding> = Api::namespaced(fake.client(), "default");
    bindings.create(&PostParams::default(), &binding("payments")).await.expect("created");
    let ssa = PatchParams::apply("operator").force();
    let with = |labels: Value| {
        json!({
            "apiVersion": "bitbucket.integrations.dev/v1alpha1", "kind": "ProjectBinding",
            "metadata": {"name": "payments", "labels": labels},
        })
    };
    let label = |object: ProjectBinding| object.labels().get("team").cloned();
    let full = bindings.patch("payments", &ssa, &Patch::Apply(&with(json!({"team": "a"})))).await.expect("1");
    assert_eq!(label(full).as_deref(), Some("a"));
    let empty = bindings.patch("payments", &ssa, &Patch::Apply(&with(json!({})))).await.expect("2");
    assert_eq!(label(empty), None);
    let again = bindings.patch("payments", &ssa, &Patch::Apply(&with(json!({"team": "a"})))).await.expect("3");
    assert_eq!(label(again).as_deref(), Some("a"));
}
