//! Repository webhooks (bitbucket-api.md §6). PUT replaces the whole webhook, GET returns the
//! secret in plain text, the create response is not trusted (read back instead), and a webhook
//! has no natural key, so callers match by name before creating.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Client, Error, Secret, http::Call, projects::not_found_under};

/// A webhook as Bitbucket stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// Numeric id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Delivery URL.
    pub url: String,
    /// Event keys, sorted.
    pub events: Vec<String>,
    /// Deliveries on.
    pub active: bool,
    /// TLS verification of the target; `None` on servers that do not report it.
    pub ssl_verification_required: Option<bool>,
    /// The signing secret, when the server returns it (most do, in plain text).
    pub secret: Option<Secret>,
    /// The other `configuration` entries, as strings.
    pub configuration: BTreeMap<String, String>,
}

/// What a webhook should be: the full object sent on create and on every update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Name.
    pub name: String,
    /// Delivery URL.
    pub url: String,
    /// Event keys.
    pub events: Vec<String>,
    /// Deliveries on.
    pub active: bool,
    /// Verify the target's TLS certificate.
    pub ssl_verification_required: bool,
    /// Signing secret.
    pub secret: Option<Secret>,
    /// Other `configuration` entries (such as a marker of who manages the webhook).
    pub configuration: BTreeMap<String, String>,
}

impl WebhookRequest {
    fn body(&self) -> Value {
        let mut configuration: serde_json::Map<String, Value> =
            self.configuration.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        if let Some(secret) = &self.secret {
            configuration.insert("secret".into(), Value::String(secret.expose().to_owned()));
        }
        json!({
            "name": self.name,
            "url": self.url,
            "events": self.events,
            "active": self.active,
            "sslVerificationRequired": self.ssl_verification_required,
            "configuration": configuration,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawWebhook {
    id: i64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    ssl_verification_required: Option<bool>,
    #[serde(default)]
    configuration: BTreeMap<String, Value>,
}

fn yes() -> bool {
    true
}

impl From<RawWebhook> for Webhook {
    fn from(raw: RawWebhook) -> Self {
        let mut secret = None;
        let mut configuration = BTreeMap::new();
        for (key, value) in raw.configuration {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            if key == "secret" {
                secret = Some(Secret::new(text));
            } else {
                configuration.insert(key, text);
            }
        }
        let mut events = raw.events;
        events.sort();
        Self {
            id: raw.id,
            name: raw.name,
            url: raw.url,
            events,
            active: raw.active,
            ssl_verification_required: raw.ssl_verification_required,
            secret,
            configuration,
        }
    }
}

fn segments<'a>(project: &'a str, slug: &'a str) -> Vec<&'a str> {
    vec!["rest", "api", "1.0", "projects", project, "repos", slug, "webhooks"]
}

/// A call on one webhook: `{verb} webhook {id} of {project}/{slug}`.
fn one_webhook(method: Method, endpoint: &'static str, project: &str, slug: &str, id: i64, verb: &str) -> Call {
    let id_text = id.to_string();
    let mut path = segments(project, slug);
    path.push(&id_text);
    Call::new(method, endpoint, &path, format!("{verb} webhook {id} of {project}/{slug} (needs REPO_ADMIN)"))
}

impl Client {
    /// Every webhook of a repository (needs REPO_ADMIN).
    pub async fn list_webhooks(&self, project: &str, slug: &str) -> Result<Vec<Webhook>, Error> {
        let raw: Vec<RawWebhook> = self
            .get_all_pages(
                || {
                    Call::new(
                        Method::GET,
                        "GET /rest/api/1.0/projects/{key}/repos/{slug}/webhooks",
                        &segments(project, slug),
                        format!("list the webhooks of {project}/{slug} (needs REPO_ADMIN)"),
                    )
                },
                |call, response| self.failure(call, response, || not_found_under(response, project, Some(slug))),
            )
            .await?;
        Ok(raw.into_iter().map(Webhook::from).collect())
    }

    /// One webhook by id.
    pub async fn get_webhook(&self, project: &str, slug: &str, id: i64) -> Result<Webhook, Error> {
        let call = one_webhook(
            Method::GET,
            "GET /rest/api/1.0/projects/{key}/repos/{slug}/webhooks/{id}",
            project,
            slug,
            id,
            "read",
        );
        let response = self.send(&call).await?;
        if response.status != StatusCode::OK {
            return Err(self.failure(&call, &response, || webhook_not_found(&response, project, slug, id)));
        }
        self.parse::<RawWebhook>(&call, &response).map(Webhook::from)
    }

    /// Creates a webhook and returns its id. Only the id is taken from the answer, which is
    /// unreliable about the secret; the next round's list shows the webhook as stored (reading it
    /// back here would cost a request per webhook that nobody uses). Not retried: a lost answer
    /// could mean it exists, so callers list and match by name first.
    pub async fn create_webhook(&self, project: &str, slug: &str, webhook: &WebhookRequest) -> Result<i64, Error> {
        let call = Call::new(
            Method::POST,
            "POST /rest/api/1.0/projects/{key}/repos/{slug}/webhooks",
            &segments(project, slug),
            format!("create a webhook on {project}/{slug} (needs REPO_ADMIN)"),
        )
        .json(webhook.body());
        let response = self.send(&call).await?;
        if !response.status.is_success() {
            return Err(self.failure(&call, &response, || not_found_under(&response, project, Some(slug))));
        }
        let created: RawWebhook = self.parse(&call, &response)?;
        Ok(created.id)
    }

    /// Replaces a webhook with `webhook` (Bitbucket's PUT is a full replacement).
    pub async fn update_webhook(
        &self,
        project: &str,
        slug: &str,
        id: i64,
        webhook: &WebhookRequest,
    ) -> Result<Webhook, Error> {
        let call = one_webhook(
            Method::PUT,
            "PUT /rest/api/1.0/projects/{key}/repos/{slug}/webhooks/{id}",
            project,
            slug,
            id,
            "update",
        )
        .json(webhook.body());
        let response = self.send(&call).await?;
        if !response.status.is_success() {
            return Err(self.failure(&call, &response, || webhook_not_found(&response, project, slug, id)));
        }
        self.parse::<RawWebhook>(&call, &response).map(Webhook::from)
    }

    /// Deletes a webhook; one that is already gone counts as deleted.
    pub async fn delete_webhook(&self, project: &str, slug: &str, id: i64) -> Result<(), Error> {
        let call = one_webhook(
            Method::DELETE,
            "DELETE /rest/api/1.0/projects/{key}/repos/{slug}/webhooks/{id}",
            project,
            slug,
            id,
            "delete",
        );
        let response = self.send(&call).await?;
        if response.status.is_success() {
            return Ok(());
        }
        match self.failure(&call, &response, || webhook_not_found(&response, project, slug, id)) {
            Error::NotFound { .. } => Ok(()),
            error => Err(error),
        }
    }
}

fn webhook_not_found(response: &super::http::Response, project: &str, slug: &str, id: i64) -> Error {
    let detail = response.error_detail();
    if detail.exception_is("NoSuchRepositoryException") || detail.exception_is("NoSuchProjectException") {
        not_found_under(response, project, Some(slug))
    } else {
        Error::NotFound { what: format!("webhook {id} of {project}/{slug}") }
    }
}
