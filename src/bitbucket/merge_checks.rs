//! Required-report merge checks: the one modelled contract of bitbucket-api.md §8.2, kept
//! entirely in this file. No public specification exists; whether a server speaks it is learnt
//! from its answers: a 404 whose body is not Bitbucket's error envelope means it does not.

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::{
    Client, Error,
    http::{Call, Response},
    projects::not_found_under,
};

/// The lowest annotation severity that blocks a merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Any annotation blocks ("Must not have any annotations").
    Low,
    /// Medium- and high-severity annotations block.
    Medium,
    /// High-severity annotations block.
    High,
}

/// A required report on one repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeCheck {
    /// The Code Insights report key.
    pub report_key: String,
    /// The report must pass (otherwise it only has to exist).
    pub must_pass: bool,
    /// The lowest annotation severity that blocks; `None` ignores annotations.
    pub min_severity: Option<Severity>,
}

/// The manual steps, for servers that do not speak the contract.
pub const MANUAL_STEPS: &str = "add it by hand: Repository settings > Code Insights > Add required report";

fn path<'a>(project: &'a str, slug: &'a str, report_key: &'a str) -> Vec<&'a str> {
    vec!["rest", "insights", "latest", "projects", project, "repos", slug, "settings", "merge-checks", report_key]
}

/// A 404 from a merge-check path: a missing repository or project, a server that does not speak
/// the contract (a 404 that is not the error envelope), or no check under that key (`None`).
fn classify_404(response: &Response, project: &str, slug: &str) -> Option<Error> {
    let detail = response.error_detail();
    if detail.exception_is("NoSuchRepositoryException") || detail.exception_is("NoSuchProjectException") {
        Some(not_found_under(response, project, Some(slug)))
    } else if !detail.enveloped {
        Some(Error::UnsupportedServer {
            reason: format!("this Bitbucket does not offer the required-report merge-check API; {MANUAL_STEPS}"),
        })
    } else {
        None
    }
}

impl Client {
    /// The merge check for `report_key` on a repository, or `None` when there is none.
    pub async fn get_merge_check(
        &self,
        project: &str,
        slug: &str,
        report_key: &str,
    ) -> Result<Option<MergeCheck>, Error> {
        let call = Call::new(
            Method::GET,
            "GET /rest/insights/latest/projects/{key}/repos/{slug}/settings/merge-checks/{reportKey}",
            &path(project, slug, report_key),
            format!("read the required reports of {project}/{slug} (needs REPO_ADMIN)"),
        );
        let response = self.send(&call).await?;
        match response.status {
            StatusCode::OK => self.parse(&call, &response).map(Some),
            StatusCode::NOT_FOUND => classify_404(&response, project, slug).map_or(Ok(None), Err),
            _ => Err(self.failure(&call, &response, || unreachable_404(project, slug))),
        }
    }

    /// Creates or replaces the merge check for `check.report_key`; returns what the server stored.
    pub async fn put_merge_check(&self, project: &str, slug: &str, check: &MergeCheck) -> Result<MergeCheck, Error> {
        let body =
            serde_json::to_value(check).map_err(|e| Error::Configuration(format!("cannot encode the check: {e}")))?;
        let call = Call::new(
            Method::PUT,
            "PUT /rest/insights/latest/projects/{key}/repos/{slug}/settings/merge-checks/{reportKey}",
            &path(project, slug, &check.report_key),
            format!("change the required reports of {project}/{slug} (needs REPO_ADMIN)"),
        )
        .json(body);
        let response = self.send(&call).await?;
        match response.status {
            status if status.is_success() => self.parse(&call, &response),
            StatusCode::NOT_FOUND => Err(classify_404(&response, project, slug)
                .unwrap_or_else(|| Error::RepositoryNotFound { project: project.to_owned(), slug: slug.to_owned() })),
            _ => Err(self.failure(&call, &response, || unreachable_404(project, slug))),
        }
    }

    /// Removes the merge check for `report_key`; one that does not exist counts as removed.
    pub async fn delete_merge_check(&self, project: &str, slug: &str, report_key: &str) -> Result<(), Error> {
        let call = Call::new(
            Method::DELETE,
            "DELETE /rest/insights/latest/projects/{key}/repos/{slug}/settings/merge-checks/{reportKey}",
            &path(project, slug, report_key),
            format!("change the required reports of {project}/{slug} (needs REPO_ADMIN)"),
        );
        let response = self.send(&call).await?;
        match response.status {
            status if status.is_success() => Ok(()),
            StatusCode::NOT_FOUND => classify_404(&response, project, slug).map_or(Ok(()), Err),
            _ => Err(self.failure(&call, &response, || unreachable_404(project, slug))),
        }
    }
}

/// 404s are classified before `failure` is reached; this only satisfies its signature.
fn unreachable_404(project: &str, slug: &str) -> Error {
    Error::RepositoryNotFound { project: project.to_owned(), slug: slug.to_owned() }
}
