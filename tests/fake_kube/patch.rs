//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902), as the API server applies them.

use serde_json::Value;

/// Applies a JSON merge patch: objects merge, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Splits a JSON pointer into unescaped tokens.
fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("JSON pointer {pointer:?} must start with '/'"));
    };
    Ok(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let valid =
        !token.is_empty() && token.chars().all(|c| c.is_ascii_digit()) && (token == "0" || !token.starts_with('0'));
    let index: usize = if valid {
        token.parse().map_err(|_| format!("invalid index {token:?}"))?
    } else {
        return Err(format!("invalid index {token:?}"));
    };
    let limit = if allow_end { len } else { len.saturating_sub(1) };
    if index > limit || (!allow_end && len == 0) {
        return Err(format!("index {index} is out of bounds"));
    }
    Ok(index)
}

/// The parent container of `pointer` and the last token.
fn parent<'a>(document: &'a mut Value, pointer: &str) -> Result<(&'a mut Value, String), String> {
    let mut tokens = tokens(pointer)?;
    let last = tokens.pop().ok_or_else(|| "the operation needs a path other than the whole document".to_owned())?;
    let mut node = document;
    for token in tokens {
        node = match node {
            Value::Object(map) => map.get_mut(&token),
            Value::Array(items) => {
                let index = array_index(&token, items.len(), false)?;
                items.get_mut(index)
            }
            _ => None,
        }
        .ok_or_else(|| format!("path {pointer:?} does not exist"))?;
    }
    Ok((node, last))
}

fn get<'a>(document: &'a Value, pointer: &str) -> Result<Option<&'a Value>, String> {
    let mut node = document;
    for token in tokens(pointer)? {
        let next = match node {
            Value::Object(map) => map.get(&token),
            Value::Array(items) => match array_index(&token, items.len(), false) {
                Ok(index) => items.get(index),
                Err(_) => None,
            },
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => return Ok(None),
        }
    }
    Ok(Some(node))
}

fn add(document: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    if pointer.is_empty() {
        *document = value;
        return Ok(());
    }
    let (parent, last) = parent(document, pointer)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Value::Array(items) => {
            let index = array_index(&last, items.len(), true)?;
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!("path {pointer:?} does not exist")),
    }
}

fn remove(document: &mut Value, pointer: &str) -> Result<Value, String> {
    let (parent, last) = parent(document, pointer)?;
    match parent {
        Value::Object(map) => map.remove(&last).ok_or_else(|| format!("path {pointer:?} does not exist")),
        Value::Array(items) => {
            let index = array_index(&last, items.len(), false)?;
            Ok(items.remove(index))
        }
        _ => Err(format!("path {pointer:?} does not exist")),
    }
}

fn string_field<'a>(operation: &'a Value, field: &str) -> Result<&'a str, String> {
    operation.get(field).and_then(Value::as_str).ok_or_else(|| format!("operation {operation} has no string {field:?}"))
}

/// Checks that `patch` is a list of operations (400 when not).
pub fn check_json_patch(patch: &Value) -> Result<(), String> {
    let Value::Array(operations) = patch else {
        return Err("a JSON patch must be a list of operations".to_owned());
    };
    for operation in operations {
        let op = string_field(operation, "op")?;
        string_field(operation, "path")?;
        match op {
            "add" | "replace" | "test" if operation.get("value").is_none() => {
                return Err(format!("operation {operation} has no \"value\""));
            }
            "move" | "copy" => {
                string_field(operation, "from")?;
            }
            "add" | "replace" | "test" | "remove" => {}
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

/// Applies a JSON patch. All or nothing: on error `document` is left as it was, and the error
/// says why (the server's answer does not: see `ApiError::patch_not_applied`).
///
/// As in the API server (which uses evanphx/json-patch), `test` of `null` passes on a missing
/// path: kube's finalizer helper relies on that.
pub fn json_patch(document: &mut Value, patch: &Value) -> Result<(), String> {
    check_json_patch(patch)?;
    let mut result = document.clone();
    for operation in patch.as_array().into_iter().flatten() {
        let path = string_field(operation, "path")?;
        let value = operation.get("value").cloned().unwrap_or(Value::Null);
        match string_field(operation, "op")? {
            "add" => add(&mut result, path, value)?,
            "remove" => {
                remove(&mut result, path)?;
            }
            "replace" => {
                if path.is_empty() {
                    result = value;
                } else {
                    remove(&mut result, path)?;
                    add(&mut result, path, value)?;
                }
            }
            "move" => {
                let from = string_field(operation, "from")?;
                if path.starts_with(&format!("{from}/")) {
                    return Err(format!("cannot move {from:?} into its own child {path:?}"));
                }
                let moved = remove(&mut result, from)?;
                add(&mut result, path, moved)?;
            }
            "copy" => {
                let from = string_field(operation, "from")?;
                let copied = get(&result, from)?.cloned().ok_or_else(|| format!("path {from:?} does not exist"))?;
                add(&mut result, path, copied)?;
            }
            "test" => {
                let actual = get(&result, path)?;
                let passes = match actual {
                    Some(actual) => *actual == value,
                    None => value.is_null(),
                };
                if !passes {
                    return Err(format!("testing value {path} failed: test failed"));
                }
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    *document = result;
    Ok(())
}
