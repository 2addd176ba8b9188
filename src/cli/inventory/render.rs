//! How an inventory is shown: a table per binding for people, one JSON document for machines
//! (its field names are part of the command's contract, listed in [`FIELDS`]).

use serde_json::{Value, json};

use super::{BindingInventory, RepositoryInventory, State};
use crate::plan::required_builds::round::requirement;

/// The JSON document's fields, for `inventory --help`.
pub const FIELDS: &str = "\
JSON output (-o json), one document; the field names are stable:
  bindings[]                 one per ProjectBinding in the manifests
    kind, namespace, name, source, projectKey
    repositorySlug           the single repository it binds; null for a selection
    ok                       false when the binding could not be read (reason, message say why)
    reason, message          null when ok
    webhooks[]               the names of its declared webhooks
    requiredReports[]        its RequiredReports in the manifests: name, reportKey
    requiredBuilds[]         its RequiredBuilds in the manifests: name, requires (in words)
    repositories[]           what it selects now, by slug (the repositories its selection
                             leaves out, such as archived ones by default, are not listed)
      slug, id, name, state, archived, httpCloneUrl, sshCloneUrl (null when Bitbucket gives none)
      webhooks[]             name, state, differences, reason, message
      requiredReports[]      name, reportKey, state, differences, reason, message
      requiredBuilds[]       name, state, differences, reason, message
                             state: inSync | differs | missing | error; differences: the fields
                             that differ (duplicate: more than one webhook has the name, or more
                             than one condition has the build's content); reason, message: why
                             it could not be read (null otherwise)
    summary                  repositories; webhooks, requiredReports and requiredBuilds: per
                             name, the count of each state (inSync, differs, missing, error)
  summary                    bindings, repositories, failedBindings, failedReads
  exitCode                   0 when everything could be read, 1 otherwise
";

impl State {
    fn word(&self) -> &'static str {
        match self {
            Self::InSync => "inSync",
            Self::Differs(_) => "differs",
            Self::Missing => "missing",
            Self::Failed(_) => "error",
        }
    }

    fn cell(&self) -> String {
        match self {
            Self::InSync => "in sync".to_owned(),
            Self::Differs(fields) if fields.is_empty() => "differs".to_owned(),
            Self::Differs(fields) => format!("differs: {}", fields.join(",")),
            Self::Missing => "missing".to_owned(),
            Self::Failed(outcome) => format!("error ({})", outcome.reason),
        }
    }

    fn json(&self) -> Value {
        let (differences, reason, message) = match self {
            Self::Differs(fields) => (fields.clone(), None, None),
            Self::Failed(outcome) => (Vec::new(), Some(outcome.reason), Some(outcome.message.as_str())),
            Self::InSync | Self::Missing => (Vec::new(), None, None),
        };
        json!({ "state": self.word(), "differences": differences, "reason": reason, "message": message })
    }
}

/// How many objects of one column are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    in_sync: usize,
    differs: usize,
    missing: usize,
    error: usize,
}

impl Counts {
    fn of<'a>(states: impl Iterator<Item = &'a State>) -> Self {
        let mut counts = Self::default();
        for state in states {
            match state {
                State::InSync => counts.in_sync += 1,
                State::Differs(_) => counts.differs += 1,
                State::Missing => counts.missing += 1,
                State::Failed(_) => counts.error += 1,
            }
        }
        counts
    }

    fn text(self) -> String {
        let parts: Vec<String> =
            [(self.in_sync, "in sync"), (self.differs, "differ"), (self.missing, "missing"), (self.error, "failed")]
                .into_iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, word)| format!("{n} {word}"))
                .collect();
        if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
    }

    fn json(self) -> Value {
        json!({ "inSync": self.in_sync, "differs": self.differs, "missing": self.missing, "error": self.error })
    }
}

impl BindingInventory {
    fn webhook_counts(&self, column: usize) -> Counts {
        Counts::of(self.repositories.iter().filter_map(|r| r.webhooks.get(column)))
    }

    fn report_counts(&self, column: usize) -> Counts {
        Counts::of(self.repositories.iter().filter_map(|r| r.reports.get(column)))
    }

    fn build_counts(&self, column: usize) -> Counts {
        Counts::of(self.repositories.iter().filter_map(|r| r.builds.get(column)))
    }

    /// How many reads failed (per repository and object).
    pub fn failed_reads(&self) -> usize {
        self.repositories
            .iter()
            .flat_map(|r| r.webhooks.iter().chain(&r.reports).chain(&r.builds))
            .filter(|s| matches!(s, State::Failed(_)))
            .count()
    }

