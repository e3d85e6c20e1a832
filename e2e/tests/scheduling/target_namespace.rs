//! `TARGET_NAMESPACE` restricts scheduling to one namespace, under namespace-scoped RBAC
//! (`kuberhealthy rbac --namespace NS --target-namespace NS`): checks there run, a check in
//! another namespace never does, and the API server refuses nothing the replicas ask.

use kuberhealthy_e2e::{accounts, metrics};
use serde_json::json;

use crate::support::checks::{self, REPORT_OK};
use crate::support::record::Recorder;
use crate::support::{Scenario, ScenarioOptions, TIMEOUT, figures};

/// The outside check's interval; the test watches it for several of these.
const OUTSIDE_INTERVAL: &str = "2s";
/// Runs of the inside check (interval 2 s) to wait for: the outside check would have been
/// due on every one of them.
const INSIDE_RUNS: usize = 4;

#[tokio::test]
async fn target_namespace_restricts_scheduling_under_namespaced_rbac() {
    let mut options = ScenarioOptions::new("target-ns");
    options.namespaced = true;
    let mut scenario = Scenario::prepare(options)
        .await
        .expect("preparing the scenario");
    // Waiting for the RBAC grant to apply may have been refused: count from here.
    let forbidden_before = forbidden_answers(&scenario).await;
    scenario.start_replicas().await.unwrap();
    let ns = scenario.ns().to_string();
    let other = accounts::unique_namespace("outside");
    accounts::create_namespace(&scenario.client(), &other)
        .await
        .unwrap();
    let inside = Recorder::start(scenario.client(), &ns).await.unwrap();
    let outside = Recorder::start(scenario.client(), &other).await.unwrap();

    let mut outside_check = checks::check("outside", OUTSIDE_INTERVAL, "1m", REPORT_OK);
    outside_check["metadata"]["namespace"] = json!(other);
    scenario.apply(&outside_check).await.unwrap();
    scenario
        .apply(&checks::check("inside", "2s", "1m", REPORT_OK))
        .await
        .unwrap();

    let runs = inside
        .wait_for(
            &format!("{INSIDE_RUNS} passing runs of the inside check"),
            TIMEOUT,
            |r| {
                let runs = r.finished_runs_of("inside");
                (runs.len() >= INSIDE_RUNS).then_some(runs)
            },
        )
        .await
        .unwrap();
    assert!(
        runs.iter().all(|r| r.ok == Some(true)),
        "every inside run passes: {runs:?}"
    );
    let seen_outside = outside.snapshot();
    assert!(
        seen_outside.pods.is_empty() && seen_outside.runs.is_empty(),
        "the check outside TARGET_NAMESPACE ran: pods {:?}, runs {:?}",
        seen_outside.pods,
        seen_outside.runs
    );
    assert!(
        scenario.khstate("outside").await.unwrap().is_none(),
        "no khstate named outside in the target namespace"
    );

    let page = scenario.status_page(0).await.unwrap();
    let keys: Vec<String> = page["CheckDetails"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, [format!("{ns}/inside")], "{page}");

    // Namespace-scoped RBAC suffices: the API server refused no request of the replicas.
    let forbidden = forbidden_answers(&scenario).await - forbidden_before;
    let logs = scenario.all_replica_logs();
    let forbidden_lines: Vec<&str> = logs
        .lines()
        // A refusal as kube logs it ("... is forbidden", `Forbidden`, `code: 403`); a bare
        // "403" would also match timestamps such as 21:27:48.403604Z.
        .filter(|l| {
            l.to_lowercase().contains("forbidden") || l.contains("code: 403") || l.contains(" 403 ")
        })
        .collect();
    assert!(
        forbidden == 0.0 && forbidden_lines.is_empty(),
        "requests were refused: {forbidden} answers 403; log lines: {forbidden_lines:#?}"
    );

    figures::publish(
        "target-namespace",
        &json!({
            "target_namespace": ns,
            "outside_namespace": other,
            "inside_runs": runs.len(),
            "outside_pods": seen_outside.pods.len(),
            "outside_runs": seen_outside.runs.len(),
            "apiserver_403_answers": forbidden,
        }),
    );
}

/// How many requests the API server answered 403 so far.
async fn forbidden_answers(scenario: &Scenario) -> f64 {
    let text = scenario
        .cluster()
        .control_plane()
        .apiserver_metrics()
        .await
        .unwrap();
    let samples = metrics::parse(&text).unwrap();
    metrics::sum(&samples, "apiserver_request_total", &[("code", "403")])
}
