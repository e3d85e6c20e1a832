//! Scenario 2: `GET /json` and `GET /metrics` with many checks, on a follower and on the
//! leader, at two concurrencies, under wrk; the baseline is nginx serving the same bytes
//! under the same load. A large stage adds the leader's first pass and the follower's
//! serving with many more checks.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::baseline::{self, StaticServer, WrkResult};
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
    baseline::ensure_tools()?;
    let n = plan.serving_checks;
    let mut section = Section::new("serving", "2. Status and metrics serving");
    section.setup.push(format!(
        "{n} checks (idle, interval 24h, each with a khstate), a leader and a follower (Lease {}); \
         load: wrk (Debian), 2 threads, keep-alive connections, {} trials of {} s per figure after \
         a {WARM_UP_S} s warm-up, to the replica's address on the pod network's host side; req/s \
         and p50/p99 are medians of the trials; baseline: nginx (Debian, one worker, sendfile) on \
         127.0.0.1 serving the same bytes, fetched from the same replica just before, under the \
         same wrk load in the same run",
        DEFAULT_LEASE.describe(),
        plan.serving_trials,
        plan.serving_cap.as_secs(),
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
        let nginx = static_copy(addr, &format!("serving-{role}")).await?;
        for c in CONCURRENCIES {
            for path in PATHS {
                let before = apimetrics::snapshot(world.plane()).await?;
                let ours = trials(addr, path, c, plan).await?;
                let after = apimetrics::snapshot(world.plane()).await?;
                // The Lease renewals and the pod runner's node heartbeats go on regardless, and
                // a WATCH is counted when it ends (the API server's own informers re-watch).
                let api = after.since(&before).filter(|verb, resource| {
                    verb != "WATCH" && resource != "leases" && !resource.starts_with("nodes")
                });
                let anchor = trials(nginx.addr, &static_path(path), c, plan).await?;
                let theirs = peer_figures.get(role, path, c);
                let (rps_row, lat_row) = figure_rows(
                    &format!("{path} on the {role}, c={c}"),
                    &ours,
                    &anchor,
                    nginx.size_kib(path),
                    &theirs,
                );
                section.rows.push(rps_row);
                section.rows.push(lat_row);
                raw.insert(
                    format!("{role} {path} c={c}"),
                    json!({
                        "ours": ours.to_json(),
                        "nginx_same_bytes": anchor.to_json(),
                        "body_kib": nginx.size_kib(path),
                        "api_requests_during_load_excluding_leases_and_nodes": api.to_json(),
                    }),
                );
                if ours.errors > 0 {
                    section.notes.push(format!(
                        "{path} on the {role} at c={c}: {} failed requests",
                        ours.errors
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
    drop(world);

    // The large stage: the follower at c=16, and the leader's first pass.
    let large = plan.serving_large_checks;
    section.setup.push(format!(
        "large stage: {large} idle checks on a control plane of their own, a leader and a \
         follower; the leader's first pass of its term (planning over every check, from its log \
         line \"first pass of this term done\"); /json and /metrics on the follower at c=16 \
         against nginx with the same bytes"
    ));
    let mut world = World::start("bench-serving-large").await?;
    let took = world.create_idle_checks(0..large, "24h").await?;
    world.spawn(0, DEFAULT_LEASE, &[]).await?;
    world.spawn(1, DEFAULT_LEASE, &[]).await?;
    let leader = world.settle(large).await?;
    let follower = 1 - leader;
    let log = world.replica(leader)?.log_path().to_path_buf();
    // The pages may show every check before the leader's first pass is over.
    let first_pass = kuberhealthy_e2e::wait_until(
        "the leader's first pass to be logged",
        crate::world::TIMEOUT,
        || async { Ok(first_pass_ms(&log)) },
    )
    .await?;
    section.rows.push(Row::new(
        format!("{large} checks: the leader's first pass, ms"),
        f1(first_pass),
    ));
    let addr = world.addr_of(follower);
    let nginx = static_copy(addr, "serving-large").await?;
    let mut large_raw = serde_json::Map::new();
    for path in PATHS {
        let ours = trials(addr, path, 16, plan).await?;
        let anchor = trials(nginx.addr, &static_path(path), 16, plan).await?;
        let (rps_row, lat_row) = figure_rows(
            &format!("{large} checks: {path} on the follower, c=16"),
            &ours,
            &anchor,
            nginx.size_kib(path),
            &Err("not measured at this size".into()),
        );
        section.rows.push(rps_row);
        section.rows.push(lat_row);
        large_raw.insert(
            path.to_string(),
            json!({"ours": ours.to_json(), "nginx_same_bytes": anchor.to_json(), "body_kib": nginx.size_kib(path)}),
        );
    }
    section.notes.push(
        "the last column compares p99 latencies (rs / peer); a ratio below 1 is better for latency, above 1 better for req/s; the peer is measured with the bench's own load loop (its status requests are throttled by client-go, far below what wrk needs to run)"
            .into(),
    );
    if let Some(note) = peer.note(crate::peer::V2_LEADER_NOTE) {
        section.notes.push(note);
    }
    section.raw = json!({
        "ours": Value::Object(raw),
        "large": {
            "checks": large,
            "created_s": took.as_secs_f64(),
            "leader_first_pass_ms": first_pass,
            "follower": Value::Object(large_raw),
        },
        "peer": peer_figures.to_json(),
    });
    Ok(section)
}

const WARM_UP_S: u64 = 1;

/// The req/s row and the latency row of one figure, each against nginx with the same bytes.
fn figure_rows(
    name: &str,
    ours: &Trials,
    anchor: &Trials,
    kib: f64,
    theirs: &Result<ServingFigure, String>,
) -> (Row, Row) {
    let mut rps_row = Row::new(format!("{name}: req/s"), f0(ours.rps)).baseline(format!(
        "{:.2}x of nginx ({} req/s, same {} KiB)",
        ours.rps / anchor.rps,
        f0(anchor.rps),
        f0(kib)
    ));
    let mut lat_row = Row::new(
        format!("{name}: p50 / p99 ms"),
        format!("{} / {}", f1(ours.p50_ms), f1(ours.p99_ms)),
    )
    .baseline(format!(
        "p99 {:.2}x of nginx's {} ms",
        ours.p99_ms / anchor.p99_ms,
        f1(anchor.p99_ms)
    ));
    match theirs {
        Ok(t) => {
            rps_row = rps_row.peer(f0(t.rps), ours.rps, t.rps);
            lat_row = lat_row.peer(
                format!("{} / {}", f1(t.p50_ms), f1(t.p99_ms)),
                ours.p99_ms,
                t.p99_ms,
            );
        }
        Err(reason) => {
            rps_row = rps_row.peer_text(reason.clone());
            lat_row = lat_row.peer_text(reason.clone());
        }
    }
    (rps_row, lat_row)
}

/// The medians of several wrk runs of one figure.
#[derive(Debug, Clone)]
pub struct Trials {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub runs: Vec<WrkResult>,
}

impl Trials {
    pub fn to_json(&self) -> Value {
        json!({
            "rps_median": self.rps, "p50_ms_median": self.p50_ms, "p99_ms_median": self.p99_ms,
            "errors": self.errors,
            "trials": self.runs.iter().map(WrkResult::to_json).collect::<Vec<_>>(),
        })
    }
}

/// A warm-up, then `plan.serving_trials` wrk runs of `plan.serving_cap` each.
pub async fn trials(addr: SocketAddr, path: &str, c: usize, plan: &Plan) -> Result<Trials> {
    baseline::wrk(addr, path, c, Duration::from_secs(WARM_UP_S), &[]).await?;
    let mut runs = Vec::new();
    for _ in 0..plan.serving_trials {
        runs.push(baseline::wrk(addr, path, c, plan.serving_cap, &[]).await?);
    }
    let of = |f: fn(&WrkResult) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    Ok(Trials {
        rps: of(|r| r.rps),
        p50_ms: of(|r| r.p50_ms),
        p99_ms: of(|r| r.p99_ms),
        errors: runs.iter().map(|r| r.errors).sum(),
        runs,
    })
}

/// Where nginx serves the copy of `path`.
fn static_path(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

/// nginx serving copies of the replica's `/json` and `/metrics`, fetched just now.
pub struct StaticCopy {
    server: StaticServer,
    pub addr: SocketAddr,
}

impl StaticCopy {
    pub fn size_kib(&self, path: &str) -> f64 {
        std::fs::metadata(self.server.root().join(path.trim_start_matches('/')))
            .map(|m| m.len() as f64 / 1024.0)
            .unwrap_or(f64::NAN)
    }
}

pub async fn static_copy(replica: SocketAddr, name: &str) -> Result<StaticCopy> {
    let mut files = Vec::new();
    for path in PATHS {
        let response = kuberhealthy_e2e::http::get(replica, path).await?;
        if response.status != 200 {
            bail!("GET {path} answered {}", response.status);
        }
        let content_type = if path == "/json" {
            "application/json"
        } else {
            "text/plain; version=0.0.4"
        };
        files.push((
            path.trim_start_matches('/'),
            content_type,
            response.body.into_bytes(),
        ));
    }
    let dir = kuberhealthy_e2e::session::workspace_root()
        .join("target/bench/nginx")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let server = StaticServer::start(&dir, &files).await?;
    Ok(StaticCopy {
        addr: server.addr,
        server,
    })
}

/// The leader's first pass of its term, in ms, from its JSON log (the field at the top level
/// or under `fields`), once logged.
fn first_pass_ms(log: &std::path::Path) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter(|l| l.contains("first pass of this term done"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["fields"]["took_ms"].as_f64().or(v["took_ms"].as_f64()))
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
