//! SIGTERM and SIGKILL to the leader, 10 trials each (alternating), three replicas always
//! running (the signalled one is started again after each trial). Each trial signals a
//! leader at work: its term has started at least one run.
//!
//! Measured per trial, from the instant the signal is sent:
//! - handover: until the test's own watch of the Lease delivers a version naming another
//!   replica (a conservative figure: it includes the watch's delivery);
//! - acquired: the new holder's `acquireTime` (its wall clock, the same machine's) minus
//!   the wall-clock instant of the signal;
//! - agreement: when each surviving replica's status page first showed the new
//!   `CurrentMaster` (polled every 50 ms), as a lag behind the Lease change the test saw and
//!   as the skew between the replicas.
//!
//! Bounds asserted (issue 4, with the margins stated here):
//! - SIGTERM: one retry period (500 ms) + 250 ms margin for a loaded 2-core machine (the
//!   leader releases the Lease and the followers' Lease watches wake them at once);
//! - SIGKILL: lease duration + retry period (3.5 s) + 500 ms margin. A follower takes the
//!   Lease when its own observation of the last renewal is one lease duration old, and that
//!   observation trails the renewal by up to one retry period (+20 % jitter), as in
//!   client-go; the margin covers that jitter and the load;
//! - agreement: every surviving replica shows the new leader within 1 s of the Lease
//!   change, and within 1 s of each other. (The signalled replica is gone by then; the
//!   restarted one must show the same leader before the next trial starts.)

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::jiff::Timestamp;
use kuberhealthy_e2e::process::ProcessGroup;
use serde_json::json;

use crate::figures::{self, ms, summarize};
use crate::history;
use crate::observe::MasterWatch;
use crate::setup::{CHECKS, Ha, LEASE_NAME, REPLICAS, Reporting, check_name, replica_name};
use crate::{LEASE_DURATION, RETRY_PERIOD, TIMEOUT, serial};

/// Trials per signal.
const TRIALS: usize = 10;
const SIGTERM_MARGIN: Duration = Duration::from_millis(250);
const SIGKILL_MARGIN: Duration = Duration::from_millis(500);
const AGREEMENT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Signal {
    Term,
    Kill,
}

