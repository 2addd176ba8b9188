//! The command line's work, behind the thin `main.rs`: each command in its own file.

pub mod plan;
pub mod run;
