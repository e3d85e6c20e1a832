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
            changes: Some(metrics::changes_of(cache.clone(), holder.clone())),
        },
    )
    .unwrap();
    let app = router(AppState {
        cache,
        holder,
        lease_synced,
        metadata: Arc::new(BTreeMap::new()),
        metrics: metrics.clone(),
        identity: "kuberhealthy-1".into(),
        shutdown: tokio_util::sync::CancellationToken::new(),
    });

    let response = app
        .clone()
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
    // Nothing changed: later scrapes share the encoding, and a scraper holding it gets 304.
    let etag = get(&app, "/metrics", &[]).await.0[header::ETAG].clone();
    let (headers, status, body) = get(
        &app,
        "/metrics",
        &[(header::IF_NONE_MATCH, etag.to_str().unwrap())],
    )
    .await;
    assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
    assert_eq!(headers[header::ETAG], etag);
    assert_eq!(metrics.encodings(), 1);
}

/// Answers `GET path` with these request headers: (headers, status, body).
async fn get(
    app: &axum::Router,
    path: &str,
    headers: &[(header::HeaderName, &str)],
) -> (axum::http::HeaderMap, StatusCode, Vec<u8>) {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.headers, parts.status, body)
}

#[tokio::test]
async fn the_status_pages_answer_304_and_gzip_from_one_rendering() {
    use std::io::Read;
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
            changes: None,
        },
    )
    .unwrap();
    let metadata = BTreeMap::from([("cluster".to_string(), "a".to_string())]);
    let app = router(AppState {
        cache,
        holder,
        lease_synced,
        metadata: Arc::new(metadata),
        metrics,
        identity: "kuberhealthy-1".into(),
        shutdown: tokio_util::sync::CancellationToken::new(),
    });
    for path in ["/json", "/v3/json", "/json?namespace=b,a"] {
        let (headers, status, plain) = get(&app, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let page: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(page["OK"], true, "{path}");
        assert_eq!(page["Metadata"]["cluster"], "a", "{path}");
        let etag = headers[header::ETAG].to_str().unwrap().to_string();

        let (headers, status, body) =
            get(&app, path, &[(header::IF_NONE_MATCH, etag.as_str())]).await;
        assert_eq!(
            (status, body.len()),
            (StatusCode::NOT_MODIFIED, 0),
            "{path}"
        );
        assert_eq!(headers[header::ETAG], etag.as_str());

        let (headers, status, compressed) =
            get(&app, path, &[(header::ACCEPT_ENCODING, "gzip")]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, plain, "{path}");
    }
    // `?namespace=a,b` is the same view as `?namespace=b,a`: the same bytes, the same tag.
    let (a, _, _) = get(&app, "/json?namespace=a,b", &[]).await;
    let (b, _, _) = get(&app, "/json?namespace=b,a", &[]).await;
    assert_eq!(a[header::ETAG], b[header::ETAG]);
    // A body still means a checker posted to the wrong URL.
    let response = app
        .clone()
        .oneshot(Request::get("/json").body(Body::from("{}")).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // A browser gets the HTML page at `/`, served with an ETag too; curl, clients without
    // `Accept` and `/json` keep v2's JSON.
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let (headers, status, html) = get(&app, "/", &[(header::ACCEPT, browser)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(String::from_utf8_lossy(&html).starts_with("<!DOCTYPE html>"));
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    let (_, status, _) = get(
        &app,
        "/",
        &[
            (header::ACCEPT, browser),
            (header::IF_NONE_MATCH, etag.as_str()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    for (path, accept) in [("/", Some("*/*")), ("/", None), ("/json", Some(browser))] {
        let accept: Vec<_> = accept.map(|a| (header::ACCEPT, a)).into_iter().collect();
        let (headers, status, _) = get(&app, path, &accept).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/json",
            "{path} {accept:?}"
        );
    }
    // Badges: an unknown check or badge is a 404 that says why.
    let (_, status, body) = get(&app, "/badges/a/absent/status.svg", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("a/absent"));
    let (_, status, body) = get(&app, "/badges/a/absent/uptime-1y.svg", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("uptime-7d.svg"));
}