    fn selection(&self) -> String {
        match &self.repository_slug {
            Some(slug) => format!("repository {}/{slug}", self.project),
            None => format!("project {}, a selection", self.project),
        }
    }

    /// A table: one line per repository, the failed reads below it, and a summary line.
    pub fn render_text(&self) -> String {
        let mut out = format!("{}  ({}; from {})\n", self.id, self.selection(), self.source);
        if let Some(failure) = &self.failure {
            out.push_str(&format!("    ✗ {}: {}\n\n", failure.reason, failure.message));
            return out;
        }
        if self.repositories.is_empty() {
            out.push_str("    no repository selected\n\n");
            return out;
        }
        let mut header: Vec<String> = ["SLUG", "ID", "NAME", "STATE", "ARCHIVED"].map(str::to_owned).into();
        header.extend(self.webhooks.iter().map(|name| format!("WEBHOOK {name}")));
        header.extend(self.reports.iter().map(|report| format!("REPORT {}", report.name)));
        header.extend(self.builds.iter().map(|build| format!("BUILD {}", build.name)));
        header.extend(["HTTP", "SSH"].map(str::to_owned));
        let rows: Vec<Vec<String>> = self.repositories.iter().map(row).collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .filter_map(|r| r.get(i))
                    .chain(header.get(i))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for cells in std::iter::once(&header).chain(&rows) {
            let line: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            out.push_str(&format!("    {}\n", line.join("  ").trim_end()));
        }
        for (label, reason, message, slugs) in self.failures() {
            let more = if slugs.len() > SHOWN_SLUGS {
                format!(" and {} more", slugs.len() - SHOWN_SLUGS)
            } else {
                String::new()
            };
            let shown: Vec<&str> = slugs.iter().take(SHOWN_SLUGS).copied().collect();
            out.push_str(&format!("    ✗ {label} on {}{more}: {reason}: {message}\n", shown.join(", ")));
        }
        let mut summary = vec![repositories(self.repositories.len())];
        for (i, name) in self.webhooks.iter().enumerate() {
            summary.push(format!("webhook {name}: {}", self.webhook_counts(i).text()));
        }
        for (i, report) in self.reports.iter().enumerate() {
            summary.push(format!("required report {}: {}", report.name, self.report_counts(i).text()));
        }
        for (i, build) in self.builds.iter().enumerate() {
            summary.push(format!("required build {}: {}", build.name, self.build_counts(i).text()));
        }
        out.push_str(&format!("    {}\n\n", summary.join("; ")));
        out
    }

