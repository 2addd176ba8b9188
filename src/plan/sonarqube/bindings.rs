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
