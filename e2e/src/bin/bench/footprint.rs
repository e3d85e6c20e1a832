//! Scenario 1: what an idle leader and an idle follower cost, with 0, 1,000 and 10,000
//! checks whose khstates say they ran just now (interval 24h: nothing runs).

use std::time::{Duration, Instant};

use anyhow::Result;
use kuberhealthy_e2e::ControlPlane;
use serde_json::{Value, json};

use crate::peer::{Peer, V2_LEADER_NOT_IDLE, V2World};
use crate::procfs::{self, CpuWindow};
use crate::report::{Row, Section, f1, f2, ratio};
use crate::stats::median;
use crate::world::{DEFAULT_LEASE, World};
use crate::{Plan, apimetrics};

/// Let start-up work (initial lists, the first scheduling pass) finish before measuring.
const QUIET_BEFORE: Duration = Duration::from_secs(5);

/// What one process measured at one stage.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    pub rss_mib: f64,
    pub hwm_mib: f64,
    /// Median over the windows, % of one core.
    pub cpu_pct: f64,
}

pub async fn run(plan: &Plan, peer: &Peer) -> Result<Section> {
    let mut section = Section::new("footprint", "1. Footprint: idle leader and follower");
    section.setup.push(format!(
        "one control plane; checks with runInterval 24h and a khstate whose run finished at creation \
         (nothing is due), created {} at a time; stages {:?} checks; for each stage a fresh leader \
         and follower (Lease {}), ready and showing every check, {} s quiet, then {} idle windows \
         of {} s; then {} checks created as `kubectl apply` creates them (each with the \
         last-applied annotation, kubectl's field manager) on a control plane of their own; \
         after each stage's windows, each replica serves /metrics, /json and the HTML page {} \
         times, a second apart, and its VmRSS is read again {} s later (\"scraped\": between \
         scrapes, after the replica returned the scrapes' freed memory)",
        32,
        plan.footprint_counts,
        DEFAULT_LEASE.describe(),
        QUIET_BEFORE.as_secs(),
        plan.idle_windows,
        plan.idle_window.as_secs(),
        plan.footprint_applied,
        SCRAPES,
        RELEASED.as_secs()
    ));
    section.setup.push(
        "memory: VmRSS and VmHWM from /proc/<pid>/status at the end of the windows; CPU: \
         utime+stime from /proc/<pid>/stat over each window, % of one core, median of the windows; \
         baseline: the same windows' CPU of the kube-apiserver"
            .into(),
    );
    let mut world = World::start("bench-footprint").await?;
    let mut raw = Vec::new();
    let mut created = 0;
    let mut ours = Vec::new();
    let mut scraped_stages = Vec::new();
    for &count in &plan.footprint_counts {
        let took = world.create_idle_checks(created..count, "24h").await?;
        let rate = (count - created) as f64 / took.as_secs_f64();
        created = count;
        world.spawn(0, DEFAULT_LEASE, &[]).await?;
        world.spawn(1, DEFAULT_LEASE, &[]).await?;
        let leader = world.settle(count).await?;
        let follower = 1 - leader;
        tokio::time::sleep(QUIET_BEFORE).await;
        let pids = [
            world.replica(leader)?.pid(),
            world.replica(follower)?.pid(),
            world.apiserver_pid()?,
        ];
        let (cpu, requests) = idle_windows(world.plane(), &pids, plan).await?;
        let leader_idle = Idle {
            rss_mib: procfs::memory(pids[0])?.rss_mib,
            hwm_mib: procfs::memory(pids[0])?.hwm_mib,
            cpu_pct: median(&cpu[0]),
        };
        let follower_idle = Idle {
            rss_mib: procfs::memory(pids[1])?.rss_mib,
            hwm_mib: procfs::memory(pids[1])?.hwm_mib,
            cpu_pct: median(&cpu[1]),
        };
        let apiserver_cpu = median(&cpu[2]);
        let scraped = scraped_rss(&world, &[leader, follower], &pids[..2]).await?;
        world.stop_replicas();

        ours.push((count, leader_idle, follower_idle, apiserver_cpu));
        scraped_stages.push((count, scraped[0], scraped[1]));
        raw.push(json!({
            "checks": count,
            "created_per_second": rate,
            "leader": {"rss_mib": leader_idle.rss_mib, "hwm_mib": leader_idle.hwm_mib, "cpu_pct_windows": cpu[0], "scraped_rss_mib": scraped[0]},
            "follower": {"rss_mib": follower_idle.rss_mib, "hwm_mib": follower_idle.hwm_mib, "cpu_pct_windows": cpu[1], "scraped_rss_mib": scraped[1]},
            "apiserver_cpu_pct_windows": cpu[2],
            "api_requests_per_second": requests,
        }));
    }
    drop(world);
    let applied = applied_stage(plan).await?;
    // The goal's figure: RSS added per 1,000 checks above the idle replica of the same role;
    // also on replicas that have served /metrics, the page and the JSON (what a replica
    // scraped by Prometheus keeps), and for checks applied as kubectl applies them.
    let idle = ours.iter().find(|(count, ..)| *count == 0).copied();
    let idle_scraped = scraped_stages
        .iter()
        .find(|(count, ..)| *count == 0)
        .copied();
    let mut added = Vec::new();
    if let (Some((_, idle_leader, idle_follower, _)), Some((_, scraped_leader, scraped_follower))) =
        (idle, idle_scraped)
    {
        let idle_rss = [idle_leader.rss_mib, idle_follower.rss_mib];
        for (count, leader, follower, _) in ours.iter().filter(|(count, ..)| *count > 0) {
            let rss = [leader.rss_mib, follower.rss_mib];
            push_added(
                &mut section,
                &mut added,
                *count,
                Measured::Idle,
                rss,
                idle_rss,
            );
        }
        for (count, leader, follower) in scraped_stages.iter().filter(|(count, ..)| *count > 0) {
            let idle = [scraped_leader, scraped_follower];
            let rss = [*leader, *follower];
            push_added(
                &mut section,
                &mut added,
                *count,
                Measured::Scraped,
                rss,
                idle,
            );
        }
        let (count, leader, follower) = applied;
        let rss = [leader.rss_mib, follower.rss_mib];
        push_added(
            &mut section,
            &mut added,
            count,
            Measured::KubectlApplied,
            rss,
            idle_rss,
        );
    }
    let peer_stages = peer_stages(peer, plan).await;
    for ((count, leader, follower, apiserver_cpu), theirs) in ours.into_iter().zip(&peer_stages) {
        section.rows.extend(rows(
            count,
            "leader",
            leader,
            apiserver_cpu,
            theirs.leader.clone(),
        ));
        section.rows.extend(rows(
            count,
            "follower",
            follower,
            apiserver_cpu,
            theirs.follower.clone(),
        ));
    }
    let peer_raw: Vec<_> = plan
        .footprint_counts
        .iter()
        .zip(&peer_stages)
        .map(|(count, stage)| json!({"checks": count, "peer": stage.to_json()}))
        .collect();
    section.raw = json!({"stages": raw, "added_per_1000_checks": added, "peer": peer_raw});
    if let Some(note) = peer.note(crate::peer::V2_LEADER_NOTE) {
        section.notes.push(note);
    }
    Ok(section)
}

