//! The Community Build's way to bind (§2.13): a per-user Bitbucket PAT stored with
//! `api/alm_integrations/set_pat`, setting ids from `GET /api/v2/dop-translation/dop-settings`,
//! and `PUT`/`POST /api/v2/dop-translation/bound-projects`, which fetch the repository from
//! Bitbucket with that PAT before binding. Also the internal `project-bindings` list.

use serde_json::{Value, json};

use super::{
    SonarQubeSimulator,
    auth::{can_create_projects, check, is_project_admin, unauthorized},
    bitbucket,
    projects::create_project,
    seed::Alm,
    state::{Project, State, setting_url},
    ws::{Call, Fail, Reply, json as json_response, no_content, ok},
};

pub(crate) fn set_pat(state: &mut State, call: &Call) -> Reply {
    check(&call.caller, can_create_projects(state, &call.caller))?;
    let pat = call.required_max("pat", 2000)?;
    let uuid = match call.param("almSetting") {
        Some(key) => state
            .setting(key)
            .ok_or_else(|| Fail::not_found(format!("DevOps Platform setting with key '{key}' cannot be found")))?
            .uuid
            .clone(),
        None => match state.settings.as_slice() {
            [only] => only.uuid.clone(),
            [] => return Err(Fail::not_found("There is no DevOps Platform configuration.")),
            _ => {
                return Err(Fail::bad_request(
                    "Parameter almSetting is required as there are multiple DevOps Platform configurations.",
                ));
            }
        },
    };
    let user = call.caller.user.and_then(|uid| state.users.get_mut(uid)).ok_or_else(unauthorized)?;
    user.pats.insert(uuid, pat.to_owned());
    no_content()
}

fn logged_in(call: &Call) -> Result<(), Fail> {
    if call.caller.user.is_none() { Err(unauthorized().into_v2()) } else { Ok(()) }
}

fn one_page(total: usize) -> Value {
    json!({"pageIndex": 1, "pageSize": total, "total": total})
}

pub(crate) fn dop_settings(state: &State, call: &Call) -> Reply {
    logged_in(call)?;
    let settings: Vec<Value> = state
        .settings
        .iter()
        .map(|s| json!({"id": s.uuid, "type": s.alm.v2_type(), "key": s.key, "url": setting_url(s)}))
        .collect();
    let total = settings.len();
    ok(&json!({"dopSettings": settings, "page": one_page(total)}))
}

pub(crate) fn project_bindings(state: &State, call: &Call) -> Reply {
    logged_in(call)?;
    let repository = call.param("repository");
    let setting = call.param("dopSettingId");
    let bindings: Vec<Value> = state
        .projects
        .values()
        .filter(|p| is_project_admin(state, &call.caller, p))
        .filter_map(|p| p.binding.as_ref().map(|b| (p, b)))
        .filter(|(_, b)| repository.is_none_or(|r| b.repository == r || b.slug == r))
        .filter(|(_, b)| setting.is_none_or(|s| b.setting == s))
        .map(|(p, b)| {
            json!({"id": b.uuid, "devOpsPlatformSettingId": b.setting, "projectId": p.uuid, "projectKey": p.key,
                   "repository": b.repository, "slug": b.slug})
        })
        .collect();
    let total = bindings.len();
    ok(&json!({"projectBindings": bindings, "page": one_page(total)}))
}

/// The fields of a `bound-projects` body.
struct BoundProject {
    key: String,
    name: String,
    setting: String,
    slug: String,
    project: Option<String>,
    monorepo: bool,
}

fn rejected(field: &str) -> Fail {
    Fail::v2(400, format!("Value null for field {field} was rejected. Error: must not be null."))
}

fn read_body(body: &Value) -> Result<BoundProject, Fail> {
    let text = |field: &str| -> Result<String, Fail> {
        body.get(field)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| rejected(field))
    };
    Ok(BoundProject {
        key: text("projectKey")?,
        name: text("projectName")?,
        setting: text("devOpsPlatformSettingId")?,
        slug: text("repositoryIdentifier")?,
        project: body.get("projectIdentifier").and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned),
        monorepo: body.get("monorepo").and_then(Value::as_bool).ok_or_else(|| rejected("monorepo"))?,
    })
}

/// `PUT` (create or rebind, 200) and `POST` (create only, 201).
pub(crate) async fn bound_projects(sim: &SonarQubeSimulator, call: &Call) -> Reply {
    let create_only = call.method == axum::http::Method::POST;
    let (request, url, pat, bitbucket_project) = {
        let state = sim.lock();
        logged_in(call)?;
        check(&call.caller, can_create_projects(&state, &call.caller)).map_err(Fail::into_v2)?;
        let request = read_body(&call.json_body()?)?;
        let setting = state
            .setting_by_uuid(&request.setting)
            .ok_or_else(|| Fail::v2(404, format!("DevOps Platform configuration '{}' not found.", request.setting)))?;
        if setting.alm != Alm::Bitbucket {
            return Err(Fail::v2(400, "The simulator binds Bitbucket Server repositories only"));
        }
        let bitbucket_project = request.project.clone().ok_or_else(|| rejected("projectIdentifier"))?;
        let pat = call
            .caller
            .user
            .and_then(|uid| state.users.get(uid))
            .and_then(|u| u.pats.get(&setting.uuid))
            .cloned()
            .ok_or_else(|| Fail::v2(400, format!("personal access token for '{}' is missing", setting.key)))?;
        check_project(&state, call, &request.key, create_only)?;
        (request, setting.url.clone(), pat, bitbucket_project)
    };
    bitbucket::fetch_repository(&url, &pat, &bitbucket_project, &request.slug).await.map_err(|msg| {
        Fail::v2(500, format!("Unable to fetch repository {bitbucket_project}/{} from Bitbucket: {msg}", request.slug))
    })?;

    let mut state = sim.lock();
    check_project(&state, call, &request.key, create_only)?;
    let created = !state.projects.contains_key(&request.key);
    if created {
        create_project(&mut state, call.caller.user, &request.key, &request.name).map_err(Fail::into_v2)?;
    }
    let setting_key = state
        .setting_by_uuid(&request.setting)
        .map(|s| s.key.clone())
        .ok_or_else(|| Fail::v2(404, format!("DevOps Platform configuration '{}' not found.", request.setting)))?;
    let binding = state
        .bind(&request.key, &setting_key, &bitbucket_project, &request.slug, request.monorepo)
        .map_err(|e| Fail::v2(500, e.to_string()))?;
    let project_id = state.projects.get(&request.key).map(|p| p.uuid.clone()).unwrap_or_default();
    let body = json!({"projectId": project_id, "bindingId": binding, "newProjectCreated": created});
    if create_only {
        return Ok(json_response(201, &body));
    }
    ok(&body)
}

/// An existing project: `POST` refuses it, `PUT` needs its Administer permission; a key that
/// differs only in case is refused like v1 `create`.
fn check_project(state: &State, call: &Call, key: &str, create_only: bool) -> Result<(), Fail> {
    let Some(similar) = state.similar_project(key) else { return Ok(()) };
    if create_only || similar.key != key {
        return Err(Fail::v2(
            400,
            format!("Could not create Project with key: \"{key}\". A similar key already exists: \"{}\"", similar.key),
        ));
    }
    let project: &Project = similar;
    check(&call.caller, is_project_admin(state, &call.caller, project)).map_err(Fail::into_v2)
}
