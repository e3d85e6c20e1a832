//! `GET /metrics` is served by the replica's router, from the cache, the Lease holder watch
//! and the leadership receiver it is given.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kuberhealthy::controller::cache::Cache;
use kuberhealthy::controller::config::PromMetricsConfig;
use kuberhealthy::controller::metrics::{self, Metrics, MetricsSettings, MetricsSources};
use kuberhealthy::controller::server::{AppState, router};
use tokio::sync::watch;
use tower::ServiceExt;

#[tokio::test]
async fn the_replica_router_serves_metrics_from_its_cache() {
    // Nothing listens there: the cache stays empty, and a scrape must not wait for it.
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let cache = Cache::start(kube::Client::try_from(config).unwrap(), None, false);
    let (_holder_tx, holder) = watch::channel(Some("kuberhealthy-1".to_string()));
    let (_leadership_tx, leadership) = watch::channel(None);
    let (_synced_tx, lease_synced) = watch::channel(false);
    let metrics = Metrics::new(
        MetricsSettings {
            prom: PromMetricsConfig::default(),
            otlp: None,
            instance: "kuberhealthy-1".into(),
        },
        MetricsSources {
            page: metrics::from_cache(cache.clone(), holder.clone()),
            v3_page: metrics::v3_from_cache(cache.clone(), holder.clone()),
            is_leader: metrics::from_leadership(leadership),
        },
    )
    .unwrap();
    let app = router(AppState {
        cache,
        holder,
        lease_synced,
        metadata: Arc::new(BTreeMap::new()),
        metrics,
    });

    let response = app
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        samples,
        [
            "kuberhealthy_cluster_state 1",
            "kuberhealthy_controller_leader 0",
            r#"kuberhealthy_running{current_master="kuberhealthy-1"} 1"#,
        ]
    );
}
