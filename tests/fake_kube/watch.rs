//! A watch response: newline-delimited `{type, object}` events, bookmarks when asked for, an
//! ERROR event with a 410 `Status` when the requested resourceVersion is too old, and the end of
//! the stream at `timeoutSeconds`.

use std::{collections::VecDeque, convert::Infallible, sync::Arc, time::Duration};

use axum::body::{Body, Bytes};
use serde_json::{Value, json};
use tokio::{sync::mpsc::UnboundedReceiver, time::Instant};

use super::{
    http::partial_object,
    resources::to_view,
    selectors::Selectors,
    store::{Change, EventType, Store, WatchMessage, WatchStart},
};

/// What a watch request asked for.
pub struct WatchRequest {
    pub resource: usize,
    pub selectors: Selectors,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Duration,
    /// Objects as `PartialObjectMetadata`.
    pub metadata_only: bool,
}

struct Stream {
    store: Arc<Store>,
    request: WatchRequest,
    receiver: UnboundedReceiver<WatchMessage>,
    pending: VecDeque<Bytes>,
    next_bookmark: Instant,
    deadline: Instant,
    done: bool,
}

fn line(value: &Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

impl Stream {
    /// The event a change is for this watch, if any: selectors turn an object entering or
    /// leaving the selection into ADDED or DELETED, as on a real server.
    fn render(&self, change: &Change) -> Option<Bytes> {
        let view = self.store.resource(self.request.resource);
        let object = to_view(view, &change.object);
        let now = self.request.selectors.matches(&object);
        let before = change.previous.as_ref().map(|p| self.request.selectors.matches(&to_view(view, p)));
        let event = match (change.event, before, now) {
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Modified, Some(true) | None, true) => EventType::Modified,
            (EventType::Modified, Some(false), true) => EventType::Added,
            (EventType::Modified, Some(true), false) => EventType::Deleted,
            (EventType::Deleted, _, true) => EventType::Deleted,
            _ => return None,
        };
        let object = if self.request.metadata_only { partial_object(&object) } else { object };
        Some(line(&json!({"type": event.as_str(), "object": object})))
    }

    fn bookmark(&self, resource_version: u64, initial_end: bool) -> Bytes {
        let view = self.store.resource(self.request.resource);
        let mut metadata = json!({"resourceVersion": resource_version.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(&json!({
            "type": "BOOKMARK",
            "object": {"kind": view.kind, "apiVersion": view.api_version(), "metadata": metadata},
        }))
    }

    /// Queues every change already sent to this watch, then a bookmark at the current
    /// resourceVersion, so the bookmark never overtakes an event.
    fn queue_bookmark(&mut self) {
        let (drained, resource_version) = self.store.drain_and_version(&mut self.receiver);
        for WatchMessage::Change(change) in drained {
            if let Some(bytes) = self.render(&change) {
                self.pending.push_back(bytes);
            }
        }
        let bookmark = self.bookmark(resource_version, false);
        self.pending.push_back(bookmark);
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some(bytes);
            }
            if self.done {
                return None;
            }
            tokio::select! {
                message = self.receiver.recv() => match message {
                    Some(WatchMessage::Change(change)) => {
                        if let Some(bytes) = self.render(&change) {
                            return Some(bytes);
                        }
                    }
                    None => self.done = true,
                },
                _ = tokio::time::sleep_until(self.next_bookmark), if self.request.bookmarks => {
                    self.queue_bookmark();
                    self.next_bookmark = Instant::now() + self.store.config.bookmark_interval;
                }
                _ = tokio::time::sleep_until(self.deadline) => {
                    // Real servers close a timed-out watch with a last bookmark, so the client
                    // resumes from the newest resourceVersion.
                    if self.request.bookmarks {
                        self.queue_bookmark();
                    }
                    self.done = true;
                }
            }
        }
    }
}

/// The body of a watch response.
pub fn body(store: Arc<Store>, request: WatchRequest, start: WatchStart) -> Body {
    let WatchStart { initial, expired, receiver, resource_version } = start;
    let now = Instant::now();
    let mut stream = Stream {
        next_bookmark: now + store.config.bookmark_interval,
        // An absurd timeoutSeconds means no timeout, not an overflow.
        deadline: now.checked_add(request.timeout).unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600)),
        store,
        request,
        receiver,
        pending: VecDeque::new(),
        done: false,
    };
    if let Some(error) = expired {
        stream.pending.push_back(line(&json!({"type": "ERROR", "object": error.to_status()})));
        stream.done = true;
    } else {
        for change in &initial {
            if let Some(bytes) = stream.render(change) {
                stream.pending.push_back(bytes);
            }
        }
        if stream.request.send_initial_events && stream.request.bookmarks {
            let bookmark = stream.bookmark(resource_version, true);
            stream.pending.push_back(bookmark);
        }
    }
    let chunks = futures::stream::unfold(stream, |mut stream| async move {
        let bytes = stream.next().await?;
        Some((Ok::<Bytes, Infallible>(bytes), stream))
    });
    Body::from_stream(chunks)
}
