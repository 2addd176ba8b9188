//! Required-builds merge checks (bitbucket-api.md §8.3): the documented conditions API of Data
//! Center 7.14+, kept in this file. Conditions have server-assigned ids and no natural key, so
//! callers match them by content. The list is plural (`conditions`), writes are singular
//! (`condition`). A server without the API answers its paths with a 404 that names no exception,
//! which tells it apart from a missing repository (`NoSuchRepositoryException`) or, on an update,
//! a missing condition.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Client, Error,
    http::{Call, Response, is_bidi_control},
    projects::not_found_under,
};

/// Build keys one condition may require (the API's own bound).
pub const MAX_BUILD_KEYS: usize = 100;
/// Characters of one build key: Bitbucket stores build keys in 255 characters.
pub const MAX_BUILD_KEY_CHARS: usize = 255;
/// Characters of a matcher's id (a ref name, pattern or model name).
pub const MAX_MATCHER_ID_CHARS: usize = 1024;
/// Characters kept of a matcher type the client does not know.
const MAX_TYPE_CHARS: usize = 64;

/// Why a server is taken not to offer the API.
const UNSUPPORTED: &str = "this Bitbucket does not offer the required-builds API \
                           (/rest/required-builds, Data Center 7.14 or later); upgrade it, or add the check by hand: \
                           Repository settings > Required builds";

/// What kind of refs a [`RefMatcher`] selects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RefMatcherType {
    /// Every ref (`ANY_REF`).
    AnyRef,
    /// One branch, by its full ref name (`BRANCH`).
    Branch,
    /// Refs matching a pattern (`PATTERN`).
    Pattern,
    /// A branch-model category such as `FEATURE` (`MODEL_CATEGORY`).
    ModelCategory,
    /// A branch-model branch such as `production` (`MODEL_BRANCH`).
    ModelBranch,
    /// A type this client does not know, as the server named it (cleaned and bounded).
    Other(String),
}

impl RefMatcherType {
    /// The wire id, such as `BRANCH`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::AnyRef => "ANY_REF",
            Self::Branch => "BRANCH",
            Self::Pattern => "PATTERN",
            Self::ModelCategory => "MODEL_CATEGORY",
            Self::ModelBranch => "MODEL_BRANCH",
            Self::Other(text) => text,
        }
    }

    /// The type a wire id names; unknown ids are kept as [`RefMatcherType::Other`].
    pub fn parse(id: &str) -> Self {
        match id {
            "ANY_REF" => Self::AnyRef,
            "BRANCH" => Self::Branch,
            "PATTERN" => Self::Pattern,
            "MODEL_CATEGORY" => Self::ModelCategory,
            "MODEL_BRANCH" => Self::ModelBranch,
            other => Self::Other(cleaned(other, MAX_TYPE_CHARS)),
        }
    }
}

/// Which refs a condition applies to (or is exempt from).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RefMatcher {
    /// The ref name, pattern or model name, such as `refs/heads/main`.
    pub id: String,
    /// What `id` is.
    pub kind: RefMatcherType,
}

impl RefMatcher {
    fn body(&self) -> Value {
        json!({"id": self.id, "type": {"id": self.kind.as_str()}})
    }
}

/// A required-builds condition as the server stores it. Display fields (`displayId`, the type's
/// `name`) are not kept, so two conditions compare equal when they require the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredBuildCondition {
    /// Server-assigned id.
    pub id: i64,
    /// The build keys that must pass, in the server's order.
    pub build_parent_keys: Vec<String>,
    /// The target refs of the pull requests it applies to.
    pub ref_matcher: RefMatcher,
    /// Source refs whose pull requests are exempt.
    pub exempt_ref_matcher: Option<RefMatcher>,
}

/// What a condition should be: the body of a create and of an update (a full replacement).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredBuildRequest {
    /// The build keys that must pass (1 to [`MAX_BUILD_KEYS`]).
    pub build_parent_keys: Vec<String>,
    /// The target refs it applies to.
    pub ref_matcher: RefMatcher,
    /// Source refs whose pull requests are exempt.
    pub exempt_ref_matcher: Option<RefMatcher>,
}

