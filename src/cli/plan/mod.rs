//! `plan` and `apply`: the controllers' round, run once over resources read from files. The same
//! plan and sync code decides and acts, so what `plan` shows is what the operator would do, and
//! what `apply` prints is the status the operator would write.
//!
//! Without a cluster there is no status to remember what a binding managed before, so a webhook
//! that was removed from a manifest is not deleted by `apply` (the operator does delete it).
//!
//! The SonarQube side (module `sonarqube`) runs in the same round: SonarQubeConfigurations first,
//! then each Bitbucket configuration's DevOps Platform setting, then each binding's projects.

mod build;
mod progress;
mod report;
mod sonarqube;

use std::{collections::BTreeSet, path::PathBuf};

pub use progress::Progress;
pub use report::{Action, Change, ResourceId, ResourceResult, RunReport};

use super::{
    Error, Output,
    manifests::{LoadOptions, Manifests, load},
};
use crate::{
    api::{ProjectBindingSpec, RequiredBuildSpec, RequiredReportSpec, required_report::ManagementPolicy},
    bitbucket::{Client, ClientConfig, ErrorClass, Secret},
    plan::{
        binding as plan_binding,
        connection::ConnectionError,
        merge_checks::{CheckChange, describe, desired_check, report_key},
        reasons, report as plan_report,
        sonarqube::setting::DesiredSetting,
        status::Outcome,
        webhooks::{DeleteReason, DesiredWebhook, WebhookChange},
    },
    sync::{binding as sync_binding, report as sync_report},
};

/// The arguments of `plan` and `apply`.
#[derive(clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub files: Files,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Output,
}

/// Where the manifests come from and how to read them.
#[derive(clap::Args)]
pub struct Files {
    /// YAML files or folders with the resources and the Secrets they name (several allowed).
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// The namespace of resources that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The operator's namespace, where the Secrets of ClusterBitbucketConfigurations live.
    #[arg(long, default_value = "bitbucket-operator")]
    pub operator_namespace: String,
    /// Send every configuration to this URL instead (for example a simulator's).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Send every SonarQubeConfiguration to this SonarQube instead (for example the
    /// simulator's).
    #[arg(long, value_name = "URL")]
    pub sonarqube_url: Option<String>,
}

impl Files {
    /// Reads the manifests (pointed at `--url` when given); they must hold at least one of the
    /// operator's resources.
    pub fn load(&self) -> Result<Manifests, Error> {
        let options = LoadOptions {
            default_namespace: self.namespace.clone(),
            operator_namespace: self.operator_namespace.clone(),
        };
        let mut manifests = load(&self.files, &options).map_err(Error::Manifests)?;
        if manifests.is_empty() {
            return Err(Error::NoResources);
        }
        if let Some(url) = &self.url {
            manifests.point_at(url.trim_end_matches('/'));
        }
        if let Some(url) = &self.sonarqube_url {
            manifests.point_sonarqube_at(url.trim_end_matches('/'));
        }
        Ok(manifests)
    }
}

/// Runs `plan` or `apply` as the command line asks: prints the report (progress on standard
/// error) and returns its exit code.
pub async fn execute(args: PlanArgs, mode: Mode) -> Result<u8, Error> {
    let targets = args.files.load()?.targets();
    let mut progress = Progress::new(targets.count(), args.output == Output::Json || mode == Mode::Plan);
    let report = run(&targets, mode, &mut progress).await;
    match args.output {
        Output::Text => print!("{}", report.render_text()),
        Output::Json => println!("{}", report.render_json()),
    }
    Ok(report.exit_code())
}
/// A configuration to check, with its client settings resolved from the manifests' Secrets.
pub struct ConfigurationTarget {
    /// Where it was read from, for messages.
    pub source: String,
    /// Which configuration.
    pub id: ResourceId,
    /// Its client settings, or why there are none.
    pub settings: Result<ClientConfig, ConnectionError>,
    /// Its SonarQube side (`spec.sonarqube`), or why it cannot be kept; `None` without one.
    pub sonarqube: Option<Result<SettingTarget, Outcome>>,
}

