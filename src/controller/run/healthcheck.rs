//! A HealthCheck's status as a run record (pure): read in the khstate's terms, so the
//! planner, the report judge and the status page apply one set of rules to both generations,
//! and changed with v3's semantics when a run starts and finishes (`currentUUID` set while a
//! run is in flight and cleared when it ends, `lastRunUnix`, v3's counters), plus this
//! project's optional fields that make runs survive failover.
//!
//! Also the two halves of migrating a live check: a khstate seeds a new HealthCheck's status,
//! and a HealthCheck's status seeds the khstate of a new KuberhealthyCheck, each keeping the
//! last result and the timer.

use std::time::Duration;

use jiff::Timestamp;

use super::schedule;
use super::transition::RunStart;
use crate::api::healthcheck::{self, HealthCheck, HealthCheckStatus};
use crate::api::time::add;
use crate::api::{KuberhealthyStateSpec, Workload, duration};

fn from_unix(seconds: i64) -> Option<Timestamp> {
    (seconds > 0)
        .then(|| Timestamp::from_second(seconds).ok())
        .flatten()
}

fn unix(t: Timestamp) -> i64 {
    t.as_second()
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The HealthCheck's timeout, for runs whose deadline v3 never wrote: v3's rule is
/// `lastRunUnix + timeout`. An invalid spec falls back to v3's default.
fn timeout_of(hc: &HealthCheck) -> Duration {
    hc.validate()
        .map(|t| t.timeout)
        .unwrap_or(healthcheck::DEFAULT_TIMEOUT)
}

/// When the last run started: the precise `runStartedAt`, or v3's `lastRunUnix` when it is
/// later (a status v3 itself wrote last).
fn last_start(status: &HealthCheckStatus) -> Option<Timestamp> {
    let v3 = from_unix(status.last_run_unix);
    match (status.run_started_at, v3) {
        (Some(ours), Some(v3)) if v3.as_second() > ours.as_second() => Some(v3),
        (Some(ours), _) => Some(ours),
        (None, v3) => v3,
    }
}

/// The status of `hc` in the khstate's terms: the run in flight (`currentUUID`, else the last
/// run `runUUID`), its start, deadline and pod, the last result and when it was written.
pub fn as_run(hc: &HealthCheck) -> KuberhealthyStateSpec {
    let status = hc.status.clone().unwrap_or_default();
    let started = last_start(&status);
    let in_flight = status.run_in_flight();
    let last_result = status
        .run_finished_at
        .or_else(|| from_unix(status.last_ok_unix.max(status.last_failure_unix)));
    let deadline = status.run_deadline.or_else(|| {
        // A run v3 started: its deadline is v3's.
        in_flight
            .then(|| started.map(|s| add(s, timeout_of(hc))))
            .flatten()
    });
    KuberhealthyStateSpec {
        ok: status.ok,
        errors: status.errors.clone(),
        run_duration: duration::format(Duration::from_nanos(
            u64::try_from(status.run_duration).unwrap_or(0),
        )),
        namespace: status.namespace.clone(),
        node: status.node.clone().unwrap_or_default(),
        last_run: last_result,
        uuid: if in_flight {
            status.current_uuid.clone()
        } else {
            status.run_uuid.clone().unwrap_or_default()
        },
        run_started_at: started,
        run_deadline: deadline,
        run_finished_at: if in_flight {
            None
        } else {
            last_result.or(started)
        },
        run_term: status.run_term.clone(),
        run_pod: status.run_pod.clone(),
        last_ok_at: from_unix(status.last_ok_unix),
        consecutive_failures: u32::try_from(status.consecutive_failures).unwrap_or(0),
        ..Default::default()
    }
}

/// The status of a new run. The last result stays visible while the run is in flight.
pub fn started(previous: Option<&HealthCheckStatus>, run: &RunStart<'_>) -> HealthCheckStatus {
    let mut s = previous.cloned().unwrap_or_default();
    s.current_uuid = run.uuid.into();
    s.run_uuid = Some(run.uuid.into());
    s.last_run_unix = unix(run.started_at);
    s.namespace = run.namespace.into();
    s.run_started_at = Some(run.started_at);
    s.run_deadline = Some(run.deadline);
    s.run_finished_at = None;
    s.run_pod = Some(run.pod.into());
    s.run_term = Some(run.term.clone());
    s
}

/// The run just started in `s`, dated `at` instead (a start whose write landed late): its
/// start (`lastRunUnix` too) and its deadline, one timeout later.
pub fn redated(s: &HealthCheckStatus, at: Timestamp, timeout: Duration) -> HealthCheckStatus {
    let mut s = s.clone();
    s.run_started_at = Some(at);
    s.last_run_unix = unix(at);
    s.run_deadline = Some(add(at, timeout));
    s
}

/// The status once the run in flight finished with this result, as v3 writes it: the UUID
/// cleared, the counters and `lastOKUnix`/`lastFailureUnix` moved, and (unlike v3, which only
/// writes it on deletion) `runDuration` from the start to now.
pub fn finished(
    previous: &HealthCheckStatus,
    ok: bool,
    errors: Vec<String>,
    now: Timestamp,
    node: Option<String>,
) -> HealthCheckStatus {
    let mut s = previous.clone();
    let started = last_start(&s).unwrap_or(now);
    s.run_duration = nanos(now.duration_since(started).unsigned_abs());
    s.ok = ok;
    s.errors = errors;
    s.current_uuid = String::new();
    s.run_finished_at = Some(now);
    if let Some(node) = node.filter(|n| !n.is_empty()) {
        s.node = Some(node);
    }
    if ok {
        s.consecutive_failures = 0;
        s.success_count = s.success_count.saturating_add(1);
        s.last_ok_unix = unix(now);
    } else {
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        s.failure_count = s.failure_count.saturating_add(1);
        s.last_failure_unix = unix(now);
    }
    s
}

/// The status of a HealthCheck whose spec cannot run: its errors, and no run.
pub fn invalid(
    previous: Option<&HealthCheckStatus>,
    errors: Vec<String>,
    namespace: &str,
) -> HealthCheckStatus {
    let mut s = previous.cloned().unwrap_or_default();
    s.ok = false;
    s.errors = errors;
    s.namespace = namespace.into();
    s
}

/// A new HealthCheck's status from the khstate of the KuberhealthyCheck it replaces: the last
/// result, and the last start as `lastRunUnix` so the next run keeps its time. A run in flight
/// in the khstate stays the khstate's: only its start is taken.
pub fn seeded_from_state(state: &KuberhealthyStateSpec, namespace: &str) -> HealthCheckStatus {
    let started = schedule::last_start(state);
    let finished = (!state.run_in_flight())
        .then_some(state.run_finished_at.or(state.last_run))
        .flatten();
    HealthCheckStatus {
        ok: state.ok,
        errors: state.errors.clone(),
        consecutive_failures: i64::from(state.consecutive_failures),
        run_duration: duration::parse(&state.run_duration).map(nanos).unwrap_or(0),
        namespace: namespace.into(),
        last_run_unix: started.map_or(0, unix),
        last_ok_unix: state.last_ok_at.map_or(0, unix),
        last_failure_unix: match (state.ok, state.last_run) {
            (false, Some(at)) => unix(at),
            _ => 0,
        },
        run_started_at: started,
        run_finished_at: finished,
        node: Some(state.node.clone()).filter(|n| !n.is_empty()),
        ..Default::default()
    }
}

/// A new KuberhealthyCheck's khstate from the status of the HealthCheck it replaces: the last
/// result and the last start; no run in flight (the HealthCheck's run stays its own).
pub fn state_from(hc: &HealthCheck, writer: &str) -> KuberhealthyStateSpec {
    let mut s = as_run(hc);
    if s.run_in_flight() {
        s.run_finished_at = None;
    }
    s.uuid = String::new();
    s.run_deadline = None;
    s.run_pod = None;
    s.run_term = None;
    s.authoritative_pod = writer.into();
    s.workload = Some(Workload::Check);
    if s.run_duration.is_empty() {
        s.run_duration = "0s".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::LeaderTerm;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn hc(status: serde_json::Value) -> HealthCheck {
        let spec = json!({"runInterval": "1m", "timeout": "20s",
                          "podSpec": {"spec": {"containers": [{"name": "main", "image": "c:v1"}]}}});
        crate::api::healthcheck::fixtures::healthcheck("ns", "hc", json!({}), spec, status)
    }

    fn term() -> LeaderTerm {
        LeaderTerm {
            holder: "kh-0".into(),
            transitions: 2,
        }
    }

    fn start_at(previous: Option<&HealthCheckStatus>, at: &str) -> HealthCheckStatus {
        started(
            previous,
            &RunStart {
                uuid: "u1",
                scheduled: true,
                honours: None,
                started_at: ts(at),
                deadline: add(ts(at), Duration::from_secs(20)),
                term: &term(),
                pod: "hc-u1",
                namespace: "ns",
                workload: None,
            },
        )
    }

    #[test]
    fn a_run_is_in_flight_while_current_uuid_is_set() {
        let running = start_at(None, "2026-01-01T00:00:00.5Z");
        assert_eq!(running.current_uuid, "u1");
        assert_eq!(running.last_run_unix, 1_767_225_600, "v3's seconds");
        let mut object = hc(serde_json::to_value(&running).unwrap());
        let run = as_run(&object);
        assert!(run.run_in_flight());
        assert_eq!(run.uuid, "u1");
        assert_eq!(run.run_started_at, Some(ts("2026-01-01T00:00:00.5Z")));
        assert_eq!(run.run_pod.as_deref(), Some("hc-u1"));

        let done = finished(
            &running,
            false,
            vec!["boom".into()],
            ts("2026-01-01T00:00:03Z"),
            Some("node-1".into()),
        );
        assert_eq!(done.current_uuid, "", "v3 clears the UUID");
        assert_eq!(done.run_uuid.as_deref(), Some("u1"));
        assert_eq!(done.run_duration, 2_500_000_000);
        assert_eq!((done.failure_count, done.consecutive_failures), (1, 1));
        assert_eq!(done.last_failure_unix, 1_767_225_603);
        object.status = Some(done.clone());
        let run = as_run(&object);
        assert!(!run.run_in_flight());
        assert_eq!(run.uuid, "u1", "a resent report finds its finished run");
        assert_eq!(run.last_run, Some(ts("2026-01-01T00:00:03Z")));
        assert_eq!(run.run_duration, "2.5s");
        assert_eq!(run.node, "node-1");

        let ok = finished(
            &start_at(Some(&done), "2026-01-01T00:01:00Z"),
            true,
            vec![],
            ts("2026-01-01T00:01:01Z"),
            None,
        );
        assert_eq!((ok.success_count, ok.failure_count), (1, 1));
        assert_eq!(ok.consecutive_failures, 0);
        assert_eq!(ok.last_ok_unix, 1_767_225_661);
        assert!(ok.errors.is_empty());
    }

    #[test]
    fn a_run_v3_started_has_v3s_deadline_and_no_pod() {
        let run = as_run(&hc(
            json!({"currentUUID": "v3-run", "lastRunUnix": 1_767_225_600}),
        ));
        assert!(run.run_in_flight());
        assert_eq!(
            run.run_deadline,
            Some(ts("2026-01-01T00:00:20Z")),
            "lastRunUnix + timeout"
        );
        assert_eq!(run.run_pod, None);
        // Finished by v3: the timer is lastRunUnix.
        let run = as_run(&hc(json!({"currentUUID": "", "lastRunUnix": 1_767_225_600,
                                    "ok": true, "lastOKUnix": 1_767_225_605})));
        assert!(!run.run_in_flight());
        assert_eq!(run.run_started_at, Some(ts("2026-01-01T00:00:00Z")));
        assert_eq!(run.last_run, Some(ts("2026-01-01T00:00:05Z")));
    }

    #[test]
    fn a_never_run_healthcheck_has_no_start_and_no_result() {
        let run = as_run(&hc(json!(null)));
        assert_eq!(run.run_started_at, None);
        assert!(!run.has_result());
        assert!(!run.run_in_flight());
    }

    #[test]
    fn a_khstate_seeds_the_status_with_its_result_and_timer() {
        let state = KuberhealthyStateSpec {
            ok: false,
            errors: vec!["e".into()],
            run_duration: "1.5s".into(),
            uuid: "old".into(),
            last_run: Some(ts("2026-01-01T00:00:02Z")),
            run_started_at: Some(ts("2026-01-01T00:00:00.25Z")),
            run_finished_at: Some(ts("2026-01-01T00:00:02Z")),
            consecutive_failures: 3,
            last_ok_at: Some(ts("2025-12-31T00:00:00Z")),
            node: "node-a".into(),
            ..Default::default()
        };
        let seeded = seeded_from_state(&state, "ns");
        assert_eq!(seeded.last_run_unix, 1_767_225_600);
        assert_eq!(seeded.run_started_at, state.run_started_at);
        assert_eq!(seeded.run_duration, 1_500_000_000);
        assert_eq!(seeded.current_uuid, "");
        assert_eq!(seeded.consecutive_failures, 3);
        assert_eq!(seeded.last_failure_unix, 1_767_225_602);
        let object = hc(serde_json::to_value(&seeded).unwrap());
        let run = as_run(&object);
        assert_eq!(
            schedule::last_start(&run),
            schedule::last_start(&state),
            "the timer is kept"
        );
        assert_eq!((run.ok, run.errors.clone()), (false, vec!["e".to_string()]));

        // And back: a khstate from the HealthCheck keeps the same timer and result.
        let back = state_from(&object, "kh-1");
        assert_eq!(schedule::last_start(&back), state.run_started_at);
        assert!(!back.run_in_flight());
        assert_eq!((back.ok, back.errors), (false, vec!["e".to_string()]));
        assert_eq!(back.authoritative_pod, "kh-1");
    }

    #[test]
    fn a_v2_written_state_seeds_from_last_run() {
        let state = KuberhealthyStateSpec {
            ok: true,
            uuid: "v2-run".into(),
            run_duration: "3s".into(),
            last_run: Some(ts("2026-01-01T00:00:03Z")),
            ..Default::default()
        };
        let seeded = seeded_from_state(&state, "ns");
        assert_eq!(seeded.last_run_unix, 1_767_225_603);
        assert_eq!(seeded.last_failure_unix, 0);
    }
}
