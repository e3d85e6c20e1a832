//! The planner, rule by rule: each test builds what the cache shows and asserts the exact
//! actions and the next wake-up.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::*;
use crate::api::KuberhealthyStateSpec;

const NS: &str = "ns";
/// When every check of these tests was created.
const CREATED: &str = "2026-01-01T00:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn settings() -> PlanSettings {
    PlanSettings {
        retention: Retention {
            max_completed: 1,
            max_failed: 1,
            max_age: Duration::from_secs(3600),
        },
        max_khjob_age: Duration::from_secs(15 * 60),
    }
}

fn check_with(name: &str, spec: Value) -> Arc<KuberhealthyCheck> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "comcast.github.io/v1",
            "kind": "KuberhealthyCheck",
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": CREATED,
                         "uid": format!("uid-{name}"), "resourceVersion": "1"},
            "spec": spec,
        }))
        .unwrap(),
    )
}

fn check(name: &str, interval: &str) -> Arc<KuberhealthyCheck> {
    check_with(
        name,
        json!({"runInterval": interval, "timeout": "1m",
               "podSpec": {"containers": [{"name": "main", "image": "checker:v1"}]}}),
    )
}

fn job(name: &str, phase: &str) -> Arc<KuberhealthyJob> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "comcast.github.io/v1",
            "kind": "KuberhealthyJob",
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": CREATED,
                         "uid": format!("uid-{name}"), "resourceVersion": "1"},
            "spec": {"phase": phase, "timeout": "1m",
                     "podSpec": {"containers": [{"name": "main", "image": "checker:v1"}]}},
        }))
        .unwrap(),
    )
}

fn state_at(name: &str, version: &str, created: &str, spec: Value) -> Arc<KuberhealthyState> {
    let spec: KuberhealthyStateSpec = serde_json::from_value(spec).unwrap();
    let mut s = KuberhealthyState::new(name, spec);
    s.metadata.namespace = Some(NS.into());
    s.metadata.resource_version = Some(version.into());
    s.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(
        created,
    )));
    Arc::new(s)
}

fn state(name: &str, spec: Value) -> Arc<KuberhealthyState> {
    state_at(name, "10", CREATED, spec)
}

/// A state whose last run started at `started` and finished OK a second later.
fn finished(name: &str, started: &str) -> Arc<KuberhealthyState> {
    let started = ts(started);
    let ended = add(started, Duration::from_secs(1));
    state(
        name,
        json!({"OK": true, "Errors": [], "uuid": "old", "LastRun": ended,
               "runStartedAt": started, "runFinishedAt": ended,
               "runDeadline": add(started, Duration::from_secs(60)),
               "runPod": format!("{name}-0ld00000")}),
    )
}

/// A state with run `uuid` in flight since `started`, its pod `pod`.
fn in_flight(name: &str, started: &str, pod: &str) -> Arc<KuberhealthyState> {
    let started = ts(started);
    state(
        name,
        json!({"OK": true, "Errors": [], "uuid": "run-1",
               "runStartedAt": started, "runDeadline": add(started, Duration::from_secs(60)),
               "runPod": pod, "runTerm": {"holder": "kh-0", "transitions": 1}}),
    )
}

fn pod(name: &str, check: &str, status: Value) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": CREATED,
                         "labels": {"kuberhealthy-check-name": check, "app": "kuberhealthy-check"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "checker:v1"}]},
            "status": status,
        }))
        .unwrap(),
    )
}

fn running() -> Value {
    json!({"phase": "Running", "containerStatuses": [{"name": "main", "image": "", "imageID": "",
        "ready": true, "restartCount": 0, "state": {"running": {}}}]})
}

fn ended(phase: &str, code: i32, at: &str) -> Value {
    json!({"phase": phase, "containerStatuses": [{"name": "main", "image": "", "imageID": "",
        "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "reason": if code == 0 {"Completed"} else {"Error"},
                                 "finishedAt": at}}}]})
}

fn view(
    checks: Vec<Arc<KuberhealthyCheck>>,
    jobs: Vec<Arc<KuberhealthyJob>>,
    states: Vec<Arc<KuberhealthyState>>,
    pods: Vec<Arc<Pod>>,
) -> View {
    View::new(checks, jobs, states, pods)
}

fn plan_at(view: &View, now: &str) -> Plan {
    plan(view, &Memory::default(), &settings(), ts(now), 10)
}

