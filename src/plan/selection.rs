//! Which repositories of a project a binding selects, and which ones left it.

use std::collections::BTreeSet;

use crate::{
    api::binding::{ProjectBindingSpec, RepositorySelection},
    bitbucket::Repository,
};

/// Whether `text` matches a glob with `*` (any run of characters) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and which text position it is currently standing in for.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether a selection takes a repository: an include pattern matches its slug, no exclude
/// pattern does, and it is not archived when archived ones are excluded.
pub fn selects(selection: &RepositorySelection, repository: &Repository) -> bool {
    let slug = repository.slug.to_ascii_lowercase();
    selection.include.iter().any(|p| glob_match(p, &slug))
        && !selection.exclude.iter().any(|p| glob_match(p, &slug))
        && !(selection.exclude_archived && repository.archived)
}

/// The repositories of a project (as listed) that a binding with a selection binds, by slug.
/// A binding of one slug binds that repository whatever its state.
pub fn select(spec: &ProjectBindingSpec, repositories: &[Repository]) -> Vec<Repository> {
    let mut chosen: Vec<Repository> = match (&spec.repository_slug, &spec.repositories) {
        (Some(slug), _) => repositories.iter().filter(|r| r.slug.eq_ignore_ascii_case(slug)).cloned().collect(),
        (None, Some(selection)) => repositories.iter().filter(|r| selects(selection, r)).cloned().collect(),
        (None, None) => Vec::new(),
    };
    chosen.sort_by(|a, b| a.slug.cmp(&b.slug));
    chosen.dedup_by(|a, b| a.slug == b.slug);
    chosen
}

/// The repositories (by id) covered until now (`previous`, in its order) that are not among
/// those `bound` now: they left the selection (or Bitbucket), so a round only cleans them up.
pub fn departed(previous: &[i64], bound: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let bound: BTreeSet<i64> = bound.into_iter().collect();
    previous.iter().filter(|id| !bound.contains(id)).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitbucket::{CloneLinks, RepositoryState};

    #[test]
    fn globs() {
        let cases = [
            ("*", "anything", true),
            ("*", "", true),
            ("api-*", "api-gateway", true),
            ("api-*", "web-api", false),
            ("*-api", "payments-api", true),
            ("*-api", "payments-api-v2", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*legacy*", "old-legacy-tool", true),
            ("*.*", "site.docs", true),
            ("*.*", "sitedocs", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} vs {text}");
        }
    }

    fn repo(slug: &str, archived: bool) -> Repository {
        Repository {
            slug: slug.into(),
            id: 1,
            name: slug.into(),
            state: RepositoryState::Available,
            archived,
            project_key: "PLAT".into(),
            clone: CloneLinks::default(),
        }
    }

    fn spec(yaml: &str) -> ProjectBindingSpec {
        let text = format!(
            "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: ProjectBinding\nmetadata: {{name: b}}\nspec:\n  configurationRef: {{name: c}}\n  projectKey: PLAT\n{yaml}"
        );
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let validator = crate::api::validation::validator_for("bitbucket.integrations.dev/v1alpha1", "ProjectBinding");
        let admitted =
            validator.unwrap_or_else(|| panic!("no validator")).admit(&value, None).unwrap_or_else(|e| panic!("{e:?}"));
        let binding: crate::api::ProjectBinding = serde_json::from_value(admitted).unwrap_or_else(|e| panic!("{e}"));
        binding.spec
    }

    #[test]
    fn selections_apply_include_exclude_and_archived() {
        let all = [repo("api", false), repo("web", false), repo("old-tool", true), repo("sandbox-x", false)];
        let slugs = |spec: &ProjectBindingSpec| select(spec, &all).into_iter().map(|r| r.slug).collect::<Vec<_>>();
        assert_eq!(slugs(&spec("  repositories: {}\n")), ["api", "sandbox-x", "web"], "defaults: all, archived out");
        assert_eq!(
            slugs(&spec("  repositories: {exclude: ['sandbox-*'], excludeArchived: false}\n")),
            ["api", "old-tool", "web"]
        );
        assert_eq!(slugs(&spec("  repositories: {include: ['a*', 'w?b']}\n")), ["api", "web"]);
        assert_eq!(slugs(&spec("  repositorySlug: old-tool\n")), ["old-tool"], "one slug binds even when archived");
        assert!(slugs(&spec("  repositorySlug: missing\n")).is_empty());
    }

    #[test]
    fn departed_repositories() {
        struct Case {
            name: &'static str,
            previous: &'static [i64],
            bound: &'static [i64],
            want: &'static [i64],
        }
        let cases = [
            Case { name: "a first round has nothing that left", previous: &[], bound: &[1], want: &[] },
            Case { name: "all still bound", previous: &[1, 2], bound: &[2, 1], want: &[] },
            Case { name: "one left the selection", previous: &[1, 5, 9], bound: &[1, 9], want: &[5] },
            Case { name: "everything left", previous: &[7, 3], bound: &[], want: &[7, 3] },
            Case { name: "new repositories are not departed", previous: &[1], bound: &[1, 2], want: &[] },
        ];
        for case in cases {
            assert_eq!(departed(case.previous, case.bound.iter().copied()), case.want, "{}", case.name);
        }
    }
}
