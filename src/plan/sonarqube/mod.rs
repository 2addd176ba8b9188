//! What must change in SonarQube for the Bitbucket integration (`sonarqube-api.md`): the
//! DevOps Platform setting a Bitbucket configuration implies ([`setting`]), the project key of
//! each bound repository ([`keys`]), each project's binding ([`bindings`]) and which of two
//! ProjectBindings claiming one SonarQube project gives way ([`claims`]). Pure, like the rest of
//! `plan`: the observed state comes in as plain values the SonarQube client's answers map to.

pub mod bindings;
pub mod claims;
pub mod keys;
pub mod setting;

/// A Bitbucket URL in the one form SonarQube is given and compared with: no trailing slash.
/// SonarQube compares URLs as exact strings, and a changed URL must come with the token again,
/// so two spellings of one URL would cost a needless token push each round.
pub fn normalize_url(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::normalize_url;

    #[test]
    fn a_trailing_slash_is_not_a_different_url() {
        assert_eq!(normalize_url("https://bitbucket.example.com/"), normalize_url("https://bitbucket.example.com"));
        assert_eq!(normalize_url("https://example.com/bitbucket//"), "https://example.com/bitbucket");
    }
}
