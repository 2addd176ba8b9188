//! The DevOps Platform setting ("Bitbucket configuration record") a Bitbucket configuration's
//! `sonarqube` block implies, against what SonarQube lists and what the operator recorded.
//!
//! SonarQube never returns the stored token, so the operator records which version of the token
//! Secret it pushed and pushes again when that changes. A URL change must carry the token
//! (SonarQube refuses it otherwise), a key change renames the setting in place (a delete and a
//! create would drop every project bound to it), and a key held by another DevOps platform is
//! the user's to resolve.

use crate::{
    api::configuration::SecretVersion,
    sonarqube::{Alm, AlmDefinition, AlmDefinitions},
};

/// What the spec asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredSetting {
    /// The setting's key.
    pub key: String,
    /// The Bitbucket URL SonarQube is given, normalized ([`crate::sonarqube::normalize_url`]).
    pub url: String,
    /// The version of the token Secret in effect now.
    pub token: SecretVersion,
}

/// What the operator recorded after its last change (the configuration's status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedSetting {
    /// The key it made the setting with.
    pub key: String,
    /// The URL it gave.
    pub url: String,
    /// The token Secret version it pushed.
    pub token: Option<SecretVersion>,
}

/// What to do to the setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingAction {
    /// It matches (as far as can be seen: the token is checked by validating).
    None,
    /// Create it, with the token.
    Create {
        /// A setting the operator made before is gone (deleted in SonarQube): said in an Event.
        recreated: bool,
    },
    /// Update it: `key` is its current key; the URL is always sent.
    Update {
        /// Its key now.
        key: String,
        /// Rename it to the desired key (bindings stay).
        new_key: Option<String>,
        /// Send the token: the URL changed, the Secret changed, or the operator has no record
        /// of having sent this version.
        send_token: bool,
        /// What changed, for the Event and the log.
        why: Vec<&'static str>,
    },
    /// The key is taken by another platform's setting: the user must pick another key or
    /// remove that setting. Never retried until the spec or SonarQube changes.
    KeyTaken {
        /// The platform holding it.
        alm: Alm,
    },
    /// Renaming is impossible: a Bitbucket setting with the new key exists already besides
    /// the one to rename.
    RenameBlocked {
        /// The key the operator's setting has.
        from: String,
    },
}

