//! Each bound repository's SonarQube project and its binding to the repository.
//!
//! A binding in SonarQube is keyed by the project: binding it again overwrites. So the operator
//! binds only when what SonarQube holds differs, and removes only a binding that is still the
//! one it would make (same setting, Bitbucket project and slug): a project rebound elsewhere by
//! someone is theirs. Projects are created only with `createProjects`, and never deleted.

/// The binding a repository's project should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredBinding {
    /// The SonarQube project key.
    pub project: String,
    /// The DevOps Platform setting's key.
    pub alm_setting: String,
    /// The Bitbucket project key (SonarQube calls it `repository`).
    pub repository: String,
    /// The repository slug.
    pub slug: String,
    /// Whether the project is one of several of a monorepo.
    pub monorepo: bool,
}

use crate::sonarqube::{Alm, Binding};

/// What SonarQube holds for a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObservedProject {
    /// No project with this key.
    Missing,
    /// The project exists and is bound to no DevOps platform.
    Unbound,
    /// The project is bound.
    Bound(Binding),
}

/// Whether a binding is exactly the one `desired` asks for.
pub fn matches(binding: &Binding, desired: &DesiredBinding) -> bool {
    is_ours(binding, desired) && binding.monorepo == desired.monorepo
}

/// Whether a binding binds to the same repository through the same setting (the monorepo flag
/// aside): the binding the operator made or would make, and so may remove.
pub fn is_ours(binding: &Binding, desired: &DesiredBinding) -> bool {
    binding.alm == Alm::Bitbucket
        && binding.key == desired.alm_setting
        && binding.repository.as_deref() == Some(desired.repository.as_str())
        && binding.slug.as_deref() == Some(desired.slug.as_str())
}

/// What to do for one repository's project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectAction {
    /// The project exists and is bound as asked.
    None,
    /// Bind the existing project (it was unbound, or bound otherwise: `was` says how).
    Bind {
        /// The binding it had, if any: a change made in the UI, said in an Event.
        was: Option<Binding>,
    },
    /// Create the project (named `name`) and bind it.
    CreateAndBind {
        /// The project's name: its repository's.
        name: String,
    },
    /// The project does not exist and `createProjects` is off: the user creates it (or turns
    /// `createProjects` on).
    Missing,
}

/// Decides what to do for one repository's project; `name` is the repository's name, used
/// when the project is created.
pub fn plan_project(desired: &DesiredBinding, observed: &ObservedProject, create: bool, name: &str) -> ProjectAction {
    match observed {
        ObservedProject::Missing if create => ProjectAction::CreateAndBind { name: super::keys::project_name(name) },
        ObservedProject::Missing => ProjectAction::Missing,
        ObservedProject::Unbound => ProjectAction::Bind { was: None },
        ObservedProject::Bound(binding) if matches(binding, desired) => ProjectAction::None,
        ObservedProject::Bound(binding) => ProjectAction::Bind { was: Some(binding.clone()) },
    }
}

/// Whether a project's binding is removed when its repository leaves the binding (or the
/// binding is deleted): only if it is still the one the operator made.
pub fn removes_binding(desired: &DesiredBinding, observed: &ObservedProject) -> bool {
    matches!(observed, ObservedProject::Bound(binding) if is_ours(binding, desired))
}

/// What became of one repository's project in a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectResult {
    /// Bound as asked, nothing done.
    InSync,
    /// Bound this round; `created` when the project was created with it, `was` the binding it
    /// replaced (a change made in SonarQube).
    Bound {
        /// The project was created.
        created: bool,
        /// The binding it had.
        was: Option<Binding>,
    },
    /// The project does not exist and `createProjects` is off.
    Missing,
    /// Another ProjectBinding, created before this one, binds this project.
    Claimed {
        /// `namespace/name` of that binding.
        by: String,
    },
    /// The repository has no valid project key (the message says why).
    InvalidKey(String),
    /// A call failed.
    Failed(sonarqube::Error),
}