/// Each action as one line, for exact comparisons.
fn describe(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::StartRun {
                owner,
                previous,
                due_at,
                timeout,
                scheduled,
                honours,
            } => {
                let from = previous
                    .as_ref()
                    .and_then(|p| p.resource_version())
                    .unwrap_or_else(|| "nothing".into());
                let when = match (due_at, scheduled) {
                    (Some(t), true) => format!("due {t}"),
                    (None, false) => "now".to_string(),
                    other => panic!("inconsistent start: {other:?}"),
                };
                let request = honours
                    .as_ref()
                    .map(|r| format!(" honouring {r}"))
                    .unwrap_or_default();
                format!(
                    "start {} {when} timeout {timeout:?} from {from}{request}",
                    owner.key()
                )
            }
            Action::StartJob { job, previous, .. } => format!(
                "start job {} from {}",
                job.name_any(),
                previous.as_ref().map_or("nothing", |_| "a state")
            ),
            Action::AdoptRun { owner, record } => {
                format!("adopt {} run {}", owner.key(), record.run().uuid)
            }
            Action::FinishRun {
                owner,
                ending,
                message,
                node,
                delete_pod,
                ..
            } => format!(
                "finish {} {ending:?} on {node:?} deleting {delete_pod:?}: {message}",
                owner.key()
            ),
            Action::MarkInvalid { owner, errors, .. } => {
                format!("invalid {}: {}", owner.key(), errors.join("; "))
            }
            Action::SetJobPhase { job, phase } => {
                format!("job {} {}", job.name_any(), phase.as_str())
            }
            Action::ExpireJob { job } => format!("expire job {}", job.name_any()),
            Action::DeleteState { name, why, .. } => format!("delete state {name}: {why}"),
            Action::DeletePod { name, why, .. } => format!("delete pod {name}: {why}"),
            Action::SeedStatus { healthcheck, state } => format!(
                "seed healthcheck {} from state {} at {}",
                healthcheck.name_any(),
                state.name_any(),
                state.resource_version().unwrap_or_default()
            ),
            Action::SeedState { check, healthcheck } => format!(
                "seed state of {} from healthcheck {}",
                check.name_any(),
                healthcheck.name_any()
            ),
            Action::ReleaseHealthCheck {
                healthcheck,
                delete_pod,
            } => format!(
                "release healthcheck {} deleting {delete_pod:?}",
                healthcheck.name_any()
            ),
        })
        .collect()
}

// --- Checks: due, waiting, catch-up -------------------------------------------------------

#[test]
fn a_new_check_is_due_at_its_creation() {
    let v = view(vec![check("c", "1h")], vec![], vec![], vec![]);
    let p = plan_at(&v, "2026-01-01T00:00:05Z");
    assert_eq!(
        describe(&p),
        ["start ns/c due 2026-01-01T00:00:00Z timeout 60s from nothing"]
    );
    assert_eq!(p.starts(), 1);
    assert_eq!(p.wake, None);
}

#[test]
fn a_check_that_ran_waits_for_its_last_start_plus_the_interval() {
    let v = view(
        vec![check("c", "1h")],
        vec![],
        vec![finished("c", "2026-01-01T10:00:00Z")],
        vec![],
    );
    let p = plan_at(&v, "2026-01-01T10:30:00Z");
    assert!(p.actions.is_empty(), "{:?}", describe(&p));
    assert_eq!(p.wake, Some(ts("2026-01-01T11:00:00Z")));

    let p = plan_at(&v, "2026-01-01T11:00:00Z");
    assert_eq!(
        describe(&p),
        ["start ns/c due 2026-01-01T11:00:00Z timeout 60s from 10"],
        "due exactly at the last start plus the interval, from the version read"
    );
}

#[test]
fn a_state_written_by_v2_schedules_from_its_last_run_on_the_page_too() {
    // Only v2's fields: the scheduler and the status page agree on the next run.
    let s = state(
        "c",
        json!({"OK": true, "Errors": [], "uuid": "v2-run", "LastRun": "2026-01-01T10:00:00Z",
               "RunDuration": "3s", "Namespace": NS, "Node": "", "AuthoritativePod": "kh-v2"}),
    );
    let c = check("c", "1h");
    let v = view(vec![c.clone()], vec![], vec![s.clone()], vec![]);
    let p = plan_at(&v, "2026-01-01T10:30:00Z");
    assert!(p.actions.is_empty());
    assert_eq!(p.wake, Some(ts("2026-01-01T11:00:00Z")));

    let page = crate::controller::status::render(
        &crate::controller::status::Snapshot {
            checks: &[c],
            jobs: &[],
            states: &[s],
            healthchecks: &[],
            current_master: None,
            metadata: &Default::default(),
            now: ts("2026-01-01T10:30:00Z"),
        },
        &Default::default(),
    );
    assert_eq!(
        page.check_details["ns/c"].next_run_at,
        Some(ts("2026-01-01T11:00:00Z"))
    );
}

