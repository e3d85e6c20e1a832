//! Kuberhealthy v3's `HealthCheck` (`kuberhealthy.github.io/v2`, `healthchecks`, `hc`): one
//! resource for what v2 split into a check, a job and a state. Its spec and v3's status fields
//! keep v3's names and types exactly (`runDuration` in nanoseconds, `lastRunUnix` in seconds,
//! `currentUUID` set while a run is in flight), so v3 manifests, checker images and tools work
//! unchanged. The status fields after v3's are this project's: all optional, they persist the
//! run in flight (its start, deadline and pod), so a failover adopts it instead of losing it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::pod_spec::PodSpecText;
use jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::LeaderTerm;
use super::validate::{self, SpecError};

/// v3's run interval when `spec.runInterval` is absent.
pub const DEFAULT_RUN_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// v3's timeout when `spec.timeout` is absent.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the HealthCheck runs and how often.
// Durations stay strings, as in the v1 check: one bad HealthCheck must not break the watch of
// all the others; `HealthCheck::validate` turns them into values or field errors.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "kuberhealthy.github.io",
    version = "v2",
    kind = "HealthCheck",
    plural = "healthchecks",
    singular = "healthcheck",
    shortname = "hc",
    shortname = "healthcheck",
    shortname = "healthchecks",
    namespaced,
    status = "HealthCheckStatus",
    doc = "A Kuberhealthy v3 health check: a checker pod that runs every runInterval (or once, with singleRunOnly) and reports its result into the status.",
    printcolumn = r#"{"name":"OK","type":"boolean","jsonPath":".status.ok"}"#,
    printcolumn = r#"{"name":"RunInterval","type":"string","jsonPath":".spec.runInterval"}"#,
    printcolumn = r#"{"name":"ErrorMessage","type":"string","jsonPath":".status.errors[0]"}"#,
    printcolumn = r#"{"name":"Timeout","type":"string","jsonPath":".spec.timeout"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckSpec {
    /// Run once instead of every runInterval (v3's job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_run_only: Option<bool>,
    /// How often the check runs, as a Go duration such as `10m`. Absent means 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_interval: Option<String>,
    /// How long one run may take before it fails, as a Go duration. Absent means 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Annotations added to every checker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_annotations: Option<BTreeMap<String, String>>,
    /// Labels added to every checker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_labels: Option<BTreeMap<String, String>>,
    /// The checker pod: its metadata and its spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_spec: Option<CheckPodSpec>,
}

/// v3's pod wrapper: `podSpec.metadata` and `podSpec.spec`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct CheckPodSpec {
    /// Labels and annotations of every checker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<CheckPodMetadata>,
    /// The checker pod's spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PodSpecText>,
}

/// The labels and annotations of `podSpec.metadata`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct CheckPodMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The last result and the run in flight, written through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckStatus {
    /// Whether the last run passed.
    #[serde(default)]
    pub ok: bool,
    /// The errors of the last run; empty when it passed.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub errors: Vec<String>,
    /// How many runs in a row have failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: i64,
    /// How long the last run took, in nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub run_duration: i64,
    /// The namespace of the HealthCheck.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The UUID of the run in flight; empty when none is.
    #[serde(rename = "currentUUID", default)]
    pub current_uuid: String,
    /// When the last run started, in Unix seconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_run_unix: i64,
    /// Runs that passed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub success_count: i64,
    /// Runs that failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failure_count: i64,
    /// When a run last passed, in Unix seconds.
    #[serde(rename = "lastOKUnix", default, skip_serializing_if = "is_zero")]
    pub last_ok_unix: i64,
    /// When a run last failed, in Unix seconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_failure_unix: i64,
    /// Shown on v3's status page; nothing writes it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub additional_metadata: String,

    /// The UUID of the current or most recent run (`currentUUID` is cleared when it ends).
    #[serde(rename = "runUUID", default, skip_serializing_if = "Option::is_none")]
    pub run_uuid: Option<String>,
    /// When run `runUUID` started, to the nanosecond; the next run is due one `runInterval` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_started_at: Option<Timestamp>,
    /// When run `runUUID` must have reported by (`KH_CHECK_RUN_DEADLINE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_deadline: Option<Timestamp>,
    /// When run `runUUID` finished (reported, failed or timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_finished_at: Option<Timestamp>,
    /// The checker pod of run `runUUID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_pod: Option<String>,
    /// The leader term that started run `runUUID` (a record, as in the khstate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_term: Option<LeaderTerm>,
    /// The node the last checker pod ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The timings of a HealthCheck that passed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheckTiming {
    pub run_interval: Duration,
    pub timeout: Duration,
    /// `singleRunOnly`: run once, never again.
    pub single_run: bool,
}

