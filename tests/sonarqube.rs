//! The SonarQube Web API client on the wire, against the SonarQube simulator (with a Bitbucket
//! simulator behind it where SonarQube itself calls Bitbucket).
//!
//! - `conformance` (`tests/sonarqube/conformance.rs`): each quirk of sonarqube-api.md §3, the
//!   auth schemes, error classes, retries and paging, as a user of the operator would see them.
//! - `security` (`tests/sonarqube/security.rs`): no token or PAT in a URL or in an error's text.
//! - `support` (`tests/support/`): helpers and fixtures every binary shares.

// A test fails by panicking; the lints against it are for the operator's own code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "sonarqube/common.rs"]
mod common;
#[path = "sonarqube/conformance.rs"]
mod conformance;
#[path = "sonarqube/security.rs"]
mod security;
mod support;
