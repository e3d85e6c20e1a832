//! The Grafana dashboard (`files/dashboard.json`): valid JSON with v2's queries and a leader
//! panel, and every query it makes returns data from a real Prometheus scraping a replica.

use anyhow::{Context, Result};
use kuberhealthy_e2e::Replica;
use serde_json::Value;

use crate::support::{self, str};
use crate::{TIMEOUT, cluster};

#[path = "../../../tests/metrics/prometheus_server.rs"]
#[allow(dead_code)] // Shared with the crate's own metrics tests; not every helper is used here.
mod prometheus_server;

use prometheus_server::{PrometheusServer, V2_DASHBOARD_QUERIES};

pub fn dashboard() -> Result<Value> {
    let path = support::chart_dir().join("files/dashboard.json");
    let text = std::fs::read_to_string(&path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Every `(panel title, expr)` of the dashboard.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["panels"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .flat_map(|panel| {
            let title = str(&panel["title"]).to_string();
            panel["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|t| (title.clone(), str(&t["expr"]).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_dashboard_has_v2_queries_and_a_leader_panel() {
    let dashboard = dashboard().unwrap();
    assert!(
        dashboard["uid"].is_string() && dashboard["title"].is_string(),
        "a dashboard needs a uid and a title"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids: Vec<i64> = panels.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids must be unique");
    for panel in panels {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {} must use the datasource variable",
            panel["title"]
        );
        assert!(
            panel["gridPos"]["w"].is_number() && panel["gridPos"]["h"].is_number(),
            "panel {} has no size",
            panel["title"]
        );
    }
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "the datasource variable"
    );
    let queries = queries(&dashboard);
    for v2 in V2_DASHBOARD_QUERIES {
        assert!(
            queries.iter().any(|(_, q)| q == v2),
            "v2's query {v2:?} is missing; queries: {queries:?}"
        );
    }
    assert!(
        queries
            .iter()
            .any(|(title, q)| title.contains("Leader")
                && q.contains("kuberhealthy_controller_leader")),
        "a leader panel: {queries:?}"
    );
}

/// A check whose checker sleeps past its 3 s timeout.
const TIMING_OUT: &str = r#"
apiVersion: comcast.github.io/v1
kind: KuberhealthyCheck
metadata:
  name: dashboard-slow
spec:
  runInterval: 10m
  timeout: 3s
  podSpec:
    containers:
    - name: main
      image: docker.io/curlimages/curl:8.11.1
      command: ["sleep", "60"]
"#;

const FAILING: &str = r#"
apiVersion: comcast.github.io/v1
kind: KuberhealthyCheck
metadata:
  name: dashboard-fail
spec:
  runInterval: 10m
  timeout: 2m
  podSpec:
    containers:
    - name: main
      image: docker.io/curlimages/curl:8.11.1
      command: ["sh", "-c"]
      args:
      - >-
        curl -sS -f -X POST -H "kh-run-uuid: $KH_RUN_UUID"
        -d '{"OK": false, "Errors": ["upstream answered 503"]}' "$KH_REPORTING_URL"
"#;

#[tokio::test]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let prometheus = prometheus_binary();
    let ctx = cluster().await.context("chart-dashboard").await.unwrap();
    support::install_crds(&ctx.client().await.unwrap())
        .await
        .unwrap();
    ctx.apply_yaml(&support::passing_check(
        "dashboard-pass",
        ctx.namespace(),
        "10m",
    ))
    .await
    .unwrap();
    ctx.apply_yaml(FAILING).await.unwrap();
    ctx.apply_yaml(TIMING_OUT).await.unwrap();

    let addr = ctx.free_address().unwrap();
    let mut options = ctx.replica_options("kuberhealthy-0");
    options.listen_port = Some(addr.port());
    // Only this test's checks: the cluster is shared with other tests.
    options.target_namespace = Some(ctx.namespace().to_string());
    options.external_reporting_url = Some(format!("http://{addr}/externalCheckStatus"));
    let replica = Replica::spawn(options).unwrap();

    let queries: Vec<(String, String)> = queries(&dashboard().unwrap())
        .into_iter()
        // Grafana's range variable; any window of a few scrapes does here.
        .map(|(title, q)| (title, q.replace("$__rate_interval", "1m")))
        .collect();
    let outcome = tokio::task::spawn_blocking(move || {
        let target = addr.into();
        let mut server = PrometheusServer::start(&prometheus, target)?;
        server.wait_for_target_up(TIMEOUT)?;
        let mut empty = Vec::new();
        for (title, query) in &queries {
            // The runs take a few seconds to start, report and time out.
            if let Err(err) = server.wait_for_query(query, TIMEOUT) {
                empty.push(format!("panel {title:?}: {query}: {err}"));
            }
        }
        if !empty.is_empty() {
            return Err(format!("queries without data:\n{}", empty.join("\n")));
        }
        // The failing-checks table names the failing check and its error.
        let failing = server.query("min by (check, namespace, error) (kuberhealthy_check == 0)")?;
        let names: Vec<String> = failing
            .iter()
            .map(|s| {
                format!(
                    "{}: {}",
                    s.labels["check"],
                    s.labels.get("error").cloned().unwrap_or_default()
                )
            })
            .collect();
        if !names
            .iter()
            .any(|n| n.ends_with("/dashboard-fail: upstream answered 503"))
        {
            return Err(format!("the failing-checks table shows {names:?}"));
        }
        Ok::<(), String>(())
    })
    .await
    .unwrap();
    if let Err(message) = outcome {
        panic!("{message}\n--- replica log ---\n{}", replica.log_tail(60));
    }
}

fn prometheus_binary() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`prometheus` is not on PATH: run `bash e2e/tools/install-prometheus.sh`")
        })
}
