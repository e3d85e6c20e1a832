//! Metrics: Kuberhealthy v2's gauges (same names, labels and help) and v3's HealthCheck
//! families computed from the watch cache, and this project's controller metrics, recorded
//! through OpenTelemetry instruments.
//! Every replica serves them at `GET /metrics`; when an OTLP endpoint is configured the same
//! instruments are also pushed there periodically.

mod controller;
mod exposition;
mod freshness;
mod labels;
mod otlp;
mod page;
mod v2;
mod v3;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::resource::{
    EnvResourceDetector, ResourceDetector, TelemetryResourceDetector,
};
use prometheus::Registry;

pub use controller::{
    ACTION_FAILURES, CHECK_RUN_DURATION, ControllerMetrics, LEADER, REPORT_DURATION,
    RUN_START_LATENESS, RUNS_FAILED, RUNS_STARTED, RUNS_SUCCEEDED, RUNS_TIMED_OUT, RunOutcome,
};
pub use exposition::{respond, router};
pub use labels::error_label;
pub use otlp::OtlpSettings;
pub use page::{
    ChangeSource, LeaderSource, PageSource, V3PageSource, changes_of, from_cache, from_leadership,
    v3_from_cache,
};
pub use v2::{CHECK, CHECK_DURATION, CLUSTER_STATE, JOB, JOB_DURATION, RUNNING};
pub use v3::{CONSECUTIVE_FAILURES, FAILURE_TOTAL, SECONDS_SINCE_SUCCESS, SUCCESS_TOTAL};

use crate::controller::config::PromMetricsConfig;
use crate::controller::served::{Document, Rendered, Served};
use crate::controller::status::NextTurn;
use page::PageMemo;

/// The instrumentation scope of every instrument (OTLP shows it; `/metrics` does not).
const METER_NAME: &str = "kuberhealthy";
/// `OTEL_SERVICE_NAME`, which overrides the `service.name` default.
const SERVICE_NAME_VARIABLE: &str = "OTEL_SERVICE_NAME";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{variable}={value:?}: {reason}")]
    Setting {
        variable: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot build the {0}")]
    Exporter(String),
    #[error("cannot encode the metrics: {0}")]
    Encode(String),
    #[error("metrics provider: {0}")]
    Provider(String),
}

/// What the metrics are configured with.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    /// v2's `promMetricsConfig` (the `error` label).
    pub prom: PromMetricsConfig,
    /// Where to push, or `None` for no push.
    pub otlp: Option<OtlpSettings>,
    /// This replica's name: the OTLP resource's `service.instance.id`.
    pub instance: String,
}

/// What the metrics read: the status pages, and whether this replica leads.
#[derive(Clone)]
pub struct MetricsSources {
    pub page: PageSource,
    /// v3's page, of the HealthChecks.
    pub v3_page: V3PageSource,
    pub is_leader: LeaderSource,
    /// What moves when the pages change; without it, every scrape encodes anew.
    pub changes: Option<ChangeSource>,
}

/// All the metrics of one replica. Cheap to clone; the clones share one meter provider.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SdkMeterProvider,
    registry: Registry,
    memo: Arc<PageMemo>,
    v3_memo: Arc<PageMemo<crate::controller::status::v3::StatusPage>>,
    controller: ControllerMetrics,
    otlp: Option<OtlpSettings>,
    is_leader: LeaderSource,
    changes: Option<ChangeSource>,
    /// The exposition, encoded again when leadership or the holder changed at once, when the
    /// cache or a controller metric changed at most once per [`SETTLE`], or when a result
    /// turned stale.
    served: Served<(bool, Option<String>)>,
    /// Whether the series limit was exceeded (warned once).
    over_limit: AtomicBool,
}

/// The series one instrument keeps: a check, job or HealthCheck is one series of each
/// per-check instrument. OpenTelemetry's SDK folds series past its default of 2,000 into one
/// `otel_metric_overflow` series, which would hide checks beyond the 2,000th. The SDK sizes
/// each instrument's map for its limit up front (by design, so that recording never
/// allocates), and the map's pages become resident as series land at hashed slots: about
/// 32 bytes per slot once a few hundred checks are shown. 14,000 is the largest limit whose
/// map has 16,384 slots (about 540 KiB per per-check instrument; 20,000 would take 32,768).
pub const SERIES_LIMIT: usize = 14_000;

/// Every instrument keeps up to [`SERIES_LIMIT`] series.
fn series_limit(
    _: &opentelemetry_sdk::metrics::Instrument,
) -> Option<opentelemetry_sdk::metrics::Stream> {
    opentelemetry_sdk::metrics::Stream::builder()
        .with_cardinality_limit(SERIES_LIMIT)
        .build()
        .ok()
}

/// How long `/metrics` may lag the cache's churn: under a stream of reports it is encoded
/// at most once per this interval, not once per report.
pub const SETTLE: Duration = Duration::from_secs(1);

