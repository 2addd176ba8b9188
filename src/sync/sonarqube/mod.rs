//! The I/O half of keeping SonarQube's DevOps Platform setting for a Bitbucket configuration:
//! read what SonarQube lists, carry out [`crate::plan::sonarqube::setting::plan_setting`],
//! have SonarQube validate the setting when it changed or is due, and count its bindings.
pub mod projects;

use crate::{
    bitbucket::Secret,
    plan::sonarqube::setting::{DesiredSetting, RecordedSetting, SettingAction, plan_setting},
    sonarqube::{Client, Error},
};

/// What keeping the setting did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingOutcome {
    /// What the plan said (after it was carried out).
    pub action: SettingAction,
    /// Whether SonarQube validated the setting this round (`false`: not due).
    pub validated: bool,
    /// The projects bound to the setting, if SonarQube said.
    pub bound_projects: Option<u64>,
}

/// Why the setting cannot be kept as the spec asks (the user's to resolve), or a SonarQube
/// failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingFailure {
    /// The plan refuses: the key is another platform's, or a rename would collide.
    Refused(SettingAction),
    /// A call failed before anything was written.
    Failed(Error),
    /// The write was done but SonarQube's validation of the result failed (or could not run):
    /// the caller records the write, so the same token is not pushed again, and validates again.
    Unvalidated {
        /// What was carried out.
        action: SettingAction,
        /// Why validating failed.
        error: Error,
    },
}

