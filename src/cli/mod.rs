//! The command line's work, behind the thin `main.rs`: each command in its own file.

pub mod check;
pub mod demo;
pub mod manifests;
pub mod plan;
pub mod run;
pub mod simulator;
