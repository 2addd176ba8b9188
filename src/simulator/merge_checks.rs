//! The modelled required-report merge checks (§8.2):
//! `GET|PUT|DELETE /rest/insights/{version}/projects/{key}/repos/{slug}/settings/merge-checks/{reportKey}`.
//! All three need REPO_ADMIN; a missing project or repository is `NoSuchRepositoryException`.
//! (When the feature is switched off the pipeline answers an HTML 404 before reaching here.)

use axum::{
    Extension,
    body::Bytes,
    extract::{Path, State as AxState, rejection::PathRejection},
    http::HeaderMap,
    response::Response,
};

use super::{
    Ctx, Simulator,
    repositories::require,
    respond::{ApiError, finish, json_body, no_content, ok, params},
    state::MergeCheck,
};

const NO_SUCH_REQUIRED_REPORT: &str = "com.atlassian.bitbucket.insights.NoSuchRequiredReportException";

type CheckPath = Result<Path<(String, String, String)>, PathRejection>;

pub(crate) async fn get(AxState(sim): AxState<Simulator>, Extension(ctx): Extension<Ctx>, path: CheckPath) -> Response {
    finish((|| {
        let (key, slug, report_key) = params(path)?;
        let state = sim.lock();
        require(&state, &ctx.caller, &key, &slug, 3, true)?;
        let check = state.repo(&key, &slug).and_then(|(_, repo)| repo.merge_checks.get(&report_key));
        match check {
            Some(check) => Ok(ok(&check.to_json())),
            None => Err(ApiError::new(
                404,
                format!("No required report with key {report_key} is configured for repository {key}/{slug}."),
                Some(NO_SUCH_REQUIRED_REPORT),
            )),
        }
    })())
}

pub(crate) async fn put(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    path: CheckPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    finish((|| {
        let (key, slug, report_key) = params(path)?;
        let value = json_body(&headers, &body)?;
        let mut state = sim.lock();
        require(&state, &ctx.caller, &key, &slug, 3, true)?;
        let check = MergeCheck::from_json(&value, Some(&report_key))
            .map_err(|(field, message)| ApiError::validation(vec![(field.to_owned(), message)]))?;
        let body = check.to_json();
        let repo = state.repo_mut(&key, &slug).ok_or_else(|| ApiError::no_such_repository(&key, &slug))?;
        repo.merge_checks.insert(report_key, check);
        Ok(ok(&body))
    })())
}

pub(crate) async fn delete(
    AxState(sim): AxState<Simulator>,
    Extension(ctx): Extension<Ctx>,
    path: CheckPath,
) -> Response {
    finish((|| {
        let (key, slug, report_key) = params(path)?;
        let mut state = sim.lock();
        require(&state, &ctx.caller, &key, &slug, 3, true)?;
        if let Some(repo) = state.repo_mut(&key, &slug) {
            repo.merge_checks.remove(&report_key);
        }
        Ok(no_content())
    })())
}
