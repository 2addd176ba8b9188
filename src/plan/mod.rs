//! What must change in Bitbucket: pure functions from the desired state (the resources' specs)
//! and the observed state (what the client read) to actions and statuses. No I/O here; the
//! controller and the CLI's `plan`/`apply` share this code, so they always agree.

pub mod binding;
pub mod connection;
pub mod dependencies;
pub mod merge_checks;
pub mod reasons;
pub mod report;
pub mod required_builds;
pub mod selection;
pub mod sonarqube;
pub mod status;
pub mod webhooks;
