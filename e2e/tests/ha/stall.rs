//! etcd is frozen (SIGSTOP) mid-schedule for longer than the lease, then thawed (SIGCONT):
//! the API server stays up, but every write hangs, then lands late. Ten checks are due
//! every 5 s (and the three 2 s checks of every HA test), so start writes are in flight
//! when etcd stops.
//!
//! Asserted, from the pod runner's record and the audit log:
//! - no run has two pods (no slot ran twice);
//! - no check's runs start (their pods created, from the audit log) less than half an
//!   interval apart: a start that landed late, or a pod created late, does not make the next
//!   run due at once (the run's start is when it was persisted, or its pod created);
//! - no result is lost: every run that started ended with its report accepted (checkers
//!   exit 0; they retry a refused report for 10 s, as check clients do);
//! - one leader at a time (audit log), run terms never go back, and the Lease's term after
//!   the stall differs from the one before, even when the same replica wins it again;
//! - no replica logs that its leader tasks outlived their term.
//!
//! The stall itself is the scenario's one timed wait.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kuberhealthy_e2e::process::process_state;
use kuberhealthy_e2e::{slots, wait_until};
use serde_json::json;

use crate::figures::{self, ms};
use crate::history;
use crate::setup::{CHECKS, Ha, LEASE_NAME, REPLICAS, Reporting, replica_name, working_check_yaml};
use crate::{LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD, TIMEOUT, serial};

const STALL: Duration = Duration::from_secs(8);
const STALL_CHECKS: usize = 10;
const STALL_INTERVAL: Duration = Duration::from_secs(5);
const STALL_WORK: Duration = Duration::from_millis(500);
/// What a replica logs when its term's tasks did not stop in time.
const TASKS_OUTLIVED: &str = "did not stop within";

