//! `inventory`: the repositories each ProjectBinding of the manifests selects now, read from
//! Bitbucket, with whether each declared webhook and each of its RequiredReports and
//! RequiredBuilds is in place. A binding's status keeps counts; this is where the full
//! per-repository list is.
//!
//! It only reads: one listing of the project (or one read of a `repositorySlug`), then per
//! repository one read per checked object (its webhooks, each report's merge check) and, when
//! the binding has RequiredBuilds, one of its required-builds conditions (and of its default
//! branch, when a build targets it) shared by all of them, through the configuration's client
//! and so within its rate limit. The comparisons are the plan's own. As with `plan`, there is
//! no record of what was applied before, so a condition counts only if it has the spec's content.

mod render;

use std::{collections::BTreeSet, io::Write as _};

use futures::{StreamExt, stream};

pub use render::{FIELDS, Totals};

use super::{
    Error, Output,
    plan::{BindingTarget, ConfigurationTarget, Files, ResourceId, Targets, check_configuration},
};
use crate::{
    api::{ProjectBindingSpec, RequiredBuildSpec},
    bitbucket::{Client, Error as BitbucketError, ErrorClass, MergeCheck, Repository, Webhook},
    plan::{
        merge_checks::{CheckChange, desired_check, plan_check, report_key},
        required_builds::{
            Drift,
            round::{BuildInput, RepositoryPlan, plan_repository, unsupported},
        },
        selection,
        status::Outcome,
        webhooks::{DeleteReason, DesiredWebhook, WebhookChange, plan_webhooks},
    },
    sync::{PARALLEL_REPOSITORIES, required_builds},
};

/// The arguments of `inventory`.
#[derive(clap::Args)]
#[command(after_help = FIELDS)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub files: Files,
    /// Output format: a table per binding, or one JSON document (its fields are listed below).
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Output,
}

/// Runs `inventory` as the command line asks. Text is printed binding by binding, as each is
/// read; JSON once at the end. 0 when everything could be read, 1 otherwise.
pub async fn execute(args: InventoryArgs) -> Result<u8, Error> {
    let targets = args.files.load()?.targets();
    if targets.bindings.is_empty() {
        return Err(Error::NoBindings);
    }
    let mut connections = Connections::new(&targets.configurations);
    let mut totals = Totals::default();
    let mut documents = Vec::new();
    for (index, binding) in targets.bindings.iter().enumerate() {
        let found = inventory(&targets, index, binding, &mut connections).await;
        totals.add(&found);
        match args.output {
            Output::Text => {
                if !write(&found.render_text())? {
                    return Ok(totals.exit_code());
                }
            }
            Output::Json => documents.push(found.render_json()),
        }
    }
    match args.output {
        Output::Text => write(&totals.render_text())?,
        Output::Json => write(&format!("{}\n", totals.render_json(documents)))?,
    };
    Ok(totals.exit_code())
}

/// Writes to standard output; `false` when the reader has gone (`inventory | head`), so that
/// nothing more is read from Bitbucket for no one.
fn write(text: &str) -> Result<bool, Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(Error::Output(error)),
    }
}

/// Whether a declared object is on a repository as declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// It is there, as declared.
    InSync,
    /// It is there, but differs in these fields (`duplicate`: more than one webhook has its name).
    Differs(Vec<&'static str>),
    /// It is not there.
    Missing,
    /// It could not be read: the reason and message the operator's conditions would give.
    Failed(Outcome),
}

/// A RequiredReport of the binding: one column of the inventory.
#[derive(Clone, Debug)]
pub struct ReportColumn {
    /// The RequiredReport's name.
    pub name: String,
    /// The merge check it wants.
    pub desired: MergeCheck,
}

/// A RequiredBuild of the binding: one column of the inventory.
#[derive(Clone, Debug)]
pub struct BuildColumn {
    /// The RequiredBuild's name.
    pub name: String,
    /// Its spec.
    pub spec: RequiredBuildSpec,
}

/// One selected repository and the state of each declared object on it.
#[derive(Clone, Debug)]
pub struct RepositoryInventory {
    /// The repository as Bitbucket lists it.
    pub repository: Repository,
    /// One per declared webhook, in the binding's order.
    pub webhooks: Vec<State>,
    /// One per report column, in its order.
    pub reports: Vec<State>,
    /// One per build column, in its order.
    pub builds: Vec<State>,
}

