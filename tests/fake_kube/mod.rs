//! An in-process fake Kubernetes API server for the tests and the benchmark: a tower service
//! (an axum `Router`) that a real `kube::Client` talks to, so `kube::Api`, the watchers, the
//! reflectors and the controllers run unchanged on top of it. It can also listen on a loopback
//! port so `kubectl --server http://127.0.0.1:PORT` can look at it while debugging.
//!
//! ```ignore
//! mod fake_kube;
//! let fake = fake_kube::FakeKube::new();
//! let bindings: kube::Api<ProjectBinding> = kube::Api::namespaced(fake.client(), "default");
//! bindings.create(&Default::default(), &binding).await?;
//! assert!(fake.object("projectbindings", "default", "payments").is_some());
//! ```
//!
//! What it serves: the operator's CRDs (`bitbucket_operator::api::crds()`, validated on every
//! write by `api::validation`, CEL and transition rules included, pruned and defaulted), Secrets,
//! Events (`core/v1` and `events.k8s.io/v1`, one storage as on a real server), Leases and
//! Namespaces; get, list (label and field selectors, `limit`/`continue`), watch (from a
//! resourceVersion, bookmarks, `sendInitialEvents`, 410 Expired when too old), create, replace,
//! merge / JSON / apply patches, delete and deletecollection, the status subresource,
//! finalizers, `generation`, discovery (plain and aggregated), and `Status` errors with the
//! reasons and codes a real server uses.
//!
//! How it differs from a real API server. Nothing in `src/` may rely on any of these; where
//! the fake is more lenient than a real server, code that passes here can still fail there.
//! - Access: no authentication, RBAC, admission webhooks or policies, quota, API priority and
//!   fairness. Sizes are limited as on a real server: a request body over 3 MiB answers 413,
//!   and an object whose stored JSON exceeds [`Config::max_object_bytes`] (1.5 MiB, etcd's
//!   default; [`FakeKube::limit_object_size`] changes it) answers 500 `etcdserver: request is too
//!   large`, or above 2 MiB the gRPC `ResourceExhausted` message (a real server measures its
//!   encoded form, protobuf for built-in kinds, with `managedFields`, so its sizes differ a
//!   little). Every request is handled under one lock, one at a time.
//! - Namespaces are plain objects: writing into a namespace that does not exist works, and
//!   deleting one is immediate and deletes nothing in it. There is no garbage collector:
//!   `ownerReferences` are stored (not validated) but dependents are never deleted;
//!   `propagationPolicy`, `orphanDependents` and `gracePeriodSeconds` are ignored, and delete
//!   always answers 200. Finalizer names are not validated.
//! - Server-side apply is approximated. Fields are owned per manager (and operation and
//!   subresource); map lists (`x-kubernetes-list-type: map`, e.g. `status.conditions` by
//!   `type`) merge by key, set lists by value, other lists and `x-kubernetes-map-type: atomic`
//!   maps are replaced whole; a field a manager stops applying is removed unless another
//!   manager owns it (a map-list item goes with its fields; key fields stay while the item
//!   stays); `null` in an applied object removes the field. Conflicts (409 unless `force`) are
//!   detected on leaf fields whose value would change, against every other manager; which
//!   fields a real server reports may differ. Built-in kinds have no schema here: their lists
//!   are atomic except `metadata.finalizers` (a set) and `metadata.ownerReferences` (keyed by
//!   `uid`). The order of merged list items, and empty maps left behind by removals, may differ
//!   from a real server's.
//! - `metadata.managedFields` is never returned (see [`FakeKube::managed_fields`] instead), so
//!   an apply that only changes ownership changes neither the object nor its resourceVersion.
//!   Writes without `fieldManager` are recorded under the User-Agent's product name, or
//!   `unknown` (the in-process client sends no User-Agent). `selfLink` is never set.
//! - Strategic merge patch on built-in kinds is applied as a JSON merge patch (no patch
//!   strategies or directives); on custom resources it answers 415, as a real server does.
//! - Request bodies must be JSON (YAML too for apply patches): protobuf and CBOR answer 415,
//!   so kubectl's typed commands (`kubectl create secret`, `create namespace`) fail; use
//!   `kubectl apply -f` or `create -f`. Responses are JSON only: no `as=Table` (kubectl shows
//!   NAME and AGE only), no protobuf. `/openapi/v2` and `/openapi/v3` are not served, so
//!   `kubectl explain` fails and `kubectl apply`/`create -f` need `--validate=false`.
//!   `as=PartialObjectMetadata[List]` is served.
//! - Unknown fields are pruned from custom resources (as on a real server, but without its
//!   `Warning` header); `fieldValidation=Strict` rejects them with 400 (duplicate JSON keys are
//!   not detected: the last wins). In an apply patch they are pruned too, where a real server
//!   may reject them. Built-in kinds are decoded through their k8s-openapi types, which drop
//!   unknown fields silently.
//! - Validation of built-in kinds covers names, label keys and values, annotation keys and
//!   size, Secret `type` (immutable) and `immutable`, Lease durations, and the Event rules
//!   (namespace agreement, `reportingController`, `reportingInstance`, `action`, `reason`,
//!   lengths, and the stricter `events.k8s.io/v1` create rules); a real server checks more.
//!   Event updates are not checked for immutable fields, and Events never expire (a real server
//!   drops them after an hour). The two Event APIs convert by renaming fields only.
//!   `generateName` collisions answer 409 instead of being retried.
//! - Label selector keys and values are checked loosely; field selectors are served for
//!   `metadata.name`, `metadata.namespace`, and per kind: Secret `type`, core Event
//!   `involvedObject.*`, `reason`, `reportingComponent`, `source`, `type`, `events.k8s.io`
//!   Event `regarding.*`, `reason`, `reportingController`, `type`, Namespace `status.phase`.
//! - A `resourceVersion` in a create request body is ignored instead of rejected.
//! - Lists are served from the current state: `resourceVersionMatch=Exact` for anything but
//!   the current resourceVersion answers 410 Expired (a real server serves it from etcd until
//!   compaction), a resourceVersion newer than the server's is not refused, and `limit` is
//!   always honoured (a real server ignores it for `resourceVersion=0` lists from its cache).
//!   Continue tokens are served from a snapshot taken at the first page and expire on
//!   [`FakeKube::compact`].
//! - Watches are served only with `?watch=true`, not the deprecated `/watch/` paths. A watch
//!   from a resourceVersion newer than the server's is not refused. `sendInitialEvents=true` is
//!   honoured without checking that `resourceVersionMatch=NotOlderThan` and
//!   `allowWatchBookmarks` come with it. Bookmarks come every [`Config::bookmark_interval`]
//!   (10 s by default; about a minute on a real server) and once more when a watch times out.
//!   The last [`Config::history_limit`] changes are kept for watches to resume from;
//!   [`FakeKube::compact`] expires them on demand, and [`FakeKube::close_watches`] ends open
//!   watches as a restart would. On a loopback port, [`ServeHandle::go_away`] refuses connections
//!   and cuts the open ones (watches mid-stream included) until [`ServeHandle::come_back`]; a
//!   real server that stops may instead leave connections hanging, which only timeouts end.
//! - The resourceVersion is one global counter, and [`FakeKube::compact`] moves it on without
//!   a change (it is opaque on a real server: never compare or do arithmetic on it).
//! - Not served: `/watch/` paths, scale, `/finalize` and other subresources, proxy, exec and
//!   logs, CRD objects themselves (`apiextensions.k8s.io`), any kind not listed above.
//! - Lists are answered at once unless [`FakeKube::delay_lists`] slows them down (a real
//!   server's take as long as they take).
//! - Timestamps the server sets have one-second precision. `Warning` headers, audit
//!   annotations and `Retry-After` are never sent; failures injected with
//!   [`FakeKube::fail_next`] are a bare `Status` with the code asked for. A JSON patch that does
//!   not apply answers 422 `Invalid` with the generic message and no cause, as a real server's.