impl RequiredBuildRequest {
    /// Checks what Bitbucket would refuse, so that the error names the field and the fix.
    pub fn validate(&self) -> Result<(), Error> {
        let count = self.build_parent_keys.len();
        if count == 0 || count > MAX_BUILD_KEYS {
            return Err(Error::InvalidArgument {
                field: "buildParentKeys",
                problem: format!("holds {count} build keys; use between 1 and {MAX_BUILD_KEYS}"),
            });
        }
        for (index, key) in self.build_parent_keys.iter().enumerate() {
            text_argument("buildParentKeys", index, key, MAX_BUILD_KEY_CHARS)?;
        }
        matcher_argument("refMatcher", &self.ref_matcher)?;
        if let Some(exempt) = &self.exempt_ref_matcher {
            matcher_argument("exemptRefMatcher", exempt)?;
        }
        Ok(())
    }

    fn body(&self) -> Value {
        let mut body = json!({
            "buildParentKeys": self.build_parent_keys,
            "refMatcher": self.ref_matcher.body(),
        });
        if let (Some(exempt), Some(map)) = (&self.exempt_ref_matcher, body.as_object_mut()) {
            map.insert("exemptRefMatcher".into(), exempt.body());
        }
        body
    }
}

fn text_argument(field: &'static str, index: usize, text: &str, max: usize) -> Result<(), Error> {
    let problem = if text.trim().is_empty() {
        Some("is empty; use a non-empty build key".to_owned())
    } else if text.chars().count() > max {
        Some(format!("is {} characters long; Bitbucket allows at most {max}", text.chars().count()))
    } else if text.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        Some("holds control characters; remove them".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::InvalidArgument { field, problem: format!("entry {index} {problem}") }),
        None => Ok(()),
    }
}

fn matcher_argument(field: &'static str, matcher: &RefMatcher) -> Result<(), Error> {
    let id = &matcher.id;
    if id.trim().is_empty() {
        return Err(Error::InvalidArgument { field, problem: "has an empty id; use a ref name or pattern".into() });
    }
    if id.chars().count() > MAX_MATCHER_ID_CHARS || id.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(Error::InvalidArgument {
            field,
            problem: format!(
                "has an id that is longer than {MAX_MATCHER_ID_CHARS} characters or holds control characters"
            ),
        });
    }
    if let RefMatcherType::Other(kind) = &matcher.kind
        && (kind.is_empty() || !kind.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
    {
        return Err(Error::InvalidArgument {
            field,
            problem: "has a type that is not a Bitbucket matcher type; use ANY_REF, BRANCH, PATTERN, MODEL_CATEGORY \
                      or MODEL_BRANCH"
                .into(),
        });
    }
    Ok(())
}

/// Server text made safe to keep: no control characters, at most `max` characters.
fn cleaned(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control() && !is_bidi_control(*c)).take(max).collect()
}

#[derive(Deserialize)]
struct RawType {
    id: String,
}

#[derive(Deserialize)]
struct RawMatcher {
    id: String,
    #[serde(rename = "type")]
    kind: RawType,
}

impl From<RawMatcher> for RefMatcher {
    fn from(raw: RawMatcher) -> Self {
        Self { id: cleaned(&raw.id, MAX_MATCHER_ID_CHARS), kind: RefMatcherType::parse(&raw.kind.id) }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCondition {
    id: i64,
    #[serde(default)]
    build_parent_keys: Vec<String>,
    ref_matcher: RawMatcher,
    #[serde(default)]
    exempt_ref_matcher: Option<RawMatcher>,
}

impl From<RawCondition> for RequiredBuildCondition {
    fn from(raw: RawCondition) -> Self {
        Self {
            id: raw.id,
            build_parent_keys: raw.build_parent_keys.iter().map(|k| cleaned(k, MAX_BUILD_KEY_CHARS)).collect(),
            ref_matcher: raw.ref_matcher.into(),
            exempt_ref_matcher: raw.exempt_ref_matcher.map(RefMatcher::from),
        }
    }
}

fn segments<'a>(project: &'a str, slug: &'a str, last: &'a str) -> Vec<&'a str> {
    vec!["rest", "required-builds", "latest", "projects", project, "repos", slug, last]
}

