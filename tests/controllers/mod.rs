//! The controllers end to end: the real `controller::run` on the fake Kubernetes API, talking to
//! the Bitbucket simulator, through `crate::harness`. Each test asserts on status, Events, the
//! simulator's state and its request log. A topic is a file in this folder, declared here.
//!
//! - `api_server`: the Kubernetes API server going away and coming back; a finalizer write that
//!   loses a race with another writer.
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
//! - `status_refusals`: a status the API server refuses (too large, invalid) is shortened,
//!   announced and written again later without reading Bitbucket; a report on such a binding
//!   says why it waits.
//! - `scale`: ten thousand repositories in one binding: every object stays small, and the cold
//!   round reads each repository once.
//! - `sonarqube`: SonarQubeConfiguration's login proof, and the DevOps Platform setting a
//!   Bitbucket configuration keeps in SonarQube.
//! - `sonarqube_projects`: a binding's SonarQube projects: import, UI changes put back, claims,
//!   Community Build, editions, deletion.
//! - `report_safety`: a SonarQube RequiredReport that SonarQube will never post (Community
//!   Build, a monorepo binding without monorepo support) keeps its check and says so.
//! - `required_builds`: RequiredBuild's conditions: created on each default branch, adopted,
//!   updated in place, drift corrected, Observe, a crash before the status write, deletion,
//!   servers before 7.14, and the request figures.
//! - `hostile`: configurations of servers that answer oversized bodies, junk about themselves or
//!   truncated JSON still get a condition and a small status without the junk.

mod api_server;
mod bitbucket_changes;
mod credentials;
mod deletion;
mod figures;
mod happy_path;
mod hostile;
mod references;
mod report_safety;
mod required_builds;
mod resilience;
mod restart;
mod scale;
mod sonarqube;
mod sonarqube_projects;
mod status_refusals;
