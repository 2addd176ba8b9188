//! The required-builds condition a RequiredBuild wants on each repository, and what must change
//! for a repository's conditions to hold it.
//!
//! Bitbucket gives a condition only a server-assigned id, so the operator knows its own by their
//! content. Two conditions have the same content when they require the same set of build keys
//! (order and repeats aside), apply to the same refs and exempt the same refs. Refs are the same
//! when the matcher types are and, except for `AnyRef` (which matches every ref whatever its
//! id), so are the ids; a branch is compared as its full ref (`main` is `refs/heads/main`).
//! Nothing else of a condition (such as whether it applies to the merge queue) is compared.
//!
//! On one repository, with the desired content (from the spec) and the applied one (from
//! `status.applied`, what the operator last wrote):
//! - conditions with the desired content are in sync. One made by hand is adopted as it is:
//!   never a second create, which also covers a crash between the create and the status write;
//! - otherwise a condition with the applied content is updated in place to the desired one;
//! - otherwise the desired condition is created.
//!
//! Ours are the conditions with the desired or the applied content; of them one is kept and the
//! rest (duplicates, or an old one left beside an adopted one) are deleted. Any other condition
//! is someone else's and is never touched. `managementPolicy: Observe` reports the same findings
//! and changes nothing.

use std::collections::BTreeSet;

use crate::{
    api::{
        required_build::{AppliedBuild, RefMatcher as SpecMatcher, RefMatcherType as SpecType, RequiredBuildSpec},
        required_report::{DeletionPolicy, ManagementPolicy},
    },
    bitbucket::{RefMatcher, RefMatcherType as WireType, RequiredBuildCondition, RequiredBuildRequest},
};

/// The id Bitbucket's `ANY_REF` matcher is sent with; it is never compared.
pub const ANY_REF_ID: &str = "ANY_REF_MATCHER_ID";

/// A matcher of one branch, given by name or full ref.
pub fn branch(name: &str) -> RefMatcher {
    RefMatcher { id: full_ref(name), kind: WireType::Branch }
}

/// Whether both matchers select the same refs (see the module doc).
pub fn same_refs(a: &RefMatcher, b: &RefMatcher) -> bool {
    a.kind == b.kind
        && match a.kind {
            WireType::AnyRef => true,
            WireType::Branch => full_ref(&a.id) == full_ref(&b.id),
            _ => a.id == b.id,
        }
}

fn full_ref(branch: &str) -> String {
    if branch.starts_with("refs/") { branch.to_owned() } else { format!("refs/heads/{branch}") }
}

/// What a condition requires, where, and where not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    /// The builds that must pass.
    pub build_keys: BTreeSet<String>,
    /// The refs (pull request targets) it applies to.
    pub ref_matcher: RefMatcher,
    /// The refs exempt from it.
    pub exempt: Option<RefMatcher>,
}

impl Content {
    /// Whether both have the same content (see the module doc).
    pub fn same_as(&self, other: &Self) -> bool {
        self.build_keys == other.build_keys
            && same_refs(&self.ref_matcher, &other.ref_matcher)
            && match (&self.exempt, &other.exempt) {
                (None, None) => true,
                (Some(a), Some(b)) => same_refs(a, b),
                _ => false,
            }
    }

    /// The body that creates a condition with this content, or gives it to one.
    pub fn request(&self) -> RequiredBuildRequest {
        RequiredBuildRequest {
            build_parent_keys: self.build_keys.iter().cloned().collect(),
            ref_matcher: self.ref_matcher.clone(),
            exempt_ref_matcher: self.exempt.clone(),
        }
    }
}

/// A condition as read from one repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// Bitbucket's id for it.
    pub id: i64,
    /// What it requires.
    pub content: Content,
}

impl From<&RequiredBuildCondition> for Condition {
    fn from(condition: &RequiredBuildCondition) -> Self {
        Self {
            id: condition.id,
            content: Content {
                build_keys: condition.build_parent_keys.iter().cloned().collect(),
                ref_matcher: condition.ref_matcher.clone(),
                exempt: condition.exempt_ref_matcher.clone(),
            },
        }
    }
}

/// A spec (or applied record) that cannot be turned into a condition. The CRD's rules refuse
/// all of these; the error names the field for objects that bypassed them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// A matcher other than `AnyRef` without a value.
    #[error("{field}.value is required for type {type_:?}: name the branch, pattern, category or model branch")]
    MissingValue {
        /// `refMatcher` or `exemptRefMatcher`.
        field: &'static str,
        /// The matcher's type.
        type_: SpecType,
    },
    /// No build keys.
    #[error("buildParentKeys is empty: list at least one build key")]
    NoBuildKeys,
}

/// The condition a spec wants on a repository whose default branch is `default_branch` (a
/// name or full ref; used when the spec has no `refMatcher`).
pub fn desired(spec: &RequiredBuildSpec, default_branch: &str) -> Result<Content, ContentError> {
    content(&spec.build_parent_keys, spec.ref_matcher.as_ref(), spec.exempt_ref_matcher.as_ref(), default_branch)
}

/// The condition last applied to a repository whose default branch is `default_branch`.
pub fn applied(record: &AppliedBuild, default_branch: &str) -> Result<Content, ContentError> {
    content(&record.build_parent_keys, record.ref_matcher.as_ref(), record.exempt_ref_matcher.as_ref(), default_branch)
}

