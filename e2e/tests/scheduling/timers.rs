//! Timers persist: with a check every 2 s and one every 12 s, creating a new check, editing
//! pod specs (the short check's and the long check's own), restarting every replica at once,
//! a SIGKILL failover and a SIGTERM failover never make the long check start early, and its
//! starts stay one interval apart.
//!
//! Each disturbance happens in the middle of one of the long check's intervals, where a
//! scheduler that keeps its timers in memory (as v2 does: every check runs when a
//! replica becomes leader, and an edited check restarts its timer) would start it early.
//!
//! Tolerance: a start is never earlier than its due time (last start + 12 s; 0 ms early
//! allowed, both times come from the same clock) and at most [`LATE_TOLERANCE`] later.

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::support::checks::{self, REPORT_OK};
use crate::support::record::{Recorder, RunSeen};
use crate::support::{Scenario, ScenarioOptions, TIMEOUT, figures, ms, plus, secs, sleep_until};

const LONG: f64 = 12.0;
const SHORT: f64 = 2.0;
/// How late the long check may start after its due time.
const LATE_TOLERANCE: f64 = 2.0;
/// How soon a new check must start after it is created ("runs at once").
const NEW_CHECK_WITHIN: f64 = 3.0;

fn long_pod_spec(edited: bool) -> serde_json::Value {
    let env: &[(&str, &str)] = if edited { &[("EDITED", "yes")] } else { &[] };
    checks::pod_spec(checks::IMAGE, REPORT_OK, env)
}