use crate::{
    api::{
        binding::SonarQubeBindingStatus,
        coverage::{CheckState, RepositoryCheck, needing_attention},
    },
    plan::{reasons, status::Outcome},
    sonarqube,
};

/// What one repository's result says in `needsAttention`, if anything.
pub fn attention(slug: &str, project: &str, result: &ProjectResult) -> Option<RepositoryCheck> {
    let (state, message) = match result {
        ProjectResult::InSync | ProjectResult::Bound { .. } => return None,
        ProjectResult::Missing => (
            CheckState::Drifted,
            format!("SonarQube has no project {project}: create it, or set sonarqube.createProjects: true"),
        ),
        ProjectResult::Claimed { by } => (
            CheckState::Drifted,
            format!(
                "SonarQube project {project} is bound by ProjectBinding {by}, created first: change one of the keys"
            ),
        ),
        ProjectResult::InvalidKey(why) => (CheckState::Failed, why.clone()),
        ProjectResult::Failed(error) => (CheckState::Failed, format!("SonarQube project {project}: {error}")),
    };
    Some(RepositoryCheck { slug: slug.to_owned(), state, message: Some(message) })
}

/// One repository's result, with what it is about.
#[derive(Clone, Debug)]
pub struct RepositoryProject {
    /// The repository slug.
    pub slug: String,
    /// Its project key, or the key the template gave (empty when none).
    pub project: String,
    /// What became of it.
    pub result: ProjectResult,
}

