//! Report intake on real replicas: every answer with its status and reason, a report to a
//! follower visible on every replica within a second, a re-sent report counted once, and
//! status-page and metrics requests that cost the API server nothing.

use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::{Replica, TestCluster, TestContext, http, manifests, metrics, wait_until};
use serde_json::Value;

use crate::{TIMEOUT, cluster};

fn khstates(client: kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("comcast.github.io", "v1", "KuberhealthyState");
    Api::namespaced_with(
        client,
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "khstates"),
    )
}

/// A check whose checker sleeps, so its run stays in flight while the test reports for it.
fn sleeping_check(name: &str, interval: &str, timeout: &str) -> String {
    format!(
        r#"
apiVersion: comcast.github.io/v1
kind: KuberhealthyCheck
metadata:
  name: {name}
spec:
  runInterval: {interval}
  timeout: {timeout}
  podSpec:
    containers:
    - name: main
      image: example.test/sleeper:v1
      command: ["sleep", "300"]
"#
    )
}

async fn install_crds(ctx: &TestContext) {
    let crds = std::fs::read_to_string(workspace_root().join("charts/kuberhealthy/crds/crds.yaml"))
        .unwrap();
    manifests::install_crds(&ctx.client().await.unwrap(), &crds, TIMEOUT)
        .await
        .unwrap();
}

/// The spec of khstate `name` once `ready` holds for it.
async fn state_when(
    ctx: &TestContext,
    name: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    ctx.khstate_spec_when(name, what, TIMEOUT, ready)
        .await
        .unwrap()
}

fn in_flight(spec: &Value) -> bool {
    spec["uuid"].as_str().is_some_and(|u| !u.is_empty())
        && spec.get("runStartedAt").is_some()
        && spec.get("runFinishedAt").is_none()
}

fn replica(ctx: &TestContext, name: &str) -> Replica {
    let addr = ctx.free_address().unwrap();
    let mut options = ctx.replica_options(name);
    options.listen_port = Some(addr.port());
    options.target_namespace = Some(ctx.namespace().to_string());
    options.external_reporting_url = Some(format!("http://{addr}/externalCheckStatus"));
    options.env.extend([
        (
            "KH_LEADER_ELECTION_NAME".to_string(),
            "kuberhealthy".to_string(),
        ),
        (
            "KH_LEADER_ELECTION_LEASE_DURATION".to_string(),
            "3s".to_string(),
        ),
        (
            "KH_LEADER_ELECTION_RENEW_DEADLINE".to_string(),
            "2s".to_string(),
        ),
        (
            "KH_LEADER_ELECTION_RETRY_PERIOD".to_string(),
            "500ms".to_string(),
        ),
    ]);
    Replica::spawn(options).unwrap()
}

/// A request that must be refused, and how.
struct Refusal<'a> {
    what: &'a str,
    method: &'a str,
    path: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: Vec<u8>,
    status: u16,
    reason: &'a str,
}

impl<'a> Refusal<'a> {
    #[allow(clippy::too_many_arguments)] // One row of the table, named at the call site.
    fn new(
        what: &'a str,
        method: &'a str,
        path: &'a str,
        headers: &[(&'a str, &'a str)],
        body: &[u8],
        status: u16,
        reason: &'a str,
    ) -> Self {
        Refusal {
            what,
            method,
            path,
            headers: headers.to_vec(),
            body: body.to_vec(),
            status,
            reason,
        }
    }
}

