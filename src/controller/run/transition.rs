//! How a state changes when a run starts and when it finishes (pure). Writes of these
//! states carry the `resourceVersion` they were computed from.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::check::CheckTiming;
use crate::api::duration;
use crate::api::history::{self, LastResult};
use crate::api::time::add;
use crate::api::{KuberhealthyStateSpec, LeaderTerm, RunResult, Workload};

#[derive(Debug, Clone, Copy)]
pub struct RunStart<'a> {
    pub uuid: &'a str,
    /// Whether this run is a slot of the regular schedule (else only a run-now).
    pub scheduled: bool,
    /// The run-now annotation value this run honours, if any.
    pub honours: Option<&'a str>,
    pub started_at: Timestamp,
    pub deadline: Timestamp,
    pub term: &'a LeaderTerm,
    pub pod: &'a str,
    pub namespace: &'a str,
    /// The khstate's `khWorkload`; none for a HealthCheck's run.
    pub workload: Option<Workload>,
}

/// The state of a new run. The last result (OK, Errors, LastRun, ...) stays visible while
/// the run is in flight.
pub fn started(
    previous: Option<&KuberhealthyStateSpec>,
    run: RunStart<'_>,
) -> KuberhealthyStateSpec {
    let mut s = previous.cloned().unwrap_or_else(|| KuberhealthyStateSpec {
        ok: true,
        run_duration: "0s".into(),
        ..Default::default()
    });
    s.uuid = run.uuid.into();
    s.namespace = run.namespace.into();
    s.authoritative_pod = run.term.holder.clone();
    s.workload = run.workload.or(s.workload);
    s.run_started_at = Some(run.started_at);
    s.run_deadline = Some(run.deadline);
    s.run_finished_at = None;
    s.run_term = Some(run.term.clone());
    s.run_pod = Some(run.pod.into());
    if run.scheduled {
        s.scheduled_started_at = Some(run.started_at);
    }
    if let Some(request) = run.honours {
        s.honoured_run_request = Some(request.into());
    }
    s
}

/// How much later than its persisted start a run may really begin (its start write landed,
/// its pod was created) and keep its persisted date. Beyond it (an etcd stall, a failover
/// between the start and the pod) the run is dated when it began: dated earlier, it would
/// make the next run due at once.
pub const LATE_START: Duration = Duration::from_secs(1);

/// When a run persisted as started at `persisted` really began, if that was more than
/// [`LATE_START`] later.
pub fn began_late(persisted: Option<Timestamp>, began: Timestamp) -> Option<Timestamp> {
    let persisted = persisted?;
    let late = began.duration_since(persisted);
    (late > jiff::SignedDuration::try_from(LATE_START).ok()?).then_some(began)
}

/// The run just started in `s`, dated `at` instead: its start, its deadline (one timeout
/// later) and, for a slot of the schedule, the schedule's anchor. For a start whose write
/// landed late.
pub fn redated(
    s: &KuberhealthyStateSpec,
    at: Timestamp,
    timeout: Duration,
) -> KuberhealthyStateSpec {
    let mut s = s.clone();
    if s.scheduled_started_at.is_some() && s.scheduled_started_at == s.run_started_at {
        s.scheduled_started_at = Some(at);
    }
    s.run_started_at = Some(at);
    s.run_deadline = Some(add(at, timeout));
    s
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub ok: bool,
    pub errors: Vec<String>,
    /// The last lines its checker container printed, for a run that failed without a report.
    pub log_excerpt: Option<String>,
}

impl Outcome {
    /// A run that reported.
    pub fn reported(ok: bool, errors: Vec<String>) -> Outcome {
        Outcome {
            ok,
            errors,
            log_excerpt: None,
        }
    }

    /// The result's errors: the excerpt, if any, follows them as one more error, so the
    /// status page says why without a trip to the pod.
    pub fn errors_with_excerpt(&self) -> Vec<String> {
        let mut errors = self.errors.clone();
        if let Some(excerpt) = &self.log_excerpt {
            errors.push(format!(
                "last output of the checker: {}",
                history::truncate_json_tail(excerpt, history::LOG_EXCERPT_BYTES)
            ));
        }
        errors
    }
}