/// What one binding selects now.
#[derive(Clone, Debug)]
pub struct BindingInventory {
    /// Which binding.
    pub id: ResourceId,
    /// Where it was read from.
    pub source: String,
    /// Its project.
    pub project: String,
    /// Its single repository, if it binds one.
    pub repository_slug: Option<String>,
    /// The names of its declared webhooks.
    pub webhooks: Vec<String>,
    /// Its RequiredReports in the manifests.
    pub reports: Vec<ReportColumn>,
    /// Its RequiredBuilds in the manifests.
    pub builds: Vec<BuildColumn>,
    /// The repositories it selects, by slug.
    pub repositories: Vec<RepositoryInventory>,
    /// Why nothing (or not everything) could be listed.
    pub failure: Option<Outcome>,
}

/// The clients of the configurations, connected (with the connection check) the first time a
/// binding needs one, and only once.
pub struct Connections<'a> {
    configurations: &'a [ConfigurationTarget],
    clients: Vec<Option<Result<Client, Outcome>>>,
}

impl<'a> Connections<'a> {
    /// No configuration connected yet.
    pub fn new(configurations: &'a [ConfigurationTarget]) -> Self {
        Self { configurations, clients: vec![None; configurations.len()] }
    }

    async fn client(&mut self, index: usize) -> Result<Client, Outcome> {
        let Some(target) = self.configurations.get(index) else {
            return Err(Outcome::stalled(
                crate::plan::reasons::CONFIGURATION_NOT_FOUND,
                "the configuration is not among the manifests",
            ));
        };
        if let Some(Some(known)) = self.clients.get(index) {
            return known.clone();
        }
        let (outcome, _, client) = check_configuration(target).await;
        // The configuration's own reason, named, so that the binding's line says what to fix.
        let result = client.ok_or_else(|| Outcome {
            message: format!("{} cannot connect: {}", target.id, outcome.message),
            ..outcome
        });
        if let Some(slot) = self.clients.get_mut(index) {
            *slot = Some(result.clone());
        }
        result
    }
}

/// Reads what `binding` (the binding `index` of the targets) selects now, with the state of its
/// webhooks and of its reports' merge checks on each repository.
pub async fn inventory(
    targets: &Targets,
    index: usize,
    binding: &BindingTarget,
    connections: &mut Connections<'_>,
) -> BindingInventory {
    let mut found = BindingInventory::empty(binding.id.clone(), binding.source.clone(), &binding.spec);
    found.reports = targets
        .reports
        .iter()
        .filter(|report| report.binding.as_ref().is_ok_and(|i| *i == index))
        .map(|report| ReportColumn {
            name: report.id.name.clone(),
            desired: desired_check(&report_key(&report.spec, &binding.spec), &report.spec),
        })
        .collect();
    found.builds = targets
        .builds
        .iter()
        .filter(|build| build.binding.as_ref().is_ok_and(|i| *i == index))
        .map(|build| BuildColumn { name: build.id.name.clone(), spec: build.spec.clone() })
        .collect();
    match read_binding(binding, &found.reports, &found.builds, connections).await {
        Ok(repositories) => found.repositories = repositories,
        Err(outcome) => found.failure = Some(outcome),
    }
    found
}

impl BindingInventory {
    fn empty(id: ResourceId, source: String, spec: &ProjectBindingSpec) -> Self {
        Self {
            id,
            source,
            project: spec.project_key.clone(),
            repository_slug: spec.repository_slug.clone(),
            webhooks: spec.webhooks.iter().map(|w| w.name.clone()).collect(),
            reports: Vec::new(),
            builds: Vec::new(),
            repositories: Vec::new(),
            failure: None,
        }
    }
}

