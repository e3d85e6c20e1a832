//! Deciding what a report for run `uuid` does to a check's state (pure).

use jiff::Timestamp;

use super::parse::Report;
use crate::api::KuberhealthyStateSpec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Record the result: the run is in flight and within its deadline.
    Record,
    /// The same result was already recorded for this run (a client retrying after a lost
    /// answer): answer 200 and count it once.
    Duplicate,
    /// The run is over: finished, superseded or past its deadline (HTTP 410).
    Gone(String),
}

pub fn judge(
    key: &str,
    state: &KuberhealthyStateSpec,
    uuid: &str,
    report: &Report,
    now: Timestamp,
) -> Judgement {
    if state.uuid != uuid {
        // A client retrying after its answer was lost, once the next run has started.
        if let Some(past) = state.history.iter().find(|r| r.uuid == uuid) {
            if past.has_result(report.ok, &report.errors) {
                return Judgement::Duplicate;
            }
            return Judgement::Gone(format!(
                "run {uuid} of {key} already finished at {} ({}); this different report was not recorded",
                past.finished_at,
                describe_result(past.ok, &past.errors)
            ));
        }
        let current = if state.uuid.is_empty() {
            "none".to_string()
        } else {
            state.uuid.clone()
        };
        return Judgement::Gone(format!(
            "run {uuid} of {key} was superseded: the current run is {current}; its result was not recorded"
        ));
    }
    if !state.run_in_flight() {
        if state.ok == report.ok && state.errors == report.errors {
            return Judgement::Duplicate;
        }
        let when = state
            .run_finished_at
            .or(state.last_run)
            .map(|t| format!(" at {t}"))
            .unwrap_or_default();
        let how = describe_result(state.ok, &state.errors);
        return Judgement::Gone(format!(
            "run {uuid} of {key} already finished{when} ({how}); this different report was not recorded"
        ));
    }
    if let Some(deadline) = state.run_deadline
        && now > deadline
    {
        return Judgement::Gone(format!(
            "run {uuid} of {key} passed its deadline at {deadline}; the result was not recorded"
        ));
    }
    Judgement::Record
}

/// A recorded result, for messages.
fn describe_result(ok: bool, errors: &[String]) -> String {
    if ok {
        "it reported OK".to_string()
    } else {
        format!(
            "its result: {}",
            errors.first().map(String::as_str).unwrap_or("failed")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn in_flight() -> KuberhealthyStateSpec {
        KuberhealthyStateSpec {
            uuid: "u1".into(),
            ok: true,
            run_started_at: Some(ts("2026-01-01T00:00:00Z")),
            run_deadline: Some(ts("2026-01-01T00:05:00Z")),
            ..Default::default()
        }
    }

    fn report(ok: bool, errors: &[&str]) -> Report {
        Report {
            ok,
            errors: errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    const NOW: &str = "2026-01-01T00:01:00Z";

    #[test]
    fn a_report_within_the_deadline_is_recorded() {
        assert_eq!(
            judge("ns/c", &in_flight(), "u1", &report(true, &[]), ts(NOW)),
            Judgement::Record
        );
        assert_eq!(
            judge(
                "ns/c",
                &in_flight(),
                "u1",
                &report(true, &[]),
                ts("2026-01-01T00:05:00Z")
            ),
            Judgement::Record
        );
    }

    #[test]
    fn a_late_report_is_gone() {
        assert_eq!(
            judge("ns/c", &in_flight(), "u1", &report(true, &[]), ts("2026-01-01T00:05:01Z")),
            Judgement::Gone("run u1 of ns/c passed its deadline at 2026-01-01T00:05:00Z; the result was not recorded".into())
        );
    }

    #[test]
    fn a_superseded_run_is_gone() {
        assert_eq!(
            judge("ns/c", &in_flight(), "u0", &report(true, &[]), ts(NOW)),
            Judgement::Gone(
                "run u0 of ns/c was superseded: the current run is u1; its result was not recorded"
                    .into()
            )
        );
    }

    #[test]
    fn a_report_resent_after_the_next_run_started_is_judged_from_history() {
        use crate::api::RunResult;
        // u0 finished with e1; u1 is in flight; u0's client resends its report.
        let mut state = in_flight();
        let long_error = "x".repeat(4000);
        state.history = vec![RunResult::bounded(
            "u0".into(),
            ts("2025-12-31T23:59:00Z"),
            ts("2025-12-31T23:59:30Z"),
            false,
            std::slice::from_ref(&long_error),
            None,
        )];
        assert_eq!(
            judge(
                "ns/c",
                &state,
                "u0",
                &report(false, &[&long_error]),
                ts(NOW)
            ),
            Judgement::Duplicate,
            "the same result, as history bounds it"
        );
        let Judgement::Gone(why) = judge("ns/c", &state, "u0", &report(true, &[]), ts(NOW)) else {
            panic!("a different result for a finished run")
        };
        assert!(
            why.starts_with(
                "run u0 of ns/c already finished at 2025-12-31T23:59:30Z (its result: xxx"
            ),
            "{why}"
        );
    }

    #[test]
    fn a_resent_identical_report_is_a_duplicate_and_a_different_one_is_gone() {
        let mut done = in_flight();
        done.ok = false;
        done.errors = vec!["e1".into()];
        done.run_finished_at = Some(ts("2026-01-01T00:00:30Z"));
        assert_eq!(
            judge("ns/c", &done, "u1", &report(false, &["e1"]), ts(NOW)),
            Judgement::Duplicate
        );
        assert_eq!(
            judge("ns/c", &done, "u1", &report(true, &[]), ts(NOW)),
            Judgement::Gone("run u1 of ns/c already finished at 2026-01-01T00:00:30Z (its result: e1); this different report was not recorded".into())
        );
    }
}
