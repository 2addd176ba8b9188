//! The command line as a user runs it, and the examples a user starts from.
//!
//! - `plan` (`tests/cli/plan.rs`): `plan` and `apply`, their exit codes and their errors.
//! - `check` (`tests/cli/check.rs`): `check`, for every way a connection can fail.
//! - `inventory` (`tests/cli/inventory.rs`): `inventory`, the repositories bindings select, with
//!   their webhooks and required reports, read without writing.
//! - `required_builds` (`tests/cli/required_builds.rs`): RequiredBuild in `plan`, `apply` and
//!   `inventory`: one condition per repository, adoption by content, servers before 7.14.
//! - `sonarqube` (`tests/cli/sonarqube.rs`): `plan` and `apply` on the SonarQube side: the
//!   DevOps Platform setting, project bindings, claims, no token in any output.
//! - `simulator` (`tests/cli/simulator.rs`): the `simulator` and `demo` commands.
//! - `examples` (`tests/cli/examples.rs`): every file of `examples/` is valid and the set is
//!   complete.
//! - `support` (`tests/support/`): helpers, the fixtures (seed, manifests) every binary shares,
//!   and the `workspace` these tests run the binary in.

// A test fails by panicking; the lints against it are for the operator's own code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "cli/check.rs"]
mod check;
#[path = "cli/examples.rs"]
mod examples;
#[path = "cli/inventory.rs"]
mod inventory;
#[path = "cli/plan.rs"]
mod plan;
#[path = "cli/required_builds.rs"]
mod required_builds;
#[path = "cli/simulator.rs"]
mod simulator;
#[path = "cli/sonarqube.rs"]
mod sonarqube;
mod support;