/// A call on one condition: `{verb} required-builds condition {id} of {project}/{slug}`.
fn one_condition(method: Method, endpoint: &'static str, project: &str, slug: &str, id: i64, verb: &str) -> Call {
    let id_text = id.to_string();
    let mut path = segments(project, slug, "condition");
    path.push(&id_text);
    Call::new(
        method,
        endpoint,
        &path,
        format!("{verb} required-builds condition {id} of {project}/{slug} (needs REPO_ADMIN)"),
    )
}

/// What a 404 from these paths means: a missing project or repository, a server without the API
/// (no exception named), or otherwise the condition (`None`).
fn classify_404(response: &Response, project: &str, slug: &str) -> Option<Error> {
    let detail = response.error_detail();
    if detail.exception_is("NoSuchRepositoryException") || detail.exception_is("NoSuchProjectException") {
        Some(not_found_under(response, project, Some(slug)))
    } else if detail.exception_name.is_none() {
        Some(Error::UnsupportedServer { reason: UNSUPPORTED.into() })
    } else {
        None
    }
}

impl Client {
    /// Every required-builds condition of a repository (needs REPO_READ).
    pub async fn list_required_builds(&self, project: &str, slug: &str) -> Result<Vec<RequiredBuildCondition>, Error> {
        let raw: Vec<RawCondition> = self
            .get_all_pages(
                || {
                    Call::new(
                        Method::GET,
                        "GET /rest/required-builds/latest/projects/{key}/repos/{slug}/conditions",
                        &segments(project, slug, "conditions"),
                        format!("read the required builds of {project}/{slug} (needs REPO_READ)"),
                    )
                },
                |call, response| self.failure(call, response, || repository_or_unsupported(response, project, slug)),
            )
            .await?;
        Ok(raw.into_iter().map(RequiredBuildCondition::from).collect())
    }

    /// Creates a condition and returns it as stored, with its new id. Not retried: a lost answer
    /// could mean it exists, so callers list and match by content first.
    pub async fn create_required_build(
        &self,
        project: &str,
        slug: &str,
        condition: &RequiredBuildRequest,
    ) -> Result<RequiredBuildCondition, Error> {
        condition.validate()?;
        let call = Call::new(
            Method::POST,
            "POST /rest/required-builds/latest/projects/{key}/repos/{slug}/condition",
            &segments(project, slug, "condition"),
            format!("change the required builds of {project}/{slug} (needs REPO_ADMIN)"),
        )
        .json(condition.body());
        let response = self.send(&call).await?;
        if !response.status.is_success() {
            return Err(self.failure(&call, &response, || repository_or_unsupported(&response, project, slug)));
        }
        self.parse::<RawCondition>(&call, &response).map(RequiredBuildCondition::from)
    }

    /// Replaces condition `id` with `condition`; returns it as stored.
    pub async fn update_required_build(
        &self,
        project: &str,
        slug: &str,
        id: i64,
        condition: &RequiredBuildRequest,
    ) -> Result<RequiredBuildCondition, Error> {
        condition.validate()?;
        let call = one_condition(
            Method::PUT,
            "PUT /rest/required-builds/latest/projects/{key}/repos/{slug}/condition/{id}",
            project,
            slug,
            id,
            "change",
        )
        .json(condition.body());
        let response = self.send(&call).await?;
        match response.status {
            status if status.is_success() => {
                self.parse::<RawCondition>(&call, &response).map(RequiredBuildCondition::from)
            }
            StatusCode::NOT_FOUND => Err(classify_404(&response, project, slug).unwrap_or_else(|| Error::NotFound {
                what: format!("required-builds condition {id} of {project}/{slug}"),
            })),
            _ => Err(self.failure(&call, &response, || repository_or_unsupported(&response, project, slug))),
        }
    }

    /// Deletes condition `id`; one that does not exist counts as deleted (Bitbucket answers 204).
    pub async fn delete_required_build(&self, project: &str, slug: &str, id: i64) -> Result<(), Error> {
        let call = one_condition(
            Method::DELETE,
            "DELETE /rest/required-builds/latest/projects/{key}/repos/{slug}/condition/{id}",
            project,
            slug,
            id,
            "delete",
        );
        let response = self.send(&call).await?;
        match response.status {
            status if status.is_success() => Ok(()),
            StatusCode::NOT_FOUND => classify_404(&response, project, slug).map_or(Ok(()), Err),
            _ => Err(self.failure(&call, &response, || repository_or_unsupported(&response, project, slug))),
        }
    }
}

