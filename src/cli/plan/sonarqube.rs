//! The SonarQube side of `plan` and `apply`: the controllers' SonarQube rounds, once, over the
//! manifests. Each SonarQubeConfiguration is connected; each Bitbucket configuration with
//! `spec.sonarqube` keeps its DevOps Platform setting there; each binding with `spec.sonarqube`
//! keeps its repositories' projects bound through that setting.
//!
//! Without a cluster there is no status recording which version of the token Secret SonarQube
//! holds. The CLI sends the token when it creates the setting and when the setting's URL changes
//! (SonarQube wants it then), never otherwise: a plan with nothing to change stays that way, and
//! `apply` proves the token SonarQube holds with `validate`. The operator pushes a rotated token.
//! Nor is there a record of an earlier `almSettingKey`, so a new key is a new setting here (the
//! operator renames the old one).

use std::collections::HashMap;

use super::{Action, Change, Mode, ResourceResult, SettingTarget, SonarQubeTarget, Targets};
use crate::{
    api::binding::SonarQubeProject,
    bitbucket::{Secret, plain},
    plan::{
        reasons,
        sonarqube::{
            bindings::{DesiredBinding, ProjectAction, ProjectResult, RepositoryProject, plan_project, summarize},
            claims::{Claim, conflicts},
            connection::{connected, outcome_of},
            keys::project_key,
            setting::{DesiredSetting, RecordedSetting, SettingAction, plan_setting},
        },
        status::Outcome,
    },
    sonarqube::{Alm, Binding, BindingSupport, Client, Error, ServerInfo},
    sync::sonarqube::{
        SettingFailure, keep_setting as keep,
        projects::{self, ProjectWork, Route, observe_projects},
    },
};

/// A SonarQube the run connected to, and what it said about itself.
pub(super) struct Connected {
    client: Client,
    info: ServerInfo,
}

/// A configuration's SonarQube side that is in place (or, in a plan, would be): where, and
/// under which setting key its bindings bind.
pub(super) struct Side {
    sonarqube: usize,
    alm_setting: String,
}

/// Connects to a SonarQubeConfiguration as the operator's check does.
pub(super) async fn connect(target: &SonarQubeTarget) -> (ResourceResult, Option<Connected>) {
    let mut result = ResourceResult {
        id: target.id.clone(),
        outcome: Outcome::ready(reasons::CONNECTED, String::new()),
        facts: Vec::new(),
        changes: Vec::new(),
    };
    let settings = match &target.settings {
        Ok(settings) => settings.clone(),
        Err(error) => {
            result.outcome = Outcome::stalled(error.reason(), error.to_string());
            return (result, None);
        }
    };
    result.facts.push(format!("url: {}", settings.base_url));
    let reached = match Client::new(settings) {
        Ok(client) => client.server_info().await.map(|info| Connected { client, info }),
        Err(error) => Err(error),
    };
    match reached {
        Ok(reached) => {
            result.outcome = connected(&reached.info);
            (result, Some(reached))
        }
        Err(error) => {
            result.outcome = outcome_of(&error);
            (result, None)
        }
    }
}

/// Plans (or keeps) a configuration's DevOps Platform setting; records the change and any
/// failure in `result`, and returns the side its bindings bind through.
pub(super) async fn keep_setting(
    setting: &Result<SettingTarget, Outcome>,
    targets: &Targets,
    sonar: &[Option<Connected>],
    mode: Mode,
    result: &mut ResourceResult,
) -> Result<Side, Outcome> {
    let side = setting_round(setting, targets, sonar, mode, result).await;
    if let Err(outcome) = &side {
        result.outcome = outcome.clone();
    }
    side
}