/// Which replicas a figure of memory added is about.
#[derive(Clone, Copy)]
enum Measured {
    /// Idle, never read.
    Idle,
    /// Idle, after serving /metrics, /json and the page.
    Scraped,
    /// Idle, with checks created as `kubectl apply` creates them.
    KubectlApplied,
}

/// The VmRSS added per 1,000 checks above the idle replica of the same role, for the leader
/// and the follower (`rss` and `idle` in that order) at `count` checks: a row and a raw
/// figure each.
fn push_added(
    section: &mut Section,
    added: &mut Vec<Value>,
    count: usize,
    measured: Measured,
    rss: [f64; 2],
    idle: [f64; 2],
) {
    let thousands = count as f64 / 1000.0;
    for (i, role) in ["leader", "follower"].into_iter().enumerate() {
        let per = (rss[i] - idle[i]) / thousands;
        let mut raw = json!({"checks": count, "role": role, "rss_mib": rss[i],
                             "rss_mib_per_1000_checks": per});
        let what = match measured {
            Measured::Idle => format!("{count} checks, {role}"),
            Measured::Scraped => {
                raw["scraped"] = json!(true);
                format!("{count} checks, {role}, scraped")
            }
            Measured::KubectlApplied => {
                raw["kubectl_applied"] = json!(true);
                section.rows.push(Row::new(
                    format!("{count} kubectl-applied checks, {role}: VmRSS MiB"),
                    f1(rss[i]),
                ));
                format!("{count} kubectl-applied checks, {role}")
            }
        };
        added.push(raw);
        section.rows.push(Row::new(
            format!("{what}: VmRSS MiB added per 1,000 checks"),
            f1(per),
        ));
    }
}