#[test]
fn an_overdue_catch_up_starts_the_oldest_first_within_the_budget() {
    let checks = vec![check("a", "1h"), check("b", "1h"), check("c", "1h")];
    let states = vec![
        finished("a", "2026-01-01T08:00:00Z"),
        finished("b", "2026-01-01T06:00:00Z"),
        finished("c", "2026-01-01T07:00:00Z"),
    ];
    let v = view(checks, vec![], states, vec![]);
    let p = plan(
        &v,
        &Memory::default(),
        &settings(),
        ts("2026-01-02T00:00:00Z"),
        2,
    );
    assert_eq!(
        describe(&p),
        [
            "start ns/b due 2026-01-01T07:00:00Z timeout 60s from 10",
            "start ns/c due 2026-01-01T08:00:00Z timeout 60s from 10",
        ]
    );
    assert_eq!(p.deferred, 1, "the third waits for the budget");
    assert_eq!(p.starts(), 2);
}

#[test]
fn an_empty_budget_starts_nothing_and_defers_every_due_check() {
    let v = view(vec![check("a", "1h")], vec![], vec![], vec![]);
    let p = plan(
        &v,
        &Memory::default(),
        &settings(),
        ts("2026-01-02T00:00:00Z"),
        0,
    );
    assert!(p.actions.is_empty());
    assert_eq!(p.deferred, 1);
}

// --- Runs in flight -------------------------------------------------------------------------

#[test]
fn a_run_in_flight_with_a_running_pod_waits_for_its_deadline() {
    let v = view(
        vec![check("c", "1h")],
        vec![],
        vec![in_flight("c", "2026-01-01T10:00:00Z", "c-run1")],
        vec![pod("c-run1", "c", running())],
    );
    let p = plan_at(&v, "2026-01-01T10:00:30Z");
    assert!(p.actions.is_empty(), "{:?}", describe(&p));
    assert_eq!(p.wake, Some(ts("2026-01-01T10:01:00Z")));
}

#[test]
fn a_run_adopted_after_failover_without_its_pod_gets_the_pod_once() {
    let v = view(
        vec![check("c", "1h")],
        vec![],
        vec![in_flight("c", "2026-01-01T10:00:00Z", "c-run1")],
        vec![],
    );
    let p = plan_at(&v, "2026-01-01T10:00:10Z");
    assert_eq!(describe(&p), ["adopt ns/c run run-1"]);
    assert_eq!(p.wake, Some(ts("2026-01-01T10:01:00Z")));

    // Once this term created it, a cache that lags does not make it create it again.
    let mut memory = Memory::default();
    memory.record(Change::PodCreated {
        key: "ns/c-run1".into(),
    });
    let p = plan(&v, &memory, &settings(), ts("2026-01-01T10:00:11Z"), 10);
    assert!(p.actions.is_empty(), "{:?}", describe(&p));
}

#[test]
fn a_pod_that_exited_without_reporting_fails_the_run_after_the_grace() {
    let v = view(
        vec![check("c", "1h")],
        vec![],
        vec![in_flight("c", "2026-01-01T10:00:00Z", "c-run1")],
        vec![pod(
            "c-run1",
            "c",
            ended("Failed", 3, "2026-01-01T10:00:20Z"),
        )],
    );
    let p = plan_at(&v, "2026-01-01T10:00:21Z");
    assert!(p.actions.is_empty(), "a report may still be on its way");
    assert_eq!(p.wake, Some(ts("2026-01-01T10:00:22Z")));

    let p = plan_at(&v, "2026-01-01T10:00:22Z");
    assert_eq!(
        describe(&p),
        [
            "finish ns/c PodFailed on Some(\"node-1\") deleting None: ns/c: checker pod c-run1 container main exited with code 3 (Error) without reporting"
        ]
    );
    // Its container started: its last lines are read with the finish.
    let Action::FinishRun { log, .. } = &p.actions[0] else {
        panic!("{:?}", describe(&p))
    };
    assert_eq!(
        log,
        &Some(LogSource {
            pod: "c-run1".into(),
            container: "main".into()
        })
    );
}

