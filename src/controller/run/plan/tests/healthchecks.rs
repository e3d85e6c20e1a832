//! The planner's rules for v3 HealthChecks: the same rules as checks, with the status as the
//! run record, and v3's own cases (singleRunOnly, runs v3 started, its finalizer, migration).

use super::*;
use crate::api::HealthCheck;
use crate::api::healthcheck::fixtures;

fn healthcheck_with(name: &str, spec: Value, status: Value, metadata: Value) -> Arc<HealthCheck> {
    let mut meta = json!({"creationTimestamp": CREATED, "uid": format!("uid-hc-{name}"),
                          "resourceVersion": "20"});
    meta.as_object_mut()
        .unwrap()
        .extend(metadata.as_object().cloned().unwrap_or_default());
    Arc::new(fixtures::healthcheck(NS, name, meta, spec, status))
}

fn spec(interval: &str) -> Value {
    json!({"runInterval": interval, "timeout": "1m",
           "podSpec": {"spec": {"containers": [{"name": "main", "image": "checker:v1"}]}}})
}

fn healthcheck(name: &str, interval: &str, status: Value) -> Arc<HealthCheck> {
    healthcheck_with(name, spec(interval), status, json!({}))
}

fn unix(t: &str) -> i64 {
    ts(t).as_second()
}

/// A status whose last run started at `started` and passed a second later.
fn ran(started: &str) -> Value {
    let at = ts(started);
    let ended = add(at, Duration::from_secs(1));
    json!({"ok": true, "currentUUID": "", "runUUID": "old", "lastRunUnix": at.as_second(),
           "runStartedAt": at, "runFinishedAt": ended, "lastOKUnix": ended.as_second(),
           "runDeadline": add(at, Duration::from_secs(60)), "runPod": "hc-0ld00000",
           "successCount": 1})
}

/// A status with run `run-1` in flight since `started`, its pod `pod`.
fn running_status(started: &str, pod: &str) -> Value {
    let at = ts(started);
    json!({"ok": true, "currentUUID": "run-1", "runUUID": "run-1", "lastRunUnix": at.as_second(),
           "runStartedAt": at, "runDeadline": add(at, Duration::from_secs(60)), "runPod": pod,
           "runTerm": {"holder": "kh-0", "transitions": 1}})
}

fn hc_pod(name: &str, healthcheck: &str, status: Value) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": CREATED,
                         "labels": {"healthcheck": healthcheck, "kh-run-uuid": "run-1",
                                    "app": "kuberhealthy-check"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "checker:v1"}]},
            "status": status,
        }))
        .unwrap(),
    )
}

fn hc_view(
    checks: Vec<Arc<KuberhealthyCheck>>,
    states: Vec<Arc<KuberhealthyState>>,
    healthchecks: Vec<Arc<HealthCheck>>,
    pods: Vec<Arc<Pod>>,
) -> View {
    View::new(checks, vec![], states, pods).with_healthchecks(healthchecks)
}

#[test]
fn a_new_healthcheck_is_due_at_its_creation_and_starts_from_its_own_version() {
    let v = hc_view(
        vec![],
        vec![],
        vec![healthcheck("hc", "1h", json!(null))],
        vec![],
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T00:00:05Z")),
        ["start ns/hc due 2026-01-01T00:00:00Z timeout 60s from 20"]
    );
}

#[test]
fn v3s_defaults_apply_to_absent_durations() {
    let bare = healthcheck_with(
        "hc",
        json!({"podSpec": {"spec": {"containers": [{"name": "main", "image": "c:v1"}]}}}),
        json!(null),
        json!({}),
    );
    let v = hc_view(vec![], vec![], vec![bare], vec![]);
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T00:00:05Z")),
        ["start ns/hc due 2026-01-01T00:00:00Z timeout 30s from 20"]
    );
}

