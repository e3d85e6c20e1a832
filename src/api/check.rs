//! `KuberhealthyCheck` (`khchecks`, `khc`): a checker pod run every `runInterval`.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cadence::{Cadence, Cron};
use super::pod_spec::PodSpecText;
use super::validate::{self, SpecError};

/// What the check runs and how often.
// Durations stay strings so that one bad check never breaks the watch of all the others;
// `KuberhealthyCheck::validate` turns them into values or field errors.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "comcast.github.io",
    version = "v1",
    kind = "KuberhealthyCheck",
    plural = "khchecks",
    singular = "khcheck",
    shortname = "khc",
    namespaced,
    doc = "A synthetic health check: a checker pod that runs every runInterval and reports its result.",
    printcolumn = r#"{"name":"Interval","type":"string","jsonPath":".spec.runInterval","description":"How often the check runs"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule","description":"When the check runs (cron), instead of an interval"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend","description":"True while the check runs nothing"}"#,
    printcolumn = r#"{"name":"Timeout","type":"string","jsonPath":".spec.timeout","description":"How long a run may take"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KuberhealthyCheckSpec {
    /// How often the check runs, as a Go duration such as `10m` or `6h`. Set this or
    /// `schedule`, not both.
    #[serde(default)]
    pub run_interval: String,
    /// When the check runs instead of `runInterval`: a cron expression, five fields as in
    /// crontab (`0 1 * * *` is 01:00 every day), six with seconds first, or `@daily`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The IANA time zone of `schedule`, such as `Europe/Berlin`. UTC when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// No new runs while true (a run in flight finishes); the check shows as suspended,
    /// neither failing nor stale, and resumes from its last start when set back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Checks this one needs, as `name` (same namespace) or `namespace/name`. While one of
    /// them fails or is stale, a failure of this check is shown as blocked by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// How long one run may take before it fails, as a Go duration. Empty means 5m.
    #[serde(default)]
    pub timeout: String,
    /// The checker pod.
    #[serde(default)]
    pub pod_spec: PodSpecText,
    /// Annotations added to every checker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_annotations: Option<BTreeMap<String, String>>,
    /// Labels added to every checker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_labels: Option<BTreeMap<String, String>>,
}

/// The timings of a check that passed validation.
#[derive(Debug, Clone)]
pub struct CheckTiming {
    pub cadence: Cadence,
    pub timeout: Duration,
}

/// Slack on top of `runInterval + timeout` before a result counts as stale: time for a
/// leader to be elected and the next pod to start.
pub const STALE_TOLERANCE: Duration = Duration::from_secs(60);

impl CheckTiming {
    /// When a result written at `last` turns stale: the run of the next slot should have
    /// reported within its timeout plus [`STALE_TOLERANCE`].
    pub fn stale_at(&self, last: jiff::Timestamp) -> jiff::Timestamp {
        let next = self.cadence.next_after(last);
        super::time::add(next, self.timeout + STALE_TOLERANCE)
    }
}

/// The annotation that asks for a run now (`kuberhealthy run-now`, `POST /api/run`, or by
/// hand): each distinct value is honoured once.
pub const RUN_REQUESTED_AT: &str = "kuberhealthy.github.io/run-requested-at";

impl KuberhealthyCheck {
    /// Validates what the schema cannot, returning every problem at once.
    pub fn validate(&self) -> Result<CheckTiming, Vec<SpecError>> {
        let mut errors = Vec::new();
        let cadence = validate::collect(self.cadence(), &mut errors);
        let timeout = validate::collect(validate::timeout(&self.spec.timeout), &mut errors);
        if let Err(mut pod_errors) = validate::pod_spec(&self.spec.pod_spec) {
            errors.append(&mut pod_errors);
        }
        for (i, dependency) in self.spec.depends_on.iter().flatten().enumerate() {
            validate::collect(validate::dependency(i, dependency), &mut errors);
        }
        match (cadence, timeout) {
            (Some(cadence), Some(timeout)) if errors.is_empty() => {
                Ok(CheckTiming { cadence, timeout })
            }
            _ => Err(errors),
        }
    }

    /// `runInterval` or `schedule`: exactly one of them.
    fn cadence(&self) -> Result<Cadence, SpecError> {
        let interval = self.spec.run_interval.trim();
        let schedule = self.spec.schedule.as_deref().map(str::trim);
        match (interval.is_empty(), schedule.filter(|s| !s.is_empty())) {
            (false, Some(_)) => Err(SpecError {
                field: "spec.schedule".into(),
                message: "is set together with spec.runInterval; set one of them".into(),
            }),
            (true, Some(schedule)) => Cron::parse(schedule, self.spec.time_zone.as_deref())
                .map(|c| Cadence::Cron(Box::new(c))),
            (_, None) => validate::run_interval(&self.spec.run_interval).map(Cadence::Interval),
        }
    }

    pub fn suspended(&self) -> bool {
        self.spec.suspend == Some(true)
    }

    /// The value of the run-now annotation, when set.
    pub fn run_requested(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(RUN_REQUESTED_AT)
            .map(String::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}
