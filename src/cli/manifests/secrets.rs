//! Secrets read from manifests: labels and data checked as the API server would, values decoded
//! and never shown.

use base64::Engine as _;
use serde_json::Value;

use crate::{api::validation::is_dns_subdomain, plan::connection::SecretData};

use super::{Problem, Source};

/// A Secret's labels and decoded data, checked as the API server would (string labels, base64
/// `data`, string `stringData`, which wins over `data`). Values never reach a message.
pub(super) fn secret_data(
    value: &Value,
    name: &str,
    origin: &Source,
    object: &str,
    problems: &mut Vec<Problem>,
) -> Option<SecretData> {
    let before = problems.len();
    let rejected = |field: &str, message: &str| Problem::Rejected {
        origin: origin.clone(),
        object: object.to_owned(),
        field: field.to_owned(),
        message: message.to_owned(),
    };
    let not_a_string = |field: String| Problem::NotAString { origin: origin.clone(), object: object.to_owned(), field };
    if !is_dns_subdomain(name) || name.len() > 253 {
        problems.push(rejected(
            "metadata.name",
            "must consist of lower-case letters, digits, '-' or '.', and start and end with a letter or digit",
        ));
    }
    let mut data = SecretData::default();
    for (path, field) in [("/metadata/labels", "metadata.labels"), ("/data", "data"), ("/stringData", "stringData")] {
        if !matches!(value.pointer(path), None | Some(Value::Null) | Some(Value::Object(_))) {
            problems.push(rejected(field, "must be a mapping of keys to strings"));
        }
    }
    for (key, label) in value.pointer("/metadata/labels").and_then(Value::as_object).into_iter().flatten() {
        match label.as_str() {
            Some(label) => {
                data.labels.insert(key.clone(), label.to_owned());
            }
            None => problems.push(not_a_string(format!("metadata.labels.{key}"))),
        }
    }
    for (key, encoded) in value.get("data").and_then(Value::as_object).into_iter().flatten() {
        let Some(text) = encoded.as_str() else {
            problems.push(not_a_string(format!("data.{key}")));
            continue;
        };
        match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(bytes) => {
                data.data.insert(key.clone(), bytes);
            }
            Err(_) => problems.push(Problem::InvalidBase64 {
                origin: origin.clone(),
                object: object.to_owned(),
                key: key.clone(),
            }),
        }
    }
    for (key, plain) in value.get("stringData").and_then(Value::as_object).into_iter().flatten() {
        match plain.as_str() {
            Some(text) => {
                data.data.insert(key.clone(), text.as_bytes().to_vec());
            }
            None => problems.push(not_a_string(format!("stringData.{key}"))),
        }
    }
    (problems.len() == before).then_some(data)
}
