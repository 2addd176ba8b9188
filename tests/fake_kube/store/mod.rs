//! Objects, the global resourceVersion, the change history watches replay from, and every verb
//! as the API server performs it (metadata, status subresource, generation, finalizers,
//! optimistic concurrency, validation, field managers). Here: the state, the test helpers and
//! the commits every write ends in; `read` (get, list, watch), `write` (create, replace, patch,
//! apply), `delete`, and `validate` (what a body must be, and what is stored of it).

mod delete;
mod read;
mod validate;
mod write;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

pub use validate::parse_body;

use super::{
    apply::{EntryKey, Managers, Schema},
    errors::ApiError,
    resources::{Registry, ResourceType, to_view},
    selectors::Selectors,
};

/// Settings of a fake API server.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often a watch that asked for bookmarks gets one (real servers: about a minute).
    pub bookmark_interval: Duration,
    /// Changes kept for watches to resume from; older resourceVersions answer 410 Expired.
    pub history_limit: usize,
    /// Requests kept by the request log (the count goes on).
    pub request_log_limit: usize,
    /// How long a watch without `timeoutSeconds` lasts (real servers: 30 to 60 minutes).
    pub default_watch_timeout: Duration,
    /// Largest object stored, as its JSON (etcd's default request limit, 1.5 MiB): a write of a
    /// larger one is refused with 500. Lower it to meet the limit with small objects.
    pub max_object_bytes: usize,
}

/// What etcd refuses by default (`--max-request-bytes`).
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;
/// The largest gRPC message the API server sends etcd: beyond it the refusal reads differently.
pub const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(10),
            history_limit: 10_000,
            request_log_limit: 10_000,
            default_watch_timeout: Duration::from_secs(1800),
            max_object_bytes: MAX_OBJECT_BYTES,
        }
    }
}

/// One request the fake answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One committed change, as watches see it (stored form).
#[derive(Debug)]
pub struct Change {
    pub storage: usize,
    pub namespace: String,
    pub event: EventType,
    pub object: Value,
    /// The object before a modification: watches with selectors turn a change of selection
    /// into ADDED or DELETED.
    pub previous: Option<Value>,
}

/// A message to an open watch.
#[derive(Debug)]
pub enum WatchMessage {
    Change(Arc<Change>),
}

#[derive(Debug)]
struct Watcher {
    storage: usize,
    namespace: Option<String>,
    sender: UnboundedSender<WatchMessage>,
}

#[derive(Clone, Debug)]
struct Stored {
    object: Value,
    managers: Managers,
}

type Key = (usize, String, String);

const MAX_SNAPSHOTS: usize = 256;
const TOKEN_PREFIX: &str = "fake-continue-";

#[derive(Clone, Debug)]
struct Snapshot {
    resource_version: u64,
    items: Vec<Value>,
}

#[derive(Debug)]
struct Failure {
    method: String,
    resource: String,
    code: u16,
}

/// Another writer's merge patch, landed just before a request it races.
#[derive(Debug)]
struct Race {
    method: String,
    resource: String,
    patch: Value,
}

/// Whether a request matches an injection's method and resource (`*` or empty: any).
fn targets(method: &str, resource: &str, request_method: &str, request_resource: Option<&ResourceType>) -> bool {
    (method.is_empty() || method == "*" || method == request_method)
        && (resource.is_empty()
            || resource == "*"
            || request_resource.is_some_and(|r| r.plural == resource || r.group_resource() == resource))
}

#[derive(Debug, Default)]
struct State {
    resource_version: u64,
    objects: BTreeMap<Key, Stored>,
    history: VecDeque<(u64, Arc<Change>)>,
    /// Watches may start from this resourceVersion or any later one.
    oldest_watchable: u64,
    watchers: Vec<Watcher>,
    /// Continue tokens by number; the oldest go beyond [`MAX_SNAPSHOTS`].
    snapshots: BTreeMap<u64, Snapshot>,
    next_token: u64,
    requests: VecDeque<RequestRecord>,
    request_count: u64,
    failures: Vec<Failure>,
    races: Vec<Race>,
    /// [`Config::max_object_bytes`], changeable while the fake runs.
    max_object_bytes: usize,
}

/// The objects of one storage, in one namespace or all, in key order.
fn scan<'a>(
    state: &'a State,
    storage: usize,
    namespace: Option<&'a str>,
) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
    let start = (storage, namespace.unwrap_or_default().to_owned(), String::new());
    state.objects.range(start..).take_while(move |((s, ns, _), _)| *s == storage && namespace.is_none_or(|n| n == ns))
}

/// Which part of an object a request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
}

/// Query parameters of a write.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub field_manager: Option<String>,
    /// Manager name derived from the User-Agent, for writes without `fieldManager`.
    pub user_agent_manager: String,
    pub dry_run: bool,
    /// `fieldValidation=Strict`: unknown fields are an error instead of being dropped.
    pub strict: bool,
    pub force: bool,
}