async fn setting_round(
    setting: &Result<SettingTarget, Outcome>,
    targets: &Targets,
    sonar: &[Option<Connected>],
    mode: Mode,
    result: &mut ResourceResult,
) -> Result<Side, Outcome> {
    let target = setting.as_ref().map_err(Clone::clone)?;
    let id = targets.sonarqube.get(target.sonarqube).map(|s| s.id.clone());
    let shown = id.as_ref().map(ToString::to_string).unwrap_or_default();
    let Some(Some(connected)) = sonar.get(target.sonarqube) else {
        return Err(Outcome::stalled(reasons::SONARQUBE_NOT_READY, format!("{shown} cannot connect (see above)")));
    };
    let desired = &target.desired;
    result.facts.push(format!("SonarQube setting: {} in {shown}", desired.key));
    let place = format!(
        "SonarQube {}",
        id.as_ref()
            .map(|id| format!("{}/{}", id.namespace.as_deref().unwrap_or_default(), id.name))
            .unwrap_or_default()
    );
    // What SonarQube holds is taken to be what the spec asks, token included (see the module).
    let recorded =
        RecordedSetting { key: desired.key.clone(), url: desired.url.clone(), token: Some(desired.token.clone()) };
    let action = match mode {
        Mode::Plan => {
            let listed = connected.client.list_definitions().await.map_err(|e| outcome_of(&e))?;
            let action = plan_setting(desired, &listed, Some(&recorded));
            if let SettingAction::KeyTaken { .. } | SettingAction::RenameBlocked { .. } = &action {
                return Err(refused(&action, &desired.key));
            }
            action
        }
        Mode::Apply => match keep(&connected.client, desired, &target.token, Some(&recorded), true).await {
            Ok(kept) => {
                let bound = kept.bound_projects.map(|n| format!(", {n} project(s) bound to it")).unwrap_or_default();
                result.facts.push(format!("SonarQube validated the setting{bound}"));
                kept.action
            }
            Err(SettingFailure::Refused(action)) => return Err(refused(&action, &desired.key)),
            Err(SettingFailure::Failed(error)) => return Err(failed(&error)),
            // Written, then refused by SonarQube's own check: say both.
            Err(SettingFailure::Unvalidated { action, error }) => {
                result.changes.extend(setting_change(&place, desired, &action));
                return Err(failed(&error));
            }
        },
    };
    result.changes.extend(setting_change(&place, desired, &action));
    Ok(Side { sonarqube: target.sonarqube, alm_setting: desired.key.clone() })
}

/// The line a change of the setting shows (never the token, only its Secret's name).
fn setting_change(place: &str, desired: &DesiredSetting, action: &SettingAction) -> Option<Change> {
    let (action, detail) = match action {
        SettingAction::Create { .. } => {
            (Action::Create, format!("Bitbucket {} with the token of Secret {}", desired.url, desired.token.name))
        }
        SettingAction::Update { key, new_key, send_token, why } => {
            let mut detail = match new_key {
                Some(new_key) => format!("rename {key} to {new_key}"),
                None => format!("{} differ", why.join(", ")),
            };
            detail.push_str(&format!("; Bitbucket {}", desired.url));
            if *send_token {
                detail.push_str(&format!(", with the token of Secret {}", desired.token.name));
            }
            (Action::Update, detail)
        }
        SettingAction::None | SettingAction::KeyTaken { .. } | SettingAction::RenameBlocked { .. } => return None,
    };
    Some(Change {
        repository: place.to_owned(),
        action,
        object: "SonarQube setting",
        name: desired.key.clone(),
        detail,
    })
}

/// Why the setting cannot be made as asked: the user's to resolve.
fn refused(action: &SettingAction, key: &str) -> Outcome {
    let message = match action {
        SettingAction::KeyTaken { alm } => format!(
            "SonarQube's DevOps Platform setting key {key} belongs to a {} setting (keys are unique across platforms); choose another spec.sonarqube.almSettingKey or remove that setting",
            alm.as_str()
        ),
        SettingAction::RenameBlocked { from } => format!(
            "cannot rename SonarQube's setting {from} to {key}: a Bitbucket setting {key} exists already; remove one of them in SonarQube, or set spec.sonarqube.almSettingKey back to {from}"
        ),
        _ => format!("SonarQube's DevOps Platform setting {key} cannot be kept"),
    };
    Outcome::stalled(reasons::ALM_SETTING_KEY_TAKEN, message)
}

/// A failed call while keeping the setting, with the reasons the controller gives.
fn failed(error: &Error) -> Outcome {
    let outcome = outcome_of(error);
    let reason = match error {
        Error::EditionLimit { .. } => reasons::EDITION_LIMIT,
        Error::KeyTaken { .. } => reasons::ALM_SETTING_KEY_TAKEN,
        Error::ValidationFailed { .. } => reasons::VALIDATION_FAILED,
        _ if outcome.reason == reasons::UNREACHABLE || outcome.reason == reasons::RATE_LIMITED => outcome.reason,
        _ => reasons::SONARQUBE_INTEGRATION_FAILED,
    };
    Outcome { reason, ..outcome }
}

/// One binding's SonarQube work: its repositories' project keys, read before any binding runs
/// so that claims between bindings are known.
struct Entry<'a> {
    index: usize,
    spec: &'a SonarQubeProject,
    side: &'a Side,
    token: Option<&'a Secret>,
    keys: Vec<(String, String, Result<String, String>)>,
}

