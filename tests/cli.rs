//! The command line as a user runs it, and the examples a user starts from.
//!
//! - `plan` (`tests/cli/plan.rs`): `plan` and `apply`, their exit codes and their errors; the
//!   `simulator` and `demo` commands.
//! - `check` (`tests/cli/check.rs`): `check`, for every way a connection can fail; the
//!   `simulator` command.
//! - `examples` (`tests/cli/examples.rs`): every file of `examples/` is valid and the set is
//!   complete.
//! - `support` (`tests/support/`): helpers and the fixtures (seed, manifests) every binary shares.

#[path = "cli/check.rs"]
mod check;
#[path = "cli/examples.rs"]
mod examples;
#[path = "cli/plan.rs"]
mod plan;
mod support;
