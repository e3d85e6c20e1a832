//! Report intake at `POST /externalCheckStatus` (v2) and `POST /check` (v3), on every
//! replica: find the run by its UUID (the `kh-run-uuid` header, else, as in v2, the checker
//! pod whose address the report came from), refuse what cannot be recorded with a precise
//! status and reason, and answer 200 only once the result is persisted in the run's record:
//! the check's khstate, or the HealthCheck's status. Either path takes either kind of run.

pub mod identify;
pub mod judge;
pub mod parse;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use self::identify::{Identification, IdentifiedBy};
use self::judge::Judgement;
use self::parse::{MAX_BODY_BYTES, Report};
use crate::api::check::CheckTiming;
use crate::api::names;
use crate::controller::cache::Cache;
use crate::controller::metrics::{ControllerMetrics, RunOutcome};
use crate::controller::reply::json_error;
use crate::controller::run::healthcheck;
use crate::controller::run::pod::{self as checker_pod, PodOwner};
use crate::controller::run::record::Record;
use crate::controller::run::transition::{self, Outcome};
use crate::controller::store::{HealthChecks, States, WriteError};

/// How many times a report re-reads and retries after a conflicting write.
const WRITE_ATTEMPTS: usize = 5;
/// How long a header-less report waits for a checker pod's address to reach the cache (a
/// kubelet posts it shortly after the containers start, and the checker may be quicker).
const ADDRESS_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct ReportContext {
    pub cache: Cache,
    pub client: kube::Client,
    pub states: States,
    pub healthchecks: HealthChecks,
    /// This replica (`AuthoritativePod` of the results it writes).
    pub identity: Arc<str>,
    pub metrics: ControllerMetrics,
    /// Whether a report without `kh-run-uuid` is tied to its run by its source address.
    pub identify_by_source_ip: bool,
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

/// Times and counts every answer. The peer address is there when the server was started with
/// `into_make_service_with_connect_info::<SocketAddr>()`, as every replica's is.
async fn receive(
    State(ctx): State<ReportContext>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let response = answer(&ctx, peer, &headers, body).await;
    ctx.metrics
        .report_handled(response.status().as_u16(), started.elapsed());
    response
}

async fn answer(
    ctx: &ReportContext,
    peer: Option<IpAddr>,
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
    let header = headers.get(names::HEADER_RUN_UUID);
    let (uuid, report) = match parse::intake(header, &body) {
        Ok(intake) => intake,
        Err(refusal) => return json_error(refusal.status, refusal.reason),
    };
    // The header always wins; forwarded-for headers are not trusted.
    let (uuid, by) = match uuid {
        Some(uuid) => (uuid, IdentifiedBy::Header),
        None => {
            let missing = if header.is_some() {
                "the kh-run-uuid header is empty"
            } else {
                "missing the kh-run-uuid header"
            };
            match run_of_peer(ctx, peer, missing).await {
                Ok(uuid) => (uuid, IdentifiedBy::SourceAddress),
                Err(reason) => return json_error(StatusCode::BAD_REQUEST, reason),
            }
        }
    };
    match record(ctx, &uuid, by, &report).await {
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

/// The run of the checker pod whose address `peer` is, from the cache, waiting up to
/// [`ADDRESS_WAIT`] while an unfinished checker pod has no address yet; else the reason of
/// a 400, which starts with `missing` and names what to send.
async fn run_of_peer(
    ctx: &ReportContext,
    peer: Option<IpAddr>,
    missing: &str,
) -> Result<String, String> {
    let send = "send the value of the checker's KH_RUN_UUID variable as the kh-run-uuid header";
    let refuse = |why: String| Err(format!("{missing}{why}: {send}"));
    if !ctx.identify_by_source_ip {
        return refuse(
            ", and finding the run by the checker pod's address is turned off on this replica"
                .into(),
        );
    }
    let Some(peer) = peer.map(|ip| ip.to_canonical()) else {
        return refuse(", and the address of the connection is unknown".into());
    };
    let in_flight = |uuid: &str| {
        cached_record(ctx, uuid).is_some_and(|r| {
            let run = r.run();
            run.uuid == uuid && run.run_in_flight()
        })
    };
    let deadline = tokio::time::Instant::now() + ADDRESS_WAIT;
    let mut changes = ctx.cache.changes();
    loop {
        changes.borrow_and_update();
        match identify::by_address(&ctx.cache.pods.state(), peer, in_flight) {
            Identification::Run { uuid, pod } => {
                tracing::debug!(%peer, %pod, run = %uuid, "a report without kh-run-uuid came from this checker pod's address");
                return Ok(uuid);
            }
            Identification::Ambiguous { pods } => {
                tracing::info!(%peer, pods = ?pods, "refused a report without kh-run-uuid: several checker pods have its address");
                return refuse(format!(
                    ", and {} running checker pods have the address {peer} this report came from ({}; hostNetwork pods share their node's address), so which one sent it cannot be told",
                    pods.len(),
                    pods.join(", ")
                ));
            }
            Identification::Unknown { pending } => {
                let waited_out = !pending
                    || tokio::time::timeout_at(deadline, changes.changed())
                        .await
                        .is_err();
                if waited_out {
                    tracing::info!(%peer, "refused a report without kh-run-uuid: no running checker pod has its address");
                    return refuse(format!(
                        ", and no running checker pod has the address {peer} this report came from (a proxy, sidecar or NAT in between would change it)"
                    ));
                }
            }
        }
    }
}

/// The record of run `uuid` in the cache: the current run, or one the record remembers (a
/// superseded run gets 410, not 400).
fn cached_record(ctx: &ReportContext, uuid: &str) -> Option<Record> {
    if let Some(state) = ctx
        .cache
        .states
        .find(|s| s.spec.uuid == uuid || s.spec.history.iter().any(|h| h.uuid == uuid))
    {
        return Some(Record::State(state));
    }
    let store = ctx.cache.healthchecks.as_ref()?;
    store
        .find(|h| {
            h.status
                .as_ref()
                .is_some_and(|s| s.current_uuid == uuid || s.run_uuid.as_deref() == Some(uuid))
        })
        .map(Record::Status)
}

/// Finds the record of run `uuid`: the cache first, then the run's pod (cache, then one
/// list on the API server) and a fresh read of its record, for when the cache lags.
async fn find_record(ctx: &ReportContext, uuid: &str) -> Result<Option<Record>, kube::Error> {
    if let Some(record) = cached_record(ctx, uuid) {
        return Ok(Some(record));
    }
    let from_cache = ctx
        .cache
        .pods
        .find(|p| checker_pod::run_of(p) == Some(uuid))
        .map(|p| (*p).clone());
    let pod = match from_cache {
        Some(p) => Some(p),
        None => pods_of_run(ctx, uuid).await?,
    };
    let Some(pod) = pod else { return Ok(None) };
    let namespace = pod.namespace().unwrap_or_default();
    match checker_pod::owner_of(&pod) {
        Some(PodOwner::Check(check)) => Ok(ctx
            .states
            .get(&namespace, check)
            .await?
            .map(|s| Record::State(s.into()))),
        Some(PodOwner::HealthCheck(name)) if ctx.cache.healthchecks.is_some() => Ok(ctx
            .healthchecks
            .get(&namespace, name)
            .await?
            .map(|h| Record::Status(h.into()))),
        _ => Ok(None),
    }
}

/// A checker pod of run `uuid`, from the API server (when the cache has not seen it).
async fn pods_of_run(ctx: &ReportContext, uuid: &str) -> Result<Option<Pod>, kube::Error> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let mut labels = vec![names::LABEL_RUN_ID];
    if ctx.cache.healthchecks.is_some() {
        labels.push(names::LABEL_RUN_UUID);
    }
    for label in labels {
        let selector = format!("{label}={uuid}");
        let listed = api.list(&ListParams::default().labels(&selector)).await?;
        if let Some(pod) = listed.items.into_iter().next() {
            return Ok(Some(pod));
        }
    }
    Ok(None)
}

/// The run's checker pod, from the cache.
fn pod_of_run(ctx: &ReportContext, record: &Record) -> Option<Arc<Pod>> {
    let pod_name = record.run().run_pod.clone()?;
    ctx.cache
        .pods
        .get(&ObjectRef::new(&pod_name).within(&record.namespace()))
}

/// The timing of the check a khstate belongs to, from the cache: when its last result turned
/// stale. None for a job, or a check the cache does not hold or that does not validate.
fn timing_of_check(ctx: &ReportContext, record: &Record) -> Option<CheckTiming> {
    let check = ctx
        .cache
        .checks
        .get(&ObjectRef::new(&record.name()).within(&record.namespace()))?;
    check.validate().ok()
}

/// Writes the result into the record, conditioned on the version it was read at.
async fn write(
    ctx: &ReportContext,
    record: &Record,
    report: &Report,
    now: Timestamp,
) -> Result<(), WriteError> {
    let pod = pod_of_run(ctx, record);
    let node = pod
        .as_ref()
        .and_then(|p| p.spec.as_ref()?.node_name.clone());
    // A run whose pod was created late is dated from its pod.
    let pod_created = pod.and_then(|p| p.creation_timestamp()).map(|t| t.0);
    match &record.clone().dated_by_pod(pod_created) {
        Record::State(state) => {
            let spec = transition::finished(
                &state.spec,
                Outcome::reported(report.ok, report.errors.clone()),
                now,
                &ctx.identity,
                node,
                timing_of_check(ctx, record).as_ref(),
            );
            ctx.states.replace(state, spec).await.map(drop)
        }
        Record::Status(hc) => {
            let status = healthcheck::finished(
                &hc.status.clone().unwrap_or_default(),
                report.ok,
                report.errors.clone(),
                now,
                node,
            );
            ctx.healthchecks.replace_status(hc, status).await.map(drop)
        }
    }
}

/// The record as it is now on the API server, if it still exists.
async fn reread(ctx: &ReportContext, record: &Record) -> Result<Option<Record>, kube::Error> {
    let (namespace, name) = (record.namespace(), record.name());
    Ok(match record {
        Record::State(_) => ctx
            .states
            .get(&namespace, &name)
            .await?
            .map(|s| Record::State(s.into())),
        Record::Status(_) => ctx
            .healthchecks
            .get(&namespace, &name)
            .await?
            .map(|h| Record::Status(h.into())),
    })
}

async fn record(
    ctx: &ReportContext,
    uuid: &str,
    by: IdentifiedBy,
    report: &Report,
) -> Result<Response, kube::Error> {
    let Some(mut record) = find_record(ctx, uuid).await? else {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            format!(
                "run {uuid} is not known: no check has a run with this kh-run-uuid (it may belong to a deleted check)"
            ),
        ));
    };
    let key = record.key();
    if matches!(record, Record::Status(_)) && report.ok && !report.errors.is_empty() {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            format!(
                "{key} is a HealthCheck, and Kuberhealthy v3 refuses a report with \"OK\": true and errors: send errors only with \"OK\": false"
            ),
        ));
    }
    for _ in 0..WRITE_ATTEMPTS {
        let now = Timestamp::now();
        match judge::judge(&key, &record.run(), uuid, report, now) {
            Judgement::Gone(reason) => return Ok(json_error(StatusCode::GONE, reason)),
            Judgement::Duplicate => {
                tracing::info!(check = %key, run = %uuid, identified_by = by.as_str(), "the same report was sent again; already recorded");
                return Ok(accepted(&key, uuid));
            }
            Judgement::Record => {}
        }
        match write(ctx, &record, report, now).await {
            Ok(()) => {
                tracing::info!(check = %key, run = %uuid, identified_by = by.as_str(), ok = report.ok, errors = ?report.errors, "recorded a report");
                let outcome = if report.ok {
                    RunOutcome::Succeeded
                } else {
                    RunOutcome::Failed
                };
                ctx.metrics
                    .run_finished(&record.namespace(), &record.name(), outcome);
                if let (Record::Status(_), Some(started)) = (&record, record.run().run_started_at) {
                    ctx.metrics
                        .healthcheck_run_finished(now.duration_since(started).unsigned_abs());
                }
                return Ok(accepted(&key, uuid));
            }
            Err(WriteError::Conflict) => match reread(ctx, &record).await? {
                Some(fresh) => record = fresh,
                None => {
                    return Ok(json_error(
                        StatusCode::GONE,
                        format!("{key} was deleted; the report was not recorded"),
                    ));
                }
            },
            Err(WriteError::Api(e)) => return Err(e),
        }
    }
    Ok(json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the {} of {key} kept changing while the report was being written; retry",
            record.describe_record()
        ),
    ))
}

fn accepted(key: &str, uuid: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({ "message": format!("recorded the report of run {uuid} of {key}") })),
    )
        .into_response()
}
