//! `plan` and `apply`: the controllers' round, run once over resources read from files. The same
//! plan and sync code decides and acts, so what `plan` shows is what the operator would do, and
//! what `apply` prints is the status the operator would write.
//!
//! Without a cluster there is no status to remember what a binding managed before, so a webhook
//! that was removed from a manifest is not deleted by `apply` (the operator does delete it).

use std::{
    collections::BTreeSet,
    fmt,
    io::{IsTerminal, Write},
};

use serde_json::{Value, json};

use crate::{
    api::{ProjectBindingSpec, RequiredReportSpec, required_report::ManagementPolicy},
    bitbucket::{Client, ClientConfig, MANUAL_STEPS},
    plan::{
        binding as plan_binding,
        connection::ConnectionError,
        merge_checks::{CheckChange, describe, desired_check, report_key},
        reasons, report as plan_report,
        status::{Outcome, Phase},
        webhooks::{DeleteReason, DesiredWebhook, WebhookChange},
    },
    sync::{binding as sync_binding, report as sync_report},
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

/// A configuration to check, with its client settings resolved from the manifests' Secrets.
pub struct ConfigurationTarget {
    /// Where it was read from, for messages.
    pub source: String,
    /// Which configuration.
    pub id: ResourceId,
    /// Its client settings, or why there are none.
    pub settings: Result<ClientConfig, ConnectionError>,
}

/// A binding, with its configuration (an index into the configurations) and its webhooks.
pub struct BindingTarget {
    /// Where it was read from, for messages.
    pub source: String,
    /// Which binding.
    pub id: ResourceId,
    /// Its spec, with defaults applied.
    pub spec: ProjectBindingSpec,
    /// The configuration it uses, or why it has none.
    pub configuration: Result<usize, Outcome>,
    /// Its webhooks with secrets resolved, or why they cannot be.
    pub webhooks: Result<Vec<DesiredWebhook>, ConnectionError>,
}

/// A required report, with its binding (an index into the bindings).
pub struct ReportTarget {
    /// Where it was read from, for messages.
    pub source: String,
    /// Which report.
    pub id: ResourceId,
    /// Its spec, with defaults applied.
    pub spec: RequiredReportSpec,
    /// The binding it uses, or why it has none.
    pub binding: Result<usize, Outcome>,
}

/// Everything a run works on.
#[derive(Default)]
pub struct Targets {
    /// Configurations (namespaced and cluster-scoped).
    pub configurations: Vec<ConfigurationTarget>,
    /// Bindings.
    pub bindings: Vec<BindingTarget>,
    /// Required reports.
    pub reports: Vec<ReportTarget>,
}

/// Plan only, or carry the plan out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Read and compare; change nothing.
    Plan,
    /// Read, compare and change.
    Apply,
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
}

impl Action {
    fn symbol(self) -> &'static str {
        match self {
            Self::Create => "+",
            Self::Update => "~",
            Self::Delete => "-",
            Self::Drift => "!",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Drift => "drift",
        }
    }
}

/// One change on one repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The repository slug.
    pub repository: String,
    /// What happens.
    pub action: Action,
    /// `webhook` or `required report`.
    pub object: &'static str,
    /// The webhook name or report key.
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
                "failed": self.failures(),
            },
            "exitCode": self.exit_code(),
        })
    }
}

/// Progress on long runs: a bar on a terminal, plain lines otherwise, nothing when quiet.
pub struct Progress {
    total: usize,
    done: usize,
    terminal: bool,
    quiet: bool,
}

impl Progress {
    /// Progress over `total` resources, on standard error.
    pub fn new(total: usize, quiet: bool) -> Self {
        Self { total, done: 0, terminal: std::io::stderr().is_terminal(), quiet }
    }

    fn step(&mut self, what: &ResourceId) {
        self.done += 1;
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let width = 24;
            let filled = (self.done * width).checked_div(self.total).unwrap_or(width);
            let bar = format!("{}{}", "#".repeat(filled), "-".repeat(width - filled.min(width)));
            let _ = write!(err, "\r\x1b[2K[{bar}] {}/{} {what}", self.done, self.total);
            if self.done == self.total {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "[{}/{}] {what}", self.done, self.total);
        }
    }
}

