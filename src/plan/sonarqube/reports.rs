//! Whether SonarQube will ever post the report a RequiredReport requires. A check of SonarQube's
//! report key that nothing posts blocks every pull request of the binding for good, so the
//! report says so; the check itself is still kept as the spec asks, as the team may post the
//! report by other means. Only proven facts count: a SonarQubeConfiguration that is not Ready
//! (or Ready for an older spec), or a configuration whose condition is about to change, say
//! nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::{
    conditions::{READY, STALLED, find},
    required_report::SONARQUBE_REPORT_KEY,
    sonarqube::SonarQubeConfigurationStatus,
};

use super::{
    super::{reasons, status::Outcome},
    SONARQUBE_SIDE,
    connection::{capability, has_capability},
};

/// What a report's round sees of the SonarQube side of its binding's configuration.
#[derive(Clone, Debug)]
pub struct SonarQubeView<'a> {
    /// The report key the report requires.
    pub report_key: &'a str,
    /// The binding, as `namespace/name`.
    pub binding: &'a str,
    /// Whether the binding is a monorepo binding.
    pub monorepo: bool,
    /// How many repositories are bound.
    pub bound: usize,
    /// The Bitbucket configuration as people read it (`BitbucketConfiguration team-a/bitbucket`).
    pub configuration: &'a str,
    /// The configuration's conditions.
    pub configuration_conditions: &'a [Condition],
    /// Whether those conditions are about the configuration's current generation.
    pub configuration_current: bool,
    /// Whether the configuration's `status.sonarqube` records a setting.
    pub recorded: bool,
    /// The SonarQubeConfiguration, as `namespace/name`.
    pub sonarqube: &'a str,
    /// Its status and `metadata.generation`; `None` when it does not exist.
    pub sonarqube_state: Option<(&'a SonarQubeConfigurationStatus, Option<i64>)>,
}

/// Why SonarQube never posts the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The edition does not analyse pull requests, so it posts no Code Insights report at all.
    NoDecoration,
    /// A monorepo binding on an edition without monorepo support.
    NoMonorepo,
    /// SonarQube keeps no DevOps Platform setting for the configuration; the reason is the
    /// configuration's.
    NoSetting(&'static str),
}

/// Whether `key` is one SonarQube posts under: `com.sonarsource.sonarqube`, or a monorepo
/// binding's `com.sonarsource.sonarqube_<projectKey>`.
pub fn is_sonarqube_key(key: &str) -> bool {
    key.strip_prefix(SONARQUBE_REPORT_KEY)
        .is_some_and(|rest| rest.is_empty() || rest.strip_prefix('_').is_some_and(|project| !project.is_empty()))
}

/// Why SonarQube will never post the report, if the statuses prove it does not. The edition
/// goes first (nothing else helps there), then monorepo support, then the setting.
pub fn cause(view: &SonarQubeView<'_>) -> Option<Cause> {
    if !is_sonarqube_key(view.report_key) {
        return None;
    }
    let (status, generation) = view.sonarqube_state?;
    let proven = find(&status.conditions, READY).is_some_and(|c| c.status == "True")
        && status.observed_generation.is_some()
        && status.observed_generation == generation;
    if !proven {
        return None;
    }
    if !has_capability(status, capability::PULL_REQUEST_DECORATION) {
        return Some(Cause::NoDecoration);
    }
    if view.monorepo && !has_capability(status, capability::MONOREPO) {
        return Some(Cause::NoMonorepo);
    }
    if view.recorded || !view.configuration_current {
        return None;
    }
    // A terminal verdict only (one being retried may still succeed). SonarQubeNotReady is left
    // out: the SonarQubeConfiguration is Ready by now, so that condition is about to change.
    let ready = find(view.configuration_conditions, READY)?;
    let stalled = find(view.configuration_conditions, STALLED).is_some_and(|c| c.status == "True");
    let reason =
        SONARQUBE_SIDE.iter().copied().filter(|r| *r != reasons::SONARQUBE_NOT_READY).find(|r| *r == ready.reason)?;
    (ready.status == "False" && stalled).then_some(Cause::NoSetting(reason))
}