/// Waits for the `n`th run (0-based) of `check` to have started and returns it.
async fn nth_start(recorder: &Recorder, check: &str, n: usize) -> RunSeen {
    let timeout = TIMEOUT + std::time::Duration::from_secs_f64(LONG);
    recorder
        .wait_for(&format!("run #{n} of {check} to start"), timeout, |r| {
            r.runs_of(check)
                .into_iter()
                .filter(|run| run.started_at.is_some())
                .nth(n)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn long_interval_starts_stay_one_interval_apart_through_edits_restarts_and_failovers() {
    let mut scenario = Scenario::start(ScenarioOptions::new("timers"))
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();
    let mut timeline: Vec<serde_json::Value> = Vec::new();
    let mut note = |what: &str, at: Timestamp| {
        timeline.push(json!({ "at": at.to_string(), "what": what }));
    };

    scenario
        .apply(&checks::check_with(
            "long",
            "12s",
            "30s",
            long_pod_spec(false),
        ))
        .await
        .unwrap();
    scenario
        .apply(&checks::check("short", "2s", "30s", REPORT_OK))
        .await
        .unwrap();
    let t0 = nth_start(&recorder, "long", 0).await.started_at.unwrap();
    note("long: first start", t0);

    // Interval 1: a new check, two edits, every replica restarted at once.
    sleep_until(plus(t0, 2.0)).await;
    let newcomer_created = Timestamp::now();
    scenario
        .apply(&checks::check("newcomer", "5s", "30s", REPORT_OK))
        .await
        .unwrap();
    note("created check newcomer", newcomer_created);

    sleep_until(plus(t0, 4.0)).await;
    let short_edited = Timestamp::now();
    scenario
        .apply(&checks::check_with(
            "short",
            "2s",
            "30s",
            checks::pod_spec(checks::IMAGE, REPORT_OK, &[("EDITED", "yes")]),
        ))
        .await
        .unwrap();
    scenario
        .apply(&checks::check_with(
            "long",
            "12s",
            "30s",
            long_pod_spec(true),
        ))
        .await
        .unwrap();
    note("edited the pod specs of short and long", short_edited);

    sleep_until(plus(t0, 6.0)).await;
    note("restart: SIGTERM to every replica", Timestamp::now());
    let all: Vec<usize> = (0..scenario.replica_count()).collect();
    scenario.stop_all(libc::SIGTERM).await.unwrap();
    note("restart: every replica stopped", Timestamp::now());
    for &i in &all {
        scenario.spawn(i).unwrap();
    }
    for &i in &all {
        scenario.wait_ready(i).await.unwrap();
    }
    let (leader, _) = scenario.wait_for_leader(None).await.unwrap();
    let restarted = Timestamp::now();
    note(
        &format!(
            "restart: replicas ready, {} leads",
            scenario.name_of(leader)
        ),
        restarted,
    );
    assert!(
        secs(t0, restarted) < LONG,
        "the restart must be over within the interval: it ended {:.3}s after t0",
        secs(t0, restarted)
    );

    // Interval 2: SIGKILL the leader in the middle of it.
    let s1 = nth_start(&recorder, "long", 1).await.started_at.unwrap();
    note("long: second start", s1);
    sleep_until(plus(s1, 4.0)).await;
    failover(&mut scenario, libc::SIGKILL, &mut note).await;

    // Interval 3: SIGTERM the leader in the middle of it.
    let s2 = nth_start(&recorder, "long", 2).await.started_at.unwrap();
    note("long: third start", s2);
    sleep_until(plus(s2, 4.0)).await;
    failover(&mut scenario, libc::SIGTERM, &mut note).await;

    let s3 = nth_start(&recorder, "long", 3).await.started_at.unwrap();
    note("long: fourth start", s3);

    let snapshot = recorder.snapshot();
    // The long check: one interval apart, never early.
    let long_runs = snapshot.runs_of("long");
    let starts = [t0, s1, s2, s3];
    let mut long_gaps = Vec::new();
    for pair in starts.windows(2) {
        let gap = secs(pair[0], pair[1]);
        long_gaps.push(ms(gap));
        assert!(
            gap >= LONG,
            "the long check started {gap:.3}s after its previous start: early (interval {LONG}s); timeline: {timeline:#?}"
        );
        assert!(
            gap - LONG <= LATE_TOLERANCE,
            "the long check started {:.3}s late (tolerance {LATE_TOLERANCE}s); timeline: {timeline:#?}",
            gap - LONG
        );
    }
    assert!(
        long_runs
            .iter()
            .take(4)
            .all(|r| r.ok == Some(true) || r.finished_at.is_none()),
        "every run of long passes: {long_runs:?}"
    );
    // The edit reached the long check's next run without moving its timer.
    let second = &long_runs[1];
    let pod = snapshot
        .pods_of("long")
        .into_iter()
        .find(|p| p.run_id == second.uuid)
        .expect("the pod of long's second run");
    assert_eq!(
        pod.env.get("EDITED").map(String::as_str),
        Some("yes"),
        "the second run of long uses the edited pod spec"
    );

    // The short check: never early either, whatever happened.
    let short_runs = snapshot.runs_of("short");
    let mut short_min_gap = f64::MAX;
    let mut short_max_gap: f64 = 0.0;
    for pair in short_runs.windows(2) {
        let (Some(a), Some(b)) = (pair[0].started_at, pair[1].started_at) else {
            continue;
        };
        let gap = secs(a, b);
        short_min_gap = short_min_gap.min(gap);
        short_max_gap = short_max_gap.max(gap);
        assert!(
            gap >= SHORT,
            "the short check started {gap:.3}s after its previous start (interval {SHORT}s)"
        );
    }
    let edited_pods = snapshot
        .pods_of("short")
        .into_iter()
        .filter(|p| p.env.get("EDITED").is_some_and(|v| v == "yes"))
        .count();
    assert!(edited_pods > 0, "the short check's edit reached its pods");

    // The new check ran at once.
    let newcomer_first = snapshot.runs_of("newcomer")[0].started_at.unwrap();
    let newcomer_after = secs(newcomer_created, newcomer_first);
    assert!(
        newcomer_after <= NEW_CHECK_WITHIN,
        "the new check started {newcomer_after:.3}s after it was created (bound {NEW_CHECK_WITHIN}s)"
    );

    figures::publish(
        "timers",
        &json!({
            "long_interval_s": LONG,
            "short_interval_s": SHORT,
            "tolerance": { "early_s": 0.0, "late_s": LATE_TOLERANCE },
            "long_start_gaps_s": long_gaps,
            "long_lateness_s": long_gaps.iter().map(|g| ms(g - LONG)).collect::<Vec<_>>(),
            "short_runs": short_runs.len(),
            "short_min_gap_s": ms(short_min_gap),
            "short_max_gap_s": ms(short_max_gap),
            "new_check_first_start_after_creation_s": ms(newcomer_after),
            "timeline": timeline,
        }),
    );
}

/// Stops the leader with `signal`, waits for another replica to lead, restarts the old one.
async fn failover(
    scenario: &mut Scenario,
    signal: libc::c_int,
    note: &mut impl FnMut(&str, Timestamp),
) {
    let (leader, _) = scenario.wait_for_leader(None).await.unwrap();
    let name = scenario.name_of(leader).to_string();
    let how = if signal == libc::SIGKILL {
        "SIGKILL"
    } else {
        "SIGTERM"
    };
    note(
        &format!("failover: {how} to the leader {name}"),
        Timestamp::now(),
    );
    scenario.stop(leader, signal).await.unwrap();
    let (next, _) = scenario.wait_for_leader(Some(&name)).await.unwrap();
    note(
        &format!("failover: {} leads", scenario.name_of(next)),
        Timestamp::now(),
    );
    scenario.spawn(leader).unwrap();
    scenario.wait_ready(leader).await.unwrap();
}
