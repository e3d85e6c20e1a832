//! The check client: what a checker uses to report its result, as a library
//! ([`Reporter`]) and as `kuberhealthy report --ok` / `--error "msg"` for shell checks.
//!
//! It reads v2's environment (`KH_REPORTING_URL`, `KH_RUN_UUID`, `KH_CHECK_RUN_DEADLINE`),
//! sends `{"OK": ..., "Errors": [...]}` with the `kh-run-uuid` header, retries transport
//! errors and 5xx answers with backoff until the run's deadline, and never retries a 4xx:
//! the server's reason is returned instead.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use jiff::Timestamp;
use serde_json::json;

use crate::api::names;

/// Why a report could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0} is not set: this command runs inside a checker pod, where Kuberhealthy sets it")]
    MissingEnv(&'static str),
    #[error("{name} is {value:?}, {expected}")]
    BadEnv {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the report was refused with HTTP {status}: {reason}")]
    Refused { status: u16, reason: String },
    #[error("the report could not be delivered before the run's deadline: {0}")]
    Undelivered(String),
    #[error("an OK:false report needs at least one non-blank error message")]
    NoErrors,
}

/// Where and for which run to report, read from the checker's environment.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub url: String,
    pub run_uuid: String,
    pub deadline: Option<Timestamp>,
    http: reqwest::Client,
}

/// Reads `KH_CHECK_RUN_DEADLINE` (unix seconds), as v2's `GetDeadline` does.
pub fn deadline_from(value: Option<String>) -> Result<Option<Timestamp>, ReportError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let bad = || ReportError::BadEnv {
        name: names::ENV_CHECK_RUN_DEADLINE,
        value: value.clone(),
        expected: "expected unix seconds such as 1700000000",
    };
    let seconds: i64 = value.trim().parse().map_err(|_| bad())?;
    Timestamp::from_second(seconds).map(Some).map_err(|_| bad())
}

/// The process-wide TLS provider for HTTPS reporting URLs and HTTP checks (the same ring
/// provider the Kubernetes client uses); installing it twice is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Reporter {
    /// Builds a reporter from the environment of a checker pod.
    pub fn from_env() -> Result<Reporter, ReportError> {
        let var = |name: &'static str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let url = var(names::ENV_REPORTING_URL)
            .ok_or(ReportError::MissingEnv(names::ENV_REPORTING_URL))?;
        let run_uuid =
            var(names::ENV_RUN_UUID).ok_or(ReportError::MissingEnv(names::ENV_RUN_UUID))?;
        let deadline = deadline_from(var(names::ENV_CHECK_RUN_DEADLINE))?;
        Reporter::new(url, run_uuid, deadline)
    }

    pub fn new(
        url: String,
        run_uuid: String,
        deadline: Option<Timestamp>,
    ) -> Result<Reporter, ReportError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ReportError::BadEnv {
                name: names::ENV_REPORTING_URL,
                value: url,
                expected: "expected an http:// or https:// URL",
            });
        }
        install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ReportError::Undelivered(format!("cannot build an HTTP client: {e}")))?;
        Ok(Reporter {
            url,
            run_uuid,
            deadline,
            http,
        })
    }

    pub async fn report_success(&self) -> Result<(), ReportError> {
        self.send(true, &[]).await
    }

    pub async fn report_failure(&self, errors: &[String]) -> Result<(), ReportError> {
        if errors.iter().all(|e| e.trim().is_empty()) {
            return Err(ReportError::NoErrors);
        }
        self.send(false, errors).await
    }

    /// How long is left until the run's deadline (30 s when there is none, as v2's client).
    fn time_left(&self) -> Duration {
        match self.deadline {
            Some(d) => Timestamp::now()
                .duration_until(d)
                .try_into()
                .unwrap_or(Duration::ZERO),
            None => Duration::from_secs(30),
        }
    }

    async fn send(&self, ok: bool, errors: &[String]) -> Result<(), ReportError> {
        let body = json!({ "OK": ok, "Errors": errors });
        let give_up = tokio::time::Instant::now() + self.time_left();
        let attempt = || async {
            let response = self
                .http
                .post(&self.url)
                .header(names::HEADER_RUN_UUID, &self.run_uuid)
                .json(&body)
                .send()
                .await
                .map_err(|e| Attempt::Retry(format!("cannot reach {}: {e}", self.url)))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let text = response.text().await.unwrap_or_default();
            let reason = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or(text);
            if status.is_server_error() {
                Err(Attempt::Retry(format!(
                    "HTTP {}: {reason}",
                    status.as_u16()
                )))
            } else {
                Err(Attempt::Refused {
                    status: status.as_u16(),
                    reason,
                })
            }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times();
        let result = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, Attempt::Retry(_)) && tokio::time::Instant::now() < give_up)
            .notify(|e, wait| eprintln!("kuberhealthy report: {e}; retrying in {wait:?}"))
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(Attempt::Refused { status, reason }) => {
                Err(ReportError::Refused { status, reason })
            }
            Err(Attempt::Retry(last)) => Err(ReportError::Undelivered(last)),
        }
    }
}

#[derive(Debug)]
enum Attempt {
    Retry(String),
    Refused { status: u16, reason: String },
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Retry(e) => f.write_str(e),
            Attempt::Refused { status, reason } => write!(f, "HTTP {status}: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_unix_seconds() {
        assert_eq!(
            deadline_from(Some("1700000000".into())).unwrap(),
            Some(Timestamp::from_second(1_700_000_000).unwrap())
        );
        assert_eq!(deadline_from(None).unwrap(), None);
        assert_eq!(deadline_from(Some(" ".into())).unwrap(), None);
        assert_eq!(
            deadline_from(Some("soon".into())).unwrap_err().to_string(),
            "KH_CHECK_RUN_DEADLINE is \"soon\", expected unix seconds such as 1700000000"
        );
    }

    #[test]
    fn a_reporting_url_must_be_http() {
        let e = Reporter::new("kuberhealthy:80".into(), "u".into(), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "KH_REPORTING_URL is \"kuberhealthy:80\", expected an http:// or https:// URL"
        );
    }

    #[tokio::test]
    async fn a_failure_needs_an_error() {
        let r = Reporter::new("http://127.0.0.1:9/".into(), "u".into(), None).unwrap();
        assert!(matches!(
            r.report_failure(&["  ".into()]).await,
            Err(ReportError::NoErrors)
        ));
    }
}
