//! A real Prometheus scrapes `/metrics` served by the crate's router, and the v2 Grafana
//! dashboard's queries and alert expressions give the expected series.

use std::collections::BTreeMap;
use std::time::Duration;

use kuberhealthy::controller::config::PromMetricsConfig;
use tokio::net::TcpListener;

use crate::prometheus_server::{DashboardExpectation, PrometheusServer};
use crate::{fixture, tools};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_v2_metrics_and_the_dashboard_queries_work() {
    let binary = tools::require("prometheus");
    let metrics = fixture::metrics(PromMetricsConfig::default(), None);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, kuberhealthy::controller::metrics::router(metrics))
            .await
            .unwrap()
    });

    let outcome = tokio::task::spawn_blocking(move || {
        let mut prometheus = PrometheusServer::start(&binary, target)?;
        prometheus.wait_for_target_up(Duration::from_secs(30))?;
        let running = prometheus.wait_for_query("kuberhealthy_running", Duration::from_secs(30))?;
        assert_eq!(running[0].labels["current_master"], fixture::MASTER);
        assert_eq!(running[0].labels["job"], "kuberhealthy");
        let expected = DashboardExpectation {
            checks: BTreeMap::from([
                ("kuberhealthy/deployment".to_string(), 0.0),
                ("kuberhealthy/dns-status-internal".to_string(), 1.0),
                ("team-b/never-ran".to_string(), 0.0),
                ("team-b/pvc-check".to_string(), 1.0),
            ]),
            cluster_state: 0.0,
            running: 1.0,
        };
        prometheus.check_v2_dashboard(&expected, Duration::from_secs(30))?;

        // v2's shipped alert rules: `ClusterUnhealthy` fires here, `KuberhealthyError` does not.
        let unhealthy = prometheus.query("kuberhealthy_cluster_state < 1")?;
        assert_eq!(unhealthy.len(), 1, "{unhealthy:?}");
        let not_running = prometheus.query("kuberhealthy_running < 1")?;
        assert!(not_running.is_empty(), "{not_running:?}");

        // The failing check's labels survive ingestion: sanitised error, status, namespace.
        let failing = prometheus.query(r#"kuberhealthy_check{check="kuberhealthy/deployment"}"#)?;
        let [series] = failing.as_slice() else {
            return Err(format!("expected one series, got {failing:?}"));
        };
        assert_eq!(series.labels["namespace"], "kuberhealthy");
        assert_eq!(series.labels["status"], "0");
        assert_eq!(
            series.labels["error"],
            "pod 'deployment-abc' failed: CrashLoopBackOff|rollout timed out after 5m0s"
        );
        let job = prometheus.query("kuberhealthy_job_duration_seconds")?;
        assert_eq!(job.len(), 1, "{job:?}");
        assert_eq!(job[0].labels["check"], "kuberhealthy/image-pull-job");
        assert_eq!(job[0].value, 12.0);
        let leader = prometheus.query("max(kuberhealthy_controller_leader)")?;
        assert_eq!(leader.first().map(|s| s.value), Some(1.0), "{leader:?}");
        Ok::<(), String>(())
    })
    .await
    .unwrap();
    server.abort();
    if let Err(message) = outcome {
        panic!("{message}");
    }
}
