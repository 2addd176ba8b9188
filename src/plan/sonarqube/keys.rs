//! The SonarQube project key of a bound repository: the binding's `projectKey`, or its
//! `projectKeyTemplate` filled in with the Bitbucket project key and the repository slug.

use crate::api::binding::SonarQubeProject;

/// SonarQube's longest project key.
pub const MAX_KEY_LENGTH: usize = 400;
/// SonarQube abbreviates longer project names; the operator cuts them itself so that the name it
/// compares is the name it sent.
pub const MAX_NAME_LENGTH: usize = 500;

/// Why a repository has no valid SonarQube project key; the message names the field and what
/// to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// The project key of repository `slug` of Bitbucket project `bitbucket_project`.
pub fn project_key(spec: &SonarQubeProject, bitbucket_project: &str, slug: &str) -> Result<String, KeyError> {
    let (key, field) = match (&spec.project_key, &spec.project_key_template) {
        (Some(key), _) => (key.clone(), "sonarqube.projectKey"),
        (None, Some(template)) => (
            template.replace("{projectKey}", bitbucket_project).replace("{slug}", slug),
            "sonarqube.projectKeyTemplate",
        ),
        (None, None) => {
            return Err(KeyError(
                "sonarqube needs projectKey (one repository) or projectKeyTemplate (a selection)".into(),
            ));
        }
    };
    check_key(&key).map_err(|why| {
        let personal = bitbucket_project.starts_with('~') && spec.project_key.is_none();
        let hint = if personal {
            ": a personal project's key (~name) cannot be part of a SonarQube key; leave {projectKey} out of the template"
        } else {
            ""
        };
        KeyError(format!("{field} gives {key:?} for repository {slug}, which {why}{hint}"))
    })?;
    Ok(key)
}

/// Whether SonarQube accepts `key` as a project key: 1 to 400 characters, letters, digits,
/// `-`, `_`, `.` and `:`, with at least one non-digit. Says what is wrong otherwise.
pub fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("is empty");
    }
    if key.len() > MAX_KEY_LENGTH {
        return Err("is longer than SonarQube's 400 characters");
    }
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) {
        return Err("holds a character SonarQube keys cannot (only letters, digits, '-', '_', '.' and ':')");
    }
    if key.chars().all(|c| c.is_ascii_digit()) {
        return Err("is all digits (SonarQube keys need at least one other character)");
    }
    Ok(())
}

/// The name a created project gets: its repository's name, cut to what SonarQube keeps.
pub fn project_name(repository_name: &str) -> String {
    repository_name.chars().take(MAX_NAME_LENGTH).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(template: &str) -> SonarQubeProject {
        SonarQubeProject { project_key: None, project_key_template: Some(template.into()), create_projects: false }
    }

    #[test]
    fn a_template_is_filled_in_per_repository() {
        let spec = template("{projectKey}_{slug}");
        assert_eq!(project_key(&spec, "PAY", "payments-api").as_deref(), Ok("PAY_payments-api"));
        assert_eq!(project_key(&spec, "PAY", "ledger").as_deref(), Ok("PAY_ledger"));
        let spec = template("acme:{slug}:{slug}");
        assert_eq!(project_key(&spec, "PAY", "x").as_deref(), Ok("acme:x:x"));
    }

    #[test]
    fn one_key_is_taken_as_given() {
        let spec = SonarQubeProject {
            project_key: Some("payments:api".into()),
            project_key_template: None,
            create_projects: true,
        };
        assert_eq!(project_key(&spec, "PAY", "payments-api").as_deref(), Ok("payments:api"));
    }

    #[test]
    fn a_personal_project_key_cannot_go_into_a_key_and_the_error_says_what_to_do() {
        let error = project_key(&template("{projectKey}_{slug}"), "~alice", "notes").unwrap_err();
        assert!(error.0.contains("sonarqube.projectKeyTemplate"), "{error}");
        assert!(error.0.contains("leave {projectKey} out"), "{error}");
        assert_eq!(project_key(&template("alice_{slug}"), "~alice", "notes").as_deref(), Ok("alice_notes"));
    }

    #[test]
    fn keys_sonarqube_refuses_are_refused_here() {
        assert!(check_key("").is_err());
        assert!(check_key("12345").is_err());
        assert!(check_key("a b").is_err());
        assert!(check_key(&"a".repeat(MAX_KEY_LENGTH + 1)).is_err());
        assert!(check_key(&"a".repeat(MAX_KEY_LENGTH)).is_ok());
        assert!(check_key("payments:api-2.0_x").is_ok());
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        let name = "é".repeat(MAX_NAME_LENGTH + 10);
        assert_eq!(project_name(&name).chars().count(), MAX_NAME_LENGTH);
        assert_eq!(project_name("Payments API"), "Payments API");
    }
}
