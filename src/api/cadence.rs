//! How often a check runs: every `runInterval`, or at the slots of a cron `schedule` in a
//! time zone. Both answer the same two questions, so scheduling and the status page need
//! no case for either: when does a new check first run, and when is the run after one that
//! started at a given time due.

use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::time::add;
use super::validate::SpecError;

/// When a check runs.
#[derive(Debug, Clone)]
pub enum Cadence {
    /// `runInterval`: one run every interval, counted from the last start.
    Interval(Duration),
    /// `schedule` (and `timeZone`): at every slot of a cron expression.
    Cron(Box<Cron>),
}

impl Cadence {
    /// When a check that never ran first runs: at once for an interval (a new check runs
    /// promptly), at its first slot after it was created for a schedule.
    pub fn first_start(&self, created: Timestamp) -> Timestamp {
        match self {
            Cadence::Interval(_) => created,
            Cadence::Cron(cron) => cron.next_after(created),
        }
    }

    /// When the run after one that started at `last` is due. For a schedule this is the first
    /// slot after `last`, so after an outage at most one missed slot is caught up.
    pub fn next_after(&self, last: Timestamp) -> Timestamp {
        match self {
            Cadence::Interval(interval) => add(last, *interval),
            Cadence::Cron(cron) => cron.next_after(last),
        }
    }

    /// The interval, for what only intervals have (v2's `runInterval` on the status page).
    pub fn interval(&self) -> Option<Duration> {
        match self {
            Cadence::Interval(interval) => Some(*interval),
            Cadence::Cron(_) => None,
        }
    }
}

/// A cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Cron {
    schedule: jiff_cron::Schedule,
    zone: TimeZone,
    /// The expression as written in the spec.
    pub expression: String,
    /// The IANA name of the time zone (`UTC` when none is given).
    pub zone_name: String,
}

