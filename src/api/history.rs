//! A check's history in its record (pure): the recent runs, and compact counters per UTC day
//! for the last [`DAYS_KEPT`] days. Both are updated in the same write that records a result,
//! so keeping them costs no API request.
//!
//! Size bound: `history` and `daily` together serialize to less than
//! [`HISTORY_BYTES_BOUND`] (128 KiB), whatever the checkers print: at most [`HISTORY_LIMIT`]
//! runs, each with at most [`RUN_ERRORS`] errors of [`RUN_ERROR_BYTES`] and a log excerpt of
//! [`LOG_EXCERPT_BYTES`] (measured as JSON, escapes included), and at most [`DAYS_KEPT`] days.
//!
//! Time accounting: after a result, the check is up (the result passed) or down (it failed)
//! until the next result; past the moment that result turns stale (its next run should have
//! reported by then), it is down whatever it said. Each segment between two results is
//! counted into the days it spans when the later result is written; the segment from the
//! last result to now is added when uptime is computed (see [`super::uptime`]).

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How many finished runs `history` keeps.
pub const HISTORY_LIMIT: usize = 30;
/// How many UTC days `daily` covers: today and the 30 days before it, so a 30-day window
/// ending now is covered whole.
pub const DAYS_KEPT: usize = 31;
/// At most this many errors are kept with a run in `history`...
pub const RUN_ERRORS: usize = 3;
/// ...each at most this many bytes as JSON.
pub const RUN_ERROR_BYTES: usize = 512;
/// The log excerpt of a run is at most this many bytes as JSON.
pub const LOG_EXCERPT_BYTES: usize = 2048;
/// What `history` and `daily` serialize to at most.
pub const HISTORY_BYTES_BOUND: usize = 128 * 1024;

/// One finished run, kept in `history`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub uuid: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub ok: bool,
    /// Its first errors, each cut to [`RUN_ERROR_BYTES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The last lines its checker container printed, for a run that failed without a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_excerpt: Option<String>,
}

impl RunResult {
    /// A run as history keeps it: its errors and excerpt cut to the bound.
    pub fn bounded(
        uuid: String,
        started_at: Timestamp,
        finished_at: Timestamp,
        ok: bool,
        errors: &[String],
        log_excerpt: Option<&str>,
    ) -> RunResult {
        RunResult {
            uuid,
            started_at,
            finished_at,
            ok,
            errors: bounded_errors(errors),
            log_excerpt: log_excerpt.map(|l| truncate_json_tail(l, LOG_EXCERPT_BYTES)),
        }
    }

    /// Whether this run's kept result is `ok` with `errors` (as history bounds them): a
    /// report of it sent again.
    pub fn has_result(&self, ok: bool, errors: &[String]) -> bool {
        self.ok == ok && self.errors == bounded_errors(errors)
    }

    /// How long the run took.
    pub fn duration(&self) -> Duration {
        self.finished_at
            .duration_since(self.started_at)
            .unsigned_abs()
    }
}

/// A run's first [`RUN_ERRORS`] errors, each cut to [`RUN_ERROR_BYTES`].
fn bounded_errors(errors: &[String]) -> Vec<String> {
    errors
        .iter()
        .take(RUN_ERRORS)
        .map(|e| truncate_json(e, RUN_ERROR_BYTES))
        .collect()
}

/// One UTC day of a check, kept in `daily`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayCounts {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: Date,
    /// Results written that day.
    #[serde(default)]
    pub runs: u32,
    /// Failed results written that day.
    #[serde(default)]
    pub failures: u32,
    /// Seconds of the day that a result covered (from the first result on).
    #[serde(default)]
    pub observed_seconds: u32,
    /// Of those, seconds the check was down: failing, or stale.
    #[serde(default)]
    pub failing_seconds: u32,
}

/// The last result before a new one: what it said, when, and when it turned stale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastResult {
    pub at: Timestamp,
    pub ok: bool,
    /// When it turned (or turns) stale; none when it never does (a job's single run).
    pub stale_at: Option<Timestamp>,
}

/// The UTC day of `t`.
pub fn day_of(t: Timestamp) -> Date {
    t.to_zoned(TimeZone::UTC).date()
}

/// When UTC day `day` starts.
pub fn start_of(day: Date) -> Timestamp {
    day.to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MIN)
}

/// Counts a result written at `now` into `daily`: the segment since the last result (up, down,
/// or stale past its stale moment), then the result itself. Days older than [`DAYS_KEPT`]
/// are dropped; `daily` stays in day order.
pub fn count(daily: &mut Vec<DayCounts>, last: Option<LastResult>, now: Timestamp, ok: bool) {
    if let Some(last) = last {
        count_segment(daily, last, now);
    }
    let today = entry(daily, day_of(now));
    today.runs = today.runs.saturating_add(1);
    if !ok {
        today.failures = today.failures.saturating_add(1);
    }
    prune(daily, now);
}

