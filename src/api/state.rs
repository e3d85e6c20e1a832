//! `KuberhealthyState` (`khstates`, `khs`): the persisted result and run of one check or job.
//!
//! The capitalised keys and the lowercase `uuid` are v2's and are what the status page emits
//! per check. The camelCase fields after them are this project's additions: all optional,
//! they persist the run in flight and the timer, so that a restart or a failover loses
//! nothing and moves no check's next start.

use jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

pub use super::history::{DayCounts, HISTORY_LIMIT, RunResult};

/// The last result of a check or job, written by Kuberhealthy.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "comcast.github.io",
    version = "v1",
    kind = "KuberhealthyState",
    plural = "khstates",
    singular = "khstate",
    shortname = "khs",
    namespaced,
    doc = "The last result of a check or job, and its run in flight.",
    printcolumn = r#"{"name":"OK","type":"boolean","jsonPath":".spec.OK","description":"Result of the last run"}"#,
    printcolumn = r#"{"name":"Last Run","type":"date","jsonPath":".spec.LastRun","description":"When the last result was written"}"#,
    printcolumn = r#"{"name":"Duration","type":"string","jsonPath":".spec.RunDuration","description":"How long the last run took"}"#,
    printcolumn = r#"{"name":"Error","type":"string","jsonPath":".spec.Errors[0]","description":"First error of the last run"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct KuberhealthyStateSpec {
    /// Whether the last run passed.
    #[serde(rename = "OK", default)]
    pub ok: bool,
    /// The errors of the last run; empty when it passed. v2 sometimes stored `null`.
    #[serde(rename = "Errors", default, deserialize_with = "null_as_empty")]
    pub errors: Vec<String>,
    /// How long the last run took, as a Go duration string such as `3.359431829s`.
    #[serde(rename = "RunDuration", default)]
    pub run_duration: String,
    /// The namespace of the check or job.
    #[serde(rename = "Namespace", default)]
    pub namespace: String,
    /// The node the last checker pod ran on.
    #[serde(rename = "Node", default)]
    pub node: String,
    /// When the last result was written.
    #[serde(rename = "LastRun", default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<Timestamp>,
    /// The Kuberhealthy replica that wrote the last result.
    #[serde(rename = "AuthoritativePod", default)]
    pub authoritative_pod: String,
    /// The UUID of the current or most recent run: the only run allowed to report.
    #[serde(rename = "uuid", default)]
    pub uuid: String,
    /// Whether this state belongs to a check or a job.
    #[serde(
        rename = "khWorkload",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub workload: Option<Workload>,

    /// When run `uuid` started; the next run is due one `runInterval` later.
    #[serde(
        rename = "runStartedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub run_started_at: Option<Timestamp>,
    /// When run `uuid` must have reported by (`KH_CHECK_RUN_DEADLINE`).
    #[serde(
        rename = "runDeadline",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub run_deadline: Option<Timestamp>,
    /// When run `uuid` finished (reported, failed or timed out). Absent while it is in flight.
    #[serde(
        rename = "runFinishedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub run_finished_at: Option<Timestamp>,
    /// The leader term that started run `uuid`: a record for audits and failover tests. The
    /// fence is the `resourceVersion` precondition on every write, with the term's own clock
    /// checked before each write.
    #[serde(rename = "runTerm", default, skip_serializing_if = "Option::is_none")]
    pub run_term: Option<LeaderTerm>,
    /// The checker pod of run `uuid`.
    #[serde(rename = "runPod", default, skip_serializing_if = "Option::is_none")]
    pub run_pod: Option<String>,
    /// When the last run of the regular schedule started. Runs asked for with run-now leave
    /// it alone, so they do not move the schedule; absent, `runStartedAt` stands for it.
    #[serde(
        rename = "scheduledStartedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub scheduled_started_at: Option<Timestamp>,
    /// The value of the run-now annotation that a run last honoured: each value once.
    #[serde(
        rename = "honouredRunRequest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub honoured_run_request: Option<String>,
    /// When a run last passed.
    #[serde(rename = "lastOKAt", default, skip_serializing_if = "Option::is_none")]
    pub last_ok_at: Option<Timestamp>,
    /// Since when the check has been failing: the end of the first failed run in a row.
    /// Absent while it passes.
    #[serde(
        rename = "failingSince",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failing_since: Option<Timestamp>,
    /// How many runs in a row have failed.
    #[serde(
        rename = "consecutiveFailures",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub consecutive_failures: u32,
    /// The most recent finished runs, newest first, at most [`HISTORY_LIMIT`]. With `daily`,
    /// bounded in size (see [`super::history`]).
    #[serde(rename = "history", default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RunResult>,
    /// Counters per UTC day for the last 30 days, in day order: what uptime is computed from.
    #[serde(rename = "daily", default, skip_serializing_if = "Vec::is_empty")]
    pub daily: Vec<DayCounts>,
}

