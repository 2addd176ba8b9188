//! Objects, the global resourceVersion, the change history watches replay from, and every verb
//! as the API server performs it (metadata, status subresource, generation, finalizers,
//! optimistic concurrency, validation, field managers).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{
    apply::{self, EntryKey, Managers, Schema},
    errors::{ApiError, Cause, forbidden_cause, invalid_cause, required_cause},
    patch,
    resources::{Registry, ResourceType, from_view, metadata_causes, prepare_builtin, to_view},
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(10),
            history_limit: 10_000,
            request_log_limit: 10_000,
            default_watch_timeout: Duration::from_secs(1800),
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

fn new_uid() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        fastrand::u16(0x8000..0xc000),
        fastrand::u64(..1 << 48)
    )
}

fn generated_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| CHARS[fastrand::usize(..CHARS.len())] as char).collect()
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

/// What `generation` counts changes of: everything but `metadata`, and but `status` when the
/// kind has a status subresource.
fn spec_part(object: &Value, status_subresource: bool) -> Value {
    let mut object = object.clone();
    if let Value::Object(map) = &mut object {
        map.remove("metadata");
        if status_subresource {
            map.remove("status");
        }
    }
    object
}

fn without_resource_version(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.remove("resourceVersion");
    }
    object
}

const SYSTEM_METADATA: [&str; 7] =
    ["name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds"];
const USER_METADATA: [&str; 5] = ["labels", "annotations", "finalizers", "ownerReferences", "generateName"];

