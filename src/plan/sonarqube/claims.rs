//! Two ProjectBindings that claim one SonarQube project would overwrite each other's binding
//! at every round (a project has one binding). The one created first keeps it; the later one
//! gives way on that project, named, until one of them changes.

use std::collections::{BTreeMap, HashMap};

/// One binding's claim: who it is, when it was created, and the project keys it would bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// `namespace/name` of the ProjectBinding.
    pub binding: String,
    /// Its `metadata.creationTimestamp`, as RFC 3339 (compared as text: they sort by time).
    pub created: String,
    /// The SonarQube project keys it binds.
    pub projects: Vec<String>,
}

/// For each binding that must give way, the projects it gives up and who holds each. The
/// holder of a project is the earliest-created claimant (by name when created at the same
/// second).
pub fn conflicts(claims: &[Claim]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut holder: HashMap<&str, &Claim> = HashMap::new();
    for claim in claims {
        for project in &claim.projects {
            let entry = holder.entry(project.as_str()).or_insert(claim);
            if (claim.created.as_str(), claim.binding.as_str()) < (entry.created.as_str(), entry.binding.as_str()) {
                *entry = claim;
            }
        }
    }
    let mut lost: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for claim in claims {
        for project in &claim.projects {
            if let Some(held) = holder.get(project.as_str()).filter(|h| h.binding != claim.binding) {
                lost.entry(claim.binding.clone()).or_default().push((project.clone(), held.binding.clone()));
            }
        }
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(binding: &str, created: &str, projects: &[&str]) -> Claim {
        Claim {
            binding: binding.into(),
            created: created.into(),
            projects: projects.iter().map(|p| (*p).into()).collect(),
        }
    }

    #[test]
    fn the_later_binding_gives_way_on_the_shared_project_only() {
        let claims = [
            claim("team-a/payments", "2026-01-01T00:00:00Z", &["PAY_api", "PAY_web"]),
            claim("team-b/copy", "2026-02-01T00:00:00Z", &["PAY_api", "OTHER_x"]),
        ];
        let lost = conflicts(&claims);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost["team-b/copy"], vec![("PAY_api".to_owned(), "team-a/payments".to_owned())]);
    }

    #[test]
    fn order_of_the_claims_does_not_matter() {
        let a = claim("ns/a", "2026-01-01T00:00:00Z", &["k"]);
        let b = claim("ns/b", "2026-01-01T00:00:00Z", &["k"]);
        assert_eq!(conflicts(&[a.clone(), b.clone()]), conflicts(&[b, a]));
    }

    #[test]
    fn no_shared_project_no_conflict() {
        let claims = [claim("ns/a", "1", &["x"]), claim("ns/b", "2", &["y"])];
        assert!(conflicts(&claims).is_empty());
    }
}
