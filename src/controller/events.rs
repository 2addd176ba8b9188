//! Events (events.k8s.io/v1). Repeats of the same Event on the same object within six minutes
//! become one Event with a growing series count, as kubectl shows them; unlike kube-runtime's
//! Recorder, the note is part of what makes two Events the same, so a later change is never
//! reported with an earlier change's text.

use std::{collections::HashMap, time::Duration};

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio::{sync::Mutex, time::Instant};

/// How long a repeat is folded into the first Event.
const SERIES_WINDOW: Duration = Duration::from_secs(360);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    regarding: (Option<String>, Option<String>, Option<String>, Option<String>),
    warning: bool,
    reason: String,
    action: String,
    note: String,
}

struct Published {
    name: String,
    namespace: String,
    count: i32,
    last: Instant,
}

/// Publishes Events for one reporting controller and instance.
pub struct Events {
    kube: kube::Client,
    controller: String,
    instance: String,
    published: Mutex<HashMap<Key, Published>>,
}

impl Events {
    /// A publisher reporting as `controller` / `instance`.
    pub fn new(kube: kube::Client, controller: &str, instance: &str) -> Self {
        Self { kube, controller: controller.into(), instance: instance.into(), published: Mutex::default() }
    }

    /// Publishes an Event about `regarding`, or counts a repeat of the same one.
    pub async fn publish(
        &self,
        regarding: ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let note = crate::plan::status::shorten(note, 1024);
        let key = Key {
            regarding: (
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ),
            warning,
            reason: reason.to_owned(),
            action: action.to_owned(),
            note: note.clone(),
        };
        let mut published = self.published.lock().await;
        published.retain(|_, p| p.last.elapsed() < SERIES_WINDOW);
        let now = Timestamp::now();
        if let Some(previous) = published.get_mut(&key) {
            previous.count += 1;
            previous.last = Instant::now();
            let api: Api<Event> = Api::namespaced(self.kube.clone(), &previous.namespace);
            let patch = json!({"series": {"count": previous.count, "lastObservedTime": MicroTime(now)}});
            api.patch(&previous.name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            return Ok(());
        }
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let name = format!("{}.{:x}", regarding.name.as_deref().unwrap_or(&self.controller), now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.kube.clone(), &namespace);
        api.create(&PostParams::default(), &event).await?;
        published.insert(key, Published { name, namespace, count: 1, last: Instant::now() });
        Ok(())
    }
}

/// Up to ten names, and how many more, for an Event's note.
pub fn listed(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
}
