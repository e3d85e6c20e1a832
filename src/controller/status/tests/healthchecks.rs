//! HealthChecks on the v2 page (keyed `namespace/name`, told apart from a KuberhealthyCheck of
//! the same name) and v3's own page (golden).

use super::*;
use crate::api::HealthCheck;

const NOW: &str = "2026-03-01T06:10:00Z";

fn unix(t: &str) -> i64 {
    ts(t).as_second()
}

fn healthcheck(
    namespace: &str,
    name: &str,
    spec: serde_json::Value,
    status: serde_json::Value,
    labels: serde_json::Value,
) -> Arc<HealthCheck> {
    let metadata =
        serde_json::json!({"labels": labels, "creationTimestamp": "2026-02-01T00:00:00Z"});
    Arc::new(crate::api::healthcheck::fixtures::healthcheck(
        namespace, name, metadata, spec, status,
    ))
}

fn spec(interval: &str, timeout: &str) -> serde_json::Value {
    serde_json::json!({"runInterval": interval, "timeout": timeout,
        "podSpec": {"spec": {"containers": [{"name": "main", "image": "example/checker:v1"}]}}})
}

/// What the cache holds: checks, their states, HealthChecks.
type Cached = (
    Vec<Arc<KuberhealthyCheck>>,
    Vec<Arc<KuberhealthyState>>,
    Vec<Arc<HealthCheck>>,
);

/// A passing and a failing HealthCheck, one of the same name in another namespace, one in
/// flight, an invalid one, one never run; and a KuberhealthyCheck named like one of them.
fn fixture() -> Cached {
    let healthchecks = vec![
        healthcheck(
            "kuberhealthy",
            "deployment",
            spec("10m", "5m"),
            serde_json::json!({"ok": true, "currentUUID": "", "runUUID": "d-run-41",
                "namespace": "kuberhealthy", "lastRunUnix": unix("2026-03-01T06:05:00Z"),
                "runStartedAt": "2026-03-01T06:05:00Z", "runFinishedAt": "2026-03-01T06:05:12.5Z",
                "runDuration": 12_500_000_000i64, "successCount": 40, "failureCount": 2,
                "lastOKUnix": unix("2026-03-01T06:05:12Z"),
                "lastFailureUnix": unix("2026-02-20T00:00:00Z"), "node": "node-1"}),
            serde_json::json!({"kuberhealthy.io/severity": "warning",
                               "kuberhealthy.io/category": "workload"}),
        ),
        healthcheck(
            "kuberhealthy",
            "dns",
            spec("2m", "30s"),
            serde_json::json!({"ok": false, "errors": ["lookup kubernetes.default: no such host"],
                "currentUUID": "", "namespace": "kuberhealthy",
                "lastRunUnix": unix("2026-03-01T06:09:00Z"), "runDuration": 1_250_000_000,
                "consecutiveFailures": 2, "successCount": 10, "failureCount": 2,
                "lastOKUnix": unix("2026-03-01T06:05:00Z"),
                "lastFailureUnix": unix("2026-03-01T06:09:01Z")}),
            serde_json::json!({"kuberhealthy.io/severity": "critical"}),
        ),
        healthcheck(
            "team-b",
            "dns",
            spec("2m", "30s"),
            serde_json::json!({"ok": true, "currentUUID": "",
                "lastRunUnix": unix("2026-03-01T06:09:30Z"), "successCount": 1,
                "lastOKUnix": unix("2026-03-01T06:09:31Z")}),
            serde_json::json!({}),
        ),
        healthcheck(
            "kuberhealthy",
            "in-flight",
            spec("5m", "1m"),
            serde_json::json!({"ok": true, "currentUUID": "f-run-2", "runUUID": "f-run-2",
                "lastRunUnix": unix("2026-03-01T06:09:50Z"),
                "runStartedAt": "2026-03-01T06:09:50Z", "runDeadline": "2026-03-01T06:10:50Z",
                "runPod": "in-flight-0a1b2c3d", "successCount": 1,
                "lastOKUnix": unix("2026-03-01T06:04:52Z"),
                "runFinishedAt": "2026-03-01T06:04:52Z"}),
            serde_json::json!({}),
        ),
        healthcheck(
            "kuberhealthy",
            "broken",
            serde_json::json!({"runInterval": "often"}),
            serde_json::json!(null),
            serde_json::json!({}),
        ),
        healthcheck(
            "kuberhealthy",
            "brand-new",
            spec("1h", "1m"),
            serde_json::json!(null),
            serde_json::json!({}),
        ),
    ];
    let checks = vec![check(
        "kuberhealthy",
        "deployment",
        "10m",
        "5m",
        "2026-01-01T00:00:00Z",
    )];
    let states = vec![state(
        "kuberhealthy",
        "deployment",
        serde_json::json!({"OK": true, "Errors": [], "RunDuration": "3s", "Namespace": "kuberhealthy",
            "Node": "node-2", "LastRun": "2026-03-01T06:08:00Z", "AuthoritativePod": "kh-0",
            "uuid": "v1-run"}),
    )];
    // The brand-new one was created just now: hidden until a first result is due.
    let mut healthchecks = healthchecks;
    let mut new = (*healthchecks[5]).clone();
    new.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        ts("2026-03-01T06:09:59Z"),
    ));
    healthchecks[5] = Arc::new(new);
    (checks, states, healthchecks)
}

