//! What the controller and the checkers share: the Kuberhealthy v2 resources
//! (`comcast.github.io/v1`), Kuberhealthy v3's `HealthCheck` (`kuberhealthy.github.io/v2`), the
//! names and formats that come with them, and RBAC rule types.

pub mod access;
pub mod cadence;
pub mod check;
pub mod duration;
pub mod healthcheck;
pub mod history;
pub mod job;
pub mod names;
pub mod pod_spec;
pub mod state;
pub mod time;
pub mod uptime;
pub mod validate;

pub use check::{KuberhealthyCheck, KuberhealthyCheckSpec, RUN_REQUESTED_AT};
pub use healthcheck::{HealthCheck, HealthCheckSpec, HealthCheckStatus};
pub use job::{JobPhase, KuberhealthyJob, KuberhealthyJobSpec};
pub use pod_spec::PodSpecText;
pub use state::{KuberhealthyState, KuberhealthyStateSpec, LeaderTerm, RunResult, Workload};

/// `namespace/name`: how checks, jobs and states are keyed on the status page, in metrics
/// and in the controller.
pub fn key_of(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}
