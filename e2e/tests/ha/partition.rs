//! Cut the leader's path to the API server while it leads, then heal it: the partition
//! that really happens, where the replica lives on and the others still reach the API
//! server. Replicas run in network namespaces of their own; the cut drops, silently and
//! both ways, every packet between the leader and the API server's port, while its status
//! page and metrics still answer (see `kuberhealthy_e2e::network::replica`).
//!
//! Asserted, from the API server's audit log and the pod runner's record (not the
//! controller's word):
//! - the leader stops leader work by its renew deadline: its `kuberhealthy_controller_leader`
//!   reads 0 within the renew deadline plus 1 s (a loaded 2-core machine) of the API server
//!   receiving its last successful renewal, and its log says it lost the Lease at the renew
//!   deadline;
//! - another replica takes the Lease within the lease duration plus a retry period (and the
//!   same 1 s margin) of that renewal;
//! - nothing of the cut-off replica reaches the API server while cut (after a second for
//!   what was on its way already), and after the heal it makes no successful write (it
//!   never holds a new term here);
//! - every run has exactly one pod, runs of a check start at least half an interval apart,
//!   and the runs in flight at the cut (a check that works 3 s) are adopted: each ends with
//!   its report accepted (its checker exits 0), with no second pod.
//!
//! The cut itself is the scenario's one timed wait: it lasts until another replica has
//! taken the Lease and started runs, and for at least the lease duration plus 2 s.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kuberhealthy_e2e::audit::AuditEvent;
use kuberhealthy_e2e::slots;
use kuberhealthy_e2e::wait_until;
use serde_json::json;

use crate::figures::{self, ms};
use crate::history::{self, is_lease_write, replica_of};
use crate::observe;
use crate::setup::{
    CHECK_INTERVAL, CHECKS, Ha, LEASE_NAME, Placement, Reporting, check_name, replica_name,
    working_check_yaml,
};
use crate::{LEASE_DURATION, POLL, RENEW_DEADLINE, RETRY_PERIOD, TIMEOUT, serial};