fn error_of(response: &http::Response) -> String {
    serde_json::from_str::<Value>(&response.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no JSON reason in {:?}", response.body))
}

#[tokio::test]
async fn every_report_answer_has_its_status_and_reason() {
    let ctx = cluster().await.context("reports-answers").await.unwrap();
    install_crds(&ctx).await;
    let kh = replica(&ctx, "kuberhealthy-0");
    let addr = kh.addr();
    ctx.apply_yaml(&sleeping_check("answers", "1h", "5m"))
        .await
        .unwrap();
    let spec = state_when(&ctx, "answers", "a run in flight", in_flight).await;
    let uuid = spec["uuid"].as_str().unwrap().to_string();
    let path = "/externalCheckStatus";
    let with_uuid = [("kh-run-uuid", uuid.as_str())];
    let huge_uuid = "u".repeat(10 * 1024);
    let big_errors = format!(
        r#"{{"OK": false, "Errors": ["{}"]}}"#,
        "x".repeat(256 * 1024 + 1)
    );

    let refusals = [
        Refusal::new(
            "wrong method",
            "GET",
            path,
            &[],
            b"",
            405,
            "reports are sent with POST",
        ),
        Refusal::new(
            "missing header",
            "POST",
            path,
            &[],
            br#"{"OK": true}"#,
            400,
            "missing the kh-run-uuid header",
        ),
        Refusal::new(
            "malformed body",
            "POST",
            path,
            &with_uuid,
            b"{OK: true",
            400,
            "the report is not valid JSON",
        ),
        Refusal::new(
            "wrong type",
            "POST",
            path,
            &with_uuid,
            br#"{"OK": "yes"}"#,
            400,
            "\"OK\" must be true or false",
        ),
        Refusal::new(
            "failure without an error",
            "POST",
            path,
            &with_uuid,
            br#"{"OK": false}"#,
            400,
            "needs at least one error",
        ),
        Refusal::new(
            "blank error",
            "POST",
            path,
            &with_uuid,
            br#"{"OK": false, "Errors": [" "]}"#,
            400,
            "is blank",
        ),
        Refusal::new(
            "unknown uuid",
            "POST",
            path,
            &[("kh-run-uuid", "00000000-0000-4000-8000-000000000000")],
            br#"{"OK": true}"#,
            400,
            "is not known",
        ),
        Refusal::new(
            "a 10 KB kh-run-uuid (never a label selector)",
            "POST",
            path,
            &[("kh-run-uuid", &huge_uuid)],
            br#"{"OK": true}"#,
            400,
            "the kh-run-uuid header is 10240 bytes long; a run UUID is at most 63",
        ),
        Refusal::new(
            "kh-run-uuid with a selector's characters",
            "POST",
            path,
            &[("kh-run-uuid", "a,b!=c")],
            br#"{"OK": true}"#,
            400,
            "has ',' at position 1",
        ),
        Refusal::new(
            "keys differing only in case, with different values",
            "POST",
            path,
            &with_uuid,
            br#"{"OK": true, "ok": false, "Errors": ["x"]}"#,
            400,
            "\"OK\" and \"ok\" differ only in case and carry different values",
        ),
        Refusal::new(
            "errors over 256 KiB",
            "POST",
            path,
            &with_uuid,
            big_errors.as_bytes(),
            413,
            "the errors of the report total 262145 bytes; at most 262144 are accepted",
        ),
        Refusal::new(
            "body over 1 MiB",
            "POST",
            path,
            &with_uuid,
            &[b' '; 1024 * 1024 + 1],
            413,
            "the request body is larger than 1048576 bytes",
        ),
    ];
    for r in refusals {
        let response = http::request(addr, r.method, r.path, &r.headers, &r.body)
            .await
            .unwrap();
        assert_eq!(response.status, r.status, "{}: {:?}", r.what, response.body);
        assert!(
            error_of(&response).contains(r.reason),
            "{}: {:?}",
            r.what,
            response.body
        );
    }
    let unchanged = state_when(&ctx, "answers", "the run still in flight", in_flight).await;
    assert_eq!(
        unchanged["uuid"], spec["uuid"],
        "refused reports change nothing"
    );

    // Lower-case keys, no content type (as `curl -d` sends): recorded, 200 once persisted.
    let report = br#"{"ok": false, "errors": ["Error 1 here", "Error 2 here"]}"#;
    let accepted = http::post(addr, path, &with_uuid, report).await.unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let recorded = khstates(ctx.client().await.unwrap(), ctx.namespace())
        .get("answers")
        .await
        .unwrap();
    assert_eq!(
        recorded.data["spec"]["Errors"],
        serde_json::json!(["Error 1 here", "Error 2 here"]),
        "persisted before the 200"
    );
    assert_eq!(recorded.data["spec"]["OK"], false);
    let version = recorded.metadata.resource_version.clone();

    // The same report again (a retry after a lost answer), on the v3 path: 200, counted once.
    let again = http::post(addr, "/check", &with_uuid, report)
        .await
        .unwrap();
    assert_eq!(again.status, 200, "{}", again.body);
    let after = khstates(ctx.client().await.unwrap(), ctx.namespace())
        .get("answers")
        .await
        .unwrap();
    assert_eq!(
        after.metadata.resource_version, version,
        "a duplicate writes nothing"
    );
    assert_eq!(
        after.data["spec"]["history"].as_array().map(Vec::len),
        Some(1)
    );

    // A different result for the finished run: 410.
    let different = http::post(addr, path, &with_uuid, br#"{"OK": true}"#)
        .await
        .unwrap();
    assert_eq!(different.status, 410, "{}", different.body);
    assert!(
        error_of(&different).contains("already finished"),
        "{}",
        different.body
    );
}

#[tokio::test]
async fn a_report_for_a_superseded_run_is_gone() {
    let ctx = cluster().await.context("reports-superseded").await.unwrap();
    install_crds(&ctx).await;
    let kh = replica(&ctx, "kuberhealthy-0");
    // Runs time out after 2 s and a new one starts every 4 s.
    ctx.apply_yaml(&sleeping_check("superseded", "4s", "2s"))
        .await
        .unwrap();
    let first = state_when(&ctx, "superseded", "a first run", in_flight).await;
    let old = first["uuid"].as_str().unwrap().to_string();
    state_when(&ctx, "superseded", "a newer run", |s| {
        in_flight(s) && s["uuid"] != old.as_str()
    })
    .await;
    let response = http::post(
        kh.addr(),
        "/externalCheckStatus",
        &[("kh-run-uuid", &old)],
        br#"{"OK": true}"#,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 410, "{}", response.body);
    // The old run is in the khstate's history: the answer names how it ended.
    let error = error_of(&response);
    assert!(
        error.contains(&format!("run {old} of ")) && error.contains("already finished at"),
        "{}",
        response.body
    );
    assert!(
        error.contains("timed out waiting for checker pod to report in"),
        "{}",
        response.body
    );
}

/// The sum over replicas of one sample of their `/metrics`.
async fn summed(replicas: &[&Replica], name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for r in replicas {
        let text = http::get(r.addr(), "/metrics").await.unwrap().body;
        total += metrics::sum(&metrics::parse(&text).unwrap(), name, labels);
    }
    total
}

#[tokio::test]
async fn a_report_to_a_follower_is_on_every_status_page_within_a_second() {
    let ctx = cluster().await.context("reports-follower").await.unwrap();
    install_crds(&ctx).await;
    let replicas: Vec<Replica> = (0..3)
        .map(|i| replica(&ctx, &format!("kuberhealthy-{i}")))
        .collect();
    ctx.apply_yaml(&sleeping_check("follower", "1h", "5m"))
        .await
        .unwrap();
    let spec = state_when(&ctx, "follower", "a run in flight", in_flight).await;
    let uuid = spec["uuid"].as_str().unwrap().to_string();
    let leader = spec["runTerm"]["holder"].as_str().unwrap().to_string();
    let follower = replicas.iter().find(|r| r.name() != leader).unwrap();

    let report = br#"{"OK": true}"#;
    let answered = http::post(
        follower.addr(),
        "/externalCheckStatus",
        &[("kh-run-uuid", &uuid)],
        report,
    )
    .await
    .unwrap();
    assert_eq!(answered.status, 200, "{}", answered.body);
    let after_answer = Instant::now();
    let key = format!("{}/follower", ctx.namespace());
    let mut seen_by_all = None;
    while after_answer.elapsed() < Duration::from_secs(5) {
        let mut all = true;
        for r in &replicas {
            let page: Value =
                serde_json::from_str(&http::get(r.addr(), "/json").await.unwrap().body).unwrap();
            let check = &page["CheckDetails"][&key];
            all &= check["uuid"] == uuid.as_str()
                && check["OK"] == true
                && check["AuthoritativePod"] == follower.name();
        }
        if all {
            seen_by_all = Some(after_answer.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = seen_by_all.expect("every replica's status page shows the report");
    println!(
        "report to follower {}: visible on all 3 status pages {took:?} after its 200",
        follower.name()
    );
    assert!(
        took <= Duration::from_secs(1),
        "visible on every replica after {took:?}"
    );

    // Re-sent to another replica: 200 again, counted once.
    let other = replicas
        .iter()
        .find(|r| r.name() != follower.name())
        .unwrap();
    let resent = http::post(
        other.addr(),
        "/externalCheckStatus",
        &[("kh-run-uuid", &uuid)],
        report,
    )
    .await
    .unwrap();
    assert_eq!(resent.status, 200, "{}", resent.body);
    let refs: Vec<&Replica> = replicas.iter().collect();
    let check = [("check", key.as_str())];
    assert_eq!(
        summed(&refs, "kuberhealthy_runs_succeeded_total", &check).await,
        1.0,
        "counted once"
    );
    let state = khstates(ctx.client().await.unwrap(), ctx.namespace())
        .get("follower")
        .await
        .unwrap();
    assert_eq!(
        state.data["spec"]["history"].as_array().map(Vec::len),
        Some(1)
    );
}

/// Requests the API server received, by verb and resource, excluding leases (the elector's
/// renewals), nodes (the pod runner's heartbeat) and non-resource paths (the test's own
/// reads of `/metrics`).
fn non_lease_requests(text: &str) -> Vec<(String, String, f64)> {
    let mut out: Vec<(String, String, f64)> = Vec::new();
    for s in metrics::parse(text)
        .unwrap()
        .into_iter()
        .filter(|s| s.name == "apiserver_request_total")
    {
        let resource = s.labels.get("resource").cloned().unwrap_or_default();
        if resource.is_empty() || resource == "leases" || resource == "nodes" {
            continue;
        }
        let verb = s.labels.get("verb").cloned().unwrap_or_default();
        match out
            .iter_mut()
            .find(|(v, r, _)| *v == verb && *r == resource)
        {
            Some(entry) => entry.2 += s.value,
            None => out.push((verb, resource, s.value)),
        }
    }
    out
}

#[tokio::test]
async fn status_and_metrics_requests_cost_the_api_server_nothing() {
    // A cluster of its own: other tests' traffic would blur the count.
    let own = TestCluster::start(std::path::Path::new(env!("CARGO_BIN_EXE_pod-runner")))
        .await
        .unwrap();
    let ctx = own.context("reports-cost").await.unwrap();
    install_crds(&ctx).await;
    let kh = replica(&ctx, "kuberhealthy-0");
    ctx.apply_yaml(&sleeping_check("cost", "1h", "5m"))
        .await
        .unwrap();
    wait_until("the replica ready and leading", TIMEOUT, || async {
        let ready = http::get(kh.addr(), "/readyz")
            .await
            .map(|r| r.status == 200)
            .unwrap_or(false);
        let page = http::get(kh.addr(), "/json").await.ok();
        let leading =
            page.is_some_and(|p| p.body.contains("\"CurrentMaster\": \"kuberhealthy-0\""));
        Ok((ready && leading).then_some(()))
    })
    .await
    .unwrap();
    // Let the run start and settle (its pod stays pending: no pod runner here).
    state_when(&ctx, "cost", "a run in flight", in_flight).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let plane = own.control_plane();
    let before = non_lease_requests(&plane.apiserver_metrics().await.unwrap());
    for i in 0..1000 {
        let path = if i % 2 == 0 { "/json" } else { "/metrics" };
        let response = http::get(kh.addr(), path).await.unwrap();
        assert_eq!(response.status, 200, "{path}");
    }
    let after = non_lease_requests(&plane.apiserver_metrics().await.unwrap());
    let grew: Vec<_> = after
        .iter()
        .filter(|(v, r, n)| {
            *n > before
                .iter()
                .find(|(bv, br, _)| bv == v && br == r)
                .map_or(0.0, |b| b.2)
        })
        .collect();
    println!("API requests other than leases during 1000 status and metrics requests: {grew:?}");
    assert!(
        grew.is_empty(),
        "status and metrics requests reached the API server: {grew:?}"
    );
}
