//! Repository webhooks (§6): list, create, read, full-replace update, delete. All need REPO_ADMIN.

use axum::{
    Extension,
    body::Bytes,
    extract::{Path, RawQuery, State as AxState, rejection::PathRejection},
    http::HeaderMap,
    response::Response,
};
use serde_json::{Map, Value, json};

use super::{
    Ctx, Simulator,
    repositories::require,
    respond::{ApiError, finish, json_body, no_content, ok, page, page_params, params},
    state::{Credentials, Webhook, dedup, now_ms},
};

const NO_SUCH_WEBHOOK: &str = "com.atlassian.bitbucket.webhook.NoSuchWebhookException";

/// Event keys a repository webhook accepts (§6.3).
pub(crate) const KNOWN_EVENTS: &[&str] = &[
    "repo:refs_changed",
    "repo:modified",
    "repo:forked",
    "repo:comment:added",
    "repo:comment:edited",
    "repo:comment:deleted",
    "repo:secret_detected",
    "mirror:repo_synchronized",
    "pr:opened",
    "pr:from_ref_updated",
    "pr:modified",
    "pr:reviewer:updated",
    "pr:reviewer:approved",
    "pr:reviewer:unapproved",
    "pr:reviewer:needs_work",
    "pr:reviewer:changes_requested",
    "pr:merged",
    "pr:declined",
    "pr:deleted",
    "pr:comment:added",
    "pr:comment:edited",
    "pr:comment:deleted",
];

fn valid_url(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !host.starts_with(':') && !r.chars().any(char::is_whitespace)
    })
}

/// The name/url/events rules, one `(field, message)` per broken field.
pub(crate) fn field_errors(name: &str, url: &str, events: &[String]) -> Vec<(&'static str, String)> {
    let mut errors = Vec::new();
    if name.trim().is_empty() || name.chars().count() > 255 {
        errors.push(("name", "A webhook name is required and must be at most 255 characters long.".to_owned()));
    }
    if !valid_url(url) {
        errors.push(("url", "The URL must be a valid http:// or https:// URL.".to_owned()));
    }
    if events.is_empty() {
        errors.push(("events", "At least one event is required.".to_owned()));
    } else if let Some(unknown) = events.iter().find(|e| !KNOWN_EVENTS.contains(&e.as_str())) {
        errors.push(("events", format!("{unknown:?} is not a known webhook event.")));
    }
    errors
}

/// The first broken field, for the seed.
pub(crate) fn validate_fields(name: &str, url: &str, events: &[String]) -> Option<(&'static str, String)> {
    field_errors(name, url, events).into_iter().next()
}

/// A validated request body.
#[derive(Debug)]
struct Input {
    name: String,
    url: String,
    events: Vec<String>,
    active: bool,
    configuration: Map<String, Value>,
    /// `(username, password)`.
    credentials: Option<(String, Option<String>)>,
    ssl_verification_required: bool,
}

fn parse(body: &Value) -> Result<Input, ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::new(400, "The request body must be a JSON object.", None));
    };
    let mut errors: Vec<(String, String)> = Vec::new();
    let string = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let name = string("name");
    let url = string("url");
    let events: Vec<String> = match object.get("events") {
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(s) => out.push(s.to_owned()),
                    None => out.push(item.to_string()),
                }
            }
            out
        }
        _ => Vec::new(),
    };
    for (field, message) in field_errors(&name, &url, &events) {
        errors.push((field.to_owned(), message));
    }
    let boolean = |key: &str, errors: &mut Vec<(String, String)>| match object.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push((key.to_owned(), format!("{key} must be true or false.")));
            true
        }
    };
    let active = boolean("active", &mut errors);
    let configuration = match object.get("configuration") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            errors.push(("configuration".into(), "configuration must be an object.".into()));
            Map::new()
        }
    };
    let credentials = match object.get("credentials") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => match (map.get("username"), map.get("password")) {
            (Some(Value::String(user)), None | Some(Value::Null)) => Some((user.clone(), None)),
            (Some(Value::String(user)), Some(Value::String(password))) => Some((user.clone(), Some(password.clone()))),
            _ => {
                errors.push(("credentials".into(), "credentials need a username and an optional password.".into()));
                None
            }
        },
        Some(_) => {
            errors.push(("credentials".into(), "credentials must be an object.".into()));
            None
        }
    };
    let ssl_verification_required = boolean("sslVerificationRequired", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(Input { name, url, events: dedup(&events), active, configuration, credentials, ssl_verification_required })
}