/// Plans (or keeps) every binding's SonarQube projects; `sides` are the configurations' sides,
/// `repositories` each binding's bound repositories (slug, name); records into `results`.
pub(super) async fn keep_projects(
    targets: &Targets,
    sides: &[Option<Result<Side, Outcome>>],
    sonar: &[Option<Connected>],
    repositories: &[Option<Vec<(String, String)>>],
    mode: Mode,
    results: &mut [ResourceResult],
) {
    let mut entries = Vec::new();
    for (index, target) in targets.bindings.iter().enumerate() {
        // Without a SonarQube side on the configuration, spec.sonarqube only names a report key.
        let (Some(spec), Ok(configuration)) = (&target.spec.sonarqube, &target.configuration) else { continue };
        let (Some(Some(side)), Some(result), Some(Some(repositories))) =
            (sides.get(*configuration), results.get_mut(index), repositories.get(index))
        else {
            continue;
        };
        if result.failed() {
            continue;
        }
        let side = match side {
            Ok(side) => side,
            Err(_) => {
                let name = targets.configurations.get(*configuration).map(|c| c.id.to_string()).unwrap_or_default();
                result.outcome = Outcome::stalled(
                    reasons::SONARQUBE_NOT_READY,
                    format!("{name} cannot keep its SonarQube setting (see above)"),
                );
                continue;
            }
        };
        let token = targets
            .configurations
            .get(*configuration)
            .and_then(|c| c.sonarqube.as_ref())
            .and_then(|s| s.as_ref().ok())
            .map(|s| &s.token);
        let keys = repositories
            .iter()
            .map(|(slug, name)| {
                let key = project_key(spec, &target.spec.project_key, slug).map_err(|e| e.to_string());
                (slug.clone(), name.clone(), key)
            })
            .collect();
        entries.push(Entry { index, spec, side, token, keys });
    }
    // Files have no creation times: the binding read first holds a project two of them claim,
    // as it would when the files are applied in order.
    let claims: Vec<(usize, Claim)> = entries
        .iter()
        .map(|e| {
            let binding = &targets.bindings[e.index].id;
            let claim = Claim {
                binding: format!("{}/{}", binding.namespace.as_deref().unwrap_or_default(), binding.name),
                created: format!("{:08}", e.index),
                projects: e.keys.iter().filter_map(|(_, _, key)| key.as_ref().ok().cloned()).collect(),
            };
            (e.side.sonarqube, claim)
        })
        .collect();
    for entry in &entries {
        let same: Vec<Claim> =
            claims.iter().filter(|(sonarqube, _)| *sonarqube == entry.side.sonarqube).map(|(_, c)| c.clone()).collect();
        let me =
            claims.iter().find(|(_, c)| c.created == format!("{:08}", entry.index)).map(|(_, c)| c.binding.clone());
        let lost: HashMap<String, String> =
            me.and_then(|me| conflicts(&same).remove(&me)).unwrap_or_default().into_iter().collect();
        let (Some(result), Some(Some(connected))) = (results.get_mut(entry.index), sonar.get(entry.side.sonarqube))
        else {
            continue;
        };
        binding_round(targets, entry, connected, &lost, mode, result).await;
    }
}