fn stall_check(index: usize) -> String {
    format!("ha-stall-{index}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_stall_past_the_lease_runs_no_slot_twice_and_loses_no_result() {
    let _serial = serial().await;
    let began = Instant::now();
    let mut ha = Ha::start("ha-stall", Reporting::Replica(2))
        .await
        .expect("starting the control plane, RBAC and checks");
    let checks: Vec<String> = (0..STALL_CHECKS).map(stall_check).collect();
    for check in &checks {
        ha.apply(&working_check_yaml(check, STALL_INTERVAL, STALL_WORK))
            .await
            .expect("applying a stall check");
    }
    ha.spawn_all().await.expect("starting three replicas");
    let leader = replica_name(ha.settle().await.expect("a leader"));
    ha.runs
        .wait_for_runs_by(&leader, &checks, began)
        .await
        .expect("the leader running the checks");
    let term_before = ha.lease_term().await.unwrap().expect("a term");

    let etcd_pid = ha.control_plane().etcd_pid();
    let paused_wall = Timestamp::now();
    let paused = Instant::now();
    ha.control_plane().pause_etcd().unwrap();
    wait_until("etcd to be stopped", TIMEOUT, || async {
        Ok((process_state(etcd_pid) == Some('T')).then_some(()))
    })
    .await
    .unwrap();
    // The scenario's wait.
    tokio::time::sleep(STALL).await;
    let stalled_for = paused.elapsed();
    let resumed_wall = Timestamp::now();
    let resumed = Instant::now();
    ha.control_plane().resume_etcd().unwrap();

    let leader_after = replica_name(
        ha.settle()
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", ha.describe_replicas())),
    );
    let settled_after = resumed.elapsed();
    let term_after = ha.lease_term().await.unwrap().expect("a term");
    ha.runs
        .wait_for_runs_by(&leader_after, &checks, resumed)
        .await
        .unwrap();
    // A second cycle after the stall: a run due at once after a late start shows here.
    ha.runs
        .wait_for_runs_by(&leader_after, &checks, Instant::now())
        .await
        .unwrap();

    // Every run the pod runner started by now has ended (their checkers are short).
    let end_mark = Timestamp::now();
    let stall_keys: Vec<String> = checks
        .iter()
        .map(|c| format!("{}/{c}", ha.namespace()))
        .collect();
    let runs = wait_until("every recorded run to have ended", TIMEOUT, || async {
        let mut runs = slots::runs_by_check(&ha.pod_record()?);
        runs.retain(|key, _| stall_keys.contains(key));
        for list in runs.values_mut() {
            list.retain(|r| r.started < end_mark);
        }
        let done = runs.values().flatten().all(|r| r.exited.is_some());
        Ok(done.then_some(runs))
    })
    .await
    .unwrap();

    // Runs are spaced by when the controller started them: their pods' creation. The pod
    // runner's own API reads stall with etcd too, so a pod created on time may start its
    // container late, as on a node whose kubelet cannot reach the API server; that delay is
    // the node's, and a run due after it is not a slot run twice.
    let events = ha.audit().expect("reading the audit log");
    let mut runs = runs;
    slots::date_by_pod_creation(&mut runs, &slots::pods_created(&events));
    history::assert_each_slot_once(&runs, STALL_INTERVAL);
    let lost: Vec<String> = runs
        .values()
        .flatten()
        .filter(|r| r.exited.is_none_or(|(_, code)| code != 0))
        .map(|r| format!("{r:?}"))
        .collect();
    assert!(
        lost.is_empty(),
        "runs whose report was not accepted:\n{}",
        lost.join("\n")
    );
    let spanning_stall = runs
        .values()
        .flatten()
        .filter(|r| r.started < resumed_wall && r.exited.is_some_and(|(at, _)| at > paused_wall))
        .count();
    let runs_in_all: usize = runs.values().map(Vec::len).sum();
    assert!(
        runs_in_all >= 2 * STALL_CHECKS,
        "only {runs_in_all} runs recorded"
    );

    // One leader at a time, terms never going back, and a new term after the stall.
    let tenures = history::tenures(&events, ha.namespace(), LEASE_NAME);
    assert!(
        tenures.violations.is_empty(),
        "leader-only writes outside the writer's tenure:\n{}",
        tenures.violations.join("\n")
    );
    let seen = ha.runs.snapshot();
    let going_back = history::terms_going_back(&seen);
    assert!(going_back.is_empty(), "{}", going_back.join("\n"));
    // Leadership was lost in the stall: whoever leads after it, even the same replica, holds
    // a term of its own.
    assert_ne!(
        term_before, term_after,
        "the term after the stall repeats the one before it"
    );
    for i in 0..REPLICAS {
        let log = std::fs::read_to_string(ha.replica(i).log_path()).unwrap();
        let outlived: Vec<&str> = log.lines().filter(|l| l.contains(TASKS_OUTLIVED)).collect();
        assert!(
            outlived.is_empty(),
            "{}: leader tasks outlived their term:\n{}",
            replica_name(i),
            outlived.join("\n")
        );
    }

    let report = json!({
        "timings": {
            "lease_duration": crate::setup::go_duration(LEASE_DURATION),
            "renew_deadline": crate::setup::go_duration(RENEW_DEADLINE),
            "retry_period": crate::setup::go_duration(RETRY_PERIOD),
        },
        "checks": STALL_CHECKS + CHECKS,
        "stalled_for_ms": ms(stalled_for),
        "leader_before": term_before,
        "leader_after": term_after,
        "settled_after_resume_ms": ms(settled_after),
        "runs_recorded": runs_in_all,
        "runs_spanning_the_stall": spanning_stall,
        "lost": lost.len(),
    });
    eprintln!(
        "stall: etcd stopped {:.1} s; term {term_before:?} before, {term_after:?} after \
         (settled {:.0} ms after SIGCONT); {runs_in_all} runs of {STALL_CHECKS} checks, \
         {spanning_stall} spanning the stall: none duplicated, back to back or lost",
        stalled_for.as_secs_f64(),
        ms(settled_after),
    );
    let path = figures::write("stall", &report).unwrap();
    eprintln!("figures written to {}", path.display());
}
