//! The API server is stopped for 20 s (the scenario's one timed wait) and started again on
//! the same addr and etcd. The leader must step down once its renew deadline passes, every
//! replica must keep serving `GET /json` from its cache meanwhile, and afterwards exactly
//! one leader must be elected again, by the same three processes.
//!
//! The API server is stopped the harness's way: SIGTERM, SIGKILL if it has not exited after
//! 5 s. When it last answered is read from its audit log.
//!
//! Bounds asserted: the leader's `kuberhealthy_controller_leader` goes to 0 between the
//! renew deadline minus one retry period and the renew deadline plus a 1 s margin (for a
//! loaded 2-core machine) after its last successful renewal (audit log); at the end of the
//! outage no replica claims leadership; every status page answered 200 with every check, at
//! least once a second.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kuberhealthy_e2e::audit::AuditEvent;
use kuberhealthy_e2e::process::is_running;
use kuberhealthy_e2e::wait_until;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::figures::{self, ms};
use crate::history;
use crate::observe::{self, StatusPage};
use crate::setup::{CHECKS, Ha, LEASE_NAME, REPLICAS, Reporting, check_name, replica_name};
use crate::{LEASE_DURATION, POLL, RENEW_DEADLINE, RETRY_PERIOD, TIMEOUT, serial};

const OUTAGE: Duration = Duration::from_secs(20);
const STEP_DOWN_MARGIN: Duration = Duration::from_secs(1);
/// How often every replica's status page is read during the outage.
const PROBE_EVERY: Duration = Duration::from_millis(200);

/// One `GET /json` during the outage.
struct Probe {
    at: Instant,
    replica: usize,
    page: Result<StatusPage, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_steps_down_in_an_api_server_outage_and_one_leader_returns() {
    let _serial = serial().await;
    let began = Instant::now();
    let mut ha = Ha::start("ha-outage", Reporting::OwnReplica)
        .await
        .expect("starting the control plane, RBAC and checks");
    ha.spawn_all().await.expect("starting three replicas");
    let checks: Vec<String> = (0..CHECKS).map(check_name).collect();
    let check_keys: Vec<String> = checks
        .iter()
        .map(|c| format!("{}/{c}", ha.namespace()))
        .collect();
    let leader = ha.settle().await.expect("a leader");
    let leader_name = replica_name(leader);
    ha.runs
        .wait_for_runs_by(&leader_name, &checks, began)
        .await
        .expect("the leader running the checks");
    let addrs: Vec<SocketAddr> = (0..REPLICAS).map(|i| ha.addr(i)).collect();
    for &addr in &addrs {
        wait_until("every status page to show every check", TIMEOUT, || async {
            let page = observe::status_page(addr).await?;
            Ok(check_keys
                .iter()
                .all(|k| page.checks.contains(k))
                .then_some(()))
        })
        .await
        .unwrap();
    }
    let pids: Vec<u32> = (0..REPLICAS).map(|i| ha.replica(i).pid()).collect();

    // Every replica's status page, every 200 ms, until the API server is back.
    let stop_probing = CancellationToken::new();
    let prober = tokio::spawn(probe_status_pages(addrs.clone(), stop_probing.clone()));

    // The leader's leadership metric, polled from before the stop until it reads 0.
    let leader_addr = addrs[leader];
    let step_down = tokio::spawn(async move {
        let begin = Instant::now();
        loop {
            match observe::is_leader(leader_addr).await {
                Ok(false) => return Ok((Instant::now(), Timestamp::now())),
                Ok(true) => {}
                Err(err) => return Err(format!("reading the leader's /metrics: {err:#}")),
            }
            if begin.elapsed() > TIMEOUT {
                return Err(format!("still leading {TIMEOUT:?} into the outage"));
            }
            tokio::time::sleep(POLL).await;
        }
    });

    let outage_began = Instant::now();
    let outage_began_wall = Timestamp::now();
    ha.cluster_mut()
        .control_plane_mut()
        .stop_apiserver()
        .await
        .expect("stopping the API server");
    let apiserver_stop_took = outage_began.elapsed();
    let (stepped_down_at, stepped_down_wall) = step_down
        .await
        .expect("the step-down poller")
        .unwrap_or_else(|e| panic!("{leader_name}: {e}\n{}", ha.describe_replicas()));
    let stepped_down = stepped_down_at - outage_began;
    // The scenario's wait: the API server stays down for 20 s.
    tokio::time::sleep_until((outage_began + OUTAGE).into()).await;
    let leaders_during = ha
        .leaders_by_metric()
        .await
        .expect("reading /metrics during the outage");
    let outage = outage_began.elapsed();
    stop_probing.cancel();
    let probes = prober.await.expect("the status page prober");

    let restart_began = Instant::now();
    let restart_began_wall = Timestamp::now();
    ha.cluster_mut()
        .control_plane_mut()
        .start_apiserver()
        .await
        .expect("starting the API server again");
    let apiserver_ready = Instant::now();
    let new_leader = ha
        .settle()
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", ha.describe_replicas()));
    let settled_after = apiserver_ready.elapsed();
    let new_leader_name = replica_name(new_leader);
    ha.runs
        .wait_for_runs_by(&new_leader_name, &checks, apiserver_ready)
        .await
        .expect("the leader running the checks again");

    // The same three processes, none restarted.
    for (i, &pid) in pids.iter().enumerate() {
        let replica = ha.replica_mut(i);
        assert_eq!(replica.pid(), pid);
        assert!(
            replica.try_exit().unwrap().is_none() && is_running(pid),
            "{} (pid {pid}) exited",
            replica.name()
        );
        let starts = std::fs::read_to_string(replica.log_path())
            .unwrap()
            .matches("serving the status page")
            .count();
        assert_eq!(starts, 1, "{} started {starts} times", replica.name());
    }
    let leader_log = std::fs::read_to_string(ha.replica(leader).log_path()).unwrap();
    assert!(
        leader_log.contains("lost the Lease; stepping down and contending again"),
        "{leader_name} did not log that it stepped down:\n{}",
        ha.replica(leader).log_tail(30)
    );

    // One leader at a time across the outage, from the audit log.
    let events = ha.audit().expect("reading the audit log");
    let tenures = history::tenures(&events, ha.namespace(), LEASE_NAME);
    assert!(
        tenures.violations.is_empty(),
        "leader-only writes outside the writer's tenure:\n{}",
        tenures.violations.join("\n")
    );
    let going_back = history::terms_going_back(&ha.runs.snapshot());
    assert!(going_back.is_empty(), "{}", going_back.join("\n"));

    // When the API server last carried out a write before the outage, and the leader's last
    // successful renewal before it stepped down: the renew deadline counts from there.
    let before_restart: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.succeeded() && e.stage_timestamp < restart_began_wall)
        .collect();
    let served_until = before_restart
        .iter()
        .map(|e| e.stage_timestamp)
        .max()
        .expect("audited writes before the outage");
    let last_renewal = before_restart
        .iter()
        .filter(|e| history::replica_of(e) == Some(leader_name.as_str()))
        .filter(|e| history::is_lease_write(e, ha.namespace(), LEASE_NAME))
        .filter(|e| e.stage_timestamp < stepped_down_wall)
        .map(|e| e.stage_timestamp)
        .max()
        .expect("a Lease renewal by the leader before the outage");
    let after_last_renewal = wall_ms(last_renewal, stepped_down_wall);