impl Cron {
    /// Parses `spec.schedule`: five fields as in crontab and CronJob (`minute hour
    /// day-of-month month day-of-week`), six with seconds first, or `@hourly`, `@daily`,
    /// `@weekly`, `@monthly`, `@yearly`; `spec.timeZone` is an IANA name, UTC when empty.
    pub fn parse(expression: &str, time_zone: Option<&str>) -> Result<Cron, SpecError> {
        let trimmed = expression.trim();
        let fields = trimmed.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {trimmed}"),
            _ => trimmed.to_string(),
        };
        let schedule = jiff_cron::Schedule::from_str(&full).map_err(|e| SpecError {
            field: "spec.schedule".into(),
            message: format!(
                "{expression:?} is not a cron expression ({e}); write five fields as in crontab, \
                 such as \"0 1 * * *\" (01:00 every day), six with seconds first, or @daily"
            ),
        })?;
        let zone_name = time_zone
            .map(str::trim)
            .filter(|z| !z.is_empty())
            .unwrap_or("UTC");
        let zone = TimeZone::get(zone_name).map_err(|e| SpecError {
            field: "spec.timeZone".into(),
            message: format!(
                "{zone_name:?} is not a known time zone ({e}); write an IANA name such as \"Europe/Berlin\" or \"UTC\""
            ),
        })?;
        let cron = Cron {
            schedule,
            zone,
            expression: expression.to_string(),
            zone_name: zone_name.to_string(),
        };
        // An expression that never fires (such as 30 February) is refused, not scheduled never.
        if cron.upcoming(Timestamp::UNIX_EPOCH).is_none() {
            return Err(SpecError {
                field: "spec.schedule".into(),
                message: format!("{expression:?} has no slot: it would never run"),
            });
        }
        Ok(cron)
    }

    fn upcoming(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = after.to_zoned(self.zone.clone());
        self.schedule
            .after(zoned)
            .map(|z| z.timestamp())
            .find(|t| *t > after)
    }

    /// The first slot strictly after `t` (the end of time if none is left).
    pub fn next_after(&self, t: Timestamp) -> Timestamp {
        self.upcoming(t).unwrap_or(Timestamp::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn five_fields_are_crontabs_and_run_at_their_slots() {
        let cron = Cron::parse("0 1 * * *", None).unwrap();
        assert_eq!(cron.zone_name, "UTC");
        assert_eq!(
            cron.next_after(ts("2026-03-01T00:30:00Z")),
            ts("2026-03-01T01:00:00Z")
        );
        // Strictly after: a run that started on the slot is not due again at once.
        assert_eq!(
            cron.next_after(ts("2026-03-01T01:00:00Z")),
            ts("2026-03-02T01:00:00Z")
        );
        let every_10s = Cron::parse("*/10 * * * * *", None).unwrap();
        assert_eq!(
            every_10s.next_after(ts("2026-03-01T00:00:03.5Z")),
            ts("2026-03-01T00:00:10Z")
        );
        assert_eq!(
            Cron::parse("@hourly", None)
                .unwrap()
                .next_after(ts("2026-03-01T00:00:00Z")),
            ts("2026-03-01T01:00:00Z")
        );
    }

    #[test]
    fn slots_follow_the_time_zone_across_daylight_saving_time() {
        let berlin = Cron::parse("0 1 * * *", Some("Europe/Berlin")).unwrap();
        // 01:00 in Berlin is 00:00 UTC in winter and 23:00 UTC the day before in summer.
        assert_eq!(
            berlin.next_after(ts("2026-03-28T12:00:00Z")),
            ts("2026-03-29T00:00:00Z"),
            "the night the clocks go forward (02:00 -> 03:00), 01:00 still exists in CET"
        );
        assert_eq!(
            berlin.next_after(ts("2026-03-29T12:00:00Z")),
            ts("2026-03-29T23:00:00Z"),
            "the next day 01:00 is CEST"
        );
        // A slot inside the skipped hour (02:30 on the spring-forward night) is not lost.
        let skipped = Cron::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let spring = skipped.next_after(ts("2026-03-28T12:00:00Z"));
        assert!(
            spring > ts("2026-03-29T00:00:00Z") && spring < ts("2026-03-30T00:00:00Z"),
            "{spring}"
        );
        // The autumn night repeats 02:00-03:00: one run at 02:30, not two.
        let autumn = skipped.next_after(ts("2026-10-24T12:00:00Z"));
        let after = skipped.next_after(autumn);
        assert!(
            after.duration_since(autumn) >= jiff::SignedDuration::from_hours(23),
            "{autumn} then {after}"
        );
    }

    #[test]
    fn a_schedule_catches_up_at_most_one_missed_slot() {
        let cadence = Cadence::Cron(Box::new(Cron::parse("0 * * * *", None).unwrap()));
        // Down for five slots: the next start after the last is the first missed slot, then
        // (once that run started, late) the first slot after that start.
        let last = ts("2026-03-01T00:00:00Z");
        assert_eq!(cadence.next_after(last), ts("2026-03-01T01:00:00Z"));
        let late_start = ts("2026-03-01T05:20:00Z");
        assert_eq!(cadence.next_after(late_start), ts("2026-03-01T06:00:00Z"));
    }

    #[test]
    fn a_new_check_runs_at_once_on_an_interval_and_at_its_first_slot_on_a_schedule() {
        let created = ts("2026-03-01T00:10:00Z");
        assert_eq!(
            Cadence::Interval(Duration::from_secs(3600)).first_start(created),
            created
        );
        let cron = Cadence::Cron(Box::new(Cron::parse("0 1 * * *", None).unwrap()));
        assert_eq!(cron.first_start(created), ts("2026-03-01T01:00:00Z"));
    }

    #[test]
    fn bad_expressions_and_zones_name_the_field() {
        let e = Cron::parse("every day", None).unwrap_err();
        assert_eq!(e.field, "spec.schedule");
        assert!(
            e.message.contains("\"every day\" is not a cron expression"),
            "{e}"
        );
        let e = Cron::parse("0 1 * * *", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(e.field, "spec.timeZone");
        assert!(
            e.message
                .contains("\"Mars/Olympus\" is not a known time zone"),
            "{e}"
        );
        let e = Cron::parse("0 0 30 2 *", None).unwrap_err();
        assert!(e.message.contains("never run"), "{e}");
    }
}
