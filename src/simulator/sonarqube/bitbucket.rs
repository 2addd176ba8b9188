//! The calls SonarQube itself makes to Bitbucket: the three checks of `validate` (§2.9) and the
//! repository fetch of v2 `bound-projects`. Redirects are not followed, so a URL that redirects
//! fails like on a real server.

use std::time::Duration;

use reqwest::{Client, StatusCode, Url, redirect::Policy};
use serde_json::Value;

const UNREACHABLE: &str = "Unable to contact Bitbucket server";

fn client() -> Result<Client, String> {
    Client::builder()
        .redirect(Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|_| UNREACHABLE.to_owned())
}

/// The base URL with one trailing slash removed (`removeEnd(url, "/")`), refused unless http(s).
fn base(url: &str) -> Result<&str, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("url must start with http:// or https://".to_owned());
    }
    Ok(url.strip_suffix('/').unwrap_or(url))
}

/// One GET mapped the way SonarQube's Bitbucket client maps it; `Ok` is the JSON body.
async fn get(client: &Client, url: Url, pat: Option<&str>) -> Result<Value, String> {
    let mut request = client.get(url).header("Accept", "application/json").header("x-atlassian-token", "no-check");
    if let Some(pat) = pat {
        request = request.bearer_auth(pat);
    }
    let response = request.send().await.map_err(|_| UNREACHABLE.to_owned())?;
    match response.status() {
        StatusCode::UNAUTHORIZED => return Err("Invalid personal access token".to_owned()),
        StatusCode::NOT_FOUND => return Err("Error 404. The requested Bitbucket server is unreachable.".to_owned()),
        status if !status.is_success() => return Err(UNREACHABLE.to_owned()),
        _ => {}
    }
    let bytes = response.bytes().await.map_err(|_| UNREACHABLE.to_owned())?;
    serde_json::from_slice(&bytes).map_err(|_| "Unexpected response from Bitbucket server".to_owned())
}

fn join(base: &str, segments: &[&str]) -> Result<Url, String> {
    let mut url = Url::parse(base).map_err(|_| UNREACHABLE.to_owned())?;
    url.path_segments_mut().map_err(|_| UNREACHABLE.to_owned())?.pop_if_empty().extend(segments);
    Ok(url)
}

fn shaped(body: &Value, check: impl Fn(&Value) -> bool) -> Result<(), String> {
    if check(body) { Ok(()) } else { Err(format!("{UNREACHABLE}, got an unexpected response")) }
}

/// `validate` of a Bitbucket Server setting: the URL, the token, then read access.
pub(crate) async fn validate(url: &str, pat: &str) -> Result<(), String> {
    let base = base(url)?;
    let client = client()?;
    let status = get(&client, join(base, &["status"])?, None).await?;
    shaped(&status, |v| v.get("state").is_some_and(Value::is_string))?;
    let paged = |v: &Value| v.get("values").is_some_and(Value::is_array);
    let users = get(&client, join(base, &["rest", "api", "1.0", "users"])?, Some(pat)).await?;
    shaped(&users, paged)?;
    let repos = get(&client, join(base, &["rest", "api", "1.0", "repos"])?, Some(pat)).await?;
    shaped(&repos, paged)
}

/// Fetches one repository with a user's PAT, as v2 `bound-projects` does before binding.
pub(crate) async fn fetch_repository(url: &str, pat: &str, project: &str, slug: &str) -> Result<(), String> {
    let base = base(url)?;
    let client = client()?;
    let repo =
        get(&client, join(base, &["rest", "api", "1.0", "projects", project, "repos", slug])?, Some(pat)).await?;
    shaped(&repo, |v| v.get("slug").is_some_and(Value::is_string))
}
