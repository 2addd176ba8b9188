//! The controllers end to end: the real `controller::run` on the fake Kubernetes API, talking to
//! the Bitbucket simulator. Each test asserts on status, Events, the simulator's state and its
//! request log.
//!
//! - `happy_path`: every kind converges; cluster configurations and monorepo report keys;
//!   webhooks and repositories that leave a binding.
//! - `credentials`: Secrets missing, unlabelled or keyless; token rotation; rejected credentials.
//! - `resilience`: 429 storms, the operator's own rate, injected 5xx and dropped connections, a
//!   crash halfway.
//! - `references`: objects created before what they refer to; missing and forbidden projects.
//! - `bitbucket_changes`: repositories deleted and added behind the operator's back, drift, a
//!   server without the merge-check API.
//! - `deletion`: finalizers, deletion policies, and the order of deletion.
//! - `restart`: restarts over converged state with the stores filling in the worst orders, and
//!   a kill in the middle of a cold round.
//! - `figures`: the Bitbucket requests of a cold reconcile and of a no-op resync.

// A test fails by panicking; the lints against it are for the operator's own code.
#![allow(clippy::expect_used, clippy::panic)]

mod fake_kube;
#[path = "controllers/harness.rs"]
mod harness;

#[path = "controllers/bitbucket_changes.rs"]
mod bitbucket_changes;
#[path = "controllers/credentials.rs"]
mod credentials;
#[path = "controllers/deletion.rs"]
mod deletion;
#[path = "controllers/figures.rs"]
mod figures;
#[path = "controllers/happy_path.rs"]
mod happy_path;
#[path = "controllers/references.rs"]
mod references;
#[path = "controllers/resilience.rs"]
mod resilience;
#[path = "controllers/restart.rs"]
mod restart;
