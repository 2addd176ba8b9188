//! Observing Bitbucket and carrying out plans: the I/O half of a reconcile, shared by the
//! controllers and the CLI's `plan`/`apply`. It talks to Bitbucket through the client only and
//! knows nothing of Kubernetes; the decisions are made by [`crate::plan`].

pub mod binding;
pub mod report;
pub mod required_builds;
pub mod sonarqube;

/// How many repositories are worked on at once. The client bounds its own concurrency and rate,
/// so this only keeps memory flat for large selections.
pub(crate) const PARALLEL_REPOSITORIES: usize = 8;
