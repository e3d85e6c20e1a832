//! Kuberhealthy, rewritten: a highly available, Kuberhealthy v2 compatible health-check
//! operator for Kubernetes.

pub mod api;
pub mod cache;
pub mod checks;
pub mod client;
pub mod config;
pub mod crd;
pub mod http;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod rbac;
pub mod replica;
pub mod report;
pub mod run;
pub mod schedule;
pub mod status;
