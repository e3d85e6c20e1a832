//! A real Prometheus scrapes a real replica: v2's Grafana dashboard queries show the checks
//! the replica ran (one passing, one failing), the cluster state and `kuberhealthy_running`.

use std::collections::BTreeMap;
use std::time::Duration;

use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::{Replica, manifests};

use crate::{TIMEOUT, cluster};

#[path = "../../../tests/metrics/prometheus_server.rs"]
#[allow(dead_code)] // Shared with the crate's own metrics tests; not every helper is used here.
mod prometheus_server;

use prometheus_server::{DashboardExpectation, PrometheusServer};

/// Reports `{"OK": true}`.
const PASSING: &str = r#"
apiVersion: comcast.github.io/v1
kind: KuberhealthyCheck
metadata:
  name: metrics-pass
spec:
  runInterval: 10m
  timeout: 2m
  podSpec:
    containers:
    - name: main
      image: docker.io/curlimages/curl:8.11.1
      command: ["sh", "-c"]
      args:
      - |
        curl --fail --silent --show-error -X POST \
          -H "kh-run-uuid: $KH_RUN_UUID" -H 'Content-Type: application/json' \
          -d '{"OK": true}' "$KH_REPORTING_URL"
"#;

/// Reports two errors, one with a `"` and a newline, which the `error` label must sanitise.
const FAILING: &str = r#"
apiVersion: comcast.github.io/v1
kind: KuberhealthyCheck
metadata:
  name: metrics-fail
spec:
  runInterval: 10m
  timeout: 2m
  podSpec:
    containers:
    - name: main
      image: docker.io/curlimages/curl:8.11.1
      command: ["sh", "-c"]
      args:
      - |
        curl --fail --silent --show-error -X POST \
          -H "kh-run-uuid: $KH_RUN_UUID" -H 'Content-Type: application/json' \
          --data-binary @- "$KH_REPORTING_URL" <<'REPORT'
        {"OK": false, "Errors": ["probe \"db\" failed:\nconnection refused", "second error"]}
        REPORT
"#;

/// `prometheus` from Debian's package, or a failure saying how to install it.
fn prometheus_binary() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`prometheus` is not on PATH: run `bash e2e/tools/install-prometheus.sh`")
        })
}

#[tokio::test]
async fn prometheus_scraping_a_replica_shows_the_v2_dashboard() {
    let binary = prometheus_binary();
    let ctx = cluster().await.context("metrics-prometheus").await.unwrap();
    let crds = std::fs::read_to_string(workspace_root().join("charts/kuberhealthy/crds/crds.yaml"))
        .expect("the committed CRDs");
    manifests::install_crds(&ctx.client().await.unwrap(), &crds, TIMEOUT)
        .await
        .unwrap();
    ctx.apply_yaml(PASSING).await.unwrap();
    ctx.apply_yaml(FAILING).await.unwrap();

    let addr = ctx.free_address().unwrap();
    let mut options = ctx.replica_options("kuberhealthy-0");
    options.listen_port = Some(addr.port());
    // Only this test's checks: the cluster is shared with other tests.
    options.target_namespace = Some(ctx.namespace().to_string());
    options.external_reporting_url = Some(format!("http://{addr}/externalCheckStatus"));
    let replica = Replica::spawn(options).unwrap();

    let ns = ctx.namespace().to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let target = addr.into();
        let mut prometheus = PrometheusServer::start(&binary, target)?;
        prometheus.wait_for_target_up(TIMEOUT)?;
        let expected = DashboardExpectation {
            checks: BTreeMap::from([
                (format!("{ns}/metrics-pass"), 1.0),
                (format!("{ns}/metrics-fail"), 0.0),
            ]),
            cluster_state: 0.0,
            running: 1.0,
        };
        // Two runs to start, run and report, then a scrape: allow for a loaded machine.
        prometheus.check_v2_dashboard(&expected, TIMEOUT * 2)?;
        let failing = prometheus.query(&format!(
            r#"kuberhealthy_check{{check="{ns}/metrics-fail"}}"#
        ))?;
        let error = failing.first().and_then(|s| s.labels.get("error"));
        if error.map(String::as_str) != Some("probe 'db' failed: connection refused|second error") {
            return Err(format!("the failing check's error label: {failing:?}"));
        }
        let leader = prometheus.wait_for_query(
            "max(kuberhealthy_controller_leader)",
            Duration::from_secs(10),
        )?;
        if leader[0].value != 1.0 {
            return Err(format!("the only replica should lead: {leader:?}"));
        }
        Ok::<(), String>(())
    })
    .await
    .unwrap();
    if let Err(message) = outcome {
        panic!("{message}\n--- replica log ---\n{}", replica.log_tail(60));
    }
}
