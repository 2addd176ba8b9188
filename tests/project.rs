//! What ships besides the operator's code: the CRDs, the negative set, the docs and the chart.
//!
//! - `crds` (`tests/project/crds.rs`): the committed CRDs match the types and suit an API server.
//! - `validation` (`tests/project/validation.rs`): every CRD rule, proven by `tests/invalid/`.
//! - `docs` (`tests/project/docs.rs`): the troubleshooting guide lists every reason.
//! - `chart` (`tests/project/chart.rs`): the Helm chart and the Argo CD health check, run by
//!   Helm's own engine and a real Lua from `tests/python/`.
//! - `support` (`tests/support/`): helpers and the fixtures (seed, manifests) every binary shares.

// A test fails by panicking; the lints against it are for the operator's own code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "project/chart.rs"]
mod chart;
#[path = "project/crds.rs"]
mod crds;
#[path = "project/docs.rs"]
mod docs;
mod support;
#[path = "project/validation.rs"]
mod validation;
