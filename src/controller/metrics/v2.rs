//! Kuberhealthy v2's metrics, with v2's names, help texts and labels, as observable gauges
//! whose callbacks read the current status page: a deleted check's series disappear with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use super::labels;
use super::page::PageMemo;
use crate::controller::config::PromMetricsConfig;
use crate::controller::status::{StatusPage, WorkloadDetails};

pub const RUNNING: &str = "kuberhealthy_running";
pub const CLUSTER_STATE: &str = "kuberhealthy_cluster_state";
pub const CHECK: &str = "kuberhealthy_check";
pub const CHECK_DURATION: &str = "kuberhealthy_check_duration_seconds";
pub const JOB: &str = "kuberhealthy_job";
pub const JOB_DURATION: &str = "kuberhealthy_job_duration_seconds";

/// Which half of the page a family of series comes from.
#[derive(Clone, Copy)]
enum Workloads {
    Checks,
    Jobs,
}

impl Workloads {
    fn of(self, page: &StatusPage) -> &BTreeMap<String, WorkloadDetails> {
        match self {
            Workloads::Checks => &page.check_details,
            Workloads::Jobs => &page.job_details,
        }
    }
}

fn bit(value: bool) -> i64 {
    i64::from(value)
}

/// Registers the six v2 gauges on `meter`.
pub(crate) fn register(meter: &Meter, memo: Arc<PageMemo>, config: PromMetricsConfig) {
    let config = Arc::new(config);

    let m = memo.clone();
    meter
        .i64_observable_gauge(RUNNING)
        .with_description("Shows if kuberhealthy is running error free")
        .with_callback(move |gauge| {
            let page = m.current();
            gauge.observe(
                1,
                &[KeyValue::new("current_master", page.current_master.clone())],
            );
        })
        .build();

    let m = memo.clone();
    meter
        .i64_observable_gauge(CLUSTER_STATE)
        .with_description("Shows the status of the cluster")
        .with_callback(move |gauge| gauge.observe(bit(m.current().ok), &[]))
        .build();

    let families = [
        (
            Workloads::Checks,
            CHECK,
            "Shows the status of a Kuberhealthy check",
            CHECK_DURATION,
            "Shows the check run duration of a Kuberhealthy check",
        ),
        (
            Workloads::Jobs,
            JOB,
            "Shows the status of a Kuberhealthy job",
            JOB_DURATION,
            "Shows the job run duration of a Kuberhealthy job",
        ),
    ];
    for (workloads, status_name, status_help, duration_name, duration_help) in families {
        let (m, c) = (memo.clone(), config.clone());
        meter
            .i64_observable_gauge(status_name)
            .with_description(status_help)
            .with_callback(move |gauge| observe_status(gauge, &m.current(), workloads, &c))
            .build();

        let m = memo.clone();
        meter
            .f64_observable_gauge(duration_name)
            .with_description(duration_help)
            // For OTLP consumers; the Prometheus exporter is built without unit suffixes.
            .with_unit("s")
            .with_callback(move |gauge| observe_duration(gauge, &m.current(), workloads))
            .build();
    }
}

fn observe_status(
    gauge: &dyn AsyncInstrument<i64>,
    page: &StatusPage,
    workloads: Workloads,
    config: &PromMetricsConfig,
) {
    for (key, details) in workloads.of(page) {
        gauge.observe(
            bit(details.ok),
            &labels::status_attributes(key, details, config),
        );
    }
}

fn observe_duration(gauge: &dyn AsyncInstrument<f64>, page: &StatusPage, workloads: Workloads) {
    for (key, details) in workloads.of(page) {
        gauge.observe(
            labels::duration_seconds(key, &details.run_duration),
            &labels::duration_attributes(key, details),
        );
    }
}
