//! End-to-end proof of Kuberhealthy v3's `HealthCheck` (issue 15), on a real local control
//! plane with the pod runner running every checker command: HealthChecks go through the same
//! planner and executor as KuberhealthyChecks, report to `/check` into `.status`, and show on
//! both status pages and in both metric families.
//!
//! The scenarios are the scheduling target's (`../scheduling/support/`): a control plane of
//! their own, `kuberhealthy crd` and `kuberhealthy rbac` applied as they are, replicas as the
//! controller's ServiceAccount behind a report "Service" that rotates over them. Checkers
//! report the way v3's documentation shows, with `curl` to `$KH_REPORTING_URL`.
//!
//! Run it with `cargo test -p kuberhealthy-e2e --test v3 -- --nocapture`, or as part of
//! `make e2e`.

mod failover;
mod failures;
mod manifests;
mod migration;
mod reports;
mod single_run;
mod v3;

// The scheduling target's world, shared; what it has for khstates only is unused here.
#[allow(dead_code, unused_imports)]
#[path = "../scheduling/support/mod.rs"]
mod support;
