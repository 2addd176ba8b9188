//! The Bitbucket REST client on the wire.
//!
//! - `conformance` (`tests/bitbucket/conformance.rs`): against the simulator, endpoint by
//!   endpoint and error class by error class.
//! - `headers` (`tests/bitbucket/headers.rs`): what the client sends: credentials, User-Agent,
//!   the XSRF header, no redirects.
//! - `required_builds` (`tests/bitbucket/required_builds.rs`): the required-builds conditions
//!   API, its ids, paging, permissions and servers without it.
//! - `fuzz` (`tests/bitbucket/fuzz.rs`): hostile answers give errors, never panics.
//! - `support` (`tests/support/`): helpers and the fixtures (seed, manifests) every binary shares.

// A test fails by panicking; the lints against it are for the operator's own code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "bitbucket/conformance.rs"]
mod conformance;
#[path = "bitbucket/fuzz.rs"]
mod fuzz;
#[path = "bitbucket/headers.rs"]
mod headers;
#[path = "bitbucket/required_builds.rs"]
mod required_builds;
mod support;
