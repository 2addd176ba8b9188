//! The negative set: each CRD rule rejects what it should, with its message, and lets through
//! what it should. Cases live in `tests/invalid/*.yaml` (see the comment at the top of one).

use std::collections::BTreeSet;

use bitbucket_operator::api::{self, validation::validator_for};
use serde_json::Value;

use crate::support;

struct Outcome {
    file: String,
    case: String,
    object: Value,
    errors: Vec<String>,
}

fn run_cases() -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for path in support::yaml_files(&support::repo_path("tests/invalid")) {
        let file = path.file_name().expect("file name").to_string_lossy().into_owned();
        let suite = support::yaml_documents(&path).pop().unwrap_or_else(|| panic!("{file} is empty"));
        let base = &suite["base"];
        let validator =
            validator_for(base["apiVersion"].as_str().unwrap_or_default(), base["kind"].as_str().unwrap_or_default())
                .unwrap_or_else(|| panic!("{file}: base is not one of the operator's kinds"));
        if let Err(errors) = validator.admit(base, None) {
            panic!("{file}: the base object must be valid, but: {errors:?}");
        }
        let cases = suite["cases"].as_array().unwrap_or_else(|| panic!("{file} has no cases"));
        for case in cases {
            let name = case["name"].as_str().unwrap_or_else(|| panic!("{file}: a case has no name")).to_owned();
            let mut object = base.clone();
            support::merge_patch(&mut object, &case["patch"]);
            let old = case.get("update").and_then(Value::as_bool).unwrap_or(false).then_some(base);
            let errors = match validator.admit(&object, old) {
                Ok(_) => Vec::new(),
                Err(errors) => errors.iter().map(ToString::to_string).collect(),
            };
            match (case.get("field").and_then(Value::as_str), case.get("message").and_then(Value::as_str)) {
                (Some(field), Some(message)) => {
                    let expected = format!("{field}: ");
                    assert!(
                        errors.iter().any(|e| e.starts_with(&expected) && e[expected.len()..].contains(message)),
                        "{file}: case {name:?} should be rejected at {field} with {message:?}, got {errors:?}"
                    );
                }
                (None, None) => assert!(errors.is_empty(), "{file}: case {name:?} should be accepted, got {errors:?}"),
                _ => panic!("{file}: case {name:?} needs both field and message, or neither"),
            }
            outcomes.push(Outcome { file: file.clone(), case: name, object, errors });
        }
    }
    outcomes
}

#[test]
fn each_case_is_rejected_with_its_message_or_accepted() {
    let outcomes = run_cases();
    assert!(outcomes.len() >= 60, "expected the negative set to hold its cases, found {}", outcomes.len());
}

#[test]
fn every_cel_rule_is_proven_by_a_case() {
    let outcomes = run_cases();
    let mut unproven = BTreeSet::new();
    for crd in api::crds() {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema as JSON");
        let mut messages = Vec::new();
        collect_messages(&schema, &mut messages);
        for message in messages {
            let proven = outcomes.iter().any(|o| o.errors.iter().any(|e| e.ends_with(&format!(": {message}"))));
            if !proven {
                unproven.insert(format!("{}: {message}", crd.spec.names.kind));
            }
        }
    }
    assert!(unproven.is_empty(), "rules no case in tests/invalid/ makes fire: {unproven:#?}");
}

fn collect_messages(node: &Value, messages: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for rule in map.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
                if let Some(message) = rule.get("message").and_then(Value::as_str) {
                    messages.push(message.to_owned());
                }
            }
            map.values().for_each(|child| collect_messages(child, messages));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_messages(child, messages)),
        _ => {}
    }
}

#[test]
fn errors_never_repeat_a_long_value_whole() {
    let mut long_values = 0;
    for outcome in run_cases() {
        let mut strings = Vec::new();
        collect_long_strings(&outcome.object, &mut strings);
        long_values += strings.len();
        for error in &outcome.errors {
            for value in &strings {
                assert!(
                    !error.contains(value.as_str()),
                    "{}: case {:?} repeats a long value: {error}",
                    outcome.file,
                    outcome.case
                );
            }
        }
    }
    assert!(long_values > 0, "the negative set should hold a case with an overlong value");
}

fn collect_long_strings(node: &Value, strings: &mut Vec<String>) {
    match node {
        Value::String(text) if text.chars().count() > 64 => strings.push(text.clone()),
        Value::Object(map) => map.values().for_each(|child| collect_long_strings(child, strings)),
        Value::Array(items) => items.iter().for_each(|child| collect_long_strings(child, strings)),
        _ => {}
    }
}
