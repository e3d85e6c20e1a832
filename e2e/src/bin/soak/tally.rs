//! The soak's verdict, from the pod runner's record, the checkers' own logs and the audit
//! log (never from the controller's view): pure, so it is unit-tested.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kuberhealthy_e2e::slots::{self, RunRecord};

/// A time without a working leader: from a fault on the leader until a replica acquired
/// the Lease after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Window {
    fn overlaps(&self, from: Timestamp, to: Timestamp) -> bool {
        self.from <= to && from <= self.to
    }
}

/// One check's line of the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckTally {
    pub check: String,
    pub interval: Duration,
    /// Runs the pod runner started.
    pub starts: usize,
    /// Runs with more than one pod, plus runs started less than half an interval after
    /// the previous one: a slot run twice.
    pub duplicates: usize,
    /// Runs whose checker never had its report answered 200.
    pub no_verdict: usize,
    /// Report answers 4xx (the run refused).
    pub refused: usize,
    /// Runs that started more than the tolerance after their due time (the previous start
    /// plus the interval, or the previous run's end if later), with no leaderless window in
    /// between.
    pub missed: usize,
}

/// The checkers' report answers, by run id (HTTP status codes, `0` when no answer).
pub type Answers = BTreeMap<String, Vec<u16>>;

/// The table: one line per check.
pub fn tally(
    runs: &BTreeMap<String, Vec<RunRecord>>,
    intervals: &BTreeMap<String, Duration>,
    answers: &Answers,
    windows: &[Window],
    tolerance: SignedDuration,
) -> Vec<CheckTally> {
    let mut lines = Vec::new();
    for (check, interval) in intervals {
        let empty = Vec::new();
        let list = runs.get(check).unwrap_or(&empty);
        let one = BTreeMap::from([(check.clone(), list.clone())]);
        let half = SignedDuration::try_from(*interval / 2).unwrap_or_default();
        let every = SignedDuration::try_from(*interval).unwrap_or_default();
        let mut line = CheckTally {
            check: check.clone(),
            interval: *interval,
            starts: list.len(),
            duplicates: slots::duplicates(&one).len() + slots::back_to_back(&one, half).len(),
            ..CheckTally::default()
        };
        for run in list {
            let codes = answers.get(&run.run).map(Vec::as_slice).unwrap_or(&[]);
            if !codes.contains(&200) {
                line.no_verdict += 1;
            }
            line.refused += codes.iter().filter(|c| (400..500).contains(*c)).count();
        }
        for pair in list.windows(2) {
            let (prev, next) = (&pair[0], &pair[1]);
            let mut due = prev.started + every;
            if let Some((ended, _)) = prev.exited {
                due = due.max(ended);
            }
            let late = next.started.duration_since(due);
            if late > tolerance && !windows.iter().any(|w| w.overlaps(due, next.started)) {
                line.missed += 1;
            }
        }
        lines.push(line);
    }
    lines
}

/// The sum of every line.
pub fn totals(lines: &[CheckTally]) -> CheckTally {
    lines.iter().fold(
        CheckTally {
            check: "total".into(),
            ..CheckTally::default()
        },
        |mut sum, l| {
            sum.starts += l.starts;
            sum.duplicates += l.duplicates;
            sum.no_verdict += l.no_verdict;
            sum.refused += l.refused;
            sum.missed += l.missed;
            sum
        },
    )
}