#![allow(dead_code)]

mod apply;
mod errors;
mod http;
mod listener;
mod patch;
mod resources;
mod selectors;
mod store;
mod watch;

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

pub use listener::ServeHandle;
use serde_json::Value;
pub use store::{Config, MAX_OBJECT_BYTES, RequestRecord};

/// A fake API server. Cheap to clone: clones share the same objects.
#[derive(Clone)]
pub struct FakeKube {
    store: Arc<store::Store>,
}

impl Default for FakeKube {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FakeKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKube").field("resource_version", &self.resource_version()).finish()
    }
}

impl FakeKube {
    /// A fake that serves the operator's CRDs and the built-in kinds it uses.
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        let registry = resources::Registry::new(&bitbucket_operator::api::crds());
        Self { store: Arc::new(store::Store::new(registry, config)) }
    }

    /// The tower service (`Service<http::Request<B>>`) behind [`FakeKube::client`].
    pub fn service(&self) -> axum::Router {
        http::router(self.store.clone())
    }

    /// A `kube::Client` that talks to this fake, in process; its default namespace is
    /// `default`. Call it inside a tokio runtime (kube's client spawns its buffer task).
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.service(), "default")
    }

    /// Listens on `addr` (use `127.0.0.1:0` for any free port), for
    /// `kubectl --server http://ADDR` or a client over TCP. Returns the address bound; the handle
    /// can make the server go away and come back ([`ServeHandle::go_away`]).
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<(SocketAddr, ServeHandle)> {
        ServeHandle::start(addr, self.service()).await
    }

    fn resource(&self, resource: &str) -> Option<usize> {
        self.store.registry.by_name(resource)
    }

    /// An object as the API serves it. `resource` is a plural (`projectbindings`, `secrets`,
    /// `events` for core Events) or `plural.group` (`events.events.k8s.io`); `namespace` is
    /// `""` for cluster-scoped kinds. `None` when absent or the resource is not served.
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.store.object(self.resource(resource)?, namespace, name)
    }

    /// Every object of a resource, in one namespace or (`None`) all of them, ordered by
    /// namespace and name.
    pub fn objects(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        self.resource(resource).map(|r| self.store.objects(r, namespace)).unwrap_or_default()
    }

    /// Field managers of an object and the fields each owns, as `manager (Apply|Update[,
    /// status])` → paths such as `.status.conditions[type="Ready"].status`.
    pub fn managed_fields(&self, resource: &str, namespace: &str, name: &str) -> BTreeMap<String, Vec<String>> {
        self.resource(resource)
            .and_then(|r| self.store.managers(r, namespace, name))
            .map(|m| apply::summary(&m))
            .unwrap_or_default()
    }

    /// Creates an object without a client, as a `POST` would (validation included): for seeding
    /// tests. The kind comes from `apiVersion` and `kind`, the namespace from
    /// `metadata.namespace` (default `default`). A failure is the `Status` a client would get.
    pub fn create(&self, object: Value) -> Result<Value, Value> {
        let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
        let Some(resource) = self.store.registry.by_kind(api_version, kind) else {
            return Err(
                errors::ApiError::bad_request(format!("the fake does not serve {kind} in {api_version}")).to_status()
            );
        };
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_owned();
        let namespace = self.store.resource(resource).namespaced.then_some(namespace.as_str());
        let options = store::WriteOptions { user_agent_manager: "fake-kube".into(), ..Default::default() };
        self.store.create(resource, namespace, object, &options).map_err(|e| e.to_status())
    }

    /// The newest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.store.resource_version()
    }

    /// Forgets the change history, as an etcd compaction does: watching from any
    /// resourceVersion handed out so far answers 410 Expired, and continue tokens expire.
    /// Open watches go on (call [`FakeKube::close_watches`] too to make clients resume).
    pub fn compact(&self) {
        self.store.compact();
    }

    /// Ends every open watch, as an API server restart does.
    pub fn close_watches(&self) {
        self.store.close_watches();
    }

    /// How many watches are open now.
    pub fn open_watches(&self) -> usize {
        self.store.open_watches()
    }

    /// The newest requests (up to [`Config::request_log_limit`]) and how many there were since
    /// the last [`FakeKube::clear_requests`].
    pub fn requests(&self) -> (Vec<RequestRecord>, u64) {
        self.store.requests()
    }

    pub fn clear_requests(&self) {
        self.store.clear_requests();
    }

    /// Makes every later list of a resource (a plural or `plural.group`) wait `delay` before it is
    /// served, as a busy API server's does; `Duration::ZERO` ends it. Watches are not delayed,
    /// so the stores of a client fill in the order the test chooses.
    pub fn delay_lists(&self, resource: &str, delay: std::time::Duration) {
        self.store.delay_lists(resource, delay);
    }

    /// Changes the largest object later writes may store (its JSON, in bytes), as etcd's
    /// `--max-request-bytes` would; [`store::MAX_OBJECT_BYTES`] is the real default.
    pub fn limit_object_size(&self, bytes: usize) {
        self.store.limit_object_size(bytes);
    }

    /// Makes another writer win a race against the next request with this HTTP method (`"*"` any)
    /// on an object of this resource (a plural or `plural.group`): `patch`, a JSON merge patch,
    /// lands on the object the request names just before the request is served, so the request
    /// meets a change its sender could not have seen.
    pub fn race_next(&self, method: &str, resource: &str, patch: Value) {
        self.store.race_next(method, resource, patch);
    }

    /// Makes the next request with this HTTP method (`"*"` any) on this resource (a plural or
    /// `plural.group`; `"*"` any) fail with `code` and a `Status` of the matching reason.
    pub fn fail_next(&self, method: &str, resource: &str, code: u16) {
        self.store.fail_next(method, resource, code);
    }
}
