//! `singleRunOnly: true` runs once, as v3 documents (v3.0.13 itself ignores it): while a
//! HealthCheck with the same interval beside it runs again and again, the single-run one has
//! one run and one pod, is not shown as due or stale, and its next run never comes.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::json;

use crate::support::{Scenario, ScenarioOptions, figures};
use crate::v3::{healthcheck, report_v3, wait_for_status};

#[tokio::test]
async fn single_run_only_runs_once() {
    let mut options = ScenarioOptions::new("v3-single-run");
    options.replicas = 2;
    let scenario = Scenario::start(options)
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let mut once = healthcheck("once", "2s", "30s", &report_v3(true, &[]));
    once["spec"]["singleRunOnly"] = json!(true);
    scenario.apply(&once).await.unwrap();
    scenario
        .apply(&healthcheck("every-2s", "2s", "30s", &report_v3(true, &[])))
        .await
        .unwrap();

    let first = wait_for_status(&scenario, "once", "its run passed", |s| {
        s.success_count == 1 && !s.in_flight()
    })
    .await
    .unwrap();
    // The control beside it then runs three more times: time enough for three more runs of
    // the single-run HealthCheck, had it been scheduled like the control.
    let control_then = crate::v3::status(&scenario, "every-2s")
        .await
        .unwrap()
        .unwrap_or_default()
        .success_count;
    let runs_after = wait_for_status(&scenario, "every-2s", "three more runs", |s| {
        s.success_count >= control_then + 3
    })
    .await
    .unwrap();

    let once_now = wait_for_status(&scenario, "once", "its status", |_| true)
        .await
        .unwrap();
    assert_eq!(once_now.success_count, 1, "{once_now:?}");
    assert_eq!(once_now.run_uuid, first.run_uuid, "no second run");
    assert!(!once_now.in_flight());
    let pods: Vec<String> = scenario
        .checker_pods()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.labels().get("healthcheck").map(String::as_str) == Some("once"))
        .map(|p| p.name_any())
        .collect();
    assert_eq!(pods, [first.run_pod.clone().unwrap()], "one pod");

    let page = scenario.status_page(0).await.unwrap();
    let entry = &page["CheckDetails"][format!("{ns}/once")];
    assert_eq!(entry["OK"], true, "{entry}");
    assert!(entry.get("nextRunAt").is_none(), "nothing is due: {entry}");
    let v3: serde_json::Value =
        serde_json::from_str(&scenario.get(0, "/v3/json").await.unwrap()).unwrap();
    assert!(v3["CheckDetails"]["once"].get("nextRunUnix").is_none());

    figures::publish(
        "v3-single-run",
        &json!({
            "single_run_runs": once_now.success_count,
            "control_runs_meanwhile": runs_after.success_count,
            "measured_at": Timestamp::now().to_string(),
        }),
    );
}
