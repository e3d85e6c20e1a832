//! Scenario 6: scheduling precision. Several hundred checks at a one-minute interval; the
//! lateness of each start against its due time (the previous start + runInterval, both read
//! from the khstate: `history[].startedAt` and `runStartedAt`), in steady state and for the
//! starts due in the minute after the leader is killed (SIGKILL, default Lease settings).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::DynamicObject;
use kuberhealthy_e2e::{http, metrics};
use serde_json::json;

use crate::Plan;
use crate::report::{Row, Section, f0};
use crate::stats::Summary;
use crate::world::{self, DEFAULT_LEASE, REPORT_OK, World, check, check_name};

const INTERVAL: Duration = Duration::from_secs(60);

pub async fn run(plan: &Plan) -> Result<Section> {
    let n = plan.precision_checks;
    let mut section = Section::new("precision", "6. Scheduling precision");
    section.setup.push(format!(
        "{n} checks with runInterval 1m whose checker (sh + curl) reports OK, created at once (the \
         first starts are spread by KH_MAX_STARTS_PER_SECOND, default 10/s, and are not counted); \
         a leader and a follower (Lease {}); steady state: every start made in the {} s after each \
         check's first start; then SIGKILL to the leader 1 s before the next start is due: every \
         later start due in the following 60 s (a start due before the kill but not made by the \
         killed leader counts there); \
         lateness = runStartedAt minus (the previous start + 1m), from the khstates",
        DEFAULT_LEASE.describe(),
        plan.precision_steady.as_secs()
    ));
    let mut world = World::start("bench-precision").await?;
    let checks = (0..n)
        .map(|i| check(&check_name(i), "1m", "30s", REPORT_OK))
        .collect();
    world.create_all(&world::khchecks(), checks).await?;
    world.spawn(0, DEFAULT_LEASE, &[]).await?;
    world.spawn(1, DEFAULT_LEASE, &[]).await?;
    let leader = world.settle(n).await?;

    // Every check has started once: the steady state begins.
    kuberhealthy_e2e::wait_until("every check to start once", world::TIMEOUT, || async {
        let states = world.list_states().await?;
        Ok((states.len() == n && states.iter().all(|s| !starts(s).is_empty())).then_some(()))
    })
    .await?;
    tokio::time::sleep(plan.precision_steady).await;

    // Kill the leader one second before the next start is due, so the starts due while no
    // replica leads (up to one lease duration) fall into the measured minute.
    let interval = SignedDuration::try_from(INTERVAL)?;
    let soon = Timestamp::now() + SignedDuration::from_secs(3);
    let next_due = world
        .list_states()
        .await?
        .iter()
        .filter_map(|s| starts(s).last().map(|t| *t + interval))
        .filter(|due| *due > soon)
        .min()
        .context("no start is due")?;
    let wait = next_due.duration_since(Timestamp::now()) - SignedDuration::from_secs(1);
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    let killed_at = Timestamp::now();
    world.replica(leader)?.sigkill()?;
    world
        .replica_mut(leader)?
        .wait_exit(Duration::from_secs(30))
        .await?;
    // Every check has started after the kill: the start due in the minute after it is in.
    let deadline = INTERVAL + DEFAULT_LEASE.lease + Duration::from_secs(120);
    kuberhealthy_e2e::wait_until(
        "every check to start after the failover",
        deadline,
        || async {
            let states = world.list_states().await?;
            Ok(states
                .iter()
                .all(|s| starts(s).last().is_some_and(|t| *t > killed_at))
                .then_some(()))
        },
    )
    .await?;
    let survivor = 1 - leader;
    let metric = lateness_metric(world.addr_of(survivor)).await.ok();

    let mut steady = Vec::new();
    let mut after = Vec::new();
    let failover_end = killed_at + SignedDuration::try_from(INTERVAL)?;
    for state in world.list_states().await? {
        let s = starts(&state);
        for pair in s.windows(2) {
            let due = pair[0] + SignedDuration::try_from(INTERVAL)?;
            let late_ms = pair[1].duration_since(due).as_secs_f64() * 1e3;
            // A start due just before the kill that the killed leader did not make is the
            // failover's, not the steady state's.
            if pair[1] < killed_at {
                steady.push(late_ms);
            } else if due < failover_end {
                after.push(late_ms);
            }
        }
    }
    let s = Summary::of(&steady);
    let a = Summary::of(&after);
    section.rows.push(Row::new(
        format!(
            "steady state: lateness ms p50 / p99 / max ({} starts)",
            s.count
        ),
        format!("{} / {} / {}", f0(s.p50), f0(s.p99), f0(s.max)),
    ));
    section.rows.push(
        Row::new(
            format!(
                "minute after SIGKILL to the leader: lateness ms p50 / p99 / max ({} starts)",
                a.count
            ),
            format!("{} / {} / {}", f0(a.p50), f0(a.p99), f0(a.max)),
        )
        .baseline(format!(
            "max {:.2}x of the lease duration (15 s)",
            a.max / 15e3
        )),
    );
    if let Some((count, sum)) = metric {
        section.rows.push(Row::new(
            "new leader's kuberhealthy_run_start_lateness_seconds: starts, mean ms",
            format!("{count:.0}, {}", f0(1e3 * sum / count)),
        ));
    }
    section.raw = json!({
        "steady_ms": steady,
        "after_failover_ms": after,
        "steady": s.to_json(),
        "after_failover": a.to_json(),
        "killed_at": killed_at.to_string(),
        "new_leader_metric": metric.map(|(c, s)| json!({"count": c, "sum_seconds": s})),
    });
    Ok(section)
}

/// The starts of a check, oldest first: `history[].startedAt` and `runStartedAt`.
fn starts(state: &DynamicObject) -> Vec<Timestamp> {
    let spec = &state.data["spec"];
    let mut set: BTreeSet<Timestamp> = spec["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["startedAt"].as_str()?.parse().ok())
        .collect();
    if let Some(t) = spec["runStartedAt"].as_str().and_then(|t| t.parse().ok()) {
        set.insert(t);
    }
    set.into_iter().collect()
}

/// `kuberhealthy_run_start_lateness_seconds` count and sum from a replica's `/metrics`.
async fn lateness_metric(addr: SocketAddr) -> Result<(f64, f64)> {
    let response = http::get(addr, "/metrics").await?;
    let samples = metrics::parse(&response.body)?;
    let count = metrics::sum(
        &samples,
        "kuberhealthy_run_start_lateness_seconds_count",
        &[],
    );
    let sum = metrics::sum(&samples, "kuberhealthy_run_start_lateness_seconds_sum", &[]);
    (count > 0.0)
        .then_some((count, sum))
        .context("no lateness recorded")
}
