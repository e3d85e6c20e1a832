//! Report intake at `POST /externalCheckStatus` (v2) and `POST /check` (v3), on every
//! replica: find the run by its UUID, refuse what cannot be recorded with a precise status
//! and reason, and answer 200 only once the result is persisted in the check's khstate.

pub mod judge;
pub mod parse;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use self::judge::Judgement;
use self::parse::{MAX_BODY_BYTES, Report};
use crate::api::{KuberhealthyState, names};
use crate::controller::cache::Cache;
use crate::controller::metrics::{ControllerMetrics, RunOutcome};
use crate::controller::reply::json_error;
use crate::controller::run::transition;
use crate::controller::store::{States, WriteError};

/// How many times a report re-reads and retries after a conflicting write.
const WRITE_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct ReportContext {
    pub cache: Cache,
    pub client: kube::Client,
    pub states: States,
    /// This replica (`AuthoritativePod` of the results it writes).
    pub identity: Arc<str>,
    pub metrics: ControllerMetrics,
}

pub fn router(ctx: ReportContext) -> Router {
    let method_not_allowed =
        || async { json_error(StatusCode::METHOD_NOT_ALLOWED, "reports are sent with POST") };
    Router::new()
        .route(
            names::REPORT_PATH_V2,
            post(receive).fallback(method_not_allowed),
        )
        .route(
            names::REPORT_PATH_V3,
            post(receive).fallback(method_not_allowed),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ctx)
}

/// Times and counts every answer.
async fn receive(
    State(ctx): State<ReportContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let response = answer(&ctx, &headers, body).await;
    ctx.metrics
        .report_handled(response.status().as_u16(), started.elapsed());
    response
}

async fn answer(
    ctx: &ReportContext,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the report body is larger than {MAX_BODY_BYTES} bytes"),
            );
        }
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the report body: {e}"),
            );
        }
    };
    let Some(uuid) = headers
        .get(names::HEADER_RUN_UUID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "missing the kh-run-uuid header: send the value of the checker's KH_RUN_UUID variable as the kh-run-uuid header",
        );
    };
    if uuid.is_empty() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the kh-run-uuid header is empty: send the checker's KH_RUN_UUID",
        );
    }
    let report = match parse::parse(&body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match record(ctx, uuid, &report).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(run = %uuid, error = %e, "could not persist a report");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the report could not be persisted: {e}; retry"),
            )
        }
    }
}

/// Finds the state of run `uuid`: the cache first, then the run's pod (cache, then one
/// list on the API server) and a fresh read of its state, for when the cache lags.
async fn find_state(
    ctx: &ReportContext,
    uuid: &str,
) -> Result<Option<KuberhealthyState>, kube::Error> {
    // The current run, or one the state remembers (a superseded run gets 410, not 400).
    let known = |s: &KuberhealthyState| {
        s.spec.uuid == uuid || s.spec.history.iter().any(|h| h.uuid == uuid)
    };
    if let Some(state) = ctx.cache.states.find(|s| known(s)) {
        return Ok(Some((*state).clone()));
    }
    let from_cache = ctx
        .cache
        .pods
        .find(|p| p.labels().get(names::LABEL_RUN_ID).map(String::as_str) == Some(uuid))
        .map(|p| (*p).clone());
    let pod = match from_cache {
        Some(p) => Some(p),
        None => pods_of_run(ctx, uuid).await?.into_iter().next(),
    };
    let Some(pod) = pod else { return Ok(None) };
    let Some(check) = pod.annotations().get(names::ANNOTATION_CHECK_NAME).cloned() else {
        return Ok(None);
    };
    ctx.states
        .get(&pod.namespace().unwrap_or_default(), &check)
        .await
}

/// The checker pods of run `uuid`, from the API server (when the cache has not seen them).
async fn pods_of_run(ctx: &ReportContext, uuid: &str) -> Result<Vec<Pod>, kube::Error> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let selector = format!("{}={uuid}", names::LABEL_RUN_ID);
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

fn node_of_run(ctx: &ReportContext, state: &KuberhealthyState) -> Option<String> {
    let pod_name = state.spec.run_pod.as_deref()?;
    let namespace = state.namespace()?;
    let pod = ctx
        .cache
        .pods
        .get(&ObjectRef::new(pod_name).within(&namespace))?;
    pod.spec.as_ref()?.node_name.clone()
}

async fn record(ctx: &ReportContext, uuid: &str, report: &Report) -> Result<Response, kube::Error> {
    let Some(mut state) = find_state(ctx, uuid).await? else {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            format!(
                "run {uuid} is not known: no check has a run with this kh-run-uuid (it may belong to a deleted check)"
            ),
        ));
    };
    let key = format!(
        "{}/{}",
        state.namespace().unwrap_or_default(),
        state.name_any()
    );
    for _ in 0..WRITE_ATTEMPTS {
        match judge::judge(&key, &state.spec, uuid, report, Timestamp::now()) {
            Judgement::Gone(reason) => return Ok(json_error(StatusCode::GONE, reason)),
            Judgement::Duplicate => {
                tracing::info!(check = %key, run = %uuid, "the same report was sent again; already recorded");
                return Ok(accepted(&key, uuid));
            }
            Judgement::Record => {}
        }
        let spec = transition::finished(
            &state.spec,
            report.ok,
            report.errors.clone(),
            Timestamp::now(),
            &ctx.identity,
            node_of_run(ctx, &state),
        );
        match ctx.states.replace(&state, spec).await {
            Ok(_) => {
                tracing::info!(check = %key, run = %uuid, ok = report.ok, errors = ?report.errors, "recorded a report");
                let outcome = if report.ok {
                    RunOutcome::Succeeded
                } else {
                    RunOutcome::Failed
                };
                ctx.metrics.run_finished(
                    &state.namespace().unwrap_or_default(),
                    &state.name_any(),
                    outcome,
                );
                return Ok(accepted(&key, uuid));
            }
            Err(WriteError::Conflict) => {
                let namespace = state.namespace().unwrap_or_default();
                match ctx.states.get(&namespace, &state.name_any()).await? {
                    Some(fresh) => state = fresh,
                    None => {
                        return Ok(json_error(
                            StatusCode::GONE,
                            format!("{key} was deleted; the report was not recorded"),
                        ));
                    }
                }
            }
            Err(WriteError::Api(e)) => return Err(e),
        }
    }
    Ok(json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the state of {key} kept changing while the report was being written; retry"),
    ))
}

fn accepted(key: &str, uuid: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({ "message": format!("recorded the report of run {uuid} of {key}") })),
    )
        .into_response()
}
