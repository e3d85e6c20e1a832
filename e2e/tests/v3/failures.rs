//! A HealthCheck whose image cannot be pulled fails at once, with the cause in `.status`
//! (v3 shows it only as a timeout, after the whole timeout), and one whose checker exits
//! without reporting fails a report grace after the exit, with what it printed. Both have a five-minute timeout, so
//! neither is the deadline at work.

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::support::checks::pod_spec;
use crate::support::{Scenario, ScenarioOptions, figures, ms, secs};
use crate::v3::{healthcheck, healthcheck_with, report_v3, wait_for_status};

/// "At once": from the start of the run to its failure being recorded.
const FAIL_WITHIN: f64 = 10.0;

#[tokio::test]
async fn an_image_pull_failure_and_an_exit_without_report_fail_the_run_within_seconds() {
    let mut options = ScenarioOptions::new("v3-failures");
    options.replicas = 2;
    let scenario = Scenario::start(options)
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    scenario
        .apply(&healthcheck_with(
            "pull-fails",
            "1h",
            "5m",
            pod_spec(
                "example.invalid/checker:missing",
                &report_v3(true, &[]),
                &[],
            ),
        ))
        .await
        .unwrap();
    scenario
        .apply(&healthcheck(
            "exits-1",
            "1h",
            "5m",
            "echo 'v3 checker: cannot reach the service'; exit 1",
        ))
        .await
        .unwrap();

    let pulled = wait_for_status(&scenario, "pull-fails", "its run failed", |s| {
        s.failure_count == 1 && !s.in_flight()
    })
    .await
    .unwrap();
    let pod = pulled.run_pod.clone().unwrap();
    assert_eq!(pulled.errors.len(), 1, "{:?}", pulled.errors);
    assert!(
        pulled.errors[0].starts_with(&format!(
            "{ns}/pull-fails: checker pod {pod} cannot start: container main is waiting with ErrImagePull"
        )),
        "{:?}",
        pulled.errors
    );
    let took = secs(
        pulled.run_started_at.unwrap(),
        pulled.run_finished_at.unwrap(),
    );
    assert!(
        took <= FAIL_WITHIN,
        "the image pull failure took {took:.3}s to be recorded (bound {FAIL_WITHIN}s)"
    );

    let exited = wait_for_status(&scenario, "exits-1", "its run failed", |s| {
        s.failure_count == 1 && !s.in_flight()
    })
    .await
    .unwrap();
    let pod = exited.run_pod.clone().unwrap();
    assert_eq!(
        exited.errors,
        [
            format!(
                "{ns}/exits-1: checker pod {pod} container main exited with code 1 (Error) without reporting"
            ),
            "last output of the checker: v3 checker: cannot reach the service\n".to_string()
        ],
        "what the checker printed follows the error (read through pods/log)"
    );
    let exit_took = secs(
        exited.run_started_at.unwrap(),
        exited.run_finished_at.unwrap(),
    );
    assert!(exit_took <= FAIL_WITHIN, "{exit_took:.3}s");

    // The page says the same.
    let page = scenario.status_page(0).await.unwrap();
    assert_eq!(
        page["CheckDetails"][format!("{ns}/pull-fails")]["Errors"],
        json!(pulled.errors)
    );

    figures::publish(
        "v3-failures",
        &json!({
            "bound_s": FAIL_WITHIN,
            "image_pull": {"error": pulled.errors[0], "run_start_to_failure_s": ms(took)},
            "exit_1": {"error": exited.errors[0], "run_start_to_failure_s": ms(exit_took)},
            "measured_at": Timestamp::now().to_string(),
        }),
    );
}
