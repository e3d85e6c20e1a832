//! Scenario 4: what a run costs the API server, from its own `apiserver_request_total`
//! (delta over a window in which runs complete), and what idling with many checks costs.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::DynamicObject;
use kuberhealthy_e2e::{ControlPlane, wait_until};
use serde_json::json;

use crate::Plan;
use crate::apimetrics::{self, Requests};

use crate::peer::{Peer, V2World};
use crate::report::{Row, Section, f1, f2, ratio};
use crate::world::{self, DEFAULT_LEASE, REPORT_OK, TIMEOUT, World, check, check_name};

pub const RUN_INTERVAL: &str = "10s";
const RUN_TIMEOUT: &str = "30s";
const QUIET_BEFORE: Duration = Duration::from_secs(5);

/// Requests during a window with runs completing.
#[derive(Debug, Clone)]
pub struct RunCost {
    pub requests: Requests,
    /// Runs whose result was written in the window (from the khstates' history).
    pub completed_runs: f64,
    /// Checker pods created in the window.
    pub pods_created: f64,
    pub window: Duration,
    /// The window, as the API server's clock reads it (for the audit log).
    pub from: Timestamp,
    pub to: Timestamp,
}

impl RunCost {
    /// Requests per run, counting runs as `runs`.
    pub fn per_run(&self, runs: f64) -> (f64, std::collections::BTreeMap<String, f64>) {
        let by_verb = self
            .requests
            .by_verb()
            .into_iter()
            .map(|(k, v)| (k, v / runs))
            .collect();
        (self.requests.total() / runs, by_verb)
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "window_s": self.window.as_secs_f64(),
            "completed_runs": self.completed_runs,
            "pods_created": self.pods_created,
            "requests": self.requests.to_json(),
        })
    }
}

