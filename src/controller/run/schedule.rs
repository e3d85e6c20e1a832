//! When each check runs (pure). A check's next start follows its last start by its cadence
//! (`runInterval`, or the next slot of its `schedule`), read from its persisted state, never
//! from process memory: creating, editing or deleting another check, a restart or a
//! failover moves no check's next start.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::KuberhealthyStateSpec;
use crate::api::cadence::Cadence;

/// When a check should next start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStart {
    /// A run is in flight; nothing to start.
    InFlight,
    /// Due at this time (possibly in the past: overdue).
    At(Timestamp),
}

/// The last start of a check's regular schedule: the persisted `scheduledStartedAt`, else
/// `runStartedAt`, or, for a state written by v2 (a run `uuid` without `runStartedAt`), its
/// `LastRun`, so moving from v2 does not rerun every check at once. A state without a run
/// has no last start, even with a `LastRun`: that is when the check was found invalid, and a
/// fixed check must run at once.
pub fn last_start(state: &KuberhealthyStateSpec) -> Option<Timestamp> {
    state
        .scheduled_started_at
        .or(state.run_started_at)
        .or(state.last_run.filter(|_| !state.uuid.is_empty()))
}

/// When a check runs next: after its last start by its cadence, or, for a check that never
/// ran, at its cadence's first start after `created` (its creation time).
pub fn next_start(
    state: Option<&KuberhealthyStateSpec>,
    cadence: &Cadence,
    created: Timestamp,
) -> NextStart {
    match state {
        Some(s) if s.run_in_flight() => NextStart::InFlight,
        Some(s) => match last_start(s) {
            Some(last) => NextStart::At(cadence.next_after(last)),
            None => NextStart::At(cadence.first_start(created)),
        },
        None => NextStart::At(cadence.first_start(created)),
    }
}

/// Limits how fast overdue checks start, so a catch-up after an outage is spread out
/// instead of starting everything at once. A token bucket: `rate` starts per second, with
/// bursts of at most `rate`.
#[derive(Debug, Clone)]
pub struct StartBudget {
    rate: f64,
    tokens: f64,
    refilled_at: tokio::time::Instant,
}