async fn binding_round(
    targets: &Targets,
    entry: &Entry<'_>,
    connected: &Connected,
    lost: &HashMap<String, String>,
    mode: Mode,
    result: &mut ResourceResult,
) {
    let binding = &targets.bindings[entry.index];
    let shown_sonar = targets.sonarqube.get(entry.side.sonarqube).map(|s| s.id.to_string()).unwrap_or_default();
    let keys_text =
        entry.spec.project_key.clone().or_else(|| entry.spec.project_key_template.clone()).unwrap_or_default();
    result.facts.push(format!(
        "SonarQube projects: {keys_text} through setting {} in {shown_sonar}{}",
        entry.side.alm_setting,
        if entry.spec.create_projects { ", created when missing" } else { "" }
    ));
    let route = match route(binding.spec.monorepo, &connected.info, entry.token, &shown_sonar) {
        Ok(route) => route,
        Err(outcome) => {
            result.outcome = outcome;
            return;
        }
    };
    let project = &binding.spec.project_key;
    let mut outcomes = Vec::new();
    let mut work = Vec::new();
    for (slug, name, key) in &entry.keys {
        match key {
            Ok(key) if lost.contains_key(key) => outcomes.push(RepositoryProject {
                slug: slug.clone(),
                project: key.clone(),
                result: ProjectResult::Claimed { by: lost.get(key).cloned().unwrap_or_default() },
            }),
            Ok(key) => work.push(ProjectWork {
                slug: slug.clone(),
                name: name.clone(),
                desired: DesiredBinding {
                    project: key.clone(),
                    alm_setting: entry.side.alm_setting.clone(),
                    repository: project.clone(),
                    slug: slug.clone(),
                    monorepo: binding.spec.monorepo,
                },
            }),
            Err(why) => outcomes.push(RepositoryProject {
                slug: slug.clone(),
                project: String::new(),
                result: ProjectResult::InvalidKey(why.clone()),
            }),
        }
    }
    let mut changes = Vec::new();
    match mode {
        Mode::Plan => {
            for (item, observed) in observe_projects(&connected.client, work).await {
                let planned = observed.map(|o| plan_project(&item.desired, &o, entry.spec.create_projects, &item.name));
                let outcome = match planned {
                    Err(error) => ProjectResult::Failed(error),
                    Ok(ProjectAction::Missing) => ProjectResult::Missing,
                    Ok(ProjectAction::None) => ProjectResult::InSync,
                    // Pending: once applied it is bound; the line says what changes.
                    Ok(ProjectAction::Bind { was }) => {
                        let detail = bind_detail(mode, &item.desired, was.as_ref());
                        changes.push(project_change(&item.desired, Action::Update, detail));
                        ProjectResult::InSync
                    }
                    Ok(ProjectAction::CreateAndBind { .. }) => {
                        changes.push(project_change(&item.desired, Action::Create, create_detail(mode, &item.desired)));
                        ProjectResult::InSync
                    }
                };
                outcomes.push(RepositoryProject { slug: item.slug, project: item.desired.project, result: outcome });
            }
        }
        Mode::Apply => {
            let wanted: HashMap<String, DesiredBinding> =
                work.iter().map(|w| (w.desired.project.clone(), w.desired.clone())).collect();
            for done in projects::keep_projects(&connected.client, &route, work, entry.spec.create_projects).await {
                if let (ProjectResult::Bound { created, was }, Some(desired)) =
                    (&done.result, wanted.get(&done.project))
                {
                    changes.push(match created {
                        true => project_change(desired, Action::Create, create_detail(mode, desired)),
                        false => project_change(desired, Action::Update, bind_detail(mode, desired, was.as_ref())),
                    });
                }
                outcomes.push(done);
            }
        }
    }
    for outcome in &outcomes {
        if let Some(detail) = blocked_detail(&outcome.result) {
            let name = if outcome.project.is_empty() { "(no valid key)".to_owned() } else { outcome.project.clone() };
            changes.push(Change {
                repository: outcome.slug.clone(),
                action: Action::Blocked,
                object: "SonarQube project",
                name,
                detail,
            });
        }
    }
    result.changes.extend(changes);
    // One block per repository, its webhooks first (the sort is stable).
    result.changes.sort_by(|a, b| a.repository.cmp(&b.repository));
    let (status, outcome, _) = summarize(&outcomes, &entry.side.alm_setting, &keys_text, 0);
    if mode == Mode::Apply {
        result.facts.push(format!("SonarQube projects bound: {} of {}", status.bound_count, status.project_count));
    }
    if let Some(outcome) = outcome {
        result.outcome = outcome;
    }
}

/// How this SonarQube binds, as the controller decides it from the edition.
fn route(monorepo: bool, info: &ServerInfo, token: Option<&Secret>, shown: &str) -> Result<Route, Outcome> {
    let edition = info.edition.as_str();
    if monorepo && !info.capabilities.monorepo {
        return Err(Outcome::stalled(
            reasons::EDITION_LIMIT,
            format!(
                "monorepo: true needs monorepo support, which SonarQube {edition} lacks (Enterprise Edition has it): bind one SonarQube project per repository, or upgrade"
            ),
        ));
    }
    match (&info.capabilities.bindings, token) {
        (BindingSupport::SetBitbucketBinding, _) => Ok(Route::SetBinding),
        (BindingSupport::BoundProjects, Some(token)) => Ok(Route::BoundProjects { pat: token.clone() }),
        (BindingSupport::BoundProjects, None) => Err(Outcome::stalled(
            reasons::SONARQUBE_INTEGRATION_FAILED,
            "the configuration's spec.sonarqube.tokenSecretRef cannot be read (see above)",
        )),
        (BindingSupport::None, _) => Err(Outcome::stalled(
            reasons::EDITION_LIMIT,
            format!(
                "SonarQube {edition} of {shown} cannot bind projects over its API; bind them in its UI, or remove spec.sonarqube"
            ),
        )),
    }
}