pub async fn run(plan: &Plan, peer: &Peer) -> Result<Section> {
    let k = plan.apicost_checks;
    let mut section = Section::new("apicost", "4. API-server cost");
    section.setup.push(format!(
        "{k} checks due every {RUN_INTERVAL} whose checker (sh + curl, run by the pod runner) reports \
         OK; a leader and a follower (Lease {}); after every check has finished two runs, a {} s \
         window; requests are the delta of the API server's apiserver_request_total (resource \
         requests only: the bench's own reads of /metrics are excluded), divided by the checker \
         pods created in the window (each run creates one); the pod runner's requests (the \
         kubelet's and the scheduler's share: pods/binding, pods/status, nodes) are included",
        DEFAULT_LEASE.describe(),
        plan.apicost_window.as_secs()
    ));
    section.setup.push(format!(
        "idle: {} checks with interval 24h and fresh khstates, a leader and a follower, {} s quiet, \
         then a {} s window",
        plan.apicost_idle_checks,
        QUIET_BEFORE.as_secs(),
        plan.apicost_idle_window.as_secs()
    ));

    let (ours, own) = {
        let mut world = World::start_audited("bench-apicost").await?;
        let checks = (0..k)
            .map(|i| check(&check_name(i), RUN_INTERVAL, RUN_TIMEOUT, REPORT_OK))
            .collect();
        world.create_all(&world::khchecks(), checks).await?;
        world.spawn(0, DEFAULT_LEASE, &[]).await?;
        world.spawn(1, DEFAULT_LEASE, &[]).await?;
        world.settle(k).await?;
        wait_for_history(&world, 2).await?;
        let cost = measure_runs(&world, plan.apicost_window).await?;
        let log = world
            .plane()
            .audit_log_path()
            .context("the audited control plane has no audit log")?;
        // The same window as the metrics' delta, so its runs are the same runs.
        let own = own_requests(&log, cost.from, cost.to)?;
        (cost, own)
    };
    let theirs = peer_cost(peer, plan).await;

    let runs = ours.pods_created;
    let (total, by_verb) = ours.per_run(runs);
    let peer_per_run = theirs
        .as_ref()
        .map(|t| t.per_run(t.pods_created))
        .map_err(Clone::clone);
    let mut row = Row::new("requests per run, all", f1(total));
    row = match &peer_per_run {
        Ok((t, _)) => row.peer(f1(*t), total, *t),
        Err(reason) => row.peer_text(reason.clone()),
    };
    section.rows.push(row);
    let mut verbs: Vec<String> = by_verb.keys().cloned().collect();
    if let Ok((_, theirs)) = &peer_per_run {
        verbs.extend(theirs.keys().cloned());
    }
    verbs.sort();
    verbs.dedup();
    for verb in verbs {
        let v = by_verb.get(&verb).copied().unwrap_or(0.0);
        let mut row = Row::new(format!("requests per run, {verb}"), f2(v));
        if let Ok((_, theirs)) = &peer_per_run {
            let t = theirs.get(&verb).copied().unwrap_or(0.0);
            row = row.peer(f2(t), v, t);
        }
        section.rows.push(row);
    }
    let runner = ours
        .requests
        .filter(|_, r| {
            r == "pods/binding" || r == "pods/status" || r == "nodes" || r == "nodes/status"
        })
        .total();
    section.rows.push(Row::new(
        "of which the pod runner (kubelet/scheduler role), per run",
        f2(runner / runs),
    ));
    // The controller's own requests, told apart by the replicas' user agent in the audit log;
    // its runs are the pods it created (201) in the window.
    let own_runs = own
        .answered
        .get(&("create".to_string(), "pods".to_string()))
        .copied()
        .unwrap_or(0.0)
        .max(1.0);
    let own_per_run: f64 = own
        .all
        .iter()
        .filter(|((_, resource), _)| resource != "leases")
        .map(|(_, n)| n)
        .sum::<f64>()
        / own_runs;
    section.rows.push(Row::new(
        "the controller's own requests per run (replicas' user agent, audit log; Leases apart)",
        f2(own_per_run),
    ));
    for ((verb, resource), n) in &own.all {
        let per = if resource == "leases" {
            format!("{} per second", f2(n / plan.apicost_window.as_secs_f64()))
        } else {
            f2(n / own_runs)
        };
        section
            .rows
            .push(Row::new(format!("  own: {verb} {resource}, per run"), per));
    }
    for ((verb, resource, code), n) in &own.refused {
        section.rows.push(Row::new(
            format!("  own, answered {code}: {verb} {resource}, per run"),
            f2(n / own_runs),
        ));
    }
    section.rows.push(Row::new(
        "runs in the window: pods created / results written",
        format!("{} / {}", ours.pods_created, ours.completed_runs),
    ));

    // Idle with many checks.
    let idle = {
        let mut world = World::start("bench-apicost-idle").await?;
        world
            .create_idle_checks(0..plan.apicost_idle_checks, "24h")
            .await?;
        world.spawn(0, DEFAULT_LEASE, &[]).await?;
        world.spawn(1, DEFAULT_LEASE, &[]).await?;
        world.settle(plan.apicost_idle_checks).await?;
        tokio::time::sleep(QUIET_BEFORE).await;
        let before = apimetrics::snapshot(world.plane()).await?;
        tokio::time::sleep(plan.apicost_idle_window).await;
        let after = apimetrics::snapshot(world.plane()).await?;
        after.since(&before)
    };
    let secs = plan.apicost_idle_window.as_secs_f64();
    let idle_rate = idle.total() / secs;
    let theirs_idle = peer.idle_requests().await;
    let mut row = Row::new(
        format!(
            "idle, {} checks: requests per second (leader + follower)",
            plan.apicost_idle_checks
        ),
        f2(idle_rate),
    );
    row = match &theirs_idle {
        Ok(t) => row.peer(f2(t.total() / secs), idle_rate, t.total() / secs),
        Err(reason) => row.peer_text(reason.clone()),
    };
    section.rows.push(row);
    for (verb, count) in idle.by_verb() {
        section.rows.push(Row::new(
            format!(
                "idle, {} checks: {verb} per second",
                plan.apicost_idle_checks
            ),
            f2(count / secs),
        ));
    }
    if let Some(note) = peer.note(crate::peer::V2_LEADER_NOTE) {
        section.notes.push(note);
    }
    if let Ok((t, _)) = &peer_per_run {
        section.notes.push(format!(
            "per run, kuberhealthy-rs makes {} the requests of the peer",
            ratio(total, *t)
        ));
    }
    section.raw = json!({
        "own_requests_by_user_agent": own
            .all
            .iter()
            .map(|((verb, resource), n)| json!({"verb": verb, "resource": resource, "count": n}))
            .collect::<Vec<_>>(),
        "own_requests_refused": own
            .refused
            .iter()
            .map(|((verb, resource, code), n)| {
                json!({"verb": verb, "resource": resource, "code": code, "count": n})
            })
            .collect::<Vec<_>>(),
        "own_runs_pods_created": own_runs,
        "own_requests_per_run_without_leases": own_per_run,
        "runs": ours.to_json(),
        "idle": {"window_s": secs, "requests": idle.to_json()},
        "peer_runs": theirs.as_ref().map(RunCost::to_json).unwrap_or_else(|e| json!(e)),
        "peer_idle": theirs_idle.as_ref().map(Requests::to_json).unwrap_or_else(|e| json!(e)),
    });
    Ok(section)
}