/// The last result of `s`, for counting the time since it into `daily`. `timing` says when it
/// turned stale; none for a job (it runs once) or a spec that cannot be read.
pub fn last_result(s: &KuberhealthyStateSpec, timing: Option<&CheckTiming>) -> Option<LastResult> {
    let at = s.last_run?;
    Some(LastResult {
        at,
        ok: s.ok,
        stale_at: timing.map(|t| t.stale_at(at)),
    })
}

/// The state once run `uuid` finished with this result, written by replica `writer`: the
/// result, the run added to `history`, and the time since the last result counted into
/// `daily` (`timing` says when that result turned stale).
pub fn finished(
    previous: &KuberhealthyStateSpec,
    outcome: Outcome,
    now: Timestamp,
    writer: &str,
    node: Option<String>,
    timing: Option<&CheckTiming>,
) -> KuberhealthyStateSpec {
    let mut s = previous.clone();
    let ok = outcome.ok;
    history::count(&mut s.daily, last_result(previous, timing), now, ok);
    let started = s.run_started_at.unwrap_or(now);
    let took = now.duration_since(started).unsigned_abs();
    s.ok = ok;
    s.run_duration = duration::format(took);
    s.last_run = Some(now);
    s.run_finished_at = Some(now);
    s.authoritative_pod = writer.into();
    if let Some(node) = node.filter(|n| !n.is_empty()) {
        s.node = node;
    }
    if ok {
        s.last_ok_at = Some(now);
        s.consecutive_failures = 0;
        s.failing_since = None;
    } else {
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        s.failing_since = s.failing_since.or(Some(now));
    }
    s.push_history(RunResult::bounded(
        s.uuid.clone(),
        started,
        now,
        ok,
        &outcome.errors,
        outcome.log_excerpt.as_deref(),
    ));
    s.errors = outcome.errors_with_excerpt();
    s
}