#[test]
fn a_run_whose_pod_was_created_late_ends_dated_from_its_pod() {
    // The start was persisted at 10:00:00; the pod's creation was held up 8 s (an etcd
    // stall): the run ends dated from its pod, so its next run is not due at once.
    let mut late = Pod::clone(&pod(
        "c-run1",
        "c",
        ended("Failed", 3, "2026-01-01T10:00:20Z"),
    ));
    late.metadata.creation_timestamp = Some(Time(ts("2026-01-01T10:00:08Z")));
    let v = view(
        vec![check("c", "1h")],
        vec![],
        vec![in_flight("c", "2026-01-01T10:00:00Z", "c-run1")],
        vec![Arc::new(late)],
    );
    let p = plan_at(&v, "2026-01-01T10:00:22Z");
    let [Action::FinishRun { record, .. }] = p.actions.as_slice() else {
        panic!("{:?}", describe(&p))
    };
    let run = record.run();
    assert_eq!(run.run_started_at, Some(ts("2026-01-01T10:00:08Z")));
    assert_eq!(run.run_deadline, Some(ts("2026-01-01T10:01:08Z")));
    assert_eq!(record.resource_version().as_deref(), Some("10"));

    // A pod created within the allowance leaves the persisted start.
    let v = view(
        vec![check("c", "1h")],
        vec![],
        vec![in_flight("c", "2025-12-31T23:59:59.5Z", "c-run1")],
        vec![pod(
            "c-run1",
            "c",
            ended("Failed", 3, "2026-01-01T00:00:20Z"),
        )],
    );
    let p = plan_at(&v, "2026-01-01T00:00:22Z");
    let [Action::FinishRun { record, .. }] = p.actions.as_slice() else {
        panic!("{:?}", describe(&p))
    };
    assert_eq!(
        record.run().run_started_at,
        Some(ts("2025-12-31T23:59:59.5Z"))
    );
}

#[test]
fn a_pod_that_cannot_pull_its_image_fails_the_run_at_once() {
    let status = json!({"phase": "Pending", "containerStatuses": [{"name": "main", "image": "",
        "imageID": "", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]});
    let v = view(
        vec![check("c", "1h")],
        vec![],
        vec![in_flight("c", "2026-01-01T10:00:00Z", "c-run1")],
        vec![pod("c-run1", "c", status)],
    );
    let p = plan_at(&v, "2026-01-01T10:00:05Z");
    assert_eq!(
        describe(&p),
        [
            "finish ns/c PodFailed on Some(\"node-1\") deleting None: ns/c: checker pod c-run1 cannot start: container main is waiting with ErrImagePull: not found"
        ]
    );
    // Nothing ran, so nothing printed: no log request.
    assert!(matches!(&p.actions[0], Action::FinishRun { log: None, .. }));
}

#[test]
fn a_run_past_its_deadline_times_out_and_its_pod_is_deleted() {
    let v = view(
        vec![check("c", "1h")],
        vec![],
        vec![in_flight("c", "2026-01-01T10:00:00Z", "c-run1")],
        vec![pod("c-run1", "c", running())],
    );
    let p = plan_at(&v, "2026-01-01T10:01:00Z");
    let lines = describe(&p);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "finish ns/c TimedOut on Some(\"node-1\") deleting Some(\"c-run1\"): ns/c: timed out waiting for checker pod to report in"
        ),
        "{}",
        lines[0]
    );
}

#[test]
fn a_run_whose_pod_never_appeared_times_out_without_a_delete() {
    let v = view(
        vec![check("c", "1h")],
        vec![],
        vec![in_flight("c", "2026-01-01T10:00:00Z", "c-run1")],
        vec![],
    );
    let p = plan_at(&v, "2026-01-01T10:02:00Z");
    let lines = describe(&p);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("finish ns/c TimedOut on None deleting None:"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("pod c-run1 does not exist"),
        "{}",
        lines[0]
    );
}

// --- Invalid specs --------------------------------------------------------------------------

#[test]
fn an_invalid_check_is_marked_once_and_never_started() {
    let bad = check_with(
        "bad",
        json!({"runInterval": "10 minutes", "timeout": "1m",
               "podSpec": {"containers": [{"name": "main"}]}}),
    );
    let v = view(vec![bad.clone()], vec![], vec![], vec![]);
    let p = plan_at(&v, "2026-01-01T00:00:05Z");
    let lines = describe(&p);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("invalid ns/bad: ns/bad: invalid check: spec.runInterval:"));
    assert!(lines[0].contains("ns/bad: invalid check: spec.podSpec.containers[0].image:"));

    // The state already says so: nothing is written again.
    let Action::MarkInvalid { errors, .. } = &p.actions[0] else {
        unreachable!()
    };
    let marked = state("bad", json!({"OK": false, "Errors": errors}));
    let v = view(vec![bad], vec![], vec![marked], vec![]);
    assert!(plan_at(&v, "2026-01-01T00:00:06Z").actions.is_empty());
}

#[test]
fn an_invalid_check_does_not_stop_the_others() {
    let bad = check_with(
        "bad",
        json!({"runInterval": "0s", "podSpec": {"containers": []}}),
    );
    let v = view(vec![bad, check("good", "1h")], vec![], vec![], vec![]);
    let lines = describe(&plan_at(&v, "2026-01-01T00:00:05Z"));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("invalid ns/bad:"));
    assert_eq!(
        lines[1],
        "start ns/good due 2026-01-01T00:00:00Z timeout 60s from nothing"
    );
}

// --- Jobs -----------------------------------------------------------------------------------

#[test]
fn a_new_job_starts_once() {
    let v = view(vec![], vec![job("j", "")], vec![], vec![]);
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T00:00:01Z")),
        ["start job j from nothing"]
    );
}

