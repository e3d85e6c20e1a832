//! Uptime over the last 24 hours, 7 days and 30 days, from a record's daily counters and its
//! last result (pure; see [`super::history`] for how time is counted).
//!
//! Uptime is the share of the observed time the check was up. Time before its first result
//! is not observed, so a check created mid-window is judged on its life so far. The segment
//! since the last result counts as that result said until it turns stale, then as down. The
//! day at a window's far edge counts in proportion to its part inside the window.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::history::{DayCounts, LastResult, start_of};
use super::time::add;

const DAY: Duration = Duration::from_secs(86_400);

/// The windows uptime is given for.
pub const WINDOWS: [(&str, Duration); 3] = [
    ("24h", DAY),
    ("7d", Duration::from_secs(7 * 86_400)),
    ("30d", Duration::from_secs(30 * 86_400)),
];

/// Uptime in percent (rounded to a thousandth), per window; absent when nothing of the window
/// was observed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
pub struct Uptime {
    #[serde(rename = "24h", skip_serializing_if = "Option::is_none")]
    pub day: Option<f64>,
    #[serde(rename = "7d", skip_serializing_if = "Option::is_none")]
    pub week: Option<f64>,
    #[serde(rename = "30d", skip_serializing_if = "Option::is_none")]
    pub month: Option<f64>,
}

impl Uptime {
    /// Uptime over every window; none when the record has no daily counters (a record written
    /// before they existed, or by Kuberhealthy itself) or they cover no time yet.
    pub fn of(daily: &[DayCounts], last: Option<LastResult>, now: Timestamp) -> Option<Uptime> {
        if daily.is_empty() {
            return None;
        }
        let [day, week, month] = WINDOWS.map(|(_, w)| percent(daily, last, now, w));
        let uptime = Uptime { day, week, month };
        (uptime != Uptime::default()).then_some(uptime)
    }
}

/// Uptime in percent over the `window` before `now`.
pub fn percent(
    daily: &[DayCounts],
    last: Option<LastResult>,
    now: Timestamp,
    window: Duration,
) -> Option<f64> {
    let (observed, down) = observed_and_down(daily, last, now, window);
    (observed > 0.0).then(|| round_thousandth(100.0 * (observed - down) / observed))
}

/// Seconds observed and seconds down in the `window` before `now`.
pub fn observed_and_down(
    daily: &[DayCounts],
    last: Option<LastResult>,
    now: Timestamp,
    window: Duration,
) -> (f64, f64) {
    let from = now
        .checked_sub(jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MIN);
    observed_and_down_between(daily, last, now, from, now)
}

/// Seconds observed and seconds down between `from` and `to` (no later than `now`): a day's
/// counted seconds in proportion to its part inside, and the segment since the last result.
pub fn observed_and_down_between(
    daily: &[DayCounts],
    last: Option<LastResult>,
    now: Timestamp,
    from: Timestamp,
    to: Timestamp,
) -> (f64, f64) {
    let mut observed = 0.0;
    let mut down = 0.0;
    for counts in daily {
        let start = start_of(counts.day);
        let end = add(start, DAY).min(now);
        if end <= from || start >= to {
            continue;
        }
        let share = seconds(start.max(from), end.min(to)) / seconds(start, end);
        observed += share * f64::from(counts.observed_seconds);
        down += share * f64::from(counts.failing_seconds);
    }
    if let Some(last) = last {
        let begin = last.at.max(from);
        let stale_at = last
            .stale_at
            .unwrap_or(Timestamp::MAX)
            .clamp(begin, to.max(begin));
        if begin < to {
            observed += seconds(begin, to);
            if !last.ok {
                down += seconds(begin, stale_at);
            }
            down += seconds(stale_at, to);
        }
    }
    (observed, down)
}

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64().max(0.0)
}

