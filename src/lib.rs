//! bitbucket-operator: manages Bitbucket Data Center integrations declaratively from Kubernetes
//! custom resources.

pub mod api;
pub mod bitbucket;
pub mod simulator;
