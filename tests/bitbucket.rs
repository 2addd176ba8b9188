//! The Bitbucket REST client on the wire.
//!
//! - `conformance` (`tests/bitbucket/conformance.rs`): against the simulator, endpoint by
//!   endpoint and error class by error class.
//! - `headers` (`tests/bitbucket/headers.rs`): what the client sends: credentials, User-Agent,
//!   the XSRF header, no redirects.
//! - `fuzz` (`tests/bitbucket/fuzz.rs`): hostile answers give errors, never panics.
//! - `support` (`tests/support/`): helpers and the fixtures (seed, manifests) every binary shares.

#[path = "bitbucket/conformance.rs"]
mod conformance;
#[path = "bitbucket/fuzz.rs"]
mod fuzz;
#[path = "bitbucket/headers.rs"]
mod headers;
mod support;
