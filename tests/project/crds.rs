//! The committed CRDs match the Rust types, and the schemas are fit for a real API server:
//! documented, bounded, with CEL rules that compile, carry messages and fit the cost budget.

use std::collections::BTreeSet;

use bitbucket_operator::api;
use kube::core::cel::{ScopeContext, WarningKind, analyze_rule, compile_schema};
use serde_json::Value;

use crate::support;

fn schemas() -> Vec<(String, Value)> {
    api::crds()
        .iter()
        .map(|crd| {
            let version = &crd.spec.versions[0];
            let schema = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema");
            (crd.spec.names.kind.clone(), serde_json::to_value(schema).expect("schema as JSON"))
        })
        .collect()
}

/// Calls `visit(path, node)` on every schema node below `node`.
fn walk(node: &Value, path: &str, visit: &mut dyn FnMut(&str, &Value)) {
    visit(path, node);
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            walk(child, &format!("{path}.{name}"), visit);
        }
    }
    if let Some(items) = node.get("items") {
        walk(items, &format!("{path}[]"), visit);
    }
    if let Some(additional) = node.get("additionalProperties").filter(|a| a.is_object()) {
        walk(additional, &format!("{path}{{}}"), visit);
    }
}

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = support::repo_path("crds");
    let mut expected = BTreeSet::new();
    for crd in api::crds() {
        let name = api::crd_file_name(&crd);
        let generated = api::crd_yaml(&crd).expect("CRD renders as YAML");
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == generated,
            "crds/{name} is missing or stale: regenerate with `cargo run -- crds --output-dir crds` and commit it"
        );
        expected.insert(name);
    }
    let present: BTreeSet<String> = support::yaml_files(&dir)
        .iter()
        .map(|p| p.file_name().expect("file name").to_string_lossy().into_owned())
        .collect();
    let stray: Vec<_> = present.difference(&expected).collect();
    assert!(stray.is_empty(), "crds/ holds files no type generates: {stray:?}; delete them");
}

#[test]
fn printed_crds_parse_back_as_the_generated_ones() {
    for crd in api::crds() {
        let yaml = api::crd_yaml(&crd).expect("CRD renders as YAML");
        let parsed: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_saphyr::from_str(&yaml).expect("the printed CRD parses");
        assert_eq!(parsed, crd, "{} does not survive a YAML round trip", crd.spec.names.kind);
    }
}

#[test]
fn every_field_has_a_description() {
    for (kind, schema) in schemas() {
        let mut undocumented = Vec::new();
        walk(&schema, "", &mut |path, node| {
            let is_item = path.ends_with("[]") || path.ends_with("{}");
            let documented = node.get("description").and_then(Value::as_str).is_some_and(|d| !d.trim().is_empty());
            if !is_item && !documented {
                undocumented.push(path.to_owned());
            }
        });
        assert!(
            undocumented.is_empty(),
            "{kind}: fields without a `///` doc (the kubectl explain text): {undocumented:?}"
        );
    }
}

#[test]
fn every_spec_string_list_and_map_is_bounded() {
    for (kind, schema) in schemas() {
        let spec = &schema["properties"]["spec"];
        let mut unbounded = Vec::new();
        walk(spec, "spec", &mut |path, node| {
            let has = |key: &str| node.get(key).is_some();
            let bounded = match node.get("type").and_then(Value::as_str) {
                Some("string") => has("maxLength") || has("enum"),
                Some("array") => has("maxItems"),
                Some("object") => {
                    !node.get("additionalProperties").is_some_and(Value::is_object) || has("maxProperties")
                }
                _ => true,
            };
            if !bounded {
                unbounded.push(path.to_owned());
            }
        });
        assert!(
            unbounded.is_empty(),
            "{kind}: unbounded fields inflate the API server's CEL cost estimate: {unbounded:?}"
        );
    }
}

