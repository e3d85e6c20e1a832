//! Checks, jobs and checker scripts, and the khstate fields the tests read.

use anyhow::{Context, Result};
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde::Deserialize;
use serde_json::{Value, json};

/// The image of every checker: the pod runner ignores it (a `:missing` tag fails the pull).
pub const IMAGE: &str = "example.invalid/checker:latest";

/// The blog post's checker: POST `{"OK": true}` to `$KH_REPORTING_URL` with the run's UUID.
/// `--retry-all-errors` retries a connection that a crashing replica dropped, as a Service
/// client would; a retried report that was already recorded is answered 200 (same result).
pub const REPORT_OK: &str = r#"curl -sS -f --retry 5 --retry-all-errors --retry-delay 1 -X POST -H "kh-run-uuid: $KH_RUN_UUID" -d "{\"OK\": true}" "$KH_REPORTING_URL""#;

/// A checker that reports `{"OK": false, "Errors": errors}`.
pub fn report_errors(errors: &[&str]) -> String {
    let body = json!({ "OK": false, "Errors": errors }).to_string();
    // Single-quoted for sh: the errors contain no single quotes.
    assert!(
        !body.contains('\''),
        "errors must not contain single quotes"
    );
    format!(
        r#"curl -sS -f --retry 5 --retry-all-errors --retry-delay 1 -X POST -H "kh-run-uuid: $KH_RUN_UUID" -d '{body}' "$KH_REPORTING_URL""#
    )
}

/// A pod spec with one container `main` running `sh -c script`.
pub fn pod_spec(image: &str, script: &str, env: &[(&str, &str)]) -> Value {
    let env: Vec<Value> = env
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    json!({
        "containers": [{
            "name": "main",
            "image": image,
            "command": ["sh", "-c", script],
            "env": env,
        }]
    })
}

/// A `KuberhealthyCheck` running `script` every `interval` (a Go duration).
pub fn check(name: &str, interval: &str, timeout: &str, script: &str) -> Value {
    check_with(name, interval, timeout, pod_spec(IMAGE, script, &[]))
}

pub fn check_with(name: &str, interval: &str, timeout: &str, pod_spec: Value) -> Value {
    json!({
        "apiVersion": "comcast.github.io/v1",
        "kind": "KuberhealthyCheck",
        "metadata": { "name": name },
        "spec": {
            "runInterval": interval,
            "timeout": timeout,
            "podSpec": pod_spec,
        }
    })
}

/// A `KuberhealthyJob` running `script` once.
pub fn job(name: &str, timeout: &str, script: &str) -> Value {
    json!({
        "apiVersion": "comcast.github.io/v1",
        "kind": "KuberhealthyJob",
        "metadata": { "name": name },
        "spec": {
            "timeout": timeout,
            "podSpec": pod_spec(IMAGE, script, &[]),
        }
    })
}

/// The leader term that started a run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Term {
    pub holder: String,
    pub transitions: i32,
}

/// One entry of a khstate's `history`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub uuid: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub ok: bool,
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub log_excerpt: Option<String>,
}

/// The khstate fields the tests read (v2's keys and this project's run fields).
#[derive(Debug, Clone, Deserialize)]
pub struct StateSpec {
    #[serde(rename = "OK", default)]
    pub ok: bool,
    #[serde(rename = "Errors", default)]
    pub errors: Option<Vec<String>>,
    #[serde(rename = "RunDuration", default)]
    pub run_duration: String,
    #[serde(default)]
    pub uuid: String,
    #[serde(rename = "runStartedAt", default)]
    pub run_started_at: Option<Timestamp>,
    #[serde(rename = "runDeadline", default)]
    pub run_deadline: Option<Timestamp>,
    #[serde(rename = "runFinishedAt", default)]
    pub run_finished_at: Option<Timestamp>,
    #[serde(rename = "runTerm", default)]
    pub run_term: Option<Term>,
    #[serde(rename = "runPod", default)]
    pub run_pod: Option<String>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    #[serde(rename = "honouredRunRequest", default)]
    pub honoured_run_request: Option<String>,
}

impl StateSpec {
    pub fn from_object(object: &DynamicObject) -> Result<StateSpec> {
        serde_json::from_value(object.data["spec"].clone()).with_context(|| {
            format!(
                "khstate {:?} has an unexpected spec: {}",
                object.metadata.name, object.data["spec"]
            )
        })
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.clone().unwrap_or_default()
    }

    /// Whether run `uuid` has started and not finished.
    pub fn in_flight(&self) -> bool {
        !self.uuid.is_empty() && self.run_started_at.is_some() && self.run_finished_at.is_none()
    }
}
