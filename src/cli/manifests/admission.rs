//! From a YAML value to an admitted object: the kind, the name and the namespace as the API
//! server would settle them, a second definition refused, and the CRD's schema, defaults and
//! CEL rules applied before the object is read into its type.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{GROUP, VERSION, validation::validator_for};

use super::{Item, LoadOptions, Manifests, Problem, Source, references::qualified, secrets::secret_data};

impl Manifests {
    /// Adds one object (or each item of a `kind: List`), or the problems that keep it out.
    pub(super) fn add_value(
        &mut self,
        mut value: Value,
        origin: Source,
        options: &LoadOptions,
        problems: &mut Vec<Problem>,
    ) {
        if !value.is_object() {
            return problems.push(Problem::NotAnObject { origin });
        }
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let (api_version, kind) = match (text("apiVersion"), text("kind")) {
            (Some(api_version), Some(kind)) => (api_version, kind),
            (None, _) => return problems.push(Problem::MissingType { origin, missing: "apiVersion" }),
            (_, None) => return problems.push(Problem::MissingType { origin, missing: "kind" }),
        };
        let ours = format!("{GROUP}/{VERSION}");
        let known = match (api_version.as_str(), kind.as_str()) {
            ("v1", "List") => {
                let Some(items) = value.get_mut("items").map(Value::take).and_then(|v| match v {
                    Value::Array(items) => Some(items),
                    _ => None,
                }) else {
                    let object = "List".to_owned();
                    return problems.push(Problem::Rejected {
                        origin,
                        object,
                        field: "items".into(),
                        message: "must be a list of objects".into(),
                    });
                };
                for (index, item) in items.into_iter().enumerate() {
                    let origin = Source { item: Some(index), ..origin.clone() };
                    self.add_value(item, origin, options, problems);
                }
                return;
            }
            ("v1", "Secret") => true,
            (
                version,
                "BitbucketConfiguration"
                | "ClusterBitbucketConfiguration"
                | "ProjectBinding"
                | "RequiredReport"
                | "RequiredBuild"
                | "SonarQubeConfiguration",
            ) => version == ours,
            _ => false,
        };
        if !known {
            return problems.push(Problem::Unsupported { origin, api_version, kind });
        }
        let Some(name) = value.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned) else {
            return problems.push(Problem::MissingName { origin, kind });
        };
        let namespace = if kind == "ClusterBitbucketConfiguration" {
            // As the API server does for a cluster-scoped object.
            if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("namespace");
            }
            None
        } else {
            let namespace = match value.pointer("/metadata/namespace") {
                None | Some(Value::Null) => options.default_namespace.clone(),
                Some(Value::String(namespace)) => namespace.clone(),
                Some(_) => {
                    let object = format!("{kind} {name}");
                    let field = "metadata.namespace".into();
                    return problems.push(Problem::NotAString { origin, object, field });
                }
            };
            value["metadata"]["namespace"] = Value::String(namespace.clone());
            Some(namespace)
        };
        let object = format!("{kind} {}", qualified(namespace.as_deref(), &name));
        if let Some(first) = self.source_of(&kind, namespace.as_deref(), &name) {
            let first = first.clone();
            return problems.push(Problem::Duplicate { origin, object, first });
        }
        match kind.as_str() {
            "Secret" => {
                if let Some(data) = secret_data(&value, &name, &origin, &object, problems) {
                    let key = (namespace.unwrap_or_default(), name);
                    self.secrets.insert(key, Item { object: data, source: origin });
                }
            }
            "BitbucketConfiguration" => {
                if let Some(object) = admit(&value, &origin, &object, problems) {
                    self.configurations.push(Item { object, source: origin });
                }
            }
            "ClusterBitbucketConfiguration" => {
                if let Some(object) = admit(&value, &origin, &object, problems) {
                    self.cluster_configurations.push(Item { object, source: origin });
                }
            }
            "ProjectBinding" => {
                if let Some(object) = admit(&value, &origin, &object, problems) {
                    self.bindings.push(Item { object, source: origin });
                }
            }
            "RequiredReport" => {
                if let Some(object) = admit(&value, &origin, &object, problems) {
                    self.reports.push(Item { object, source: origin });
                }
            }
            "RequiredBuild" => {
                if let Some(object) = admit(&value, &origin, &object, problems) {
                    self.builds.push(Item { object, source: origin });
                }
            }
            "SonarQubeConfiguration" => {
                if let Some(object) = admit(&value, &origin, &object, problems) {
                    self.sonarqube_configurations.push(Item { object, source: origin });
                }
            }
            _ => problems.push(Problem::Unsupported { origin, api_version, kind }),
        }
    }

    /// Where an object of this kind, namespace and name was read, if it was.
    fn source_of(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<&Source> {
        fn find<'a, K: kube::Resource>(
            items: &'a [Item<K>],
            namespace: Option<&str>,
            name: &str,
        ) -> Option<&'a Source> {
            items
                .iter()
                .find(|i| {
                    i.object.meta().name.as_deref() == Some(name) && i.object.meta().namespace.as_deref() == namespace
                })
                .map(|i| &i.source)
        }
        match kind {
            "Secret" => {
                self.secrets.get(&(namespace.unwrap_or_default().to_owned(), name.to_owned())).map(|i| &i.source)
            }
            "BitbucketConfiguration" => find(&self.configurations, namespace, name),
            "ClusterBitbucketConfiguration" => find(&self.cluster_configurations, None, name),
            "ProjectBinding" => find(&self.bindings, namespace, name),
            "RequiredReport" => find(&self.reports, namespace, name),
            "RequiredBuild" => find(&self.builds, namespace, name),
            "SonarQubeConfiguration" => find(&self.sonarqube_configurations, namespace, name),
            _ => None,
        }
    }
}

/// Checks an object against its CRD (schema, defaults, CEL) and reads it into its type.
fn admit<K: DeserializeOwned>(value: &Value, origin: &Source, object: &str, problems: &mut Vec<Problem>) -> Option<K> {
    let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(validator) = validator_for(api_version, kind) else {
        problems.push(Problem::Unsupported {
            origin: origin.clone(),
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        });
        return None;
    };
    match validator.admit(value, None) {
        Ok(admitted) => match serde_json::from_value(admitted) {
            Ok(object) => Some(object),
            Err(error) => {
                problems.push(Problem::Malformed {
                    origin: origin.clone(),
                    object: object.to_owned(),
                    message: one_line(&error.to_string()),
                });
                None
            }
        },
        Err(errors) => {
            problems.extend(errors.into_iter().map(|error| Problem::Rejected {
                origin: origin.clone(),
                object: object.to_owned(),
                field: error.field,
                message: error.message,
            }));
            None
        }
    }
}

/// One line, at most 300 bytes.
pub(super) fn one_line(text: &str) -> String {
    crate::plan::status::shorten(&text.split_whitespace().collect::<Vec<_>>().join(" "), 300)
}
