//! `check`: the connection check of each configuration, in plain words.

use serde_json::{Value, json};

use crate::{
    bitbucket::{Client, ClientConfig, ServerIdentity},
    plan::{reasons, status::Outcome},
};

use super::plan::ResourceId;

/// The result of one check.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// Which configuration (or the URL given on the command line).
    pub id: String,
    /// The URL checked.
    pub url: String,
    /// What was found, when the check passed.
    pub identity: Option<ServerIdentity>,
    /// The verdict: `Connected`, or the reason and what to do.
    pub outcome: Outcome,
}

impl CheckResult {
    /// Whether the check passed.
    pub fn ok(&self) -> bool {
        self.outcome.reason == reasons::CONNECTED
    }
}

/// Checks one configuration's settings (or why it has none).
pub async fn check(id: &ResourceId, settings: Result<ClientConfig, Outcome>) -> CheckResult {
    let url = settings.as_ref().map(|s| s.base_url.clone()).unwrap_or_default();
    check_named(id.to_string(), url, settings).await
}

/// Checks settings under a display name.
pub async fn check_named(id: String, url: String, settings: Result<ClientConfig, Outcome>) -> CheckResult {
    let mut result = CheckResult { id, url, identity: None, outcome: Outcome::ready(reasons::CONNECTED, "") };
    let settings = match settings {
        Ok(settings) => settings,
        Err(outcome) => {
            result.outcome = outcome;
            return result;
        }
    };
    let client = match Client::new(settings) {
        Ok(client) => client,
        Err(error) => {
            result.outcome = Outcome::from_error(&error);
            return result;
        }
    };
    match client.verify_connection().await {
        Ok(identity) => {
            result.outcome = Outcome::ready(
                reasons::CONNECTED,
                format!("connected as {} to Bitbucket {}", identity.username, identity.version_text),
            );
            result.identity = Some(identity);
        }
        Err(error) => result.outcome = Outcome::from_error(&error),
    }
    result
}

/// People's text.
pub fn render_text(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for result in results {
        out.push_str(&format!("{}\n", result.id));
        if !result.url.is_empty() {
            out.push_str(&format!("    url:          {}\n", result.url));
        }
        if let Some(identity) = &result.identity {
            let build = identity.build_number.as_deref().map(|b| format!(" (build {b})")).unwrap_or_default();
            out.push_str(&format!(
                "    server:       {} {}{build}\n",
                identity.display_name.as_deref().unwrap_or("Bitbucket"),
                identity.version_text
            ));
            out.push_str(&format!("    user:         {}\n", identity.username));
            out.push_str(&format!("    capabilities: {}\n", capabilities(identity).join(", ")));
        }
        if result.ok() {
            out.push_str(&format!("    OK: {}\n", result.outcome.message));
        } else {
            out.push_str(&format!("    FAILED ({}): {}\n", result.outcome.reason, result.outcome.message));
        }
    }
    out
}

fn capabilities(identity: &ServerIdentity) -> Vec<&'static str> {
    let mut list = Vec::new();
    if identity.capabilities.webhooks {
        list.push("webhooks");
    }
    if identity.capabilities.code_insights {
        list.push("codeInsights");
    }
    if list.is_empty() {
        list.push("none announced");
    }
    list
}

/// Machines' JSON: one object per configuration.
pub fn render_json(results: &[CheckResult]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|r| {
                json!({
                    "name": r.id,
                    "url": r.url,
                    "ok": r.ok(),
                    "reason": r.outcome.reason,
                    "message": r.outcome.message,
                    "server": r.identity.as_ref().map(|i| json!({
                        "version": i.version_text,
                        "buildNumber": i.build_number,
                        "displayName": i.display_name,
                    })),
                    "authenticatedAs": r.identity.as_ref().map(|i| i.username.clone()),
                    "capabilities": r.identity.as_ref().map(capabilities).unwrap_or_default(),
                })
            })
            .collect(),
    )
}
