//! The SonarQube side of a Bitbucket configuration (`spec.sonarqube`): the DevOps Platform
//! setting SonarQube keeps for this Bitbucket, checked after the Bitbucket connection in the
//! same round. A failure here leaves the Bitbucket connection usable: the configuration is not
//! Ready, with a reason of [`crate::plan::sonarqube::SONARQUBE_SIDE`] that its bindings pass.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, runtime::reflector::ObjectRef};

use crate::{
    api::{
        ConfigurationStatus, SonarQubeConfiguration,
        conditions::{READY, STALLED, find},
        configuration::SecretVersion,
        sonarqube::SonarQubeIntegrationStatus,
    },
    bitbucket,
    plan::{
        connection::{SecretData, labelled, single_line},
        reasons,
        sonarqube::setting::{DesiredSetting, RecordedSetting, SettingAction},
        status::Outcome,
    },
    sonarqube,
    sync::sonarqube::{SettingFailure, keep_setting},
};

use super::{configuration::ConfigurationObject, context::Context, error::Error, reconcile::Notice, status};

/// What the SonarQube side came to.
pub(super) struct Integrated {
    /// The record for `status.sonarqube`.
    pub status: Option<SonarQubeIntegrationStatus>,
    /// Why it is not as the spec asks, with the SonarQube error when it is worth a retry.
    pub failure: Option<(Outcome, Option<sonarqube::Error>)>,
    /// Events about what changed.
    pub notices: Vec<Notice>,
}

