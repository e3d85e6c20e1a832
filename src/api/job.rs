//! `KuberhealthyJob` (`khjobs`, `khj`): a checker pod run exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pod_spec::PodSpecText;
use super::validate::{self, SpecError};

/// What the job runs, once.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "comcast.github.io",
    version = "v1",
    kind = "KuberhealthyJob",
    plural = "khjobs",
    singular = "khjob",
    shortname = "khj",
    namespaced,
    doc = "A one-off health check: a checker pod that runs once when the job is created.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".spec.phase","description":"Empty until started, then Running, then Completed"}"#,
    printcolumn = r#"{"name":"Timeout","type":"string","jsonPath":".spec.timeout","description":"How long the run may take"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KuberhealthyJobSpec {
    /// Written by Kuberhealthy: empty when new, then `Running`, then `Completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// How long the run may take before it fails, as a Go duration. Empty means 5m.
    #[serde(default)]
    pub timeout: String,
    /// The checker pod.
    #[serde(default)]
    pub pod_spec: PodSpecText,
    /// Annotations added to the checker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_annotations: Option<BTreeMap<String, String>>,
    /// Labels added to the checker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_labels: Option<BTreeMap<String, String>>,
}

/// The phase of a job, as v2 writes it into `spec.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPhase {
    /// Created, not started yet (`""`).
    New,
    Running,
    Completed,
}

impl JobPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            JobPhase::New => "",
            JobPhase::Running => "Running",
            JobPhase::Completed => "Completed",
        }
    }
}

impl KuberhealthyJob {
    /// The job's phase; an unknown value is returned as an error naming it.
    pub fn phase(&self) -> Result<JobPhase, SpecError> {
        match self.spec.phase.as_deref().unwrap_or("") {
            "" => Ok(JobPhase::New),
            "Running" => Ok(JobPhase::Running),
            "Completed" => Ok(JobPhase::Completed),
            other => Err(SpecError {
                field: "spec.phase".into(),
                message: format!(
                    "{other:?} is not a job phase; expected \"\", \"Running\" or \"Completed\""
                ),
            }),
        }
    }

    /// Validates what the schema cannot and returns the run's timeout.
    pub fn validate(&self) -> Result<Duration, Vec<SpecError>> {
        let mut errors = Vec::new();
        let timeout = validate::collect(validate::timeout(&self.spec.timeout), &mut errors);
        if let Err(mut pod_errors) = validate::pod_spec(&self.spec.pod_spec) {
            errors.append(&mut pod_errors);
        }
        match timeout {
            Some(t) if errors.is_empty() => Ok(t),
            _ => Err(errors),
        }
    }
}
