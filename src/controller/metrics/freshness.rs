//! How fresh each check's result is, for the stale-check alert: when it last ran and how
//! often it should; and which checks are suspended or blocked by a failing dependency, so
//! alerts leave them out. Read from the same status page as the v2 gauges.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::page::PageMemo;
use crate::api::duration;

pub const LAST_RUN: &str = "kuberhealthy_check_last_run_timestamp_seconds";
pub const RUN_INTERVAL: &str = "kuberhealthy_check_run_interval_seconds";
pub const SUSPENDED: &str = "kuberhealthy_check_suspended";
pub const BLOCKED: &str = "kuberhealthy_check_blocked";

fn attributes(key: &str, namespace: &str) -> [KeyValue; 2] {
    [
        KeyValue::new("check", key.to_string()),
        KeyValue::new("namespace", namespace.to_string()),
    ]
}

pub(crate) fn register(meter: &Meter, memo: Arc<PageMemo>) {
    let m = memo.clone();
    meter
        .f64_observable_gauge(LAST_RUN)
        .with_description(
            "When the last result of a check was written, in seconds since the Unix epoch",
        )
        .with_unit("s")
        .with_callback(move |gauge| {
            for (key, details) in &m.current().check_details {
                if let Some(last) = details.last_run {
                    gauge.observe(
                        last.as_millisecond() as f64 / 1000.0,
                        &attributes(key, &details.namespace),
                    );
                }
            }
        })
        .build();
    let m = memo.clone();
    meter
        .i64_observable_gauge(SUSPENDED)
        .with_description("1 for a check whose spec.suspend is true: it does not run")
        .with_callback(move |gauge| {
            for (key, details) in &m.current().check_details {
                if details.suspended {
                    gauge.observe(1, &attributes(key, &details.namespace));
                }
            }
        })
        .build();
    let m = memo.clone();
    meter
        .i64_observable_gauge(BLOCKED)
        .with_description(
            "1 for a failing check whose dependency (blocked_by) fails or is stale: the root cause is elsewhere",
        )
        .with_callback(move |gauge| {
            for (key, details) in &m.current().check_details {
                if let Some(dependency) = &details.blocked_by {
                    let [check, namespace] = attributes(key, &details.namespace);
                    gauge.observe(
                        1,
                        // Sorted by name, as every series' labels.
                        &[KeyValue::new("blocked_by", dependency.clone()), check, namespace],
                    );
                }
            }
        })
        .build();
    meter
        .f64_observable_gauge(RUN_INTERVAL)
        .with_description("How often a check is meant to run, in seconds")
        .with_unit("s")
        .with_callback(move |gauge| {
            for (key, details) in &memo.current().check_details {
                let interval = details
                    .run_interval
                    .as_deref()
                    .and_then(|i| duration::parse(i).ok());
                if let Some(interval) = interval {
                    gauge.observe(interval.as_secs_f64(), &attributes(key, &details.namespace));
                }
            }
        })
        .build();
}
