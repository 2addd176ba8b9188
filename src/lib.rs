//! bitbucket-operator: manages Bitbucket Data Center integrations declaratively from Kubernetes
//! custom resources.

pub mod api;
pub mod bitbucket;
pub mod cli;
pub mod controller;
pub mod plan;
pub mod simulator;
pub mod sonarqube;
pub mod sync;
pub mod telemetry;
