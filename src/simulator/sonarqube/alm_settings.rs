//! `api/alm_settings/*`: the Bitbucket Server setting's lifecycle (§2.1–2.5, 2.9, 2.10) and the
//! project bindings (§2.6–2.8, 2.11).

use serde_json::{Value, json};

use super::{
    SonarQubeSimulator,
    auth::{can_create_projects, check, is_admin, is_project_admin},
    bitbucket,
    seed::Alm,
    state::{AlmSetting, State, setting_url},
    ws::{Call, Fail, Reply, no_content, ok},
};

fn setting_not_found(key: &str) -> Fail {
    Fail::not_found(format!("DevOps Platform setting with key '{key}' cannot be found"))
}

fn key_taken(key: &str) -> Fail {
    Fail::bad_request(format!("An DevOps Platform setting with key '{key}' already exists"))
}

fn not_bitbucket(key: &str) -> Fail {
    Fail::bad_request(format!("DevOps Platform setting with key '{key}' is not a Bitbucket Server setting"))
}

fn project_not_found(key: &str) -> Fail {
    Fail::not_found(format!("Project '{key}' not found"))
}

fn admin(state: &State, call: &Call) -> Result<(), Fail> {
    check(&call.caller, is_admin(state, &call.caller))
}

pub(crate) fn create_bitbucket(state: &mut State, call: &Call) -> Reply {
    admin(state, call)?;
    let key = call.required_max("key", 200)?;
    let url = call.required_max("url", 2000)?;
    let pat = call.required_max("personalAccessToken", 2000)?;
    // Server and Cloud share one cap without `multiple-alm`.
    if !state.edition.multiple_alm() {
        for (alm, name) in [(Alm::Bitbucket, "BITBUCKET"), (Alm::Bitbucketcloud, "BITBUCKET_CLOUD")] {
            if state.settings.iter().any(|s| s.alm == alm) {
                return Err(Fail::bad_request(format!("A {name} setting is already defined")));
            }
        }
    }
    if state.setting(key).is_some() {
        return Err(key_taken(key));
    }
    let uuid = state.new_uuid();
    state.settings.push(AlmSetting {
        uuid,
        key: key.to_owned(),
        alm: Alm::Bitbucket,
        url: url.to_owned(),
        pat: Some(pat.to_owned()),
    });
    no_content()
}

pub(crate) fn update_bitbucket(state: &mut State, call: &Call) -> Reply {
    admin(state, call)?;
    let key = call.required_max("key", 200)?;
    let new_key = call.optional_max("newKey", 200)?;
    let url = call.required_max("url", 2000)?;
    let pat = call.optional_max("personalAccessToken", 2000)?;
    let setting = state.setting(key).ok_or_else(|| setting_not_found(key))?;
    if setting.alm != Alm::Bitbucket {
        return Err(not_bitbucket(key));
    }
    if let Some(new_key) = new_key
        && new_key != key
        && state.setting(new_key).is_some()
    {
        return Err(key_taken(new_key));
    }
    // An exact string compare: a trailing slash is a URL change too.
    if url != setting.url && pat.is_none() {
        return Err(Fail::bad_request("Please provide the Personal Access Token to update the URL."));
    }
    let setting = state.settings.iter_mut().find(|s| s.key == key).ok_or_else(|| setting_not_found(key))?;
    if let Some(new_key) = new_key {
        new_key.clone_into(&mut setting.key);
    }
    url.clone_into(&mut setting.url);
    if let Some(pat) = pat {
        setting.pat = Some(pat.to_owned());
    }
    no_content()
}

pub(crate) fn delete(state: &mut State, call: &Call) -> Reply {
    admin(state, call)?;
    let key = call.required("key")?;
    state.delete_setting(key).map_err(|_| setting_not_found(key))?;
    no_content()
}

pub(crate) fn list_definitions(state: &State, call: &Call) -> Reply {
    admin(state, call)?;
    let of = |alm: Alm| -> Vec<Value> {
        state
            .settings
            .iter()
            .filter(|s| s.alm == alm)
            .map(|s| match alm {
                Alm::Bitbucketcloud => json!({"key": s.key, "workspace": s.url, "clientId": ""}),
                _ => json!({"key": s.key, "url": s.url}),
            })
            .collect()
    };
    ok(&json!({
        "github": of(Alm::Github),
        "azure": of(Alm::Azure),
        "bitbucket": of(Alm::Bitbucket),
        "gitlab": of(Alm::Gitlab),
        "bitbucketcloud": of(Alm::Bitbucketcloud),
    }))
}