#[test]
fn the_timer_is_the_persisted_start_ours_or_v3s() {
    let v = hc_view(
        vec![],
        vec![],
        vec![healthcheck("hc", "1h", ran("2026-01-01T10:00:00.5Z"))],
        vec![],
    );
    let p = plan_at(&v, "2026-01-01T10:30:00Z");
    assert!(p.actions.is_empty(), "{:?}", describe(&p));
    assert_eq!(p.wake, Some(ts("2026-01-01T11:00:00.5Z")));

    // A status Kuberhealthy v3 wrote: its lastRunUnix is the timer.
    let by_v3 = json!({"ok": true, "currentUUID": "", "lastRunUnix": unix("2026-01-01T10:00:00Z"),
                       "lastOKUnix": unix("2026-01-01T10:00:04Z"), "successCount": 7});
    let v = hc_view(vec![], vec![], vec![healthcheck("hc", "1h", by_v3)], vec![]);
    let p = plan_at(&v, "2026-01-01T10:30:00Z");
    assert!(
        p.actions.is_empty(),
        "a switch from v3 does not run every check at once"
    );
    assert_eq!(p.wake, Some(ts("2026-01-01T11:00:00Z")));
}

#[test]
fn a_run_in_flight_is_supervised_like_a_checks() {
    let in_flight = healthcheck(
        "hc",
        "1h",
        running_status("2026-01-01T10:00:00Z", "hc-run1"),
    );
    // Its pod is missing after a failover: the new leader creates it, once.
    let v = hc_view(vec![], vec![], vec![in_flight.clone()], vec![]);
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:00:10Z")),
        ["adopt ns/hc run run-1"]
    );
    // Running: wait for the deadline.
    let v = hc_view(
        vec![],
        vec![],
        vec![in_flight.clone()],
        vec![hc_pod("hc-run1", "hc", running())],
    );
    let p = plan_at(&v, "2026-01-01T10:00:30Z");
    assert!(p.actions.is_empty());
    assert_eq!(p.wake, Some(ts("2026-01-01T10:01:00Z")));
    // An image that cannot be pulled fails the run at once.
    let pulling = json!({"phase": "Pending", "containerStatuses": [{"name": "main", "image": "",
        "imageID": "", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff"}}}]});
    let v = hc_view(
        vec![],
        vec![],
        vec![in_flight.clone()],
        vec![hc_pod("hc-run1", "hc", pulling)],
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:00:03Z")),
        [
            "finish ns/hc PodFailed on Some(\"node-1\") deleting None: ns/hc: checker pod hc-run1 cannot start: container main is waiting with ImagePullBackOff"
        ]
    );
    // Past the deadline: timed out, the pod deleted.
    let v = hc_view(
        vec![],
        vec![],
        vec![in_flight],
        vec![hc_pod("hc-run1", "hc", running())],
    );
    let lines = describe(&plan_at(&v, "2026-01-01T10:01:00Z"));
    assert!(
        lines[0]
            .starts_with("finish ns/hc TimedOut on Some(\"node-1\") deleting Some(\"hc-run1\")"),
        "{lines:?}"
    );
}

#[test]
fn a_run_v3_started_waits_for_its_report_until_v3s_deadline() {
    let by_v3 = json!({"currentUUID": "v3-run", "lastRunUnix": unix("2026-01-01T10:00:00Z")});
    let v = hc_view(vec![], vec![], vec![healthcheck("hc", "1h", by_v3)], vec![]);
    let p = plan_at(&v, "2026-01-01T10:00:30Z");
    assert!(
        p.actions.is_empty(),
        "no second pod for v3's run: {:?}",
        describe(&p)
    );
    assert_eq!(
        p.wake,
        Some(ts("2026-01-01T10:01:00Z")),
        "lastRunUnix + timeout"
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:01:00Z")),
        [
            "finish ns/hc TimedOut on None deleting None: ns/hc: timed out waiting for checker pod to report in (deadline 2026-01-01T10:01:00Z; the run was started by Kuberhealthy v3)"
        ]
    );
}

#[test]
fn single_run_only_runs_once() {
    let mut once = spec("2s");
    once["singleRunOnly"] = json!(true);
    let new = healthcheck_with("once", once.clone(), json!(null), json!({}));
    let v = hc_view(vec![], vec![], vec![new], vec![]);
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T00:00:01Z")),
        ["start ns/once due 2026-01-01T00:00:00Z timeout 60s from 20"]
    );
    let done = healthcheck_with("once", once, ran("2026-01-01T00:00:01Z"), json!({}));
    let v = hc_view(vec![], vec![], vec![done], vec![]);
    let p = plan_at(&v, "2026-01-02T00:00:00Z");
    assert!(p.actions.is_empty(), "{:?}", describe(&p));
    assert_eq!(p.wake, None, "nothing is ever due again");
}

#[test]
fn an_invalid_healthcheck_is_marked_once_and_never_started() {
    let bad = healthcheck_with(
        "bad",
        json!({"runInterval": "often", "podSpec": {"spec": {"containers": [{"name": "main"}]}}}),
        json!(null),
        json!({}),
    );
    let v = hc_view(vec![], vec![], vec![bad], vec![]);
    let p = plan_at(&v, "2026-01-01T00:00:05Z");
    let Action::MarkInvalid { errors, .. } = &p.actions[0] else {
        panic!("{:?}", describe(&p))
    };
    assert_eq!(p.actions.len(), 1);
    assert!(errors[0].starts_with("ns/bad: invalid HealthCheck: spec.runInterval:"));
    assert!(
        errors[1]
            .starts_with("ns/bad: invalid HealthCheck: spec.podSpec.spec.containers[0].image:")
    );
    let marked = healthcheck_with(
        "bad",
        json!({"runInterval": "often", "podSpec": {"spec": {"containers": [{"name": "main"}]}}}),
        json!({"ok": false, "errors": errors}),
        json!({}),
    );
    let v = hc_view(vec![], vec![], vec![marked], vec![]);
    assert!(plan_at(&v, "2026-01-01T00:00:06Z").actions.is_empty());
}

#[test]
fn a_check_and_a_healthcheck_of_one_name_run_apart() {
    let v = hc_view(
        vec![check("same", "1h")],
        vec![finished("same", "2026-01-01T10:00:00Z")],
        vec![healthcheck("same", "1h", ran("2026-01-01T10:20:00Z"))],
        vec![],
    );
    let p = plan_at(&v, "2026-01-01T11:00:00Z");
    assert_eq!(
        describe(&p),
        ["start ns/same due 2026-01-01T11:00:00Z timeout 60s from 10"],
        "the check from its khstate"
    );
    assert_eq!(
        p.wake,
        Some(ts("2026-01-01T11:20:00Z")),
        "the HealthCheck from its status"
    );
}

#[test]
fn a_new_healthcheck_takes_over_the_khstate_of_the_check_it_replaces() {
    let state = finished("dns", "2026-01-01T10:00:00Z");
    let v = hc_view(
        vec![],
        vec![state.clone()],
        vec![healthcheck("dns", "1h", json!(null))],
        vec![],
    );
    let mut memory = Memory::default();
    // The check was seen, then deleted: its state would go now.
    let mut seen = hc_view(
        vec![check("dns", "1h")],
        vec![state.clone()],
        vec![],
        vec![],
    );
    memory.lay_over(&mut seen);
    let mut v2 = v.clone();
    memory.lay_over(&mut v2);
    let p = plan(&v2, &memory, &settings(), ts("2026-01-01T10:30:00Z"), 10);
    assert_eq!(
        describe(&p),
        ["seed healthcheck dns from state dns at 10"],
        "not started, and the state kept for this pass"
    );

    // Seeded: the HealthCheck keeps the check's timer; the state goes.
    let Action::SeedStatus {
        healthcheck: hc,
        state,
    } = &p.actions[0]
    else {
        unreachable!()
    };
    let status = crate::controller::run::healthcheck::seeded_from_state(&state.spec, NS);
    let mut seeded = (**hc).clone();
    seeded.status = Some(status);
    seeded.metadata.resource_version = Some("21".into());
    memory.record(Change::HealthCheckWritten {
        replaced: Some("20".into()),
        healthcheck: Arc::new(seeded),
    });
    let mut v3 = v.clone();
    memory.lay_over(&mut v3);
    let p = plan(&v3, &memory, &settings(), ts("2026-01-01T10:30:01Z"), 10);
    assert_eq!(
        describe(&p),
        ["delete state dns: its check or job was deleted"]
    );
    assert_eq!(
        p.wake,
        Some(ts("2026-01-01T11:00:00Z")),
        "the check's next start"
    );
}

#[test]
fn a_new_check_takes_over_the_status_of_the_healthcheck_it_replaces() {
    let v = hc_view(
        vec![check("dns", "1h")],
        vec![],
        vec![healthcheck("dns", "1h", ran("2026-01-01T10:00:00Z"))],
        vec![],
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:30:00Z")),
        ["seed state of dns from healthcheck dns"]
    );
}

#[test]
fn a_healthcheck_deleted_under_v3s_finalizer_is_released() {
    let deleting = healthcheck_with(
        "hc",
        spec("1h"),
        running_status("2026-01-01T10:00:00Z", "hc-run1"),
        json!({"deletionTimestamp": "2026-01-01T10:00:05Z",
               "finalizers": ["kuberhealthy.io/healthcheck"]}),
    );
    let v = hc_view(
        vec![],
        vec![],
        vec![deleting],
        vec![hc_pod("hc-run1", "hc", running())],
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:00:06Z")),
        ["release healthcheck hc deleting Some(\"hc-run1\")"]
    );
    // Another controller's finalizer: not ours to release, and no run starts.
    let other = healthcheck_with(
        "hc",
        spec("1h"),
        ran("2026-01-01T08:00:00Z"),
        json!({"deletionTimestamp": "2026-01-01T10:00:05Z", "finalizers": ["example.com/x"]}),
    );
    let v = hc_view(vec![], vec![], vec![other], vec![]);
    assert!(plan_at(&v, "2026-01-01T10:00:06Z").actions.is_empty());
}

#[test]
fn pods_of_deleted_healthchecks_go_unless_healthchecks_are_not_served() {
    let pods = vec![hc_pod(
        "gone-1",
        "gone",
        ended("Succeeded", 0, "2026-01-01T10:00:00Z"),
    )];
    let v = hc_view(vec![], vec![], vec![], pods.clone());
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:00:05Z")),
        ["delete pod gone-1: its HealthCheck was deleted"]
    );
    let v = view(vec![], vec![], vec![], pods);
    assert!(plan_at(&v, "2026-01-01T10:00:05Z").actions.is_empty());
}

#[test]
fn retention_counts_a_healthchecks_pods_apart_and_spares_its_run_in_flight() {
    let v = hc_view(
        vec![check("same", "1h")],
        vec![finished("same", "2026-01-01T10:04:00Z")],
        vec![healthcheck(
            "same",
            "1m",
            running_status("2026-01-01T10:05:00Z", "same-now"),
        )],
        vec![
            pod(
                "same-v1",
                "same",
                ended("Succeeded", 0, "2026-01-01T10:04:01Z"),
            ),
            hc_pod(
                "same-ok1",
                "same",
                ended("Succeeded", 0, "2026-01-01T10:01:00Z"),
            ),
            hc_pod(
                "same-ok2",
                "same",
                ended("Succeeded", 0, "2026-01-01T10:02:00Z"),
            ),
            hc_pod("same-now", "same", running()),
        ],
    );
    assert_eq!(
        describe(&plan_at(&v, "2026-01-01T10:05:10Z")),
        ["delete pod same-ok1: more succeeded pods than maxCompletedPodCount"]
    );
}

#[test]
fn a_status_this_term_wrote_counts_until_the_cache_shows_a_newer_version() {
    let cached = healthcheck("hc", "1h", ran("2026-01-01T10:00:00Z"));
    let mut written = (*healthcheck(
        "hc",
        "1h",
        running_status("2026-01-01T11:00:00Z", "hc-run1"),
    ))
    .clone();
    written.metadata.resource_version = Some("21".into());
    let mut memory = Memory::default();
    memory.record(Change::HealthCheckWritten {
        replaced: Some("20".into()),
        healthcheck: Arc::new(written),
    });
    let mut v = hc_view(vec![], vec![], vec![cached], vec![]);
    memory.lay_over(&mut v);
    let p = plan(&v, &memory, &settings(), ts("2026-01-01T11:00:01Z"), 10);
    assert_eq!(
        describe(&p),
        ["adopt ns/hc run run-1"],
        "the run this term started"
    );
}
