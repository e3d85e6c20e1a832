//! Kuberhealthy, rewritten: a highly available, Kuberhealthy v2 compatible health-check
//! operator for Kubernetes.
//!
//! - [`api`]: what everything shares: the resources, names, durations and RBAC rule types.
//! - [`controller`]: what runs in the replicas: the cache, leader election, the run
//!   supervisor, report intake, the status page, metrics and the HTTP server.
//! - [`checker`]: what runs in checker pods: the built-in checks and the check client.
//! - [`generate`]: what `kuberhealthy crd` and `kuberhealthy rbac` print.
//! - [`convert`]: what `kuberhealthy convert` does (v2 manifests into v3 HealthChecks, and back).
//! - [`fuzz_targets`]: what the fuzzer (`fuzz/`) and the corpus replay feed arbitrary bytes.

pub mod api;
pub mod checker;
pub mod controller;
pub mod convert;
pub mod fuzz_targets;
pub mod generate;