async fn read_binding(
    target: &BindingTarget,
    reports: &[ReportColumn],
    builds: &[BuildColumn],
    connections: &mut Connections<'_>,
) -> Result<Vec<RepositoryInventory>, Outcome> {
    let index = *target.configuration.as_ref().map_err(Clone::clone)?;
    let client = connections.client(index).await?;
    let webhooks =
        target.webhooks.as_ref().map_err(|error| Outcome::stalled(error.reason(), error.to_string()))?.as_slice();
    let project = target.spec.project_key.as_str();
    let selected = selected(&client, &target.spec).await.map_err(|error| Outcome::from_error(&error))?;
    let mut selected = selected.into_iter();
    let Some(first) = selected.next() else {
        return Ok(Vec::new());
    };
    // The first repository alone: a failure every read would share (a rejected credential, a
    // server without the merge-check API) then costs one request, not one per repository.
    let columns = Columns { webhooks, reports, builds };
    let mut known = Known { reports: vec![None; reports.len()], builds: vec![None; builds.len()] };
    let first = read_repository(&client, project, first, &columns, &known).await;
    first.abort_on_credentials()?;
    for (slot, (error, report)) in known.reports.iter_mut().zip(first.report_errors.iter().zip(reports)) {
        if let Some(error) = error.as_ref().filter(|e| e.class() == ErrorClass::Unsupported) {
            *slot = Some(Outcome::unsupported_report(error, &report.desired));
        }
    }
    for (slot, (error, build)) in known.builds.iter_mut().zip(first.build_errors.iter().zip(builds)) {
        if let Some(error) = error.as_ref().filter(|e| e.class() == ErrorClass::Unsupported) {
            *slot = Some(unsupported(error, &build.spec));
        }
    }
    let mut repositories = vec![first.inventory];
    let (client, known, columns) = (&client, &known, &columns);
    let rest: Vec<Read> = stream::iter(selected)
        .map(|repository| read_repository(client, project, repository, columns, known))
        .buffered(PARALLEL_REPOSITORIES)
        .collect()
        .await;
    for read in rest {
        read.abort_on_credentials()?;
        repositories.push(read.inventory);
    }
    Ok(repositories)
}

/// The repositories the binding selects now, as the operator's round resolves them.
async fn selected(client: &Client, spec: &ProjectBindingSpec) -> Result<Vec<Repository>, BitbucketError> {
    match &spec.repository_slug {
        Some(slug) => Ok(vec![client.get_repository(&spec.project_key, slug).await?]),
        None => Ok(selection::select(spec, &client.list_repositories(&spec.project_key).await?)),
    }
}

/// What reading one repository gave, with the errors behind its failed states.
struct Read {
    inventory: RepositoryInventory,
    webhooks_error: Option<BitbucketError>,
    /// One per report column.
    report_errors: Vec<Option<BitbucketError>>,
    /// One per build column.
    build_errors: Vec<Option<BitbucketError>>,
}

/// What is checked on every repository of a binding.
struct Columns<'a> {
    webhooks: &'a [DesiredWebhook],
    reports: &'a [ReportColumn],
    builds: &'a [BuildColumn],
}

/// Per report and build column, the outcome it is known to fail with on every repository (a
/// server without the API), so that it is not read again.
struct Known {
    reports: Vec<Option<Outcome>>,
    builds: Vec<Option<Outcome>>,
}

impl Read {
    /// A rejected credential stops the whole binding: every later call would fail the same way.
    fn abort_on_credentials(&self) -> Result<(), Outcome> {
        let errors = self
            .webhooks_error
            .iter()
            .chain(self.report_errors.iter().flatten())
            .chain(self.build_errors.iter().flatten());
        match errors.into_iter().find(|e| e.class() == ErrorClass::Credentials) {
            Some(error) => Err(Outcome::from_error(error)),
            None => Ok(()),
        }
    }
}

/// Reads one repository's webhooks (once, when the binding declares any), the merge check of
/// each report not `known` to fail, and (once, for all builds not known to fail) its
/// required-builds conditions.
async fn read_repository(
    client: &Client,
    project: &str,
    repository: Repository,
    columns: &Columns<'_>,
    known: &Known,
) -> Read {
    let Columns { webhooks, reports, builds } = *columns;
    let (mut webhook_states, mut webhooks_error) = (Vec::new(), None);
    if !webhooks.is_empty() {
        match client.list_webhooks(project, &repository.slug).await {
            Ok(observed) => webhook_states = webhook_states_of(webhooks, &observed),
            Err(error) => {
                webhook_states = vec![State::Failed(Outcome::from_error(&error)); webhooks.len()];
                webhooks_error = Some(error);
            }
        }
    }
    let mut report_states = Vec::with_capacity(reports.len());
    let mut report_errors = Vec::with_capacity(reports.len());
    for (report, known) in reports.iter().zip(&known.reports) {
        let (state, error) = match known {
            Some(outcome) => (State::Failed(outcome.clone()), None),
            None => match client.get_merge_check(project, &repository.slug, &report.desired.report_key).await {
                Ok(observed) => (check_state(&report.desired, observed.as_ref()), None),
                Err(error) => (State::Failed(Outcome::from_error(&error)), Some(error)),
            },
        };
        report_states.push(state);
        report_errors.push(error);
    }
    let (build_states, build_errors) = build_states_of(client, project, &repository.slug, builds, &known.builds).await;
    Read {
        inventory: RepositoryInventory {
            repository,
            webhooks: webhook_states,
            reports: report_states,
            builds: build_states,
        },
        webhooks_error,
        report_errors,
        build_errors,
    }
}

