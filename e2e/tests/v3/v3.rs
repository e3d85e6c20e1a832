//! What the HealthCheck scenarios share beyond the scheduling support: the HealthCheck,
//! its status as the tests read it, v3's checker, and waiting on a status.

use anyhow::{Context, Result};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::DynamicObject;
use kuberhealthy_e2e::wait_until;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::checks::{IMAGE, pod_spec};
use crate::support::{Scenario, TIMEOUT, healthchecks};

/// The HealthCheck status fields the tests read (v3's keys and this project's run fields).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckStatus {
    #[serde(default)]
    pub ok: bool,
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub consecutive_failures: i64,
    #[serde(default)]
    pub run_duration: i64,
    #[serde(rename = "currentUUID", default)]
    pub current_uuid: String,
    #[serde(default)]
    pub last_run_unix: i64,
    #[serde(default)]
    pub success_count: i64,
    #[serde(default)]
    pub failure_count: i64,
    #[serde(rename = "lastOKUnix", default)]
    pub last_ok_unix: i64,
    #[serde(default)]
    pub last_failure_unix: i64,
    #[serde(rename = "runUUID", default)]
    pub run_uuid: Option<String>,
    #[serde(default)]
    pub run_started_at: Option<Timestamp>,
    #[serde(default)]
    pub run_finished_at: Option<Timestamp>,
    #[serde(default)]
    pub run_pod: Option<String>,
}

impl HealthCheckStatus {
    /// The status of a HealthCheck object (empty when it has none yet).
    pub fn from_object(object: &DynamicObject) -> Result<HealthCheckStatus> {
        match object.data.get("status") {
            None | Some(Value::Null) => Ok(HealthCheckStatus::default()),
            Some(status) => serde_json::from_value(status.clone()).with_context(|| {
                format!(
                    "HealthCheck {:?} has an unexpected status: {status}",
                    object.metadata.name
                )
            }),
        }
    }

    /// v3's rule: a run is in flight while `currentUUID` is set.
    pub fn in_flight(&self) -> bool {
        !self.current_uuid.is_empty()
    }
}

/// A `HealthCheck` running `script` every `interval` (a Go duration), as v3 documents it.
pub fn healthcheck(name: &str, interval: &str, timeout: &str, script: &str) -> Value {
    healthcheck_with(name, interval, timeout, pod_spec(IMAGE, script, &[]))
}

pub fn healthcheck_with(name: &str, interval: &str, timeout: &str, pod_spec: Value) -> Value {
    json!({
        "apiVersion": "kuberhealthy.github.io/v2",
        "kind": "HealthCheck",
        "metadata": { "name": name },
        "spec": {
            "runInterval": interval,
            "timeout": timeout,
            "podSpec": { "spec": pod_spec },
        }
    })
}

/// v3's documented checker (`curl` with v3's lowercase body and `kh-run-uuid`), to
/// `$KH_REPORTING_URL`, which must be v3's `/check`.
pub fn report_v3(ok: bool, errors: &[&str]) -> String {
    let body = json!({ "ok": ok, "errors": errors }).to_string();
    assert!(
        !body.contains('\''),
        "errors must not contain single quotes"
    );
    format!(
        r#"case "$KH_REPORTING_URL" in */check) ;; *) echo "not v3's URL: $KH_REPORTING_URL"; exit 3;; esac; curl -fsS --retry 5 --retry-all-errors --retry-delay 1 -H "Content-Type: application/json" -H "kh-run-uuid: $KH_RUN_UUID" -d '{body}' "$KH_REPORTING_URL""#
    )
}

/// The status of HealthCheck `name` (empty before the first write), if it exists.
pub async fn status(scenario: &Scenario, name: &str) -> Result<Option<HealthCheckStatus>> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(scenario.client(), scenario.ns(), &healthchecks());
    match api.get_opt(name).await? {
        Some(object) => Ok(Some(HealthCheckStatus::from_object(&object)?)),
        None => Ok(None),
    }
}

/// Waits until the status of HealthCheck `name` satisfies `condition`.
pub async fn wait_for_status(
    scenario: &Scenario,
    name: &str,
    what: &str,
    condition: impl Fn(&HealthCheckStatus) -> bool,
) -> Result<HealthCheckStatus> {
    let condition = &condition;
    wait_until(
        &format!("HealthCheck {name}: {what}"),
        TIMEOUT,
        || async move { Ok(status(scenario, name).await?.filter(|s| condition(s))) },
    )
    .await
}