#[test]
fn a_new_job_whose_run_was_persisted_is_only_marked_running() {
    let v = view(
        vec![],
        vec![job("j", "")],
        vec![in_flight("j", "2026-01-01T00:00:01Z", "j-run1")],
        vec![pod("j-run1", "j", running())],
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T00:00:02Z")),
        ["job j Running"]
    );
}

#[test]
fn a_running_job_is_supervised_then_completed() {
    let v = view(
        vec![],
        vec![job("j", "Running")],
        vec![in_flight("j", "2026-01-01T00:00:01Z", "j-run1")],
        vec![pod("j-run1", "j", running())],
    );
    let p = plan_at(&v, "2026-01-01T00:00:02Z");
    assert!(p.actions.is_empty());
    assert_eq!(p.wake, Some(ts("2026-01-01T00:01:01Z")));

    let v = view(
        vec![],
        vec![job("j", "Running")],
        vec![finished("j", "2026-01-01T00:00:01Z")],
        vec![],
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T00:00:05Z")),
        ["job j Completed"]
    );
}

#[test]
fn a_running_job_without_a_state_runs_again() {
    let v = view(vec![], vec![job("j", "Running")], vec![], vec![]);
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T00:00:05Z")),
        ["start ns/j due 2026-01-01T00:00:00Z timeout 60s from nothing"]
    );
}

#[test]
fn a_completed_job_is_deleted_after_max_khjob_age() {
    let v = view(
        vec![],
        vec![job("j", "Completed")],
        vec![finished("j", "2026-01-01T00:00:00Z")],
        vec![],
    );
    let p = plan_at(&v, "2026-01-01T00:10:00Z");
    assert!(p.actions.is_empty());
    assert_eq!(p.wake, Some(ts("2026-01-01T00:15:01Z")));
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T00:15:01Z")),
        ["expire job j"]
    );
}

#[test]
fn a_job_with_an_unknown_phase_is_invalid() {
    let v = view(vec![], vec![job("j", "Paused")], vec![], vec![]);
    let lines = describe(&plan_at(&v, "2026-01-01T00:00:05Z"));
    assert_eq!(
        lines,
        [
            "invalid ns/j: ns/j: invalid job: spec.phase: \"Paused\" is not a job phase; expected \"\", \"Running\" or \"Completed\""
        ]
    );
}

// --- Deleted checks, orphans and retention --------------------------------------------------

#[test]
fn a_deleted_check_takes_its_state_and_running_pod_with_it() {
    let c = check("c", "1h");
    let s = in_flight("c", "2026-01-01T10:00:00Z", "c-run1");
    let p1 = pod("c-run1", "c", running());
    let mut memory = Memory::default();
    let mut before = view(vec![c], vec![], vec![s.clone()], vec![p1.clone()]);
    memory.lay_over(&mut before);

    // The check is gone: its deletion was seen, so its state goes at once.
    let mut after = view(vec![], vec![], vec![s], vec![p1]);
    memory.lay_over(&mut after);
    let p = plan(&after, &memory, &settings(), ts("2026-01-01T10:00:30Z"), 10);
    assert_eq!(
        describe(&p),
        [
            "delete state c: its check or job was deleted",
            "delete pod c-run1: its check or job was deleted",
        ]
    );
}

#[test]
fn a_state_applied_before_its_check_keeps_its_timer() {
    // A restore or GitOps tool applies the state first; its check arrives later.
    let s = state_at(
        "c",
        "10",
        "2026-01-01T10:00:00Z",
        json!({"OK": true, "Errors": [], "uuid": "v2-run", "LastRun": "2026-01-01T09:59:58Z"}),
    );
    let mut memory = Memory::default();
    let mut alone = view(vec![], vec![], vec![s.clone()], vec![]);
    memory.lay_over(&mut alone);
    let p = plan(&alone, &memory, &settings(), ts("2026-01-01T10:00:02Z"), 10);
    assert!(p.actions.is_empty(), "{:?}", describe(&p));
    assert_eq!(p.wake, Some(add(ts("2026-01-01T10:00:00Z"), ORPHAN_GRACE)));

    // The check arrives: it runs at LastRun + runInterval, not at once.
    let mut both = view(vec![check("c", "1h")], vec![], vec![s], vec![]);
    memory.lay_over(&mut both);
    let p = plan(&both, &memory, &settings(), ts("2026-01-01T10:00:03Z"), 10);
    assert!(p.actions.is_empty(), "{:?}", describe(&p));
    assert_eq!(p.wake, Some(ts("2026-01-01T10:59:58Z")));
}