pub(crate) fn list(state: &State, call: &Call) -> Reply {
    match call.param("project") {
        Some(key) => {
            let project = state.projects.get(key).ok_or_else(|| project_not_found(key))?;
            check(&call.caller, is_project_admin(state, &call.caller, project))?;
        }
        None => check(&call.caller, can_create_projects(state, &call.caller))?,
    }
    let mut settings: Vec<&AlmSetting> = state.settings.iter().collect();
    settings.sort_by(|a, b| a.key.cmp(&b.key));
    let listed: Vec<Value> =
        settings.iter().map(|s| json!({"key": s.key, "alm": s.alm.as_str(), "url": setting_url(s)})).collect();
    ok(&json!({"almSettings": listed}))
}

pub(crate) fn count_binding(state: &State, call: &Call) -> Reply {
    admin(state, call)?;
    let key = call.required("almSetting")?;
    let setting = state.setting(key).ok_or_else(|| setting_not_found(key))?;
    ok(&json!({"key": setting.key, "projects": state.count_bindings(&setting.uuid)}))
}

/// Reads the setting under the lock, then calls Bitbucket without it.
pub(crate) async fn validate(sim: &SonarQubeSimulator, call: &Call) -> Reply {
    let (url, pat) = {
        let state = sim.lock();
        admin(&state, call)?;
        let key = call.required_max("key", 200)?;
        let setting = state.setting(key).ok_or_else(|| setting_not_found(key))?;
        if setting.alm != Alm::Bitbucket {
            return Err(Fail::bad_request("The simulator validates Bitbucket Server settings only"));
        }
        match &setting.pat {
            Some(pat) if !setting.url.is_empty() => (setting.url.clone(), pat.clone()),
            _ => return Err(Fail::bad_request("Your global Bitbucket Server configuration is incomplete.")),
        }
    };
    bitbucket::validate(&url, &pat).await.map_err(Fail::bad_request)?;
    no_content()
}

/// Needs Browse, which only project administrators hold here (guess 8).
pub(crate) fn get_binding(state: &State, call: &Call) -> Reply {
    let key = call.required("project")?;
    let project = state.projects.get(key).ok_or_else(|| project_not_found(key))?;
    check(&call.caller, is_project_admin(state, &call.caller, project))?;
    let binding = state
        .binding_json(project)
        .ok_or_else(|| Fail::not_found(format!("Project '{key}' is not bound to any DevOps Platform")))?;
    ok(&binding)
}

pub(crate) fn set_bitbucket_binding(state: &mut State, call: &Call) -> Reply {
    let setting_key = call.required("almSetting")?;
    let key = call.required("project")?;
    let repository = call.required("repository")?;
    let slug = call.required("slug")?;
    let monorepo = call.required_bool("monorepo")?;
    let project = state.projects.get(key).ok_or_else(|| project_not_found(key))?;
    check(&call.caller, is_project_admin(state, &call.caller, project))?;
    let setting = state.setting(setting_key).ok_or_else(|| setting_not_found(setting_key))?;
    if setting.alm != Alm::Bitbucket {
        return Err(not_bitbucket(setting_key));
    }
    state.bind(key, setting_key, repository, slug, monorepo).map_err(|e| Fail::v1(500, e.to_string()))?;
    no_content()
}

pub(crate) fn delete_binding(state: &mut State, call: &Call) -> Reply {
    let key = call.required("project")?;
    let project = state.projects.get(key).ok_or_else(|| project_not_found(key))?;
    check(&call.caller, is_project_admin(state, &call.caller, project))?;
    if let Some(project) = state.projects.get_mut(key) {
        project.binding = None;
    }
    no_content()
}

pub(crate) async fn validate_binding(sim: &SonarQubeSimulator, call: &Call) -> Reply {
    let (url, pat, repository, slug) = {
        let state = sim.lock();
        let key = call.required_max("project", 400)?;
        let project = state.projects.get(key).ok_or_else(|| project_not_found(key))?;
        check(&call.caller, is_project_admin(&state, &call.caller, project))?;
        let not_bound = || Fail::not_found(format!("Project '{key}' is not bound to any DevOps Platform"));
        let binding = project.binding.as_ref().ok_or_else(not_bound)?;
        let setting = state.setting_by_uuid(&binding.setting).ok_or_else(not_bound)?;
        if setting.alm != Alm::Bitbucket {
            return Err(Fail::bad_request("The simulator validates Bitbucket Server bindings only"));
        }
        let pat = setting
            .pat
            .clone()
            .ok_or_else(|| Fail::bad_request("Your global Bitbucket Server configuration is incomplete."))?;
        (setting.url.clone(), pat, binding.repository.clone(), binding.slug.clone())
    };
    bitbucket::fetch_repository(&url, &pat, &repository, &slug).await.map_err(Fail::bad_request)?;
    no_content()
}