impl Webhook {
    /// The wire object. `with_secret = false` is the create response (no `configuration.secret`);
    /// `scoped` adds what newer servers report (`scopeType`, `sslVerificationRequired`).
    pub fn to_json(&self, with_secret: bool, scoped: bool) -> Value {
        let mut configuration = self.configuration.clone();
        if !with_secret {
            configuration.remove("secret");
        }
        let mut object = json!({
            "id": self.id,
            "name": self.name,
            "createdDate": self.created,
            "updatedDate": self.updated,
            "events": self.events,
            "configuration": configuration,
            "url": self.url,
            "active": self.active,
        });
        if let Some(map) = object.as_object_mut() {
            if scoped {
                map.insert("scopeType".into(), json!("repository"));
                map.insert("sslVerificationRequired".into(), json!(self.ssl_verification_required));
            }
            if let Some(credentials) = &self.credentials {
                map.insert("credentials".into(), json!({"username": credentials.username}));
            }
        }
        object
    }
}

fn no_such_webhook(id: &str) -> ApiError {
    ApiError::new(404, format!("No webhook with id {id} exists."), Some(NO_SUCH_WEBHOOK))
}

type RepoPath = Result<Path<(String, String)>, PathRejection>;
type HookPath = Result<Path<(String, String, String)>, PathRejection>;

/// `GET .../webhooks` (paged, by id; `event` filters, repeatable).
pub(crate) async fn list(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    path: RepoPath,
    RawQuery(query): RawQuery,
) -> Response {
    finish((|| {
        let (key, slug) = params(path)?;
        let events: Vec<String> = super::respond::query_pairs(query.as_deref().unwrap_or(""))
            .into_iter()
            .filter(|(k, _)| k == "event")
            .map(|(_, v)| v)
            .collect();
        let state = sim.lock();
        let (start, limit) = page_params(query.as_deref(), state.features.page_limit);
        let scoped = state.server.reports_webhook_scope();
        require(&state, &ctx.caller, &key, &slug, 3, false)?;
        let (_, repo) = super::repositories::find(&state, &key, &slug, false)?;
        let hooks: Vec<&Webhook> = repo
            .webhooks
            .values()
            .filter(|w| events.is_empty() || w.events.iter().any(|e| events.contains(e)))
            .collect();
        Ok(ok(&page(&hooks, start, limit, |w| w.to_json(true, scoped))))
    })())
}

/// `POST .../webhooks`: 200 with the new webhook, never echoing `configuration.secret`.
pub(crate) async fn create(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    path: RepoPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    finish((|| {
        let (key, slug) = params(path)?;
        let value = json_body(&headers, &body)?;
        let mut state = sim.lock();
        require(&state, &ctx.caller, &key, &slug, 3, false)?;
        let input = parse(&value)?;
        let id = state.next_webhook_id;
        state.next_webhook_id += 1;
        let now = now_ms();
        let hook = Webhook {
            id,
            name: input.name,
            url: input.url,
            events: input.events,
            active: input.active,
            configuration: input.configuration,
            credentials: input.credentials.map(|(username, password)| Credentials { username, password }),
            ssl_verification_required: input.ssl_verification_required,
            created: now,
            updated: now,
        };
        let body = hook.to_json(false, state.server.reports_webhook_scope());
        let repo = state.repo_mut(&key, &slug).ok_or_else(|| ApiError::no_such_repository(&key, &slug))?;
        repo.webhooks.insert(id, hook);
        Ok(ok(&body))
    })())
}