/// Counts the segment from `last` to `now` without a new run (a spec turned invalid).
pub fn count_segment(daily: &mut Vec<DayCounts>, last: LastResult, now: Timestamp) {
    // Only what the kept days can hold: an upgraded record's last result may be months old.
    let oldest = start_of(oldest_day(now));
    let from = last.at.max(oldest);
    let stale_at = last.stale_at.unwrap_or(Timestamp::MAX).max(from).min(now);
    add_span(daily, from, stale_at, !last.ok);
    add_span(daily, stale_at, now, true);
    prune(daily, now);
}

/// The first day kept at `now`.
pub fn oldest_day(now: Timestamp) -> Date {
    day_of(now)
        .checked_sub(jiff::Span::new().days(DAYS_KEPT as i64 - 1))
        .unwrap_or(Date::MIN)
}

/// Adds `[from, to)` to the days it spans, as down when `down`.
fn add_span(daily: &mut Vec<DayCounts>, from: Timestamp, to: Timestamp, down: bool) {
    let mut at = from;
    while at < to {
        let day = day_of(at);
        let next_day = start_of(day.tomorrow().unwrap_or(Date::MAX)).min(to);
        let seconds = seconds_between(at, next_day);
        let counts = entry(daily, day);
        counts.observed_seconds = counts.observed_seconds.saturating_add(seconds);
        if down {
            counts.failing_seconds = counts.failing_seconds.saturating_add(seconds);
        }
        if next_day <= at {
            break;
        }
        at = next_day;
    }
}

fn seconds_between(from: Timestamp, to: Timestamp) -> u32 {
    let d = to.duration_since(from).max(SignedDuration::ZERO);
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// The counts of `day`, inserted in day order if missing.
fn entry(daily: &mut Vec<DayCounts>, day: Date) -> &mut DayCounts {
    let i = match daily.binary_search_by(|c| c.day.cmp(&day)) {
        Ok(i) => i,
        Err(i) => {
            daily.insert(
                i,
                DayCounts {
                    day,
                    runs: 0,
                    failures: 0,
                    observed_seconds: 0,
                    failing_seconds: 0,
                },
            );
            i
        }
    };
    &mut daily[i]
}

fn prune(daily: &mut Vec<DayCounts>, now: Timestamp) {
    let oldest = oldest_day(now);
    daily.retain(|c| c.day >= oldest);
    let excess = daily.len().saturating_sub(DAYS_KEPT);
    daily.drain(..excess);
}

/// How many bytes `c` takes inside a JSON string.
fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if c < ' ' => 6,
        c => c.len_utf8(),
    }
}

const ELLIPSIS: char = '…';

/// `s` cut so that it takes at most `max` bytes as JSON (quotes excluded), marked with `…`.
pub fn truncate_json(s: &str, max: usize) -> String {
    if s.chars().map(json_len).sum::<usize>() <= max {
        return s.to_string();
    }
    let budget = max - ELLIPSIS.len_utf8();
    let mut used = 0;
    let mut out: String = s
        .chars()
        .take_while(|&c| {
            used += json_len(c);
            used <= budget
        })
        .collect();
    out.push(ELLIPSIS);
    out
}