fn project_change(desired: &DesiredBinding, action: Action, detail: String) -> Change {
    Change {
        repository: desired.slug.clone(),
        action,
        object: "SonarQube project",
        name: desired.project.clone(),
        detail,
    }
}

fn target_text(desired: &DesiredBinding) -> String {
    let monorepo = if desired.monorepo { " (monorepo)" } else { "" };
    format!("{}/{} through setting {}{monorepo}", desired.repository, desired.slug, desired.alm_setting)
}

fn create_detail(mode: Mode, desired: &DesiredBinding) -> String {
    let verb = if mode == Mode::Plan { "create and bind to" } else { "bound to" };
    format!("{verb} {}", target_text(desired))
}

fn bind_detail(mode: Mode, desired: &DesiredBinding, was: Option<&Binding>) -> String {
    let verb = if mode == Mode::Plan { "bind to" } else { "bound to" };
    format!("{verb} {} (was: {})", target_text(desired), describe(was))
}

/// A binding SonarQube holds, in words; its texts are SonarQube's, so only plain ones are shown.
fn describe(binding: Option<&Binding>) -> String {
    let Some(binding) = binding else { return "not bound".to_owned() };
    let show = |text: Option<&str>| {
        text.and_then(|t| {
            plain(t, 200, |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | ':' | ' '))
        })
        .unwrap_or_else(|| "(not shown)".to_owned())
    };
    let key = show(Some(&binding.key));
    match binding.alm {
        Alm::Bitbucket => format!(
            "{}/{} through setting {key}{}",
            show(binding.repository.as_deref()),
            show(binding.slug.as_deref()),
            if binding.monorepo { " (monorepo)" } else { "" }
        ),
        ref other => format!("bound through the {} setting {key}", other.as_str()),
    }
}

/// What a project that cannot be bound shows, and what to do.
fn blocked_detail(result: &ProjectResult) -> Option<String> {
    Some(match result {
        ProjectResult::InSync | ProjectResult::Bound { .. } => return None,
        ProjectResult::Missing => {
            "SonarQube has no such project: create it, or set sonarqube.createProjects: true".to_owned()
        }
        ProjectResult::Claimed { by } => {
            format!("ProjectBinding {by}, read first, binds it: give one of them another sonarqube key")
        }
        ProjectResult::InvalidKey(why) => why.clone(),
        ProjectResult::Failed(error) => outcome_of(error).message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(repository: &str, slug: &str) -> Binding {
        Binding {
            alm: Alm::Bitbucket,
            key: "bitbucket".into(),
            repository: Some(repository.into()),
            slug: Some(slug.into()),
            url: None,
            monorepo: false,
        }
    }

    #[test]
    fn what_a_project_was_bound_to_shows_only_plain_server_text() {
        assert_eq!(describe(Some(&bound("PLAT", "auth-service"))), "PLAT/auth-service through setting bitbucket");
        let shown = describe(Some(&bound("PLAT", "x\u{1b}[2Jfake\nline")));
        assert!(shown.contains("PLAT/(not shown)") && !shown.contains('\u{1b}') && !shown.contains('\n'), "{shown}");
        assert_eq!(describe(None), "not bound");
    }

    #[test]
    fn a_setting_line_names_the_secret_and_a_refusal_names_the_field() {
        let desired = DesiredSetting {
            key: "bitbucket".into(),
            url: "https://bitbucket.example.com".into(),
            token: crate::api::configuration::SecretVersion {
                name: "sonarqube-bitbucket-token".into(),
                uid: None,
                resource_version: None,
            },
        };
        let line = setting_change("SonarQube team/sonarqube", &desired, &SettingAction::Create { recreated: false });
        let line = line.map(|c| (c.action, c.detail));
        assert_eq!(
            line,
            Some((
                Action::Create,
                "Bitbucket https://bitbucket.example.com with the token of Secret sonarqube-bitbucket-token".to_owned()
            ))
        );
        assert!(setting_change("", &desired, &SettingAction::None).is_none());
        let refusal = refused(&SettingAction::KeyTaken { alm: Alm::GitHub }, "bitbucket");
        assert!(refusal.message.contains("github") && refusal.message.contains("spec.sonarqube.almSettingKey"));
    }
}
