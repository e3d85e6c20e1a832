//! Scenario 5: leader handover after SIGTERM (graceful: the leader releases the Lease) and
//! SIGKILL (a crash: the others wait for the Lease to run out), with the default and the
//! short Lease settings. Measured as the high-availability test `handover` does: from the
//! signal to the moment this process's own watch of the Lease names another replica.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kuberhealthy_e2e::lease_watch::LeaseLog;
use serde_json::json;

use crate::Plan;
use crate::peer::Peer;
use crate::report::{Row, Section, f0};
use crate::stats::Summary;
use crate::world::{
    self, DEFAULT_LEASE, LEASE_NAME, LeaseTimings, REPORT_OK, SHORT_LEASE, World, check, check_name,
};

const REPLICAS: usize = 3;
const CHECKS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Signal {
    Term,
    Kill,
}

pub async fn run(plan: &Plan, peer: &Peer) -> Result<Section> {
    let mut section = Section::new("failover", "5. Failover: leader handover");
    section.setup.push(format!(
        "{REPLICAS} replicas; {CHECKS} checks due every 5s reporting OK, so the leader is at work; \
         per Lease setting, {} trials per signal, alternating SIGTERM and SIGKILL to the settled \
         leader; handover = from the signal to this process's own watch of the Lease delivering a \
         version that names another replica; the signalled replica is started again before the \
         next trial",
        plan.failover_trials
    ));
    let mut world = World::start("bench-failover").await?;
    let checks = (0..CHECKS)
        .map(|i| check(&check_name(i), "5s", "30s", REPORT_OK))
        .collect();
    world.create_all(&world::khchecks(), checks).await?;
    let lease = LeaseLog::start(world.client.clone(), world.namespace(), LEASE_NAME);
    let mut raw = serde_json::Map::new();
    for (label, timings) in [("default", DEFAULT_LEASE), ("short", SHORT_LEASE)] {
        world.stop_replicas();
        for i in 0..REPLICAS {
            world.spawn(i, timings, &[]).await?;
        }
        let mut term = Vec::new();
        let mut kill = Vec::new();
        for n in 0..2 * plan.failover_trials {
            let signal = if n % 2 == 0 {
                Signal::Term
            } else {
                Signal::Kill
            };
            let ms = trial(&mut world, &lease, timings, signal)
                .await
                .with_context(|| format!("{label} settings, trial {n} ({signal:?})"))?;
            match signal {
                Signal::Term => term.push(ms),
                Signal::Kill => kill.push(ms),
            }
        }
        for (name, values, bound) in [
            ("SIGTERM", &term, None),
            ("SIGKILL", &kill, Some(timings.lease + timings.retry)),
        ] {
            let s = Summary::of(values);
            let mut row = Row::new(
                format!(
                    "{name}, Lease {}: handover ms p50 / p99 / max",
                    timings.describe()
                ),
                format!("{} / {} / {}", f0(s.p50), f0(s.p99), f0(s.max)),
            )
            .peer_text(peer.failover_absent());
            if let Some(bound) = bound {
                row = row.baseline(format!(
                    "p50 {:.2}x of lease + retry ({} ms)",
                    s.p50 / (bound.as_secs_f64() * 1e3),
                    bound.as_millis()
                ));
            } else {
                row = row.baseline(format!(
                    "p50 {:.2}x of one retry period ({} ms)",
                    s.p50 / (timings.retry.as_secs_f64() * 1e3),
                    timings.retry.as_millis()
                ));
            }
            section.rows.push(row);
            raw.insert(
                format!("{label} {name}"),
                json!({"lease": timings.describe(), "handover_ms": values, "summary": s.to_json()}),
            );
        }
    }
    if let Some(note) = peer.note(crate::peer::V2_FAILOVER_NOTE) {
        section.notes.push(note);
    }
    section.raw = serde_json::Value::Object(raw);
    Ok(section)
}

/// Signals the settled leader and returns the handover in milliseconds; starts the
/// signalled replica again.
async fn trial(
    world: &mut World,
    lease: &LeaseLog,
    timings: LeaseTimings,
    signal: Signal,
) -> Result<f64> {
    let leader = world.settle(CHECKS).await?;
    let old = World::replica_name(leader);
    let (holder, _) = world
        .lease_term()
        .await?
        .context("the Lease names no leader")?;
    ensure!(holder == old, "the Lease moved to {holder} while settling");
    let signalled = Instant::now();
    match signal {
        Signal::Term => world.replica(leader)?.sigterm()?,
        Signal::Kill => world.replica(leader)?.sigkill()?,
    }
    let seen = lease
        .wait_for_new_holder(&old, signalled, world::TIMEOUT)
        .await?;
    let handover = seen.at - signalled;
    world
        .replica_mut(leader)?
        .wait_exit(Duration::from_secs(60))
        .await?;
    world.spawn(leader, timings, &[]).await?;
    Ok(handover.as_secs_f64() * 1e3)
}
