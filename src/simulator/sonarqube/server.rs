//! What describes the server and the caller: `api/system/status`, `api/navigation/global`,
//! `api/features/list`, `api/users/current` and `api/authentication/validate`.

use serde_json::json;

use super::{
    auth::{can_create_projects, is_admin},
    state::State,
    ws::{Call, Reply, ok},
};

/// `{"id","version","status"}`; anonymous callers see only the status.
pub(crate) fn status(state: &State, call: &Call) -> Reply {
    if call.caller.user.is_none() {
        return ok(&json!({"status": state.status}));
    }
    ok(&json!({"id": state.server_id, "version": state.version, "status": state.status}))
}

pub(crate) fn navigation(state: &State, call: &Call) -> Reply {
    ok(&json!({
        "edition": state.edition.as_str(),
        "version": state.version,
        "canAdmin": is_admin(state, &call.caller),
        "qualifiers": ["TRK"],
    }))
}

pub(crate) fn features(state: &State) -> Reply {
    let features: Vec<&str> = if state.edition.multiple_alm() { vec!["multiple-alm"] } else { Vec::new() };
    ok(&json!(features))
}

pub(crate) fn current_user(state: &State, call: &Call) -> Reply {
    let Some(user) = call.caller.user.and_then(|uid| state.users.get(uid)) else {
        return ok(&json!({"isLoggedIn": false, "permissions": {"global": []}}));
    };
    let mut global = Vec::new();
    if is_admin(state, &call.caller) {
        global.push("admin");
    }
    if can_create_projects(state, &call.caller) {
        global.push("provisioning");
    }
    ok(&json!({"isLoggedIn": true, "login": user.login, "name": user.name, "permissions": {"global": global}}))
}

/// `{"valid"}`: true for anonymous callers unless authentication is forced (it is no credential
/// check); refused credentials never get here.
pub(crate) fn validate(state: &State, call: &Call) -> Reply {
    ok(&json!({"valid": call.caller.user.is_some() || !state.force_authentication}))
}