/// Keeps the setting: one listing, at most one write, then `validate` when something changed
/// or `validate_due`, then the binding count.
pub async fn keep_setting(
    client: &Client,
    desired: &DesiredSetting,
    token: &Secret,
    recorded: Option<&RecordedSetting>,
    validate_due: bool,
) -> Result<SettingOutcome, SettingFailure> {
    let listed = client.list_definitions().await.map_err(SettingFailure::Failed)?;
    let action = plan_setting(desired, &listed, recorded);
    match &action {
        SettingAction::None => {}
        SettingAction::Create { .. } => {
            client.create_bitbucket(&desired.key, &desired.url, token).await.map_err(SettingFailure::Failed)?;
        }
        SettingAction::Update { key, new_key, send_token, .. } => {
            let token = send_token.then_some(token);
            client
                .update_bitbucket(key, new_key.as_deref(), &desired.url, token)
                .await
                .map_err(SettingFailure::Failed)?;
        }
        SettingAction::KeyTaken { .. } | SettingAction::RenameBlocked { .. } => {
            return Err(SettingFailure::Refused(action));
        }
    }
    let validate = validate_due || action != SettingAction::None;
    if validate && let Err(error) = client.validate_alm_setting(&desired.key).await {
        return Err(if action == SettingAction::None {
            SettingFailure::Failed(error)
        } else {
            SettingFailure::Unvalidated { action, error }
        });
    }
    let bound_projects = client.count_binding(&desired.key).await.ok();
    Ok(SettingOutcome { action, validated: validate, bound_projects })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::configuration::SecretVersion,
        simulator::{
            Seed, Simulator,
            sonarqube::{SonarQubeSimulator, SonarSeed},
        },
        sonarqube::ClientConfig,
    };

    const SONAR_TOKEN: &str = "squ_admin";
    const BITBUCKET_TOKEN: &str = "BBDC-sonar-reads";

    async fn servers() -> (crate::simulator::RunningSimulator, crate::simulator::sonarqube::RunningSonarQube) {
        let bitbucket = Simulator::new(
            Seed::from_yaml(&format!(
                "users:\n  - name: sonar\n    password: pw\n    globalPermission: ADMIN\n    tokens:\n      - {{name: sonarqube, token: {BITBUCKET_TOKEN}}}\n"
            ))
            .expect("seed"),
        )
        .expect("simulator")
        .serve("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("serve");
        let sonar = SonarQubeSimulator::new(
            SonarSeed::from_yaml(&format!(
                "edition: enterprise\nusers:\n  - login: op\n    name: Operator\n    admin: true\n    tokens: [{{token: {SONAR_TOKEN}}}]\n"
            ))
            .expect("seed"),
        )
        .expect("simulator")
        .serve("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("serve");
        (bitbucket, sonar)
    }

    fn version(rv: &str) -> SecretVersion {
        SecretVersion { name: "sonar-bb".into(), uid: Some("u".into()), resource_version: Some(rv.into()) }
    }

    fn recorded(desired: &DesiredSetting) -> RecordedSetting {
        RecordedSetting { key: desired.key.clone(), url: desired.url.clone(), token: Some(desired.token.clone()) }
    }

    #[tokio::test]
    async fn a_setting_is_created_validated_renamed_and_its_token_pushed_again_on_rotation() {
        let (bitbucket, sonar) = servers().await;
        let client = Client::new(ClientConfig::new(sonar.base_url(), Secret::new(SONAR_TOKEN))).expect("client");
        let token = Secret::new(BITBUCKET_TOKEN);
        let desired = DesiredSetting { key: "bitbucket".into(), url: bitbucket.base_url(), token: version("1") };

        let created = keep_setting(&client, &desired, &token, None, false).await.expect("created");
        assert_eq!(created.action, SettingAction::Create { recreated: false });
        assert!(created.validated, "a new setting is validated against Bitbucket");
        assert_eq!(sonar.simulator().alm_setting_pat("bitbucket").as_deref(), Some(BITBUCKET_TOKEN));

        // Nothing changed, nothing due: one listing and the count, no write, no validation.
        sonar.simulator().clear_requests();
        let again = keep_setting(&client, &desired, &token, Some(&recorded(&desired)), false).await.expect("kept");
        assert_eq!((again.action, again.validated), (SettingAction::None, false));
        let writes = sonar.simulator().requests().iter().filter(|r| r.method == "POST").count();
        assert_eq!(writes, 0, "a no-op round wrote to SonarQube");

        // A new Secret version: the token is pushed again (it cannot be read back).
        bitbucket.simulator().add_token("sonar", "BBDC-rotated").expect("token");
        let rotated = Secret::new("BBDC-rotated");
        let next = DesiredSetting { token: version("2"), ..desired.clone() };
        let pushed = keep_setting(&client, &next, &rotated, Some(&recorded(&desired)), false).await.expect("pushed");
        assert!(matches!(pushed.action, SettingAction::Update { send_token: true, .. }), "{:?}", pushed.action);
        assert_eq!(sonar.simulator().alm_setting_pat("bitbucket").as_deref(), Some("BBDC-rotated"));

        // A new key renames the setting in place.
        let renamed = DesiredSetting { key: "bitbucket-dc".into(), ..next.clone() };
        let outcome = keep_setting(&client, &renamed, &rotated, Some(&recorded(&next)), false).await.expect("renamed");
        assert!(matches!(outcome.action, SettingAction::Update { new_key: Some(_), .. }), "{:?}", outcome.action);
        assert!(sonar.simulator().alm_setting_pat("bitbucket").is_none());
        assert_eq!(sonar.simulator().alm_setting_pat("bitbucket-dc").as_deref(), Some("BBDC-rotated"));

        // A token Bitbucket does not know fails SonarQube's validation, in our words.
        let wrong = DesiredSetting { token: version("3"), ..renamed.clone() };
        let failure = keep_setting(&client, &wrong, &Secret::new("BBDC-unknown"), Some(&recorded(&renamed)), false)
            .await
            .expect_err("validation fails");
        assert!(
            matches!(
                &failure,
                SettingFailure::Unvalidated {
                    action: SettingAction::Update { send_token: true, .. },
                    error: Error::ValidationFailed { .. }
                }
            ),
            "the pushed token is reported with the failure: {failure:?}"
        );
        let text = format!("{failure:?}");
        assert!(!text.contains("BBDC-unknown") && !text.contains(SONAR_TOKEN), "{text}");
        sonar.shutdown().await;
        bitbucket.shutdown().await;
    }
}
