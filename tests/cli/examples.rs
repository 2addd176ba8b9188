//! Every example under `examples/` is accepted by its CRD (schema and CEL rules, as a real API
//! server would check them), and the set is complete: every reference resolves inside it.

use std::collections::{BTreeMap, BTreeSet};

use bitbucket_operator::api::{self, refs::CREDENTIAL_LABEL, validation::validator_for};
use serde_json::Value;

use crate::support;

struct Example {
    file: String,
    object: Value,
}

/// The seeds of the simulators live beside the manifests but are not ones.
const SIMULATOR_SEEDS: [&str; 2] = ["simulator-seed.yaml", "sonarqube-seed.yaml"];

fn examples() -> Vec<Example> {
    let files = support::yaml_files(&support::repo_path("examples"));
    assert!(!files.is_empty(), "examples/ has no YAML files");
    files
        .iter()
        .filter(|path| path.file_name().is_none_or(|name| !SIMULATOR_SEEDS.iter().any(|seed| name == *seed)))
        .flat_map(|path| {
            let file = path.file_name().expect("file name").to_string_lossy().into_owned();
            support::yaml_documents(path).into_iter().map(move |object| Example { file: file.clone(), object })
        })
        .collect()
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

#[test]
fn every_example_is_accepted_by_its_crd() {
    for Example { file, object } in examples() {
        let api_version = str_at(&object, "/apiVersion").unwrap_or_default();
        let kind = str_at(&object, "/kind").unwrap_or_default();
        if api_version == "v1" && kind == "Secret" {
            continue;
        }
        let validator = validator_for(api_version, kind).unwrap_or_else(|| {
            panic!("{file}: {} is neither a Secret nor one of the operator's kinds", support::describe(&object))
        });
        if let Err(errors) = validator.admit(&object, None) {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("{file}: {} is rejected:\n  {}", support::describe(&object), errors.join("\n  "));
        }
    }
}

#[test]
fn examples_show_every_kind() {
    let kinds: BTreeSet<String> =
        examples().iter().filter_map(|e| str_at(&e.object, "/kind").map(str::to_owned)).collect();
    for crd in api::crds() {
        assert!(kinds.contains(&crd.spec.names.kind), "examples/ has no {}", crd.spec.names.kind);
    }
    assert!(kinds.contains("Secret"), "examples/ has no Secret");
}

#[test]
fn every_secret_carries_the_credential_label_and_the_referenced_keys() {
    let examples = examples();
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for Example { file, object } in &examples {
        if str_at(object, "/kind") != Some("Secret") {
            continue;
        }
        let name = str_at(object, "/metadata/name").unwrap_or_default().to_owned();
        assert_eq!(
            object.pointer("/metadata/labels").and_then(|l| l.get(CREDENTIAL_LABEL)).and_then(Value::as_str),
            Some("true"),
            "{file}: Secret {name} lacks the label {CREDENTIAL_LABEL}: \"true\"; the operator would refuse to read it"
        );
        let keys = ["/stringData", "/data"]
            .iter()
            .filter_map(|p| object.pointer(p).and_then(Value::as_object))
            .flat_map(|m| m.keys().cloned())
            .collect();
        secrets.insert(name, keys);
    }
    // Each reference: (JSON pointer to the secretRef, the key field, the key's default).
    let references: &[(&str, &str, &str)] = &[
        ("/spec/auth/token/secretRef", "key", "token"),
        ("/spec/auth/basic/secretRef", "usernameKey", "username"),
        ("/spec/auth/basic/secretRef", "passwordKey", "password"),
        ("/spec/tls/caSecretRef", "key", "ca.crt"),
    ];
    let mut checked = 0;
    for Example { file, object } in &examples {
        let mut refs: Vec<(&Value, &str, &str)> = references
            .iter()
            .filter_map(|(pointer, field, default)| Some((object.pointer(pointer)?, *field, *default)))
            .collect();
        for webhook in object.pointer("/spec/webhooks").and_then(Value::as_array).into_iter().flatten() {
            if let Some(secret_ref) = webhook.get("secretRef") {
                refs.push((secret_ref, "key", "secret"));
            }
        }
        for (secret_ref, field, default) in refs {
            let name = secret_ref["name"].as_str().unwrap_or_default();
            let key = secret_ref.get(field).and_then(Value::as_str).unwrap_or(default);
            let keys = secrets.get(name).unwrap_or_else(|| {
                panic!("{file}: {} refers to Secret {name}, which no example defines", support::describe(object))
            });
            assert!(
                keys.contains(key),
                "{file}: {} reads key {key} of Secret {name}, which has only {keys:?}",
                support::describe(object)
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "expected the examples to reference their Secrets, found {checked} references");
}

#[test]
fn every_binding_and_report_refers_to_an_example() {
    let examples = examples();
    let names = |kind: &str| -> BTreeSet<String> {
        examples
            .iter()
            .filter(|e| str_at(&e.object, "/kind") == Some(kind))
            .filter_map(|e| str_at(&e.object, "/metadata/name").map(str::to_owned))
            .collect()
    };
    let bindings = names("ProjectBinding");
    for Example { file, object } in &examples {
        match str_at(object, "/kind") {
            Some("ProjectBinding") => {
                let kind = str_at(object, "/spec/configurationRef/kind").unwrap_or("BitbucketConfiguration");
                let name = str_at(object, "/spec/configurationRef/name").unwrap_or_default();
                assert!(
                    names(kind).contains(name),
                    "{file}: {} uses {kind} {name}, which no example defines",
                    support::describe(object)
                );
            }
            Some("RequiredReport" | "RequiredBuild") => {
                let name = str_at(object, "/spec/bindingRef/name").unwrap_or_default();
                assert!(
                    bindings.contains(name),
                    "{file}: {} uses ProjectBinding {name}, which no example defines",
                    support::describe(object)
                );
            }
            _ => {}
        }
    }
}

#[test]
fn examples_deserialize_into_the_rust_types() {
    for Example { file, object } in examples() {
        let Some(validator) = validator_for(
            str_at(&object, "/apiVersion").unwrap_or_default(),
            str_at(&object, "/kind").unwrap_or_default(),
        ) else {
            continue;
        };
        let stored = validator.admit(&object, None).unwrap_or_else(|e| panic!("{file}: {e:?}"));
        let result = match validator.kind() {
            "BitbucketConfiguration" => serde_json::from_value::<api::BitbucketConfiguration>(stored).map(drop),
            "ClusterBitbucketConfiguration" => {
                serde_json::from_value::<api::ClusterBitbucketConfiguration>(stored).map(drop)
            }
            "ProjectBinding" => serde_json::from_value::<api::ProjectBinding>(stored).map(drop),
            "RequiredReport" => serde_json::from_value::<api::RequiredReport>(stored).map(drop),
            "RequiredBuild" => serde_json::from_value::<api::RequiredBuild>(stored).map(drop),
            "SonarQubeConfiguration" => serde_json::from_value::<api::SonarQubeConfiguration>(stored).map(drop),
            other => panic!("{file}: no Rust type for {other}"),
        };
        result.unwrap_or_else(|e| panic!("{file}: {} does not deserialize: {e}", support::describe(&object)));
    }
}

#[test]
fn the_simulator_seed_loads_and_serves_what_the_examples_bind() {
    let text = std::fs::read_to_string(support::repo_path("examples").join(SIMULATOR_SEEDS[0])).expect("the seed");
    let seed = bitbucket_operator::simulator::Seed::from_yaml(&text).expect("the seed parses");
    let simulator = bitbucket_operator::simulator::Simulator::new(seed).expect("the seed is consistent");
    for example in examples() {
        let Some(project) = str_at(&example.object, "/spec/projectKey") else { continue };
        if let Some(slug) = str_at(&example.object, "/spec/repositorySlug") {
            assert!(simulator.webhooks(project, slug).is_ok(), "{}: the seed has no {project}/{slug}", example.file);
        }
    }
}