/// The state of each build column on a repository, from one read of its conditions (with its
/// default branch when a build targets it) and each build's plan; with the error behind a
/// failed read.
async fn build_states_of(
    client: &Client,
    project: &str,
    slug: &str,
    builds: &[BuildColumn],
    known: &[Option<Outcome>],
) -> (Vec<State>, Vec<Option<BitbucketError>>) {
    let inputs: Vec<BuildInput<'_>> = builds
        .iter()
        .map(|build| BuildInput {
            project,
            bound: &[],
            departed: &[],
            spec: &build.spec,
            applied: &[],
            remove_departed: false,
        })
        .collect();
    let default_branch = inputs.iter().zip(known).any(|(input, k)| k.is_none() && input.needs_default_branch());
    // Read at the first build not known to fail, then shared by the others.
    let mut read = None;
    let mut states = Vec::with_capacity(builds.len());
    let mut errors = Vec::with_capacity(builds.len());
    for (input, known) in inputs.iter().zip(known) {
        if let Some(outcome) = known {
            states.push(State::Failed(outcome.clone()));
            errors.push(None);
            continue;
        }
        let observed = match &read {
            Some(observed) => Clone::clone(observed),
            None => {
                let observed = required_builds::read(client, project, slug, default_branch).await;
                read = Some(observed.clone());
                observed
            }
        };
        let plan = plan_repository(slug.to_owned(), true, input, observed);
        errors.push(plan.error.clone());
        states.push(build_state(&plan));
    }
    (states, errors)
}

/// The state of a build's condition on a repository, from the plan of that repository.
pub fn build_state(plan: &RepositoryPlan) -> State {
    if let Some(error) = &plan.error {
        return State::Failed(Outcome::from_error(error));
    }
    if plan.decision.drift.contains(&Drift::Missing) {
        return State::Missing;
    }
    let differences: Vec<&'static str> = plan
        .decision
        .drift
        .iter()
        .map(|drift| match drift {
            Drift::Outdated { .. } => "outdated",
            Drift::Extra { .. } => "duplicate",
            Drift::Missing => "missing",
        })
        .collect();
    if differences.is_empty() { State::InSync } else { State::Differs(differences) }
}

/// The state of each declared webhook on a repository, from the changes the plan would make.
pub fn webhook_states_of(desired: &[DesiredWebhook], observed: &[Webhook]) -> Vec<State> {
    // Nothing counts as managed: webhooks of other names are someone else's and not judged.
    let changes = plan_webhooks(desired, observed, &BTreeSet::new());
    desired
        .iter()
        .map(|want| {
            let mut differences: Vec<&'static str> = Vec::new();
            for change in changes.iter().filter(|c| c.name() == want.name) {
                match change {
                    WebhookChange::Create { .. } => return State::Missing,
                    WebhookChange::Update { fields, .. } => differences.extend(fields),
                    WebhookChange::Delete { why: DeleteReason::Duplicate, .. } => {
                        if !differences.contains(&"duplicate") {
                            differences.push("duplicate");
                        }
                    }
                    // Only planned for webhooks managed before, and nothing is here.
                    WebhookChange::Delete { .. } => {}
                }
            }
            if differences.is_empty() { State::InSync } else { State::Differs(differences) }
        })
        .collect()
}

/// The state of a report's merge check on a repository, from the change the plan would make.
pub fn check_state(desired: &MergeCheck, observed: Option<&MergeCheck>) -> State {
    match plan_check(desired, observed) {
        None => State::InSync,
        Some(CheckChange::Create(_)) => State::Missing,
        Some(CheckChange::Update { fields, .. }) => State::Differs(fields),
        // Never planned from a read; were it, the check would not be as declared.
        Some(CheckChange::Delete { .. }) => State::Differs(Vec::new()),
    }
}

#[cfg(test)]
mod tests;
