//! Runs that cannot report fail within seconds, with the cause in the error: a checker that
//! exits 1 without reporting (the exit code is in the error, what it printed follows it), and
//! a checker whose image cannot be pulled (no output: no excerpt). Their timeout is five minutes, so neither is the deadline at work.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::support::checks::{self, REPORT_OK};
use crate::support::record::Recorder;
use crate::support::{Scenario, ScenarioOptions, TIMEOUT, figures, ms, secs};

/// "Within seconds": from the start of the run to its failure being recorded.
const FAIL_WITHIN: f64 = 10.0;
/// The report grace of the supervisor (`REPORT_GRACE`): a pod that ended without reporting
/// fails its run this long after its container finished.
const REPORT_GRACE: f64 = 2.0;

#[tokio::test]
async fn exit_1_and_image_pull_failures_fail_the_run_within_seconds() {
    let scenario = Scenario::start(ScenarioOptions::new("failures"))
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();

    scenario
        .apply(&checks::check(
            "exits-1",
            "1h",
            "5m",
            "echo 'checking something that fails'; exit 1",
        ))
        .await
        .unwrap();
    scenario
        .apply(&checks::check_with(
            "pull-fails",
            "1h",
            "5m",
            checks::pod_spec("example.invalid/checker:missing", REPORT_OK, &[]),
        ))
        .await
        .unwrap();

    let exit_state = scenario
        .wait_for_state("exits-1", "its run failed", |s| {
            s.run_finished_at.is_some() && !s.ok
        })
        .await
        .unwrap();
    let pull_state = scenario
        .wait_for_state("pull-fails", "its run failed", |s| {
            s.run_finished_at.is_some() && !s.ok
        })
        .await
        .unwrap();

    // Exit 1: the error names the pod, the container and the exit code, and what the checker
    // printed follows it (read through the API server's pods/log from the pod runner).
    let exit_errors = exit_state.errors();
    let pod = exit_state.run_pod.clone().unwrap();
    let exit_error = format!(
        "{ns}/exits-1: checker pod {pod} container main exited with code 1 (Error) without reporting"
    );
    assert_eq!(
        exit_errors,
        [
            exit_error.clone(),
            "last output of the checker: checking something that fails\n".to_string()
        ],
        "the errors of a checker that exited 1"
    );
    let last_run = &exit_state.history[0];
    assert_eq!(last_run.errors, [exit_error], "history keeps the error");
    assert_eq!(
        last_run.log_excerpt.as_deref(),
        Some("checking something that fails\n"),
        "and the excerpt, with the run"
    );
    let exit_took = secs(
        exit_state.run_started_at.unwrap(),
        exit_state.run_finished_at.unwrap(),
    );
    let snapshot = recorder.snapshot();
    let exit_pod = snapshot
        .pods_of("exits-1")
        .into_iter()
        .find(|p| p.name == pod)
        .expect("the recorder saw the pod of exits-1");
    let container_end = exit_pod
        .finished_at
        .expect("the container of exits-1 terminated");
    let after_exit = secs(container_end, exit_state.run_finished_at.unwrap());
    assert_eq!(exit_pod.phase, "Failed");
    assert!(
        exit_took <= FAIL_WITHIN,
        "the exit-1 run took {exit_took:.3}s to fail (bound {FAIL_WITHIN}s)"
    );
    // The container's end is recorded with second precision, so allow one second below.
    assert!(
        (REPORT_GRACE - 1.0..=REPORT_GRACE + 3.0).contains(&after_exit),
        "the run failed {after_exit:.3}s after the container ended; the report grace is {REPORT_GRACE}s"
    );
    assert_eq!(
        scenario.ctx.container_log(&pod, "main"),
        "checking something that fails\n",
        "the checker command really ran"
    );

    // Image pull: fails at once, with the waiting reason.
    let pull_errors = pull_state.errors();
    let pull_pod = pull_state.run_pod.clone().unwrap();
    assert_eq!(pull_errors.len(), 1, "{pull_errors:?}");
    let expected_prefix = format!(
        "{ns}/pull-fails: checker pod {pull_pod} cannot start: container main is waiting with ErrImagePull"
    );
    assert!(
        pull_errors[0].starts_with(&expected_prefix),
        "the image pull error: {pull_errors:?}"
    );
    let pull_took = secs(
        pull_state.run_started_at.unwrap(),
        pull_state.run_finished_at.unwrap(),
    );
    assert!(
        pull_took <= FAIL_WITHIN,
        "the image pull run took {pull_took:.3}s to fail (bound {FAIL_WITHIN}s)"
    );
    assert!(
        !scenario.ctx.container_log_path(&pull_pod, "main").exists(),
        "the container of a pod whose image cannot be pulled never starts"
    );

    // Both show on the status page with the same errors, and as Warning Events.
    let page = scenario.status_page(0).await.unwrap();
    for (name, errors) in [("exits-1", &exit_errors), ("pull-fails", &pull_errors)] {
        let details = &page["CheckDetails"][format!("{ns}/{name}")];
        assert_eq!(details["OK"], json!(false), "{details}");
        assert_eq!(details["Errors"], json!(errors), "{details}");
    }
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(scenario.client(), &ns);
    let events = kuberhealthy_e2e::wait_until("RunFailed events for both", TIMEOUT, || async {
        let list = events.list(&ListParams::default()).await?.items;
        let failed: Vec<_> = list
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("RunFailed"))
            .collect();
        Ok((failed.len() >= 2).then_some(failed))
    })
    .await
    .unwrap();
    for name in ["exits-1", "pull-fails"] {
        assert!(
            events.iter().any(|e| e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)),
            "no Warning RunFailed event regarding {name}: {events:?}"
        );
    }

    figures::publish(
        "failures",
        &json!({
            "bound_s": FAIL_WITHIN,
            "exit_1": {
                "error": exit_errors[0],
                "run_start_to_failure_s": ms(exit_took),
                "container_end_to_failure_s": ms(after_exit),
                "container_end_precision": "1s (pod status times are whole seconds)",
            },
            "image_pull": {
                "error": pull_errors[0],
                "run_start_to_failure_s": ms(pull_took),
            },
            "measured_at": Timestamp::now().to_string(),
        }),
    );
}
