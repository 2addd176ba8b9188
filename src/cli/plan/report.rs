//! What a run found or did, per resource, and how it is shown: a diff-like text for people and
//! JSON for machines, with the exit code both imply.

use std::fmt;

use serde_json::{Value, json};

use super::Mode;
use crate::plan::{
    reasons,
    status::{Outcome, Phase},
};

/// Which resource a result is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceId {
    /// The kind.
    pub kind: &'static str,
    /// The namespace (none for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}
/// What kind of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Something is created.
    Create,
    /// Something is changed.
    Update,
    /// Something is deleted.
    Delete,
    /// Something differs and is left alone (`managementPolicy: Observe`).
    Drift,
    /// Something cannot be made as asked until the user changes something (the detail says
    /// what): a SonarQube project that is missing or claimed by another binding.
    Blocked,
}

impl Action {
    fn symbol(self) -> &'static str {
        match self {
            Self::Create => "+",
            Self::Update => "~",
            Self::Delete => "-",
            Self::Drift => "!",
            Self::Blocked => "x",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Drift => "drift",
            Self::Blocked => "blocked",
        }
    }
}

/// One change on one repository (or on a SonarQube instance).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The repository slug; for a DevOps Platform setting, `SonarQube namespace/name`.
    pub repository: String,
    /// What happens.
    pub action: Action,
    /// `webhook`, `required report`, `required build`, `SonarQube setting` or `SonarQube project`.
    pub object: &'static str,
    /// The webhook name, report key, `condition` (with its id once it has one), setting key or
    /// SonarQube project key.
    pub name: String,
    /// The details a reviewer needs (never a secret value).
    pub detail: String,
}

/// The result for one resource.
#[derive(Clone, Debug)]
pub struct ResourceResult {
    /// Which resource.
    pub id: ResourceId,
    /// Where it stands: what the operator would write to its conditions.
    pub outcome: Outcome,
    /// One-line facts (server, project, report key...).
    pub facts: Vec<String>,
    /// The changes (planned, or made by `apply`).
    pub changes: Vec<Change>,
}

impl ResourceResult {
    /// Whether the resource could not be planned or applied (an error, not drift).
    pub fn failed(&self) -> bool {
        self.outcome.phase != Phase::Ready && self.outcome.reason != reasons::DRIFTED
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Plan or apply.
    pub mode: Mode,
    /// Per resource, configurations first, then bindings, then reports.
    pub resources: Vec<ResourceResult>,
}

impl RunReport {
    fn count(&self, action: Action) -> usize {
        self.resources.iter().flat_map(|r| &r.changes).filter(|c| c.action == action).count()
    }

    /// How many resources failed.
    pub fn failures(&self) -> usize {
        self.resources.iter().filter(|r| r.failed()).count()
    }

    /// `plan`: 0 nothing to change, 2 changes pending, 1 an error. `apply`: 0 when every
    /// resource converged (drift left alone by `Observe` included), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        let pending = self.count(Action::Create) + self.count(Action::Update) + self.count(Action::Delete);
        match (self.mode, self.failures()) {
            (_, failures) if failures > 0 => 1,
            (Mode::Plan, _) if pending > 0 => 2,
            _ => 0,
        }
    }

    /// A diff-like text for people.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for resource in &self.resources {
            let mark = match (resource.failed(), resource.outcome.phase) {
                (true, _) => "✗",
                (false, Phase::Ready) => "✓",
                (false, _) => "!",
            };
            out.push_str(&format!("{}\n", resource.id));
            for fact in &resource.facts {
                out.push_str(&format!("    {fact}\n"));
            }
            let mut current: Option<&str> = None;
            for change in &resource.changes {
                if current != Some(change.repository.as_str()) {
                    out.push_str(&format!("    {}\n", change.repository));
                    current = Some(&change.repository);
                }
                let verb = match (self.mode, change.action) {
                    (_, Action::Drift) => "left alone (managementPolicy: Observe)",
                    (_, Action::Blocked) => "cannot be made",
                    (Mode::Plan, _) => "",
                    (Mode::Apply, Action::Create) => "created",
                    (Mode::Apply, Action::Update) => "updated",
                    (Mode::Apply, Action::Delete) => "deleted",
                };
                let detail = if change.detail.is_empty() { String::new() } else { format!(": {}", change.detail) };
                let verb = if verb.is_empty() { String::new() } else { format!(" {verb}") };
                out.push_str(&format!(
                    "      {} {} {}{verb}{detail}\n",
                    change.action.symbol(),
                    change.object,
                    change.name
                ));
            }
            let reason = resource.outcome.reason;
            match self.mode {
                Mode::Apply => out.push_str(&format!(
                    "    {mark} Ready={} {reason}: {}\n",
                    if resource.outcome.phase == Phase::Ready { "True" } else { "False" },
                    resource.outcome.message
                )),
                Mode::Plan if resource.failed() => {
                    out.push_str(&format!("    {mark} {reason}: {}\n", resource.outcome.message));
                }
                Mode::Plan if resource.changes.is_empty() => out.push_str("    no changes\n"),
                Mode::Plan => {}
            }
        }
        let (add, change, destroy) =
            (self.count(Action::Create), self.count(Action::Update), self.count(Action::Delete));
        let drift = self.count(Action::Drift);
        let blocked = self.count(Action::Blocked);
        let failures = self.failures();
        let verb = if self.mode == Mode::Plan { "Plan" } else { "Applied" };
        out.push_str(&format!("\n{verb}: {add} to add, {change} to change, {destroy} to destroy"));
        if self.mode == Mode::Apply {
            out = out
                .replace(" to add, ", " added, ")
                .replace(" to change, ", " changed, ")
                .replace(" to destroy", " destroyed");
        }
        if drift > 0 {
            out.push_str(&format!(", {drift} drifted and left alone"));
        }
        if blocked > 0 {
            out.push_str(&format!(", {blocked} cannot be made"));
        }
        if failures > 0 {
            out.push_str(&format!("; {failures} resource(s) failed"));
        }
        out.push_str(".\n");
        out
    }

    /// The same as JSON, for machines.
    pub fn render_json(&self) -> Value {
        let resources: Vec<Value> = self
            .resources
            .iter()
            .map(|r| {
                json!({
                    "kind": r.id.kind,
                    "namespace": r.id.namespace,
                    "name": r.id.name,
                    "ready": r.outcome.phase == Phase::Ready,
                    "phase": format!("{:?}", r.outcome.phase),
                    "reason": r.outcome.reason,
                    "message": r.outcome.message,
                    "facts": r.facts,
                    "changes": r.changes.iter().map(|c| json!({
                        "repository": c.repository,
                        "action": c.action.word(),
                        "object": c.object,
                        "name": c.name,
                        "detail": c.detail,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "mode": if self.mode == Mode::Plan { "plan" } else { "apply" },
            "resources": resources,
            "summary": {
                "add": self.count(Action::Create),
                "change": self.count(Action::Update),
                "destroy": self.count(Action::Delete),
                "drift": self.count(Action::Drift),
                "blocked": self.count(Action::Blocked),
                "failed": self.failures(),
            },
            "exitCode": self.exit_code(),
        })
    }
}