    /// The failed reads, one entry per object and reason (a permission or a server without the
    /// merge-check API fails the same way on every repository), with the slugs it failed on and
    /// the first repository's message (the JSON output has each one).
    fn failures(&self) -> Vec<(String, &'static str, &str, Vec<&str>)> {
        let mut groups: Vec<(String, &'static str, &str, Vec<&str>)> = Vec::new();
        for repository in &self.repositories {
            let webhooks = self.webhooks.iter().map(|n| format!("webhook {n}")).zip(&repository.webhooks);
            let reports = self.reports.iter().map(|r| format!("required report {}", r.name)).zip(&repository.reports);
            let builds = self.builds.iter().map(|b| format!("required build {}", b.name)).zip(&repository.builds);
            for (label, state) in webhooks.chain(reports).chain(builds) {
                let State::Failed(outcome) = state else { continue };
                let slug = repository.repository.slug.as_str();
                match groups.iter_mut().find(|(l, reason, _, _)| *l == label && *reason == outcome.reason) {
                    Some((_, _, _, slugs)) => slugs.push(slug),
                    None => groups.push((label, outcome.reason, &outcome.message, vec![slug])),
                }
            }
        }
        groups
    }

    /// The binding as one JSON object (see [`FIELDS`]).
    pub fn render_json(&self) -> Value {
        let webhook_counts: serde_json::Map<String, Value> =
            self.webhooks.iter().enumerate().map(|(i, name)| (name.clone(), self.webhook_counts(i).json())).collect();
        let report_counts: serde_json::Map<String, Value> = self
            .reports
            .iter()
            .enumerate()
            .map(|(i, report)| (report.name.clone(), self.report_counts(i).json()))
            .collect();
        let build_counts: serde_json::Map<String, Value> = self
            .builds
            .iter()
            .enumerate()
            .map(|(i, build)| (build.name.clone(), self.build_counts(i).json()))
            .collect();
        let repositories: Vec<Value> = self.repositories.iter().map(|r| self.repository_json(r)).collect();
        json!({
            "kind": self.id.kind,
            "namespace": self.id.namespace,
            "name": self.id.name,
            "source": self.source,
            "projectKey": self.project,
            "repositorySlug": self.repository_slug,
            "ok": self.failure.is_none(),
            "reason": self.failure.as_ref().map(|f| f.reason),
            "message": self.failure.as_ref().map(|f| f.message.as_str()),
            "webhooks": self.webhooks,
            "requiredReports": self.reports.iter().map(|r| json!({
                "name": r.name,
                "reportKey": r.desired.report_key,
            })).collect::<Vec<_>>(),
            "requiredBuilds": self.builds.iter().map(|b| json!({
                "name": b.name,
                "requires": requirement(&b.spec),
            })).collect::<Vec<_>>(),
            "repositories": repositories,
            "summary": {
                "repositories": self.repositories.len(),
                "webhooks": webhook_counts,
                "requiredReports": report_counts,
                "requiredBuilds": build_counts,
            },
        })
    }

    fn repository_json(&self, entry: &RepositoryInventory) -> Value {
        let repository = &entry.repository;
        let webhooks: Vec<Value> = self
            .webhooks
            .iter()
            .zip(&entry.webhooks)
            .map(|(name, state)| with_fields(state.json(), [("name", json!(name))]))
            .collect();
        let reports: Vec<Value> = self
            .reports
            .iter()
            .zip(&entry.reports)
            .map(|(report, state)| {
                with_fields(
                    state.json(),
                    [("name", json!(report.name)), ("reportKey", json!(report.desired.report_key))],
                )
            })
            .collect();
        let builds: Vec<Value> = self
            .builds
            .iter()
            .zip(&entry.builds)
            .map(|(build, state)| with_fields(state.json(), [("name", json!(build.name))]))
            .collect();
        json!({
            "slug": repository.slug,
            "id": repository.id,
            "name": repository.name,
            "state": repository.state.as_str(),
            "archived": repository.archived,
            "httpCloneUrl": repository.clone.http,
            "sshCloneUrl": repository.clone.ssh,
            "webhooks": webhooks,
            "requiredReports": reports,
            "requiredBuilds": builds,
        })
    }
}

/// `1 repository`, `3 repositories`.
fn repositories(count: usize) -> String {
    if count == 1 { "1 repository".to_owned() } else { format!("{count} repositories") }
}

/// How many slugs a failure line names before it counts the rest.
const SHOWN_SLUGS: usize = 5;

fn row(entry: &RepositoryInventory) -> Vec<String> {
    let repository = &entry.repository;
    let mut cells = vec![
        repository.slug.clone(),
        repository.id.to_string(),
        repository.name.clone(),
        repository.state.as_str().to_owned(),
        if repository.archived { "yes" } else { "no" }.to_owned(),
    ];
    cells.extend(entry.webhooks.iter().chain(&entry.reports).chain(&entry.builds).map(State::cell));
    cells.push(repository.clone.http.clone().unwrap_or_else(|| "-".to_owned()));
    cells.push(repository.clone.ssh.clone().unwrap_or_else(|| "-".to_owned()));
    cells
}

/// `value` (an object) with `fields` first.
fn with_fields<const N: usize>(value: Value, fields: [(&str, Value); N]) -> Value {
    let mut object: serde_json::Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    if let Value::Object(rest) = value {
        object.extend(rest);
    }
    Value::Object(object)
}

/// What all bindings came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    bindings: usize,
    repositories: usize,
    failed_bindings: usize,
    failed_reads: usize,
}

impl Totals {
    /// Counts one more binding.
    pub fn add(&mut self, binding: &BindingInventory) {
        self.bindings += 1;
        self.repositories += binding.repositories.len();
        self.failed_bindings += usize::from(binding.failure.is_some());
        self.failed_reads += binding.failed_reads();
    }

    /// 0 when everything could be read, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.failed_bindings + self.failed_reads > 0 { 1 } else { 0 }
    }

    /// The closing line.
    pub fn render_text(&self) -> String {
        let mut out = format!("Inventory: {} binding(s), {}", self.bindings, repositories(self.repositories));
        if self.failed_bindings > 0 {
            out.push_str(&format!("; {} binding(s) could not be read", self.failed_bindings));
        }
        if self.failed_reads > 0 {
            out.push_str(&format!("; {} read(s) failed", self.failed_reads));
        }
        out.push_str(".\n");
        out
    }

    /// The whole document, around the bindings' objects.
    pub fn render_json(&self, bindings: Vec<Value>) -> Value {
        json!({
            "bindings": bindings,
            "summary": {
                "bindings": self.bindings,
                "repositories": self.repositories,
                "failedBindings": self.failed_bindings,
                "failedReads": self.failed_reads,
            },
            "exitCode": self.exit_code(),
        })
    }
}
