//! v2 manifests (tests/fixtures/v2) and v3 HealthChecks (tests/fixtures/v3) read into the types and written back unchanged.

use std::path::Path;

use kuberhealthy::api::{KuberhealthyCheck, KuberhealthyJob, KuberhealthyState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v2")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a manifest into `T` and back, asserts nothing was lost or added, and returns it.
fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let original = fixture(name);
    let typed: T =
        serde_json::from_value(original.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let written = serde_json::to_value(&typed).unwrap();
    assert_eq!(written, original, "{name} did not survive a round trip");
    typed
}

macro_rules! check_fixture {
    ($test:ident, $file:literal) => {
        #[test]
        fn $test() {
            let check: KuberhealthyCheck = round_trip($file);
            check
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e:?}", $file));
            insta::assert_yaml_snapshot!(check);
        }
    };
}

check_fixture!(blog_post_check, "openbayes-gear-check.yaml");
check_fixture!(daemonset_check, "daemonset.yaml");
check_fixture!(deployment_check, "deployment.yaml");
check_fixture!(dns_status_internal_check, "dns-status-internal.yaml");
check_fixture!(pod_restarts_check, "pod-restarts.yaml");
check_fixture!(pod_status_check, "pod-status.yaml");

#[test]
fn blog_post_check_timing() {
    let check: KuberhealthyCheck = round_trip("openbayes-gear-check.yaml");
    let timing = check.validate().unwrap();
    assert_eq!(
        timing.cadence.interval().map(|i| i.as_secs()),
        Some(6 * 3600)
    );
    assert_eq!(timing.timeout.as_secs(), 300);
    assert_eq!(
        check.spec.pod_spec.spec().containers[0]
            .env
            .as_ref()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn job_fixture() {
    let job: KuberhealthyJob = round_trip("khjob.yaml");
    assert_eq!(job.validate().unwrap().as_secs(), 120);
    assert_eq!(job.phase().unwrap(), kuberhealthy::api::JobPhase::New);
    insta::assert_yaml_snapshot!(job);
}

#[test]
fn state_fixture() {
    let state: KuberhealthyState = round_trip("khstate.yaml");
    assert!(state.spec.ok);
    assert_eq!(state.spec.uuid, "1d309ed7-4b7a-4fd5-9706-d04f53c9ed30");
    assert!(!state.spec.run_in_flight());
    insta::assert_yaml_snapshot!(state);
}

#[test]
fn invalid_check_lists_every_field_error() {
    let mut check: KuberhealthyCheck = round_trip("pod-status.yaml");
    check.spec.run_interval = "10 minutes".into();
    check.spec.timeout = "0s".into();
    check.spec.pod_spec.modify(|s| s.containers[0].image = None);
    let errors: Vec<String> = check
        .validate()
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            r#"spec.runInterval: "10 minutes" is not a valid duration (unknown unit " minutes" in duration "10 minutes" (use one of ns, us, ms, s, m, h)); write a Go duration such as "6h", "5m" or "1m30s""#,
            r#"spec.timeout: "0s" must be greater than zero"#,
            r#"spec.podSpec.containers[0].image: container "main" has no image; set the checker image"#,
        ]
    );
}

#[test]
fn empty_timeout_is_v2s_five_minutes_and_empty_interval_is_an_error() {
    let mut check: KuberhealthyCheck = round_trip("pod-status.yaml");
    check.spec.timeout = String::new();
    assert_eq!(check.validate().unwrap().timeout.as_secs(), 300);
    check.spec.run_interval = String::new();
    check.spec.pod_spec.modify(|s| s.containers.clear());
    let errors: Vec<String> = check
        .validate()
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            r#"spec.runInterval: is empty; set how often the check runs, such as "10m", or set spec.schedule"#,
            "spec.podSpec.containers: is empty; a checker pod needs at least one container",
        ]
    );
}

#[test]
fn unknown_job_phase_is_named() {
    let mut job: KuberhealthyJob = round_trip("khjob.yaml");
    job.spec.phase = Some("Done".into());
    assert_eq!(
        job.phase().unwrap_err().to_string(),
        r#"spec.phase: "Done" is not a job phase; expected "", "Running" or "Completed""#
    );
}

/// A v3 manifest (tests/fixtures/v3) read into `T` and back unchanged.
fn round_trip_v3<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v3")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let original: Value = serde_saphyr::from_str(&text).unwrap();
    let typed: T =
        serde_json::from_value(original.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        original,
        "{name} did not survive a round trip"
    );
    typed
}

#[test]
fn v3_healthcheck_fixture() {
    let hc: kuberhealthy::api::HealthCheck = round_trip_v3("healthcheck.yaml");
    let timing = hc.validate().unwrap();
    assert_eq!(timing.run_interval.as_secs(), 600);
    assert_eq!(timing.timeout.as_secs(), 300);
    assert!(!timing.single_run);
}

#[test]
fn v3_status_fixture() {
    let status: kuberhealthy::api::HealthCheckStatus = round_trip_v3("healthcheck-status.yaml");
    assert_eq!(status.run_duration, 300_000_000_000);
    assert!(!status.run_in_flight());
}