/// Keeps the setting of a configuration whose Bitbucket connection was just proven.
pub(super) async fn integrate<K: ConfigurationObject>(
    ctx: &Context,
    object: &K,
    previous: Option<&ConfigurationStatus>,
    interval: Duration,
) -> Result<Integrated, Error> {
    let Some(block) = &object.connection().sonarqube else {
        return Ok(Integrated { status: None, failure: None, notices: Vec::new() });
    };
    let namespace = object.secrets_namespace(ctx);
    let name = &block.configuration_ref.name;
    let configuration = format!("{namespace}/{name}");
    // A record made in another SonarQube (configurationRef changed) says nothing about this
    // one: that setting is left where it is, with an Event, and this one starts afresh.
    let (recorded_status, moved) = match previous.and_then(|p| p.sonarqube.clone()) {
        Some(r) if r.configuration != configuration => (None, released(&r, true)),
        other => (other, Vec::new()),
    };
    let failed = |outcome: Outcome, error: Option<sonarqube::Error>| Integrated {
        status: recorded_status.clone(),
        failure: Some((outcome, error)),
        notices: moved.clone(),
    };
    let shown = format!("SonarQubeConfiguration {configuration}");
    let Some(sonar) =
        ctx.stores.sonarqube_configurations.get(&ObjectRef::<SonarQubeConfiguration>::new(name).within(&namespace))
    else {
        let message = format!("{shown} does not exist; create it or fix spec.sonarqube.configurationRef");
        return Ok(failed(Outcome::stalled(reasons::SONARQUBE_NOT_READY, message), None));
    };
    let conditions = sonar.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let ready = find(conditions, READY);
    let client = ctx.sonarqube.current(&configuration);
    let (Some(_), Some(client)) = (ready.filter(|c| c.status == "True"), client) else {
        // Its own condition says what is wrong there; a stalled one waits for a change to it
        // (which starts a round here) rather than being polled.
        let stalled = find(conditions, STALLED).is_some_and(|c| c.status == "True");
        let Some(condition) = ready.filter(|c| c.status == "False") else {
            let message = format!("waiting for {shown} to be Ready");
            return Ok(failed(Outcome::reconciling(reasons::SONARQUBE_NOT_READY, message), None));
        };
        let message = format!(
            "{shown} is not Ready ({}: {}); {}",
            condition.reason,
            condition.message,
            if stalled { "fix it there, this configuration follows" } else { "waiting for it" }
        );
        let outcome = if stalled { Outcome::stalled } else { Outcome::reconciling };
        return Ok(failed(outcome(reasons::SONARQUBE_NOT_READY, message), None));
    };
    let reference = &block.token_secret_ref;
    let (token, version) = match sonarqube_token(ctx, &namespace, reference).await? {
        Ok(found) => found,
        Err(message) => {
            return Ok(failed(Outcome::stalled(reasons::SONARQUBE_INTEGRATION_FAILED, message), None));
        }
    };
    let url = block.bitbucket_url.as_deref().unwrap_or(&object.connection().url);
    let url = match sonarqube::normalize_url(url) {
        Ok(url) => url,
        Err(error) => {
            return Ok(failed(Outcome::stalled(reasons::SONARQUBE_INTEGRATION_FAILED, error.to_string()), None));
        }
    };
    // SonarQube sends the token to this URL: the allow-list of Bitbucket hosts covers it too.
    let host = crate::bitbucket::host_of(&url).unwrap_or_default();
    if !crate::bitbucket::host_allowed(&host, &ctx.options.allowed_hosts) {
        let message = format!(
            "SonarQube would send the token of sonarqube.tokenSecretRef to {host}, which is not among the allowed Bitbucket hosts ({}); use an allowed sonarqube.bitbucketUrl or ask the operator's administrators to allow it",
            ctx.options.allowed_hosts.join(", ")
        );
        return Ok(failed(Outcome::stalled(reasons::SONARQUBE_INTEGRATION_FAILED, message), None));
    }
    let key = block.alm_setting_key.clone().unwrap_or_else(|| object.name_any());
    let desired = DesiredSetting { key: key.clone(), url: url.clone(), token: version.clone() };
    let recorded = recorded_status.as_ref().map(|r| RecordedSetting {
        key: r.alm_setting_key.clone(),
        url: r.url.clone(),
        token: r.token_secret.clone(),
    });
    let validated_at = recorded_status.as_ref().and_then(|r| r.last_validated_time.clone());
    let due = validated_at.as_ref().is_none_or(|at| {
        let age = k8s_openapi::jiff::Timestamp::now().duration_since(at.0);
        !age.is_positive() || age.unsigned_abs() >= interval
    });
    let record = |bound_projects: Option<u64>, last_validated_time| SonarQubeIntegrationStatus {
        configuration: configuration.clone(),
        alm_setting_key: key.clone(),
        url: url.clone(),
        token_secret: Some(version.clone()),
        bound_projects: bound_projects.and_then(|n| i64::try_from(n).ok()),
        last_validated_time,
    };
    let mut notices = moved.clone();
    match keep_setting(&client, &desired, &token, recorded.as_ref(), due).await {
        Ok(kept) => {
            notices.extend(notices_for(&kept.action, &key));
            let validated = if kept.validated { Some(status::now()) } else { validated_at };
            Ok(Integrated { status: Some(record(kept.bound_projects, validated)), failure: None, notices })
        }
        // The write is done: recorded, so that a later round does not push the same token again
        // but validates again (no validation time), and a new Secret version is pushed.
        Err(SettingFailure::Unvalidated { action, error }) => {
            notices.extend(notices_for(&action, &key));
            let (outcome, error) = failure_of(error, reference, &namespace, &url);
            Ok(Integrated { status: Some(record(None, None)), failure: Some((outcome, error)), notices })
        }
        Err(SettingFailure::Refused(SettingAction::KeyTaken { alm })) => {
            let message = format!(
                "SonarQube's DevOps Platform setting key {key} belongs to a {} setting (keys are unique across platforms); choose another spec.sonarqube.almSettingKey or remove that setting",
                alm.as_str()
            );
            Ok(failed(Outcome::stalled(reasons::ALM_SETTING_KEY_TAKEN, message), None))
        }
        Err(SettingFailure::Refused(action)) => {
            let from = match &action {
                SettingAction::RenameBlocked { from } => from.clone(),
                _ => String::new(),
            };
            let message = format!(
                "cannot rename SonarQube's setting {from} to {key}: a Bitbucket setting {key} exists already; remove one of them in SonarQube, or set spec.sonarqube.almSettingKey back to {from}"
            );
            Ok(failed(Outcome::stalled(reasons::ALM_SETTING_KEY_TAKEN, message), None))
        }
        Err(SettingFailure::Failed(error)) => {
            let (outcome, error) = failure_of(error, reference, &namespace, &url);
            Ok(failed(outcome, error))
        }
    }
}