#[test]
fn a_state_whose_check_never_appears_goes_after_the_grace_period() {
    let s = state_at("gone", "10", "2026-01-01T10:00:00Z", json!({"OK": true}));
    let v = view(vec![], vec![], vec![s], vec![]);
    let expiry = add(ts("2026-01-01T10:00:00Z"), ORPHAN_GRACE);
    assert!(
        plan(
            &v,
            &Memory::default(),
            &settings(),
            expiry
                .checked_sub(jiff::SignedDuration::from_secs(1))
                .unwrap(),
            10
        )
        .actions
        .is_empty()
    );
    assert_eq!(
        describe(&plan(&v, &Memory::default(), &settings(), expiry, 10)),
        ["delete state gone: no check or job of its name appeared within the orphan grace period"]
    );
}

#[test]
fn finished_pods_beyond_retention_are_reaped_and_the_pod_in_flight_is_kept() {
    let v = view(
        vec![check("c", "1m")],
        vec![],
        vec![in_flight("c", "2026-01-01T10:05:00Z", "c-now")],
        vec![
            pod("c-ok1", "c", ended("Succeeded", 0, "2026-01-01T10:01:00Z")),
            pod("c-ok2", "c", ended("Succeeded", 0, "2026-01-01T10:02:00Z")),
            pod("c-bad1", "c", ended("Failed", 1, "2026-01-01T10:03:00Z")),
            pod("c-now", "c", running()),
        ],
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:05:10Z")),
        ["delete pod c-ok1: more succeeded pods than maxCompletedPodCount"]
    );
}

#[test]
fn a_pod_this_term_deleted_is_not_deleted_again() {
    let v = view(
        vec![],
        vec![],
        vec![],
        vec![pod(
            "x-1",
            "x",
            ended("Succeeded", 0, "2026-01-01T10:01:00Z"),
        )],
    );
    let mut memory = Memory::default();
    memory.record(Change::PodDeleted {
        key: "ns/x-1".into(),
    });
    let mut v2 = v.clone();
    memory.lay_over(&mut v2);
    assert!(
        plan(&v2, &memory, &settings(), ts("2026-01-01T10:05:00Z"), 10)
            .actions
            .is_empty()
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:05:00Z")),
        ["delete pod x-1: its check or job was deleted"]
    );
}

// --- What this term wrote -------------------------------------------------------------------

#[test]
fn what_this_term_wrote_counts_until_the_cache_shows_a_newer_version() {
    let cached = finished("c", "2026-01-01T10:00:00Z");
    let mut memory = Memory::default();
    let started = in_flight("c", "2026-01-01T11:00:00Z", "c-run1");
    memory.record(Change::StateWritten {
        replaced: Some("10".into()),
        state: started.clone(),
    });

    // The cache still shows version 10: the run this term started is in flight.
    let mut v = view(vec![check("c", "1h")], vec![], vec![cached], vec![]);
    memory.lay_over(&mut v);
    assert_eq!(v.states["ns/c"].spec.uuid, "run-1");
    let p = plan(&v, &memory, &settings(), ts("2026-01-01T11:00:01Z"), 10);
    assert_eq!(describe(&p), ["adopt ns/c run run-1"]);

    // The cache caught up (a newer version): the memory is dropped.
    let newer = state_at("c", "11", CREATED, json!({"OK": false, "uuid": "other"}));
    let mut v = view(vec![check("c", "1h")], vec![], vec![newer], vec![]);
    memory.lay_over(&mut v);
    assert_eq!(v.states["ns/c"].spec.uuid, "other");
}

#[test]
fn a_job_phase_this_term_wrote_counts_until_the_cache_shows_it() {
    let mut memory = Memory::default();
    memory.record(Change::JobWritten {
        replaced: Some("1".into()),
        job: job("j", "Running"),
    });
    let mut v = view(
        vec![],
        vec![job("j", "")],
        vec![in_flight("j", "2026-01-01T00:00:01Z", "j-run1")],
        vec![pod("j-run1", "j", running())],
    );
    memory.lay_over(&mut v);
    let p = plan(&v, &memory, &settings(), ts("2026-01-01T00:00:02Z"), 10);
    assert!(
        p.actions.is_empty(),
        "no second start and no second phase write: {:?}",
        describe(&p)
    );
}

// --- Suspend, run now, schedules, dependencies ------------------------------------------

fn with_spec(name: &str, extra: Value) -> Arc<KuberhealthyCheck> {
    let mut spec = json!({"runInterval": "1h", "timeout": "1m",
        "podSpec": {"containers": [{"name": "main", "image": "checker:v1"}]}});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            spec.as_object_mut().unwrap().remove(k);
        } else {
            spec[k] = v.clone();
        }
    }
    check_with(name, spec)
}

fn requested(name: &str, value: &str, extra: Value) -> Arc<KuberhealthyCheck> {
    let mut c = (*with_spec(name, extra)).clone();
    c.metadata.annotations = Some(
        [(crate::api::RUN_REQUESTED_AT.to_string(), value.to_string())]
            .into_iter()
            .collect(),
    );
    Arc::new(c)
}

