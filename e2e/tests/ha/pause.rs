//! SIGSTOP the leader for longer than the lease, then SIGCONT. The paused replica must find
//! out it lost, do nothing with its old term after it resumes, and follow.
//!
//! The proof comes from the API server's audit log, not from the replica's own logs: after
//! the SIGCONT instant, the paused replica made no successful write at all, and each Lease
//! write it attempted was refused with 409 Conflict. Checker pods report to kh-2, which is
//! never paused, so no report can give the paused replica a legitimate write either.
//!
//! The pause itself is the scenario's one timed wait: kh-0 stays stopped until another
//! replica has taken the Lease and started runs, and for at least the lease duration plus
//! 2 s.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kuberhealthy_e2e::audit::AuditEvent;
use kuberhealthy_e2e::process::process_state;
use kuberhealthy_e2e::wait_until;
use serde_json::json;

use crate::figures::{self, ms};
use crate::history::{self, is_lease_write, replica_of};
use crate::observe;
use crate::setup::{CHECKS, Ha, LEASE_NAME, Reporting, check_name, replica_name};
use crate::{LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD, TIMEOUT, serial};

const LOST: &str = "lost the Lease; stepping down and contending again";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_writes_nothing_after_it_resumes() {
    let _serial = serial().await;
    let began = Instant::now();
    let began_wall = Timestamp::now();
    let mut ha = Ha::start("ha-pause", Reporting::Replica(2))
        .await
        .expect("starting the control plane, RBAC and checks");
    let checks: Vec<String> = (0..CHECKS).map(check_name).collect();

    // kh-0 starts alone, so it is the leader that gets paused.
    ha.spawn(0).await.expect("starting kh-0");
    assert_eq!(ha.settle().await.expect("kh-0 leading"), 0);
    ha.spawn(1).await.expect("starting kh-1");
    ha.spawn(2).await.expect("starting kh-2");
    assert_eq!(ha.settle().await.expect("three replicas, kh-0 leading"), 0);
    let paused = replica_name(0);

    // The leader is busy: it has started a run of every check and created their pods.
    ha.runs
        .wait_for_runs_by(&paused, &checks, began)
        .await
        .expect("kh-0 running the checks");
    ha.wait_for_audited_write(&paused, "pods", began_wall)
        .await
        .expect("kh-0 creating checker pods");
    let log_path = ha.replica(0).log_path().to_path_buf();
    let losses = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .matches(LOST)
            .count()
    };
    let losses_before = losses();

    let stopped_wall = Timestamp::now();
    let stopped = Instant::now();
    ha.replica(0).sigstop().unwrap();
    let pid = ha.replica(0).pid();
    wait_until("kh-0 to be stopped", TIMEOUT, || async {
        Ok((process_state(pid) == Some('T')).then_some(()))
    })
    .await
    .unwrap();

    let takeover = ha
        .lease
        .wait_for_new_holder(&paused, stopped, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", ha.describe_replicas()));
    let new_leader = takeover.holder.clone().unwrap();
    let takeover_ms = ms(takeover.at - stopped);
    let new_runs = ha
        .runs
        .wait_for_runs_by(&new_leader, &checks, takeover.at)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", ha.describe_replicas()));
    // The scenario's wait: stopped for longer than the lease, whatever the takeover took.
    let minimum_pause = LEASE_DURATION + Duration::from_secs(2);
    tokio::time::sleep_until((stopped + minimum_pause).into()).await;
    assert_eq!(
        process_state(pid),
        Some('T'),
        "kh-0 must still be stopped before SIGCONT"
    );

    let paused_for = stopped.elapsed();
    let resumed_wall = Timestamp::now();
    let resumed = Instant::now();
    ha.replica(0).sigcont().unwrap();

    // It finds out it lost (its log), no longer claims leadership (its metric) and shows the
    // new leader on its status page.
    wait_until("kh-0 to log that it lost the Lease", TIMEOUT, || async {
        Ok((losses() > losses_before).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", ha.replica(0).log_tail(30)));
    let noticed_ms = ms(resumed.elapsed());
    let addr = ha.addr(0);
    wait_until("kh-0 to follow the new leader", TIMEOUT, || async {
        let leading = observe::is_leader(addr).await?;
        let master = observe::current_master(addr).await?;
        Ok((!leading && master.as_deref() == Some(new_leader.as_str())).then_some(()))
    })
    .await
    .unwrap();
    let follows_ms = ms(resumed.elapsed());

    // A full check cycle after the SIGCONT: runs keep starting, all under the new term.
    let runs_after_resume = ha
        .runs
        .wait_for_runs_by(&new_leader, &checks, resumed)
        .await
        .unwrap();
    let settled = ha.settle().await.expect("one leader after kh-0 resumed");
    assert_eq!(replica_name(settled), new_leader);
    let later = ha
        .runs
        .wait_for_runs_by(&new_leader, &checks, Instant::now())
        .await
        .unwrap();
    assert!(!later.is_empty());

    // What reached the API server.
    let events = ha.audit().expect("reading the audit log");
    let by_paused = |e: &&AuditEvent| replica_of(e) == Some(paused.as_str());
    let after_resume: Vec<&AuditEvent> = events
        .iter()
        .filter(by_paused)
        .filter(|e| e.request_received_timestamp >= resumed_wall)
        .collect();
    let successful: Vec<String> = after_resume
        .iter()
        .filter(|e| e.succeeded())
        .map(|e| e.describe())
        .collect();
    assert!(
        successful.is_empty(),
        "kh-0 made successful writes after it resumed:\n{}",
        successful.join("\n")
    );
    let lease_attempts: Vec<&&AuditEvent> = after_resume
        .iter()
        .filter(|e| is_lease_write(e, ha.namespace(), LEASE_NAME))
        .collect();
    for attempt in &lease_attempts {
        assert_eq!(
            attempt.code(),
            409,
            "a Lease write by kh-0 after it resumed was not refused as a conflict: {}",
            attempt.describe()
        );
    }
    let refused_other: Vec<String> = after_resume
        .iter()
        .filter(|e| !is_lease_write(e, ha.namespace(), LEASE_NAME))
        .map(|e| e.describe())
        .collect();
    // Not vacuous: kh-0 was writing as the leader right up to the pause, and the new
    // leader wrote after the takeover.
    let leader_writes_before = events
        .iter()
        .filter(by_paused)
        .filter(|e| e.succeeded() && history::is_leader_only_write(e))
        .filter(|e| e.stage_timestamp < stopped_wall)
        .count();
    assert!(
        leader_writes_before > 0,
        "kh-0 made no leader writes before the pause"
    );
    let new_leader_writes = events
        .iter()
        .filter(|e| replica_of(e) == Some(new_leader.as_str()))
        .filter(|e| e.succeeded() && history::is_leader_only_write(e))
        .filter(|e| e.request_received_timestamp > stopped_wall)
        .count();
    assert!(
        new_leader_writes > 0,
        "{new_leader} made no leader writes after the takeover"
    );

    // One leader at a time over the whole test.
    history::assert_one_leader_through(
        &events,
        ha.namespace(),
        LEASE_NAME,
        &[paused.as_str(), new_leader.as_str()],
    );

    // The khstates: runs the API server committed after the takeover name the new term.
    let runs = ha.runs.snapshot();
    let stale: Vec<String> = runs
        .iter()
        .filter(|r| r.at >= takeover.at)
        .filter(|r| r.holder != new_leader || i64::from(takeover.transitions) != r.transitions)
        .map(|r| format!("{r:?}"))
        .collect();
    assert!(
        stale.is_empty(),
        "runs committed after the takeover by another term than ({new_leader}, {}):\n{}",
        takeover.transitions,
        stale.join("\n")
    );
    let going_back = history::terms_going_back(&runs);
    assert!(going_back.is_empty(), "{}", going_back.join("\n"));
    // At least one run of each check before the SIGCONT and one after it.
    let runs_by_new_term = runs.iter().filter(|r| r.at >= takeover.at).count();
    assert!(
        runs_by_new_term >= new_runs.len() + runs_after_resume.len(),
        "{runs_by_new_term} runs by the new term"
    );

    let report = json!({
        "timings": {
            "lease_duration": crate::setup::go_duration(LEASE_DURATION),
            "renew_deadline": crate::setup::go_duration(RENEW_DEADLINE),
            "retry_period": crate::setup::go_duration(RETRY_PERIOD),
        },
        "paused": paused,
        "new_leader": new_leader,
        "takeover_after_sigstop_ms": takeover_ms,
        "paused_for_ms": ms(paused_for),
        "lost_logged_after_sigcont_ms": noticed_ms,
        "follower_after_sigcont_ms": follows_ms,
        "writes_by_paused_after_sigcont": {
            "successful": successful.len(),
            "lease_attempts_refused_409": lease_attempts.len(),
            "other_refused": refused_other,
        },
        "leader_writes_by_paused_before_sigstop": leader_writes_before,
        "leader_writes_by_new_leader": new_leader_writes,
        "runs_started_by_new_term": runs_by_new_term,
    });
    eprintln!(
        "pause: {paused} stopped {:.1} s; {new_leader} took over {takeover_ms:.0} ms after SIGSTOP; \
         after SIGCONT {paused} logged the loss in {noticed_ms:.0} ms, followed within {follows_ms:.0} ms, \
         made 0 successful writes and {} refused Lease writes",
        paused_for.as_secs_f64(),
        lease_attempts.len()
    );
    let path = figures::write("pause", &report).unwrap();
    eprintln!("figures written to {}", path.display());
}
