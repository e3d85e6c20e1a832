//! Exactly once through failovers: two checks (every 2 s and every 3 s) run while the
//! leader is stopped [`FAILOVERS`] times, alternately with SIGKILL and SIGTERM, each time
//! after the leader's term has started a run of each check and after a varying delay, so the
//! failovers land in every phase of a run (pod being created, running, reporting, idle).
//!
//! **Slots.** A check's runs form a chain: run k+1 is due at `runStartedAt(k) + runInterval`
//! (the persisted timer), or when run k finishes if that is later: that due time is the
//! slot of run k+1. Exactly once means, for each check, over the whole test:
//!
//! - every run (run UUID) has exactly one checker pod, counted by the label
//!   `kuberhealthy-run-id` on every pod the API server holds at the end (retention is set
//!   high so none is reaped) and on every pod a watch saw during the test;
//! - every pod belongs to a run its khstate recorded;
//! - runs never overlap (run k+1 starts after run k finished) and never start earlier than
//!   one interval after the previous start, so no slot gets two runs;
//! - no slot is skipped: run k+1 starts at most [`SETTLED_LATENCY`] after its slot, or at
//!   most [`FAILOVER_LATENCY`] when a failover (from the signal until the test saw a new
//!   Lease holder, plus 1 s) overlaps the wait;
//! - no valid report is rejected: every report through the reporting Service was answered
//!   200, and every run passed.

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::support::checks::{self, REPORT_OK, Term};
use crate::support::record::{Recorder, listed_pods_per_run};
use crate::support::{
    LEASE_DURATION, RETRY_PERIOD, Scenario, ScenarioOptions, TIMEOUT, figures, ms, secs,
};

const CHECKS: [(&str, &str, f64); 2] = [("every-2s", "2s", 2.0), ("every-3s", "3s", 3.0)];
const FAILOVERS: usize = 12;
/// How late a run may start after its slot while a leader is in place.
const SETTLED_LATENCY: f64 = 2.0;
/// How late a run may start after its slot when a failover is in the way: the Lease
/// expiring after a SIGKILL (lease duration), the next attempt (retry period), and slack.
fn failover_latency() -> f64 {
    LEASE_DURATION.as_secs_f64() + RETRY_PERIOD.as_secs_f64() + 2.5
}
const SETTLED_LATENCY_NOTE: &str = "start - max(previous start + interval, previous finish)";

struct Failover {
    signal: &'static str,
    from: String,
    to: String,
    signalled_at: Timestamp,
    new_leader_seen_at: Timestamp,
}

/// The blog post's checker, after a second of work: a run stays in flight long enough for
/// most failovers to land while it is (its pod then reports to another replica, and a new
/// leader adopts the run).
fn checker() -> String {
    format!("sleep 1; {REPORT_OK}")
}

/// A varying delay after the term's first run, so failovers hit every phase of a run.
fn jitter(k: usize) -> std::time::Duration {
    std::time::Duration::from_millis(((k * 379) % 1500) as u64)
}