fn content(
    keys: &[String],
    ref_matcher: Option<&SpecMatcher>,
    exempt: Option<&SpecMatcher>,
    default_branch: &str,
) -> Result<Content, ContentError> {
    if keys.is_empty() {
        return Err(ContentError::NoBuildKeys);
    }
    let ref_matcher = match ref_matcher {
        Some(matcher) => matcher_of(matcher, "refMatcher")?,
        None => branch(default_branch),
    };
    let exempt = exempt.map(|matcher| matcher_of(matcher, "exemptRefMatcher")).transpose()?;
    Ok(Content { build_keys: keys.iter().cloned().collect(), ref_matcher, exempt })
}

fn matcher_of(matcher: &SpecMatcher, field: &'static str) -> Result<RefMatcher, ContentError> {
    let value = || matcher.value.clone().ok_or(ContentError::MissingValue { field, type_: matcher.type_ });
    let (kind, id) = match matcher.type_ {
        SpecType::AnyRef => return Ok(RefMatcher { id: ANY_REF_ID.to_owned(), kind: WireType::AnyRef }),
        SpecType::Branch => return Ok(branch(&value()?)),
        SpecType::Pattern => (WireType::Pattern, value()?),
        SpecType::ModelCategory => (WireType::ModelCategory, value()?),
        SpecType::ModelBranch => (WireType::ModelBranch, value()?),
    };
    Ok(RefMatcher { id, kind })
}

/// What differs on a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drift {
    /// None of its conditions is ours.
    Missing,
    /// Ours (this one) still has the content applied before the spec changed.
    Outdated {
        /// The condition's id.
        id: i64,
    },
    /// More conditions of ours than the one kept.
    Extra {
        /// Their ids, ascending.
        ids: Vec<i64>,
    },
}

/// A change to a repository's conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the condition.
    Create(Content),
    /// Give an existing condition of ours the desired content.
    Update {
        /// The condition's id.
        id: i64,
        /// The content it gets.
        content: Content,
    },
    /// Delete a condition of ours.
    Delete {
        /// The condition's id.
        id: i64,
    },
}

/// One repository's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What differs; empty when the repository is in sync.
    pub drift: Vec<Drift>,
    /// What to change, in order: the create or update first, so the repository is never left
    /// without the check, then deletions. Always empty with `managementPolicy: Observe`.
    pub actions: Vec<Action>,
}

impl Decision {
    /// Whether the repository already holds exactly the desired condition, once.
    pub fn in_sync(&self) -> bool {
        self.drift.is_empty()
    }
}

/// The ids, ascending, of the conditions with this content.
fn ids_with(content: &Content, observed: &[Condition]) -> Vec<i64> {
    let ids: BTreeSet<i64> = observed.iter().filter(|c| c.content.same_as(content)).map(|c| c.id).collect();
    ids.into_iter().collect()
}

/// What must change on one repository for its conditions to hold `desired`, given the contents
/// the operator `applied` before (none before the first round; several when a spec changed
/// again before every repository had the last one) and the conditions `observed` there.
pub fn decide(desired: &Content, applied: &[Content], observed: &[Condition], policy: ManagementPolicy) -> Decision {
    let exact = ids_with(desired, observed);
    let old: Vec<i64> = {
        let ids: BTreeSet<i64> =
            applied.iter().filter(|a| !a.same_as(desired)).flat_map(|a| ids_with(a, observed)).collect();
        ids.into_iter().collect()
    };
    let mut drift = Vec::new();
    let mut actions = Vec::new();
    let extra: Vec<i64> = if let Some((_, duplicates)) = exact.split_first() {
        duplicates.iter().chain(&old).copied().collect()
    } else if let Some((&id, duplicates)) = old.split_first() {
        drift.push(Drift::Outdated { id });
        actions.push(Action::Update { id, content: desired.clone() });
        duplicates.to_vec()
    } else {
        drift.push(Drift::Missing);
        actions.push(Action::Create(desired.clone()));
        Vec::new()
    };
    if !extra.is_empty() {
        let mut ids = extra;
        ids.sort_unstable();
        actions.extend(ids.iter().map(|&id| Action::Delete { id }));
        drift.push(Drift::Extra { ids });
    }
    if policy == ManagementPolicy::Observe {
        actions.clear();
    }
    Decision { drift, actions }
}

/// Whether a RequiredBuild removes its conditions: from repositories that leave its binding,
/// and from all of them when it is deleted. Only with `deletionPolicy: Delete`, and never with
/// `managementPolicy: Observe` (which changes nothing).
pub fn removes_conditions(spec: &RequiredBuildSpec) -> bool {
    spec.management_policy != ManagementPolicy::Observe && spec.deletion_policy == DeletionPolicy::Delete
}

/// The ids, ascending, of the conditions to delete when a repository loses the check: those with
/// the desired or an applied content, never any other.
pub fn removals(desired: &Content, applied: &[Content], observed: &[Condition]) -> Vec<i64> {
    let ours: BTreeSet<i64> = observed
        .iter()
        .filter(|c| c.content.same_as(desired) || applied.iter().any(|a| c.content.same_as(a)))
        .map(|c| c.id)
        .collect();
    ours.into_iter().collect()
}

pub mod round;

#[cfg(test)]
mod tests;
