//! The Kuberhealthy v2 resources (`comcast.github.io/v1`) and the names and formats that
//! come with them.

pub mod check;
pub mod duration;
pub mod job;
pub mod names;
pub mod state;
pub mod validate;

pub use check::{KuberhealthyCheck, KuberhealthyCheckSpec};
pub use job::{JobPhase, KuberhealthyJob, KuberhealthyJobSpec};
pub use state::{KuberhealthyState, KuberhealthyStateSpec, LeaderTerm, RunResult, Workload};