/// Which kind of resource a khstate belongs to (v2's `khWorkload`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Workload {
    #[serde(rename = "KHCheck")]
    Check,
    #[serde(rename = "KHJob")]
    Job,
}

/// A leader term: who held the Lease, and its `leaseTransitions` when it was acquired.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderTerm {
    pub holder: String,
    pub transitions: i32,
}

impl KuberhealthyStateSpec {
    /// Whether run `uuid` has started and not finished.
    pub fn run_in_flight(&self) -> bool {
        !self.uuid.is_empty() && self.run_started_at.is_some() && self.run_finished_at.is_none()
    }

    /// Whether a result has been written: every verdict sets `LastRun`, as v2 did. The state
    /// of a check whose first run is still in flight has none, and must not read as OK.
    pub fn has_result(&self) -> bool {
        self.last_run.is_some()
    }

    /// Adds a finished run to `history`, newest first, keeping at most [`HISTORY_LIMIT`].
    pub fn push_history(&mut self, result: RunResult) {
        self.history.insert(0, result);
        self.history.truncate(HISTORY_LIMIT);
    }
}

/// For `skip_serializing_if` of counters that are absent while zero.
pub(crate) fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(n: usize) -> RunResult {
        RunResult {
            uuid: format!("run-{n}"),
            started_at: Timestamp::UNIX_EPOCH,
            finished_at: Timestamp::UNIX_EPOCH,
            ok: true,
            errors: vec![],
            log_excerpt: None,
        }
    }

    #[test]
    fn history_is_newest_first_and_bounded() {
        let mut spec = KuberhealthyStateSpec::default();
        for n in 0..HISTORY_LIMIT + 3 {
            spec.push_history(result(n));
        }
        assert_eq!(spec.history.len(), HISTORY_LIMIT);
        assert_eq!(spec.history[0].uuid, format!("run-{}", HISTORY_LIMIT + 2));
        assert_eq!(spec.history[HISTORY_LIMIT - 1].uuid, "run-3");
    }

    #[test]
    fn a_run_is_in_flight_until_it_finishes() {
        let mut spec = KuberhealthyStateSpec {
            uuid: "u".into(),
            ..Default::default()
        };
        assert!(
            !spec.run_in_flight(),
            "a v2 state without runStartedAt has no run in flight"
        );
        spec.run_started_at = Some(Timestamp::UNIX_EPOCH);
        assert!(spec.run_in_flight());
        spec.run_finished_at = Some(Timestamp::UNIX_EPOCH);
        assert!(!spec.run_in_flight());
    }

    #[test]
    fn null_errors_read_as_empty() {
        let spec: KuberhealthyStateSpec =
            serde_json::from_str(r#"{"OK":true,"Errors":null,"uuid":"x"}"#).unwrap();
        assert!(spec.errors.is_empty());
        assert_eq!(
            serde_json::to_value(&spec).unwrap()["Errors"],
            serde_json::json!([])
        );
    }
}
