//! The rest of the run lifecycle: deleting a check stops its running pod and removes its
//! khstate; a KuberhealthyJob runs exactly once and shows under `JobDetails`; an invalid
//! check gets an error naming the field and a Warning Event while other checks run.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, ListParams};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, ResourceExt};
use kuberhealthy_e2e::process::is_running;
use kuberhealthy_e2e::wait_until;
use serde_json::json;

use crate::support::checks::{self, REPORT_OK};
use crate::support::record::Recorder;
use crate::support::{Scenario, ScenarioOptions, TIMEOUT, figures, khchecks, khjobs, ms, secs};

/// How soon after the check is deleted its pod and khstate must be gone.
const DELETE_WITHIN: f64 = 10.0;

#[tokio::test]
async fn deleting_a_check_stops_its_running_pod_and_removes_its_khstate() {
    let scenario = Scenario::start(ScenarioOptions::new("delete-check"))
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();
    // Never reports: its run stays in flight until the check is deleted. (`$$$$` is `$$`
    // once the kubelet has expanded the command, as Kubernetes reduces `$$` to `$`.)
    scenario
        .apply(&checks::check(
            "sleeper",
            "1h",
            "10m",
            "echo $$$$ > checker.pid; exec sleep 300",
        ))
        .await
        .unwrap();
    let state = scenario
        .wait_for_state("sleeper", "a run in flight", |s| s.in_flight())
        .await
        .unwrap();
    let pod = state.run_pod.clone().unwrap();
    let pid_file = scenario.ctx.pod_dir(&pod).join("checker.pid");
    let pid: u32 = wait_until("the checker process to start", TIMEOUT, || async {
        Ok(std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok()))
    })
    .await
    .unwrap();
    assert!(is_running(pid), "the checker (pid {pid}) should be running");

    let deleted_at = Timestamp::now();
    scenario.delete(&khchecks(), "sleeper").await.unwrap();
    let pod_gone = recorder
        .wait_for("the checker pod to be deleted", TIMEOUT, |r| {
            r.pods_of("sleeper")
                .iter()
                .all(|p| p.deleted)
                .then(Timestamp::now)
        })
        .await
        .unwrap();
    let state_gone = recorder
        .wait_for("the khstate to be deleted", TIMEOUT, |r| {
            (!r.states.contains("sleeper")).then(Timestamp::now)
        })
        .await
        .unwrap();
    wait_until("the pod object to disappear", TIMEOUT, || async {
        let pods = scenario.checker_pods().await?;
        Ok(pods.iter().all(|p| p.name_any() != pod).then_some(()))
    })
    .await
    .unwrap();
    wait_until("the checker process to be killed", TIMEOUT, || async {
        Ok((!is_running(pid)).then_some(()))
    })
    .await
    .unwrap();
    assert!(scenario.khstate("sleeper").await.unwrap().is_none());
    let pod_after = secs(deleted_at, pod_gone);
    let state_after = secs(deleted_at, state_gone);
    assert!(
        pod_after <= DELETE_WITHIN && state_after <= DELETE_WITHIN,
        "the pod went {pod_after:.3}s and the khstate {state_after:.3}s after the check (bound {DELETE_WITHIN}s)"
    );
    assert!(
        scenario
            .all_replica_logs()
            .contains("deleted checker pod: its check or job was deleted"),
        "a replica should log why it deleted the pod"
    );
    figures::publish(
        "delete-check",
        &json!({
            "bound_s": DELETE_WITHIN,
            "pod_deleted_after_s": ms(pod_after),
            "khstate_deleted_after_s": ms(state_after),
            "note": "as observed by the test's watches (polled every <=500ms)",
        }),
    );
}

/// Records every distinct `spec.phase` a job goes through, in order; returns once the
/// watch has listed, so no version after this call is missed.
async fn watch_job_phases(api: Api<DynamicObject>, name: &str) -> Arc<Mutex<Vec<String>>> {
    let phases = Arc::new(Mutex::new(Vec::<String>::new()));
    let synced = Arc::new(Mutex::new(false));
    let (sink, flag) = (phases.clone(), synced.clone());
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher::watcher(api, config));
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Apply(job) | WatchEvent::InitApply(job)) => {
                    let phase = job.data["spec"]["phase"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let mut phases = sink.lock().unwrap();
                    if phases.last() != Some(&phase) {
                        phases.push(phase);
                    }
                }
                Ok(WatchEvent::InitDone) => *flag.lock().unwrap() = true,
                _ => {}
            }
        }
    });
    wait_until("the job watch to list", TIMEOUT, || async {
        Ok(synced.lock().unwrap().then_some(()))
    })
    .await
    .unwrap();
    phases
}