/// The state of a check or job whose spec cannot run: its errors, and no run.
pub fn invalid(
    previous: Option<&KuberhealthyStateSpec>,
    errors: Vec<String>,
    namespace: &str,
    workload: Workload,
    writer: &str,
    now: Timestamp,
) -> KuberhealthyStateSpec {
    let mut s = previous.cloned().unwrap_or_default();
    if let Some(last) = previous.and_then(|p| last_result(p, None)) {
        history::count_segment(&mut s.daily, last, now);
    }
    s.ok = false;
    s.errors = errors;
    s.namespace = namespace.into();
    s.authoritative_pod = writer.into();
    s.workload = Some(workload);
    s.last_run = Some(now);
    s.failing_since = s.failing_since.or(Some(now));
    if s.run_duration.is_empty() {
        s.run_duration = "0s".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn term() -> LeaderTerm {
        LeaderTerm {
            holder: "kh-0".into(),
            transitions: 3,
        }
    }

    fn start(previous: Option<&KuberhealthyStateSpec>) -> KuberhealthyStateSpec {
        started(
            previous,
            RunStart {
                uuid: "u1",
                scheduled: true,
                honours: None,
                started_at: ts("2026-01-01T00:00:00Z"),
                deadline: ts("2026-01-01T00:05:00Z"),
                term: &term(),
                pod: "c-u1",
                namespace: "ns",
                workload: Some(Workload::Check),
            },
        )
    }

    #[test]
    fn a_first_run_starts_from_an_empty_ok_state() {
        let s = start(None);
        assert!(s.run_in_flight());
        assert!(s.ok);
        assert_eq!(s.run_duration, "0s");
        assert_eq!(s.authoritative_pod, "kh-0");
        assert_eq!(s.run_term, Some(term()));
        assert_eq!(s.run_pod.as_deref(), Some("c-u1"));
    }

    #[test]
    fn a_new_run_keeps_the_last_result_visible() {
        let previous = KuberhealthyStateSpec {
            ok: false,
            errors: vec!["boom".into()],
            ..Default::default()
        };
        let s = start(Some(&previous));
        assert!(!s.ok);
        assert_eq!(s.errors, ["boom"]);
    }

    #[test]
    fn finishing_records_the_result_and_counts_failures() {
        let running = start(None);
        let failed = finished(
            &running,
            Outcome::reported(false, vec!["e1".into(), "e2".into()]),
            ts("2026-01-01T00:00:03.5Z"),
            "kh-1",
            Some("node-a".into()),
            None,
        );
        assert!(!failed.run_in_flight());
        assert_eq!(failed.run_duration, "3.5s");
        assert_eq!(failed.last_run, Some(ts("2026-01-01T00:00:03.5Z")));
        assert_eq!(failed.authoritative_pod, "kh-1", "the writer, as in v2");
        assert_eq!(failed.node, "node-a");
        assert_eq!(failed.consecutive_failures, 1);
        assert_eq!(failed.history[0].uuid, "u1");
        assert_eq!(failed.history[0].errors, ["e1", "e2"]);
        let again = finished(
            &start(Some(&failed)),
            Outcome::reported(false, vec!["e".into()]),
            ts("2026-01-01T00:10:00Z"),
            "kh-1",
            None,
            None,
        );
        assert_eq!(again.consecutive_failures, 2);
        assert_eq!(again.node, "node-a", "an unknown node keeps the last one");
        assert_eq!(
            again.failing_since,
            Some(ts("2026-01-01T00:00:03.5Z")),
            "failing since the first failure in a row"
        );
        let ok = finished(
            &start(Some(&again)),
            Outcome::reported(true, vec![]),
            ts("2026-01-01T00:20:00Z"),
            "kh-1",
            None,
            None,
        );
        assert_eq!(ok.consecutive_failures, 0);
        assert_eq!(ok.failing_since, None);
        assert_eq!(ok.last_ok_at, Some(ts("2026-01-01T00:20:00Z")));
        assert_eq!(ok.history.len(), 3);
    }

    #[test]
    fn a_requested_run_records_its_request_and_leaves_the_slot_alone() {
        let slot = start(None);
        assert_eq!(slot.scheduled_started_at, Some(ts("2026-01-01T00:00:00Z")));
        let requested = started(
            Some(&slot),
            RunStart {
                uuid: "u2",
                scheduled: false,
                honours: Some("2026-01-01T00:30:00Z"),
                started_at: ts("2026-01-01T00:30:01Z"),
                deadline: ts("2026-01-01T00:35:01Z"),
                term: &term(),
                pod: "c-u2",
                namespace: "ns",
                workload: Some(Workload::Check),
            },
        );
        assert_eq!(requested.run_started_at, Some(ts("2026-01-01T00:30:01Z")));
        assert_eq!(
            requested.scheduled_started_at,
            Some(ts("2026-01-01T00:00:00Z")),
            "the schedule still counts from the slot"
        );
        assert_eq!(
            requested.honoured_run_request.as_deref(),
            Some("2026-01-01T00:30:00Z")
        );
    }

    #[test]
    fn a_late_start_is_dated_when_it_landed() {
        let slot = start(None);
        let landed = ts("2026-01-01T00:00:20Z");
        let redated = redated(&slot, landed, std::time::Duration::from_secs(300));
        assert_eq!(redated.run_started_at, Some(landed));
        assert_eq!(
            redated.scheduled_started_at,
            Some(landed),
            "the slot moves with it"
        );
        assert_eq!(redated.run_deadline, Some(ts("2026-01-01T00:05:20Z")));
        assert_eq!(redated.uuid, slot.uuid);
        // A run-now start leaves the schedule's anchor where it was.
        let mut requested = slot.clone();
        requested.scheduled_started_at = Some(ts("2025-12-31T23:00:00Z"));
        let redated = super::redated(&requested, landed, std::time::Duration::from_secs(300));
        assert_eq!(
            redated.scheduled_started_at,
            Some(ts("2025-12-31T23:00:00Z"))
        );
    }

    #[test]
    fn a_run_began_late_only_beyond_the_allowance() {
        let persisted = ts("2026-01-01T00:00:00Z");
        assert_eq!(
            began_late(Some(persisted), ts("2026-01-01T00:00:01Z")),
            None
        );
        assert_eq!(
            began_late(Some(persisted), ts("2025-12-31T23:59:59Z")),
            None
        );
        let late = ts("2026-01-01T00:00:01.5Z");
        assert_eq!(began_late(Some(persisted), late), Some(late));
        assert_eq!(began_late(None, late), None);
    }

    #[test]
    fn history_errors_are_bounded() {
        let errors: Vec<String> = (0..10)
            .map(|i| format!("{i}{}", "é".repeat(1000)))
            .collect();
        let s = finished(
            &start(None),
            Outcome::reported(false, errors.clone()),
            ts("2026-01-01T00:00:01Z"),
            "kh-0",
            None,
            None,
        );
        assert_eq!(s.errors, errors, "the result itself is kept whole");
        assert_eq!(s.history[0].errors.len(), history::RUN_ERRORS);
        assert!(
            s.history[0].errors.iter().all(|e| {
                serde_json::to_string(e).unwrap().len() <= history::RUN_ERROR_BYTES + 2
            })
        );
    }

    #[test]
    fn a_log_excerpt_is_kept_with_its_run_and_follows_the_errors() {
        let log = format!("{}the real reason\n", "noise\n".repeat(1000));
        let s = finished(
            &start(None),
            Outcome {
                ok: false,
                errors: vec![
                    "ns/c: checker pod c-u1 exited with code 1 (Error) without reporting".into(),
                ],
                log_excerpt: Some(log),
            },
            ts("2026-01-01T00:00:02Z"),
            "kh-0",
            None,
            None,
        );
        assert_eq!(s.errors.len(), 2);
        assert!(s.errors[1].starts_with("last output of the checker: …"));
        assert!(s.errors[1].ends_with("the real reason\n"));
        assert_eq!(s.history[0].errors, s.errors[..1]);
        let excerpt = s.history[0].log_excerpt.as_deref().unwrap();
        assert!(
            excerpt.ends_with("noise\nthe real reason\n"),
            "the last lines"
        );
        assert!(excerpt.len() <= history::LOG_EXCERPT_BYTES);
    }

    #[test]
    fn results_count_the_time_since_the_last_one_into_daily() {
        let timing = CheckTiming {
            cadence: crate::api::cadence::Cadence::Interval(Duration::from_secs(600)),
            timeout: Duration::from_secs(300),
        };
        let first = finished(
            &start(None),
            Outcome::reported(false, vec!["e".into()]),
            ts("2026-01-01T00:00:05Z"),
            "kh-0",
            None,
            Some(&timing),
        );
        assert_eq!(first.daily.len(), 1);
        assert_eq!((first.daily[0].runs, first.daily[0].failures), (1, 1));
        assert_eq!(first.daily[0].observed_seconds, 0);
        // The next result comes an hour later: failing until it turned stale (next slot +
        // timeout + tolerance = 16 minutes), stale after; both down.
        let second = finished(
            &start(Some(&first)),
            Outcome::reported(true, vec![]),
            ts("2026-01-01T01:00:05Z"),
            "kh-0",
            None,
            Some(&timing),
        );
        assert_eq!((second.daily[0].runs, second.daily[0].failures), (2, 1));
        assert_eq!(second.daily[0].observed_seconds, 3600);
        assert_eq!(second.daily[0].failing_seconds, 3600);
        let third = finished(
            &start(Some(&second)),
            Outcome::reported(true, vec![]),
            ts("2026-01-01T02:00:05Z"),
            "kh-0",
            None,
            Some(&timing),
        );
        assert_eq!(third.daily[0].observed_seconds, 7200);
        assert_eq!(
            third.daily[0].failing_seconds,
            3600 + 3600 - 16 * 60,
            "passing until stale, then down"
        );
    }

    #[test]
    fn an_invalid_spec_counts_the_time_since_the_last_result() {
        let passed = finished(
            &start(None),
            Outcome::reported(true, vec![]),
            ts("2026-01-01T00:00:00Z"),
            "kh-0",
            None,
            None,
        );
        let invalid = invalid(
            Some(&passed),
            vec!["bad".into()],
            "ns",
            Workload::Check,
            "kh-0",
            ts("2026-01-01T00:10:00Z"),
        );
        assert_eq!(invalid.daily[0].observed_seconds, 600);
        assert_eq!(invalid.daily[0].failing_seconds, 0);
        assert_eq!(invalid.daily[0].runs, 1, "not a run");
    }
}
