//! The webhooks a binding wants on each bound repository, and what must change to get there.
//! Webhooks are matched by name; those the binding never declared are left alone.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    api::binding::ProjectBindingSpec,
    bitbucket::{Secret, Webhook, WebhookRequest},
};

use super::connection::{ConnectionError, SecretData, single_line};

/// A webhook as the binding declares it, with its secret resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredWebhook {
    /// The name that identifies it on every repository.
    pub name: String,
    /// Delivery URL.
    pub url: String,
    /// Event keys, sorted.
    pub events: Vec<String>,
    /// Deliveries on.
    pub active: bool,
    /// TLS verification of the target.
    pub ssl_verification_required: bool,
    /// The signing secret.
    pub secret: Option<Secret>,
}

impl DesiredWebhook {
    /// The full object sent to Bitbucket (an update replaces the whole webhook), keeping the
    /// configuration entries the webhook already has that the operator does not manage.
    pub fn request(&self, existing: Option<&Webhook>) -> WebhookRequest {
        WebhookRequest {
            name: self.name.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            active: self.active,
            ssl_verification_required: self.ssl_verification_required,
            secret: self.secret.clone(),
            configuration: existing.map(|w| w.configuration.clone()).unwrap_or_default(),
        }
    }
}

/// The webhooks a binding declares, with their secrets read from the binding's namespace.
pub fn desired_webhooks(
    spec: &ProjectBindingSpec,
    namespace: &str,
    secret: impl Fn(&str) -> Option<SecretData>,
) -> Result<Vec<DesiredWebhook>, ConnectionError> {
    let mut desired = Vec::with_capacity(spec.webhooks.len());
    for webhook in &spec.webhooks {
        let secret = match &webhook.secret_ref {
            None => None,
            Some(reference) => {
                let data = secret(&reference.name).ok_or_else(|| ConnectionError::SecretNotFound {
                    name: reference.name.clone(),
                    namespace: namespace.to_owned(),
                    field: "webhooks[].secretRef.name",
                })?;
                if !data.is_labelled() {
                    return Err(ConnectionError::SecretNotLabelled { name: reference.name.clone() });
                }
                Some(Secret::new(single_line(&data, &reference.name, &reference.key, "webhooks[].secretRef.key")?))
            }
        };
        let mut events: Vec<String> = webhook.events.iter().map(|e| e.key().to_owned()).collect();
        events.sort();
        events.dedup();
        desired.push(DesiredWebhook {
            name: webhook.name.clone(),
            url: webhook.url.clone(),
            events,
            active: webhook.active,
            ssl_verification_required: webhook.ssl_verification_required,
            secret,
        });
    }
    Ok(desired)
}

/// One change to the webhooks of one repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookChange {
    /// No webhook of that name exists.
    Create {
        /// What to create.
        desired: DesiredWebhook,
    },
    /// The webhook of that name differs in the listed fields.
    Update {
        /// Its id.
        id: i64,
        /// What it must become.
        desired: DesiredWebhook,
        /// What it is now.
        observed: Box<Webhook>,
        /// The fields that differ (`url`, `events`, `active`, `sslVerificationRequired`, `secret`).
        fields: Vec<&'static str>,
    },
    /// A webhook the binding managed is no longer declared, or is a second one with a declared
    /// name.
    Delete {
        /// Its id.
        id: i64,
        /// Its name.
        name: String,
        /// Why it goes.
        why: DeleteReason,
    },
}

/// Why a webhook is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// The binding no longer declares it.
    NoLongerDeclared,
    /// Another webhook of the same name exists; one of each name is kept.
    Duplicate,
    /// The binding is being deleted.
    BindingDeleted,
}

impl WebhookChange {
    /// The webhook's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Create { desired } | Self::Update { desired, .. } => &desired.name,
            Self::Delete { name, .. } => name,
        }
    }
}

/// The fields in which an observed webhook differs from the desired one. A secret or TLS flag
/// the server does not return cannot be compared and counts as equal (re-sending it on every
/// resync would make every resync a write).
pub fn differences(desired: &DesiredWebhook, observed: &Webhook) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if desired.url != observed.url {
        fields.push("url");
    }
    let observed_events: BTreeSet<&str> = observed.events.iter().map(String::as_str).collect();
    let desired_events: BTreeSet<&str> = desired.events.iter().map(String::as_str).collect();
    if observed_events != desired_events {
        fields.push("events");
    }
    if desired.active != observed.active {
        fields.push("active");
    }
    if observed.ssl_verification_required.is_some_and(|v| v != desired.ssl_verification_required) {
        fields.push("sslVerificationRequired");
    }
    let secret_differs = match (&desired.secret, &observed.secret) {
        (Some(want), Some(have)) => want.expose() != have.expose(),
        (None, Some(have)) => !have.expose().is_empty(),
        (Some(_), None) | (None, None) => false,
    };
    if secret_differs {
        fields.push("secret");
    }
    fields
}