impl WriteOptions {
    fn manager(&self) -> String {
        self.field_manager.clone().unwrap_or_else(|| self.user_agent_manager.clone())
    }
}

/// Which patch a PATCH request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

/// Parameters of a list.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub selectors: Selectors,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// What a watch starts with.
pub struct WatchStart {
    /// Events to send first, in order.
    pub initial: Vec<Arc<Change>>,
    /// The watch starts too far back: send this error and end.
    pub expired: Option<ApiError>,
    pub receiver: UnboundedReceiver<WatchMessage>,
    /// The resourceVersion of the initial state (for the initial-events-end bookmark).
    pub resource_version: u64,
}

pub struct Store {
    pub registry: Registry,
    pub config: Config,
    state: Mutex<State>,
    /// How long a list of a resource (by plural or `plural.group`) waits before it is served.
    list_delays: Mutex<BTreeMap<String, Duration>>,
}

/// Now, to the second, as `metadata` timestamps are written.
pub fn now() -> String {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}

fn meta<'a>(object: &'a Value, field: &str) -> Option<&'a Value> {
    object.get("metadata").and_then(|m| m.get(field))
}

fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    meta(object, field).and_then(Value::as_str).unwrap_or_default()
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata") {
        Some(Value::Object(map)) => map,
        _ => unreachable!("metadata was just made an object"),
    }
}

fn finalizers(object: &Value) -> Vec<String> {
    meta(object, "finalizers")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn is_terminating(object: &Value) -> bool {
    meta(object, "deletionTimestamp").is_some_and(|t| !t.is_null())
}

/// A write in progress: what the request addresses and how.
struct Write<'a> {
    view: &'a ResourceType,
    storage: &'a ResourceType,
    storage_index: usize,
    namespace: String,
    name: String,
    sub: Sub,
    options: &'a WriteOptions,
}

impl Write<'_> {
    fn key(&self) -> Key {
        (self.storage_index, self.namespace.clone(), self.name.clone())
    }

    fn schema(&self) -> Schema<'_> {
        Schema::new(self.view.schema.as_ref())
    }

    fn entry(&self, apply: bool) -> EntryKey {
        EntryKey {
            manager: self.options.manager(),
            apply,
            subresource: if self.sub == Sub::Status { "status".into() } else { String::new() },
        }
    }
}

impl Store {
    pub fn new(registry: Registry, config: Config) -> Self {
        let state = State { max_object_bytes: config.max_object_bytes, ..State::default() };
        Self { registry, config, state: Mutex::new(state), list_delays: Mutex::default() }
    }

    /// Changes the object size limit for later writes.
    pub fn limit_object_size(&self, bytes: usize) {
        self.state().max_object_bytes = bytes;
    }

