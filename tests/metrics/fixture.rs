//! A status page with a passing check, a failing one (two errors, with a `"` and a newline),
//! a check in another namespace, a check that never reported, and a job, as the cache would
//! hold them at a fixed instant.

use kuberhealthy::controller::status::NextTurn;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kuberhealthy::api::{HealthCheck, KuberhealthyCheck, KuberhealthyState, KuberhealthyStateSpec};
use kuberhealthy::controller::config::PromMetricsConfig;
use kuberhealthy::controller::metrics::{
    Metrics, MetricsSettings, MetricsSources, OtlpSettings, RunOutcome,
};
use kuberhealthy::controller::status::{self, Snapshot, StatusPage, v3};
use serde_json::json;

pub const NOW: &str = "2021-03-01T06:10:00Z";
pub const MASTER: &str = "kuberhealthy-84bf9fd647-2x72f";

fn check(namespace: &str, name: &str) -> Arc<KuberhealthyCheck> {
    let value = json!({
        "apiVersion": "comcast.github.io/v1",
        "kind": "KuberhealthyCheck",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2021-02-01T00:00:00Z"},
        "spec": {
            "runInterval": "5m",
            "timeout": "2m",
            "podSpec": {"containers": [{"name": "main", "image": "example/checker:v1"}]}
        }
    });
    Arc::new(serde_json::from_value(value).unwrap())
}

fn state(namespace: &str, name: &str, spec: serde_json::Value) -> Arc<KuberhealthyState> {
    let spec: KuberhealthyStateSpec = serde_json::from_value(spec).unwrap();
    let mut s = KuberhealthyState::new(name, spec);
    s.metadata.namespace = Some(namespace.into());
    Arc::new(s)
}

fn result(namespace: &str, ok: bool, errors: &[&str], duration: &str) -> serde_json::Value {
    json!({
        "OK": ok, "Errors": errors, "RunDuration": duration, "Namespace": namespace,
        "Node": "node-1", "LastRun": "2021-03-01T06:08:09Z", "AuthoritativePod": MASTER,
        "uuid": "1d309ed7-4b7a-4fd5-9706-d04f53c9ed30"
    })
}

/// The page `GET /` would show for the fixture.
pub fn page() -> StatusPage {
    let checks = vec![
        check("kuberhealthy", "dns-status-internal"),
        check("kuberhealthy", "deployment"),
        check("team-b", "pvc-check"),
        check("team-b", "never-ran"),
    ];
    let mut job = result("kuberhealthy", true, &[], "12s");
    job["khWorkload"] = json!("KHJob");
    let states = vec![
        state(
            "kuberhealthy",
            "dns-status-internal",
            result("kuberhealthy", true, &[], "3.359431829s"),
        ),
        state(
            "kuberhealthy",
            "deployment",
            result(
                "kuberhealthy",
                false,
                &[
                    "pod \"deployment-abc\" failed: CrashLoopBackOff",
                    "rollout timed out\nafter 5m0s",
                ],
                "2m0.5s",
            ),
        ),
        state("team-b", "pvc-check", result("team-b", true, &[], "1m2.5s")),
        state("kuberhealthy", "image-pull-job", job),
    ];
    let metadata = BTreeMap::new();
    let snapshot = Snapshot {
        checks: &checks,
        jobs: &[],
        states: &states,
        healthchecks: &[],
        current_master: Some(MASTER),
        metadata: &metadata,
        now: NOW.parse::<Timestamp>().unwrap(),
    };
    status::render(&snapshot, &BTreeSet::new())
}

/// Metrics that read the fixture page, as the leader, with some controller activity recorded.
pub fn metrics(prom: PromMetricsConfig, otlp: Option<OtlpSettings>) -> Metrics {
    let page = page();
    let metrics = Metrics::new(
        MetricsSettings {
            prom,
            otlp,
            instance: MASTER.into(),
        },
        MetricsSources {
            page: Arc::new(move || (page.clone(), NextTurn::default())),
            v3_page: Arc::new(|| (v3::StatusPage::default(), NextTurn::default())),
            is_leader: Arc::new(|| true),
            changes: None,
        },
    )
    .expect("metrics build");
    let controller = metrics.controller();
    controller.run_started("kuberhealthy", "deployment");
    controller.run_started("kuberhealthy", "dns-status-internal");
    controller.run_finished("kuberhealthy", "deployment", RunOutcome::Failed);
    controller.run_finished("kuberhealthy", "dns-status-internal", RunOutcome::Succeeded);
    controller.run_finished("team-b", "pvc-check", RunOutcome::TimedOut);
    controller.report_handled(200, Duration::from_millis(42));
    controller.report_handled(409, Duration::from_millis(3));
    controller.run_started_late(Duration::from_millis(1500));
    metrics
}