/// A 404 where no single condition is addressed: the repository or the API is missing.
fn repository_or_unsupported(response: &Response, project: &str, slug: &str) -> Error {
    classify_404(response, project, slug).unwrap_or_else(|| Error::UnsupportedServer { reason: UNSUPPORTED.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(keys: &[&str]) -> RequiredBuildRequest {
        RequiredBuildRequest {
            build_parent_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ref_matcher: RefMatcher { id: "refs/heads/main".into(), kind: RefMatcherType::Branch },
            exempt_ref_matcher: None,
        }
    }

    fn field_of(result: Result<(), Error>) -> Option<&'static str> {
        match result {
            Err(Error::InvalidArgument { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn matcher_types_round_trip_and_unknown_ones_are_kept_cleaned() {
        for id in ["ANY_REF", "BRANCH", "PATTERN", "MODEL_CATEGORY", "MODEL_BRANCH"] {
            let kind = RefMatcherType::parse(id);
            assert!(!matches!(kind, RefMatcherType::Other(_)), "{id}");
            assert_eq!(kind.as_str(), id);
        }
        let odd = RefMatcherType::parse("TAG\u{202e}\n");
        assert_eq!(odd, RefMatcherType::Other("TAG".into()));
        let long = RefMatcherType::parse(&"X".repeat(500));
        assert_eq!(long.as_str().chars().count(), MAX_TYPE_CHARS);
    }

    #[test]
    fn requests_outside_the_api_bounds_name_the_field() {
        assert_eq!(field_of(request(&["ci"]).validate()), None);
        assert_eq!(field_of(request(&[]).validate()), Some("buildParentKeys"));
        let many: Vec<String> = (0..=MAX_BUILD_KEYS).map(|i| format!("k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(field_of(request(&many).validate()), Some("buildParentKeys"));
        assert_eq!(field_of(request(&many[..MAX_BUILD_KEYS]).validate()), None);
        assert_eq!(field_of(request(&["ci", " "]).validate()), Some("buildParentKeys"));
        let long = "k".repeat(MAX_BUILD_KEY_CHARS + 1);
        assert_eq!(field_of(request(&[&long]).validate()), Some("buildParentKeys"));
        assert_eq!(field_of(request(&["a\nb"]).validate()), Some("buildParentKeys"));

        let mut empty_ref = request(&["ci"]);
        empty_ref.ref_matcher.id = String::new();
        assert_eq!(field_of(empty_ref.validate()), Some("refMatcher"));
        let mut odd_exempt = request(&["ci"]);
        odd_exempt.exempt_ref_matcher =
            Some(RefMatcher { id: "refs/heads/x".into(), kind: RefMatcherType::Other("lower case".into()) });
        assert_eq!(field_of(odd_exempt.validate()), Some("exemptRefMatcher"));
    }

    #[test]
    fn the_body_carries_the_exempt_matcher_only_when_given() {
        let plain = request(&["ci"]).body();
        assert_eq!(
            plain,
            json!({"buildParentKeys": ["ci"], "refMatcher": {"id": "refs/heads/main", "type": {"id": "BRANCH"}}})
        );
        let mut exempt = request(&["ci"]);
        exempt.exempt_ref_matcher = Some(RefMatcher { id: "release/*".into(), kind: RefMatcherType::Pattern });
        assert_eq!(exempt.body()["exemptRefMatcher"], json!({"id": "release/*", "type": {"id": "PATTERN"}}));
    }

    #[test]
    fn conditions_read_without_display_fields_and_with_server_text_cleaned() {
        let raw: RawCondition = serde_json::from_value(json!({
            "id": 7,
            "buildParentKeys": ["ci\u{0007}", "lint"],
            "refMatcher": {"id": "refs/heads/main", "displayId": "main", "type": {"id": "BRANCH", "name": "Branch"}},
            "exemptRefMatcher": null
        }))
        .unwrap();
        let condition = RequiredBuildCondition::from(raw);
        assert_eq!(condition.id, 7);
        assert_eq!(condition.build_parent_keys, vec!["ci".to_owned(), "lint".to_owned()]);
        assert_eq!(condition.ref_matcher, RefMatcher { id: "refs/heads/main".into(), kind: RefMatcherType::Branch });
        assert_eq!(condition.exempt_ref_matcher, None);
    }
}