/// The report answers a checker's log shows: lines `report <code> <url> <body>`.
pub fn answers_in_log(log: &str) -> Vec<u16> {
    log.lines()
        .filter_map(|line| line.strip_prefix("report "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The table as text (Markdown, so it pastes into the README).
pub fn render(lines: &[CheckTally]) -> String {
    let mut out = String::from(
        "| check | interval | starts | duplicate starts in a slot | runs without a verdict | reports refused | slots missed outside leaderless windows |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let total = totals(lines);
    for l in lines.iter().chain(std::iter::once(&total)) {
        let interval = if l.interval.is_zero() {
            String::new()
        } else {
            format!("{}s", l.interval.as_secs())
        };
        let _ = writeln!(
            out,
            "| {} | {interval} | {} | {} | {} | {} | {} |",
            l.check, l.starts, l.duplicates, l.no_verdict, l.refused, l.missed
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn run(id: &str, started: i64, ended: Option<i64>, pods: usize) -> RunRecord {
        RunRecord {
            namespace: "ns".into(),
            check: "c".into(),
            run: id.into(),
            pod: format!("c-{id}"),
            pods: (0..pods).map(|i| format!("{id}-{i}")).collect(),
            started: at(started),
            exited: ended.map(|e| (at(e), 0)),
        }
    }

    fn one_check(runs: Vec<RunRecord>) -> BTreeMap<String, Vec<RunRecord>> {
        BTreeMap::from([("ns/c".to_string(), runs)])
    }

    fn intervals() -> BTreeMap<String, Duration> {
        BTreeMap::from([("ns/c".to_string(), Duration::from_secs(10))])
    }

    #[test]
    fn a_clean_schedule_has_nothing_to_report() {
        let runs = one_check(vec![
            run("a", 0, Some(1), 1),
            run("b", 10, Some(11), 1),
            run("c", 20, Some(21), 1),
        ]);
        let answers = Answers::from([
            ("a".into(), vec![200]),
            ("b".into(), vec![503, 200]),
            ("c".into(), vec![200]),
        ]);
        let lines = tally(
            &runs,
            &intervals(),
            &answers,
            &[],
            SignedDuration::from_secs(2),
        );
        assert_eq!(
            lines[0],
            CheckTally {
                check: "ns/c".into(),
                interval: Duration::from_secs(10),
                starts: 3,
                ..CheckTally::default()
            }
        );
    }

    #[test]
    fn duplicates_lost_results_refusals_and_missed_slots_are_counted() {
        let runs = one_check(vec![
            run("a", 0, Some(1), 2),    // two pods
            run("b", 2, Some(3), 1),    // back to back with a
            run("c", 30, Some(31), 1),  // late, no leaderless window: missed
            run("d", 60, Some(61), 1),  // late, inside a window: not missed
            run("e", 70, Some(100), 1), // a long run
            run("f", 100, None, 1),     // due at e's end: on time
        ]);
        let answers = Answers::from([
            ("a".into(), vec![200]),
            ("b".into(), vec![409]),
            ("c".into(), vec![200]),
            ("d".into(), vec![0, 200]),
            ("e".into(), vec![200]),
        ]);
        let windows = [Window {
            from: at(45),
            to: at(55),
        }];
        let lines = tally(
            &runs,
            &intervals(),
            &answers,
            &windows,
            SignedDuration::from_secs(2),
        );
        let l = &lines[0];
        assert_eq!(l.starts, 6);
        assert_eq!(
            l.duplicates, 2,
            "one run with two pods, one back-to-back pair"
        );
        assert_eq!(l.no_verdict, 2, "b refused, f never answered");
        assert_eq!(l.refused, 1);
        assert_eq!(l.missed, 1, "c only");
        assert_eq!(totals(&lines).missed, 1);
    }

    #[test]
    fn answers_are_read_from_the_checker_log() {
        let log = "report 000 http://a/x\nreport 503 http://b/x\nnoise\nreport 200 http://c/x\n";
        assert_eq!(answers_in_log(log), [0, 503, 200]);
    }

    #[test]
    fn the_table_ends_with_totals() {
        let lines = vec![CheckTally {
            check: "ns/c".into(),
            interval: Duration::from_secs(5),
            starts: 4,
            ..CheckTally::default()
        }];
        let text = render(&lines);
        assert!(text.contains("| ns/c | 5s | 4 | 0 | 0 | 0 | 0 |"), "{text}");
        assert!(
            text.trim_end()
                .ends_with("| total |  | 4 | 0 | 0 | 0 | 0 |"),
            "{text}"
        );
    }
}
