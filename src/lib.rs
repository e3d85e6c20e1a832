//! Kuberhealthy, rewritten: a highly available, Kuberhealthy v2 compatible health-check
//! operator for Kubernetes.

pub mod api;
pub mod config;
pub mod crd;
pub mod leader;
pub mod logging;