    /// Refuses to store `object` when etcd would: its JSON is larger than the limit.
    fn check_size(state: &State, object: &Value) -> Result<(), ApiError> {
        let size = serde_json::to_vec(object).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
        if size > MAX_MESSAGE_BYTES {
            Err(ApiError::message_too_large(size, MAX_MESSAGE_BYTES))
        } else if size > state.max_object_bytes {
            Err(ApiError::object_too_large())
        } else {
            Ok(())
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn resource(&self, index: usize) -> &ResourceType {
        &self.registry.types[index]
    }

    // -- test helpers ---------------------------------------------------------------------------

    pub fn resource_version(&self) -> u64 {
        self.state().resource_version
    }

    pub fn object(&self, resource: usize, namespace: &str, name: &str) -> Option<Value> {
        let view = self.resource(resource);
        let key = (view.storage, namespace.to_owned(), name.to_owned());
        self.state().objects.get(&key).map(|stored| to_view(view, &stored.object))
    }

    pub fn objects(&self, resource: usize, namespace: Option<&str>) -> Vec<Value> {
        let view = self.resource(resource);
        let state = self.state();
        scan(&state, view.storage, namespace).map(|(_, stored)| to_view(view, &stored.object)).collect()
    }

    pub fn managers(&self, resource: usize, namespace: &str, name: &str) -> Option<Managers> {
        let view = self.resource(resource);
        let key = (view.storage, namespace.to_owned(), name.to_owned());
        self.state().objects.get(&key).map(|stored| stored.managers.clone())
    }

    /// Forgets the change history and moves the resourceVersion on, so that every
    /// resourceVersion handed out so far is too old to watch from (410 Expired), as after an
    /// etcd compaction. Continue tokens expire too.
    pub fn compact(&self) {
        let mut state = self.state();
        state.resource_version += 1;
        state.oldest_watchable = state.resource_version;
        state.history.clear();
        state.snapshots.clear();
    }

    /// Ends every open watch, as an API server restart would; clients then watch again from
    /// the last resourceVersion they saw.
    pub fn close_watches(&self) {
        self.state().watchers.clear();
    }

    pub fn open_watches(&self) -> usize {
        let mut state = self.state();
        state.watchers.retain(|w| !w.sender.is_closed());
        state.watchers.len()
    }

    pub fn record_request(&self, record: RequestRecord) {
        let mut state = self.state();
        state.request_count += 1;
        state.requests.push_back(record);
        while state.requests.len() > self.config.request_log_limit {
            state.requests.pop_front();
        }
    }

    pub fn requests(&self) -> (Vec<RequestRecord>, u64) {
        let state = self.state();
        (state.requests.iter().cloned().collect(), state.request_count)
    }

    pub fn clear_requests(&self) {
        let mut state = self.state();
        state.requests.clear();
        state.request_count = 0;
    }

    pub fn delay_lists(&self, resource: &str, delay: Duration) {
        let mut delays = self.list_delays.lock().unwrap_or_else(PoisonError::into_inner);
        if delay.is_zero() {
            delays.remove(resource);
        } else {
            delays.insert(resource.to_owned(), delay);
        }
    }

    /// How long a list of this resource waits before it is served.
    pub fn list_delay(&self, resource: &ResourceType) -> Duration {
        let delays = self.list_delays.lock().unwrap_or_else(PoisonError::into_inner);
        delays.get(&resource.plural).or_else(|| delays.get(&resource.group_resource())).copied().unwrap_or_default()
    }

    pub fn fail_next(&self, method: &str, resource: &str, code: u16) {
        self.state().failures.push(Failure { method: method.to_uppercase(), resource: resource.to_owned(), code });
    }

    /// The injected failure for this request, if one matches (each is used once).
    pub fn take_failure(&self, method: &str, resource: Option<&ResourceType>) -> Option<ApiError> {
        let mut state = self.state();
        let position = state.failures.iter().position(|f| targets(&f.method, &f.resource, method, resource))?;
        let failure = state.failures.remove(position);
        Some(ApiError::injected(failure.code))
    }

    pub fn race_next(&self, method: &str, resource: &str, patch: Value) {
        self.state().races.push(Race { method: method.to_uppercase(), resource: resource.to_owned(), patch });
    }

    /// The other writer's patch that this request races, if one matches (each is used once).
    pub fn take_race(&self, method: &str, resource: Option<&ResourceType>) -> Option<Value> {
        let mut state = self.state();
        let position = state.races.iter().position(|r| targets(&r.method, &r.resource, method, resource))?;
        Some(state.races.remove(position).patch)
    }

    // -- commits -------------------------------------------------------------------------------

    fn next_resource_version(state: &mut State) -> u64 {
        state.resource_version += 1;
        state.resource_version
    }

    fn emit(&self, state: &mut State, resource_version: u64, change: Change) {
        let change = Arc::new(change);
        state.history.push_back((resource_version, change.clone()));
        while state.history.len() > self.config.history_limit {
            if let Some((dropped, _)) = state.history.pop_front() {
                state.oldest_watchable = state.oldest_watchable.max(dropped);
            }
        }
        state.watchers.retain(|watcher| {
            let interested = watcher.storage == change.storage
                && watcher.namespace.as_ref().is_none_or(|ns| *ns == change.namespace);
            !interested || watcher.sender.send(WatchMessage::Change(change.clone())).is_ok()
        });
    }

    /// Stores `object` (stored form) under a new resourceVersion and tells the watches.
    /// Stores a change, unless the object is too large for etcd.
    fn commit(
        &self,
        state: &mut State,
        key: Key,
        mut object: Value,
        managers: Managers,
        event: EventType,
    ) -> Result<Value, ApiError> {
        Self::check_size(state, &object)?;
        let resource_version = Self::next_resource_version(state);
        metadata_mut(&mut object).insert("resourceVersion".into(), json!(resource_version.to_string()));
        let previous = state.objects.insert(key.clone(), Stored { object: object.clone(), managers }).map(|s| s.object);
        let change = Change { storage: key.0, namespace: key.1, event, object: object.clone(), previous };
        self.emit(state, resource_version, change);
        Ok(object)
    }

    fn commit_delete(&self, state: &mut State, key: Key) -> Option<Value> {
        let mut object = state.objects.remove(&key)?.object;
        let resource_version = Self::next_resource_version(state);
        metadata_mut(&mut object).insert("resourceVersion".into(), json!(resource_version.to_string()));
        let change = Change {
            storage: key.0,
            namespace: key.1,
            event: EventType::Deleted,
            object: object.clone(),
            previous: None,
        };
        self.emit(state, resource_version, change);
        Some(object)
    }

    // -- what a request addresses -------------------------------------------------------------

    fn write<'a>(
        &'a self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        sub: Sub,
        options: &'a WriteOptions,
    ) -> Write<'a> {
        let view = self.resource(resource);
        Write {
            view,
            storage: self.resource(view.storage),
            storage_index: view.storage,
            namespace: namespace.unwrap_or_default().to_owned(),
            name: name.to_owned(),
            sub,
            options,
        }
    }

    fn existing(&self, state: &State, write: &Write) -> Result<Stored, ApiError> {
        state.objects.get(&write.key()).cloned().ok_or_else(|| ApiError::not_found(write.view, &write.name))
    }
}
