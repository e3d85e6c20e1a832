//! No polling: while no check is due, the API server receives from the replicas only
//! Lease traffic and watch bookkeeping. Read from the API server's own
//! `apiserver_request_total`, by verb and resource.
//!
//! The API server also counts its own loopback requests, the pod runner's Node heartbeat
//! and the test's reads of `/metrics`. So the test measures the same window twice on the
//! same control plane: once before any replica runs (the baseline: harness and API
//! server) and once with three replicas idle after their one check ran (its next run is an
//! hour away). The test makes no request inside either window; each window's delta holds
//! exactly one `GET /metrics` of its own (the read that opened it, counted once answered).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kuberhealthy_e2e::{metrics, wait_until};
use serde_json::json;

use crate::support::checks::{self, REPORT_OK};
use crate::support::{RETRY_PERIOD, Scenario, ScenarioOptions, TIMEOUT, figures, ms, plus};

const WINDOW: Duration = Duration::from_secs(20);
/// Resources the replicas work with besides the Lease: while idle, only watch bookkeeping
/// may touch them.
const KUBERHEALTHY_RESOURCES: [&str; 5] = ["pods", "khchecks", "khstates", "khjobs", "events"];
/// Verbs of watch bookkeeping: re-establishing a watch, or relisting after one expired.
const BOOKKEEPING: [&str; 2] = ["WATCH", "LIST"];

/// `apiserver_request_total` summed by "VERB resource[/subresource]" (non-resource URLs
/// such as `/metrics` under "VERB (non-resource)").
async fn request_counts(scenario: &Scenario) -> BTreeMap<String, f64> {
    let text = scenario
        .cluster()
        .control_plane()
        .apiserver_metrics()
        .await
        .unwrap();
    let mut counts = BTreeMap::new();
    for sample in metrics::parse(&text).unwrap() {
        if sample.name != "apiserver_request_total" {
            continue;
        }
        let label = |k: &str| sample.labels.get(k).cloned().unwrap_or_default();
        let (resource, subresource) = (label("resource"), label("subresource"));
        let what = match (resource.is_empty(), subresource.is_empty()) {
            (true, _) => "(non-resource)".to_string(),
            (false, true) => resource,
            (false, false) => format!("{resource}/{subresource}"),
        };
        *counts
            .entry(format!("{} {what}", label("verb")))
            .or_insert(0.0) += sample.value;
    }
    counts
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// Counts the requests the API server answers during one window in which the test is idle.
async fn window(scenario: &Scenario) -> BTreeMap<String, f64> {
    let before = request_counts(scenario).await;
    tokio::time::sleep(WINDOW).await;
    let after = request_counts(scenario).await;
    delta(&before, &after)
}

fn verb(key: &str) -> &str {
    key.split(' ').next().unwrap_or_default()
}

fn resource(key: &str) -> &str {
    let what = key.split(' ').nth(1).unwrap_or_default();
    what.split('/').next().unwrap_or_default()
}

#[tokio::test]
async fn while_no_check_is_due_the_api_server_sees_only_lease_traffic_and_watches() {
    let mut scenario = Scenario::prepare(ScenarioOptions::new("idle"))
        .await
        .expect("preparing the scenario");
    let baseline = window(&scenario).await;

    scenario.start_replicas().await.unwrap();
    scenario
        .apply(&checks::check("hourly", "1h", "1m", REPORT_OK))
        .await
        .unwrap();
    let state = scenario
        .wait_for_state("hourly", "a passing run", |s| {
            s.ok && s.run_finished_at.is_some()
        })
        .await
        .unwrap();
    let ns = scenario.ns().to_string();
    for i in 0..scenario.replica_count() {
        wait_until("every status page to show the result", TIMEOUT, || async {
            let page = scenario.status_page(i).await?;
            Ok((page["CheckDetails"][format!("{ns}/hourly")]["OK"] == json!(true)).then_some(()))
        })
        .await
        .unwrap();
    }
    wait_until("the checker pod to finish", TIMEOUT, || async {
        let pods = scenario.checker_pods().await?;
        Ok(pods
            .iter()
            .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
            .then_some(()))
    })
    .await
    .unwrap();
    // Let the last writes of the run (its events) land before the window opens.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let opened = Timestamp::now();
    let next_run = plus(state.run_started_at.unwrap(), 3600.0);
    assert!(
        next_run > plus(opened, WINDOW.as_secs_f64()),
        "the check must not be due during the window"
    );
    let idle = window(&scenario).await;

    // Classify every (verb, resource) the API server answered during the idle window.
    let keys: BTreeSet<&String> = baseline.keys().chain(idle.keys()).collect();
    let mut table = Vec::new();
    let mut lease_attributed: BTreeMap<String, f64> = BTreeMap::new();
    let mut violations = Vec::new();
    for key in keys {
        let (b, i) = (
            baseline.get(key).copied().unwrap_or(0.0),
            idle.get(key).copied().unwrap_or(0.0),
        );
        let class = if resource(key) == "leases" {
            lease_attributed.insert(key.clone(), i - b);
            "lease traffic"
        } else if BOOKKEEPING.contains(&verb(key)) {
            "watch bookkeeping"
        } else if KUBERHEALTHY_RESOURCES.contains(&resource(key)) {
            if i > 0.0 {
                violations.push(format!("{key}: {i} requests while no check was due"));
            }
            "kuberhealthy work (must be 0)"
        } else {
            // The harness and the API server itself: as many as without replicas (a
            // periodic request may fall into one window and not the other).
            if i > b + 1.0 {
                violations.push(format!(
                    "{key}: {i} requests with the replicas idle, {b} without them"
                ));
            }
            "harness or API server (as in the baseline)"
        };
        table.push(json!({ "request": key, "baseline": b, "idle_replicas": i, "attributed_to_replicas": i - b, "class": class }));
    }
    let lines: Vec<String> = table
        .iter()
        .map(|row| {
            format!(
                "{:<40} baseline {:>5} idle {:>5} replicas {:>+6}  {}",
                row["request"].as_str().unwrap(),
                row["baseline"],
                row["idle_replicas"],
                row["attributed_to_replicas"],
                row["class"].as_str().unwrap()
            )
        })
        .collect();
    println!(
        "apiserver_request_total over {WINDOW:?}, without replicas (baseline) and with three idle replicas:\n{}",
        lines.join("\n")
    );
    assert!(
        violations.is_empty(),
        "the idle replicas made requests other than Lease traffic and watch bookkeeping:\n{}\n\n{}",
        violations.join("\n"),
        lines.join("\n")
    );
    // Lease traffic stays within client-go's cadence: per replica per retry period, one
    // read and (for the leader) one write.
    let lease_total: f64 = lease_attributed.values().sum();
    let per_second = lease_total / WINDOW.as_secs_f64();
    let bound = scenario.replica_count() as f64 * 2.0 / RETRY_PERIOD.as_secs_f64();
    assert!(
        per_second <= bound,
        "{per_second:.1} Lease requests per second from three replicas (bound {bound})"
    );

    figures::publish(
        "idle",
        &json!({
            "window_s": WINDOW.as_secs_f64(),
            "replicas": scenario.replica_count(),
            "lease_timings": { "duration_s": 3, "renew_deadline_s": 2, "retry_period_s": ms(RETRY_PERIOD.as_secs_f64()) },
            "requests": table,
            "lease_requests_attributed_to_replicas": lease_attributed,
            "lease_requests_per_second": ms(per_second),
            "lease_requests_per_second_bound": bound,
            "kuberhealthy_resource_requests_other_than_watch": 0,
        }),
    );
}