#[derive(Debug)]
struct Trial {
    signal: Signal,
    /// Rounds of every replica's `/metrics` read during the handover (none with two leaders).
    metric_rounds: usize,
    old: String,
    new: String,
    handover_ms: f64,
    acquired_ms: Option<f64>,
    /// Per surviving replica: when its status page showed the new leader, relative to the
    /// Lease change the test saw (negative: before the test's own watch delivered it).
    lags_ms: Vec<f64>,
    skew_ms: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_handover_after_sigterm_and_sigkill() {
    let _serial = serial().await;
    let began = Instant::now();
    let mut ha = Ha::start("ha-handover", Reporting::OwnReplica)
        .await
        .expect("starting the control plane, RBAC and checks");
    ha.spawn_all().await.expect("starting three replicas");
    let checks: Vec<String> = (0..CHECKS).map(check_name).collect();
    let first_leader = replica_name(ha.settle().await.expect("a first leader"));
    ha.runs
        .wait_for_runs_by(&first_leader, &checks, began)
        .await
        .expect("the first leader running the checks");

    let mut trials = Vec::new();
    for n in 0..2 * TRIALS {
        let signal = if n % 2 == 0 {
            Signal::Term
        } else {
            Signal::Kill
        };
        match trial(&mut ha, signal).await {
            Ok(trial) => {
                eprintln!(
                    "trial {n:>2} {:?}: {} -> {} in {:.0} ms (acquireTime {:?} ms), status pages lag {:?} ms, skew {:.0} ms",
                    trial.signal,
                    trial.old,
                    trial.new,
                    trial.handover_ms,
                    trial.acquired_ms,
                    trial.lags_ms,
                    trial.skew_ms
                );
                trials.push(trial);
            }
            Err(err) => panic!(
                "trial {n} ({signal:?}): {err:#}\n{}",
                ha.describe_replicas()
            ),
        }
    }
    let last = replica_name(ha.settle().await.expect("one leader after the trials"));
    // The last leader works: runs keep starting under its term.
    ha.runs
        .wait_for_runs_by(&last, &checks, Instant::now())
        .await
        .expect("the last leader running the checks");

    let mut report = report(&trials);
    report["metric_rounds_with_exactly_one_leader_while_settled"] = ha.leader_rounds().into();
    report["metric_rounds_during_handovers_without_two_leaders"] =
        trials.iter().map(|t| t.metric_rounds).sum::<usize>().into();
    let path = figures::write("handover", &report).expect("writing the figures");
    eprintln!("figures written to {}", path.display());

    // One leader at a time, from what reached the API server.
    let events = ha.audit().expect("reading the audit log");
    let tenures = history::tenures(&events, ha.namespace(), LEASE_NAME);
    assert!(
        tenures.violations.is_empty(),
        "leader-only writes outside the writer's tenure:\n{}",
        tenures.violations.join("\n")
    );
    assert!(
        tenures.acquisitions.len() > 2 * TRIALS,
        "expected more than {} acquisitions in the audit log, found {:?}",
        2 * TRIALS,
        tenures.acquisitions
    );
    // Not vacuous: every replica that took the Lease wrote as the leader.
    let acquirers: std::collections::BTreeSet<&str> =
        tenures.acquisitions.iter().map(|a| a.0.as_str()).collect();
    let writers: std::collections::BTreeSet<&str> =
        tenures.leader_writes.keys().map(String::as_str).collect();
    assert_eq!(
        acquirers, writers,
        "replicas that took the Lease and replicas that made leader writes differ: {:?}",
        tenures.leader_writes
    );
    let runs = ha.runs.snapshot();
    let going_back = history::terms_going_back(&runs);
    assert!(
        going_back.is_empty(),
        "runs started by an older term after a newer one:\n{}",
        going_back.join("\n")
    );
    eprintln!(
        "one leader at a time: {} acquisitions, leader-only writes {:?}, {} run starts with terms in order, \
         {} rounds of every replica's /metrics with exactly one leader (the Lease holder) while settled, \
         {} rounds during handovers with never two",
        tenures.acquisitions.len(),
        tenures.leader_writes,
        runs.len(),
        ha.leader_rounds(),
        trials.iter().map(|t| t.metric_rounds).sum::<usize>()
    );

    // The bounds, after the figures are out.
    let term_bound = RETRY_PERIOD + SIGTERM_MARGIN;
    let kill_bound = LEASE_DURATION + RETRY_PERIOD + SIGKILL_MARGIN;
    for (n, t) in trials.iter().enumerate() {
        let bound = match t.signal {
            Signal::Term => term_bound,
            Signal::Kill => kill_bound,
        };
        assert!(
            t.handover_ms <= ms(bound),
            "trial {n} ({:?}): the handover took {} ms, more than {} ms",
            t.signal,
            t.handover_ms,
            ms(bound)
        );
        assert!(
            t.lags_ms.iter().all(|&lag| lag <= ms(AGREEMENT)),
            "trial {n}: a surviving replica showed the new leader more than 1 s after the Lease changed: {:?} ms",
            t.lags_ms
        );
        assert!(
            t.skew_ms <= ms(AGREEMENT),
            "trial {n}: the replicas disagreed on CurrentMaster for {} ms",
            t.skew_ms
        );
    }
}

/// Signals the settled leader, measures the handover and starts the replica again.
async fn trial(ha: &mut Ha, signal: Signal) -> Result<Trial> {
    let leader = ha.settle().await?;
    let old = replica_name(leader);
    // Signal a leader at work: its term has started a run (and created its pod).
    let (holder, transitions) = ha
        .lease_term()
        .await?
        .context("the Lease names no leader")?;
    ensure!(holder == old, "the Lease moved to {holder} while settling");
    ha.runs.wait_for_run_by_term(&old, transitions).await?;
    let survivors: Vec<usize> = (0..REPLICAS).filter(|&i| i != leader).collect();
    let masters = MasterWatch::start(
        survivors.iter().map(|&i| ha.addr(i)).collect(),
        (0..REPLICAS).map(|i| ha.addr(i)).collect(),
        old.clone(),
        TIMEOUT,
    );
    // Let the poller's first round see the old leader before the signal.
    tokio::time::sleep(crate::POLL).await;

    let signalled_wall = Timestamp::now();
    let signalled = Instant::now();
    match signal {
        Signal::Term => ha.replica(leader).sigterm()?,
        Signal::Kill => ha.replica(leader).sigkill()?,
    }
    let seen = ha
        .lease
        .wait_for_new_holder(&old, signalled, TIMEOUT)
        .await?;
    let handover = seen.at - signalled;
    let new = seen.holder.clone().unwrap_or_default();
    ensure!(
        survivors.iter().any(|&i| replica_name(i) == new),
        "the Lease names {new:?}, which is not a surviving replica"
    );
    let acquired_ms = seen
        .acquire_time
        .map(|t| (t.duration_since(signalled_wall).as_secs_f64() * 1e4).round() / 10.0);

    let masters = masters.finish().await?;
    ensure!(
        masters.two_leaders.is_empty(),
        "two replicas claimed leadership at once during the handover: {:?}",
        masters.two_leaders
    );
    let mut lags_ms = Vec::new();
    for (i, first) in survivors.iter().zip(&masters.firsts) {
        let first = first.with_context(|| {
            format!(
                "{} never showed a new CurrentMaster (the Lease names {new})",
                replica_name(*i)
            )
        })?;
        lags_ms.push(signed_ms(first, seen.at));
    }
    let skew_ms = lags_ms.iter().copied().fold(f64::MIN, f64::max)
        - lags_ms.iter().copied().fold(f64::MAX, f64::min);
    for &i in &survivors {
        let master = crate::observe::current_master(ha.addr(i)).await?;
        ensure!(
            master.as_deref() == Some(new.as_str()),
            "{} shows CurrentMaster {master:?}, the Lease names {new}",
            replica_name(i)
        );
    }

    let status = ha.replica_mut(leader).wait_exit(TIMEOUT).await?;
    let exit = ProcessGroup::describe_exit(status);
    match signal {
        Signal::Term => {
            ensure!(
                exit == "exit code 0",
                "{old} ended with {exit} after SIGTERM"
            );
            let log = std::fs::read_to_string(ha.replica(leader).log_path())?;
            // The log accumulates across restarts: this run's release is its last line of
            // that kind, after its last "acquired".
            let acquired = log.rfind("acquired the Lease").unwrap_or(0);
            if !log[acquired..].contains("released the Lease") {
                bail!("{old} did not log that it released the Lease after SIGTERM");
            }
        }
        Signal::Kill => ensure!(
            exit == format!("signal {}", libc::SIGKILL),
            "{old} ended with {exit} after SIGKILL"
        ),
    }
    ha.spawn(leader).await?;
    Ok(Trial {
        signal,
        metric_rounds: masters.metric_rounds,
        old,
        new,
        handover_ms: ms(handover),
        acquired_ms,
        lags_ms,
        skew_ms,
    })
}

fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b { ms(a - b) } else { -ms(b - a) }
}