#[tokio::test]
async fn a_job_runs_exactly_once_and_shows_under_job_details() {
    let mut scenario = Scenario::start(ScenarioOptions::new("job"))
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();
    let jobs: Api<DynamicObject> = Api::namespaced_with(scenario.client(), &ns, &khjobs());
    let phases = watch_job_phases(jobs.clone(), "once").await;

    scenario
        .apply(&checks::job("once", "1m", REPORT_OK))
        .await
        .unwrap();
    wait_until("job once to complete", TIMEOUT, || async {
        let job = jobs.get("once").await?;
        Ok((job.data["spec"]["phase"] == json!("Completed")).then_some(()))
    })
    .await
    .unwrap();

    // A new leader must not run it again: fail over, then run a second job, which proves the
    // new leader's supervisor has gone over every job at least once.
    let (leader, _) = scenario.wait_for_leader(None).await.unwrap();
    let leader_name = scenario.name_of(leader).to_string();
    scenario.stop(leader, libc::SIGTERM).await.unwrap();
    let (next, _) = scenario.wait_for_leader(Some(&leader_name)).await.unwrap();
    scenario.spawn(leader).unwrap();
    scenario
        .apply(&checks::job("after-failover", "1m", REPORT_OK))
        .await
        .unwrap();
    wait_until("job after-failover to complete", TIMEOUT, || async {
        let job = jobs.get("after-failover").await?;
        Ok((job.data["spec"]["phase"] == json!("Completed")).then_some(()))
    })
    .await
    .unwrap();

    let snapshot = recorder.snapshot();
    let pods = snapshot.pods_of("once");
    assert_eq!(
        pods.len(),
        1,
        "job once must run exactly once, found pods {:?}",
        pods.iter().map(|p| &p.name).collect::<Vec<_>>()
    );
    let runs = snapshot.runs_of("once");
    assert_eq!(runs.len(), 1, "one run of job once: {runs:?}");
    assert_eq!(runs[0].ok, Some(true), "{runs:?}");
    assert_eq!(pods[0].run_id, runs[0].uuid);
    let seen = phases.lock().unwrap().clone();
    assert_eq!(
        seen,
        ["", "Running", "Completed"],
        "the phases of job once, in order"
    );

    let page = scenario.status_page(next).await.unwrap();
    let details = &page["JobDetails"][format!("{ns}/once")];
    assert_eq!(details["OK"], json!(true), "{page}");
    assert_eq!(details["Errors"], json!([]), "{page}");
    assert_eq!(details["uuid"], json!(runs[0].uuid), "{page}");
    assert!(
        page["CheckDetails"].get(format!("{ns}/once")).is_none(),
        "a job is not a check: {page}"
    );
    let state = scenario.khstate("once").await.unwrap().unwrap();
    assert!(state.ok && !state.in_flight(), "{state:?}");

    figures::publish(
        "job",
        &json!({
            "phases": seen,
            "pods_of_job": pods.len(),
            "run_duration": state.run_duration,
            "failover_after_completion": { "from": leader_name, "to": scenario.name_of(next) },
            "job_details": details,
        }),
    );
}

#[tokio::test]
async fn an_invalid_check_gets_a_field_error_and_a_warning_event_while_others_run() {
    let scenario = Scenario::start(ScenarioOptions::new("invalid"))
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();
    scenario
        .apply(&checks::check(
            "bad-interval",
            "10 minutes",
            "1m",
            REPORT_OK,
        ))
        .await
        .unwrap();
    scenario
        .apply(&checks::check("good", "1h", "1m", REPORT_OK))
        .await
        .unwrap();

    let bad = scenario
        .wait_for_state("bad-interval", "an error", |s| {
            !s.ok && !s.errors().is_empty()
        })
        .await
        .unwrap();
    let errors = bad.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "{ns}/bad-interval: invalid check: spec.runInterval: \"10 minutes\" is not a valid duration"
        )),
        "the error names the check, the field and the value: {errors:?}"
    );
    let good = scenario
        .wait_for_state("good", "a passing run", |s| {
            s.ok && s.run_finished_at.is_some()
        })
        .await
        .unwrap();

    // A follower's page follows its watch cache, which may trail the write just observed.
    let page = wait_until(
        "the follower's page to show the good check's result",
        TIMEOUT,
        || async {
            let page = scenario.status_page(1).await?;
            let shown = page["CheckDetails"][format!("{ns}/good")]["OK"] == json!(true);
            Ok(shown.then_some(page))
        },
    )
    .await
    .unwrap();
    let details = &page["CheckDetails"][format!("{ns}/bad-interval")];
    assert_eq!(details["OK"], json!(false), "{page}");
    assert_eq!(details["Errors"], json!(errors), "{page}");
    assert_eq!(
        page["CheckDetails"][format!("{ns}/good")]["OK"],
        json!(true)
    );

    let events: Api<Event> = Api::namespaced(scenario.client(), &ns);
    let event = wait_until("a Warning event InvalidSpec", TIMEOUT, || async {
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("InvalidSpec")))
    })
    .await
    .unwrap();
    assert_eq!(event.type_.as_deref(), Some("Warning"), "{event:?}");
    assert_eq!(
        event.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("bad-interval"),
        "{event:?}"
    );
    assert!(
        event
            .note
            .as_deref()
            .is_some_and(|n| n.contains("spec.runInterval")),
        "{event:?}"
    );
    assert!(
        recorder.snapshot().pods_of("bad-interval").is_empty(),
        "an invalid check must not run"
    );

    // Fixed, it runs.
    scenario
        .apply(&checks::check("bad-interval", "1h", "1m", REPORT_OK))
        .await
        .unwrap();
    let fixed = scenario
        .wait_for_state("bad-interval", "a passing run once fixed", |s| {
            s.ok && s.run_finished_at.is_some()
        })
        .await
        .unwrap();
    assert!(fixed.errors().is_empty(), "{fixed:?}");

    figures::publish(
        "invalid-check",
        &json!({
            "khstate_errors": errors,
            "event": { "type": event.type_, "reason": event.reason, "note": event.note },
            "other_check_ok": good.ok,
            "runs_while_invalid": 0,
            "after_fix_ok": fixed.ok,
        }),
    );
}