/// A SonarQubeConfiguration to connect to, with its client settings resolved from the
/// manifests' Secrets.
pub struct SonarQubeTarget {
    /// Where it was read from, for messages.
    pub source: String,
    /// Which configuration.
    pub id: ResourceId,
    /// Its client settings, or why there are none.
    pub settings: Result<crate::sonarqube::ClientConfig, ConnectionError>,
}

/// The DevOps Platform setting a Bitbucket configuration has SonarQube keep.
pub struct SettingTarget {
    /// Its SonarQubeConfiguration: an index into [`Targets::sonarqube`].
    pub sonarqube: usize,
    /// The setting as the spec asks for it.
    pub desired: DesiredSetting,
    /// The Bitbucket token SonarQube is to keep (`sonarqube.tokenSecretRef`).
    pub token: Secret,
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

/// A required build, with its binding (an index into the bindings).
pub struct BuildTarget {
    /// Where it was read from, for messages.
    pub source: String,
    /// Which build.
    pub id: ResourceId,
    /// Its spec, with defaults applied.
    pub spec: RequiredBuildSpec,
    /// The binding it uses, or why it has none.
    pub binding: Result<usize, Outcome>,
}

/// Everything a run works on.
#[derive(Default)]
pub struct Targets {
    /// SonarQubeConfigurations.
    pub sonarqube: Vec<SonarQubeTarget>,
    /// Configurations (namespaced and cluster-scoped).
    pub configurations: Vec<ConfigurationTarget>,
    /// Bindings.
    pub bindings: Vec<BindingTarget>,
    /// Required reports.
    pub reports: Vec<ReportTarget>,
    /// Required builds.
    pub builds: Vec<BuildTarget>,
}

impl Targets {
    /// How many resources there are.
    pub fn count(&self) -> usize {
        self.sonarqube.len() + self.configurations.len() + self.bindings.len() + self.reports.len() + self.builds.len()
    }
}

/// Plan only, or carry the plan out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Read and compare; change nothing.
    Plan,
    /// Read, compare and change.
    Apply,
}
/// Runs the round once over the targets.
pub async fn run(targets: &Targets, mode: Mode, progress: &mut Progress) -> RunReport {
    let mut resources = Vec::new();
    // SonarQube first: the Bitbucket configurations keep their settings there.
    let mut sonar_clients = Vec::new();
    for target in &targets.sonarqube {
        progress.step(&target.id);
        let (mut result, client) = sonarqube::connect(target).await;
        result.facts.insert(0, format!("from {}", target.source));
        sonar_clients.push(client);
        resources.push(result);
    }
    let mut clients: Vec<Option<(Client, Outcome)>> = Vec::new();
    let mut sides = Vec::new();
    for target in &targets.configurations {
        progress.step(&target.id);
        let (outcome, mut facts, client) = check_configuration(target).await;
        facts.insert(0, format!("from {}", target.source));
        let mut result = ResourceResult { id: target.id.clone(), outcome, facts, changes: Vec::new() };
        let side = match (&client, &target.sonarqube) {
            (Some(_), Some(setting)) => {
                Some(sonarqube::keep_setting(setting, targets, &sonar_clients, mode, &mut result).await)
            }
            _ => None,
        };
        sides.push(side);
        clients.push(client.map(|c| (c, result.outcome.clone())));
        resources.push(result);
    }
    // The repositories each binding binds (project key and slugs), for its reports.
    let mut bound: Vec<Option<(String, Vec<String>)>> = Vec::new();
    let mut repositories = Vec::new();
    let mut binding_results = Vec::new();
    for target in &targets.bindings {
        progress.step(&target.id);
        let (mut result, slugs, names) = run_binding(target, &clients, &targets.configurations, mode).await;
        result.facts.insert(0, format!("from {}", target.source));
        bound.push(slugs);
        repositories.push(names);
        binding_results.push(result);
    }
    sonarqube::keep_projects(targets, &sides, &sonar_clients, &repositories, mode, &mut binding_results).await;
    resources.extend(binding_results);
    for target in &targets.reports {
        progress.step(&target.id);
        let mut result = run_report(target, targets, &clients, &bound, mode).await;
        result.facts.insert(0, format!("from {}", target.source));
        resources.push(result);
    }
    for target in &targets.builds {
        progress.step(&target.id);
        let mut result = build::run_build(target, targets, &clients, &bound, mode).await;
        result.facts.insert(0, format!("from {}", target.source));
        resources.push(result);
    }
    RunReport { mode, resources }
}