#[test]
fn a_suspended_check_starts_nothing_and_its_run_in_flight_finishes() {
    let suspended = with_spec("c", json!({"suspend": true}));
    // Overdue for a day: still nothing, and no wake-up for it.
    let v = view(
        vec![suspended.clone()],
        vec![],
        vec![finished("c", "2026-01-01T00:00:00Z")],
        vec![],
    );
    let p = plan_at(&v, "2026-01-02T00:00:00Z");
    assert!(p.actions.is_empty(), "{:?}", describe(&p));
    assert_eq!(p.wake, None);
    assert_eq!(p.deferred, 0);

    // A run in flight when it was suspended is still judged and failed when it times out.
    let v = view(
        vec![suspended],
        vec![],
        vec![in_flight("c", "2026-01-01T10:00:00Z", "c-run1")],
        vec![pod("c-run1", "c", running())],
    );
    let lines = describe(&plan_at(&v, "2026-01-01T10:01:00Z"));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("finish ns/c TimedOut"), "{lines:?}");
}

#[test]
fn resuming_runs_once_from_the_persisted_last_start_without_a_burst() {
    // Suspended for a day, then resumed: one start (the overdue slot), not one per missed
    // interval; a check resumed inside its interval waits for it.
    let v = view(
        vec![with_spec("c", json!({"suspend": false}))],
        vec![],
        vec![finished("c", "2026-01-01T00:00:00Z")],
        vec![],
    );
    let p = plan_at(&v, "2026-01-02T00:00:00Z");
    assert_eq!(
        describe(&p),
        ["start ns/c due 2026-01-01T01:00:00Z timeout 60s from 10"]
    );
    let v = view(
        vec![with_spec("c", json!({}))],
        vec![],
        vec![finished("c", "2026-01-02T00:00:00Z")],
        vec![],
    );
    let p = plan_at(&v, "2026-01-02T00:30:00Z");
    assert!(p.actions.is_empty());
    assert_eq!(p.wake, Some(ts("2026-01-02T01:00:00Z")));
}

#[test]
fn a_run_now_value_starts_one_run_once() {
    let c = requested("c", "2026-01-01T10:20:00Z", json!({}));
    let v = view(
        vec![c.clone()],
        vec![],
        vec![finished("c", "2026-01-01T10:00:00Z")],
        vec![],
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:20:01Z")),
        ["start ns/c now timeout 60s from 10 honouring 2026-01-01T10:20:00Z"],
        "a requested run is not a slot: the schedule stays at 11:00"
    );

    // Once honoured (persisted in the state), the same value starts nothing more.
    let honoured = state(
        "c",
        json!({"OK": true, "uuid": "r", "runStartedAt": "2026-01-01T10:20:01Z",
               "runFinishedAt": "2026-01-01T10:20:05Z", "LastRun": "2026-01-01T10:20:05Z",
               "scheduledStartedAt": "2026-01-01T10:00:00Z",
               "honouredRunRequest": "2026-01-01T10:20:00Z"}),
    );
    let v = view(vec![c], vec![], vec![honoured.clone()], vec![]);
    let p = plan_at(&v, "2026-01-01T10:30:00Z");
    assert!(p.actions.is_empty(), "{:?}", describe(&p));
    assert_eq!(
        p.wake,
        Some(ts("2026-01-01T11:00:00Z")),
        "the schedule did not move"
    );

    // A new value is a new request.
    let again = requested("c", "2026-01-01T10:40:00Z", json!({}));
    let v = view(vec![again], vec![], vec![honoured], vec![]);
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:40:01Z")),
        ["start ns/c now timeout 60s from 10 honouring 2026-01-01T10:40:00Z"]
    );
}

#[test]
fn a_run_now_during_a_run_waits_for_it_to_end() {
    let c = requested("c", "2026-01-01T10:00:30Z", json!({}));
    let v = view(
        vec![c.clone()],
        vec![],
        vec![in_flight("c", "2026-01-01T10:00:00Z", "c-run1")],
        vec![pod("c-run1", "c", running())],
    );
    let p = plan_at(&v, "2026-01-01T10:00:31Z");
    assert!(p.actions.is_empty(), "{:?}", describe(&p));

    let v = view(
        vec![c],
        vec![],
        vec![finished("c", "2026-01-01T10:00:00Z")],
        vec![],
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:00:45Z")),
        ["start ns/c now timeout 60s from 10 honouring 2026-01-01T10:00:30Z"]
    );
}

