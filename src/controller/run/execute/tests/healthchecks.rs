//! The executor's requests for HealthChecks: the status subresource (conditioned on the
//! HealthCheck's version) instead of a khstate, v3's pod, the finalizer release.

use super::*;
use crate::api::HealthCheck;
use crate::api::healthcheck::fixtures;

const HEALTHCHECKS: &str = "/apis/kuberhealthy.github.io/v2/namespaces/ns/healthchecks";

fn healthcheck(status: Value, metadata: Value) -> Arc<HealthCheck> {
    let mut meta = json!({"uid": "uid-hc", "resourceVersion": "20"});
    meta.as_object_mut()
        .unwrap()
        .extend(metadata.as_object().cloned().unwrap_or_default());
    let spec = json!({"runInterval": "1h", "timeout": "1m", "extraLabels": {"team": "a"},
        "podSpec": {"metadata": {"annotations": {"note": "m"}},
                    "spec": {"containers": [{"name": "main", "image": "checker:v1"}],
                             "initContainers": [{"name": "init", "image": "init:v1"}]}}});
    Arc::new(fixtures::healthcheck(NS, "hc", meta, spec, status))
}

fn running() -> Arc<HealthCheck> {
    healthcheck(
        json!({"ok": true, "currentUUID": "run-1", "runUUID": "run-1", "lastRunUnix": 1_767_225_600,
               "runStartedAt": "2026-01-01T00:00:00Z", "runDeadline": "2026-01-01T00:01:00Z",
               "runPod": "hc-run1", "successCount": 3}),
        json!({}),
    )
}

/// The regular start of HealthCheck `hc`, from its own status.
fn start_of(hc: Arc<HealthCheck>) -> Action {
    Action::StartRun {
        owner: Owner::HealthCheck(hc.clone()),
        previous: Some(Record::Status(hc)),
        timeout: Duration::from_secs(60),
        due_at: Some(Timestamp::now()),
        scheduled: true,
        honours: None,
    }
}

#[tokio::test]
async fn a_start_writes_the_status_then_creates_v3s_pod() {
    let hc = healthcheck(
        json!({"ok": false, "errors": ["last"], "failureCount": 2}),
        json!({}),
    );
    let (done, seen) = run(
        start_of(hc),
        vec![
            expect(
                Method::PUT,
                format!("{HEALTHCHECKS}/hc/status"),
                Reply::Echo,
            ),
            expect(Method::POST, PODS, Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none(), "{:?}", done.failure);
    assert_eq!(kinds(&done), ["healthcheck written", "pod created"]);

    let written = &seen[0].2;
    assert_eq!(
        written["metadata"]["resourceVersion"], "20",
        "conditioned on the version read"
    );
    let status = &written["status"];
    let uuid = status["currentUUID"].as_str().unwrap();
    assert!(!uuid.is_empty());
    assert_eq!(status["runUUID"], uuid);
    assert!(status["lastRunUnix"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        status["errors"],
        json!(["last"]),
        "the last result stays while the run is in flight"
    );
    assert_eq!(status["failureCount"], 2);

    let pod = &seen[1].2;
    assert_eq!(pod["metadata"]["name"], status["runPod"]);
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["healthcheck"], "hc");
    assert_eq!(labels["kh-run-uuid"], uuid);
    assert_eq!(labels["team"], "a");
    assert_eq!(labels["app"], "kuberhealthy-check");
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["kuberhealthyCheckName"], "hc");
    assert_eq!(annotations["createdBy"], "kuberhealthy");
    assert_eq!(annotations["kh-run-uuid"], uuid);
    assert_eq!(annotations["note"], "m");
    assert_eq!(
        env(pod, "KH_REPORTING_URL")["value"],
        "http://kh.example/check"
    );
    assert_eq!(
        pod["spec"]["initContainers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "KH_RUN_UUID")
            .unwrap()["value"],
        uuid
    );
    assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "uid-hc");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "HealthCheck");
}

#[tokio::test]
async fn a_start_that_loses_the_status_write_creates_no_pod() {
    let hc = healthcheck(json!(null), json!({}));
    let (done, _) = run(
        start_of(hc),
        vec![expect(
            Method::PUT,
            format!("{HEALTHCHECKS}/hc/status"),
            Reply::Refuse(409, "Conflict"),
        )],
    )
    .await;
    assert!(done.changes.is_empty());
    assert_eq!(done.failure.as_ref().unwrap().label(), "conflict");
}

