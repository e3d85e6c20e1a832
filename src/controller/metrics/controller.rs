//! This project's own metrics about the controller: leadership, runs, report handling and
//! scheduling lateness. The scheduler and the report handler record through
//! [`ControllerMetrics`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

use super::page::LeaderSource;

pub const LEADER: &str = "kuberhealthy_controller_leader";
pub const RUNS_STARTED: &str = "kuberhealthy_runs_started_total";
pub const RUNS_SUCCEEDED: &str = "kuberhealthy_runs_succeeded_total";
pub const RUNS_FAILED: &str = "kuberhealthy_runs_failed_total";
pub const RUNS_TIMED_OUT: &str = "kuberhealthy_runs_timed_out_total";
pub const REPORT_DURATION: &str = "kuberhealthy_report_duration_seconds";
pub const RUN_START_LATENESS: &str = "kuberhealthy_run_start_lateness_seconds";
pub const ACTION_FAILURES: &str = "kuberhealthy_leader_action_failures_total";
/// Kuberhealthy v3's run duration histogram (of HealthChecks' runs).
pub const CHECK_RUN_DURATION: &str = "kuberhealthy_check_run_duration_seconds";

/// Report handling includes one API write: milliseconds normally, seconds when the API lags.
const REPORT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Lateness from sub-second (healthy) up to half an hour (catching up after an outage).
const LATENESS_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Kuberhealthy v3's buckets of [`CHECK_RUN_DURATION`].
const RUN_DURATION_BUCKETS: [f64; 7] = [1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The checker reported `OK: true`.
    Succeeded,
    /// The checker reported errors, or its pod failed.
    Failed,
    /// No report arrived before the run's deadline.
    TimedOut,
}

/// The handle the scheduler and the report handler record with. Cheap to clone.
#[derive(Clone)]
pub struct ControllerMetrics {
    runs_started: Counter<u64>,
    runs_succeeded: Counter<u64>,
    runs_failed: Counter<u64>,
    runs_timed_out: Counter<u64>,
    report_duration: Histogram<f64>,
    run_start_lateness: Histogram<f64>,
    action_failures: Counter<u64>,
    healthcheck_run_duration: Histogram<f64>,
    /// Moves with every recording: served `/metrics` are encoded again when it moved.
    recorded: Arc<AtomicU64>,
}

fn run_attributes(namespace: &str, name: &str) -> [KeyValue; 2] {
    [
        KeyValue::new("check", crate::api::key_of(namespace, name)),
        KeyValue::new("namespace", namespace.to_string()),
    ]
}

impl ControllerMetrics {
    pub(crate) fn new(meter: &Meter) -> ControllerMetrics {
        let counter = |name: &'static str, help: &'static str| {
            meter.u64_counter(name).with_description(help).build()
        };
        ControllerMetrics {
            runs_started: counter(RUNS_STARTED, "Check runs started by the leader"),
            runs_succeeded: counter(RUNS_SUCCEEDED, "Check runs whose checker reported OK"),
            runs_failed: counter(
                RUNS_FAILED,
                "Check runs whose checker reported errors or whose pod failed",
            ),
            runs_timed_out: counter(
                RUNS_TIMED_OUT,
                "Check runs that ended without a report before their deadline",
            ),
            report_duration: meter
                .f64_histogram(REPORT_DURATION)
                .with_description("Time to handle a checker's report, by HTTP status code")
                .with_unit("s")
                .with_boundaries(REPORT_BUCKETS.to_vec())
                .build(),
            run_start_lateness: meter
                .f64_histogram(RUN_START_LATENESS)
                .with_description("Seconds a run started after it was due")
                .with_unit("s")
                .with_boundaries(LATENESS_BUCKETS.to_vec())
                .build(),
            action_failures: counter(
                ACTION_FAILURES,
                "Leader actions that failed, by action and kind of error",
            ),
            healthcheck_run_duration: meter
                .f64_histogram(CHECK_RUN_DURATION)
                .with_description("Duration of finished HealthCheck runs")
                .with_unit("s")
                .with_boundaries(RUN_DURATION_BUCKETS.to_vec())
                .build(),
            recorded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many recordings were made: moves whenever a controller metric changed.
    pub(crate) fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    fn record(&self) {
        self.recorded.fetch_add(1, Ordering::Relaxed);
    }

    /// A handle that records nothing, for tests of code that takes one.
    #[cfg(test)]
    pub(crate) fn noop() -> ControllerMetrics {
        use opentelemetry::metrics::{MeterProvider, NoopMeterProvider};
        ControllerMetrics::new(&NoopMeterProvider::new().meter("kuberhealthy"))
    }

    /// The leader started a run of `namespace/name`.
    pub fn run_started(&self, namespace: &str, name: &str) {
        self.runs_started.add(1, &run_attributes(namespace, name));
        self.record();
    }

    /// A run of `namespace/name` ended.
    pub fn run_finished(&self, namespace: &str, name: &str, outcome: RunOutcome) {
        let counter = match outcome {
            RunOutcome::Succeeded => &self.runs_succeeded,
            RunOutcome::Failed => &self.runs_failed,
            RunOutcome::TimedOut => &self.runs_timed_out,
        };
        counter.add(1, &run_attributes(namespace, name));
        self.record();
    }

    /// A report was answered with `code` after `elapsed`.
    pub fn report_handled(&self, code: u16, elapsed: Duration) {
        self.report_duration.record(
            elapsed.as_secs_f64(),
            &[KeyValue::new("code", code.to_string())],
        );
        self.record();
    }

    /// A leader action failed with an error of this kind.
    pub fn action_failed(&self, action: &'static str, error: &'static str) {
        self.action_failures.add(
            1,
            &[
                KeyValue::new("action", action),
                KeyValue::new("error", error),
            ],
        );
        self.record();
    }

    /// A HealthCheck's run finished after `took`.
    pub fn healthcheck_run_finished(&self, took: Duration) {
        self.healthcheck_run_duration
            .record(took.as_secs_f64(), &[]);
        self.record();
    }

    /// A run started `lateness` after its due time.
    pub fn run_started_late(&self, lateness: Duration) {
        self.run_start_lateness.record(lateness.as_secs_f64(), &[]);
        self.record();
    }
}

/// `kuberhealthy_controller_leader`: 1 on the replica that leads, 0 on the others.
pub(crate) fn register_leader(meter: &Meter, is_leader: LeaderSource) {
    meter
        .i64_observable_gauge(LEADER)
        .with_description("1 on the replica that holds the leader Lease, 0 on the others")
        .with_callback(move |gauge| gauge.observe(i64::from(is_leader()), &[]))
        .build();
}