/// The outcome of a report SonarQube never posts, if [`cause`] finds why.
pub fn never_posted(view: &SonarQubeView<'_>) -> Option<Outcome> {
    let cause = cause(view)?;
    let (sonarqube, key) = (view.sonarqube, view.report_key);
    let blocked = match view.bound {
        1 => {
            "every pull request of the 1 bound repository stays blocked until it is reported by other means".to_owned()
        }
        n => format!(
            "every pull request of the {n} bound repositories stays blocked until it is reported by other means"
        ),
    };
    let alternatives = "delete this RequiredReport, or gate on CI with a required build";
    let message = match cause {
        Cause::NoDecoration => {
            let edition = match edition_of(view) {
                Some("community") => "Community Build",
                _ => "an edition that does not analyse pull requests",
            };
            format!(
                "SonarQubeConfiguration {sonarqube} is {edition}, which posts no Code Insights reports: {blocked}; use Developer Edition or later, {alternatives}"
            )
        }
        Cause::NoMonorepo => {
            let edition = match edition_of(view) {
                Some("developer") => "Developer Edition",
                _ => "an edition",
            };
            format!(
                "ProjectBinding {} is a monorepo binding, but SonarQubeConfiguration {sonarqube} is {edition} without monorepo support, so SonarQube never posts {key}: {blocked}; use Enterprise Edition or later, set monorepo: false on the binding, {alternatives}",
                view.binding
            )
        }
        Cause::NoSetting(reason) => format!(
            "{} keeps no DevOps Platform setting in SonarQubeConfiguration {sonarqube} (its Ready condition says {reason}), so SonarQube cannot post {key}: {blocked}; fix what that condition says, {alternatives}",
            view.configuration
        ),
    };
    Some(Outcome::stalled(reasons::REPORT_NEVER_POSTED, message))
}

