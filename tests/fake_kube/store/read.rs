//! Reads: get, list (selectors, pages and continue tokens) and the start of a watch.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::{
    Change, EventType, ListOptions, MAX_SNAPSHOTS, Snapshot, State, Store, TOKEN_PREFIX, WatchMessage, WatchStart,
    Watcher, scan,
};
use crate::fake_kube::{
    errors::ApiError,
    resources::{ResourceType, to_view},
};

impl Store {
    pub fn get(&self, resource: usize, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.object(resource, namespace, name).ok_or_else(|| ApiError::not_found(self.resource(resource), name))
    }

    pub(super) fn list_item(view: &ResourceType, object: Value) -> Value {
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
}