/// The condition of a failed SonarQube call, with the error when it is worth a retry. A failed
/// validation says which Secret and URL SonarQube was given, since those are what to fix.
fn failure_of(
    error: sonarqube::Error,
    token: &crate::api::refs::TokenSecretRef,
    namespace: &str,
    url: &str,
) -> (Outcome, Option<sonarqube::Error>) {
    let reason = match &error {
        sonarqube::Error::EditionLimit { .. } => reasons::EDITION_LIMIT,
        sonarqube::Error::KeyTaken { .. } => reasons::ALM_SETTING_KEY_TAKEN,
        sonarqube::Error::ValidationFailed { .. } => reasons::VALIDATION_FAILED,
        _ => reasons::SONARQUBE_INTEGRATION_FAILED,
    };
    let mut message = error.to_string();
    if matches!(error, sonarqube::Error::ValidationFailed { .. }) {
        message = format!(
            "{message} (SonarQube holds the token of Secret {namespace}/{} key {}, from spec.sonarqube.tokenSecretRef, and the URL {url}, from spec.sonarqube.bitbucketUrl or spec.url)",
            token.name, token.key
        );
    }
    if error.is_transient() {
        (Outcome::reconciling(reason, message), Some(error))
    } else {
        (Outcome::stalled(reason, message), None)
    }
}

/// The record of `status.sonarqube` a round keeps when it does not get as far as SonarQube: while
/// the block is there the record stays, since deletion and a key change rely on it.
pub(super) fn carried<K: ConfigurationObject>(
    object: &K,
    previous: Option<&ConfigurationStatus>,
) -> Option<SonarQubeIntegrationStatus> {
    object.connection().sonarqube.as_ref()?;
    previous.and_then(|p| p.sonarqube.clone())
}

/// The Event of a `sonarqube` block removed from a live configuration. The setting is left in
/// SonarQube: deleting it would drop every project bound to it, and nothing is lost by leaving
/// it. The record goes with the block, so a later deletion does not touch the setting.
pub(super) fn released_notices<K: ConfigurationObject>(
    object: &K,
    previous: Option<&ConfigurationStatus>,
) -> Vec<Notice> {
    if object.connection().sonarqube.is_some() {
        return Vec::new();
    }
    previous.and_then(|p| p.sonarqube.as_ref()).map(|r| released(r, false)).unwrap_or_default()
}

fn released(recorded: &SonarQubeIntegrationStatus, moved: bool) -> Vec<Notice> {
    let key = &recorded.alm_setting_key;
    let note = if moved {
        format!(
            "no longer keeps SonarQube's DevOps Platform setting {key} in SonarQubeConfiguration {} (spec.sonarqube.configurationRef changed); it stays in that SonarQube with its bindings (delete it there)",
            recorded.configuration
        )
    } else {
        format!(
            "no longer keeps SonarQube's DevOps Platform setting {key}; it stays in SonarQube with its bindings (delete it there, or put the block back and delete the configuration with deletionPolicy: Delete)"
        )
    };
    vec![Notice { warning: false, reason: "SonarQubeSettingReleased", action: "KeepSonarQubeSetting", note }]
}

/// The Bitbucket token SonarQube keeps (`sonarqube.tokenSecretRef`, in `namespace`) and the
/// version of its Secret, under the operator's consent rule; `Err` says what is wrong with it.
pub(super) async fn sonarqube_token(
    ctx: &Context,
    namespace: &str,
    reference: &crate::api::refs::TokenSecretRef,
) -> Result<Result<(bitbucket::Secret, SecretVersion), String>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), namespace);
    let found = secrets.get_opt(&reference.name).await?;
    let data = found.as_ref().map(SecretData::from_secret);
    let token = labelled(&|_: &str| data.clone(), &reference.name, namespace, "sonarqube.tokenSecretRef.name")
        .and_then(|data| single_line(&data, &reference.name, &reference.key, "sonarqube.tokenSecretRef.key"));
    Ok(token.map_err(|error| error.to_string()).map(|token| {
        let version = SecretVersion {
            name: reference.name.clone(),
            uid: found.as_ref().and_then(|s| s.metadata.uid.clone()),
            resource_version: found.as_ref().and_then(|s| s.metadata.resource_version.clone()),
        };
        (bitbucket::Secret::new(token), version)
    }))
}

