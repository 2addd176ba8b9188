//! The simulator's state as JSON, for tests and the control API: everything but passwords and
//! token values.

use serde_json::{Value, json};

use std::collections::{BTreeMap, HashMap};

use super::{
    seed::GlobalPermission,
    state::{MergeCheck, ProjectKind, State, UserId},
};

impl State {
    /// JSON dump of everything except passwords and token values.
    pub fn dump(&self) -> Value {
        let users: Vec<Value> = self
            .users
            .iter()
            .enumerate()
            .map(|(uid, u)| {
                let mut tokens: Vec<Value> = self
                    .tokens
                    .values()
                    .filter(|t| t.user == uid)
                    .map(|t| json!({"name": t.name, "permissions": t.cap.map(|c| c.describe())}))
                    .collect();
                tokens.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                json!({
                    "name": u.name,
                    "id": u.id,
                    "slug": u.slug,
                    "displayName": u.display_name,
                    "emailAddress": u.email,
                    "globalPermission": u.global.map(GlobalPermission::as_str),
                    "hasPassword": u.password.is_some(),
                    "failedLoginCount": u.failed_logins,
                    "captchaRequired": self.features.captcha_threshold > 0
                        && u.failed_logins >= self.features.captcha_threshold,
                    "tokens": tokens,
                })
            })
            .collect();
        let level_name = |project: bool, level: u8| {
            let names = if project {
                ["", "PROJECT_READ", "PROJECT_WRITE", "PROJECT_ADMIN"]
            } else {
                ["", "REPO_READ", "REPO_WRITE", "REPO_ADMIN"]
            };
            names.get(usize::from(level)).copied().unwrap_or("")
        };
        let perms = |map: &HashMap<UserId, u8>, project: bool| -> BTreeMap<String, &'static str> {
            map.iter()
                .filter_map(|(uid, level)| Some((self.users.get(*uid)?.name.clone(), level_name(project, *level))))
                .collect()
        };
        let projects: Vec<Value> = self
            .projects
            .values()
            .map(|p| {
                let repos: Vec<Value> = p
                    .repos
                    .values()
                    .map(|r| {
                        json!({
                            "slug": r.slug,
                            "id": r.id,
                            "name": r.name,
                            "description": r.description,
                            "state": r.state.as_str(),
                            "archived": r.archived,
                            "permissions": perms(&r.permissions, false),
                            "forkable": r.forkable,
                            "webhooks": r.webhooks
                                .values()
                                .map(|w| w.to_json(true, self.server.reports_webhook_scope()))
                                .collect::<Vec<_>>(),
                            "mergeChecks": r.merge_checks.values().map(MergeCheck::to_json).collect::<Vec<_>>(),
                            "requiredBuilds": r.required_builds.values().map(|c| c.to_json()).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                json!({
                    "key": p.key,
                    "id": p.id,
                    "name": p.name,
                    "description": p.description,
                    "public": p.public,
                    "type": match p.kind { ProjectKind::Normal => "NORMAL", ProjectKind::Personal(_) => "PERSONAL" },
                    "owner": match p.kind {
                        ProjectKind::Personal(uid) => self.users.get(uid).map(|u| Value::String(u.name.clone())),
                        ProjectKind::Normal => None,
                    },
                    "permissions": perms(&p.permissions, true),
                    "repositories": repos,
                })
            })
            .collect();
        json!({
            "server": {
                "version": self.server.version,
                "buildNumber": self.server.build_number().to_string(),
                "displayName": self.server.display_name,
                "baseUrl": self.base_url.as_deref(),
            },
            "features": {
                "requiredReports": self.features.required_reports,
                "basicAuthDisabled": self.features.basic_auth_disabled,
                "captchaThreshold": self.features.captcha_threshold,
                "ssh": self.features.ssh,
                "pageLimit": self.features.page_limit,
            },
            "rateLimit": match self.rate_limit {
                Some(rl) => json!({"enabled": true, "capacity": rl.capacity, "fillRate": rl.fill_rate}),
                None => json!({"enabled": false}),
            },
            "faults": {
                "latencyMs": u64::try_from(self.faults.latency.as_millis()).unwrap_or(u64::MAX),
                "errorRate": self.faults.error_rate,
                "dropRate": self.faults.drop_rate,
            },
            "users": users,
            "projects": projects,
            "requestCount": self.metrics.total,
            "uptimeMs": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}