fn snapshot<'a>(
    checks: &'a [Arc<KuberhealthyCheck>],
    states: &'a [Arc<KuberhealthyState>],
    healthchecks: &'a [Arc<HealthCheck>],
    metadata: &'a BTreeMap<String, String>,
) -> Snapshot<'a> {
    Snapshot {
        checks,
        jobs: &[],
        states,
        healthchecks,
        current_master: Some("kuberhealthy-0"),
        metadata,
        now: ts(NOW),
    }
}

#[test]
fn healthchecks_are_checks_on_the_v2_page_told_apart_by_kind_and_key() {
    let (checks, states, healthchecks) = fixture();
    let metadata = BTreeMap::new();
    let page = render(
        &snapshot(&checks, &states, &healthchecks, &metadata),
        &BTreeSet::new(),
    );
    let keys: Vec<&str> = page.check_details.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "kuberhealthy/broken",
            "kuberhealthy/deployment",
            "kuberhealthy/deployment (HealthCheck)",
            "kuberhealthy/dns",
            "kuberhealthy/in-flight",
            "team-b/dns"
        ]
    );
    let v1 = serde_json::to_value(&page.check_details["kuberhealthy/deployment"]).unwrap();
    assert!(v1.get("kind").is_none(), "v2's entries are unchanged");
    let hc =
        serde_json::to_value(&page.check_details["kuberhealthy/deployment (HealthCheck)"]).unwrap();
    assert_eq!(hc["kind"], "HealthCheck");
    assert_eq!(hc["OK"], true);
    assert_eq!(hc["RunDuration"], "12.5s");
    assert_eq!(hc["LastRun"], "2026-03-01T06:05:12.5Z");
    assert_eq!(hc["Node"], "node-1");
    assert_eq!(hc["uuid"], "d-run-41");
    assert_eq!(hc["nextRunAt"], "2026-03-01T06:15:00Z");
    let dns = &page.check_details["kuberhealthy/dns"];
    assert_eq!(
        (dns.ok, dns.errors.clone(), dns.consecutive_failures),
        (
            false,
            vec!["lookup kubernetes.default: no such host".to_string()],
            2
        )
    );
    let broken = &page.check_details["kuberhealthy/broken"];
    assert!(!broken.ok);
    assert!(
        broken.errors[0].starts_with("kuberhealthy/broken: invalid HealthCheck: spec.runInterval:"),
        "{:?}",
        broken.errors
    );
    assert!(!page.ok);

    // One namespace: its HealthChecks only.
    let only_b = render(
        &snapshot(&checks, &states, &healthchecks, &metadata),
        &parse_namespace_filter(Some("team-b")),
    );
    assert_eq!(
        only_b.check_details.keys().collect::<Vec<_>>(),
        ["team-b/dns"]
    );
    assert!(only_b.ok);
}

#[test]
fn golden_v3_status_page() {
    let (checks, states, healthchecks) = fixture();
    let metadata = BTreeMap::from([("cluster".to_string(), "prod".to_string())]);
    let page = v3::render(
        &snapshot(&checks, &states, &healthchecks, &metadata),
        &BTreeSet::new(),
    );
    insta::assert_json_snapshot!(page);
}

#[test]
fn the_v3_page_keys_bare_names_unless_two_namespaces_share_one() {
    let (checks, states, healthchecks) = fixture();
    let metadata = BTreeMap::new();
    let page = v3::render(
        &snapshot(&checks, &states, &healthchecks, &metadata),
        &BTreeSet::new(),
    );
    let value = serde_json::to_value(&page).unwrap();
    let top: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        top,
        ["CheckDetails", "CurrentMaster", "Errors", "Metadata", "OK"]
    );
    let keys: Vec<&str> = page.check_details.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "broken",
            "deployment",
            "in-flight",
            "kuberhealthy/dns",
            "team-b/dns"
        ]
    );
    let running = &value["CheckDetails"]["in-flight"];
    assert_eq!(running["podName"], "in-flight-0a1b2c3d");
    assert!(
        running.get("nextRunUnix").is_none(),
        "only when not running"
    );
    assert_eq!(running["currentUUID"], "f-run-2");
    let idle = &value["CheckDetails"]["deployment"];
    assert!(idle.get("podName").is_none());
    assert_eq!(idle["currentUUID"], "", "always present");
    assert_eq!(idle["nextRunUnix"], unix("2026-03-01T06:15:00Z"));
    assert_eq!(
        (
            idle["timeoutSeconds"].as_i64(),
            idle["runIntervalSeconds"].as_i64()
        ),
        (Some(300), Some(600))
    );

    // Filtered to one namespace, the names are unique again.
    let b = v3::render(
        &snapshot(&checks, &states, &healthchecks, &metadata),
        &parse_namespace_filter(Some("team-b")),
    );
    assert_eq!(b.check_details.keys().collect::<Vec<_>>(), ["dns"]);
}
