//! The routes every replica serves: the status page (v2's JSON, or HTML for a browser),
//! a check's page, badges, live updates (`/events`), v3's status page (`/v3/json`),
//! `/metrics`, `/healthz`, `/readyz`.
//! Reads are served from the watch-fed cache only.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::controller::cache::Cache;
use crate::controller::leader::Holder;
use crate::controller::metrics::{self, Metrics};
use crate::controller::page::serve::{Badge, Doc, PageDocs};
use crate::controller::page::{Filter, negotiate};
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
    /// This replica's name (`POD_NAME`), shown as the replica serving the page.
    pub identity: Arc<str>,
    /// Ends live-update streams, so a graceful shutdown need not wait for browsers.
    pub shutdown: CancellationToken,
}

/// The status pages and metrics.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(status_page).fallback(method_not_allowed))
        .route("/json", get(status_page).fallback(method_not_allowed))
        .route("/v3/json", get(v3_status_page).fallback(method_not_allowed))
        .route("/checks/{namespace}/{name}", get(check_page))
        .route("/badges/{namespace}/{name}/{badge}", get(badge))
        .route("/events", get(events))
        .route("/metrics", get(metrics_page))
        .fallback(not_found)
        .layer(Extension(Arc::new(StatusPages::default())))
        .layer(Extension(Arc::new(PageDocs::default())))
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
        "no such path; the status page is GET / or GET /json (v3's: GET /v3/json), a check's page GET /checks/<namespace>/<name>, its badges GET /badges/<namespace>/<name>/status.svg (or uptime-24h.svg, uptime-7d.svg, uptime-30d.svg), metrics GET /metrics",
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

/// `GET /`: the HTML page for a browser, v2's JSON for everyone else. `/json` is always JSON.
async fn status_page(
    State(state): State<AppState>,
    Extension(pages): Extension<Arc<StatusPages>>,
    Extension(docs): Extension<Arc<PageDocs>>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if uri.path() == "/" && body.is_empty() && negotiate::wants_html(accept) {
        let filter = Filter::from_query(
            query.get("namespace").map(String::as_str),
            query.get("q").map(String::as_str),
        );
        let doc = Doc::Overview {
            filter,
            live: query.contains_key("fragment"),
        };
        return answer_page(&state, &docs, doc, &headers).await;
    }
    answer_status(&state, &pages, &query, &headers, &body, Shape::V2).await
}

/// `GET /checks/<namespace>/<name>`: one check's page.
async fn check_page(
    State(state): State<AppState>,
    Extension(docs): Extension<Arc<PageDocs>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let doc = Doc::Check {
        namespace,
        name,
        live: query.contains_key("fragment"),
    };
    answer_page(&state, &docs, doc, &headers).await
}

/// `GET /badges/<namespace>/<name>/<badge>.svg`: a shields-style badge of the check.
async fn badge(
    State(state): State<AppState>,
    Extension(docs): Extension<Arc<PageDocs>>,
    Path((namespace, name, badge)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(badge) = Badge::from_file(&badge) else {
        return json_error(
            StatusCode::NOT_FOUND,
            format!(
                "no badge {badge:?}; a check's badges are {}",
                Badge::FILES.join(", ")
            ),
        );
    };
    let doc = Doc::Badge {
        namespace,
        name,
        badge,
    };
    answer_page(&state, &docs, doc, &headers).await
}

async fn answer_page(state: &AppState, docs: &PageDocs, doc: Doc, headers: &HeaderMap) -> Response {
    let document = docs
        .get(
            &doc,
            &state.cache,
            &state.holder,
            &state.metadata,
            &state.identity,
        )
        .await;
    match document {
        Some(document) => served::respond(&document, headers, StatusCode::OK),
        None => {
            let (namespace, name) = doc.subject().unwrap_or_default();
            json_error(
                StatusCode::NOT_FOUND,
                format!(
                    "no check, job or HealthCheck {namespace}/{name} in this replica's cache; the status page (GET /) lists every one"
                ),
            )
        }
    }
}

/// How often at most a browser is told to refresh: a burst of watch events (a run writes its
/// state and its pod changes several times) becomes one refresh.
const EVENT_COALESCE: std::time::Duration = std::time::Duration::from_millis(500);

/// `GET /events`: server-sent events, one `change` each time the cache or the leader
/// changes (coalesced), so open pages update without polling anyone.
async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = (state.cache.changes(), state.holder.clone());
    let stream = futures::stream::unfold(changes, |(mut cache, mut holder)| async move {
        tokio::select! {
            changed = cache.changed() => changed.ok()?,
            changed = holder.changed() => changed.ok()?,
        }
        tokio::time::sleep(EVENT_COALESCE).await;
        let version = *cache.borrow_and_update();
        holder.borrow_and_update();
        let event = Event::default().event("change").data(version.to_string());
        Some((Ok(event), (cache, holder)))
    })
    .take_until(state.shutdown.cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::default())
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