/// Prints the table and returns the JSON of the figures.
fn report(trials: &[Trial]) -> serde_json::Value {
    let of =
        |signal: Signal| -> Vec<&Trial> { trials.iter().filter(|t| t.signal == signal).collect() };
    let mut by_signal = serde_json::Map::new();
    eprintln!();
    eprintln!(
        "leader handover (lease {}, renew deadline {}, retry {}), ms from the signal",
        crate::setup::go_duration(LEASE_DURATION),
        crate::setup::go_duration(crate::RENEW_DEADLINE),
        crate::setup::go_duration(RETRY_PERIOD)
    );
    eprintln!(
        "{:<8} {:>6} {:>14} {:>14} {:>18} {:>18} {:>15} {:>15}",
        "signal",
        "trials",
        "median (watch)",
        "max (watch)",
        "median (acquired)",
        "max (acquired)",
        "max lag (pages)",
        "max skew"
    );
    for (signal, name) in [(Signal::Term, "SIGTERM"), (Signal::Kill, "SIGKILL")] {
        let ts = of(signal);
        let watch = summarize(&ts.iter().map(|t| t.handover_ms).collect::<Vec<_>>());
        let acquired = summarize(&ts.iter().filter_map(|t| t.acquired_ms).collect::<Vec<_>>());
        let lags: Vec<f64> = ts.iter().flat_map(|t| t.lags_ms.iter().copied()).collect();
        let lag = summarize(&lags);
        let skew = summarize(&ts.iter().map(|t| t.skew_ms).collect::<Vec<_>>());
        eprintln!(
            "{name:<8} {:>6} {:>14.0} {:>14.0} {:>18.0} {:>18.0} {:>15.0} {:>15.0}",
            watch.count,
            watch.median_ms,
            watch.max_ms,
            acquired.median_ms,
            acquired.max_ms,
            lag.max_ms,
            skew.max_ms
        );
        by_signal.insert(
            name.to_string(),
            json!({
                "handover_seen_by_lease_watch": watch.to_json(),
                "handover_by_acquire_time": acquired.to_json(),
                "status_page_lag_behind_lease_change": lag.to_json(),
                "status_page_skew_between_replicas": skew.to_json(),
                "trials": ts.iter().map(|t| json!({
                    "old": t.old,
                    "new": t.new,
                    "handover_ms": t.handover_ms,
                    "acquired_ms": t.acquired_ms,
                    "status_page_lags_ms": t.lags_ms,
                    "skew_ms": t.skew_ms,
                })).collect::<Vec<_>>(),
            }),
        );
    }
    eprintln!();
    json!({
        "timings": {
            "lease_duration": crate::setup::go_duration(LEASE_DURATION),
            "renew_deadline": crate::setup::go_duration(crate::RENEW_DEADLINE),
            "retry_period": crate::setup::go_duration(RETRY_PERIOD),
        },
        "bounds_ms": {
            "SIGTERM": ms(RETRY_PERIOD + SIGTERM_MARGIN),
            "SIGKILL": ms(LEASE_DURATION + RETRY_PERIOD + SIGKILL_MARGIN),
            "agreement": ms(AGREEMENT),
        },
        "signals": by_signal,
    })
}
