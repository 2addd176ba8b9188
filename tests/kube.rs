//! Everything that runs on the in-process fake Kubernetes API, so the fake is compiled once.
//!
//! - `fake_kube` (`tests/fake_kube/`): the fake API server itself.
//! - `fake_api` (`tests/kube/fake_api.rs`): the fake, driven through the real `kube::Api`,
//!   watchers, reflectors and helpers.
//! - `harness` (`tests/kube/harness.rs`): the operator on the fake and the Bitbucket simulator,
//!   for `controllers` and `operations`.
//! - `controllers` (`tests/controllers/`): the controllers end to end, one file per topic; the
//!   topics are declared in `tests/controllers/mod.rs`.
//! - `operations` (`tests/kube/operations.rs`): leader election, metrics and health, host
//!   allow-list, watch scope and label selector.
//! - `support` (`tests/support/`): helpers and the fixtures (seed, manifests) every binary shares.

// A test fails by panicking; the lints against it are for the operator's own code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod controllers;
#[path = "kube/fake_api.rs"]
mod fake_api;
mod fake_kube;
#[path = "kube/harness.rs"]
mod harness;
#[path = "kube/operations.rs"]
mod operations;
mod support;