/// `GET .../webhooks/{id}`: with `configuration.secret` in plain text.
pub(crate) async fn get(AxState(sim): AxState<Simulator>, Extension(ctx): Extension<Ctx>, path: HookPath) -> Response {
    finish((|| {
        let (key, slug, id) = params(path)?;
        let state = sim.lock();
        require(&state, &ctx.caller, &key, &slug, 3, false)?;
        let (_, repo) = super::repositories::find(&state, &key, &slug, false)?;
        let hook = id.parse::<i64>().ok().and_then(|n| repo.webhooks.get(&n)).ok_or_else(|| no_such_webhook(&id))?;
        Ok(ok(&hook.to_json(true, state.server.reports_webhook_scope())))
    })())
}

/// `PUT .../webhooks/{id}`: full replacement (omitted `configuration` clears the secret).
pub(crate) async fn update(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    path: HookPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    finish((|| {
        let (key, slug, id) = params(path)?;
        let value = json_body(&headers, &body)?;
        let mut state = sim.lock();
        require(&state, &ctx.caller, &key, &slug, 3, false)?;
        let scoped = state.server.reports_webhook_scope();
        let repo = state.repo_mut(&key, &slug).ok_or_else(|| ApiError::no_such_repository(&key, &slug))?;
        let hook =
            id.parse::<i64>().ok().and_then(|n| repo.webhooks.get_mut(&n)).ok_or_else(|| no_such_webhook(&id))?;
        let input = parse(&value)?;
        let old_password = hook.credentials.as_ref().and_then(|c| c.password.clone());
        hook.name = input.name;
        hook.url = input.url;
        hook.events = input.events;
        hook.active = input.active;
        hook.configuration = input.configuration;
        hook.credentials =
            input.credentials.map(|(username, password)| Credentials { username, password: password.or(old_password) });
        hook.ssl_verification_required = input.ssl_verification_required;
        hook.updated = now_ms().max(hook.created);
        Ok(ok(&hook.to_json(true, scoped)))
    })())
}

/// `DELETE .../webhooks/{id}`: 204, 404 when absent.
pub(crate) async fn delete(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    path: HookPath,
) -> Response {
    finish((|| {
        let (key, slug, id) = params(path)?;
        let mut state = sim.lock();
        require(&state, &ctx.caller, &key, &slug, 3, false)?;
        let repo = state.repo_mut(&key, &slug).ok_or_else(|| ApiError::no_such_repository(&key, &slug))?;
        id.parse::<i64>().ok().and_then(|n| repo.webhooks.remove(&n)).ok_or_else(|| no_such_webhook(&id))?;
        Ok(no_content())
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(valid_url("https://ci/h"));
        assert!(valid_url("http://127.0.0.1:8080/hook?x=1"));
        assert!(!valid_url("ftp://x"));
        assert!(!valid_url("https://"));
        assert!(!valid_url("https:///path"));
        assert!(!valid_url("http://a b"));
        assert!(!valid_url("not a url"));
    }

    #[test]
    fn bodies() {
        let ok = parse(&serde_json::json!({
            "name": "n", "url": "https://x", "events": ["pr:opened", "pr:opened", "repo:refs_changed"],
            "configuration": {"secret": "s", "createdBy": "me"}, "credentials": {"username": "u"}
        }))
        .unwrap();
        assert_eq!(ok.events, vec!["pr:opened".to_owned(), "repo:refs_changed".to_owned()]);
        assert!(ok.active && ok.ssl_verification_required);
        assert_eq!(ok.credentials, Some(("u".to_owned(), None)));
        let bad = parse(&serde_json::json!({"name": "", "url": "x", "events": [], "active": "yes"})).unwrap_err();
        let contexts: Vec<Option<String>> = bad.errors.iter().map(|e| e.context.clone()).collect();
        assert_eq!(
            contexts,
            vec![Some("name".into()), Some("url".into()), Some("events".into()), Some("active".into())]
        );
        assert_eq!(bad.status, 400);
        let unknown =
            parse(&serde_json::json!({"name": "n", "url": "http://x", "events": ["repo:created", 3]})).unwrap_err();
        assert_eq!(unknown.errors[0].context.as_deref(), Some("events"));
        assert_eq!(parse(&serde_json::json!([1])).unwrap_err().errors[0].context, None);
    }
}