/// The round's summary of the SonarQube side: the status record and, when it is not all as
/// asked, the outcome to report and the error worth a retry.
pub fn summarize(
    results: &[RepositoryProject],
    alm_setting_key: &str,
    project_keys: &str,
    created_before: i32,
) -> (SonarQubeBindingStatus, Option<Outcome>, Option<sonarqube::Error>) {
    let count = |f: &dyn Fn(&ProjectResult) -> bool| {
        i32::try_from(results.iter().filter(|r| f(&r.result)).count()).unwrap_or(i32::MAX)
    };
    let created = count(&|r| matches!(r, ProjectResult::Bound { created: true, .. }));
    let bound = count(&|r| matches!(r, ProjectResult::InSync | ProjectResult::Bound { .. }));
    let failed = count(&|r| matches!(r, ProjectResult::Failed(_) | ProjectResult::InvalidKey(_)));
    let mut sorted: Vec<&RepositoryProject> = results.iter().collect();
    sorted.sort_by(|a, b| a.slug.cmp(&b.slug));
    let (listed, omitted) = needing_attention(sorted.iter().filter_map(|r| attention(&r.slug, &r.project, &r.result)));
    let status = SonarQubeBindingStatus {
        alm_setting_key: Some(alm_setting_key.to_owned()),
        project_keys: Some(project_keys.to_owned()),
        project_count: count(&|r| !matches!(r, ProjectResult::InvalidKey(_))),
        bound_count: bound,
        created_count: created_before.saturating_add(created),
        failed_count: failed,
        needs_attention: listed,
        needs_attention_omitted: omitted,
    };
    let first = |f: &dyn Fn(&ProjectResult) -> bool| sorted.iter().find(|r| f(&r.result)).copied();
    let others = |n: i32| {
        if n > 1 { format!(" (and {} more, see status.sonarqube.needsAttention)", n - 1) } else { String::new() }
    };
    // The transient failure first (it is retried), then what the user must resolve.
    if let Some(r) = first(&|r| matches!(r, ProjectResult::Failed(e) if e.is_transient())) {
        let ProjectResult::Failed(error) = &r.result else { return (status, None, None) };
        let outcome = super::connection::outcome_of(error);
        let message = format!("SonarQube project {} of {}: {}", r.project, r.slug, outcome.message);
        return (status, Some(Outcome { message, ..outcome }), Some(error.clone()));
    }
    if let Some(r) = first(&|r| matches!(r, ProjectResult::Claimed { .. })) {
        let ProjectResult::Claimed { by } = &r.result else { return (status, None, None) };
        let n = count(&|r| matches!(r, ProjectResult::Claimed { .. }));
        let message = format!(
            "SonarQube project {} (repository {}) is bound by ProjectBinding {by}, created first; a project has one binding, so this one leaves it{}: give one of them another sonarqube key",
            r.project,
            r.slug,
            others(n)
        );
        return (status, Some(Outcome::stalled(reasons::PROJECT_CLAIMED, message)), None);
    }
    if let Some(r) = first(&|r| matches!(r, ProjectResult::Failed(_) | ProjectResult::InvalidKey(_))) {
        let outcome = match &r.result {
            ProjectResult::Failed(error) => {
                let outcome = super::connection::outcome_of(error);
                let message =
                    format!("SonarQube project {} of {}: {}{}", r.project, r.slug, outcome.message, others(failed));
                Outcome { message, ..outcome }
            }
            ProjectResult::InvalidKey(why) => {
                Outcome::stalled(reasons::INVALID_CONFIGURATION, format!("{why}{}", others(failed)))
            }
            _ => return (status, None, None),
        };
        return (status, Some(outcome), None);
    }
    if let Some(r) = first(&|r| matches!(r, ProjectResult::Missing)) {
        let n = count(&|r| matches!(r, ProjectResult::Missing));
        let message = format!(
            "SonarQube has no project {} for repository {}{}: create it in SonarQube, or set sonarqube.createProjects: true",
            r.project,
            r.slug,
            others(n)
        );
        return (status, Some(Outcome::stalled(reasons::SONARQUBE_PROJECT_MISSING, message)), None);
    }
    (status, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> DesiredBinding {
        DesiredBinding {
            project: "PAY_api".into(),
            alm_setting: "bitbucket".into(),
            repository: "PAY".into(),
            slug: "api".into(),
            monorepo: false,
        }
    }

    fn bound(alm_setting: &str, slug: &str) -> Binding {
        Binding {
            alm: Alm::Bitbucket,
            key: alm_setting.into(),
            repository: Some("PAY".into()),
            slug: Some(slug.into()),
            url: None,
            monorepo: false,
        }
    }

    #[test]
    fn a_project_bound_as_asked_needs_nothing() {
        assert_eq!(
            plan_project(&desired(), &ObservedProject::Bound(bound("bitbucket", "api")), false, "api"),
            ProjectAction::None
        );
    }

    #[test]
    fn a_binding_changed_in_the_ui_is_put_back_and_said() {
        let was = bound("bitbucket", "other-repo");
        assert_eq!(
            plan_project(&desired(), &ObservedProject::Bound(was.clone()), false, "api"),
            ProjectAction::Bind { was: Some(was) }
        );
        let mut monorepo = bound("bitbucket", "api");
        monorepo.monorepo = true;
        assert!(matches!(
            plan_project(&desired(), &ObservedProject::Bound(monorepo), false, "api"),
            ProjectAction::Bind { .. }
        ));
    }

    #[test]
    fn a_missing_project_is_created_only_when_asked() {
        assert_eq!(plan_project(&desired(), &ObservedProject::Missing, false, "API"), ProjectAction::Missing);
        assert_eq!(
            plan_project(&desired(), &ObservedProject::Missing, true, "API"),
            ProjectAction::CreateAndBind { name: "API".into() }
        );
        assert_eq!(
            plan_project(&desired(), &ObservedProject::Unbound, false, "API"),
            ProjectAction::Bind { was: None }
        );
    }

    #[test]
    fn only_the_operators_own_binding_is_removed() {
        assert!(removes_binding(&desired(), &ObservedProject::Bound(bound("bitbucket", "api"))));
        assert!(!removes_binding(&desired(), &ObservedProject::Bound(bound("bitbucket", "elsewhere"))));
        assert!(!removes_binding(&desired(), &ObservedProject::Bound(bound("another-setting", "api"))));
        let mut github = bound("bitbucket", "api");
        github.alm = Alm::GitHub;
        assert!(!removes_binding(&desired(), &ObservedProject::Bound(github)));
        assert!(!removes_binding(&desired(), &ObservedProject::Unbound));
        assert!(!removes_binding(&desired(), &ObservedProject::Missing));
    }
}
