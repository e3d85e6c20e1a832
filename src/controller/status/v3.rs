//! Kuberhealthy v3's status JSON (v3 serves it at `GET /json`; here it is `GET /v3/json`, since
//! `/json` stays v2's): the HealthChecks only, each entry with v3's keys, keyed by the bare
//! name as v3 does. Where v3 would silently drop one of two HealthChecks of the same name in
//! different namespaces, both are keyed `namespace/name`.
//!
//! Entries follow the v2 page's judgement: a HealthCheck is hidden until its first result
//! (or until that is overdue), an invalid one shows its field errors, a stale result counts
//! as failing with an error saying so.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use serde::Serialize;

use super::{NextTurn, Snapshot, details_of_healthcheck, verdict};
use crate::api::HealthCheck;

/// One HealthCheck, with v3's keys in v3's order; zero values are left out as v3's
/// `omitempty` does, except `ok` and `currentUUID`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckDetails {
    pub ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub consecutive_failures: i64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub run_duration: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(rename = "currentUUID")]
    pub current_uuid: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub last_run_unix: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub success_count: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub failure_count: i64,
    #[serde(rename = "lastOKUnix", skip_serializing_if = "is_zero")]
    pub last_ok_unix: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub last_failure_unix: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub additional_metadata: String,
    /// When the next run is due (absent while one is in flight).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_unix: Option<i64>,
    /// The checker pod of the run in flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout_seconds: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub run_interval_seconds: i64,
    /// The HealthCheck's name and its metric labels, for the v3 metrics; not in the JSON.
    #[serde(skip)]
    pub name: String,
    #[serde(skip)]
    pub severity: Option<String>,
    #[serde(skip)]
    pub category: Option<String>,
    /// Seconds since a run last passed, -1 if none has (v3's metric); not in the JSON.
    #[serde(skip)]
    pub seconds_since_success: i64,
}

/// The page, with v3's top-level keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusPage {
    #[serde(rename = "OK")]
    pub ok: bool,
    #[serde(rename = "Errors")]
    pub errors: Vec<String>,
    #[serde(rename = "CheckDetails")]
    pub check_details: BTreeMap<String, CheckDetails>,
    #[serde(rename = "CurrentMaster")]
    pub current_master: String,
    #[serde(rename = "Metadata")]
    pub metadata: BTreeMap<String, String>,
}

impl Default for StatusPage {
    /// The page without HealthChecks.
    fn default() -> StatusPage {
        StatusPage {
            ok: true,
            errors: vec![],
            check_details: BTreeMap::new(),
            current_master: String::new(),
            metadata: BTreeMap::new(),
        }
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn details(hc: &HealthCheck, snapshot: &Snapshot<'_>, turn: &mut NextTurn) -> Option<CheckDetails> {
    let judged = details_of_healthcheck(hc, snapshot.now, turn)?;
    let status = hc.status.clone().unwrap_or_default();
    let timing = hc.validate().ok();
    let running = status.run_in_flight();
    let labels = hc.labels();
    Some(CheckDetails {
        ok: judged.ok,
        errors: judged.errors,
        consecutive_failures: status.consecutive_failures,
        run_duration: status.run_duration,
        namespace: judged.namespace,
        current_uuid: status.current_uuid,
        last_run_unix: status.last_run_unix,
        success_count: status.success_count,
        failure_count: status.failure_count,
        last_ok_unix: status.last_ok_unix,
        last_failure_unix: status.last_failure_unix,
        additional_metadata: status.additional_metadata,
        next_run_unix: judged.next_run_at.map(|t| t.as_second()),
        pod_name: status.run_pod.filter(|_| running),
        timeout_seconds: timing.map_or(0, |t| t.timeout.as_secs() as i64),
        run_interval_seconds: timing.map_or(0, |t| t.run_interval.as_secs() as i64),
        name: hc.name_any(),
        severity: labels.get(crate::api::names::LABEL_SEVERITY).cloned(),
        category: labels.get(crate::api::names::LABEL_CATEGORY).cloned(),
        seconds_since_success: if status.last_ok_unix > 0 {
            snapshot.now.as_second() - status.last_ok_unix
        } else {
            -1
        },
    })
}

/// Computes the page for the namespaces in `filter` (empty: all).
pub fn render(snapshot: &Snapshot<'_>, filter: &BTreeSet<String>) -> StatusPage {
    render_until(snapshot, filter).0
}

/// The page for the namespaces in `filter`, and when it next changes by the clock alone.
pub fn render_until(snapshot: &Snapshot<'_>, filter: &BTreeSet<String>) -> (StatusPage, NextTurn) {
    let mut turn = NextTurn::default();
    let included: Vec<&HealthCheck> = snapshot
        .healthchecks
        .iter()
        .map(AsRef::as_ref)
        .filter(|hc| filter.is_empty() || filter.contains(&hc.namespace().unwrap_or_default()))
        .collect();
    let mut namespaces_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for hc in &included {
        namespaces_of
            .entry(hc.name_any())
            .or_default()
            .insert(hc.namespace().unwrap_or_default());
    }
    let mut check_details = BTreeMap::new();
    for hc in included {
        let Some(entry) = details(hc, snapshot, &mut turn) else {
            continue;
        };
        let name = hc.name_any();
        let key = if namespaces_of[&name].len() > 1 {
            format!("{}/{name}", hc.namespace().unwrap_or_default())
        } else {
            name
        };
        check_details.insert(key, entry);
    }
    let (ok, errors) = verdict(check_details.values().map(|d| (d.ok, d.errors.as_slice())));
    let page = StatusPage {
        ok,
        errors,
        check_details,
        current_master: snapshot.current_master.unwrap_or_default().to_string(),
        metadata: snapshot.metadata.clone(),
    };
    (page, turn)
}
