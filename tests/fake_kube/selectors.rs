//! `labelSelector` and `fieldSelector` query parameters.

use serde_json::Value;

use super::{errors::ApiError, resources::ResourceType};

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (index, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".to_owned());
                }
            }
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".to_owned());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(value: &str) -> bool {
    value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_requirement(text: &str) -> Result<Requirement, String> {
    let text = text.trim();
    if let Some(key) = text.strip_prefix('!') {
        let key = key.trim();
        return if valid_key(key) {
            Ok(Requirement::NotExists(key.to_owned()))
        } else {
            Err(format!("invalid key {key:?}"))
        };
    }
    for (op, build) in [
        ("!=", (|k, v| Requirement::NotEquals(k, v)) as fn(String, String) -> Requirement),
        ("==", |k, v| Requirement::Equals(k, v)),
        ("=", |k, v| Requirement::Equals(k, v)),
    ] {
        if let Some((key, value)) = text.split_once(op) {
            let (key, value) = (key.trim(), value.trim());
            if !valid_key(key) || !valid_value(value) {
                return Err(format!("invalid requirement {text:?}"));
            }
            return Ok(build(key.to_owned(), value.to_owned()));
        }
    }
    for (op, greater) in [(">", true), ("<", false)] {
        if let Some((key, value)) = text.split_once(op) {
            let key = key.trim();
            let number: i64 = value.trim().parse().map_err(|_| format!("{value:?} is not an integer"))?;
            if !valid_key(key) {
                return Err(format!("invalid key {key:?}"));
            }
            return Ok(if greater {
                Requirement::GreaterThan(key.to_owned(), number)
            } else {
                Requirement::LessThan(key.to_owned(), number)
            });
        }
    }
    if let Some(open) = text.find('(') {
        let head = text[..open].trim();
        let close = text.rfind(')').filter(|close| *close > open).ok_or("missing ')'")?;
        if !text[close + 1..].trim().is_empty() {
            return Err(format!("unexpected text after ')' in {text:?}"));
        }
        let values: Vec<String> =
            text[open + 1..close].split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
        if values.iter().any(|v| !valid_value(v)) {
            return Err(format!("invalid value in {text:?}"));
        }
        let mut words = head.split_whitespace();
        let (Some(key), Some(op), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("expected 'key in (values)' or 'key notin (values)', found {text:?}"));
        };
        if !valid_key(key) {
            return Err(format!("invalid key {key:?}"));
        }
        return match op {
            "in" if !values.is_empty() => Ok(Requirement::In(key.to_owned(), values)),
            "notin" if !values.is_empty() => Ok(Requirement::NotIn(key.to_owned(), values)),
            "in" | "notin" => Err("for 'in', 'notin' operators, values set can't be empty".to_owned()),
            other => Err(format!("unknown operator {other:?}")),
        };
    }
    if valid_key(text) {
        Ok(Requirement::Exists(text.to_owned()))
    } else {
        Err(format!("invalid requirement {text:?}"))
    }
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let parts =
            split_top_level(text).map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        parts
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|requirement| match requirement {
            Requirement::Exists(key) => get(key).is_some(),
            Requirement::NotExists(key) => get(key).is_none(),
            Requirement::Equals(key, value) => get(key) == Some(value.as_str()),
            Requirement::NotEquals(key, value) => get(key) != Some(value.as_str()),
            Requirement::In(key, values) => get(key).is_some_and(|v| values.iter().any(|x| x == v)),
            Requirement::NotIn(key, values) => get(key).is_none_or(|v| values.iter().all(|x| x != v)),
            Requirement::GreaterThan(key, n) => get(key).and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
            Requirement::LessThan(key, n) => get(key).and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
        })
    }
}

/// A parsed field selector over the fields the resource serves selectors for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(Vec<(&'static str, String, bool)>);

impl FieldSelector {
    pub fn parse(text: &str, resource: &ResourceType) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: '{text}'; can't understand '{term}'")));
            };
            let field = field.trim();
            let pointer = resource
                .field_pointer(field)
                .ok_or_else(|| ApiError::bad_request(format!("field label not supported: {field}")))?;
            terms.push((pointer, value.trim().to_owned(), equal));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(pointer, value, equal)| {
            let actual = match object.pointer(pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

/// Both selectors of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}