/// The changes that make one repository's webhooks match: create what is missing, update what
/// differs, delete what the binding once managed (`managed`) and no longer declares, and delete
/// extra webhooks carrying a declared name (the oldest one is kept). Sorted by name.
pub fn plan_webhooks(
    desired: &[DesiredWebhook],
    observed: &[Webhook],
    managed: &BTreeSet<String>,
) -> Vec<WebhookChange> {
    let mut by_name: BTreeMap<&str, Vec<&Webhook>> = BTreeMap::new();
    for webhook in observed {
        by_name.entry(webhook.name.as_str()).or_default().push(webhook);
    }
    for hooks in by_name.values_mut() {
        hooks.sort_by_key(|w| w.id);
    }
    let mut changes = Vec::new();
    let declared: BTreeSet<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    for want in desired {
        match by_name.get(want.name.as_str()).map(Vec::as_slice) {
            None | Some([]) => changes.push(WebhookChange::Create { desired: want.clone() }),
            Some([first, rest @ ..]) => {
                let fields = differences(want, first);
                if !fields.is_empty() {
                    changes.push(WebhookChange::Update {
                        id: first.id,
                        desired: want.clone(),
                        observed: Box::new((*first).clone()),
                        fields,
                    });
                }
                for extra in rest {
                    changes.push(WebhookChange::Delete {
                        id: extra.id,
                        name: extra.name.clone(),
                        why: DeleteReason::Duplicate,
                    });
                }
            }
        }
    }
    for name in managed.iter().filter(|n| !declared.contains(n.as_str())) {
        for hook in by_name.get(name.as_str()).into_iter().flatten() {
            changes.push(WebhookChange::Delete {
                id: hook.id,
                name: name.clone(),
                why: DeleteReason::NoLongerDeclared,
            });
        }
    }
    changes.sort_by(|a, b| a.name().cmp(b.name()));
    changes
}

