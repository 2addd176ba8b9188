//! What a status keeps about the repositories an object covers, small at any number of them:
//! counts by state, the few repositories that need attention (capped, with how many were left
//! out), and a compact record of the covered repositories' ids. The full per-repository list is
//! Bitbucket's to tell (`bitbucket-operator inventory`); the API server stores objects of about
//! 1.5 MiB at most, and every watcher of the kind receives each write whole.

use serde::{Deserialize, Serialize};

/// At most this many repositories are listed as needing attention.
pub const ATTENTION_LIMIT: usize = 20;

/// Bytes of one listed repository's message.
pub const ATTENTION_MESSAGE_LIMIT: usize = 256;

/// One repository that needs attention, and why.
#[derive(kube::KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCheck {
    /// The repository's slug.
    pub slug: String,
    /// `Drifted`, `Failed` or `Pending` (`InSync` ones are only counted).
    pub state: CheckState,
    /// What differs or failed, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How one repository compares with the spec.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckState {
    /// It matches the spec.
    InSync,
    /// It differs from the spec (reported in `Observe`, corrected in `Manage`).
    Drifted,
    /// It could not be read or written.
    Failed,
    /// Not looked at yet.
    Pending,
}

/// The entries to list from every repository's, in the given order: those not in sync, at most
/// [`ATTENTION_LIMIT`] of them (messages cut to [`ATTENTION_MESSAGE_LIMIT`]), and how many more
/// there were.
pub fn needing_attention(entries: impl IntoIterator<Item = RepositoryCheck>) -> (Vec<RepositoryCheck>, i32) {
    let mut listed = Vec::new();
    let mut omitted = 0_i32;
    for mut entry in entries.into_iter().filter(|e| e.state != CheckState::InSync) {
        if listed.len() < ATTENTION_LIMIT {
            entry.message = entry.message.map(|m| crate::plan::status::shorten(&m, ATTENTION_MESSAGE_LIMIT));
            listed.push(entry);
        } else {
            omitted = omitted.saturating_add(1);
        }
    }
    (listed, omitted)
}

/// The Bitbucket ids of a set of repositories, written compactly: ascending, each as its gap
/// from the one before (the first as its gap from 0), a run of consecutive ids as `gap+more`,
/// separated by commas. `5,1+2,10` is 5, 6, 7, 8 and 18. Ids are what stays when a repository
/// is renamed; a project's repositories mostly have close ids, so each takes a few bytes at
/// most and a run of them a few in all.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct RepositoryIds(String);

/// A record of ids that does not read as one (edited by hand, or written by another program).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a record of repository ids at byte {at}: expected gaps (digits) or runs (gap+more) separated by commas")]
pub struct UnreadableIds {
    /// Where reading stopped.
    pub at: usize,
}

impl RepositoryIds {
    /// The record of `ids` (any order; duplicates and ids below 1 are left out).
    pub fn of(ids: impl IntoIterator<Item = i64>) -> Self {
        let mut ids: Vec<i64> = ids.into_iter().filter(|id| *id > 0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut text = String::new();
        let mut previous = 0_i64;
        let mut i = 0;
        while i < ids.len() {
            let start = ids[i];
            let mut end = start;
            while i + 1 < ids.len() && ids[i + 1] == end + 1 {
                i += 1;
                end = ids[i];
            }
            if !text.is_empty() {
                text.push(',');
            }
            text.push_str(&(start - previous).to_string());
            if end > start {
                text.push('+');
                text.push_str(&(end - start).to_string());
            }
            previous = end;
            i += 1;
        }
        Self(text)
    }

    /// Whether the record holds no id.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids, ascending.
    pub fn ids(&self) -> Result<Vec<i64>, UnreadableIds> {
        let mut ids = Vec::new();
        let mut previous = 0_i64;
        let mut at = 0;
        if self.0.is_empty() {
            return Ok(ids);
        }
        for token in self.0.split(',') {
            let (gap, more) = match token.split_once('+') {
                Some((gap, more)) => (gap, Some(more)),
                None => (token, None),
            };
            let number = |text: &str, at: usize| -> Result<i64, UnreadableIds> {
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(UnreadableIds { at });
                }
                text.parse::<i64>().map_err(|_| UnreadableIds { at })
            };
            let gap = number(gap, at)?;
            let start = previous.checked_add(gap).filter(|_| gap > 0).ok_or(UnreadableIds { at })?;
            let more = match more {
                Some(more) => number(more, at + token.len() - more.len())?,
                None => 0,
            };
            let end = start.checked_add(more).ok_or(UnreadableIds { at })?;
            // A record is read to act on it: one that claims more ids than any listing could
            // return is not one this operator wrote.
            if u64::try_from(ids.len()).unwrap_or(u64::MAX).saturating_add(more.unsigned_abs()) >= MAX_IDS {
                return Err(UnreadableIds { at });
            }
            ids.extend(start..=end);
            previous = end;
            at += token.len() + 1;
        }
        Ok(ids)
    }
}

/// More ids than this in one record is no record of this operator's (its listings stop at
/// 50,000 repositories).
const MAX_IDS: u64 = 1_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ids: &[i64]) -> String {
        RepositoryIds::of(ids.iter().copied()).0
    }

    #[test]
    fn ids_are_written_as_gaps_and_runs() {
        let cases: [(&str, &[i64], &str); 7] = [
            ("nothing", &[], ""),
            ("one", &[42], "42"),
            ("a run", &[1, 2, 3, 4], "1+3"),
            ("gaps and runs", &[5, 6, 7, 8, 18], "5+3,10"),
            ("any order, duplicates once", &[18, 5, 8, 6, 7, 5], "5+3,10"),
            ("ids below 1 are no ids", &[0, -3, 2], "2"),
            ("runs after gaps", &[10, 20, 21, 22, 40], "10,10+2,18"),
        ];
        for (name, ids, want) in cases {
            assert_eq!(record(ids), want, "{name}");
        }
    }

    #[test]
    fn ids_read_back_as_written() {
        let sets: [Vec<i64>; 5] = [
            vec![],
            vec![1],
            (1..=10_000).collect(),
            (1..=10_000).map(|i| i * 7 + (i % 3)).collect(),
            vec![1, 3, 5, 6, 7, 100, 101, i64::from(i32::MAX)],
        ];
        for ids in sets {
            let written = RepositoryIds::of(ids.iter().copied());
            assert_eq!(written.ids(), Ok(ids.clone()), "{written:?}");
        }
    }

    #[test]
    fn a_record_takes_a_few_bytes_per_repository() {
        // 10,000 repositories scattered over a server of a million: a gap of about 100 each.
        let mut rng = fastrand::Rng::with_seed(7);
        let mut id = 0;
        let scattered: Vec<i64> = (0..10_000)
            .map(|_| {
                id += rng.i64(1..200);
                id
            })
            .collect();
        let bytes = RepositoryIds::of(scattered).0.len();
        assert!(bytes <= 4 * 10_000, "{bytes} bytes for 10,000 scattered ids");
        assert!(record(&(1..=50_000).collect::<Vec<_>>()).len() < 16, "a run is one token");
    }

    #[test]
    fn records_that_are_none_are_refused() {
        for text in ["x", "1,,2", "1+", "+3", "0", "1,0", "-1", "1 2", "99999999999999999999", "1+99999999"] {
            assert!(RepositoryIds(text.to_owned()).ids().is_err(), "{text:?}");
        }
        assert_eq!(RepositoryIds("3,x".to_owned()).ids(), Err(UnreadableIds { at: 2 }));
    }
}
