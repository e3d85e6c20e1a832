//! OTLP push of the same metrics (HTTP/protobuf, periodic), switched on by the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` variables. The other
//! standard variables (`OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, ...) are read by the SDK itself.

use std::time::Duration;

use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::metrics::PeriodicReader;

use super::MetricsError;

pub const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
pub const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
pub const EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";

/// The only protocol built in.
const HTTP_PROTOBUF: &str = "http/protobuf";
/// The SDK's default export interval, when `OTEL_METRIC_EXPORT_INTERVAL` is unset.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Where and how often to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The full metrics URL, e.g. `http://collector:4318/v1/metrics`.
    pub endpoint: String,
    /// `None`: the SDK's own, from `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds, default 60 s).
    pub interval: Option<Duration>,
}

impl OtlpSettings {
    /// From the process environment; `None` when no endpoint is configured (export off).
    pub fn from_env() -> Result<Option<OtlpSettings>, MetricsError> {
        OtlpSettings::resolve(|name| std::env::var(name).ok())
    }

    /// As the OpenTelemetry specification resolves it: the metrics-specific endpoint as is,
    /// else the general endpoint with `/v1/metrics` appended. Blank values count as unset.
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpSettings>, MetricsError> {
        let get = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        for variable in [METRICS_PROTOCOL, PROTOCOL] {
            if let Some(protocol) = get(variable) {
                if protocol != HTTP_PROTOBUF {
                    return Err(MetricsError::Setting {
                        variable,
                        value: protocol,
                        reason: format!(
                            "only {HTTP_PROTOBUF} is built in; unset it or set {HTTP_PROTOBUF}"
                        ),
                    });
                }
                // The metrics-specific variable wins over the general one.
                break;
            }
        }

        let (variable, endpoint) = match (get(METRICS_ENDPOINT), get(ENDPOINT)) {
            (Some(url), _) => (METRICS_ENDPOINT, url),
            (None, Some(base)) => (
                ENDPOINT,
                format!("{}/v1/metrics", base.trim_end_matches('/')),
            ),
            (None, None) => return Ok(None),
        };
        if endpoint.starts_with("https://") {
            return Err(MetricsError::Setting {
                variable,
                value: endpoint,
                reason: "HTTPS is not built into the OTLP exporter; push to an http:// endpoint, \
                         such as an OpenTelemetry Collector in the cluster"
                    .to_string(),
            });
        }
        if !endpoint.starts_with("http://") {
            return Err(MetricsError::Setting {
                variable,
                value: endpoint,
                reason: "expected an http:// URL, such as http://otel-collector:4318".to_string(),
            });
        }
        Ok(Some(OtlpSettings {
            endpoint,
            interval: None,
        }))
    }

    /// The interval the reader will use, for the start-up log.
    pub fn effective_interval(&self) -> Duration {
        self.interval.unwrap_or_else(|| {
            std::env::var(EXPORT_INTERVAL)
                .ok()
                .and_then(|ms| ms.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map_or(DEFAULT_INTERVAL, Duration::from_millis)
        })
    }
}

/// A reader that collects and pushes on its own thread, every interval and at shutdown.
pub(crate) fn reader(
    settings: &OtlpSettings,
) -> Result<PeriodicReader<MetricExporter>, MetricsError> {
    // The exporter's HTTP client needs rustls's process-wide provider.
    crate::checker::client::install_tls_provider();
    let exporter = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.endpoint.clone())
        .build()
        .map_err(|e| {
            MetricsError::Exporter(format!(
                "OTLP metric exporter for {}: {e}",
                settings.endpoint
            ))
        })?;
    let mut reader = PeriodicReader::builder(exporter);
    if let Some(interval) = settings.interval {
        reader = reader.with_interval(interval);
    }
    Ok(reader.build())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(vars: &[(&str, &str)]) -> Result<Option<OtlpSettings>, MetricsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpSettings::resolve(|name| vars.get(name).cloned())
    }

    fn endpoint(vars: &[(&str, &str)]) -> Option<String> {
        resolve(vars).unwrap().map(|s| s.endpoint)
    }

    #[test]
    fn off_without_an_endpoint() {
        assert_eq!(endpoint(&[]), None);
        assert_eq!(endpoint(&[(ENDPOINT, "  "), (METRICS_ENDPOINT, "")]), None);
        // Other OTEL variables alone do not switch export on.
        assert_eq!(endpoint(&[(PROTOCOL, "http/protobuf")]), None);
    }

    #[test]
    fn the_general_endpoint_gets_the_metrics_path() {
        assert_eq!(
            endpoint(&[(ENDPOINT, "http://collector:4318")]).as_deref(),
            Some("http://collector:4318/v1/metrics")
        );
        assert_eq!(
            endpoint(&[(ENDPOINT, "http://collector:4318/prefix/")]).as_deref(),
            Some("http://collector:4318/prefix/v1/metrics")
        );
    }

    #[test]
    fn the_metrics_endpoint_is_used_as_is_and_wins() {
        assert_eq!(
            endpoint(&[
                (ENDPOINT, "http://general:4318"),
                (
                    METRICS_ENDPOINT,
                    "http://prometheus:9090/api/v1/otlp/v1/metrics"
                ),
            ])
            .as_deref(),
            Some("http://prometheus:9090/api/v1/otlp/v1/metrics")
        );
    }

    #[test]
    fn https_and_other_schemes_are_refused_with_the_variable_named() {
        let error = resolve(&[(ENDPOINT, "https://collector:4318")]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(ENDPOINT), "{message}");
        assert!(message.contains("HTTPS is not built in"), "{message}");
        let error = resolve(&[(METRICS_ENDPOINT, "collector:4318")]).unwrap_err();
        assert!(error.to_string().contains(METRICS_ENDPOINT), "{error}");
    }

    #[test]
    fn only_http_protobuf_is_accepted() {
        let vars = [(ENDPOINT, "http://c:4318"), (PROTOCOL, "grpc")];
        let message = resolve(&vars).unwrap_err().to_string();
        assert!(message.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{message}");
        assert!(message.contains("\"grpc\""), "{message}");
        // The metrics-specific protocol overrides the general one, either way.
        let vars = [
            (ENDPOINT, "http://c:4318"),
            (PROTOCOL, "grpc"),
            (METRICS_PROTOCOL, "http/protobuf"),
        ];
        assert!(resolve(&vars).unwrap().is_some());
        let vars = [
            (ENDPOINT, "http://c:4318"),
            (PROTOCOL, "http/protobuf"),
            (METRICS_PROTOCOL, "http/json"),
        ];
        assert!(resolve(&vars).is_err());
    }

    #[test]
    fn an_explicit_interval_is_reported_as_is() {
        let settings = OtlpSettings {
            endpoint: "http://c:4318/v1/metrics".into(),
            interval: Some(Duration::from_millis(250)),
        };
        assert_eq!(settings.effective_interval(), Duration::from_millis(250));
    }
}