/// The deletions that remove a deleted binding's webhooks from one repository.
pub fn plan_removal(observed: &[Webhook], managed: &BTreeSet<String>) -> Vec<WebhookChange> {
    let mut changes: Vec<WebhookChange> = observed
        .iter()
        .filter(|w| managed.contains(&w.name))
        .map(|w| WebhookChange::Delete { id: w.id, name: w.name.clone(), why: DeleteReason::BindingDeleted })
        .collect();
    changes.sort_by(|a, b| a.name().cmp(b.name()));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(name: &str) -> DesiredWebhook {
        DesiredWebhook {
            name: name.into(),
            url: format!("https://ci.example.com/{name}"),
            events: vec!["pr:opened".into(), "repo:refs_changed".into()],
            active: true,
            ssl_verification_required: true,
            secret: Some(Secret::new("s1")),
        }
    }

    fn have(id: i64, desired: &DesiredWebhook) -> Webhook {
        Webhook {
            id,
            name: desired.name.clone(),
            url: desired.url.clone(),
            events: desired.events.iter().rev().cloned().collect(),
            active: desired.active,
            ssl_verification_required: Some(desired.ssl_verification_required),
            secret: desired.secret.clone(),
            configuration: BTreeMap::new(),
        }
    }

    fn names(set: &[&str]) -> BTreeSet<String> {
        set.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A change as a short line: `create ci`, `update 7 url,events`, `delete 4 old NoLongerDeclared`.
    fn line(change: &WebhookChange) -> String {
        match change {
            WebhookChange::Create { desired } => format!("create {}", desired.name),
            WebhookChange::Update { id, fields, .. } => format!("update {id} {}", fields.join(",")),
            WebhookChange::Delete { id, name, why } => format!("delete {id} {name} {why:?}"),
        }
    }

    fn changed(id: i64, name: &str, change: impl FnOnce(&mut Webhook)) -> Webhook {
        let mut hook = have(id, &want(name));
        change(&mut hook);
        hook
    }

    #[test]
    fn what_a_bound_repository_needs() {
        struct Case {
            name: &'static str,
            desired: Vec<DesiredWebhook>,
            observed: Vec<Webhook>,
            managed: &'static [&'static str],
            want: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "matching: nothing",
                desired: vec![want("ci"), want("chat")],
                observed: vec![have(1, &want("ci")), have(2, &want("chat"))],
                managed: &["ci", "chat"],
                want: &[],
            },
            Case {
                name: "missing: created",
                desired: vec![want("ci"), want("chat")],
                observed: vec![have(1, &want("ci"))],
                managed: &["ci"],
                want: &["create chat"],
            },
            Case {
                name: "a first round on a repository with someone else's webhooks",
                desired: vec![want("ci")],
                observed: vec![have(3, &want("someone-elses"))],
                managed: &[],
                want: &["create ci"],
            },
            Case {
                name: "changed: updated, naming each field",
                desired: vec![want("ci")],
                observed: vec![changed(7, "ci", |h| {
                    h.url = "https://old.example.com".into();
                    h.secret = Some(Secret::new("old"));
                    h.events.pop();
                })],
                managed: &["ci"],
                want: &["update 7 url,events,secret"],
            },
            Case {
                name: "switched off: updated",
                desired: vec![want("ci")],
                observed: vec![changed(7, "ci", |h| h.active = false)],
                managed: &["ci"],
                want: &["update 7 active"],
            },
            Case {
                name: "TLS verification off: updated",
                desired: vec![want("ci")],
                observed: vec![changed(7, "ci", |h| h.ssl_verification_required = Some(false))],
                managed: &["ci"],
                want: &["update 7 sslVerificationRequired"],
            },
            Case {
                name: "events in another order are the same events",
                desired: vec![want("ci")],
                observed: vec![changed(7, "ci", |h| h.events.reverse())],
                managed: &["ci"],
                want: &[],
            },
            Case {
                name: "values the server does not return are not compared",
                desired: vec![want("ci")],
                observed: vec![changed(7, "ci", |h| {
                    h.secret = None;
                    h.ssl_verification_required = None;
                })],
                managed: &["ci"],
                want: &[],
            },
            Case {
                name: "a secret left over where none is declared: updated",
                desired: vec![DesiredWebhook { secret: None, ..want("ci") }],
                observed: vec![changed(7, "ci", |h| h.secret = Some(Secret::new("left-over")))],
                managed: &["ci"],
                want: &["update 7 secret"],
            },
            Case {
                name: "duplicates of a declared name: the oldest stays",
                desired: vec![want("ci")],
                observed: vec![have(9, &want("ci")), have(5, &want("ci")), have(12, &want("ci"))],
                managed: &[],
                want: &["delete 9 ci Duplicate", "delete 12 ci Duplicate"],
            },
            Case {
                name: "duplicates: the oldest is the one compared",
                desired: vec![want("ci")],
                observed: vec![have(9, &want("ci")), changed(5, "ci", |h| h.active = false)],
                managed: &["ci"],
                want: &["update 5 active", "delete 9 ci Duplicate"],
            },
            Case {
                name: "managed and no longer declared: deleted, every copy",
                desired: vec![want("ci")],
                observed: vec![have(1, &want("ci")), have(4, &want("old")), have(6, &want("old"))],
                managed: &["ci", "old"],
                want: &["delete 4 old NoLongerDeclared", "delete 6 old NoLongerDeclared"],
            },
            Case {
                name: "someone else's webhook is never touched",
                desired: vec![want("ci")],
                observed: vec![have(1, &want("ci")), have(3, &want("someone-elses"))],
                managed: &["ci"],
                want: &[],
            },
            Case {
                name: "managed before but already gone: nothing",
                desired: vec![],
                observed: vec![],
                managed: &["old"],
                want: &[],
            },
            Case {
                name: "changes are sorted by name",
                desired: vec![want("zeta"), want("alpha")],
                observed: vec![have(2, &want("mid"))],
                managed: &["mid"],
                want: &["create alpha", "delete 2 mid NoLongerDeclared", "create zeta"],
            },
        ];
        for case in cases {
            let changes = plan_webhooks(&case.desired, &case.observed, &names(case.managed));
            assert_eq!(changes.iter().map(line).collect::<Vec<_>>(), case.want, "{}", case.name);
        }
    }

    #[test]
    fn what_a_deleted_binding_removes() {
        struct Case {
            name: &'static str,
            observed: Vec<Webhook>,
            managed: &'static [&'static str],
            want: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "every managed webhook goes, someone else's stays",
                observed: vec![have(2, &want("old-ci")), have(1, &want("ci")), have(3, &want("someone-elses"))],
                managed: &["ci", "old-ci"],
                want: &["delete 1 ci BindingDeleted", "delete 2 old-ci BindingDeleted"],
            },
            Case {
                name: "duplicates go too",
                observed: vec![have(1, &want("ci")), have(2, &want("ci"))],
                managed: &["ci"],
                want: &["delete 1 ci BindingDeleted", "delete 2 ci BindingDeleted"],
            },
            Case { name: "nothing managed: nothing", observed: vec![have(1, &want("ci"))], managed: &[], want: &[] },
        ];
        for case in cases {
            let changes = plan_removal(&case.observed, &names(case.managed));
            assert_eq!(changes.iter().map(line).collect::<Vec<_>>(), case.want, "{}", case.name);
        }
    }

    #[test]
    fn an_update_keeps_configuration_the_operator_does_not_manage() {
        let desired = want("ci");
        let mut observed = have(1, &desired);
        observed.configuration.insert("createdBy".into(), "someone".into());
        let request = desired.request(Some(&observed));
        assert_eq!(request.configuration.get("createdBy").map(String::as_str), Some("someone"));
        assert_eq!(request.secret, desired.secret);
    }
}
