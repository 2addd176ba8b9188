//! Finding the files (folders read recursively) and splitting each into its YAML documents,
//! with positions counted in the file.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::{LoadOptions, Manifests, Problem, Source, admission::one_line};

/// Adds the files of `path` (itself, or the YAML files under it) to `files`.
pub(super) fn collect(
    path: &Path,
    given: bool,
    files: &mut Vec<PathBuf>,
    visited: &mut BTreeSet<PathBuf>,
    problems: &mut Vec<Problem>,
) {
    if path.is_dir() {
        // A symbolic link back up the tree must not loop.
        if let Ok(canonical) = path.canonicalize()
            && !visited.insert(canonical)
        {
            return;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(error) => {
                return problems.push(Problem::Unreadable { path: path.to_owned(), error: error.to_string() });
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        children.sort();
        for child in children {
            let name = child.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
            if name.starts_with('.') || !(child.is_dir() || yaml) {
                continue;
            }
            collect(&child, false, files, visited, problems);
        }
    } else if path.exists() {
        files.push(path.to_owned());
    } else if given {
        problems.push(Problem::Missing { path: path.to_owned() });
    }
}

/// One document of a YAML stream.
pub(super) struct Document {
    /// From 1.
    pub(super) number: usize,
    /// The file's line the document's text starts on, from 1.
    pub(super) first_line: u64,
    /// The text, `---` marker included, so that the parser's lines map onto the file's.
    pub(super) text: String,
}

/// Splits a YAML stream at `---` lines. Documents holding nothing (a file that starts with
/// `---`, perhaps after comments, or `---` twice) are dropped and not counted, so that document
/// N is the N-th object in the file.
pub(super) fn documents(text: &str) -> Vec<Document> {
    let mut documents = vec![Document { number: 1, first_line: 1, text: String::new() }];
    for (index, line) in text.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        let line_number = index as u64 + 1;
        let Some(current) = documents.last_mut() else { break };
        if marker && is_blank(&current.text) {
            // Replace what held nothing: the parser must see one document only.
            current.first_line = line_number;
            current.text.clear();
        } else if marker {
            let number = current.number + 1;
            documents.push(Document { number, first_line: line_number, text: String::new() });
        }
        if let Some(current) = documents.last_mut() {
            current.text.push_str(line);
            current.text.push('\n');
        }
    }
    documents
}

/// Whether a document holds nothing but comments, directives and markers.
pub(super) fn is_blank(document: &str) -> bool {
    document.lines().all(|line| {
        let line = line.trim();
        line.is_empty()
            || line.starts_with('#')
            || line.starts_with('%')
            || line == "---"
            || line == "..."
            || line.starts_with("--- #")
    })
}

/// A parser error without the quoted text around it (which could hold a credential), with the
/// position counted in the file.
fn yaml_problem(error: &serde_saphyr::Error, document: &Document, file: &Path) -> Problem {
    let plain = error.without_snippet().to_string();
    let mut message = plain.as_str();
    if let Some(at) = message.rfind(" at line ") {
        message = &message[..at];
    }
    if let Some(at) = message.find(", set DuplicateKeyPolicy") {
        message = &message[..at];
    }
    let (line, column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
    Problem::Yaml {
        origin: Source::new(file, document.number),
        line: document.first_line + line.saturating_sub(1),
        column,
        message: one_line(message),
    }
}

impl Manifests {
    /// Reads the objects of one YAML text (a file's content, named `file` in messages) into
    /// these manifests and returns the problems found. A text whose first document is not a
    /// Kubernetes object (no `apiVersion` and no `kind`) is skipped whole.
    pub fn read_text(&mut self, text: &str, file: &Path, options: &LoadOptions) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut first = true;
        for document in documents(text) {
            if is_blank(&document.text) {
                continue;
            }
            let value: Value = match serde_saphyr::from_str(&document.text) {
                Ok(value) => value,
                Err(error) => {
                    problems.push(yaml_problem(&error, &document, file));
                    first = false;
                    continue;
                }
            };
            if value.is_null() {
                continue;
            }
            if first && value.get("apiVersion").is_none() && value.get("kind").is_none() {
                tracing::debug!(
                    file = %file.display(),
                    "skipped: its first document is not a Kubernetes object (no apiVersion or kind)"
                );
                self.skipped.push(file.to_owned());
                return problems;
            }
            first = false;
            self.add_value(value, Source::new(file, document.number), options, &mut problems);
        }
        problems
    }

    /// [`Manifests::read_text`] with the problems as text, for callers that only show them.
    pub fn add_text(&mut self, text: &str, file: &Path, options: &LoadOptions, problems: &mut Vec<String>) {
        problems.extend(self.read_text(text, file, options).iter().map(ToString::to_string));
    }
}
