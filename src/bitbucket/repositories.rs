//! Repositories of a project (bitbucket-api.md §4.3–4.4).

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::{
    Client, Error,
    http::{Call, is_bidi_control},
    projects::not_found_under,
    server::plain,
};

/// Characters of a ref name the client accepts from a server.
const MAX_REF_CHARS: usize = 1024;

/// A ref as `default-branch` answers it; only its full name is kept.
#[derive(Deserialize)]
struct RawRef {
    id: String,
}

/// Whether a server's ref name is one the client keeps: a full ref, short, one printable line.
fn valid_ref(id: &str) -> bool {
    id.starts_with("refs/")
        && id.len() > "refs/".len()
        && id.chars().count() <= MAX_REF_CHARS
        && !id.chars().any(|c| c.is_control() || c.is_whitespace() || is_bidi_control(c))
}

/// Bitbucket's repository states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RepositoryState {
    /// Ready.
    Available,
    /// Just created, not ready yet.
    Initialising,
    /// Creation failed.
    InitialisationFailed,
    /// Offline.
    Offline,
    /// A state this client does not know.
    #[serde(other)]
    Unknown,
}

impl RepositoryState {
    /// The state as Bitbucket writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Initialising => "INITIALISING",
            Self::InitialisationFailed => "INITIALISATION_FAILED",
            Self::Offline => "OFFLINE",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// Where a repository can be cloned from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloneLinks {
    /// HTTP(S) clone URL.
    pub http: Option<String>,
    /// SSH clone URL; absent when SSH is off.
    pub ssh: Option<String>,
}

/// A repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    /// Slug, lower-case; changes on rename.
    pub slug: String,
    /// Numeric id; stable across renames.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// State.
    pub state: RepositoryState,
    /// Archived (read-only); always false before Bitbucket 8.0.
    pub archived: bool,
    /// Key of the project it belongs to.
    pub project_key: String,
    /// Clone URLs, picked by name (the server's order is not stable).
    pub clone: CloneLinks,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRepository {
    slug: String,
    id: i64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "unknown_state")]
    state: RepositoryState,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    project: Option<RawProjectRef>,
    #[serde(default)]
    links: RawLinks,
}

fn unknown_state() -> RepositoryState {
    RepositoryState::Unknown
}

#[derive(Deserialize)]
struct RawProjectRef {
    key: String,
}

#[derive(Default, Deserialize)]
struct RawLinks {
    #[serde(default)]
    clone: Vec<RawLink>,
}

#[derive(Deserialize)]
struct RawLink {
    href: String,
    #[serde(default)]
    name: Option<String>,
}

/// Longest repository name and slug Bitbucket allows.
const MAX_NAME: usize = 128;
/// Longest clone URL kept.
const MAX_CLONE_URL: usize = 2048;

impl RawRepository {
    /// The repository, with only text that may be shown as it is: `None` when the slug is not a
    /// slug (such an answer cannot be Bitbucket's). A name or clone URL that is not plain is
    /// left out (the slug stands for the name).
    fn into_repository(self, project_key: &str) -> Option<Repository> {
        let slug = plain(&self.slug, MAX_NAME, |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))?;
        let link = |wanted: &str| {
            self.links.clone.iter().find(|l| l.name.as_deref() == Some(wanted)).and_then(|l| clone_url(&l.href))
        };
        let project_key = self
            .project
            .as_ref()
            .and_then(|p| plain(&p.key, MAX_NAME, |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '~' | '-' | '.')))
            .unwrap_or_else(|| project_key.to_owned());
        Some(Repository {
            clone: CloneLinks { http: link("http"), ssh: link("ssh") },
            name: self
                .name
                .as_deref()
                .and_then(|name| plain(name, MAX_NAME, |c| !c.is_control() && !is_bidi_control(c)))
                .unwrap_or_else(|| slug.clone()),
            project_key,
            slug,
            id: self.id,
            state: self.state,
            archived: self.archived,
        })
    }
}

/// A clone URL that reads as one (`http(s)://` or `ssh://`, no control, bidirectional-text or
/// space characters, bounded length), or nothing.
fn clone_url(href: &str) -> Option<String> {
    let url = plain(href, MAX_CLONE_URL, |c| c.is_ascii_graphic())?;
    let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
    matches!(scheme.as_deref(), Some("http" | "https" | "ssh")).then_some(url)
}