/// Runs the round once over the targets.
pub async fn run(targets: &Targets, mode: Mode, progress: &mut Progress) -> RunReport {
    let mut resources = Vec::new();
    let mut clients: Vec<Option<(Client, Outcome)>> = Vec::new();
    for target in &targets.configurations {
        progress.step(&target.id);
        let (outcome, mut facts, client) = check_configuration(target).await;
        facts.insert(0, format!("from {}", target.source));
        clients.push(client.map(|c| (c, outcome.clone())));
        resources.push(ResourceResult { id: target.id.clone(), outcome, facts, changes: Vec::new() });
    }
    // The repositories each binding binds (project key and slugs), for its reports.
    let mut bound: Vec<Option<(String, Vec<String>)>> = Vec::new();
    for target in &targets.bindings {
        progress.step(&target.id);
        let (mut result, slugs) = run_binding(target, &clients, &targets.configurations, mode).await;
        result.facts.insert(0, format!("from {}", target.source));
        bound.push(slugs);
        resources.push(result);
    }
    for target in &targets.reports {
        progress.step(&target.id);
        let mut result = run_report(target, targets, &clients, &bound, mode).await;
        result.facts.insert(0, format!("from {}", target.source));
        resources.push(result);
    }
    RunReport { mode, resources }
}

async fn check_configuration(target: &ConfigurationTarget) -> (Outcome, Vec<String>, Option<Client>) {
    let settings = match &target.settings {
        Ok(settings) => settings.clone(),
        Err(error) => return (Outcome::stalled(error.reason(), error.to_string()), Vec::new(), None),
    };
    let facts = vec![format!("url: {}", settings.base_url)];
    let client = match Client::new(settings) {
        Ok(client) => client,
        Err(error) => return (Outcome::from_error(&error), facts, None),
    };
    match client.verify_connection().await {
        Ok(identity) => {
            let message = format!("connected to Bitbucket {} as {}", identity.version_text, identity.username);
            (Outcome::ready(reasons::CONNECTED, message), facts, Some(client))
        }
        Err(error) => (Outcome::from_error(&error), facts, None),
    }
}

fn connection<'a>(
    index: &Result<usize, Outcome>,
    clients: &'a [Option<(Client, Outcome)>],
    configurations: &[ConfigurationTarget],
) -> Result<&'a Client, Outcome> {
    let index = *index.as_ref().map_err(Clone::clone)?;
    match clients.get(index) {
        Some(Some((client, _))) => Ok(client),
        _ => {
            let name = configurations.get(index).map(|c| c.id.to_string()).unwrap_or_default();
            Err(Outcome::stalled(reasons::CONFIGURATION_NOT_READY, format!("{name} cannot connect (see above)")))
        }
    }
}

async fn run_binding(
    target: &BindingTarget,
    clients: &[Option<(Client, Outcome)>],
    configurations: &[ConfigurationTarget],
    mode: Mode,
) -> (ResourceResult, Option<(String, Vec<String>)>) {
    let project = target.spec.project_key.clone();
    let mut result = ResourceResult {
        id: target.id.clone(),
        outcome: Outcome::ready(reasons::BOUND, String::new()),
        facts: vec![match &target.spec.repository_slug {
            Some(slug) => format!("repository: {project}/{slug}"),
            None => format!("project: {project} (a selection)"),
        }],
        changes: Vec::new(),
    };
    let client = match connection(&target.configuration, clients, configurations) {
        Ok(client) => client,
        Err(outcome) => {
            result.outcome = outcome;
            return (result, None);
        }
    };
    let webhooks = match &target.webhooks {
        Ok(webhooks) => webhooks,
        Err(error) => {
            result.outcome = Outcome::stalled(error.reason(), error.to_string());
            return (result, None);
        }
    };
    // Without a cluster, the binding manages exactly what it declares.
    let managed: BTreeSet<String> = webhooks.iter().map(|w| w.name.clone()).collect();
    let input = plan_binding::BindingInput { spec: &target.spec, webhooks, managed: &managed, previous: &[] };
    let plan = match sync_binding::observe(client, &input).await {
        Ok(plan) => plan,
        Err(error) => {
            result.outcome = Outcome::from_error(&error);
            return (result, None);
        }
    };
    let slugs: Vec<String> = plan.bound().map(|r| r.slug.clone()).collect();
    result
        .facts
        .push(format!("repositories bound: {}", if slugs.is_empty() { "none".into() } else { slugs.join(", ") }));
    let outcomes = match mode {
        Mode::Plan => Vec::new(),
        Mode::Apply => sync_binding::apply(client, &plan).await,
    };
    for repository in &plan.repositories {
        let changes = match mode {
            Mode::Plan => repository.changes.clone(),
            Mode::Apply => {
                outcomes.iter().find(|o| o.slug == repository.slug).map(|o| o.applied.clone()).unwrap_or_default()
            }
        };
        result.changes.extend(changes.iter().map(|c| webhook_change(&repository.slug, c)));
    }
    let (outcome, _) = plan_binding::summarize(&plan, &outcomes, webhooks.len());
    result.outcome = match mode {
        // A plan changes nothing: say what the binding would be once applied.
        Mode::Plan => match plan.first_error() {
            None => outcome,
            Some((slug, error)) => {
                let first = Outcome::from_error(error);
                Outcome { message: format!("{slug}: {}", first.message), ..first }
            }
        },
        Mode::Apply => outcome,
    };
    (result, Some((project, slugs)))
}