impl StartBudget {
    pub fn new(rate_per_second: u32) -> Self {
        let rate = f64::from(rate_per_second.max(1));
        StartBudget {
            rate,
            tokens: rate,
            refilled_at: tokio::time::Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = tokio::time::Instant::now();
        let earned = (now - self.refilled_at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.rate);
        self.refilled_at = now;
    }

    /// How many starts the budget allows now.
    pub fn available(&mut self) -> usize {
        self.refill();
        self.tokens.floor() as usize
    }

    /// Spends `starts` (at most what is available).
    pub fn take(&mut self, starts: usize) {
        self.refill();
        self.tokens = (self.tokens - starts as f64).max(0.0);
    }

    /// How long until the next start is allowed.
    pub fn wait(&mut self) -> Duration {
        self.refill();
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn state(
        started: Option<&str>,
        finished: Option<&str>,
        last_run: Option<&str>,
    ) -> KuberhealthyStateSpec {
        KuberhealthyStateSpec {
            uuid: "u".into(),
            run_started_at: started.map(ts),
            run_finished_at: finished.map(ts),
            last_run: last_run.map(ts),
            ..Default::default()
        }
    }

    const HOUR: Cadence = Cadence::Interval(Duration::from_secs(3600));

    #[test]
    fn a_new_check_is_due_at_creation() {
        let created = ts("2026-01-01T00:00:00Z");
        assert_eq!(next_start(None, &HOUR, created), NextStart::At(created));
        assert_eq!(
            next_start(Some(&KuberhealthyStateSpec::default()), &HOUR, created),
            NextStart::At(created)
        );
    }

    #[test]
    fn the_next_start_is_the_last_start_plus_the_interval() {
        let created = ts("2025-01-01T00:00:00Z");
        let s = state(
            Some("2026-01-01T00:00:00Z"),
            Some("2026-01-01T00:00:09Z"),
            Some("2026-01-01T00:00:09Z"),
        );
        assert_eq!(
            next_start(
                Some(&s),
                &Cadence::Interval(Duration::from_secs(6 * 3600)),
                created
            ),
            NextStart::At(ts("2026-01-01T06:00:00Z"))
        );
        // Changing the interval reschedules from the same last start.
        assert_eq!(
            next_start(Some(&s), &HOUR, created),
            NextStart::At(ts("2026-01-01T01:00:00Z"))
        );
    }

    #[test]
    fn a_run_in_flight_is_not_started_again() {
        let s = state(Some("2026-01-01T00:00:00Z"), None, None);
        assert_eq!(
            next_start(Some(&s), &HOUR, ts("2025-01-01T00:00:00Z")),
            NextStart::InFlight
        );
    }

    #[test]
    fn a_v2_state_schedules_from_its_last_run() {
        let s = state(None, None, Some("2026-01-01T00:00:00Z"));
        assert_eq!(
            next_start(Some(&s), &HOUR, ts("2025-01-01T00:00:00Z")),
            NextStart::At(ts("2026-01-01T01:00:00Z"))
        );
    }

    #[test]
    fn a_check_fixed_after_being_invalid_runs_at_once() {
        // `transition::invalid` writes `LastRun` but starts no run: no uuid, no runStartedAt.
        let created = ts("2026-01-01T00:00:00Z");
        let invalid = KuberhealthyStateSpec {
            last_run: Some(ts("2026-01-01T00:00:01Z")),
            errors: vec!["ns/c: invalid check: spec.runInterval: ...".into()],
            ..Default::default()
        };
        assert_eq!(
            next_start(Some(&invalid), &HOUR, created),
            NextStart::At(created)
        );
    }

    #[test]
    fn a_requested_run_does_not_move_the_schedule() {
        // The slot run started at 00:00; a run-now at 00:20 started after it.
        let s = KuberhealthyStateSpec {
            uuid: "now".into(),
            scheduled_started_at: Some(ts("2026-01-01T00:00:00Z")),
            run_started_at: Some(ts("2026-01-01T00:20:00Z")),
            run_finished_at: Some(ts("2026-01-01T00:20:05Z")),
            ..Default::default()
        };
        assert_eq!(
            next_start(Some(&s), &HOUR, ts("2025-01-01T00:00:00Z")),
            NextStart::At(ts("2026-01-01T01:00:00Z"))
        );
    }

    #[test]
    fn a_scheduled_check_runs_at_its_next_slot_even_after_a_failover() {
        let cron = Cadence::Cron(Box::new(
            crate::api::cadence::Cron::parse("0 */6 * * *", None).unwrap(),
        ));
        let created = ts("2026-01-01T01:00:00Z");
        assert_eq!(
            next_start(None, &cron, created),
            NextStart::At(ts("2026-01-01T06:00:00Z")),
            "a new scheduled check waits for its first slot"
        );
        // What a new leader reads after a failover: the persisted start of the 06:00 slot.
        let s = state(
            Some("2026-01-01T06:00:00.3Z"),
            Some("2026-01-01T06:00:04Z"),
            None,
        );
        assert_eq!(
            next_start(Some(&s), &cron, created),
            NextStart::At(ts("2026-01-01T12:00:00Z"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_start_budget_spreads_a_catch_up() {
        let mut budget = StartBudget::new(5);
        assert_eq!(budget.available(), 5, "a burst of at most the rate");
        budget.take(5);
        assert_eq!(budget.available(), 0);
        assert_eq!(budget.wait(), Duration::from_millis(200));
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(budget.available(), 2);
        tokio::time::advance(Duration::from_millis(600)).await;
        assert_eq!(budget.available(), 5);
        budget.take(5);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(budget.available(), 5, "unused time does not pile up");
    }
}