/// On deletion with `sonarqube.deletionPolicy: Delete`, removes the setting the operator
/// recorded (SonarQube then drops every project binding to it; the projects stay). `Some` while
/// it cannot be removed yet (SonarQube not reachable): the deletion waits, and says how to let
/// it go without.
pub(super) async fn remove_setting<K: ConfigurationObject>(
    ctx: &Context,
    object: &K,
) -> Result<Option<super::reconcile::Cleanup<ConfigurationStatus>>, Error> {
    let (Some(block), Some(recorded)) =
        (&object.connection().sonarqube, object.status().and_then(|s| s.sonarqube.as_ref()))
    else {
        return Ok(None);
    };
    if block.deletion_policy == crate::api::required_report::DeletionPolicy::Orphan {
        return Ok(None);
    }
    let waiting = |message: String| {
        let status = object.status().cloned().unwrap_or_default();
        Ok(Some(super::reconcile::Cleanup::Waiting(status, Outcome::reconciling(reasons::DELETING, message))))
    };
    let Some(client) = ctx.sonarqube.current(&recorded.configuration) else {
        return waiting(format!(
            "waiting for SonarQubeConfiguration {} to remove SonarQube's setting {}; set spec.sonarqube.deletionPolicy: Orphan to leave it",
            recorded.configuration, recorded.alm_setting_key
        ));
    };
    match client.delete_alm_setting(&recorded.alm_setting_key).await {
        Ok(_) => Ok(None),
        Err(error) => waiting(format!(
            "cannot remove SonarQube's setting {} yet ({error}); set spec.sonarqube.deletionPolicy: Orphan to leave it",
            recorded.alm_setting_key
        )),
    }
}

/// The Event of a deletion that removed SonarQube's setting, if it did.
pub(super) fn removed_notices<K: ConfigurationObject>(object: &K) -> Vec<Notice> {
    let (Some(block), Some(recorded)) =
        (&object.connection().sonarqube, object.status().and_then(|s| s.sonarqube.as_ref()))
    else {
        return Vec::new();
    };
    if block.deletion_policy == crate::api::required_report::DeletionPolicy::Orphan {
        return Vec::new();
    }
    let bound = recorded
        .bound_projects
        .map(|n| format!(" and with it the bindings of {n} SonarQube project(s) (the projects stay)"))
        .unwrap_or_default();
    vec![Notice {
        warning: false,
        reason: "SonarQubeSettingDeleted",
        action: "KeepSonarQubeSetting",
        note: format!("removed SonarQube's DevOps Platform setting {}{bound}", recorded.alm_setting_key),
    }]
}

/// The Events about a change of the setting.
fn notices_for(action: &SettingAction, key: &str) -> Vec<Notice> {
    let notice = |warning, reason, note: String| Notice { warning, reason, action: "KeepSonarQubeSetting", note };
    match action {
        SettingAction::Create { recreated: true } => vec![notice(
            true,
            "SonarQubeSettingRecreated",
            format!(
                "SonarQube's DevOps Platform setting {key} was gone (deleted in SonarQube?) and was created again; projects bound to the old one must be bound again"
            ),
        )],
        SettingAction::Create { recreated: false } => {
            vec![notice(false, "SonarQubeSettingCreated", format!("created SonarQube's DevOps Platform setting {key}"))]
        }
        SettingAction::Update { why, .. } => vec![notice(
            false,
            "SonarQubeSettingUpdated",
            format!("updated SonarQube's DevOps Platform setting {key}: {}", why.join(", ")),
        )],
        _ => Vec::new(),
    }
}
