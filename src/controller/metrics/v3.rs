//! Kuberhealthy v3's metrics of HealthChecks, with v3's names and labels (`check` is the bare
//! name, as v3 writes it; `severity` and `category` from the HealthCheck's labels
//! `kuberhealthy.io/severity` and `kuberhealthy.io/category`, as v3's default allow-list), as
//! observable instruments whose callbacks read v3's status page: a deleted HealthCheck's
//! series disappear with it. v3's run duration histogram is a controller metric
//! ([`super::CHECK_RUN_DURATION`]), recorded as each run finishes.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use super::page::PageMemo;
use crate::controller::status::v3::{CheckDetails, StatusPage};

pub const CONSECUTIVE_FAILURES: &str = "kuberhealthy_check_consecutive_failures";
pub const SUCCESS_TOTAL: &str = "kuberhealthy_check_success_total";
pub const FAILURE_TOTAL: &str = "kuberhealthy_check_failure_total";
pub const SECONDS_SINCE_SUCCESS: &str = "kuberhealthy_check_seconds_since_success";

/// `check` (the bare name), `namespace`, and `severity`/`category` when the HealthCheck has
/// them; sorted by name (see [`super::labels::status_attributes`]).
pub fn attributes(details: &CheckDetails) -> Vec<KeyValue> {
    let optional = |key: &'static str, value: &Option<String>| {
        value.as_deref().map(|v| KeyValue::new(key, sanitized(v)))
    };
    [
        optional("category", &details.category),
        Some(KeyValue::new("check", details.name.clone())),
        Some(KeyValue::new("namespace", details.namespace.clone())),
        optional("severity", &details.severity),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// v3's label sanitising: `"` becomes `'`, line breaks spaces, at most 256 bytes.
fn sanitized(value: &str) -> String {
    let mut value = value.replace('"', "'").replace(['\n', '\r'], " ");
    super::labels::truncate_on_char_boundary(&mut value, 256);
    value
}

fn observe_each<T>(
    gauge: &dyn AsyncInstrument<T>,
    page: &StatusPage,
    value: impl Fn(&CheckDetails) -> T,
) {
    for details in page.check_details.values() {
        gauge.observe(value(details), &attributes(details));
    }
}

/// Registers v3's four per-HealthCheck families on `meter`.
pub(crate) fn register(meter: &Meter, memo: Arc<PageMemo<StatusPage>>) {
    let m = memo.clone();
    meter
        .i64_observable_gauge(CONSECUTIVE_FAILURES)
        .with_description("Consecutive failed runs of a HealthCheck")
        .with_callback(move |gauge| observe_each(gauge, &m.current(), |d| d.consecutive_failures))
        .build();
    let m = memo.clone();
    meter
        .u64_observable_counter(SUCCESS_TOTAL)
        .with_description("Runs of a HealthCheck that passed (its status.successCount)")
        .with_callback(move |counter| {
            observe_each(counter, &m.current(), |d| {
                u64::try_from(d.success_count).unwrap_or(0)
            })
        })
        .build();
    let m = memo.clone();
    meter
        .u64_observable_counter(FAILURE_TOTAL)
        .with_description("Runs of a HealthCheck that failed (its status.failureCount)")
        .with_callback(move |counter| {
            observe_each(counter, &m.current(), |d| {
                u64::try_from(d.failure_count).unwrap_or(0)
            })
        })
        .build();
    meter
        .i64_observable_gauge(SECONDS_SINCE_SUCCESS)
        .with_description("Seconds since a HealthCheck last passed; -1 if it never has")
        .with_callback(move |gauge| {
            observe_each(gauge, &memo.current(), |d| d.seconds_since_success)
        })
        .build();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_given_sorted_by_name() {
        let details = CheckDetails {
            name: "dns".into(),
            namespace: "team-a".into(),
            severity: Some("warning".into()),
            category: Some("network".into()),
            ..Default::default()
        };
        let keys: Vec<String> = attributes(&details)
            .iter()
            .map(|kv| kv.key.to_string())
            .collect();
        assert_eq!(keys, ["category", "check", "namespace", "severity"]);
        let bare = CheckDetails {
            name: "dns".into(),
            ..Default::default()
        };
        let keys: Vec<String> = attributes(&bare)
            .iter()
            .map(|kv| kv.key.to_string())
            .collect();
        assert_eq!(keys, ["check", "namespace"]);
    }
}