#[tokio::test]
async fn a_failed_run_is_written_as_v3_writes_a_failure() {
    let hc = running();
    let (done, seen) = run(
        Action::FinishRun {
            owner: Owner::HealthCheck(hc.clone()),
            record: Record::Status(hc),
            ending: Ending::PodFailed,
            message: "ns/hc: checker pod hc-run1 cannot start".into(),
            node: Some("node-1".into()),
            log: None,
            delete_pod: None,
        },
        vec![
            expect(
                Method::PUT,
                format!("{HEALTHCHECKS}/hc/status"),
                Reply::Echo,
            ),
            expect(Method::POST, EVENTS, Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none(), "{:?}", done.failure);
    let status = &seen[0].2["status"];
    assert_eq!(status["ok"], false);
    assert_eq!(
        status["errors"],
        json!(["ns/hc: checker pod hc-run1 cannot start"])
    );
    assert_eq!(status["currentUUID"], "", "the run is over");
    assert_eq!(status["runUUID"], "run-1");
    assert_eq!(
        (
            status["failureCount"].as_i64(),
            status["successCount"].as_i64()
        ),
        (Some(1), Some(3))
    );
    assert_eq!(status["consecutiveFailures"], 1);
    assert_eq!(status["node"], "node-1");
    assert_eq!(seen[1].2["reason"], "RunFailed");
    assert_eq!(seen[1].2["regarding"]["kind"], "HealthCheck");
}

#[tokio::test]
async fn a_healthcheck_takes_over_a_khstate() {
    let hc = healthcheck(json!(null), json!({}));
    let khstate = state(
        "hc",
        json!({"OK": false, "Errors": ["e"], "uuid": "old", "RunDuration": "2s",
               "LastRun": "2026-01-01T00:00:02Z", "runStartedAt": "2026-01-01T00:00:00Z",
               "runFinishedAt": "2026-01-01T00:00:02Z"}),
    );
    let (done, seen) = run(
        Action::SeedStatus {
            healthcheck: hc,
            state: khstate,
        },
        vec![expect(
            Method::PUT,
            format!("{HEALTHCHECKS}/hc/status"),
            Reply::Echo,
        )],
    )
    .await;
    assert!(done.failure.is_none(), "{:?}", done.failure);
    let status = &seen[0].2["status"];
    assert_eq!(status["lastRunUnix"], 1_767_225_600);
    assert_eq!(status["errors"], json!(["e"]));
    assert_eq!(status["runDuration"], 2_000_000_000i64);
}

#[tokio::test]
async fn a_check_takes_over_a_healthchecks_status() {
    let check = check();
    let Owner::Check(check) = check else {
        unreachable!()
    };
    let (done, seen) = run(
        Action::SeedState {
            check,
            healthcheck: healthcheck(
                json!({"ok": true, "lastRunUnix": 1_767_225_600, "lastOKUnix": 1_767_225_601}),
                json!({}),
            ),
        },
        vec![expect(Method::POST, STATES, Reply::Echo)],
    )
    .await;
    assert!(done.failure.is_none(), "{:?}", done.failure);
    assert_eq!(seen[0].2["metadata"]["name"], "c");
    assert_eq!(seen[0].2["spec"]["runStartedAt"], "2026-01-01T00:00:00Z");
    assert_eq!(seen[0].2["spec"]["OK"], true);
}

#[tokio::test]
async fn v3s_finalizer_is_released_after_the_runs_pod_is_deleted() {
    let deleting = healthcheck(
        json!({"currentUUID": "run-1"}),
        json!({"deletionTimestamp": "2026-01-01T00:00:05Z",
               "finalizers": ["kuberhealthy.io/healthcheck", "example.com/other"]}),
    );
    let (done, seen) = run(
        Action::ReleaseHealthCheck {
            healthcheck: deleting,
            delete_pod: Some("hc-run1".into()),
        },
        vec![
            expect(Method::DELETE, format!("{PODS}/hc-run1"), Reply::Echo),
            expect(Method::PUT, format!("{HEALTHCHECKS}/hc"), Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none(), "{:?}", done.failure);
    assert_eq!(
        seen[1].2["metadata"]["finalizers"],
        json!(["example.com/other"])
    );
    assert_eq!(seen[1].2["metadata"]["resourceVersion"], "20");
}
