//! A live v2 check converted with `kuberhealthy convert` keeps its timer and its last result:
//! the HealthCheck applied beside it starts from the check's khstate, the check is deleted,
//! and the HealthCheck's first run comes one interval after the check's last start, not at
//! once.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kuberhealthy_e2e::wait_until;
use serde_json::json;

use crate::support::checks::{self, REPORT_OK};
use crate::support::{Scenario, ScenarioOptions, TIMEOUT, figures, khchecks, ms, secs};
use crate::v3::wait_for_status;

const INTERVAL: f64 = 20.0;
/// How late the first run of the HealthCheck may start after its due time.
const LATE_TOLERANCE: f64 = 2.5;

/// `kuberhealthy convert` of `manifest`, as a user would run it on the check's file.
fn convert(scenario: &Scenario, manifest: &serde_json::Value) -> String {
    let path = scenario.ctx.log_dir().join("migrate-check.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(manifest).unwrap()).unwrap();
    let binary = kuberhealthy_e2e::binaries::kuberhealthy().unwrap();
    let output = std::process::Command::new(binary)
        .arg("convert")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kuberhealthy convert: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn a_converted_v2_check_keeps_its_timer_and_its_last_result() {
    let mut options = ScenarioOptions::new("v3-migration");
    options.replicas = 2;
    let scenario = Scenario::start(options)
        .await
        .expect("starting the scenario");
    let check = checks::check("migrate", "20s", "30s", REPORT_OK);
    scenario.apply(&check).await.unwrap();
    let state = scenario
        .wait_for_state("migrate", "its first run finished OK", |s| {
            s.run_finished_at.is_some() && s.ok
        })
        .await
        .unwrap();
    let last_start = state.run_started_at.unwrap();

    let converted = convert(&scenario, &check);
    assert!(converted.contains("kind: HealthCheck"), "{converted}");
    scenario.ctx.apply_yaml(&converted).await.unwrap();
    scenario.delete(&khchecks(), "migrate").await.unwrap();
    let applied_at = Timestamp::now();

    let seeded = wait_for_status(&scenario, "migrate", "it took the check's timer", |s| {
        s.run_started_at.is_some()
    })
    .await
    .unwrap();
    assert_eq!(seeded.run_started_at, Some(last_start), "{seeded:?}");
    assert_eq!(seeded.last_run_unix, last_start.as_second());
    assert!(
        seeded.ok && seeded.errors.is_empty(),
        "the last result: {seeded:?}"
    );
    assert_eq!(seeded.run_uuid, None, "no run of its own yet");
    wait_until("the check's khstate to be deleted", TIMEOUT, || async {
        Ok(scenario.khstate("migrate").await?.is_none().then_some(()))
    })
    .await
    .unwrap();

    let due = last_start + SignedDuration::from_secs_f64(INTERVAL);
    let first = wait_for_status(&scenario, "migrate", "its first run", |s| {
        s.run_uuid.is_some()
    })
    .await
    .unwrap();
    let started = first.run_started_at.unwrap();
    let late = secs(due, started);
    assert!(
        (0.0..=LATE_TOLERANCE).contains(&late),
        "the HealthCheck's first run started {late:.3}s after the check's next start was due \
         (last start {last_start}, due {due}, started {started})"
    );
    let done = wait_for_status(&scenario, "migrate", "its first run passed", |s| {
        s.success_count == 1 && !s.in_flight()
    })
    .await
    .unwrap();
    assert_eq!(done.run_uuid, first.run_uuid);

    figures::publish(
        "v3-migration",
        &json!({
            "interval_s": INTERVAL,
            "check_last_start": last_start.to_string(),
            "healthcheck_applied_s_after_last_start": ms(secs(last_start, applied_at)),
            "first_run_late_s": ms(late),
            "measured_at": Timestamp::now().to_string(),
        }),
    );
}