/// The edition the SonarQubeConfiguration's status names, when it is one the operator writes
/// (the status is not trusted to hold only those).
fn edition_of<'a>(view: &SonarQubeView<'a>) -> Option<&'a str> {
    let (status, _) = view.sonarqube_state?;
    let edition = status.server.as_ref()?.edition.as_deref()?;
    ["community", "developer", "enterprise", "datacenter"].into_iter().find(|known| *known == edition)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::{
        api::sonarqube::SonarQubeServerInfo,
        plan::status::{Phase, conditions},
    };

    fn conditions_of(outcome: &Outcome) -> Vec<Condition> {
        conditions(&[], outcome, Some(1), &Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
    }

    /// A SonarQubeConfiguration status of `edition` with `capabilities`, checked at generation 1.
    fn sonarqube(edition: &str, capabilities: &[&str], outcome: &Outcome) -> SonarQubeConfigurationStatus {
        SonarQubeConfigurationStatus {
            observed_generation: Some(1),
            conditions: conditions_of(outcome),
            server: Some(SonarQubeServerInfo {
                version: "10.7.0.96327".to_owned(),
                version_scheme: "Classic".to_owned(),
                edition: Some(edition.to_owned()),
            }),
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            ..SonarQubeConfigurationStatus::default()
        }
    }

    fn connected() -> Outcome {
        Outcome::ready(reasons::CONNECTED, "connected")
    }

    const COMMUNITY: [&str; 2] = [capability::ALM_SETTINGS, capability::BOUND_PROJECTS];
    const DEVELOPER: [&str; 3] =
        [capability::ALM_SETTINGS, capability::PROJECT_BINDINGS, capability::PULL_REQUEST_DECORATION];
    const ENTERPRISE: [&str; 5] = [
        capability::ALM_SETTINGS,
        capability::PROJECT_BINDINGS,
        capability::MONOREPO,
        capability::MULTIPLE_BITBUCKET_SETTINGS,
        capability::PULL_REQUEST_DECORATION,
    ];

    /// A report of `key` on a binding of three repositories, whose configuration is Ready with a
    /// recorded setting.
    fn view<'a>(
        key: &'a str,
        status: &'a SonarQubeConfigurationStatus,
        configuration: &'a [Condition],
    ) -> SonarQubeView<'a> {
        SonarQubeView {
            report_key: key,
            binding: "team-a/payments",
            monorepo: false,
            bound: 3,
            configuration: "BitbucketConfiguration team-a/bitbucket",
            configuration_conditions: configuration,
            configuration_current: true,
            recorded: true,
            sonarqube: "team-a/sonarqube",
            sonarqube_state: Some((status, Some(1))),
        }
    }

    #[test]
    fn only_sonarqubes_report_keys_are_looked_at() {
        assert!(is_sonarqube_key("com.sonarsource.sonarqube"));
        assert!(is_sonarqube_key("com.sonarsource.sonarqube_payments"));
        assert!(!is_sonarqube_key("com.sonarsource.sonarqube_"));
        assert!(!is_sonarqube_key("com.sonarsource.sonarqubex"));
        assert!(!is_sonarqube_key("com.example.lint"));
        let community = sonarqube("community", &COMMUNITY, &connected());
        let ready = conditions_of(&connected());
        assert_eq!(cause(&view("com.example.lint", &community, &ready)), None);
    }

    #[test]
    fn community_build_never_posts_and_says_what_to_do() {
        let community = sonarqube("community", &COMMUNITY, &connected());
        let ready = conditions_of(&connected());
        let outcome = never_posted(&view(SONARQUBE_REPORT_KEY, &community, &ready)).expect("never posted");
        assert_eq!((outcome.phase, outcome.reason), (Phase::Stalled, reasons::REPORT_NEVER_POSTED));
        for part in
            ["team-a/sonarqube is Community Build", "3 bound repositories", "Developer Edition", "required build"]
        {
            assert!(outcome.message.contains(part), "{part}: {}", outcome.message);
        }
        // An edition the status names that the operator never writes is not quoted.
        let odd = sonarqube("<b>free</b>", &COMMUNITY, &connected());
        let outcome = never_posted(&view(SONARQUBE_REPORT_KEY, &odd, &ready)).expect("never posted");
        assert!(!outcome.message.contains("free"), "{}", outcome.message);
        assert!(outcome.message.contains("does not analyse pull requests"), "{}", outcome.message);
    }

    #[test]
    fn a_commercial_edition_with_its_setting_posts() {
        let ready = conditions_of(&connected());
        for (edition, capabilities) in [("developer", &DEVELOPER[..]), ("enterprise", &ENTERPRISE[..])] {
            let status = sonarqube(edition, capabilities, &connected());
            assert_eq!(cause(&view(SONARQUBE_REPORT_KEY, &status, &ready)), None, "{edition}");
        }
        let enterprise = sonarqube("enterprise", &ENTERPRISE, &connected());
        let monorepo = SonarQubeView { monorepo: true, ..view("com.sonarsource.sonarqube_pay", &enterprise, &ready) };
        assert_eq!(cause(&monorepo), None);
    }

    #[test]
    fn a_monorepo_binding_needs_monorepo_support() {
        let developer = sonarqube("developer", &DEVELOPER, &connected());
        let ready = conditions_of(&connected());
        let monorepo =
            SonarQubeView { monorepo: true, bound: 1, ..view("com.sonarsource.sonarqube_pay", &developer, &ready) };
        let outcome = never_posted(&monorepo).expect("never posted");
        assert_eq!(outcome.reason, reasons::REPORT_NEVER_POSTED);
        for part in [
            "team-a/payments is a monorepo binding",
            "Developer Edition without monorepo support",
            "com.sonarsource.sonarqube_pay",
            "1 bound repository stays",
            "monorepo: false",
        ] {
            assert!(outcome.message.contains(part), "{part}: {}", outcome.message);
        }
        // Community Build is told as such: monorepo support would not help there.
        let community = sonarqube("community", &COMMUNITY, &connected());
        assert_eq!(cause(&SonarQubeView { monorepo: true, ..view(SONARQUBE_REPORT_KEY, &community, &ready) }), {
            Some(Cause::NoDecoration)
        });
    }

    #[test]
    fn a_setting_sonarqube_refused_for_good_means_nothing_posts() {
        let developer = sonarqube("developer", &DEVELOPER, &connected());
        let limited = conditions_of(&Outcome::stalled(reasons::EDITION_LIMIT, "one Bitbucket setting allowed"));
        let unrecorded = SonarQubeView { recorded: false, ..view(SONARQUBE_REPORT_KEY, &developer, &limited) };
        assert_eq!(cause(&unrecorded), Some(Cause::NoSetting(reasons::EDITION_LIMIT)));
        let outcome = never_posted(&unrecorded).expect("never posted");
        for part in ["BitbucketConfiguration team-a/bitbucket keeps no DevOps Platform setting", "says EditionLimit"] {
            assert!(outcome.message.contains(part), "{part}: {}", outcome.message);
        }
        // The condition's own message is not repeated.
        assert!(!outcome.message.contains("one Bitbucket setting allowed"), "{}", outcome.message);
        // A setting kept before still serves.
        assert_eq!(cause(&view(SONARQUBE_REPORT_KEY, &developer, &limited)), None);
        // A condition about an older generation is about to change.
        assert_eq!(cause(&SonarQubeView { configuration_current: false, ..unrecorded.clone() }), None);
    }

    #[test]
    fn nothing_is_concluded_from_what_may_still_change() {
        let ready = conditions_of(&connected());
        let developer = sonarqube("developer", &DEVELOPER, &connected());
        let unrecorded =
            |conditions| SonarQubeView { recorded: false, ..view(SONARQUBE_REPORT_KEY, &developer, conditions) };
        // Not set up yet, retried, or waiting for the SonarQubeConfiguration.
        let retried = conditions_of(&Outcome::reconciling(reasons::SONARQUBE_INTEGRATION_FAILED, "SonarQube is down"));
        let waiting = conditions_of(&Outcome::stalled(reasons::SONARQUBE_NOT_READY, "does not exist"));
        let bitbucket = conditions_of(&Outcome::stalled(reasons::BAD_CREDENTIALS, "token rejected"));
        for conditions in [&ready, &retried, &waiting, &bitbucket] {
            assert_eq!(cause(&unrecorded(conditions)), None, "{conditions:?}");
        }
        // A SonarQubeConfiguration that is missing, not Ready, or Ready for an older spec.
        let community = sonarqube("community", &COMMUNITY, &connected());
        assert_eq!(
            cause(&SonarQubeView { sonarqube_state: None, ..view(SONARQUBE_REPORT_KEY, &community, &ready) }),
            None
        );
        let failing = sonarqube("community", &COMMUNITY, &Outcome::reconciling(reasons::UNREACHABLE, "down"));
        assert_eq!(cause(&view(SONARQUBE_REPORT_KEY, &failing, &ready)), None);
        let stale = SonarQubeView {
            sonarqube_state: Some((&community, Some(2))),
            ..view(SONARQUBE_REPORT_KEY, &community, &ready)
        };
        assert_eq!(cause(&stale), None);
        let unchecked = SonarQubeConfigurationStatus { observed_generation: None, ..community.clone() };
        let never = SonarQubeView {
            sonarqube_state: Some((&unchecked, None)),
            ..view(SONARQUBE_REPORT_KEY, &community, &ready)
        };
        assert_eq!(cause(&never), None);
    }
}
