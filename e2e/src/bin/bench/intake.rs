//! Scenario 3: report intake. Many checks with a run in flight whose checker pods just
//! wait (`sleep`); this process plays their checkers, reading each run's `KH_RUN_UUID` from
//! the khstate and POSTing `{"OK": true}` with header `kh-run-uuid`. A report is answered 200
//! only once its result is written, so the POST's latency is end to end. Next to it, in the
//! same run, the API server's raw write rate for the same objects: merge patches of the same
//! khstates by an admin client at the same concurrency.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use kuberhealthy_e2e::slots;
use serde_json::json;

use crate::Plan;
use crate::load::{self, Request};
use crate::report::{Row, Section, f0, f1};
use crate::stats::{Summary, median};
use crate::world::{self, DEFAULT_LEASE, World, check, check_name};

const INTERVAL: &str = "20s";

pub async fn run(plan: &Plan) -> Result<Section> {
    let n = plan.intake_checks;
    let c = plan.intake_concurrency;
    let mut section = Section::new("intake", "3. Report intake");
    section.setup.push(format!(
        "{n} checks due every {INTERVAL} whose checker pods run `sleep 3600` (they never report \
         themselves, and the bench deletes them once it has reported for them, as a checker \
         exits); a leader and a follower (Lease {}, KH_MAX_STARTS_PER_SECOND=100); per trial, \
         once all {n} runs are in flight: first {n} merge patches (an annotation) of those khstates \
         by an admin client, then {n} reports (POST /externalCheckStatus, kh-run-uuid from each \
         khstate, alternating between the two replicas), both at concurrency {c}; {} trials; \
         rates are medians of the trials, latencies pooled",
        DEFAULT_LEASE.describe(),
        plan.intake_trials
    ));
    let mut world = World::start("bench-intake").await?;
    let checks = (0..n)
        .map(|i| check(&check_name(i), INTERVAL, "10m", &["sleep", "3600"]))
        .collect();
    world.create_all(&world::khchecks(), checks).await?;
    let env = [("KH_MAX_STARTS_PER_SECOND", "100")];
    world.spawn(0, DEFAULT_LEASE, &env).await?;
    world.spawn(1, DEFAULT_LEASE, &env).await?;
    // Checks that never ran are hidden on the page: wait for the leader, then for the runs.
    world.settle_leader().await?;
    let addrs = [world.addr_of(0), world.addr_of(1)];

    let mut reported: HashSet<String> = HashSet::new();
    let (mut report_rates, mut patch_rates) = (Vec::new(), Vec::new());
    let (mut report_lat, mut patch_lat) = (Vec::new(), Vec::new());
    let mut raw_trials = Vec::new();
    for trial in 0..plan.intake_trials {
        let runs = wait_for_runs(&world, n, &reported).await?;

        // The API server's raw write rate for the same objects.
        let api: Api<DynamicObject> =
            Api::namespaced_with(world.client.clone(), world.namespace(), &world::khstates());
        let began = Instant::now();
        let latencies: Vec<Result<f64>> = futures::stream::iter(runs.iter().enumerate())
            .map(|(i, (name, _))| {
                let api = api.clone();
                async move {
                    let patch = json!({"metadata": {"annotations": {"bench/touched": format!("{trial}-{i}")}}});
                    let sent = Instant::now();
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                    Ok(sent.elapsed().as_secs_f64() * 1e3)
                }
            })
            .buffer_unordered(c)
            .collect()
            .await;
        let patch_elapsed = began.elapsed();
        let latencies: Vec<f64> = latencies.into_iter().collect::<Result<_>>()?;
        patch_rates.push(latencies.len() as f64 / patch_elapsed.as_secs_f64());
        patch_lat.extend(latencies.iter().copied());

        // The reports, end to end.
        let uuids: Arc<Vec<String>> = Arc::new(runs.iter().map(|(_, u)| u.clone()).collect());
        let per_replica: Vec<Vec<usize>> = (0..2)
            .map(|p| (0..n).filter(|i| i % 2 == p).collect())
            .collect();
        let mut results = Vec::new();
        let began = Instant::now();
        let mut tasks = Vec::new();
        for (p, addr) in addrs.iter().enumerate() {
            let uuids = uuids.clone();
            let mine = per_replica[p].clone();
            let count = mine.len();
            tasks.push(tokio::spawn(load::run_with(
                *addr,
                c / 2,
                count,
                world::TIMEOUT,
                move |k| Request {
                    method: "POST",
                    path: "/externalCheckStatus".into(),
                    headers: vec![
                        ("kh-run-uuid".into(), uuids[mine[k]].clone()),
                        ("Content-Type".into(), "application/json".into()),
                    ],
                    body: br#"{"OK": true}"#.to_vec(),
                },
            )));
        }
        for task in tasks {
            results.push(task.await?);
        }
        let elapsed = began.elapsed();
        let ok: usize = results.iter().map(|r| r.latencies_ms.len()).sum();
        let errors: usize = results.iter().map(|r| r.errors).sum();
        ensure!(
            errors == 0,
            "trial {trial}: {errors} reports failed: {}",
            results
                .iter()
                .find_map(|r| r.first_error.clone())
                .unwrap_or_default()
        );
        report_rates.push(ok as f64 / elapsed.as_secs_f64());
        report_lat.extend(results.iter().flat_map(|r| r.latencies_ms.iter().copied()));
        reported.extend(uuids.iter().cloned());
        // A checker exits once it has reported; these wait, so end them as it would: their
        // pods would otherwise hold the pod network's addresses through the next trial.
        end_checkers(&world, &uuids).await?;
        raw_trials.push(json!({
            "reports_per_second": ok as f64 / elapsed.as_secs_f64(),
            "patches_per_second": latencies.len() as f64 / patch_elapsed.as_secs_f64(),
            "reports": results.iter().map(load::LoadResult::to_json).collect::<Vec<_>>(),
        }));
    }
    let reports = median(&report_rates);
    let patches = median(&patch_rates);
    let rl = Summary::of(&report_lat);
    let pl = Summary::of(&patch_lat);
    section.rows.push(
        Row::new(format!("reports persisted per second, c={c}"), f0(reports))
            .baseline(format!("{:.2}x of the raw patch rate", reports / patches)),
    );
    section.rows.push(
        Row::new(
            "report latency end to end, p50 / p99 ms",
            format!("{} / {}", f1(rl.p50), f1(rl.p99)),
        )
        .baseline(format!(
            "{:.2}x / {:.2}x of a raw patch",
            rl.p50 / pl.p50,
            rl.p99 / pl.p99
        )),
    );
    section.rows.push(Row::new(
        format!("baseline: admin merge patches of the same khstates per second, c={c}"),
        f0(patches),
    ));
    section.rows.push(Row::new(
        "baseline: merge patch latency, p50 / p99 ms",
        format!("{} / {}", f1(pl.p50), f1(pl.p99)),
    ));
    section.raw = json!({
        "trials": raw_trials,
        "report_latency_ms": rl.to_json(),
        "patch_latency_ms": pl.to_json(),
        "reports_per_second_median": reports,
        "patches_per_second_median": patches,
    });
    Ok(section)
}

