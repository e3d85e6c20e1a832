//! `GET /metrics`: the Prometheus text format, through `opentelemetry-prometheus`, configured
//! so v2's names come out unchanged: no `otel_scope_*` labels, no `target_info`, no unit or
//! `_total` suffixes added to the instrument names.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Router, extract::State};
use opentelemetry_prometheus::PrometheusExporter;
use prometheus::{Encoder, Registry, TextEncoder};

use super::{Metrics, MetricsError};
use crate::controller::served;

/// A reader for the meter provider, and the registry a scrape gathers from.
pub(crate) fn exporter() -> Result<(PrometheusExporter, Registry), MetricsError> {
    let registry = Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .scope_info_enabled(false)
        .without_target_info()
        .without_units()
        // Counters are named with `_total` already, so OTLP and Prometheus names agree.
        .without_counter_suffixes()
        .build()
        .map_err(|e| MetricsError::Exporter(format!("Prometheus exporter: {e}")))?;
    Ok((exporter, registry))
}

/// The text exposition of everything in `registry`.
pub(crate) fn encode(registry: &Registry) -> Result<Vec<u8>, MetricsError> {
    let families = registry.gather();
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut text)
        .map_err(|e| MetricsError::Encode(e.to_string()))?;
    Ok(text)
}

/// The `/metrics` answer to a request with these headers (ETag, 304, gzip).
pub async fn respond(metrics: &Metrics, request: &HeaderMap) -> Response {
    match metrics.document().await {
        Ok(document) => served::respond(&document, request, StatusCode::OK),
        Err(error) => {
            tracing::error!(%error, "cannot render /metrics");
            crate::controller::reply::json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                error.to_string(),
            )
        }
    }
}

/// A router serving only `GET /metrics`, for a process or test that serves nothing else.
pub fn router(metrics: Metrics) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Metrics>, headers: HeaderMap| async move {
                respond(&m, &headers).await
            }),
        )
        .with_state(metrics)
}