#[test]
fn a_run_now_on_a_due_slot_is_one_run_that_counts_as_the_slot() {
    let c = requested("c", "2026-01-01T11:00:00Z", json!({}));
    let v = view(
        vec![c],
        vec![],
        vec![finished("c", "2026-01-01T10:00:00Z")],
        vec![],
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T11:00:01Z")),
        ["start ns/c due 2026-01-01T11:00:00Z timeout 60s from 10 honouring 2026-01-01T11:00:00Z"]
    );
}

#[test]
fn a_run_now_on_a_suspended_check_is_ignored() {
    let c = requested("c", "2026-01-01T10:20:00Z", json!({"suspend": true}));
    let v = view(
        vec![c],
        vec![],
        vec![finished("c", "2026-01-01T10:00:00Z")],
        vec![],
    );
    assert!(plan_at(&v, "2026-01-01T10:20:01Z").actions.is_empty());
}

#[test]
fn a_cron_check_starts_at_its_slots_and_catches_up_one_missed_slot() {
    let c = with_spec(
        "c",
        json!({"runInterval": null, "schedule": "0 */6 * * *", "timeZone": "Europe/Berlin"}),
    );
    // New: waits for the first slot after its creation (00:00 UTC = 01:00 Berlin).
    let v = view(vec![c.clone()], vec![], vec![], vec![]);
    let p = plan_at(&v, "2026-01-01T00:00:05Z");
    assert!(p.actions.is_empty(), "{:?}", describe(&p));
    assert_eq!(p.wake, Some(ts("2026-01-01T05:00:00Z")), "06:00 in Berlin");

    // After a failover, from the persisted start of the 06:00 slot: the 12:00 slot.
    let v = view(
        vec![c.clone()],
        vec![],
        vec![finished("c", "2026-01-01T05:00:00.2Z")],
        vec![],
    );
    assert_eq!(
        plan_at(&v, "2026-01-01T06:00:00Z").wake,
        Some(ts("2026-01-01T11:00:00Z"))
    );

    // Down for a day: one start for the first missed slot, not four.
    let p = plan_at(&v, "2026-01-02T06:00:00Z");
    assert_eq!(
        describe(&p),
        ["start ns/c due 2026-01-01T11:00:00Z timeout 60s from 10"]
    );
}

#[test]
fn both_or_neither_of_interval_and_schedule_is_invalid() {
    let both = with_spec("both", json!({"schedule": "0 1 * * *"}));
    let neither = with_spec("neither", json!({"runInterval": null}));
    let v = view(vec![both, neither], vec![], vec![], vec![]);
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T00:00:05Z")),
        [
            "invalid ns/both: ns/both: invalid check: spec.schedule: is set together with spec.runInterval; set one of them",
            "invalid ns/neither: ns/neither: invalid check: spec.runInterval: is empty; set how often the check runs, such as \"10m\", or set spec.schedule",
        ]
    );
}

#[test]
fn unknown_dependencies_and_cycles_are_invalid_and_do_not_run() {
    let a = with_spec("a", json!({"dependsOn": ["b"]}));
    let b = with_spec("b", json!({"dependsOn": ["ns/a"]}));
    let lonely = with_spec("lonely", json!({"dependsOn": ["ghost"]}));
    let fine = with_spec("fine", json!({"dependsOn": ["a"]}));
    let v = view(vec![a, b, lonely, fine], vec![], vec![], vec![]);
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T00:00:05Z")),
        [
            "invalid ns/a: ns/a: invalid check: spec.dependsOn: forms a cycle: ns/a -> ns/b -> ns/a; a check cannot depend on itself",
            "invalid ns/b: ns/b: invalid check: spec.dependsOn: forms a cycle: ns/a -> ns/b -> ns/a; a check cannot depend on itself",
            "invalid ns/lonely: ns/lonely: invalid check: spec.dependsOn[0]: names check ns/ghost, which does not exist",
            "start ns/fine due 2026-01-01T00:00:00Z timeout 60s from nothing",
        ],
        "a check that depends on an invalid one still runs"
    );
}

#[test]
fn a_blocked_check_still_runs() {
    let storage = with_spec("storage", json!({}));
    let app = with_spec("app", json!({"dependsOn": ["storage"]}));
    let failing = state(
        "storage",
        json!({"OK": false, "Errors": ["no volume"], "uuid": "s", "LastRun": "2026-01-01T10:00:00Z",
               "runStartedAt": "2026-01-01T10:00:00Z", "runFinishedAt": "2026-01-01T10:00:01Z"}),
    );
    let v = view(
        vec![storage, app],
        vec![],
        vec![failing, finished("app", "2026-01-01T09:00:00Z")],
        vec![],
    );
    let lines = describe(&plan_at(&v, "2026-01-01T10:00:05Z"));
    assert_eq!(
        lines,
        ["start ns/app due 2026-01-01T10:00:00Z timeout 60s from 10"]
    );
}
mod healthchecks;