fn round_thousandth(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::history::{DAYS_KEPT, count, day_of};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * 86_400)
    }

    /// A check that reports every `every` from `first`, failing while `failing(t)`, as its
    /// record would count it; its results stay fresh for `stale_after`.
    fn run(
        first: Timestamp,
        until: Timestamp,
        every: Duration,
        stale_after: Duration,
        failing: impl Fn(Timestamp) -> bool,
    ) -> (Vec<DayCounts>, Option<LastResult>) {
        let mut daily = vec![];
        let mut last: Option<LastResult> = None;
        let mut t = first;
        while t <= until {
            let ok = !failing(t);
            count(&mut daily, last, t, ok);
            last = Some(LastResult {
                at: t,
                ok,
                stale_at: Some(add(t, stale_after)),
            });
            t = add(t, every);
        }
        (daily, last)
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_check_always_passing_is_fully_up() {
        let now = ts("2026-03-31T12:00:00Z");
        let (daily, last) = run(ts("2026-02-01T00:00:00Z"), now, MINUTE, 3 * MINUTE, |_| {
            false
        });
        let uptime = Uptime::of(&daily, last, now).unwrap();
        assert_eq!(
            uptime,
            Uptime {
                day: Some(100.0),
                week: Some(100.0),
                month: Some(100.0)
            }
        );
    }

    #[test]
    fn an_hour_failing_today_shows_in_every_window() {
        let now = ts("2026-03-31T12:00:00Z");
        let outage = ts("2026-03-31T09:00:00Z")..ts("2026-03-31T10:00:00Z");
        let (daily, last) = run(ts("2026-02-01T00:00:00Z"), now, MINUTE, 3 * MINUTE, |t| {
            outage.contains(&t)
        });
        let uptime = Uptime::of(&daily, last, now).unwrap();
        // One hour down in 24 hours, 7 days, 30 days.
        assert_eq!(uptime.day, Some(round_thousandth(100.0 * 23.0 / 24.0)));
        assert_eq!(
            uptime.week,
            Some(round_thousandth(100.0 * (1.0 - 1.0 / 168.0)))
        );
        assert_eq!(
            uptime.month,
            Some(round_thousandth(100.0 * (1.0 - 1.0 / 720.0)))
        );
    }

    #[test]
    fn the_day_at_the_far_edge_counts_in_proportion() {
        // Down all of 2026-03-30; at noon the next day, half of it is in the last 24 hours.
        let now = ts("2026-03-31T12:00:00Z");
        let (daily, last) = run(ts("2026-03-01T00:00:00Z"), now, MINUTE, 3 * MINUTE, |t| {
            day_of(t) == "2026-03-30".parse().unwrap()
        });
        let (observed, down) = observed_and_down(&daily, last, now, days(1));
        assert!((observed - 86_400.0).abs() < 1.0, "{observed}");
        assert!((down - 43_200.0).abs() < 61.0, "{down}");
    }

    #[test]
    fn a_check_created_mid_window_is_judged_on_its_life_so_far() {
        let now = ts("2026-03-31T12:00:00Z");
        // Created two days ago; failed for its first six hours.
        let first = ts("2026-03-29T12:00:00Z");
        let (daily, last) = run(first, now, MINUTE, 3 * MINUTE, |t| {
            t < ts("2026-03-29T18:00:00Z")
        });
        let uptime = Uptime::of(&daily, last, now).unwrap();
        assert_eq!(uptime.day, Some(100.0));
        // Six hours down of 48 observed, in both longer windows alike.
        assert_eq!(uptime.week, Some(87.5));
        assert_eq!(uptime.month, Some(87.5));
    }

    #[test]
    fn stale_time_is_down() {
        // Passing every minute until 06:00, then nothing (no leader) until now: its last
        // result turned stale three minutes later.
        let now = ts("2026-03-31T12:00:00Z");
        let (daily, last) = run(
            ts("2026-03-01T00:00:00Z"),
            ts("2026-03-31T06:00:00Z"),
            MINUTE,
            3 * MINUTE,
            |_| false,
        );
        let (observed, down) = observed_and_down(&daily, last, now, days(1));
        assert!((observed - 86_400.0).abs() < 1.0);
        assert!((down - (6.0 * 3600.0 - 180.0)).abs() < 1.0, "{down}");
        // The gap, once a result closes it, is counted as down in the days it spans.
        let mut closed = daily.clone();
        count(&mut closed, last, now, true);
        let after = LastResult {
            at: now,
            ok: true,
            stale_at: Some(add(now, 3 * MINUTE)),
        };
        let (_, down_closed) = observed_and_down(&closed, Some(after), now, days(1));
        assert!((down_closed - down).abs() < 1.0);
    }

    #[test]
    fn a_failing_last_result_is_down_until_now() {
        let now = ts("2026-03-31T12:00:00Z");
        let last = LastResult {
            at: ts("2026-03-31T11:00:00Z"),
            ok: false,
            stale_at: Some(ts("2026-03-31T11:03:00Z")),
        };
        let daily = vec![DayCounts {
            day: "2026-03-31".parse().unwrap(),
            runs: 1,
            failures: 1,
            observed_seconds: 0,
            failing_seconds: 0,
        }];
        assert_eq!(percent(&daily, Some(last), now, days(1)), Some(0.0));
    }

    #[test]
    fn nothing_observed_gives_no_uptime() {
        let now = ts("2026-03-31T12:00:00Z");
        assert_eq!(Uptime::of(&[], None, now), None);
        let daily = vec![DayCounts {
            day: "2026-03-31".parse().unwrap(),
            runs: 1,
            failures: 0,
            observed_seconds: 0,
            failing_seconds: 0,
        }];
        let last = LastResult {
            at: now,
            ok: true,
            stale_at: None,
        };
        assert_eq!(
            Uptime::of(&daily, Some(last), now),
            None,
            "a first result written just now covers no time yet"
        );
        let later = add(now, Duration::from_secs(30));
        assert_eq!(
            Uptime::of(&daily, Some(last), later).and_then(|u| u.day),
            Some(100.0),
            "its time counts from then on"
        );
    }

    #[test]
    fn at_the_bound_the_30_day_window_sees_every_kept_day() {
        // Failing on the first kept day only: what is kept is what a 30-day window needs.
        let now = ts("2026-03-31T00:00:00Z");
        let (daily, last) = run(
            ts("2026-01-01T00:00:00Z"),
            now,
            10 * MINUTE,
            30 * MINUTE,
            |t| day_of(t) == "2026-03-01".parse().unwrap(),
        );
        assert_eq!(daily.len(), DAYS_KEPT);
        assert_eq!(daily[0].day, "2026-03-01".parse().unwrap());
        let (observed, down) = observed_and_down(&daily, last, now, days(30));
        assert!((observed - 30.0 * 86_400.0).abs() < 1.0, "{observed}");
        assert!((down - 86_400.0).abs() < 1.0, "{down}");
    }
}