/// The user-settable metadata of a request body, type-checked, with empty fields dropped.
fn user_metadata(body: &Value) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    let Some(metadata) = body.get("metadata") else { return Ok(out) };
    if metadata.is_null() {
        return Ok(out);
    }
    if !metadata.is_object() {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    for field in USER_METADATA {
        let Some(value) = metadata.get(field) else { continue };
        let ok = match (field, value) {
            (_, Value::Null) => continue,
            ("labels" | "annotations", Value::Object(map)) => map.values().all(Value::is_string),
            ("finalizers", Value::Array(items)) => items.iter().all(Value::is_string),
            ("ownerReferences", Value::Array(items)) => items.iter().all(Value::is_object),
            ("generateName", Value::String(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(ApiError::bad_request(format!("metadata.{field} has the wrong type: {value}")));
        }
        let empty = match value {
            Value::Object(map) => map.is_empty(),
            Value::Array(items) => items.is_empty(),
            Value::String(text) => text.is_empty(),
            _ => false,
        };
        if !empty {
            out.insert(field.to_owned(), value.clone());
        }
    }
    Ok(out)
}

/// The value at a validator field path such as `spec.webhooks[0].url`.
fn field_value<'a>(object: &'a Value, field: &str) -> Option<&'a Value> {
    let mut node = object;
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = match part.find('[') {
            Some(open) => (&part[..open], &part[open..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            node = node.get(name)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let index: usize = index.trim_end_matches(']').parse().ok()?;
            node = node.get(index)?;
        }
    }
    Some(node)
}

/// Drops fields the schema does not declare, as the API server prunes custom resources;
/// returns their paths.
fn prune_unknown(schema: &Value, value: &mut Value, path: &str, root: bool, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let preserve = schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let additional_schema = additional.filter(|a| a.is_object());
            let any_additional = additional.and_then(Value::as_bool) == Some(true) || additional_schema.is_some();
            let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
            if !preserve && !any_additional {
                map.retain(|key, _| {
                    let known = properties.is_some_and(|p| p.contains_key(key))
                        || (root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata"));
                    if !known {
                        pruned.push(join(key));
                    }
                    known
                });
            }
            for (key, child) in map.iter_mut() {
                if root && key == "metadata" {
                    continue;
                }
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional_schema) {
                    prune_unknown(child_schema, child, &join(key), false, pruned);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter_mut().enumerate() {
                    prune_unknown(item_schema, item, &format!("{path}[{index}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}

/// A parsed request body: JSON, or YAML for apply patches.
pub fn parse_body(bytes: &[u8], yaml: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => Ok(value),
        Err(json_error) if yaml => {
            let text =
                std::str::from_utf8(bytes).map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_error})")))
        }
        Err(e) => Err(ApiError::bad_request(format!("couldn't decode the request body as JSON: {e}"))),
    }
}

fn object_body(body: Value) -> Result<Value, ApiError> {
    if body.is_object() { Ok(body) } else { Err(ApiError::bad_request("the request body must be a JSON object")) }
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
        Self { registry, config, state: Mutex::new(State::default()), list_delays: Mutex::default() }
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
        let position = state.failures.iter().position(|f| {
            (f.method.is_empty() || f.method == "*" || f.method == method)
                && (f.resource.is_empty()
                    || f.resource == "*"
                    || resource.is_some_and(|r| r.plural == f.resource || r.group_resource() == f.resource))
        })?;
        let failure = state.failures.remove(position);
        Some(ApiError::injected(failure.code))
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
    fn commit(&self, state: &mut State, key: Key, mut object: Value, managers: Managers, event: EventType) -> Value {
        let resource_version = Self::next_resource_version(state);
        metadata_mut(&mut object).insert("resourceVersion".into(), json!(resource_version.to_string()));
        let previous = state.objects.insert(key.clone(), Stored { object: object.clone(), managers }).map(|s| s.object);
        let change = Change { storage: key.0, namespace: key.1, event, object: object.clone(), previous };
        self.emit(state, resource_version, change);
        object
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

    // -- validation ----------------------------------------------------------------------------

    /// Validates a new object or an update (served forms) the way the API server does, and
    /// returns what it would store.
    fn validate(&self, write: &Write, object: Value, old: Option<&Value>) -> Result<Value, ApiError> {
        let view = write.view;
        let causes = metadata_causes(view, &object);
        if !causes.is_empty() {
            return Err(ApiError::invalid(view, &write.name, causes));
        }
        let Some(validator) = view.validator else {
            return prepare_builtin(view, object, old);
        };
        let mut object = object;
        if let Some(schema) = &view.schema {
            let mut pruned = Vec::new();
            prune_unknown(schema, &mut object, "", true, &mut pruned);
            if write.options.strict && !pruned.is_empty() {
                let fields: Vec<String> = pruned.iter().map(|f| format!("unknown field \"{f}\"")).collect();
                return Err(ApiError::bad_request(format!("strict decoding error: {}", fields.join(", "))));
            }
        }
        validator.admit(&object, old).map_err(|errors| {
            let causes: Vec<Cause> = errors
                .iter()
                .map(|e| {
                    if e.message == "is required" {
                        required_cause(&e.field)
                    } else {
                        invalid_cause(&e.field, field_value(&object, &e.field), &e.message)
                    }
                })
                .collect();
            ApiError::invalid(view, &write.name, causes)
        })
    }

    // -- reads ---------------------------------------------------------------------------------

    pub fn get(&self, resource: usize, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.object(resource, namespace, name).ok_or_else(|| ApiError::not_found(self.resource(resource), name))
    }

    fn list_item(view: &ResourceType, object: Value) -> Value {
        let mut object = object;
        // A real server's lists of built-in kinds leave out each item's apiVersion and kind.
        if !view.is_custom()
            && let Value::Object(map) = &mut object
        {
            map.remove("apiVersion");
            map.remove("kind");
        }
        object
    }

    pub fn list(&self, resource: usize, namespace: Option<&str>, options: &ListOptions) -> Result<Value, ApiError> {
        let view = self.resource(resource);
        let mut state = self.state();
        let (resource_version, mut items) =
            if let Some(token) = options.continue_token.as_deref().filter(|t| !t.is_empty()) {
                let number = token.strip_prefix(TOKEN_PREFIX).and_then(|n| n.parse::<u64>().ok());
                let snapshot = number.and_then(|n| state.snapshots.get(&n)).cloned().ok_or_else(|| {
                ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a \
                     new list without the continue parameter.",
                )
            })?;
                (snapshot.resource_version, snapshot.items)
            } else {
                if options.resource_version_match.as_deref() == Some("Exact")
                    && let Some(requested) = options.resource_version.as_deref()
                    && requested != state.resource_version.to_string()
                {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {requested} ({})",
                        state.resource_version
                    )));
                }
                let items: Vec<Value> = scan(&state, view.storage, namespace)
                    .map(|(_, stored)| to_view(view, &stored.object))
                    .filter(|object| options.selectors.matches(object))
                    .map(|object| Self::list_item(view, object))
                    .collect();
                (state.resource_version, items)
            };
        let mut metadata = json!({"resourceVersion": resource_version.to_string()});
        if let Some(limit) = options.limit.filter(|limit| *limit > 0 && items.len() > *limit) {
            let rest = items.split_off(limit);
            state.next_token += 1;
            let number = state.next_token;
            metadata["continue"] = json!(format!("{TOKEN_PREFIX}{number}"));
            metadata["remainingItemCount"] = json!(rest.len());
            state.snapshots.insert(number, Snapshot { resource_version, items: rest });
            while state.snapshots.len() > MAX_SNAPSHOTS {
                state.snapshots.pop_first();
            }
        }
        Ok(json!({
            "kind": format!("{}List", view.kind),
            "apiVersion": view.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    /// Starts a watch: the events to replay (or the initial state) and the live feed,
    /// registered atomically so that nothing falls between them.
    pub fn watch(
        &self,
        resource: usize,
        namespace: Option<&str>,
        resource_version: Option<&str>,
        send_initial_events: bool,
    ) -> Result<WatchStart, ApiError> {
        let view = self.resource(resource);
        let mut state = self.state();
        let (sender, receiver) = unbounded_channel();
        let current = state.resource_version;
        let initial_state = |state: &State| -> Vec<Arc<Change>> {
            scan(state, view.storage, namespace)
                .map(|((storage, ns, _), stored)| {
                    Arc::new(Change {
                        storage: *storage,
                        namespace: ns.clone(),
                        event: EventType::Added,
                        object: stored.object.clone(),
                        previous: None,
                    })
                })
                .collect()
        };
        let requested = resource_version.filter(|rv| !rv.is_empty() && *rv != "0");
        let initial = match requested {
            _ if send_initial_events => initial_state(&state),
            None => initial_state(&state),
            Some(text) => {
                let from: u64 =
                    text.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version {text:?}")))?;
                if from < state.oldest_watchable {
                    let expired =
                        ApiError::expired(format!("too old resource version: {from} ({})", state.oldest_watchable));
                    return Ok(WatchStart {
                        initial: Vec::new(),
                        expired: Some(expired),
                        receiver,
                        resource_version: current,
                    });
                }
                state
                    .history
                    .iter()
                    .filter(|(rv, change)| {
                        *rv > from
                            && change.storage == view.storage
                            && namespace.is_none_or(|ns| ns == change.namespace)
                    })
                    .map(|(_, change)| change.clone())
                    .collect()
            }
        };
        state.watchers.push(Watcher { storage: view.storage, namespace: namespace.map(str::to_owned), sender });
        Ok(WatchStart { initial, expired: None, receiver, resource_version: current })
    }

    /// The resourceVersion now, with every change up to it already queued to `receiver`
    /// (for bookmarks that never overtake events).
    pub fn drain_and_version(&self, receiver: &mut UnboundedReceiver<WatchMessage>) -> (Vec<WatchMessage>, u64) {
        let state = self.state();
        let mut drained = Vec::new();
        while let Ok(message) = receiver.try_recv() {
            drained.push(message);
        }
        (drained, state.resource_version)
    }

    // -- writes --------------------------------------------------------------------------------

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

    /// Checks `apiVersion`, `kind` and `metadata.namespace` of a body against the URL and fills
    /// them in when absent.
    fn check_identity(write: &Write, body: &mut Value) -> Result<(), ApiError> {
        let view = write.view;
        let api_version = view.api_version();
        match body.get("apiVersion").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != api_version => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({given}) does not match the expected API version ({api_version})"
                )));
            }
            _ => body["apiVersion"] = json!(api_version),
        }
        match body.get("kind").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != view.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({given}) does not match the expected kind ({})",
                    view.kind
                )));
            }
            _ => body["kind"] = json!(view.kind),
        }
        let given = meta_str(body, "namespace").to_owned();
        if view.namespaced {
            if !given.is_empty() && given != write.namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        } else if !given.is_empty() {
            metadata_mut(body).remove("namespace");
        }
        Ok(())
    }

    fn check_name(write: &Write, body: &Value) -> Result<(), ApiError> {
        let given = meta_str(body, "name");
        if !given.is_empty() && given != write.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({})",
                write.name
            )));
        }
        Ok(())
    }

    pub fn create(
        &self,
        resource: usize,
        namespace: Option<&str>,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut body = object_body(body)?;
        let mut state = self.state();
        let mut write = self.write(resource, namespace, meta_str(&body, "name"), Sub::Main, options);
        Self::check_identity(&write, &mut body)?;
        if write.name.is_empty() {
            let prefix = meta_str(&body, "generateName");
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    write.view,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired",
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                ));
            }
            write.name = format!("{prefix}{}", generated_suffix());
        }
        self.create_locked(&mut state, &write, body, None)
    }

    /// Creates `body` (served form, identity checked); `managers` comes from an apply.
    fn create_locked(
        &self,
        state: &mut State,
        write: &Write,
        body: Value,
        managers: Option<Managers>,
    ) -> Result<Value, ApiError> {
        let mut metadata = user_metadata(&body)?;
        metadata.insert("name".into(), json!(write.name));
        if write.view.namespaced {
            metadata.insert("namespace".into(), json!(write.namespace));
        }
        metadata.insert("uid".into(), json!(new_uid()));
        metadata.insert("creationTimestamp".into(), json!(now()));
        if write.storage.is_custom() {
            metadata.insert("generation".into(), json!(1));
        }
        let mut object = body;
        object["metadata"] = Value::Object(metadata);
        if write.storage.status_subresource
            && let Value::Object(map) = &mut object
        {
            map.remove("status");
        }
        let object = self.validate(write, object, None)?;
        if state.objects.contains_key(&write.key()) {
            return Err(ApiError::already_exists(write.view, &write.name));
        }
        if write.options.dry_run {
            return Ok(object);
        }
        let stored = from_view(write.view, &object);
        let managers = managers.unwrap_or_else(|| {
            let mut managers = Managers::new();
            apply::record_update(&mut managers, &write.entry(false), &json!({}), &stored, write.schema());
            managers
        });
        let stored = self.commit(state, write.key(), stored, managers, EventType::Added);
        Ok(to_view(write.view, &stored))
    }

    /// Finishes an update of `old` to `candidate` (served form): the status subresource rules,
    /// system metadata, finalizer rules, validation, generation, no-op detection, commit.
    fn update_locked(
        &self,
        state: &mut State,
        write: &Write,
        old: &Stored,
        candidate: Value,
        managers: Option<Managers>,
    ) -> Result<Value, ApiError> {
        let old_view = to_view(write.view, &old.object);
        let mut new = match write.sub {
            Sub::Status => {
                let mut new = old_view.clone();
                match candidate.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Value::Object(map) = &mut new {
                            map.remove("status");
                        }
                    }
                }
                new
            }
            Sub::Main => {
                let mut new = candidate;
                let mut metadata = user_metadata(&new)?;
                for field in SYSTEM_METADATA {
                    if let Some(value) = meta(&old_view, field) {
                        metadata.insert(field.to_owned(), value.clone());
                    }
                }
                new["metadata"] = Value::Object(metadata);
                new["apiVersion"] = json!(write.view.api_version());
                new["kind"] = json!(write.view.kind);
                if write.storage.status_subresource
                    && let Value::Object(map) = &mut new
                {
                    match old_view.get("status") {
                        Some(status) => {
                            map.insert("status".into(), status.clone());
                        }
                        None => {
                            map.remove("status");
                        }
                    }
                }
                new
            }
        };
        if is_terminating(&old_view) {
            let before = finalizers(&old_view);
            let added: Vec<String> = finalizers(&new).into_iter().filter(|f| !before.contains(f)).collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    write.view,
                    &write.name,
                    vec![forbidden_cause(
                        "metadata.finalizers",
                        &format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }
        let resource_version = meta(&old_view, "resourceVersion").cloned().unwrap_or(Value::Null);
        metadata_mut(&mut new).insert("resourceVersion".into(), resource_version);
        let mut new = self.validate(write, new, Some(&old_view))?;
        let with_status = write.storage.status_subresource;
        if write.storage.is_custom() && spec_part(&new, with_status) != spec_part(&old_view, with_status) {
            let generation = meta(&old_view, "generation").and_then(Value::as_i64).unwrap_or(0);
            metadata_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        let stored = from_view(write.view, &new);
        if without_resource_version(&stored) == without_resource_version(&old.object) {
            return Ok(old_view);
        }
        if write.options.dry_run {
            return Ok(new);
        }
        let managers = managers.unwrap_or_else(|| {
            let mut managers = old.managers.clone();
            apply::record_update(&mut managers, &write.entry(false), &old.object, &stored, write.schema());
            managers
        });
        let finished = is_terminating(&stored) && finalizers(&stored).is_empty();
        let stored = self.commit(state, write.key(), stored, managers, EventType::Modified);
        if finished {
            self.commit_delete(state, write.key());
        }
        Ok(to_view(write.view, &stored))
    }

    fn existing(&self, state: &State, write: &Write) -> Result<Stored, ApiError> {
        state.objects.get(&write.key()).cloned().ok_or_else(|| ApiError::not_found(write.view, &write.name))
    }

    pub fn replace(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        sub: Sub,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut body = object_body(body)?;
        let mut state = self.state();
        let write = self.write(resource, namespace, name, sub, options);
        Self::check_name(&write, &body)?;
        Self::check_identity(&write, &mut body)?;
        let old = self.existing(&state, &write)?;
        let given = meta_str(&body, "resourceVersion");
        if given.is_empty() {
            if write.storage.is_custom() {
                return Err(ApiError::invalid(
                    write.view,
                    name,
                    vec![invalid_cause(
                        "metadata.resourceVersion",
                        Some(&json!("0x0")),
                        "must be specified for an update",
                    )],
                ));
            }
        } else if given != meta_str(&old.object, "resourceVersion") {
            return Err(ApiError::stale(write.view, name));
        }
        self.update_locked(&mut state, &write, &old, body, None)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        sub: Sub,
        patch_type: PatchType,
        body: &[u8],
        options: &WriteOptions,
    ) -> Result<(u16, Value), ApiError> {
        let view = self.resource(resource);
        if patch_type == PatchType::Strategic && view.is_custom() {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let patch_document = parse_body(body, patch_type == PatchType::Apply)?;
        if patch_type == PatchType::Apply {
            return self.apply(resource, namespace, name, sub, patch_document, options);
        }
        if patch_type == PatchType::Json {
            patch::check_json_patch(&patch_document).map_err(ApiError::bad_request)?;
        } else if !patch_document.is_object() {
            return Err(ApiError::bad_request("a merge patch must be a JSON object"));
        }
        let mut state = self.state();
        let write = self.write(resource, namespace, name, sub, options);
        let old = self.existing(&state, &write)?;
        let old_view = to_view(view, &old.object);
        let mut patched = old_view.clone();
        match patch_type {
            PatchType::Json => patch::json_patch(&mut patched, &patch_document).map_err(ApiError::unprocessable)?,
            _ => patch::merge_patch(&mut patched, &patch_document),
        }
        let mut patched = object_body(patched)?;
        Self::check_name(&write, &patched)?;
        Self::check_identity(&write, &mut patched)?;
        let given = meta_str(&patched, "resourceVersion");
        if !given.is_empty() && given != meta_str(&old_view, "resourceVersion") {
            return Err(ApiError::stale(view, name));
        }
        Ok((200, self.update_locked(&mut state, &write, &old, patched, None)?))
    }

    fn apply(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        sub: Sub,
        applied: Value,
        options: &WriteOptions,
    ) -> Result<(u16, Value), ApiError> {
        if options.field_manager.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request("fieldManager is required for apply requests"));
        }
        let mut applied = object_body(applied)?;
        let mut state = self.state();
        let write = self.write(resource, namespace, name, sub, options);
        let view = write.view;
        for field in ["apiVersion", "kind"] {
            if applied.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(format!("{field} must be set in an apply patch")));
            }
        }
        Self::check_name(&write, &applied)?;
        Self::check_identity(&write, &mut applied)?;
        if let Some(schema) = &view.schema {
            let mut pruned = Vec::new();
            prune_unknown(schema, &mut applied, "", true, &mut pruned);
            if options.strict && !pruned.is_empty() {
                return Err(ApiError::bad_request(format!("strict decoding error: unknown fields {pruned:?}")));
            }
        }
        let given = meta_str(&applied, "resourceVersion").to_owned();
        if let Value::Object(map) = &mut applied {
            match sub {
                Sub::Status => map.retain(|key, _| matches!(key.as_str(), "apiVersion" | "kind" | "status")),
                Sub::Main if write.storage.status_subresource => {
                    map.remove("status");
                }
                Sub::Main => {}
            }
        }
        let entry = write.entry(true);
        let existing = state.objects.get(&write.key()).cloned();
        match existing {
            None if sub == Sub::Status => Err(ApiError::not_found(view, name)),
            None => {
                let mut live = json!({"apiVersion": view.api_version(), "kind": view.kind, "metadata": {"name": name}});
                if view.namespaced {
                    live["metadata"]["namespace"] = json!(write.namespace);
                }
                let result = apply::apply(&live, &applied, write.schema(), &Managers::new(), &entry, options.force)
                    .map_err(|conflicts| ApiError::apply_conflicts(view, name, &conflicts))?;
                Ok((201, self.create_locked(&mut state, &write, result.object, Some(result.managers))?))
            }
            Some(old) => {
                let old_view = to_view(view, &old.object);
                if !given.is_empty() && given != meta_str(&old_view, "resourceVersion") {
                    return Err(ApiError::stale(view, name));
                }
                let result = apply::apply(&old_view, &applied, write.schema(), &old.managers, &entry, options.force)
                    .map_err(|conflicts| ApiError::apply_conflicts(view, name, &conflicts))?;
                let updated =
                    self.update_locked(&mut state, &write, &old, result.object, Some(result.managers.clone()))?;
                // A no-op apply still records who applied what (the object is unchanged).
                if !options.dry_run
                    && let Some(stored) = state.objects.get_mut(&write.key())
                {
                    stored.managers = result.managers;
                }
                Ok((200, updated))
            }
        }
    }

    /// Deletes an object, or marks it for deletion while finalizers remain. Returns the
    /// object (custom resources, or any kind still finalizing) or a success `Status`.
    pub fn delete(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        delete_options: &Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut state = self.state();
        self.delete_locked(&mut state, resource, namespace, name, delete_options, options)
    }

    fn delete_locked(
        &self,
        state: &mut State,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        delete_options: &Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let write = self.write(resource, namespace, name, Sub::Main, options);
        let view = write.view;
        let old = self.existing(state, &write)?;
        let old_view = to_view(view, &old.object);
        if let Some(uid) = delete_options.pointer("/preconditions/uid").and_then(Value::as_str)
            && uid != meta_str(&old_view, "uid")
        {
            return Err(ApiError::conflict(
                view,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old_view, "uid")
                ),
            ));
        }
        if let Some(rv) = delete_options.pointer("/preconditions/resourceVersion").and_then(Value::as_str)
            && rv != meta_str(&old_view, "resourceVersion")
        {
            return Err(ApiError::conflict(
                view,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old_view, "resourceVersion")
                ),
            ));
        }
        if !finalizers(&old.object).is_empty() {
            if is_terminating(&old.object) || options.dry_run {
                return Ok(old_view);
            }
            let mut object = old.object.clone();
            let metadata = metadata_mut(&mut object);
            metadata.insert("deletionTimestamp".into(), json!(now()));
            metadata.insert("deletionGracePeriodSeconds".into(), json!(0));
            if let Some(generation) = metadata.get("generation").and_then(Value::as_i64).filter(|g| *g > 0) {
                metadata.insert("generation".into(), json!(generation + 1));
            }
            let stored = self.commit(state, write.key(), object, old.managers, EventType::Modified);
            return Ok(to_view(view, &stored));
        }
        let deleted =
            if options.dry_run { old.object } else { self.commit_delete(state, write.key()).unwrap_or(old.object) };
        if view.is_custom() {
            return Ok(to_view(view, &deleted));
        }
        let mut details = json!({"name": name, "kind": view.plural, "uid": meta_str(&deleted, "uid")});
        if !view.group.is_empty() {
            details["group"] = json!(view.group);
        }
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}))
    }

    pub fn delete_collection(
        &self,
        resource: usize,
        namespace: Option<&str>,
        selectors: &Selectors,
        delete_options: &Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let view = self.resource(resource);
        let mut state = self.state();
        let targets: Vec<(String, String)> = scan(&state, view.storage, namespace)
            .filter(|(_, stored)| selectors.matches(&to_view(view, &stored.object)))
            .map(|((_, ns, name), _)| (ns.clone(), name.clone()))
            .collect();
        let mut items = Vec::new();
        for (ns, name) in targets {
            let ns = if view.namespaced { Some(ns.as_str()) } else { None };
            let result = self.delete_locked(&mut state, resource, ns, &name, delete_options, options)?;
            if result.get("kind").and_then(Value::as_str) != Some("Status") {
                items.push(Self::list_item(view, result));
            }
        }
        Ok(json!({
            "kind": format!("{}List", view.kind),
            "apiVersion": view.api_version(),
            "metadata": {"resourceVersion": state.resource_version.to_string()},
            "items": items,
        }))
    }
}