impl Metrics {
    pub fn new(
        settings: MetricsSettings,
        sources: MetricsSources,
    ) -> Result<Metrics, MetricsError> {
        let (prometheus, registry) = exposition::exporter()?;
        let mut provider = SdkMeterProvider::builder()
            .with_resource(resource(&settings.instance))
            .with_view(series_limit)
            .with_reader(prometheus);
        if let Some(otlp) = &settings.otlp {
            provider = provider.with_reader(otlp::reader(otlp)?);
        }
        let provider = provider.build();

        let meter = provider.meter_with_scope(
            opentelemetry::InstrumentationScope::builder(METER_NAME)
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        let memo = Arc::new(PageMemo::new(sources.page));
        v2::register(&meter, memo.clone(), settings.prom);
        freshness::register(&meter, memo.clone());
        let v3_memo = Arc::new(PageMemo::new(sources.v3_page));
        v3::register(&meter, v3_memo.clone());
        controller::register_leader(&meter, sources.is_leader.clone());
        let controller = ControllerMetrics::new(&meter);
        Ok(Metrics {
            inner: Arc::new(Inner {
                provider,
                registry,
                memo,
                v3_memo,
                controller,
                otlp: settings.otlp,
                is_leader: sources.is_leader,
                changes: sources.changes,
                served: Served::settling(prometheus::TEXT_FORMAT, SETTLE),
                over_limit: AtomicBool::new(false),
            }),
        })
    }

    /// The handle the scheduler and the report handler record with.
    pub fn controller(&self) -> ControllerMetrics {
        self.inner.controller.clone()
    }

    /// Where metrics are pushed, if anywhere.
    pub fn otlp(&self) -> Option<&OtlpSettings> {
        self.inner.otlp.as_ref()
    }

    /// The Prometheus text exposition, from pages rendered for this scrape.
    pub fn exposition(&self) -> Result<String, MetricsError> {
        let rendered = self.render(Timestamp::now())?;
        String::from_utf8(rendered.body).map_err(|e| MetricsError::Encode(e.to_string()))
    }

    /// Encodes the exposition from pages rendered now, with the moment it turns stale.
    fn render(&self, now: Timestamp) -> Result<Rendered, MetricsError> {
        let NextTurn(v2_turn) = self.inner.memo.refresh();
        let NextTurn(v3_turn) = self.inner.v3_memo.refresh();
        let page = self.inner.memo.current();
        let series = page.check_details.len() + page.job_details.len();
        if series > SERIES_LIMIT && !self.inner.over_limit.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                series,
                limit = SERIES_LIMIT,
                "more checks and jobs than /metrics keeps series for; those beyond the limit are folded into one series labelled otel_metric_overflow"
            );
        }
        // v3's seconds-since-success moves with the clock while a HealthCheck has passed.
        let ticking = self
            .inner
            .v3_memo
            .current()
            .check_details
            .values()
            .any(|d| d.seconds_since_success >= 0)
            .then(|| now + jiff::SignedDuration::from_secs(1));
        let valid_until = [v2_turn, v3_turn, ticking].into_iter().flatten().min();
        Ok(Rendered {
            body: exposition::encode(&self.inner.registry)?,
            ok: true,
            valid_until,
        })
    }

    /// The exposition as a served document: encoded again only when what it shows changed.
    pub async fn document(&self) -> Result<Arc<Document>, MetricsError> {
        let now = Timestamp::now();
        let Some(changes) = &self.inner.changes else {
            let rendered = self.render(now)?;
            return Ok(Arc::new(Document::new(rendered, prometheus::TEXT_FORMAT)));
        };
        let (churn, holder) = changes();
        let churn = churn.wrapping_add(self.inner.controller.recorded());
        let pinned = ((self.inner.is_leader)(), holder);
        self.inner
            .served
            .try_get(pinned, churn, now, || self.render(now))
            .await
    }

    /// How many times the served exposition was encoded.
    pub fn encodings(&self) -> u64 {
        self.inner.served.renders()
    }

    /// Pushes a last time and stops the OTLP reader. Blocks: call it off the async workers.
    pub fn shutdown(&self) -> Result<(), MetricsError> {
        self.inner
            .provider
            .shutdown()
            .map_err(|e| MetricsError::Provider(format!("shutdown, with a last OTLP push: {e}")))
    }
}

/// The metrics of one `kuberhealthy run` replica: its cache, its Lease holder watch and its
/// leadership, OTLP from the standard environment. Logs whether and where OTLP pushes.
pub fn for_replica(
    settings: &crate::controller::config::Settings,
    cache: crate::controller::cache::Cache,
    holder: crate::controller::leader::Holder,
    leadership: crate::controller::leader::Leadership,
) -> Result<Metrics, MetricsError> {
    let otlp = OtlpSettings::from_env()?;
    let metrics = Metrics::new(
        MetricsSettings {
            prom: settings.prom_metrics_config.clone(),
            otlp,
            instance: settings.pod_name.clone(),
        },
        MetricsSources {
            page: from_cache(cache.clone(), holder.clone()),
            v3_page: v3_from_cache(cache.clone(), holder.clone()),
            is_leader: from_leadership(leadership),
            changes: Some(changes_of(cache, holder)),
        },
    )?;
    match metrics.otlp() {
        Some(otlp) => tracing::info!(
            endpoint = %otlp.endpoint,
            interval = ?otlp.effective_interval(),
            "OTLP metrics export is on"
        ),
        None => tracing::info!(
            "OTLP metrics export is off; set {} or {} to push metrics",
            otlp::ENDPOINT,
            otlp::METRICS_ENDPOINT
        ),
    }
    Ok(metrics)
}

/// `service.name=kuberhealthy` and `service.instance.id=<pod>` by default; the standard
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` override them, in that order.
fn resource(instance: &str) -> Resource {
    let mut builder = Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", METER_NAME),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", instance.to_string()),
        ])
        .with_detectors(&[
            Box::new(TelemetryResourceDetector) as Box<dyn ResourceDetector>,
            Box::new(EnvResourceDetector::new()),
        ]);
    if let Some(name) = std::env::var(SERVICE_NAME_VARIABLE)
        .ok()
        .filter(|n| !n.trim().is_empty())
    {
        builder = builder.with_service_name(name);
    }
    builder.build()
}

#[cfg(test)]
mod tests;