/// Decides what to do to the setting.
pub fn plan_setting(
    desired: &DesiredSetting,
    listed: &AlmDefinitions,
    recorded: Option<&RecordedSetting>,
) -> SettingAction {
    let find = |key: &str| -> Option<&AlmDefinition> { listed.settings.iter().find(|s| s.key == key) };
    let target = find(&desired.key);
    if let Some(other) = target.filter(|s| s.alm != Alm::Bitbucket) {
        return SettingAction::KeyTaken { alm: other.alm.clone() };
    }
    // A recorded setting under another key is renamed, if it is still there and is Bitbucket's.
    let renamed_from =
        recorded.filter(|r| r.key != desired.key).and_then(|r| find(&r.key)).filter(|s| s.alm == Alm::Bitbucket);
    let (current, new_key) = match (renamed_from, target) {
        (Some(old), Some(_)) => return SettingAction::RenameBlocked { from: old.key.clone() },
        (Some(old), None) => (old, Some(desired.key.clone())),
        (None, Some(current)) => (current, None),
        (None, None) => {
            let recreated = recorded.is_some();
            return SettingAction::Create { recreated };
        }
    };
    let mut why = Vec::new();
    if new_key.is_some() {
        why.push("key");
    }
    // What SonarQube holds, in the form the operator gives: a trailing slash is no change; a URL
    // that does not parse is one.
    let held = current.url.as_deref().and_then(|url| crate::sonarqube::normalize_url(url).ok());
    let url_changed = held.as_deref() != Some(desired.url.as_str());
    if url_changed {
        why.push("url");
    }
    let token_recorded = recorded.and_then(|r| r.token.as_ref());
    let token_changed = token_recorded != Some(&desired.token);
    if token_changed {
        why.push(if token_recorded.is_some() { "token" } else { "token (never pushed by the operator)" });
    }
    if why.is_empty() {
        return SettingAction::None;
    }
    SettingAction::Update { key: current.key.clone(), new_key, send_token: url_changed || token_changed, why }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(rv: &str) -> SecretVersion {
        SecretVersion { name: "sonar-bb-token".into(), uid: Some("u1".into()), resource_version: Some(rv.into()) }
    }

    fn desired(key: &str, url: &str, rv: &str) -> DesiredSetting {
        DesiredSetting { key: key.into(), url: url.into(), token: version(rv) }
    }

    fn listed(alm: Alm, key: &str, url: &str) -> AlmDefinition {
        AlmDefinition { alm, key: key.into(), url: Some(url.into()) }
    }

    fn of(settings: &[AlmDefinition]) -> AlmDefinitions {
        AlmDefinitions { settings: settings.to_vec() }
    }

    fn recorded(key: &str, url: &str, rv: &str) -> RecordedSetting {
        RecordedSetting { key: key.into(), url: url.into(), token: Some(version(rv)) }
    }

    const URL: &str = "https://bitbucket.example.com";

    #[test]
    fn a_missing_setting_is_created_and_one_that_vanished_is_recreated() {
        assert_eq!(plan_setting(&desired("bb", URL, "1"), &of(&[]), None), SettingAction::Create { recreated: false });
        let before = recorded("bb", URL, "1");
        assert_eq!(
            plan_setting(&desired("bb", URL, "1"), &of(&[]), Some(&before)),
            SettingAction::Create { recreated: true }
        );
    }

    #[test]
    fn a_matching_setting_is_left_alone() {
        let before = recorded("bb", URL, "1");
        let list = [listed(Alm::Bitbucket, "bb", &format!("{URL}/"))];
        assert_eq!(plan_setting(&desired("bb", URL, "1"), &of(&list), Some(&before)), SettingAction::None);
    }

    #[test]
    fn a_new_token_version_is_pushed() {
        let before = recorded("bb", URL, "1");
        let list = [listed(Alm::Bitbucket, "bb", URL)];
        let action = plan_setting(&desired("bb", URL, "2"), &of(&list), Some(&before));
        assert!(matches!(action, SettingAction::Update { send_token: true, new_key: None, .. }), "{action:?}");
    }

    #[test]
    fn a_setting_made_by_hand_gets_the_token_once_since_nobody_knows_which_it_holds() {
        let list = [listed(Alm::Bitbucket, "bb", URL)];
        let action = plan_setting(&desired("bb", URL, "1"), &of(&list), None);
        assert!(matches!(action, SettingAction::Update { send_token: true, .. }), "{action:?}");
    }

    #[test]
    fn a_url_change_always_carries_the_token() {
        let before = recorded("bb", URL, "1");
        let list = [listed(Alm::Bitbucket, "bb", "https://old.example.com")];
        let action = plan_setting(&desired("bb", URL, "1"), &of(&list), Some(&before));
        assert!(
            matches!(&action, SettingAction::Update { send_token: true, why, .. } if why == &vec!["url"]),
            "{action:?}"
        );
    }

    #[test]
    fn a_new_key_renames_in_place_and_keeps_the_bindings() {
        let before = recorded("old", URL, "1");
        let list = [listed(Alm::Bitbucket, "old", URL)];
        let action = plan_setting(&desired("new", URL, "1"), &of(&list), Some(&before));
        assert_eq!(
            action,
            SettingAction::Update {
                key: "old".into(),
                new_key: Some("new".into()),
                send_token: false,
                why: vec!["key"]
            }
        );
    }

    #[test]
    fn a_rename_onto_an_existing_setting_is_refused() {
        let before = recorded("old", URL, "1");
        let list = [listed(Alm::Bitbucket, "old", URL), listed(Alm::Bitbucket, "new", URL)];
        assert_eq!(
            plan_setting(&desired("new", URL, "1"), &of(&list), Some(&before)),
            SettingAction::RenameBlocked { from: "old".into() }
        );
    }

    #[test]
    fn a_key_held_by_another_platform_is_the_users_to_resolve() {
        let list = [listed(Alm::GitHub, "bb", "https://api.github.com")];
        assert_eq!(
            plan_setting(&desired("bb", URL, "1"), &of(&list), None),
            SettingAction::KeyTaken { alm: Alm::GitHub }
        );
    }
}