fn healthcheck(
    namespace: &str,
    name: &str,
    status: serde_json::Value,
    labels: serde_json::Value,
) -> Arc<HealthCheck> {
    let value = json!({
        "apiVersion": "kuberhealthy.github.io/v2",
        "kind": "HealthCheck",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "creationTimestamp": "2021-02-01T00:00:00Z"},
        "spec": {
            "runInterval": "5m",
            "timeout": "2m",
            "podSpec": {"spec": {"containers": [{"name": "main", "image": "example/checker:v1"}]}}
        },
        "status": status,
    });
    Arc::new(serde_json::from_value(value).unwrap())
}

fn unix(t: &str) -> i64 {
    t.parse::<Timestamp>().unwrap().as_second()
}

/// Metrics with HealthChecks: a passing one labelled with v3's severity and category, a
/// failing one that never passed, one in another namespace of the same name, and a
/// KuberhealthyCheck sharing the passing one's namespace and name; two runs' durations.
pub fn healthcheck_metrics() -> Metrics {
    let checks = vec![check("kuberhealthy", "deployment")];
    let states = vec![state(
        "kuberhealthy",
        "deployment",
        result("kuberhealthy", true, &[], "3s"),
    )];
    let healthchecks = vec![
        healthcheck(
            "kuberhealthy",
            "deployment",
            json!({"ok": true, "namespace": "kuberhealthy", "currentUUID": "",
                   "lastRunUnix": unix("2021-03-01T06:08:00Z"), "runDuration": 9_000_000_000i64,
                   "runFinishedAt": "2021-03-01T06:08:09Z", "successCount": 40, "failureCount": 2,
                   "lastOKUnix": unix("2021-03-01T06:08:09Z")}),
            json!({"kuberhealthy.io/severity": "warning", "kuberhealthy.io/category": "workload"}),
        ),
        healthcheck(
            "kuberhealthy",
            "dns",
            json!({"ok": false, "errors": ["lookup kubernetes.default: no such host"],
                   "namespace": "kuberhealthy", "currentUUID": "",
                   "lastRunUnix": unix("2021-03-01T06:09:00Z"), "runDuration": 500_000_000,
                   "runFinishedAt": "2021-03-01T06:09:00.5Z", "consecutiveFailures": 3,
                   "failureCount": 3, "lastFailureUnix": unix("2021-03-01T06:09:00Z")}),
            json!({}),
        ),
        healthcheck(
            "team-b",
            "dns",
            json!({"ok": true, "namespace": "team-b", "currentUUID": "",
                   "lastRunUnix": unix("2021-03-01T06:09:30Z"), "runDuration": 1_000_000_000,
                   "runFinishedAt": "2021-03-01T06:09:31Z", "successCount": 1,
                   "lastOKUnix": unix("2021-03-01T06:09:31Z")}),
            json!({}),
        ),
    ];
    let metadata = BTreeMap::new();
    let snapshot = || Snapshot {
        checks: &checks,
        jobs: &[],
        states: &states,
        healthchecks: &healthchecks,
        current_master: Some(MASTER),
        metadata: &metadata,
        now: NOW.parse::<Timestamp>().unwrap(),
    };
    let v2_page = status::render(&snapshot(), &BTreeSet::new());
    let v3_page = v3::render(&snapshot(), &BTreeSet::new());
    let metrics = Metrics::new(
        MetricsSettings {
            prom: PromMetricsConfig::default(),
            otlp: None,
            instance: MASTER.into(),
        },
        MetricsSources {
            page: Arc::new(move || (v2_page.clone(), NextTurn::default())),
            v3_page: Arc::new(move || (v3_page.clone(), NextTurn::default())),
            is_leader: Arc::new(|| true),
            changes: None,
        },
    )
    .expect("metrics build");
    let controller = metrics.controller();
    controller.healthcheck_run_finished(Duration::from_secs(9));
    controller.healthcheck_run_finished(Duration::from_millis(500));
    metrics
}