fn webhook_change(slug: &str, change: &WebhookChange) -> Change {
    let (action, detail) = match change {
        WebhookChange::Create { desired } => {
            (Action::Create, format!("{} on {}", desired.url, desired.events.join(", ")))
        }
        WebhookChange::Update { fields, .. } => (Action::Update, format!("{} differ", fields.join(", "))),
        WebhookChange::Delete { why, .. } => (
            Action::Delete,
            match why {
                DeleteReason::Duplicate => "a second webhook of this name".to_owned(),
                DeleteReason::NoLongerDeclared => "no longer declared".to_owned(),
                DeleteReason::BindingDeleted => "the binding is deleted".to_owned(),
            },
        ),
    };
    Change { repository: slug.to_owned(), action, object: "webhook", name: change.name().to_owned(), detail }
}

async fn run_report(
    target: &ReportTarget,
    targets: &Targets,
    clients: &[Option<(Client, Outcome)>],
    bound: &[Option<(String, Vec<String>)>],
    mode: Mode,
) -> ResourceResult {
    let mut result = ResourceResult {
        id: target.id.clone(),
        outcome: Outcome::ready(reasons::IN_SYNC, String::new()),
        facts: Vec::new(),
        changes: Vec::new(),
    };
    let index = match &target.binding {
        Ok(index) => *index,
        Err(outcome) => {
            result.outcome = outcome.clone();
            return result;
        }
    };
    let Some(binding) = targets.bindings.get(index) else {
        result.outcome = Outcome::stalled(reasons::BINDING_NOT_FOUND, "the binding is not among the manifests");
        return result;
    };
    let key = report_key(&target.spec, &binding.spec);
    let desired = desired_check(&key, &target.spec);
    result.facts.push(format!("report: {key} ({})", describe(&desired)));
    let (Some(Some((project, slugs))), Ok(client)) =
        (bound.get(index), connection(&binding.configuration, clients, &targets.configurations))
    else {
        result.outcome = Outcome::stalled(
            reasons::BINDING_NOT_READY,
            format!("{} could not resolve its repositories (see above)", binding.id),
        );
        return result;
    };
    let observe_only = target.spec.management_policy == ManagementPolicy::Observe;
    let input =
        plan_report::ReportInput { project, bound: slugs, departed: &[], desired: &desired, remove_departed: false };
    let plans = match sync_report::observe(client, &input).await {
        Ok(plans) => plans,
        Err(error) => {
            result.outcome = Outcome::from_error(&error);
            if result.outcome.reason == reasons::UNSUPPORTED_SERVER {
                result.outcome.message = format!("{error}; on each repository: {MANUAL_STEPS}");
            }
            return result;
        }
    };
    let outcomes = match (mode, observe_only) {
        (Mode::Apply, false) => sync_report::apply(client, project, &plans).await,
        _ => Vec::new(),
    };
    for plan in &plans {
        let Some(change) = &plan.change else { continue };
        let applied = outcomes.iter().any(|o| o.slug == plan.slug && o.error.is_none());
        if mode == Mode::Apply && !observe_only && !applied {
            continue;
        }
        let (action, detail) = match change {
            CheckChange::Create(check) if observe_only => {
                (Action::Create, format!("missing; want {}", describe(check)))
            }
            CheckChange::Create(check) => (Action::Create, describe(check)),
            CheckChange::Update { from, to, .. } => (Action::Update, format!("{} -> {}", describe(from), describe(to))),
            CheckChange::Delete { .. } => (Action::Delete, String::new()),
        };
        let action = if observe_only { Action::Drift } else { action };
        result.changes.push(Change {
            repository: plan.slug.clone(),
            action,
            object: "required report",
            name: key.clone(),
            detail,
        });
    }
    let summary = plan_report::summarize(&plans, &outcomes, &[], observe_only, &desired);
    result.outcome = match mode {
        Mode::Apply => summary.outcome,
        // A plan changes nothing; only read failures and Observe drift count.
        Mode::Plan => match plans.iter().find_map(|p| p.error.as_ref().map(|e| (p.slug.clone(), e))) {
            Some((slug, error)) => {
                let first = Outcome::from_error(error);
                Outcome { message: format!("{slug}: {}", first.message), ..first }
            }
            None if observe_only && !result.changes.is_empty() => summary.outcome,
            None => Outcome::ready(reasons::IN_SYNC, format!("{} repositories checked", plans.len())),
        },
    };
    result
}