const LOST: &str = "lost the Lease; stepping down and contending again";
/// The loaded machine's margin on the timing bounds.
const MARGIN: Duration = Duration::from_secs(1);
/// Requests the API server reads this long after the cut may have been sent before it (in
/// the host's socket buffers already); later ones cannot have been.
const IN_FLIGHT_GRACE: SignedDuration = SignedDuration::from_secs(1);
/// A check whose runs take 3 s, longer than its interval: one is nearly always in flight.
const SLOW_CHECK: &str = "ha-slow";
const SLOW_WORK: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_server_steps_down_and_writes_nothing_with_its_old_term() {
    let _serial = serial().await;
    let began = Instant::now();
    let began_wall = Timestamp::now();
    let mut ha = Ha::start_placed("ha-partition", Reporting::Replica(2), Placement::OwnNetwork)
        .await
        .expect("starting the control plane, RBAC, checks and the replicas' networks");
    ha.apply(&working_check_yaml(SLOW_CHECK, CHECK_INTERVAL, SLOW_WORK))
        .await
        .expect("applying the slow check");
    let mut checks: Vec<String> = (0..CHECKS).map(check_name).collect();
    checks.push(SLOW_CHECK.to_string());

    // kh-0 starts alone, so it is the leader that gets cut off; kh-2 takes the reports.
    ha.spawn(0).await.expect("starting kh-0");
    assert_eq!(ha.settle().await.expect("kh-0 leading"), 0);
    ha.spawn(1).await.expect("starting kh-1");
    ha.spawn(2).await.expect("starting kh-2");
    assert_eq!(ha.settle().await.expect("three replicas, kh-0 leading"), 0);
    let cut_off = replica_name(0);
    ha.runs
        .wait_for_runs_by(&cut_off, &checks, began)
        .await
        .expect("kh-0 running the checks");
    ha.wait_for_audited_write(&cut_off, "pods", began_wall)
        .await
        .expect("kh-0 creating checker pods");

    // Its leadership metric, polled from before the cut until it reads 0.
    let addr = ha.addr(0);
    let step_down = tokio::spawn(async move {
        let begin = Instant::now();
        loop {
            match observe::is_leader(addr).await {
                Ok(false) => return Ok((Instant::now(), Timestamp::now())),
                Ok(true) => {}
                Err(err) => return Err(format!("reading kh-0's /metrics: {err:#}")),
            }
            if begin.elapsed() > TIMEOUT {
                return Err(format!("kh-0 still leading {TIMEOUT:?} into the cut"));
            }
            tokio::time::sleep(POLL).await;
        }
    });

    let cut_wall = Timestamp::now();
    let cut = Instant::now();
    ha.network(0).cut_api_server().expect("cutting kh-0 off");
    let cut_done_wall = Timestamp::now();
    assert!(ha.network(0).is_cut().unwrap());

    let (stepped_down_at, stepped_down_wall) = step_down
        .await
        .expect("the step-down poller")
        .unwrap_or_else(|e| panic!("{e}\n{}", ha.describe_replicas()));
    let takeover = ha
        .lease
        .wait_for_new_holder(&cut_off, cut, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", ha.describe_replicas()));
    let new_leader = takeover.holder.clone().unwrap();
    let new_runs = ha
        .runs
        .wait_for_runs_by(&new_leader, &checks, takeover.at)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", ha.describe_replicas()));
    // The scenario's wait: cut off for longer than the lease, whatever the takeover took.
    tokio::time::sleep_until((cut + LEASE_DURATION + Duration::from_secs(2)).into()).await;
    // Still alive and serving while cut off: it follows nobody it cannot see, but answers.
    observe::status_page(addr)
        .await
        .expect("kh-0's status page while cut off");

    let cut_for = cut.elapsed();
    let healed_wall = Timestamp::now();
    let healed = Instant::now();
    ha.network(0)
        .heal_api_server()
        .expect("healing kh-0's path");

    wait_until("kh-0 to follow the new leader", TIMEOUT, || async {
        let leading = observe::is_leader(addr).await?;
        let master = observe::current_master(addr).await?;
        Ok((!leading && master.as_deref() == Some(new_leader.as_str())).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", ha.replica(0).log_tail(30)));
    let follows_ms = ms(healed.elapsed());
    ha.runs
        .wait_for_runs_by(&new_leader, &checks, healed)
        .await
        .unwrap();
    let settled = ha.settle().await.expect("one leader after the heal");
    assert_eq!(replica_name(settled), new_leader);
    // Every check runs once more under the settled leader, so what kh-0 could have sent
    // late has had its time.
    ha.runs
        .wait_for_runs_by(&new_leader, &checks, Instant::now())
        .await
        .unwrap();

    // Its log says why it stepped down.
    let log = std::fs::read_to_string(ha.replica(0).log_path()).unwrap();
    let lost_line = log
        .lines()
        .find(|l| l.contains(LOST))
        .unwrap_or_else(|| panic!("kh-0 did not log that it lost the Lease:\n{log}"));
    assert!(
        lost_line.contains("renew deadline"),
        "kh-0 lost the Lease for another reason than its renew deadline: {lost_line}"
    );

    // What reached the API server.
    let events = ha.audit().expect("reading the audit log");
    let by_cut_off = |e: &&AuditEvent| replica_of(e) == Some(cut_off.as_str());
    let during_cut: Vec<String> = events
        .iter()
        .filter(by_cut_off)
        .filter(|e| e.request_received_timestamp >= cut_done_wall + IN_FLIGHT_GRACE)
        .filter(|e| e.request_received_timestamp < healed_wall)
        .map(|e| e.describe())
        .collect();
    assert!(
        during_cut.is_empty(),
        "requests of kh-0 reached the API server while it was cut off:\n{}",
        during_cut.join("\n")
    );
    history::assert_one_leader_through(
        &events,
        ha.namespace(),
        LEASE_NAME,
        &[cut_off.as_str(), new_leader.as_str()],
    );
    let after_heal_successful: Vec<String> = events
        .iter()
        .filter(by_cut_off)
        .filter(|e| e.request_received_timestamp >= healed_wall && e.succeeded())
        .map(|e| e.describe())
        .collect();
    assert!(
        after_heal_successful.is_empty(),
        "kh-0 made successful writes with its old term after the heal:\n{}",
        after_heal_successful.join("\n")
    );
    let after_heal_refused = events
        .iter()
        .filter(by_cut_off)
        .filter(|e| e.request_received_timestamp >= healed_wall)
        .count();

    // The bounds, counted from kh-0's last successful renewal: its deadline runs from when it
    // sent the renewal (the API server received it a little later), the others' wait from
    // when they could see it (once the API server had finished it).
    let renewals: Vec<&AuditEvent> = events
        .iter()
        .filter(by_cut_off)
        .filter(|e| e.succeeded() && is_lease_write(e, ha.namespace(), LEASE_NAME))
        .collect();
    let last_renewal_received = renewals
        .iter()
        .map(|e| e.request_received_timestamp)
        .max()
        .expect("a Lease renewal by kh-0 before the cut");
    let last_renewal = renewals
        .iter()
        .map(|e| e.stage_timestamp)
        .max()
        .expect("a Lease renewal by kh-0 before the cut");
    let new_acquired: Timestamp = events
        .iter()
        .filter(|e| replica_of(e) == Some(new_leader.as_str()))
        .filter(|e| e.succeeded() && is_lease_write(e, ha.namespace(), LEASE_NAME))
        .map(|e| e.stage_timestamp)
        .find(|t| *t > last_renewal)
        .expect("the new leader's acquisition");
    let step_down_after = duration(stepped_down_wall.duration_since(last_renewal_received));
    let takeover_after = duration(new_acquired.duration_since(last_renewal));
    assert!(
        step_down_after <= RENEW_DEADLINE + MARGIN,
        "kh-0 stopped leading {step_down_after:?} after its last renewal; the renew deadline \
         is {RENEW_DEADLINE:?}"
    );
    assert!(
        takeover_after <= LEASE_DURATION + RETRY_PERIOD + MARGIN,
        "{new_leader} took the Lease {takeover_after:?} after kh-0's last renewal; the lease \
         duration is {LEASE_DURATION:?}, the retry period {RETRY_PERIOD:?}"
    );

    // The pod runner's record: one pod per run, no slot run twice, in-flight runs adopted.
    let record = ha.pod_record().expect("reading the pod runner's record");
    let runs = slots::runs_by_check(&record);
    history::assert_each_slot_once(&runs, CHECK_INTERVAL);
    // Runs kh-0's term started (its khstate writes) that were not over at the cut: their
    // pods were created, or ran, or reported after it.
    let started_by_cut_off: Vec<String> = ha
        .runs
        .snapshot()
        .into_iter()
        .filter(|r| r.holder == cut_off)
        .map(|r| r.uuid)
        .collect();
    let in_flight_at_cut: Vec<&slots::RunRecord> = runs
        .values()
        .flatten()
        .filter(|r| started_by_cut_off.contains(&r.run))
        .filter(|r| r.exited.is_none_or(|(at, _)| at > cut_wall))
        .collect();
    assert!(
        !in_flight_at_cut.is_empty(),
        "no run of kh-0 was in flight at the cut ({cut_wall}); recorded runs: {runs:#?}"
    );
    for run in &in_flight_at_cut {
        assert_eq!(
            run.exited.map(|(_, code)| code),
            Some(0),
            "run {} of {} was in flight at the cut and did not end with its report accepted",
            run.run,
            run.check
        );
    }
    let runs_in_all: usize = runs.values().map(Vec::len).sum();

    let report = json!({
        "timings": {
            "lease_duration": crate::setup::go_duration(LEASE_DURATION),
            "renew_deadline": crate::setup::go_duration(RENEW_DEADLINE),
            "retry_period": crate::setup::go_duration(RETRY_PERIOD),
        },
        "cut_off": cut_off,
        "new_leader": new_leader,
        "cut_for_ms": ms(cut_for),
        "step_down_after_cut_ms": ms(stepped_down_at - cut),
        "step_down_after_last_renewal_ms": ms(step_down_after),
        "takeover_after_last_renewal_ms": ms(takeover_after),
        "takeover_seen_after_cut_ms": ms(takeover.at - cut),
        "follower_after_heal_ms": follows_ms,
        "requests_by_cut_off_while_cut": during_cut.len(),
        "writes_by_cut_off_after_heal_refused": after_heal_refused,
        "runs_recorded": runs_in_all,
        "runs_in_flight_at_cut_adopted": in_flight_at_cut.len(),
        "runs_started_by_new_term_after_takeover": new_runs.len(),
    });
    eprintln!(
        "partition: {cut_off} cut off {:.1} s; stopped leading {:.0} ms and {new_leader} took \
         the Lease {:.0} ms after its last renewal; {} runs in flight at the cut adopted; \
         {runs_in_all} runs, one pod each; {after_heal_refused} refused writes after the heal",
        cut_for.as_secs_f64(),
        ms(step_down_after),
        ms(takeover_after),
        in_flight_at_cut.len(),
    );
    let path = figures::write("partition", &report).unwrap();
    eprintln!("figures written to {}", path.display());
}

/// A non-negative wall-clock difference as a `Duration` (zero when negative).
fn duration(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or_default()
}
