//! What one `kuberhealthy run` process does: keep the cache, contend for the Lease, serve
//! HTTP, and stop cleanly on SIGTERM (leader tasks first, then the Lease is released).

use std::sync::Arc;

use anyhow::Context;
use axum::http::{HeaderName, HeaderValue};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::controller::api_error::{self, ApiErrorKind};
use crate::controller::bounded;
use crate::controller::cache::Cache;
use crate::controller::config::Settings;
use crate::controller::leader::{self, Elector, ElectorConfig, Holder, KubeLeaseStore, Leadership};
use crate::controller::memory;
use crate::controller::metrics;
use crate::controller::metrics::ControllerMetrics;
use crate::controller::report::{self, ReportContext};
use crate::controller::run::execute::{Executor, ExecutorSettings};
use crate::controller::run::plan::PlanSettings;
use crate::controller::run::reap::Retention;
use crate::controller::run::supervisor::Supervisor;
use crate::controller::run_now::{self, RunNowContext};
use crate::controller::server::{self, AppState};
use crate::controller::store::{HealthChecks, States};

/// A client whose user agent names this replica, so the API server's audit log and
/// metrics can tell replicas apart.
pub async fn client(settings: &Settings) -> anyhow::Result<kube::Client> {
    let mut config = kube::Config::infer()
        .await
        .context("cannot find a Kubernetes API server: run in a pod with a service account, or set KUBECONFIG")?;
    let agent = format!(
        "kuberhealthy/{} ({})",
        env!("CARGO_PKG_VERSION"),
        settings.pod_name
    );
    config.headers.push((
        HeaderName::from_static("user-agent"),
        HeaderValue::from_str(&agent).context("POD_NAME must be printable ASCII")?,
    ));
    kube::Client::try_from(config).context("cannot build a Kubernetes client")
}