#[test]
fn every_cel_rule_compiles_has_a_message_and_fits_the_cost_budget() {
    let mut rules = 0;
    for (kind, schema) in schemas() {
        walk(&schema, "", &mut |path, node| {
            let Some(validations) = node.get("x-kubernetes-validations").and_then(Value::as_array) else { return };
            let compiled = compile_schema(node);
            assert!(
                !compiled.has_errors(),
                "{kind} {path}: a rule does not compile: {:?}",
                compiled.compilation_errors()
            );
            for validation in validations {
                rules += 1;
                let rule = validation["rule"].as_str().expect("rule text");
                let message = validation.get("message").and_then(Value::as_str).unwrap_or_default();
                assert!(message.len() > 20, "{kind} {path}: rule `{rule}` needs a message a user understands");
                // The scope check flags comprehension variables (`p` in `self.all(p, ...)`) as
                // unknown, so only the cost and bounds findings are kept.
                let warnings: Vec<_> = analyze_rule(rule, &compiled, ScopeContext::CrdValidation)
                    .into_iter()
                    .filter(|w| w.kind != WarningKind::WrongScope)
                    .collect();
                assert!(warnings.is_empty(), "{kind} {path}: rule `{rule}`: {warnings:?}");
            }
        });
    }
    assert!(rules >= 20, "expected the CRDs to carry their validation rules, found {rules}");
}

#[test]
fn printer_columns_point_at_fields_that_exist() {
    for crd in api::crds() {
        let version = &crd.spec.versions[0];
        let schema =
            serde_json::to_value(version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema"))
                .expect("schema as JSON");
        for column in version.additional_printer_columns.iter().flatten() {
            let path = column.json_path.split("[?").next().expect("split yields one part");
            let mut node = &schema;
            for segment in path.trim_start_matches('.').split('.') {
                if segment == "metadata" {
                    break;
                }
                node = node.get("properties").and_then(|p| p.get(segment)).unwrap_or_else(|| {
                    panic!(
                        "{}: column {} reads {} which the schema does not have",
                        crd.spec.names.kind, column.name, column.json_path
                    )
                });
                if let Some(items) = node.get("items") {
                    node = items;
                }
            }
            if let Some(field_type) =
                node.get("type").and_then(Value::as_str).filter(|_| !path.starts_with(".metadata"))
            {
                let expected = if column.type_ == "integer" { "integer" } else { field_type };
                assert_eq!(field_type, expected, "{}: column {} has the wrong type", crd.spec.names.kind, column.name);
            }
        }
    }
}

#[test]
fn kinds_share_the_group_category_and_have_distinct_short_names() {
    let mut short_names = BTreeSet::new();
    for crd in api::crds() {
        assert_eq!(crd.spec.group, api::GROUP);
        assert_eq!(crd.spec.versions.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), [api::VERSION]);
        assert!(
            crd.spec.names.categories.iter().flatten().any(|c| c == "bitbucket"),
            "{} is not in `kubectl get bitbucket`",
            crd.spec.names.kind
        );
        let version = &crd.spec.versions[0];
        assert!(
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{} has no status subresource",
            crd.spec.names.kind
        );
        for short in crd.spec.names.short_names.iter().flatten() {
            assert!(short_names.insert(short.clone()), "short name {short} is used twice");
        }
    }
    assert_eq!(short_names.len(), api::crds().len(), "every kind has one short name");
}

#[test]
fn the_crds_command_prints_every_crd_and_writes_the_folder() {
    let binary = env!("CARGO_BIN_EXE_bitbucket-operator");
    let output = std::process::Command::new(binary).arg("crds").output().expect("the binary runs");
    assert!(output.status.success(), "`crds` failed: {}", String::from_utf8_lossy(&output.stderr));
    let printed: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&output.stdout)).expect("YAML");
    let printed: Vec<&str> =
        printed.iter().filter_map(|d| d.pointer("/spec/names/kind")).filter_map(Value::as_str).collect();
    let expected: Vec<String> = api::crds().iter().map(|c| c.spec.names.kind.clone()).collect();
    assert_eq!(printed, expected);

    let dir = std::env::temp_dir().join(format!("bitbucket-operator-crds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let status = std::process::Command::new(binary).args(["crds", "--output-dir"]).arg(&dir).status().expect("runs");
    assert!(status.success());
    for crd in api::crds() {
        let written = std::fs::read_to_string(dir.join(api::crd_file_name(&crd))).expect("file written");
        assert_eq!(written, api::crd_yaml(&crd).expect("YAML"));
    }
    std::fs::remove_dir_all(&dir).ok();

    let missing =
        std::process::Command::new(binary).args(["crds", "--output-dir", "/nonexistent/dir"]).output().expect("runs");
    assert!(!missing.status.success(), "writing into a missing folder must fail");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot write /nonexistent/dir/"));
}