impl Client {
    /// Every repository of a project, all pages.
    pub async fn list_repositories(&self, project: &str) -> Result<Vec<Repository>, Error> {
        let raw: Vec<RawRepository> = self
            .get_all_pages(
                || {
                    Call::new(
                        Method::GET,
                        "GET /rest/api/1.0/projects/{key}/repos",
                        &["rest", "api", "1.0", "projects", project, "repos"],
                        format!("list the repositories of project {project}"),
                    )
                },
                |call, response| self.failure(call, response, || not_found_under(response, project, None)),
            )
            .await?;
        let listed = raw.len();
        let repositories: Vec<Repository> = raw.into_iter().filter_map(|r| r.into_repository(project)).collect();
        if repositories.len() < listed {
            tracing::warn!(
                project,
                left_out = listed - repositories.len(),
                "Bitbucket listed repositories whose slug is not a repository slug; they are left out"
            );
        }
        Ok(repositories)
    }
    /// The repository's configured default branch as a full ref (`refs/heads/main`), whether or
    /// not it has been pushed (needs REPO_READ).
    pub async fn default_branch(&self, project: &str, slug: &str) -> Result<String, Error> {
        let call = Call::new(
            Method::GET,
            "GET /rest/api/1.0/projects/{key}/repos/{slug}/default-branch",
            &["rest", "api", "1.0", "projects", project, "repos", slug, "default-branch"],
            format!("read the default branch of {project}/{slug}"),
        );
        let response = self.send(&call).await?;
        if response.status != StatusCode::OK {
            return Err(self.failure(&call, &response, || {
                if response.error_detail().exception_name.is_none() {
                    // Not an answer about the repository: the path itself is unknown here.
                    Error::UnsupportedServer {
                        reason: "this Bitbucket does not offer GET .../default-branch; name the branch in refMatcher"
                            .into(),
                    }
                } else {
                    not_found_under(&response, project, Some(slug))
                }
            }));
        }
        let raw: RawRef = self.parse(&call, &response)?;
        if valid_ref(&raw.id) {
            Ok(raw.id)
        } else {
            Err(Error::UnexpectedResponse {
                status: response.status.as_u16(),
                endpoint: call.endpoint.to_owned(),
                reason: "the answer's id is not a full ref name".into(),
            })
        }
    }

    /// One repository.
    pub async fn get_repository(&self, project: &str, slug: &str) -> Result<Repository, Error> {
        let call = Call::new(
            Method::GET,
            "GET /rest/api/1.0/projects/{key}/repos/{slug}",
            &["rest", "api", "1.0", "projects", project, "repos", slug],
            format!("read repository {project}/{slug}"),
        );
        let response = self.send(&call).await?;
        if response.status != StatusCode::OK {
            return Err(self.failure(&call, &response, || not_found_under(&response, project, Some(slug))));
        }
        let raw: RawRepository = self.parse(&call, &response)?;
        raw.into_repository(project).ok_or_else(|| Error::UnexpectedResponse {
            status: response.status.as_u16(),
            endpoint: call.endpoint.to_owned(),
            reason: "the answer's slug is not a repository slug".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(slug: &str, name: Option<&str>, href: &str) -> RawRepository {
        let body = serde_json::json!({
            "slug": slug, "id": 7, "name": name, "state": "AVAILABLE",
            "project": {"key": "PAY"},
            "links": {"clone": [{"name": "http", "href": href}, {"name": "ssh", "href": "ssh://git@h:7999/pay/a.git"}]},
        });
        serde_json::from_value(body).expect("repository")
    }

    #[test]
    fn only_plain_server_text_is_kept() {
        let good =
            raw("payments-api", Some("Payments API"), "https://h/scm/pay/payments-api.git").into_repository("PAY");
        let good = good.expect("a plain repository");
        assert_eq!((good.slug.as_str(), good.name.as_str()), ("payments-api", "Payments API"));
        assert_eq!(good.clone.http.as_deref(), Some("https://h/scm/pay/payments-api.git"));

        assert!(raw("a/../b", None, "https://h/x").into_repository("PAY").is_none(), "a slug with a slash");
        assert!(raw(&"a".repeat(129), None, "https://h/x").into_repository("PAY").is_none(), "an overlong slug");

        let junk = raw("api", Some("evil\u{202e}txt.exe"), "javascript:alert(1)").into_repository("PAY").expect("kept");
        assert_eq!(junk.name, "api", "a name with a bidi override is replaced by the slug");
        assert_eq!(junk.clone.http, None, "a clone URL that is not one is left out");
        let long = raw("api", Some(&"n".repeat(10_000)), &format!("https://h/{}", "p".repeat(5000)));
        let long = long.into_repository("PAY").expect("kept");
        assert_eq!((long.name.as_str(), long.clone.http), ("api", None));
    }
}
