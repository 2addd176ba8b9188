//! Required-builds merge checks (§8.3):
//! `GET /rest/required-builds/{version}/projects/{key}/repos/{slug}/conditions` (paged, REPO_READ)
//! and `POST .../condition`, `PUT|DELETE .../condition/{id}` (REPO_ADMIN). Ids are assigned by the
//! server, increasing across repositories; DELETE answers 204 whether or not the condition
//! existed. Servers before 7.14 do not have the API: they answer like any unknown `/rest` path.

use axum::{
    Extension,
    body::Bytes,
    extract::{Path, RawQuery, State as AxState, rejection::PathRejection},
    http::{HeaderMap, Uri},
    response::Response,
};
use serde_json::{Map, Value, json};

use super::{
    Ctx, Simulator,
    repositories::{find, require},
    respond::{ApiError, finish, json_body, no_content, ok, page, page_params, params},
    state::State,
};

const NO_SUCH_CONDITION: &str = "com.atlassian.bitbucket.build.requiredbuilds.NoSuchRequiredBuildConditionException";
/// Build keys one condition may hold.
const MAX_KEYS: usize = 100;
/// Characters of one build key.
const MAX_KEY_CHARS: usize = 255;
/// The id Bitbucket gives the matcher of every ref.
const ANY_REF_ID: &str = "ANY_REF_MATCHER_ID";

/// The matcher types, with the names the server reports.
const TYPES: [(&str, &str); 5] = [
    ("ANY_REF", "Any branch"),
    ("BRANCH", "Branch"),
    ("PATTERN", "Pattern"),
    ("MODEL_CATEGORY", "Branching model category"),
    ("MODEL_BRANCH", "Branching model branch"),
];

/// Which refs a condition covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matcher {
    pub id: String,
    /// One of [`TYPES`].
    pub kind: &'static str,
}

impl Matcher {
    fn to_json(&self) -> Value {
        let name = TYPES.iter().find(|(id, _)| *id == self.kind).map_or(self.kind, |(_, name)| name);
        let display = match self.kind {
            "BRANCH" => self.id.strip_prefix("refs/heads/").unwrap_or(&self.id).to_owned(),
            "MODEL_CATEGORY" | "MODEL_BRANCH" => {
                let lower = self.id.to_lowercase();
                let mut chars = lower.chars();
                chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
            }
            _ => self.id.clone(),
        };
        json!({"id": self.id, "displayId": display, "type": {"id": self.kind, "name": name}})
    }

    /// `field` names the matcher in errors (`refMatcher`).
    fn from_json(value: &Value, field: &str, errors: &mut Vec<(String, String)>) -> Option<Matcher> {
        let Some(object) = value.as_object() else {
            errors.push((field.to_owned(), format!("{field} must be an object with an id and a type.")));
            return None;
        };
        let kind = match object.get("type").and_then(|t| t.get("id")).and_then(Value::as_str) {
            Some(kind) => match TYPES.iter().find(|(id, _)| *id == kind) {
                Some((id, _)) => *id,
                None => {
                    errors.push((format!("{field}.type"), format!("{kind:?} is not a known ref matcher type.")));
                    return None;
                }
            },
            None => {
                errors.push((format!("{field}.type"), format!("{field} needs a type with an id.")));
                return None;
            }
        };
        let id = match object.get("id").and_then(Value::as_str) {
            Some(id) if !id.trim().is_empty() => id.to_owned(),
            // Every ref has one matcher, so its id may be left out.
            _ if kind == "ANY_REF" => ANY_REF_ID.to_owned(),
            _ => {
                errors.push((format!("{field}.id"), format!("{field} needs a non-empty id.")));
                return None;
            }
        };
        Some(Matcher { id, kind })
    }
}

/// One condition as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequiredBuild {
    pub id: i64,
    pub build_parent_keys: Vec<String>,
    pub ref_matcher: Matcher,
    pub exempt_ref_matcher: Option<Matcher>,
}

impl RequiredBuild {
    /// Replaces what the condition requires (its id stays).
    pub fn set(&mut self, input: Input) {
        self.build_parent_keys = input.build_parent_keys;
        self.ref_matcher = input.ref_matcher;
        self.exempt_ref_matcher = input.exempt_ref_matcher;
    }
}

