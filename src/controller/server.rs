//! The routes every replica serves: the status page, v3's status page (`/v3/json`),
//! `/metrics`, `/healthz`, `/readyz`.
//! Reads are served from the watch-fed cache only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use tokio::sync::watch;

use crate::controller::cache::Cache;
use crate::controller::leader::Holder;
use crate::controller::metrics::{self, Metrics};
use crate::controller::reply::json_error;
use crate::controller::served::{self, pages::Shape, pages::StatusPages};
use crate::controller::status;

#[derive(Clone)]
pub struct AppState {
    pub cache: Cache,
    pub holder: Holder,
    pub lease_synced: watch::Receiver<bool>,
    pub metadata: Arc<BTreeMap<String, String>>,
    pub metrics: Metrics,
}

/// The status pages and metrics.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(status_page).fallback(method_not_allowed))
        .route("/json", get(status_page).fallback(method_not_allowed))
        .route("/v3/json", get(v3_status_page).fallback(method_not_allowed))
        .route("/metrics", get(metrics_page))
        .fallback(not_found)
        .layer(Extension(Arc::new(StatusPages::default())))
        .with_state(state)
}

/// `/healthz` and `/readyz`, apart so that load shedding never fails a kubelet's probe.
pub fn probes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(state)
}

async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "no such path; the status page is GET / or GET /json (v3's: GET /v3/json), metrics are GET /metrics",
    )
}

async fn method_not_allowed() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "the status page only answers GET",
    )
}

/// Prometheus text exposition, computed from the cache.
async fn metrics_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    metrics::respond(&state.metrics, &headers).await
}

async fn ready(State(state): State<AppState>) -> Response {
    let mut waiting: Vec<&str> = state.cache.unsynced();
    if !*state.lease_synced.borrow() {
        waiting.push("the Lease");
    }
    if waiting.is_empty() {
        "ok".into_response()
    } else {
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: waiting for the first list of {}",
                waiting.join(", ")
            ),
        )
    }
}

async fn status_page(
    State(state): State<AppState>,
    Extension(pages): Extension<Arc<StatusPages>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer_status(&state, &pages, &query, &headers, &body, Shape::V2).await
}

async fn v3_status_page(
    State(state): State<AppState>,
    Extension(pages): Extension<Arc<StatusPages>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer_status(&state, &pages, &query, &headers, &body, Shape::V3).await
}

async fn answer_status(
    state: &AppState,
    pages: &StatusPages,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
    shape: Shape,
) -> Response {
    // As in v2: a body means a checker posted its report to the wrong URL.
    if !body.is_empty() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the status page takes no request body; checker pods report with POST to /externalCheckStatus (v2) or /check (v3)",
        );
    }
    let filter = status::parse_namespace_filter(query.get("namespace").map(String::as_str));
    let page = pages
        .get(shape, &filter, &state.cache, &state.holder, &state.metadata)
        .await;
    // Opt-in for plain uptime monitors: `?strict=true` answers 503 when not OK.
    let strict = query.get("strict").is_some_and(|v| v == "true" || v == "1");
    let code = if strict && !page.ok() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    served::respond(&page, headers, code)
}
