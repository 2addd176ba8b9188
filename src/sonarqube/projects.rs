//! Projects (`sonarqube-api.md` §2.12): find the ones a binding names, create one when allowed.

use serde::Deserialize;

use super::{
    Client, Error,
    bindings::project_arg,
    http::{Call, form_encode},
};

/// Largest page SonarQube serves.
const PAGE_SIZE: usize = 500;
/// Most keys `projects=` takes.
const MAX_KEYS_PER_CALL: usize = 1000;
/// Most bytes of encoded keys in one URL: proxies and servers refuse URLs of 8 KiB or more, and
/// project keys may be 400 characters long.
const MAX_KEYS_BYTES: usize = 6000;
/// Longest project name SonarQube keeps whole.
const MAX_NAME: usize = 500;

/// A project as the search or the component reports it (server text: check before showing).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Project {
    /// The project key.
    pub key: String,
    /// The display name.
    #[serde(default)]
    pub name: String,
}

#[derive(Deserialize)]
struct SearchPage {
    paging: Paging,
    #[serde(default)]
    components: Vec<Project>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paging {
    page_index: usize,
    #[serde(default)]
    total: usize,
}

#[derive(Deserialize)]
struct Created {
    project: Project,
}

#[derive(Deserialize)]
struct Shown {
    component: Project,
}

/// Splits keys into the groups one search call may carry (by count and by URL length).
fn key_groups(keys: &[String]) -> Vec<&[String]> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut length = 0;
    for (index, key) in keys.iter().enumerate() {
        let encoded = form_encode(&[("", key)]).len();
        if index > start && (index - start >= MAX_KEYS_PER_CALL || length + encoded > MAX_KEYS_BYTES) {
            groups.push(&keys[start..index]);
            start = index;
            length = 0;
        }
        length += encoded;
    }
    if start < keys.len() {
        groups.push(&keys[start..]);
    }
    groups
}

impl Client {
    /// `GET api/projects/search?projects=…`: those of `keys` that exist (needs Administer
    /// System). Keys are sent in groups that fit one call, each read page by page.
    pub async fn search_projects(&self, keys: &[String]) -> Result<Vec<Project>, Error> {
        for key in keys {
            project_arg(key)?;
        }
        let max_pages = self.inner.limits.pages.max(1);
        let mut found = Vec::new();
        for group in key_groups(keys) {
            let mut page = 1;
            loop {
                if page > max_pages {
                    return Err(Error::ResponseTooLarge {
                        endpoint: "GET api/projects/search",
                        bound: format!("more than {max_pages} pages"),
                        advice: "ask for fewer projects at once",
                    });
                }
                let call = Call::new("GET api/projects/search", "search projects", "Administer System")
                    .query("projects", group.join(","))
                    .query("p", page)
                    .query("ps", PAGE_SIZE);
                let body: SearchPage = self.send_for(&call).await?;
                let served = body.components.len();
                found.extend(body.components);
                // A server that ignores `p` would repeat the first page forever.
                if served == 0 || body.paging.page_index != page || page * PAGE_SIZE >= body.paging.total {
                    break;
                }
                page += 1;
            }
        }
        Ok(found)
    }

    /// `POST api/projects/create`. A key that matches an existing one ignoring case is
    /// [`Error::ProjectKeyCollision`].
    pub async fn create_project(&self, key: &str, name: &str) -> Result<Project, Error> {
        let call = Call::new("POST api/projects/create", "create a project", "Create Projects")
            .form("project", project_arg(key)?)
            .form("name", super::error::checked("the SonarQube project name", name, MAX_NAME)?)
            .about(key);
        let body: Created = self.send_for(&call).await?;
        Ok(body.project)
    }

    /// `GET api/components/show`: the project, `None` when there is none (needs only Browse).
    pub async fn show_component(&self, key: &str) -> Result<Option<Project>, Error> {
        let call = Call::new("GET api/components/show", "read a project", "Browse")
            .query("component", project_arg(key)?)
            .about(key);
        let response = self.send(&call).await?;
        if response.status.is_success() {
            let body: Shown = self.parse(&call, &response)?;
            return Ok(Some(body.component));
        }
        // "Component key 'x' not found"
        if response.status == reqwest::StatusCode::NOT_FOUND && response.message().ends_with("not found") {
            return Ok(None);
        }
        Err(self.failure(&call, &response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_grouped_by_count_and_by_length() {
        let many: Vec<String> = (0..2500).map(|i| format!("p{i}")).collect();
        let groups = key_groups(&many);
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [1000, 1000, 500]);
        let long: Vec<String> = (0..40).map(|i| format!("{i:0>400}")).collect();
        let groups = key_groups(&long);
        assert!(groups.len() >= 3, "{} groups", groups.len());
        assert!(groups.iter().all(|g| g.iter().map(String::len).sum::<usize>() <= MAX_KEYS_BYTES));
        assert_eq!(groups.iter().map(|g| g.len()).sum::<usize>(), 40);
        assert!(key_groups(&[]).is_empty());
    }
}