/// How many times each replica is scraped before its memory is read again.
const SCRAPES: usize = 3;

/// How long after the last scrape the memory is read: a replica returns freed memory
/// [`kuberhealthy::controller::memory::QUIET`] after a burst of work.
const RELEASED: Duration = Duration::from_secs(3);

/// VmRSS (MiB) of each replica after it served `/metrics`, the HTML page and `/json`
/// [`SCRAPES`] times, a second apart, as a replica scraped by Prometheus and looked at does.
async fn scraped_rss(world: &World, replicas: &[usize], pids: &[u32]) -> Result<Vec<f64>> {
    for _ in 0..SCRAPES {
        for &i in replicas {
            let addr = world.addr_of(i);
            for path in ["/metrics", "/json"] {
                let response = kuberhealthy_e2e::http::get(addr, path).await?;
                anyhow::ensure!(
                    response.status == 200,
                    "GET {path} answered {}",
                    response.status
                );
            }
            let page =
                kuberhealthy_e2e::http::request(addr, "GET", "/", &[("Accept", "text/html")], b"")
                    .await?;
            anyhow::ensure!(
                page.status == 200,
                "GET / (text/html) answered {}",
                page.status
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Between scrapes, once the replica has handed the scrapes' freed memory back.
    tokio::time::sleep(RELEASED).await;
    pids.iter()
        .map(|&pid| Ok(procfs::memory(pid)?.rss_mib))
        .collect()
}

/// The footprint of `plan.footprint_applied` checks created as `kubectl apply` creates them
/// (the last-applied annotation holds each whole object again), on a control plane of their
/// own: a fresh leader and follower, memory after the same quiet and idle windows.
async fn applied_stage(plan: &Plan) -> Result<(usize, Idle, Idle)> {
    let count = plan.footprint_applied;
    let mut world = World::start("bench-footprint-applied").await?;
    world.create_idle_checks_applied(0..count, "24h").await?;
    world.spawn(0, DEFAULT_LEASE, &[]).await?;
    world.spawn(1, DEFAULT_LEASE, &[]).await?;
    let leader = world.settle(count).await?;
    let follower = 1 - leader;
    tokio::time::sleep(QUIET_BEFORE).await;
    let pids = [world.replica(leader)?.pid(), world.replica(follower)?.pid()];
    let (cpu, _) = idle_windows(world.plane(), &pids, plan).await?;
    let idle = |i: usize| -> Result<Idle> {
        let memory = procfs::memory(pids[i])?;
        Ok(Idle {
            rss_mib: memory.rss_mib,
            hwm_mib: memory.hwm_mib,
            cpu_pct: median(&cpu[i]),
        })
    };
    let measured = (count, idle(0)?, idle(1)?);
    world.stop_replicas();
    Ok(measured)
}

fn rows(
    count: usize,
    role: &str,
    idle: Idle,
    apiserver_cpu: f64,
    peer: Result<Idle, String>,
) -> Vec<Row> {
    let with_peer = |row: Row, ours: f64, theirs: Option<f64>| match (&peer, theirs) {
        (Ok(_), Some(t)) => row.peer(f1(t), ours, t),
        (Err(reason), _) => row.peer_text(reason.clone()),
        _ => row,
    };
    let p = peer.as_ref().ok().copied();
    vec![
        with_peer(
            Row::new(
                format!("{count} checks, {role}: VmRSS MiB"),
                f1(idle.rss_mib),
            ),
            idle.rss_mib,
            p.map(|p| p.rss_mib),
        ),
        with_peer(
            Row::new(
                format!("{count} checks, {role}: VmHWM MiB"),
                f1(idle.hwm_mib),
            ),
            idle.hwm_mib,
            p.map(|p| p.hwm_mib),
        ),
        with_peer(
            Row::new(
                format!("{count} checks, {role}: idle CPU % of a core"),
                f2(idle.cpu_pct),
            )
            .baseline(format!(
                "{} of kube-apiserver's {}%",
                ratio(idle.cpu_pct, apiserver_cpu),
                f2(apiserver_cpu)
            )),
            idle.cpu_pct,
            p.map(|p| p.cpu_pct),
        ),
    ]
}

/// `plan.idle_windows` CPU windows over `pids`; per pid the % of one core in each window,
/// and the API server's request rate (per second) over all windows.
pub async fn idle_windows(
    plane: &ControlPlane,
    pids: &[u32],
    plan: &Plan,
) -> Result<(Vec<Vec<f64>>, f64)> {
    let mut cpu = vec![Vec::new(); pids.len()];
    let before = apimetrics::snapshot(plane).await?;
    let began = Instant::now();
    for _ in 0..plan.idle_windows {
        let window = CpuWindow::start(pids)?;
        tokio::time::sleep(plan.idle_window).await;
        for (i, pct) in window.finish()?.into_iter().enumerate() {
            cpu[i].push(pct);
        }
    }
    let after = apimetrics::snapshot(plane).await?;
    let rate = after.since(&before).total() / began.elapsed().as_secs_f64();
    Ok((cpu, rate))
}
/// One stage of the peer's footprint.
#[derive(Debug, Clone)]
pub struct PeerStage {
    pub leader: Result<Idle, String>,
    pub follower: Result<Idle, String>,
}

impl PeerStage {
    fn absent(reason: &str) -> PeerStage {
        PeerStage {
            leader: Err(reason.to_string()),
            follower: Err(reason.to_string()),
        }
    }

    pub fn to_json(&self) -> Value {
        let one = |r: &Result<Idle, String>| match r {
            Ok(i) => json!({"rss_mib": i.rss_mib, "hwm_mib": i.hwm_mib, "cpu_pct": i.cpu_pct}),
            Err(e) => json!({"absent": e}),
        };
        json!({"leader": one(&self.leader), "follower": one(&self.follower)})
    }
}

/// The peer's footprint at each of `plan.footprint_counts`.
pub async fn peer_stages(peer: &Peer, plan: &Plan) -> Vec<PeerStage> {
    if let Some(reason) = peer.absent_reason() {
        return plan
            .footprint_counts
            .iter()
            .map(|_| PeerStage::absent(&reason))
            .collect();
    }
    match peer_stages_v2(peer, plan).await {
        Ok(stages) => stages,
        Err(err) => {
            let reason = format!("failed: {err:#}");
            plan.footprint_counts
                .iter()
                .map(|_| PeerStage::absent(&reason))
                .collect()
        }
    }
}

async fn peer_stages_v2(peer: &Peer, plan: &Plan) -> Result<Vec<PeerStage>> {
    let mut world = V2World::start(peer, "peer-footprint").await?;
    let mut stages = Vec::new();
    let mut created = 0;
    for &count in &plan.footprint_counts {
        world.create_idle_checks(created..count).await?;
        created = count;
        let mut stage = PeerStage::absent(V2_LEADER_NOT_IDLE);
        // The follower alone: no stand-in pod names it master.
        world.spawn(1)?;
        world.wait_listening(1).await?;
        if count == 0 {
            world.make_master(0).await?;
            world.spawn(0)?;
            world.wait_listening(0).await?;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut pids = vec![world.pid(1)?];
        if count == 0 {
            pids.push(world.pid(0)?);
        }
        let (cpu, _) = idle_windows_plane(&world, &pids, plan).await?;
        let idle = |i: usize| -> Result<Idle> {
            let mem = procfs::memory(pids[i])?;
            Ok(Idle {
                rss_mib: mem.rss_mib,
                hwm_mib: mem.hwm_mib,
                cpu_pct: crate::stats::median(&cpu[i]),
            })
        };
        stage.follower = Ok(idle(0)?);
        if count == 0 {
            stage.leader = Ok(idle(1)?);
            world.unmake_master(0).await?;
        }
        world.stop_all();
        stages.push(stage);
    }
    Ok(stages)
}

async fn idle_windows_plane(
    world: &V2World,
    pids: &[u32],
    plan: &Plan,
) -> Result<(Vec<Vec<f64>>, f64)> {
    idle_windows(world.cluster.control_plane(), pids, plan).await
}