    // Figures, then the bounds.
    let mut served = vec![0usize; REPLICAS];
    let mut failures = Vec::new();
    let during = probes
        .iter()
        .filter(|p| p.at >= outage_began && p.at <= outage_began + outage);
    for probe in during {
        match &probe.page {
            Ok(page) if check_keys.iter().all(|k| page.checks.contains(k)) => {
                served[probe.replica] += 1
            }
            Ok(page) => failures.push(format!(
                "{}: the status page lost checks: {:?}",
                replica_name(probe.replica),
                page.checks
            )),
            Err(err) => failures.push(format!("{}: {err}", replica_name(probe.replica))),
        }
    }
    let report = json!({
        "timings": {
            "lease_duration": crate::setup::go_duration(LEASE_DURATION),
            "renew_deadline": crate::setup::go_duration(RENEW_DEADLINE),
            "retry_period": crate::setup::go_duration(RETRY_PERIOD),
        },
        "leader_before": leader_name,
        "leader_after": new_leader_name,
        "outage_ms": ms(outage),
        "apiserver_stop_took_ms": ms(apiserver_stop_took),
        "apiserver_last_write_after_stop_began_ms": wall_ms(outage_began_wall, served_until),
        "step_down_after_stop_began_ms": ms(stepped_down),
        "step_down_after_last_renewal_ms": after_last_renewal,
        "status_pages_served_during_outage": served,
        "status_page_failures_during_outage": failures.len(),
        "apiserver_restart_took_ms": ms(apiserver_ready - restart_began),
        "one_leader_settled_after_apiserver_ready_ms": ms(settled_after),
    });
    let path = figures::write("outage", &report).unwrap();
    eprintln!(
        "outage: API server stopped for {:.1} s (its last write {:.0} ms after the stop began); \
         {leader_name} stepped down {after_last_renewal:.0} ms after its last renewal, {:.0} ms after the stop began; \
         status pages served {served:?} times, {} failures; after the restart {new_leader_name} \
         leads, settled {:.0} ms after the API server was ready; figures in {}",
        outage.as_secs_f64(),
        wall_ms(outage_began_wall, served_until),
        ms(stepped_down),
        failures.len(),
        ms(settled_after),
        path.display()
    );

    assert!(
        failures.is_empty(),
        "status pages failed during the outage:\n{}",
        failures.join("\n")
    );
    // At least one read per second per replica got through.
    for (i, &n) in served.iter().enumerate() {
        assert!(
            n as u64 >= OUTAGE.as_secs(),
            "{} served its status page only {n} times in the outage",
            replica_name(i)
        );
    }
    assert!(
        leaders_during.is_empty(),
        "replicas claiming leadership at the end of the outage: {leaders_during:?}"
    );
    let earliest = ms(RENEW_DEADLINE - RETRY_PERIOD);
    let latest = ms(RENEW_DEADLINE + STEP_DOWN_MARGIN);
    assert!(
        (earliest..=latest).contains(&after_last_renewal),
        "{leader_name} stepped down {after_last_renewal} ms after its last successful renewal; \
         expected between {earliest} and {latest} ms"
    );
}

/// `to - from` in milliseconds.
fn wall_ms(from: Timestamp, to: Timestamp) -> f64 {
    (to.duration_since(from).as_secs_f64() * 1e4).round() / 10.0
}

/// Reads every replica's status page every [`PROBE_EVERY`] until `stop`.
async fn probe_status_pages(addrs: Vec<SocketAddr>, stop: CancellationToken) -> Vec<Probe> {
    let mut probes = Vec::new();
    while !stop.is_cancelled() {
        let round = Instant::now();
        for (replica, &addr) in addrs.iter().enumerate() {
            let page = observe::status_page(addr)
                .await
                .map_err(|e| format!("{e:#}"));
            probes.push(Probe {
                at: Instant::now(),
                replica,
                page,
            });
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep_until((round + PROBE_EVERY).into()) => {}
        }
    }
    probes
}