impl HealthCheck {
    /// Validates what the schema cannot, returning every problem at once. Absent durations
    /// take v3's defaults (10m, 30s); present ones must be positive Go durations.
    pub fn validate(&self) -> Result<HealthCheckTiming, Vec<SpecError>> {
        let mut errors = Vec::new();
        let duration = |field: &str, value: Option<&str>, default: Duration| match value {
            Some(v) if !v.trim().is_empty() => validate::positive_duration(field, v),
            _ => Ok(default),
        };
        let run_interval = validate::collect(
            duration(
                "spec.runInterval",
                self.spec.run_interval.as_deref(),
                DEFAULT_RUN_INTERVAL,
            ),
            &mut errors,
        );
        let timeout = validate::collect(
            duration(
                "spec.timeout",
                self.spec.timeout.as_deref(),
                DEFAULT_TIMEOUT,
            ),
            &mut errors,
        );
        match self.pod_spec() {
            Some(spec) => {
                if let Err(mut pod_errors) = validate::pod_spec_at(spec, "spec.podSpec.spec") {
                    errors.append(&mut pod_errors);
                }
            }
            None => errors.push(SpecError {
                field: "spec.podSpec.spec".into(),
                message:
                    "is missing; set the checker pod's spec (its containers) under podSpec.spec"
                        .into(),
            }),
        }
        match (run_interval, timeout) {
            (Some(run_interval), Some(timeout)) if errors.is_empty() => Ok(HealthCheckTiming {
                run_interval,
                timeout,
                single_run: self.spec.single_run_only.unwrap_or(false),
            }),
            _ => Err(errors),
        }
    }

    /// `spec.podSpec.spec`, if set.
    pub fn pod_spec(&self) -> Option<&PodSpecText> {
        self.spec.pod_spec.as_ref()?.spec.as_ref()
    }

    /// `spec.podSpec.metadata`, if set.
    pub fn pod_metadata(&self) -> Option<&CheckPodMetadata> {
        self.spec.pod_spec.as_ref()?.metadata.as_ref()
    }
}

impl HealthCheckStatus {
    /// Whether a run is in flight: v3's rule, `currentUUID` is set.
    pub fn run_in_flight(&self) -> bool {
        !self.current_uuid.is_empty()
    }

    /// Whether any run was ever started (by this project or by v3).
    pub fn has_run(&self) -> bool {
        self.run_started_at.is_some() || self.last_run_unix != 0 || self.run_in_flight()
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// HealthChecks built from JSON parts, for the tests of every module that reads them.
#[cfg(test)]
pub(crate) mod fixtures {
    use serde_json::{Value, json};

    use super::HealthCheck;

    /// HealthCheck `namespace/name` with more `metadata` (uid, resourceVersion, ...), its
    /// `spec` and its `status` (`null`: none yet).
    pub fn healthcheck(
        namespace: &str,
        name: &str,
        metadata: Value,
        spec: Value,
        status: Value,
    ) -> HealthCheck {
        let mut meta = json!({"name": name, "namespace": namespace});
        meta.as_object_mut()
            .expect("an object")
            .extend(metadata.as_object().cloned().unwrap_or_default());
        serde_json::from_value(json!({
            "apiVersion": "kuberhealthy.github.io/v2",
            "kind": "HealthCheck",
            "metadata": meta,
            "spec": spec,
            "status": status,
        }))
        .expect("a HealthCheck")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn healthcheck(spec: serde_json::Value) -> HealthCheck {
        super::fixtures::healthcheck("ns", "hc", json!({}), spec, json!(null))
    }

    fn containers() -> serde_json::Value {
        json!({"spec": {"containers": [{"name": "main", "image": "checker:v1"}]}})
    }

    #[test]
    fn absent_durations_take_v3s_defaults() {
        let timing = healthcheck(json!({"podSpec": containers()}))
            .validate()
            .unwrap();
        assert_eq!(timing.run_interval, DEFAULT_RUN_INTERVAL);
        assert_eq!(timing.timeout, DEFAULT_TIMEOUT);
        assert!(!timing.single_run);
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = healthcheck(json!({"runInterval": "soon", "timeout": "0s",
                                        "podSpec": {"spec": {"containers": [{"name": "main"}]}}}))
        .validate()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.runInterval",
                "spec.timeout",
                "spec.podSpec.spec.containers[0].image"
            ]
        );
        let missing = healthcheck(json!({"runInterval": "1m"}))
            .validate()
            .unwrap_err();
        assert_eq!(missing[0].field, "spec.podSpec.spec");
    }

    #[test]
    fn v3s_status_keys_and_types() {
        let status = HealthCheckStatus {
            ok: false,
            errors: vec!["e".into()],
            consecutive_failures: 2,
            run_duration: 1_500_000_000,
            namespace: "ns".into(),
            current_uuid: String::new(),
            last_run_unix: 1_712_345_678,
            success_count: 1,
            failure_count: 4,
            last_ok_unix: 1_712_345_000,
            last_failure_unix: 1_712_345_678,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"ok": false, "errors": ["e"], "consecutiveFailures": 2,
                   "runDuration": 1_500_000_000i64, "namespace": "ns", "currentUUID": "",
                   "lastRunUnix": 1_712_345_678i64, "successCount": 1, "failureCount": 4,
                   "lastOKUnix": 1_712_345_000i64, "lastFailureUnix": 1_712_345_678i64})
        );
        // What v3's own Go client sends is a status too: it reads back.
        let sent: HealthCheckStatus =
            serde_json::from_str(r#"{"ok":true,"errors":null,"currentUUID":""}"#).unwrap();
        assert!(sent.ok && sent.errors.is_empty());
    }
}