/// The end of `s` that takes at most `max` bytes as JSON, marked with `…` when cut: the last
/// lines of a log are the ones that say why it failed.
pub fn truncate_json_tail(s: &str, max: usize) -> String {
    if s.chars().map(json_len).sum::<usize>() <= max {
        return s.to_string();
    }
    let budget = max - ELLIPSIS.len_utf8();
    let mut used = 0;
    let mut kept: Vec<char> = s
        .chars()
        .rev()
        .take_while(|&c| {
            used += json_len(c);
            used <= budget
        })
        .collect();
    kept.push(ELLIPSIS);
    kept.into_iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn last(at: &str, ok: bool, stale_at: Option<&str>) -> Option<LastResult> {
        Some(LastResult {
            at: ts(at),
            ok,
            stale_at: stale_at.map(ts),
        })
    }

    #[test]
    fn a_first_result_counts_a_run_and_no_time() {
        let mut daily = vec![];
        count(&mut daily, None, ts("2026-03-01T10:00:00Z"), false);
        assert_eq!(
            daily,
            [DayCounts {
                day: day("2026-03-01"),
                runs: 1,
                failures: 1,
                observed_seconds: 0,
                failing_seconds: 0,
            }]
        );
    }

    #[test]
    fn a_segment_counts_as_its_last_result_said() {
        let mut daily = vec![];
        let stale = Some("2026-03-01T11:00:00Z");
        count(
            &mut daily,
            last("2026-03-01T10:00:00Z", false, stale),
            ts("2026-03-01T10:10:00Z"),
            true,
        );
        count(
            &mut daily,
            last("2026-03-01T10:10:00Z", true, stale),
            ts("2026-03-01T10:20:00Z"),
            true,
        );
        assert_eq!(daily.len(), 1);
        assert_eq!(daily[0].runs, 2);
        assert_eq!(daily[0].failures, 0);
        assert_eq!(daily[0].observed_seconds, 1200);
        assert_eq!(daily[0].failing_seconds, 600, "down while the failure held");
    }

    #[test]
    fn time_past_the_stale_moment_is_down() {
        let mut daily = vec![];
        count(
            &mut daily,
            last("2026-03-01T10:00:00Z", true, Some("2026-03-01T10:05:00Z")),
            ts("2026-03-01T11:00:00Z"),
            true,
        );
        assert_eq!(daily[0].observed_seconds, 3600);
        assert_eq!(daily[0].failing_seconds, 3300);
    }

    #[test]
    fn a_segment_over_midnight_is_split_between_the_days() {
        let mut daily = vec![];
        count(
            &mut daily,
            last("2026-03-01T23:00:00Z", false, None),
            ts("2026-03-02T01:30:00Z"),
            true,
        );
        assert_eq!(daily.len(), 2);
        assert_eq!(daily[0].day, day("2026-03-01"));
        assert_eq!(daily[0].observed_seconds, 3600);
        assert_eq!(daily[0].failing_seconds, 3600);
        assert_eq!(daily[0].runs, 0);
        assert_eq!(daily[1].day, day("2026-03-02"));
        assert_eq!(daily[1].observed_seconds, 5400);
        assert_eq!(daily[1].runs, 1);
    }

    #[test]
    fn only_the_kept_days_are_kept() {
        let mut daily = vec![];
        // An old record upgraded: its last result is two months old and went stale at once.
        count(
            &mut daily,
            last("2026-01-01T00:00:00Z", true, Some("2026-01-01T00:10:00Z")),
            ts("2026-03-01T12:00:00Z"),
            true,
        );
        assert_eq!(daily.len(), DAYS_KEPT);
        assert_eq!(daily[0].day, day("2026-01-30"));
        assert_eq!(daily[0].observed_seconds, 86_400);
        assert_eq!(daily[0].failing_seconds, 86_400);
        assert_eq!(daily[DAYS_KEPT - 1].day, day("2026-03-01"));
        assert_eq!(daily[DAYS_KEPT - 1].observed_seconds, 43_200);
        assert!(daily.windows(2).all(|w| w[0].day < w[1].day));
    }

    #[test]
    fn cuts_are_measured_as_json() {
        let quotes = "\"".repeat(1000);
        let cut = truncate_json(&quotes, 100);
        assert!(serde_json::to_string(&cut).unwrap().len() <= 102);
        let controls = "\u{1}".repeat(1000);
        let cut = truncate_json_tail(&controls, 100);
        assert!(serde_json::to_string(&cut).unwrap().len() <= 102);
        assert!(cut.starts_with(ELLIPSIS));
        assert_eq!(truncate_json("short", 100), "short");
        assert_eq!(truncate_json_tail("a\nb", 100), "a\nb");
        let log = "line 1\nline 2\nthe reason\n";
        assert_eq!(
            truncate_json_tail(log, 16),
            "…the reason\\n".replace("\\n", "\n")
        );
    }

    #[test]
    fn a_record_at_the_bound_stays_under_it() {
        let worst = |n: usize| -> String {
            // Quotes and control characters take the most room as JSON.
            (0..n)
                .map(|i| if i % 2 == 0 { '"' } else { '\u{1}' })
                .collect()
        };
        let errors: Vec<String> = (0..10).map(|_| worst(5000)).collect();
        let history: Vec<RunResult> = (0..HISTORY_LIMIT)
            .map(|i| {
                RunResult::bounded(
                    format!("{:08}-0000-4000-8000-000000000000", i),
                    Timestamp::MAX,
                    Timestamp::MAX,
                    false,
                    &errors,
                    Some(&worst(100_000)),
                )
            })
            .collect();
        let daily: Vec<DayCounts> = (0..DAYS_KEPT)
            .map(|i| DayCounts {
                day: Date::MAX
                    .checked_sub(jiff::Span::new().days(i as i64))
                    .unwrap(),
                runs: u32::MAX,
                failures: u32::MAX,
                observed_seconds: u32::MAX,
                failing_seconds: u32::MAX,
            })
            .collect();
        let json = serde_json::to_string(&serde_json::json!({
            "history": history,
            "daily": daily,
        }))
        .unwrap();
        assert!(
            json.len() < HISTORY_BYTES_BOUND,
            "{} bytes at the bound",
            json.len()
        );
        assert!(
            json.len() > HISTORY_BYTES_BOUND / 2,
            "the test fills the history"
        );
    }
}
