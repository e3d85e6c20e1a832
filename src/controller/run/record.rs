//! Where an owner's runs are recorded: a khstate for v1 checks and jobs, the status of a v3
//! HealthCheck. The planner, the report judge and the status page read either in the
//! khstate's terms ([`Record::run`]); the executor and report intake write each to its own
//! place, always conditioned on the `resourceVersion` it was read at.

use std::borrow::Cow;
use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;

use super::{healthcheck, transition};
use crate::api::key_of;
use crate::api::{HealthCheck, KuberhealthyState, KuberhealthyStateSpec};

#[derive(Debug, Clone)]
pub enum Record {
    /// A khstate.
    State(Arc<KuberhealthyState>),
    /// A HealthCheck, whose status is its record.
    Status(Arc<HealthCheck>),
}

impl Record {
    /// The record in the khstate's terms.
    pub fn run(&self) -> Cow<'_, KuberhealthyStateSpec> {
        match self {
            Record::State(s) => Cow::Borrowed(&s.spec),
            Record::Status(hc) => Cow::Owned(healthcheck::as_run(hc)),
        }
    }

    /// The khstate, when the record is one.
    pub fn as_state(&self) -> Option<&Arc<KuberhealthyState>> {
        match self {
            Record::State(s) => Some(s),
            Record::Status(_) => None,
        }
    }

    /// The version every write of this record is conditioned on.
    pub fn resource_version(&self) -> Option<String> {
        match self {
            Record::State(s) => s.resource_version(),
            Record::Status(hc) => hc.resource_version(),
        }
    }

    pub fn namespace(&self) -> String {
        match self {
            Record::State(s) => s.namespace().unwrap_or_default(),
            Record::Status(hc) => hc.namespace().unwrap_or_default(),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Record::State(s) => s.name_any(),
            Record::Status(hc) => hc.name_any(),
        }
    }

    /// `namespace/name` of the record's owner.
    pub fn key(&self) -> String {
        key_of(&self.namespace(), &self.name())
    }

    /// The record with its run in flight dated `at` instead: its start, its deadline (its
    /// timeout later) and, for a slot of the schedule, the schedule's anchor. The object keeps
    /// the version it was read at, so writing it stays conditioned on that read.
    pub fn redated(&self, at: Timestamp) -> Record {
        let run = self.run();
        let timeout = match (run.run_started_at, run.run_deadline) {
            (Some(start), Some(deadline)) => deadline.duration_since(start).unsigned_abs(),
            _ => return self.clone(),
        };
        drop(run);
        match self {
            Record::State(s) => {
                let mut state = KuberhealthyState::clone(s);
                state.spec = transition::redated(&s.spec, at, timeout);
                Record::State(Arc::new(state))
            }
            Record::Status(hc) => {
                let mut healthcheck = HealthCheck::clone(hc);
                healthcheck.status = Some(healthcheck::redated(
                    &hc.status.clone().unwrap_or_default(),
                    at,
                    timeout,
                ));
                Record::Status(Arc::new(healthcheck))
            }
        }
    }

    /// The record with its run dated when its pod was created, when that came more than
    /// [`transition::LATE_START`] after the persisted start: the pod's creation was held up
    /// (an etcd stall), and a result dated from the earlier start would make the next run due
    /// at once. Otherwise the record as it is.
    pub fn dated_by_pod(self, pod_created: Option<Timestamp>) -> Record {
        let late = pod_created.and_then(|c| transition::began_late(self.run().run_started_at, c));
        match late {
            Some(at) => self.redated(at),
            None => self,
        }
    }

    /// What the record is, for messages: `khstate`, or `HealthCheck status`.
    pub fn describe_record(&self) -> &'static str {
        match self {
            Record::State(_) => "khstate",
            Record::Status(_) => "HealthCheck status",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::healthcheck::fixtures;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A khstate whose run `r1` was persisted as started at midnight, with a 5 min timeout.
    fn state_in_flight() -> Record {
        let spec: KuberhealthyStateSpec = serde_json::from_value(json!({
            "OK": true, "uuid": "r1", "runPod": "c-r1",
            "runStartedAt": "2026-01-01T00:00:00Z", "scheduledStartedAt": "2026-01-01T00:00:00Z",
            "runDeadline": "2026-01-01T00:05:00Z"}))
        .unwrap();
        let mut state = KuberhealthyState::new("c", spec);
        state.metadata.namespace = Some("ns".into());
        state.metadata.resource_version = Some("7".into());
        Record::State(Arc::new(state))
    }

    #[test]
    fn a_pod_created_late_dates_the_run_and_keeps_the_read_version() {
        let created = ts("2026-01-01T00:00:09Z");
        let dated = state_in_flight().dated_by_pod(Some(created));
        let run = dated.run();
        assert_eq!(run.run_started_at, Some(created));
        assert_eq!(
            run.scheduled_started_at,
            Some(created),
            "the schedule's anchor moves"
        );
        assert_eq!(
            run.run_deadline,
            Some(ts("2026-01-01T00:05:09Z")),
            "same timeout"
        );
        assert_eq!(run.uuid, "r1");
        assert_eq!(dated.resource_version().as_deref(), Some("7"));
    }

    #[test]
    fn a_pod_created_on_time_or_unknown_leaves_the_run_as_persisted() {
        for created in [None, Some(ts("2026-01-01T00:00:01Z"))] {
            let run = state_in_flight().dated_by_pod(created).run().into_owned();
            assert_eq!(run.run_started_at, Some(ts("2026-01-01T00:00:00Z")));
            assert_eq!(run.run_deadline, Some(ts("2026-01-01T00:05:00Z")));
        }
    }

    #[test]
    fn a_healthcheck_run_is_dated_in_its_status() {
        let healthcheck = fixtures::healthcheck(
            "ns",
            "hc",
            json!({"resourceVersion": "3"}),
            json!({"runInterval": "1m", "timeout": "2m",
                   "podSpec": {"spec": {"containers": [{"name": "main", "image": "c:1"}]}}}),
            json!({"currentUUID": "r2", "runUUID": "r2", "runPod": "hc-r2",
                   "lastRunUnix": ts("2026-01-01T00:00:00Z").as_second(),
                   "runStartedAt": "2026-01-01T00:00:00Z", "runDeadline": "2026-01-01T00:02:00Z"}),
        );
        let at = ts("2026-01-01T00:00:20Z");
        let dated = Record::Status(Arc::new(healthcheck)).redated(at);
        let Record::Status(hc) = &dated else {
            panic!("a status stays a status")
        };
        let status = hc.status.as_ref().unwrap();
        assert_eq!(status.run_started_at, Some(at));
        assert_eq!(status.last_run_unix, at.as_second());
        assert_eq!(status.run_deadline, Some(ts("2026-01-01T00:02:20Z")));
        assert_eq!(dated.resource_version().as_deref(), Some("3"));
    }
}
