//! Scenario 2: `GET /json` and `GET /metrics` with many checks, on a follower and on the
//! leader, at two concurrencies; the baseline is the same replica's trivial `/healthz`.

use std::net::SocketAddr;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::load::{self, LoadResult};
use crate::peer::{Peer, V2_LEADER_NOT_IDLE, V2World};
use crate::report::{Row, Section, f0, f1};
use crate::stats::{Summary, median};
use crate::world::{DEFAULT_LEASE, World};
use crate::{Plan, apimetrics};

pub const CONCURRENCIES: [usize; 2] = [16, 64];
pub const PATHS: [&str; 2] = ["/json", "/metrics"];
const WARM_UP: usize = 50;

/// How long one status request of the peer may take before its serving is called absent.
const PROBE: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn run(plan: &Plan, peer: &Peer) -> Result<Section> {
    let n = plan.serving_checks;
    let mut section = Section::new("serving", "2. Status and metrics serving");
    section.setup.push(format!(
        "{n} checks (idle, interval 24h, each with a khstate), a leader and a follower (Lease {}); \
         load from this process to the replica's address on the pod network's host side (local \
         to this machine, so the kernel's loopback path): keep-alive HTTP/1.1 connections, each sending its \
         next request when the answer is read; per trial at most {} requests or {} s; {} trials; \
         {WARM_UP} requests of warm-up per path; req/s is the median of the trials, latencies \
         pooled over the trials; baseline: GET /healthz of the same replica at the same concurrency",
        DEFAULT_LEASE.describe(),
        plan.serving_max_requests,
        plan.serving_cap.as_secs(),
        plan.serving_trials
    ));
    let mut world = World::start("bench-serving").await?;
    world.create_idle_checks(0..n, "24h").await?;
    world.spawn(0, DEFAULT_LEASE, &[]).await?;
    world.spawn(1, DEFAULT_LEASE, &[]).await?;
    let leader = world.settle(n).await?;
    let follower = 1 - leader;
    let peer_figures = peer_serving(peer, n, plan).await;

    let mut raw = serde_json::Map::new();
    for (role, index) in [("follower", follower), ("leader", leader)] {
        let addr = world.addr_of(index);
        for c in CONCURRENCIES {
            let baseline = measure(addr, "/healthz", c, plan).await;
            let baseline_rps = median(&baseline.iter().map(LoadResult::rps).collect::<Vec<_>>());
            raw.insert(format!("{role} /healthz c={c}"), trials_json(&baseline));
            for path in PATHS {
                let before = apimetrics::snapshot(world.plane()).await?;
                let trials = measure(addr, path, c, plan).await;
                let after = apimetrics::snapshot(world.plane()).await?;
                // The Lease renewals and the pod runner's node heartbeats go on regardless, and
                // a WATCH is counted when it ends (the API server's own informers re-watch).
                let api = after.since(&before).filter(|verb, resource| {
                    verb != "WATCH" && resource != "leases" && !resource.starts_with("nodes")
                });
                let rps = median(&trials.iter().map(LoadResult::rps).collect::<Vec<_>>());
                let latencies: Vec<f64> = trials
                    .iter()
                    .flat_map(|t| t.latencies_ms.iter().copied())
                    .collect();
                let lat = Summary::of(&latencies);
                let errors: usize = trials.iter().map(|t| t.errors).sum();
                let theirs = peer_figures.get(role, path, c);
                let mut rps_row = Row::new(format!("{path} on the {role}, c={c}: req/s"), f0(rps))
                    .baseline(format!(
                        "{:.2}x of /healthz ({} req/s)",
                        rps / baseline_rps,
                        f0(baseline_rps)
                    ));
                let mut lat_row = Row::new(
                    format!("{path} on the {role}, c={c}: p50 / p99 ms"),
                    format!("{} / {}", f1(lat.p50), f1(lat.p99)),
                );
                match &theirs {
                    Ok(t) => {
                        rps_row = rps_row.peer(f0(t.rps), rps, t.rps);
                        lat_row = lat_row.peer(
                            format!("{} / {}", f1(t.p50_ms), f1(t.p99_ms)),
                            lat.p99,
                            t.p99_ms,
                        );
                    }
                    Err(reason) => {
                        rps_row = rps_row.peer_text(reason.clone());
                        lat_row = lat_row.peer_text(reason.clone());
                    }
                }
                section.rows.push(rps_row);
                section.rows.push(lat_row);
                raw.insert(
                    format!("{role} {path} c={c}"),
                    json!({
                        "trials": trials_json(&trials),
                        "rps_median": rps,
                        "latency_ms": lat.to_json(),
                        "errors": errors,
                        "api_requests_during_load_excluding_leases_and_nodes": api.to_json(),
                    }),
                );
                if errors > 0 {
                    section.notes.push(format!(
                        "{path} on the {role} at c={c}: {errors} failed requests ({})",
                        trials
                            .iter()
                            .find_map(|t| t.first_error.clone())
                            .unwrap_or_default()
                    ));
                }
                if api.total() > 0.0 {
                    section.notes.push(format!(
                        "{path} on the {role} at c={c}: the API server saw {} requests (not counting Leases, node heartbeats and ended watches) during the load: {}",
                        api.total(),
                        api.to_json()
                    ));
                }
            }
        }
    }
    section.notes.push(
        "the last column compares p99 latencies (rs / peer); a ratio below 1 is better for latency, above 1 better for req/s"
            .into(),
    );
    if let Some(note) = peer.note(crate::peer::V2_LEADER_NOTE) {
        section.notes.push(note);
    }
    section.raw = json!({"ours": Value::Object(raw), "peer": peer_figures.to_json()});
    Ok(section)
}