/// Requests made by the replicas (user agent `kuberhealthy/...`) that completed between `t0`
/// and `t1`, by (verb, resource): all of them, those answered 2xx, and the others by code.
#[derive(Debug, Default)]
struct OwnRequests {
    all: BTreeMap<(String, String), f64>,
    answered: BTreeMap<(String, String), f64>,
    refused: BTreeMap<(String, String, u16), f64>,
}

fn own_requests(log: &std::path::Path, t0: Timestamp, t1: Timestamp) -> Result<OwnRequests> {
    let mut own = OwnRequests::default();
    for event in kuberhealthy_e2e::audit::read(log)? {
        if event.stage != "ResponseComplete"
            || !event.user_agent.starts_with("kuberhealthy/")
            || event.stage_timestamp < t0
            || event.stage_timestamp > t1
        {
            continue;
        }
        let key = (event.verb.clone(), event.resource());
        *own.all.entry(key.clone()).or_insert(0.0) += 1.0;
        match event.response_status.as_ref().map(|s| s.code) {
            Some(code) if !(200..300).contains(&code) => {
                *own.refused.entry((key.0, key.1, code)).or_insert(0.0) += 1.0;
            }
            _ => *own.answered.entry(key).or_insert(0.0) += 1.0,
        }
    }
    Ok(own)
}

/// Waits until every khstate of the world holds at least `runs` finished runs.
pub async fn wait_for_history(world: &World, runs: usize) -> Result<()> {
    kuberhealthy_e2e::wait_until(
        &format!("every check to finish {runs} runs"),
        world::TIMEOUT,
        || async {
            let states = world.list_states().await?;
            Ok(states
                .iter()
                .all(|s| history(s).len() >= runs)
                .then_some(()))
        },
    )
    .await
}

fn history(state: &DynamicObject) -> Vec<serde_json::Value> {
    state.data["spec"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Requests over `window`, and the runs that completed in it.
pub async fn measure_runs(world: &World, window: Duration) -> Result<RunCost> {
    let mut cost = measure_window(world.plane(), window).await?;
    cost.completed_runs = 0.0;
    for state in world.list_states().await? {
        for run in history(&state) {
            if let Some(finished) = run["finishedAt"]
                .as_str()
                .and_then(|s| s.parse::<Timestamp>().ok())
                && finished >= cost.from
                && finished <= cost.to
            {
                cost.completed_runs += 1.0;
            }
        }
    }
    Ok(cost)
}

/// The API server's requests over `window` (completed runs not counted: NaN).
async fn measure_window(plane: &ControlPlane, window: Duration) -> Result<RunCost> {
    let before = apimetrics::snapshot(plane).await?;
    let from = Timestamp::now();
    tokio::time::sleep(window).await;
    let to = Timestamp::now();
    let after = apimetrics::snapshot(plane).await?;
    let requests = after.since(&before);
    let pods_created = requests
        .0
        .get(&("POST".to_string(), "pods".to_string()))
        .copied()
        .unwrap_or(0.0);
    Ok(RunCost {
        requests,
        completed_runs: f64::NAN,
        pods_created,
        window,
        from,
        to,
    })
}

/// The peer's requests per run: a master and a follower, the same checks as ours.
pub async fn peer_cost(peer: &Peer, plan: &Plan) -> Result<RunCost, String> {
    if let Some(reason) = peer.absent_reason() {
        return Err(reason);
    }
    async {
        let mut world = V2World::start(peer, "peer-apicost").await?;
        let checks = (0..plan.apicost_checks)
            .map(|i| check(&check_name(i), RUN_INTERVAL, "30s", REPORT_OK))
            .collect();
        world.create_all(&world::khchecks(), checks).await?;
        world.make_master(0).await?;
        world.spawn(0)?;
        world.spawn(1)?;
        // Every check reported twice: two results written after the master started.
        let states: Api<kube::api::DynamicObject> = Api::namespaced_with(
            world.client.clone(),
            world.ctx.namespace(),
            &world::khstates(),
        );
        let start = k8s_openapi::jiff::Timestamp::now();
        let wait_for_results = || async {
            let list = states.list(&Default::default()).await?;
            let fresh = list
                .items
                .iter()
                .filter(|s| {
                    s.data["spec"]["LastRun"]
                        .as_str()
                        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                        .is_some_and(|t| t > start)
                })
                .count();
            Ok((fresh >= plan.apicost_checks).then_some(()))
        };
        wait_until("the peer's checks to report", TIMEOUT, wait_for_results).await?;
        let cost = measure_window(world.cluster.control_plane(), plan.apicost_window).await?;
        if cost.pods_created == 0.0 {
            bail!("the peer created no checker pod in the window");
        }
        Ok(cost)
    }
    .await
    .map_err(|e: anyhow::Error| format!("failed: {e:#}"))
}
