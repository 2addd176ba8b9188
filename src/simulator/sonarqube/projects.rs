//! `api/projects/search`, `api/projects/create` and `api/components/show` (§2.12).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    auth::{can_create_projects, check, is_admin, is_project_admin},
    state::{Project, State},
    ws::{Call, Fail, Reply, ok},
};

const MAX_PAGE_SIZE: usize = 500;

fn component(project: &Project) -> Value {
    json!({"key": project.key, "name": project.name, "qualifier": "TRK", "visibility": "private"})
}

pub(crate) fn search(state: &State, call: &Call) -> Reply {
    check(&call.caller, is_admin(state, &call.caller))?;
    let page = call.number("p", 1)?.max(1);
    let size = call.number("ps", 100)?;
    if size > MAX_PAGE_SIZE {
        return Err(Fail::bad_request(format!("'ps' value ({size}) must be less than {MAX_PAGE_SIZE}")));
    }
    let keys: Option<BTreeSet<&str>> = call.param("projects").map(|list| list.split(',').map(str::trim).collect());
    let q = call.param("q").map(str::to_lowercase);
    let mut found: Vec<&Project> = state
        .projects
        .values()
        .filter(|p| keys.as_ref().is_none_or(|keys| keys.contains(p.key.as_str())))
        .filter(|p| q.as_ref().is_none_or(|q| p.key.to_lowercase().contains(q) || p.name.to_lowercase().contains(q)))
        .collect();
    found.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then_with(|| a.key.cmp(&b.key)));
    let components: Vec<Value> =
        found.iter().skip((page - 1).saturating_mul(size)).take(size).map(|p| component(p)).collect();
    ok(&json!({
        "paging": {"pageIndex": page, "pageSize": size, "total": found.len()},
        "components": components,
    }))
}

/// SonarQube's key rule: letters, digits, `-`, `_`, `.`, `:`, with at least one non-digit.
fn valid_key(key: &str) -> bool {
    key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) && !key.chars().all(|c| c.is_ascii_digit())
}

/// Creates a project after the key checks; the creator becomes its administrator.
pub(crate) fn create_project(state: &mut State, caller: Option<usize>, key: &str, name: &str) -> Result<(), Fail> {
    if !valid_key(key) {
        return Err(Fail::bad_request(format!(
            "Malformed key for Project: '{key}'. Allowed characters are alphanumeric, '-', '_', '.' and ':', with at least one non-digit."
        )));
    }
    if let Some(similar) = state.similar_project(key) {
        return Err(Fail::bad_request(format!(
            "Could not create Project with key: \"{key}\". A similar key already exists: \"{}\"",
            similar.key
        )));
    }
    let name: String = if name.chars().count() > 500 {
        name.chars().take(497).chain("...".chars()).collect()
    } else {
        name.to_owned()
    };
    let uuid = state.new_uuid();
    let admins = caller.into_iter().collect();
    state.projects.insert(key.to_owned(), Project { uuid, key: key.to_owned(), name, admins, binding: None });
    Ok(())
}

pub(crate) fn create(state: &mut State, call: &Call) -> Reply {
    let key = call.required_max("project", 400)?;
    let name = call.required("name")?;
    check(&call.caller, can_create_projects(state, &call.caller))?;
    create_project(state, call.caller.user, key, name)?;
    let project = state.projects.get(key).ok_or_else(|| Fail::v1(500, "the project vanished"))?;
    ok(&json!({"project": component(project)}))
}

pub(crate) fn show(state: &State, call: &Call) -> Reply {
    let key = call.required("component")?;
    let project = state.projects.get(key).ok_or_else(|| Fail::not_found(format!("Component key '{key}' not found")))?;
    check(&call.caller, is_project_admin(state, &call.caller, project))?;
    ok(&json!({"component": component(project)}))
}
