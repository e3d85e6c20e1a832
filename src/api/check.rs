//! `KuberhealthyCheck` (`khchecks`, `khc`): a checker pod run every `runInterval`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PodSpec;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    printcolumn = r#"{"name":"Timeout","type":"string","jsonPath":".spec.timeout","description":"How long a run may take"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KuberhealthyCheckSpec {
    /// How often the check runs, as a Go duration such as `10m` or `6h`.
    #[serde(default)]
    pub run_interval: String,
    /// How long one run may take before it fails, as a Go duration. Empty means 5m.
    #[serde(default)]
    pub timeout: String,
    /// The checker pod.
    #[serde(default)]
    pub pod_spec: PodSpec,
    /// Annotations added to every checker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_annotations: Option<BTreeMap<String, String>>,
    /// Labels added to every checker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_labels: Option<BTreeMap<String, String>>,
}

/// The timings of a check that passed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTiming {
    pub run_interval: Duration,
    pub timeout: Duration,
}

impl KuberhealthyCheck {
    /// Validates what the schema cannot, returning every problem at once.
    pub fn validate(&self) -> Result<CheckTiming, Vec<SpecError>> {
        let mut errors = Vec::new();
        let run_interval =
            validate::collect(validate::run_interval(&self.spec.run_interval), &mut errors);
        let timeout = validate::collect(validate::timeout(&self.spec.timeout), &mut errors);
        if let Err(mut pod_errors) = validate::pod_spec(&self.spec.pod_spec) {
            errors.append(&mut pod_errors);
        }
        match (run_interval, timeout) {
            (Some(run_interval), Some(timeout)) if errors.is_empty() => Ok(CheckTiming {
                run_interval,
                timeout,
            }),
            _ => Err(errors),
        }
    }
}