/// Connects as the operator does (the connection check) and returns the configuration's
/// outcome, its facts and, when it connected, the client.
pub(super) async fn check_configuration(target: &ConfigurationTarget) -> (Outcome, Vec<String>, Option<Client>) {
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
            let message = format!("connected to Bitbucket {} as {}", identity.version_text, identity.shown_user());
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
) -> (ResourceResult, Option<(String, Vec<String>)>, Option<Vec<(String, String)>>) {
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
            return (result, None, None);
        }
    };
    let webhooks = match &target.webhooks {
        Ok(webhooks) => webhooks,
        Err(error) => {
            result.outcome = Outcome::stalled(error.reason(), error.to_string());
            return (result, None, None);
        }
    };
    // Without a cluster, the binding manages exactly what it declares.
    let managed: BTreeSet<String> = webhooks.iter().map(|w| w.name.clone()).collect();
    let input = plan_binding::BindingInput { spec: &target.spec, webhooks, managed: &managed, departed: &[] };
    let resolved = sync_binding::resolve(client, &target.spec, &[]).await;
    let plan = match resolved.map(|r| sync_binding::observe(client, &input, r.bound)) {
        Ok(observing) => observing.await,
        Err(error) => Err(error),
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(error) => {
            result.outcome = Outcome::from_error(&error);
            return (result, None, None);
        }
    };
    let slugs: Vec<String> = plan.bound().map(|r| r.slug.clone()).collect();
    let names: Vec<(String, String)> = plan.bound().map(|r| (r.slug.clone(), r.name.clone())).collect();
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
    (result, Some((project, slugs)), Some(names))
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

/// The binding (its index and target) a report or build uses, or the outcome that says why
/// there is none.
fn binding_of<'a>(
    binding: &Result<usize, Outcome>,
    targets: &'a Targets,
) -> Result<(usize, &'a BindingTarget), Outcome> {
    let index = *binding.as_ref().map_err(Clone::clone)?;
    let binding = targets
        .bindings
        .get(index)
        .ok_or_else(|| Outcome::stalled(reasons::BINDING_NOT_FOUND, "the binding is not among the manifests"))?;
    Ok((index, binding))
}

/// The project, the bound slugs and the client of the binding `index`, once its round resolved
/// them, or the outcome that says they could not be.
fn repositories_of<'a>(
    index: usize,
    binding: &BindingTarget,
    targets: &Targets,
    clients: &'a [Option<(Client, Outcome)>],
    bound: &'a [Option<(String, Vec<String>)>],
) -> Result<(&'a str, &'a [String], &'a Client), Outcome> {
    match (bound.get(index), connection(&binding.configuration, clients, &targets.configurations)) {
        (Some(Some((project, slugs))), Ok(client)) => Ok((project, slugs, client)),
        _ => Err(Outcome::stalled(
            reasons::BINDING_NOT_READY,
            format!("{} could not resolve its repositories (see above)", binding.id),
        )),
    }
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
    let (index, binding) = match binding_of(&target.binding, targets) {
        Ok(found) => found,
        Err(outcome) => {
            result.outcome = outcome;
            return result;
        }
    };
    let key = report_key(&target.spec, &binding.spec);
    let desired = desired_check(&key, &target.spec);
    result.facts.push(format!("report: {key} ({})", describe(&desired)));
    let (project, slugs, client) = match repositories_of(index, binding, targets, clients, bound) {
        Ok(found) => found,
        Err(outcome) => {
            result.outcome = outcome;
            return result;
        }
    };
    let observe_only = target.spec.management_policy == ManagementPolicy::Observe;
    let input =
        plan_report::ReportInput { project, bound: slugs, departed: &[], desired: &desired, remove_departed: false };
    let plans = match sync_report::observe(client, &input).await {
        Ok(plans) => plans,
        Err(error) => {
            // As the controller says it.
            result.outcome = if error.class() == ErrorClass::Unsupported {
                Outcome::unsupported_report(&error, &desired)
            } else {
                Outcome::from_error(&error)
            };
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
    let summary = plan_report::summarize(&plans, &outcomes, &std::collections::HashMap::new(), observe_only, &desired);
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