/// Warm-up, then `plan.serving_trials` bounded load runs.
pub async fn measure(addr: SocketAddr, path: &str, c: usize, plan: &Plan) -> Vec<LoadResult> {
    load::run(addr, path, c, WARM_UP, plan.serving_cap).await;
    let mut trials = Vec::new();
    for _ in 0..plan.serving_trials {
        trials.push(load::run(addr, path, c, plan.serving_max_requests, plan.serving_cap).await);
    }
    trials
}

pub fn trials_json(trials: &[LoadResult]) -> Value {
    Value::Array(trials.iter().map(LoadResult::to_json).collect())
}

/// Summarises trials the way the table does.
pub fn figure(trials: &[LoadResult]) -> ServingFigure {
    let latencies: Vec<f64> = trials
        .iter()
        .flat_map(|t| t.latencies_ms.iter().copied())
        .collect();
    let lat = Summary::of(&latencies);
    ServingFigure {
        rps: median(&trials.iter().map(LoadResult::rps).collect::<Vec<_>>()),
        p50_ms: lat.p50,
        p99_ms: lat.p99,
        errors: trials.iter().map(|t| t.errors).sum(),
    }
}
/// `GET /json` and `/metrics` figures of the peer, or why they are absent.
#[derive(Debug, Clone, Copy)]
pub struct ServingFigure {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
}

#[derive(Debug, Clone)]
pub struct PeerServing {
    follower: Result<Vec<(String, usize, ServingFigure, Value)>, String>,
}

impl PeerServing {
    pub fn get(&self, role: &str, path: &str, c: usize) -> Result<ServingFigure, String> {
        if role == "leader" {
            return Err(match &self.follower {
                Err(reason) => reason.clone(),
                Ok(_) => V2_LEADER_NOT_IDLE.to_string(),
            });
        }
        match &self.follower {
            Err(reason) => Err(reason.clone()),
            Ok(figures) => figures
                .iter()
                .find(|(p, cc, _, _)| p == path && *cc == c)
                .map(|(_, _, f, _)| *f)
                .ok_or_else(|| "not measured".to_string()),
        }
    }

    pub fn to_json(&self) -> Value {
        match &self.follower {
            Err(reason) => json!({"absent": reason}),
            Ok(figures) => Value::Object(
                figures
                    .iter()
                    .map(|(p, c, f, raw)| {
                        (
                            format!("follower {p} c={c}"),
                            json!({"rps_median": f.rps, "p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "errors": f.errors, "trials": raw}),
                        )
                    })
                    .collect(),
            ),
        }
    }
}

/// The peer's follower serving `/json` and `/metrics` with `n` checks.
pub async fn peer_serving(peer: &Peer, n: usize, plan: &Plan) -> PeerServing {
    if let Some(reason) = peer.absent_reason() {
        return PeerServing {
            follower: Err(reason),
        };
    }
    let follower = async {
        let mut world = V2World::start(peer, "peer-serving").await?;
        world.create_idle_checks(0..n).await?;
        world.spawn(1)?;
        world.wait_listening(1).await?;
        let addr = world.addrs[1];
        // v2 GETs every khcheck for each status request, throttled by client-go to 5
        // requests per second: first see whether one request answers within the probe.
        for path in PATHS {
            let probe = crate::load::run(addr, path, 1, 1, PROBE).await;
            if probe.latencies_ms.is_empty() {
                bail!(
                    "one GET {path} with {n} checks got no answer within {} s ({})",
                    PROBE.as_secs(),
                    probe.first_error.unwrap_or_default()
                );
            }
        }
        let mut figures = Vec::new();
        for c in CONCURRENCIES {
            for path in PATHS {
                let trials: Vec<LoadResult> = measure(addr, path, c, plan).await;
                figures.push((path.to_string(), c, figure(&trials), trials_json(&trials)));
            }
        }
        anyhow::Ok(figures)
    }
    .await
    .map_err(|e| format!("{e:#}"));
    PeerServing { follower }
}
