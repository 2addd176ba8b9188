//! What must change in SonarQube for the Bitbucket integration (`sonarqube-api.md`): the
//! DevOps Platform setting a Bitbucket configuration implies ([`setting`]), the project key of
//! each bound repository ([`keys`]), each project's binding ([`bindings`]) and which of two
//! ProjectBindings claiming one SonarQube project gives way ([`claims`]). Pure, like the rest of
//! `plan`: the observed state comes in as plain values the SonarQube client's answers map to.

pub mod bindings;
pub mod claims;
pub mod connection;
pub mod keys;
pub mod reports;
pub mod setting;

use super::reasons;

/// Reasons a Bitbucket configuration gives when Bitbucket is connected and only its SonarQube
/// side is wrong: its bindings keep working meanwhile.
pub const SONARQUBE_SIDE: [&str; 5] = [
    reasons::EDITION_LIMIT,
    reasons::ALM_SETTING_KEY_TAKEN,
    reasons::VALIDATION_FAILED,
    reasons::SONARQUBE_NOT_READY,
    reasons::SONARQUBE_INTEGRATION_FAILED,
];