/// What a valid set-request holds.
#[derive(Debug)]
pub(crate) struct Input {
    build_parent_keys: Vec<String>,
    ref_matcher: Matcher,
    exempt_ref_matcher: Option<Matcher>,
}

impl Input {
    /// Reads a set-request; every broken field gets its own `(field, message)`.
    pub fn from_json(body: &Value) -> Result<Input, Vec<(String, String)>> {
        let Some(object) = body.as_object() else {
            return Err(vec![(String::new(), "The request body must be a JSON object.".into())]);
        };
        let mut errors = Vec::new();
        let keys: Vec<String> = match object.get("buildParentKeys") {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let raw_count = object.get("buildParentKeys").and_then(Value::as_array).map_or(0, Vec::len);
        if keys.is_empty() || keys.len() > MAX_KEYS {
            errors.push(("buildParentKeys".into(), format!("Between 1 and {MAX_KEYS} build keys are required.")));
        } else if keys.len() != raw_count
            || keys.iter().any(|k| k.trim().is_empty() || k.chars().count() > MAX_KEY_CHARS)
        {
            errors.push((
                "buildParentKeys".into(),
                format!("Every build key must be a non-empty string of at most {MAX_KEY_CHARS} characters."),
            ));
        }
        let ref_matcher = match object.get("refMatcher") {
            Some(value) => Matcher::from_json(value, "refMatcher", &mut errors),
            None => {
                errors.push(("refMatcher".into(), "A ref matcher is required.".into()));
                None
            }
        };
        let exempt_ref_matcher = match object.get("exemptRefMatcher") {
            None | Some(Value::Null) => None,
            Some(value) => Matcher::from_json(value, "exemptRefMatcher", &mut errors),
        };
        match ref_matcher {
            Some(ref_matcher) if errors.is_empty() => {
                Ok(Input { build_parent_keys: keys, ref_matcher, exempt_ref_matcher })
            }
            _ => Err(errors),
        }
    }
}

impl RequiredBuild {
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("id".into(), json!(self.id));
        object.insert("buildParentKeys".into(), json!(self.build_parent_keys));
        object.insert("refMatcher".into(), self.ref_matcher.to_json());
        if let Some(exempt) = &self.exempt_ref_matcher {
            object.insert("exemptRefMatcher".into(), exempt.to_json());
        }
        Value::Object(object)
    }
}

impl State {
    /// Stores a new condition in a repository known to exist; returns it.
    pub(crate) fn insert_required_build(&mut self, key: &str, slug: &str, input: Input) -> Option<RequiredBuild> {
        let id = self.next_required_build_id;
        let condition = RequiredBuild {
            id,
            build_parent_keys: input.build_parent_keys,
            ref_matcher: input.ref_matcher,
            exempt_ref_matcher: input.exempt_ref_matcher,
        };
        let repo = self.repo_mut(key, slug)?;
        repo.required_builds.insert(id, condition.clone());
        self.next_required_build_id += 1;
        Some(condition)
    }
}

/// The answer of a server without the API: the same as for any unknown `/rest` path.
fn gate(state: &State, uri: &Uri) -> Result<(), ApiError> {
    if state.server.has_required_builds() { Ok(()) } else { Err(ApiError::not_found(uri.path())) }
}

fn invalid(errors: Vec<(String, String)>) -> ApiError {
    let mut error = ApiError::validation(errors);
    if error.errors.first().is_some_and(|e| e.context.is_none()) {
        error.errors.iter_mut().for_each(|e| e.exception_name = None);
    }
    error
}

fn no_such_condition(id: &str) -> ApiError {
    ApiError::new(404, format!("No required build condition with id {id} exists."), Some(NO_SUCH_CONDITION))
}

type RepoPath = Result<Path<(String, String)>, PathRejection>;
type ConditionPath = Result<Path<(String, String, String)>, PathRejection>;

/// `GET .../conditions`: paged, by id.
pub(crate) async fn list(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    uri: Uri,
    path: RepoPath,
    RawQuery(query): RawQuery,
) -> Response {
    finish((|| {
        let state = sim.lock();
        gate(&state, &uri)?;
        let (key, slug) = params(path)?;
        let (start, limit) = page_params(query.as_deref(), state.features.page_limit);
        require(&state, &ctx.caller, &key, &slug, 1, false)?;
        let (_, repo) = find(&state, &key, &slug, false)?;
        let conditions: Vec<&RequiredBuild> = repo.required_builds.values().collect();
        Ok(ok(&page(&conditions, start, limit, |c| c.to_json())))
    })())
}