/// The elector, on a thread with a runtime and an API connection of its own: no load on the
/// HTTP server or the cache (same process) can delay a Lease renewal.
struct ElectorThread {
    leadership: tokio::sync::oneshot::Receiver<Leadership>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

fn spawn_elector(
    settings: &Settings,
    holder: Holder,
    shutdown: CancellationToken,
) -> anyhow::Result<ElectorThread> {
    let settings = settings.clone();
    let (send, leadership) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("lease".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the Lease thread's runtime")?;
            runtime.block_on(async move {
                // Built here, so its connections are driven by this thread.
                let client = client(&settings).await?;
                let store =
                    KubeLeaseStore::new(client, &settings.pod_namespace, &settings.lease.name);
                let (elector, leadership) = Elector::new(
                    ElectorConfig {
                        identity: settings.pod_name.clone(),
                        lease_duration: settings.lease.lease_duration.as_duration(),
                        renew_deadline: settings.lease.renew_deadline.as_duration(),
                        retry_period: settings.lease.retry_period.as_duration(),
                    },
                    store,
                );
                if send.send(leadership).is_err() {
                    return Ok(());
                }
                elector.with_holder_watch(holder).run(shutdown).await;
                Ok(())
            })
        })
        .context("cannot start the Lease thread")?;
    Ok(ElectorThread { leadership, thread })
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let client = client(&settings).await?;
    memory::spawn_releaser();
    let shutdown = CancellationToken::new();
    // Listening first: a request that comes while the replica starts waits to be served
    // rather than being refused.
    let listener = TcpListener::bind(settings.listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen_address))?;

    let healthchecks = settings.healthchecks
        && healthchecks_served(&client, settings.target_namespace.as_deref()).await;
    let cache = Cache::start(
        client.clone(),
        settings.target_namespace.as_deref(),
        healthchecks,
    );
    let (holder, lease_synced) = leader::watch_holder(
        client.clone(),
        &settings.pod_namespace,
        &settings.lease.name,
    );

    let elector = spawn_elector(&settings, holder.clone(), shutdown.clone())?;
    let leadership = elector
        .leadership
        .await
        .context("the Lease thread stopped before it started contending")?;
    let metrics =
        metrics::for_replica(&settings, cache.clone(), holder.clone(), leadership.clone())
            .context("cannot set up metrics")?;
    tokio::spawn(supervise_each_term(
        leadership,
        cache.clone(),
        client.clone(),
        leader_settings(&settings, metrics.controller()),
    ));

    let reports = report::router(ReportContext {
        cache: cache.clone(),
        client: client.clone(),
        states: States::new(client.clone()),
        healthchecks: HealthChecks::new(client.clone()),
        identity: settings.pod_name.as_str().into(),
        metrics: metrics.controller(),
        identify_by_source_ip: settings.identify_reports_by_source_ip,
    });

    let run_now = run_now::router(RunNowContext {
        cache: cache.clone(),
        client: client.clone(),
    });

    let pages = AppState {
        cache,
        holder,
        lease_synced,
        metadata: Arc::new(settings.state_metadata.clone()),
        metrics: metrics.clone(),
        identity: settings.pod_name.as_str().into(),
        shutdown: shutdown.clone(),
    };
    let app = bounded::bound(
        server::probes(pages.clone()),
        server::router(pages).merge(reports).merge(run_now),
        &settings.http,
    );
    tracing::info!(address = %listener.local_addr()?, limits = ?settings.http, "serving the status page, reports, /metrics, /healthz and /readyz");
    let server = tokio::spawn(bounded::serve(
        listener,
        app,
        settings.http.clone(),
        shutdown.clone(),
    ));

    wait_for_signal().await;
    tracing::info!("shutting down: stopping leader tasks, then releasing the Lease");
    shutdown.cancel();
    tokio::task::spawn_blocking(move || elector.thread.join())
        .await
        .context("waiting for the Lease thread")?
        .map_err(|_| anyhow::anyhow!("the Lease thread panicked"))??;
    server.await.context("the HTTP server task failed")?;
    // Last OTLP push; blocking, so off the async workers.
    match tokio::task::spawn_blocking(move || metrics.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "metrics did not shut down cleanly"),
        Err(error) => tracing::warn!(%error, "the metrics shutdown task failed"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Whether the API server serves HealthChecks to this replica: one list at start-up. Without
/// the CRD (a v2-only install) or the permission, the replica runs without HealthChecks and
/// says why, instead of waiting forever for a cache that cannot fill; installing either later
/// takes a restart. An API server that does not answer is asked again a few times, then the
/// HealthChecks are watched anyway (the watch retries).
async fn healthchecks_served(client: &kube::Client, namespace: Option<&str>) -> bool {
    use backon::{ExponentialBuilder, Retryable};
    use kube::api::ListParams;

    use crate::api::HealthCheck;
    let api: kube::Api<HealthCheck> = match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    };
    let definite = |e: &kube::Error| {
        matches!(
            api_error::classify(e),
            ApiErrorKind::NotFound | ApiErrorKind::Forbidden
        )
    };
    let listed = (|| async { api.list_metadata(&ListParams::default().limit(1)).await })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(std::time::Duration::from_millis(500))
                .with_max_times(4),
        )
        .when(|e| !definite(e))
        .notify(|e, _| {
            tracing::warn!(error = %api_error::reason(e), "cannot tell yet whether HealthChecks are served; asking again")
        })
        .await;
    match listed {
        Ok(_) => {
            tracing::info!("serving Kuberhealthy v3's HealthChecks too");
            true
        }
        Err(e) if api_error::classify(&e) == ApiErrorKind::NotFound => {
            tracing::warn!(
                "HealthChecks are not served: the API server has no healthchecks.kuberhealthy.github.io (install the HealthCheck CRD and restart, or set KH_HEALTHCHECKS=false)"
            );
            false
        }
        Err(e) if api_error::classify(&e) == ApiErrorKind::Forbidden => {
            tracing::warn!(reason = %api_error::reason(&e), "HealthChecks are not served: this replica may not list them (grant the RBAC of `kuberhealthy rbac` and restart, or set KH_HEALTHCHECKS=false)");
            false
        }
        Err(e) => {
            tracing::warn!(error = %api_error::reason(&e), "watching HealthChecks although the API server did not answer whether it serves them");
            true
        }
    }
}

/// What the leader's supervisor of each term is made of.
#[derive(Clone)]
struct LeaderSettings {
    executor: ExecutorSettings,
    plan: PlanSettings,
    starts_per_second: u32,
}

fn leader_settings(settings: &Settings, metrics: ControllerMetrics) -> LeaderSettings {
    LeaderSettings {
        executor: ExecutorSettings {
            identity: settings.pod_name.clone(),
            reporting_url: settings.reporting_url.clone(),
            healthcheck_reporting_url: settings.healthcheck_reporting_url.clone(),
            metrics,
        },
        plan: PlanSettings {
            retention: Retention {
                max_completed: settings.max_completed_pod_count as usize,
                max_failed: settings.max_error_pod_count as usize,
                max_age: settings.max_check_pod_age.as_duration(),
            },
            max_khjob_age: settings.max_khjob_age.as_duration(),
        },
        starts_per_second: settings.max_starts_per_second,
    }
}

/// Runs the supervisor for every term this replica leads, under the term's token.
async fn supervise_each_term(
    mut leadership: Leadership,
    cache: Cache,
    client: kube::Client,
    settings: LeaderSettings,
) {
    loop {
        let term = leadership.borrow_and_update().clone();
        if let Some(term) = term {
            let executor = Executor::new(client.clone(), term.clone(), settings.executor.clone());
            let supervisor = Supervisor::new(
                cache.clone(),
                executor,
                term.clone(),
                settings.plan,
                settings.starts_per_second,
            );
            term.spawn(supervisor.run());
        }
        if leadership.changed().await.is_err() {
            return;
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
