//! The required-report merge check a RequiredReport wants on each repository, and what must
//! change to get there.

use crate::{
    api::{
        ProjectBindingSpec, RequiredReportSpec,
        coverage::CheckState,
        required_report::{AnnotationRequirement, SONARQUBE_REPORT_KEY},
    },
    bitbucket::{MergeCheck, Severity},
};

/// The report key a RequiredReport manages: its own `reportKey`, else a monorepo binding's
/// `com.sonarsource.sonarqube_<sonarqube.projectKey>`, else SonarQube's.
pub fn report_key(report: &RequiredReportSpec, binding: &ProjectBindingSpec) -> String {
    if let Some(key) = &report.report_key {
        return key.clone();
    }
    match (binding.sonarqube.as_ref().and_then(|s| s.project_key.as_deref()), binding.monorepo) {
        (Some(project_key), true) => format!("{SONARQUBE_REPORT_KEY}_{project_key}"),
        _ => SONARQUBE_REPORT_KEY.to_owned(),
    }
}

/// The merge check a report's spec asks for.
pub fn desired_check(report_key: &str, spec: &RequiredReportSpec) -> MergeCheck {
    let min_severity = match spec.annotations {
        AnnotationRequirement::Ignore => None,
        AnnotationRequirement::NoneAllowed => Some(Severity::Low),
        AnnotationRequirement::NoMediumOrHigh => Some(Severity::Medium),
        AnnotationRequirement::NoHighSeverity => Some(Severity::High),
    };
    MergeCheck { report_key: report_key.to_owned(), must_pass: spec.must_pass, min_severity }
}

/// What must happen to one repository's check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckChange {
    /// There is no check under the key.
    Create(MergeCheck),
    /// The check exists and differs in the listed fields.
    Update {
        /// What it is.
        from: MergeCheck,
        /// What it must become.
        to: MergeCheck,
        /// `mustPass` and/or `annotations`.
        fields: Vec<&'static str>,
    },
    /// The check must go (the repository left the binding, or the report is deleted).
    Delete {
        /// The report key.
        report_key: String,
    },
}

/// The change that makes `observed` match `desired`, if any.
pub fn plan_check(desired: &MergeCheck, observed: Option<&MergeCheck>) -> Option<CheckChange> {
    let Some(observed) = observed else {
        return Some(CheckChange::Create(desired.clone()));
    };
    let mut fields = Vec::new();
    if observed.must_pass != desired.must_pass {
        fields.push("mustPass");
    }
    if observed.min_severity != desired.min_severity {
        fields.push("annotations");
    }
    (!fields.is_empty()).then(|| CheckChange::Update { from: observed.clone(), to: desired.clone(), fields })
}

/// How a check reads to a person: `must pass, no annotations`.
pub fn describe(check: &MergeCheck) -> String {
    let pass = if check.must_pass { "must pass" } else { "must exist" };
    let annotations = match check.min_severity {
        None => "annotations ignored",
        Some(Severity::Low) => "no annotations",
        Some(Severity::Medium) => "no medium or high annotations",
        Some(Severity::High) => "no high annotations",
    };
    format!("{pass}, {annotations}")
}

/// The per-repository state after a reconcile: in sync when nothing is (still) to change;
/// drifted when something differs and the policy is to observe only.
pub fn state_of(change: Option<&CheckChange>, observe_only: bool) -> CheckState {
    match (change, observe_only) {
        (None, _) => CheckState::InSync,
        (Some(_), true) => CheckState::Drifted,
        (Some(_), false) => CheckState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> RequiredReportSpec {
        let text = format!(
            "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: RequiredReport\nmetadata: {{name: r}}\nspec:\n  bindingRef: {{name: b}}\n{yaml}"
        );
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let validator = crate::api::validation::validator_for("bitbucket.integrations.dev/v1alpha1", "RequiredReport");
        let admitted =
            validator.unwrap_or_else(|| panic!("no validator")).admit(&value, None).unwrap_or_else(|e| panic!("{e:?}"));
        let report: crate::api::RequiredReport = serde_json::from_value(admitted).unwrap_or_else(|e| panic!("{e}"));
        report.spec
    }

    fn binding(monorepo: bool) -> ProjectBindingSpec {
        serde_json::from_value(serde_json::json!({
            "configurationRef": {"name": "c"}, "projectKey": "WEB", "repositorySlug": "storefront",
            "monorepo": monorepo, "sonarqube": {"projectKey": "storefront-checkout"}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn report_keys() {
        assert_eq!(report_key(&spec(""), &binding(false)), "com.sonarsource.sonarqube");
        assert_eq!(report_key(&spec(""), &binding(true)), "com.sonarsource.sonarqube_storefront-checkout");
        assert_eq!(report_key(&spec("  reportKey: com.example.lint\n"), &binding(true)), "com.example.lint");
    }

    #[test]
    fn annotation_requirements_map_to_severities() {
        let severity = |yaml: &str| desired_check("k", &spec(yaml)).min_severity;
        assert_eq!(severity(""), Some(Severity::Low), "the default is SonarQube's: no annotations");
        assert_eq!(severity("  annotations: Ignore\n"), None);
        assert_eq!(severity("  annotations: NoMediumOrHigh\n"), Some(Severity::Medium));
        assert_eq!(severity("  annotations: NoHighSeverity\n"), Some(Severity::High));
        assert!(desired_check("k", &spec("")).must_pass);
        assert!(!desired_check("k", &spec("  mustPass: false\n")).must_pass);
    }

    #[test]
    fn only_differences_are_written() {
        let desired = desired_check("k", &spec(""));
        assert_eq!(plan_check(&desired, None), Some(CheckChange::Create(desired.clone())));
        assert_eq!(plan_check(&desired, Some(&desired)), None);
        let loose = MergeCheck { must_pass: false, min_severity: None, ..desired.clone() };
        assert_eq!(
            plan_check(&desired, Some(&loose)),
            Some(CheckChange::Update { from: loose, to: desired.clone(), fields: vec!["mustPass", "annotations"] })
        );
        assert_eq!(describe(&desired), "must pass, no annotations");
    }

    #[test]
    fn state_before_a_write() {
        struct Case {
            name: &'static str,
            change: Option<CheckChange>,
            observe_only: bool,
            want: CheckState,
        }
        let desired = desired_check("k", &spec(""));
        let update = CheckChange::Update { from: desired.clone(), to: desired.clone(), fields: vec!["mustPass"] };
        let cases = [
            Case { name: "nothing to change", change: None, observe_only: false, want: CheckState::InSync },
            Case { name: "nothing to change, observed", change: None, observe_only: true, want: CheckState::InSync },
            Case {
                name: "missing, managed: written next",
                change: Some(CheckChange::Create(desired.clone())),
                observe_only: false,
                want: CheckState::Pending,
            },
            Case {
                name: "differs, managed: written next",
                change: Some(update.clone()),
                observe_only: false,
                want: CheckState::Pending,
            },
            Case {
                name: "missing, observed: drifted",
                change: Some(CheckChange::Create(desired.clone())),
                observe_only: true,
                want: CheckState::Drifted,
            },
            Case {
                name: "differs, observed: drifted",
                change: Some(update),
                observe_only: true,
                want: CheckState::Drifted,
            },
        ];
        for case in cases {
            assert_eq!(state_of(case.change.as_ref(), case.observe_only), case.want, "{}", case.name);
        }
    }
}