#[tokio::test]
async fn every_due_slot_runs_exactly_once_through_leader_failovers() {
    let mut options = ScenarioOptions::new("exactly-once");
    // Keep every pod, so the final count covers the whole test.
    options.config_file = Some("maxCompletedPodCount: 10000\nmaxErrorPodCount: 10000\n".into());
    let mut scenario = Scenario::start(options)
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();
    let began = Timestamp::now();
    for (name, interval, _) in CHECKS {
        scenario
            .apply(&checks::check(name, interval, "30s", &checker()))
            .await
            .unwrap();
    }

    let mut failovers: Vec<Failover> = Vec::new();
    for k in 0..FAILOVERS {
        let (leader, transitions) = scenario.wait_for_leader(None).await.unwrap();
        let from = scenario.name_of(leader).to_string();
        let term = Term {
            holder: from.clone(),
            transitions,
        };
        recorder
            .wait_for(
                &format!("a run of each check started by the term of {from} ({transitions})"),
                TIMEOUT,
                |r| {
                    CHECKS
                        .iter()
                        .all(|(check, _, _)| {
                            r.runs_of(check)
                                .iter()
                                .any(|run| run.term.as_ref() == Some(&term))
                        })
                        .then_some(())
                },
            )
            .await
            .unwrap();
        tokio::time::sleep(jitter(k)).await;
        let (signal, name) = if k % 2 == 0 {
            (libc::SIGKILL, "SIGKILL")
        } else {
            (libc::SIGTERM, "SIGTERM")
        };
        let signalled_at = Timestamp::now();
        scenario.stop(leader, signal).await.unwrap();
        let (next, _) = scenario.wait_for_leader(Some(&from)).await.unwrap();
        let new_leader_seen_at = Timestamp::now();
        failovers.push(Failover {
            signal: name,
            from,
            to: scenario.name_of(next).to_string(),
            signalled_at,
            new_leader_seen_at,
        });
        scenario.spawn(leader).unwrap();
        scenario.wait_ready(leader).await.unwrap();
    }

    // Stop scheduling (the next start moves an hour away), and let the last runs finish.
    let stopped_at = Timestamp::now();
    for (name, _, _) in CHECKS {
        scenario
            .apply(&checks::check(name, "1h", "30s", &checker()))
            .await
            .unwrap();
    }
    for (name, _, _) in CHECKS {
        scenario
            .wait_for_state(name, "no run in flight", |s| !s.in_flight())
            .await
            .unwrap();
    }
    let snapshot = recorder
        .wait_for("every recorded run to have finished", TIMEOUT, |r| {
            r.runs
                .values()
                .all(|run| run.finished_at.is_some() && run.started_at.is_some())
                .then(|| r.clone())
        })
        .await
        .unwrap();
    let listed = scenario.checker_pods().await.unwrap();

    let overlaps_failover = |from: Timestamp, to: Timestamp| {
        failovers.iter().any(|f| {
            secs(f.signalled_at, to) >= 0.0
                && secs(from, crate::support::plus(f.new_leader_seen_at, 1.0)) >= 0.0
        })
    };
    let mut per_check = serde_json::Map::new();
    let mut total_runs = 0;
    for (name, _, interval) in CHECKS {
        let runs = snapshot.runs_of(name);
        assert!(
            runs.len() >= FAILOVERS,
            "{name} ran only {} times during the test",
            runs.len()
        );
        total_runs += runs.len();

        // One pod per run, by label, on the API server at the end and in the watch.
        let listed_per_run = listed_pods_per_run(&listed, name);
        let watched_per_run = snapshot.pods_per_run(name);
        for run in &runs {
            for (source, per_run) in [("listed", &listed_per_run), ("watched", &watched_per_run)] {
                let pods = per_run.get(&run.uuid).cloned().unwrap_or_default();
                assert_eq!(
                    pods.len(),
                    1,
                    "run {} of {name} has {} pods ({source}): {pods:?}",
                    run.uuid,
                    pods.len()
                );
            }
        }
        for (run, pods) in listed_per_run.iter().chain(watched_per_run.iter()) {
            assert!(
                runs.iter().any(|r| &r.uuid == run),
                "pods {pods:?} of {name} belong to run {run:?}, which no khstate recorded"
            );
        }

        // Slots: no overlap, never early, never skipped beyond failover latency.
        let mut gaps = Vec::new();
        let mut settled_max: f64 = 0.0;
        let mut failover_max: f64 = 0.0;
        let mut slots_behind_failovers = 0;
        for pair in runs.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let (a_start, a_end, b_start) = (
                a.started_at.unwrap(),
                a.finished_at.unwrap(),
                b.started_at.unwrap(),
            );
            assert!(
                secs(a_end, b_start) >= 0.0,
                "runs {} and {} of {name} overlap: the second started {:.3}s before the first finished",
                a.uuid,
                b.uuid,
                -secs(a_end, b_start)
            );
            let gap = secs(a_start, b_start);
            assert!(
                gap >= interval,
                "run {} of {name} started {gap:.3}s after run {}: earlier than its {interval}s interval",
                b.uuid,
                a.uuid
            );
            let slot = crate::support::plus(a_start, interval).max(a_end);
            let latency = secs(slot, b_start);
            if overlaps_failover(slot, b_start) {
                slots_behind_failovers += 1;
                failover_max = failover_max.max(latency);
                assert!(
                    latency <= failover_latency(),
                    "run {} of {name} started {latency:.3}s after its slot, with a failover in the way (bound {:.1}s)",
                    b.uuid,
                    failover_latency()
                );
            } else {
                settled_max = settled_max.max(latency);
                assert!(
                    latency <= SETTLED_LATENCY,
                    "run {} of {name} started {latency:.3}s after its slot with a leader in place (bound {SETTLED_LATENCY}s)",
                    b.uuid
                );
            }
            gaps.push(gap);
        }
        let failed: Vec<_> = runs.iter().filter(|r| r.ok != Some(true)).collect();
        assert!(failed.is_empty(), "runs of {name} failed: {failed:#?}");
        let terms: std::collections::BTreeSet<_> = runs
            .iter()
            .filter_map(|r| r.term.as_ref().map(|t| (t.holder.clone(), t.transitions)))
            .collect();
        per_check.insert(
            name.to_string(),
            json!({
                "interval_s": interval,
                "runs": runs.len(),
                "pods": listed_per_run.values().map(Vec::len).sum::<usize>(),
                "pods_per_run": {
                    "min": listed_per_run.values().map(Vec::len).min(),
                    "max": listed_per_run.values().map(Vec::len).max(),
                },
                "leader_terms_that_started_runs": terms.len(),
                "min_start_gap_s": ms(gaps.iter().cloned().fold(f64::MAX, f64::min)),
                "max_start_gap_s": ms(gaps.iter().cloned().fold(0.0, f64::max)),
                "max_latency_after_slot_settled_s": ms(settled_max),
                "max_latency_after_slot_behind_failover_s": ms(failover_max),
                "slots_behind_a_failover": slots_behind_failovers,
            }),
        );
    }

    // No valid report rejected.
    let exchanges = scenario.proxy.exchanges();
    let rejected: Vec<_> = exchanges
        .iter()
        .filter(|e| e.status.is_some_and(|s| s != 200))
        .collect();
    assert!(rejected.is_empty(), "reports were rejected: {rejected:#?}");
    let unanswered = exchanges.iter().filter(|e| e.status.is_none()).count();
    for run in snapshot.runs.values() {
        assert!(
            exchanges
                .iter()
                .any(|e| e.run_uuid.as_deref() == Some(run.uuid.as_str()) && e.status == Some(200)),
            "run {} of {} has no accepted report",
            run.uuid,
            run.check
        );
    }
    let transitions = scenario.lease().await.unwrap().map(|(_, t)| t).unwrap_or(0);
    assert!(
        failovers.len() >= 10 && transitions as usize >= failovers.len(),
        "{} failovers, {transitions} Lease transitions",
        failovers.len()
    );

    // Most failovers must land while a run is in flight, or adoption went untested.
    let in_flight_at_failover = failovers
        .iter()
        .filter(|f| {
            snapshot.runs.values().any(|r| {
                r.started_at.is_some_and(|s| s < f.signalled_at)
                    && r.finished_at.is_some_and(|e| e > f.signalled_at)
            })
        })
        .count();
    assert!(
        in_flight_at_failover * 2 >= failovers.len(),
        "only {in_flight_at_failover} of {} failovers landed while a run was in flight",
        failovers.len()
    );

    let latencies: Vec<f64> = failovers
        .iter()
        .map(|f| ms(secs(f.signalled_at, f.new_leader_seen_at)))
        .collect();
    figures::publish(
        "exactly-once",
        &json!({
            "failovers": failovers.iter().zip(&latencies).map(|(f, l)| json!({
                "signal": f.signal,
                "from": f.from,
                "to": f.to,
                "signal_to_new_leader_seen_s": l,
            })).collect::<Vec<_>>(),
            "lease_transitions": transitions,
            "failovers_while_a_run_was_in_flight": in_flight_at_failover,
            "runs": total_runs,
            "checks": per_check,
            "bounds": {
                "settled_latency_s": SETTLED_LATENCY,
                "failover_latency_s": failover_latency(),
                "latency": SETTLED_LATENCY_NOTE,
                "early_s": 0.0,
            },
            "reports": {
                "total": exchanges.len(),
                "answered_200": exchanges.iter().filter(|e| e.status == Some(200)).count(),
                "rejected": rejected.len(),
                "dropped_by_a_stopping_replica_then_retried": unanswered,
            },
            "scheduling_duration_s": ms(secs(began, stopped_at)),
        }),
    );
}