/// `POST .../condition`: 200 with the stored condition and its new id.
pub(crate) async fn create(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    uri: Uri,
    path: RepoPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    finish((|| {
        let mut state = sim.lock();
        gate(&state, &uri)?;
        let (key, slug) = params(path)?;
        let value = json_body(&headers, &body)?;
        require(&state, &ctx.caller, &key, &slug, 3, false)?;
        let input = Input::from_json(&value).map_err(invalid)?;
        let condition =
            state.insert_required_build(&key, &slug, input).ok_or_else(|| ApiError::no_such_repository(&key, &slug))?;
        Ok(ok(&condition.to_json()))
    })())
}

/// `PUT .../condition/{id}`: full replacement, the id kept.
pub(crate) async fn update(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    uri: Uri,
    path: ConditionPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    finish((|| {
        let mut state = sim.lock();
        gate(&state, &uri)?;
        let (key, slug, id) = params(path)?;
        let value = json_body(&headers, &body)?;
        require(&state, &ctx.caller, &key, &slug, 3, false)?;
        let repo = state.repo_mut(&key, &slug).ok_or_else(|| ApiError::no_such_repository(&key, &slug))?;
        let condition = id
            .parse::<i64>()
            .ok()
            .and_then(|n| repo.required_builds.get_mut(&n))
            .ok_or_else(|| no_such_condition(&id))?;
        let input = Input::from_json(&value).map_err(invalid)?;
        condition.set(input);
        Ok(ok(&condition.to_json()))
    })())
}

/// `DELETE .../condition/{id}`: 204, also for an id that never existed.
pub(crate) async fn delete(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    uri: Uri,
    path: ConditionPath,
) -> Response {
    finish((|| {
        let mut state = sim.lock();
        gate(&state, &uri)?;
        let (key, slug, id) = params(path)?;
        require(&state, &ctx.caller, &key, &slug, 3, false)?;
        if let (Some(repo), Ok(id)) = (state.repo_mut(&key, &slug), id.parse::<i64>()) {
            repo.required_builds.remove(&id);
        }
        Ok(no_content())
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contexts(body: Value) -> Vec<Option<String>> {
        invalid(Input::from_json(&body).unwrap_err()).errors.into_iter().map(|e| e.context).collect()
    }

    #[test]
    fn set_requests_are_checked_field_by_field() {
        let input = Input::from_json(&json!({
            "buildParentKeys": ["ci"],
            "refMatcher": {"id": "refs/heads/main", "type": {"id": "BRANCH"}},
            "exemptRefMatcher": {"type": {"id": "ANY_REF"}}
        }))
        .unwrap();
        assert_eq!(input.exempt_ref_matcher.map(|m| m.id), Some(ANY_REF_ID.to_owned()));
        assert_eq!(
            contexts(json!({"refMatcher": {"id": "x", "type": {"id": "BRANCH"}}})),
            [Some("buildParentKeys".into())]
        );
        let many: Vec<String> = (0..=MAX_KEYS).map(|i| format!("k{i}")).collect();
        assert_eq!(
            contexts(json!({"buildParentKeys": many, "refMatcher": {"id": "x", "type": {"id": "BRANCH"}}})),
            [Some("buildParentKeys".into())]
        );
        assert_eq!(
            contexts(json!({"buildParentKeys": ["ci", 3], "refMatcher": {"id": "x", "type": {"id": "TAG"}}})),
            [Some("buildParentKeys".into()), Some("refMatcher.type".into())]
        );
        assert_eq!(
            contexts(json!({"buildParentKeys": ["ci"], "refMatcher": {"type": {"id": "BRANCH"}}})),
            [Some("refMatcher.id".into())]
        );
        assert_eq!(contexts(json!([1])), [None]);
    }

    #[test]
    fn display_fields_follow_the_matcher_type() {
        let branch = Matcher { id: "refs/heads/main".into(), kind: "BRANCH" }.to_json();
        assert_eq!((branch["displayId"].as_str(), branch["type"]["name"].as_str()), (Some("main"), Some("Branch")));
        let category = Matcher { id: "FEATURE".into(), kind: "MODEL_CATEGORY" }.to_json();
        assert_eq!(category["displayId"].as_str(), Some("Feature"));
    }
}