/// Deletes the checker pods of the runs `uuids` (at once: their reports are in).
async fn end_checkers(world: &World, uuids: &[String]) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), world.namespace());
    let listed = pods
        .list(&ListParams::default().labels(slots::LABEL_RUN_ID))
        .await?;
    let ended: Vec<String> = listed
        .items
        .iter()
        .filter(|p| {
            p.labels()
                .get(slots::LABEL_RUN_ID)
                .is_some_and(|run| uuids.contains(run))
        })
        .map(|p| p.name_any())
        .collect();
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    let results: Vec<Result<()>> = futures::stream::iter(ended)
        .map(|name| {
            let (pods, now) = (pods.clone(), now.clone());
            async move {
                pods.delete(&name, &now).await?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Waits until every khstate holds a run in flight that was not reported yet; returns
/// (khstate name, run uuid) of each.
async fn wait_for_runs(
    world: &World,
    n: usize,
    reported: &HashSet<String>,
) -> Result<Vec<(String, String)>> {
    kuberhealthy_e2e::wait_until(&format!("{n} runs in flight"), world::TIMEOUT, || async {
        let states = world.list_states().await?;
        let runs: Vec<(String, String)> = states
            .iter()
            .filter_map(|s| {
                let spec = &s.data["spec"];
                let uuid = spec["uuid"].as_str()?;
                let in_flight = spec["runStartedAt"].is_string() && spec["runFinishedAt"].is_null();
                (in_flight && !reported.contains(uuid)).then(|| {
                    (
                        s.metadata.name.clone().unwrap_or_default(),
                        uuid.to_string(),
                    )
                })
            })
            .collect();
        Ok((runs.len() == n).then_some(runs))
    })
    .await
}
