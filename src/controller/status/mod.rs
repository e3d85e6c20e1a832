//! The status page (`GET /`, `GET /json`): v2's JSON shape, computed from a cache snapshot.
//!
//! A check whose last result is older than its `runInterval` plus its `timeout` plus
//! [`STALE_TOLERANCE`] counts as failing, with an error saying so: a scheduler that stopped
//! must never look green.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::time::add;
use crate::api::validate::describe_invalid;
use crate::api::{KuberhealthyCheck, KuberhealthyJob, KuberhealthyState, Workload, duration};
use crate::controller::run::schedule::{self, NextStart};

/// Slack on top of `runInterval + timeout` before a result counts as stale: time for a
/// leader to be elected and the next pod to start.
pub const STALE_TOLERANCE: Duration = Duration::from_secs(60);

/// One check or job on the status page: v2's keys, then this project's additions.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct WorkloadDetails {
    #[serde(rename = "OK")]
    pub ok: bool,
    #[serde(rename = "Errors")]
    pub errors: Vec<String>,
    #[serde(rename = "RunDuration")]
    pub run_duration: String,
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "Node")]
    pub node: String,
    #[serde(rename = "LastRun", skip_serializing_if = "Option::is_none")]
    pub last_run: Option<Timestamp>,
    #[serde(rename = "AuthoritativePod")]
    pub authoritative_pod: String,
    #[serde(rename = "uuid")]
    pub uuid: String,
    /// How often the check runs, as a Go duration (checks only).
    #[serde(rename = "runInterval", skip_serializing_if = "Option::is_none")]
    pub run_interval: Option<String>,
    /// When the next run is due (checks only; absent while a run is in flight).
    #[serde(rename = "nextRunAt", skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<Timestamp>,
    /// When a run last passed.
    #[serde(rename = "lastOKAt", skip_serializing_if = "Option::is_none")]
    pub last_ok_at: Option<Timestamp>,
    #[serde(
        rename = "consecutiveFailures",
        skip_serializing_if = "crate::api::state::is_zero"
    )]
    pub consecutive_failures: u32,
    /// True when the result is too old to be trusted (see the module docs).
    #[serde(rename = "stale", skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

impl WorkloadDetails {
    /// A failing entry with no result behind it.
    fn failing(namespace: String, errors: Vec<String>, stale: bool) -> WorkloadDetails {
        WorkloadDetails {
            ok: false,
            errors,
            namespace,
            stale,
            ..Default::default()
        }
    }
}

/// The whole page, with v2's top-level keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusPage {
    #[serde(rename = "OK")]
    pub ok: bool,
    #[serde(rename = "Errors")]
    pub errors: Vec<String>,
    #[serde(rename = "CheckDetails")]
    pub check_details: BTreeMap<String, WorkloadDetails>,
    #[serde(rename = "JobDetails")]
    pub job_details: BTreeMap<String, WorkloadDetails>,
    #[serde(rename = "CurrentMaster")]
    pub current_master: String,
    #[serde(rename = "Metadata")]
    pub metadata: BTreeMap<String, String>,
}

/// Everything the page is computed from.
pub struct Snapshot<'a> {
    pub checks: &'a [std::sync::Arc<KuberhealthyCheck>],
    pub jobs: &'a [std::sync::Arc<KuberhealthyJob>],
    pub states: &'a [std::sync::Arc<KuberhealthyState>],
    pub current_master: Option<&'a str>,
    pub metadata: &'a BTreeMap<String, String>,
    pub now: Timestamp,
}

/// `?namespace=a,b`: comma-separated, blanks dropped; empty means every namespace.
pub fn parse_namespace_filter(value: Option<&str>) -> BTreeSet<String> {
    value
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn details_from_state(state: &KuberhealthyState) -> WorkloadDetails {
    let s = &state.spec;
    WorkloadDetails {
        ok: s.ok,
        errors: s.errors.clone(),
        run_duration: s.run_duration.clone(),
        namespace: if s.namespace.is_empty() {
            state.namespace().unwrap_or_default()
        } else {
            s.namespace.clone()
        },
        node: s.node.clone(),
        last_run: s.last_run,
        authoritative_pod: s.authoritative_pod.clone(),
        uuid: s.uuid.clone(),
        next_run_at: None,
        last_ok_at: s.last_ok_at,
        consecutive_failures: s.consecutive_failures,
        ..Default::default()
    }
}

/// The details of one check: its state, its spec errors, and whether its result is stale.
fn details_of_check(
    check: &KuberhealthyCheck,
    state: Option<&KuberhealthyState>,
    now: Timestamp,
) -> Option<WorkloadDetails> {
    let namespace = check.namespace().unwrap_or_default();
    let name = check.name_any();
    let timing = match check.validate() {
        Ok(t) => t,
        Err(errors) => {
            // An invalid check can never run: show why, whatever its state says.
            let mut details = state
                .map(details_from_state)
                .unwrap_or_else(|| WorkloadDetails::failing(namespace.clone(), vec![], false));
            details.ok = false;
            details.errors = describe_invalid(&key(&namespace, &name), Workload::Check, &errors);
            return Some(details);
        }
    };
    let written = state.filter(|s| s.spec.has_result());
    let limit = timing.run_interval + timing.timeout + STALE_TOLERANCE;
    let Some(state) = written else {
        // Never run: hidden (as in v2) until a first result is overdue.
        let created = check.creation_timestamp()?.0;
        let overdue = add(created, timing.timeout + STALE_TOLERANCE);
        if now <= overdue {
            return None;
        }
        let error = format!(
            "{namespace}/{name}: stale: no result since the check was created at {created}; \
             a first result was due within timeout ({}) + {} (is a leader elected and scheduling?)",
            duration::format(timing.timeout),
            duration::format(STALE_TOLERANCE)
        );
        let mut details = WorkloadDetails::failing(namespace, vec![error], true);
        details.run_interval = Some(duration::format(timing.run_interval));
        return Some(details);
    };
    let mut details = details_from_state(state);
    details.run_interval = Some(duration::format(timing.run_interval));
    // The scheduler's own rule, so the page shows when the check really runs next.
    let created = check.creation_timestamp().map_or(now, |t| t.0);
    if let NextStart::At(t) = schedule::next_start(Some(&state.spec), timing.run_interval, created)
    {
        details.next_run_at = Some(t);
    }
    let last = state.spec.last_run.or(state.spec.run_started_at);
    if let Some(last) = last
        && now > add(last, limit)
    {
        details.ok = false;
        details.stale = true;
        details.errors.push(format!(
                "{namespace}/{name}: stale: the last result is from {last}, older than runInterval ({}) + timeout ({}) + {} (is a leader elected and scheduling?)",
                duration::format(timing.run_interval),
                duration::format(timing.timeout),
                duration::format(STALE_TOLERANCE)
            ));
    }

    Some(details)
}

/// Computes the page for the namespaces in `filter` (empty: all).
pub fn render(snapshot: &Snapshot<'_>, filter: &BTreeSet<String>) -> StatusPage {
    let included = |ns: &str| filter.is_empty() || filter.contains(ns);
    let states: BTreeMap<String, &KuberhealthyState> = snapshot
        .states
        .iter()
        .map(|s| {
            (
                key(&s.namespace().unwrap_or_default(), &s.name_any()),
                s.as_ref(),
            )
        })
        .collect();

    let mut check_details = BTreeMap::new();
    for check in snapshot.checks {
        let ns = check.namespace().unwrap_or_default();
        if !included(&ns) {
            continue;
        }
        let k = key(&ns, &check.name_any());
        if let Some(details) = details_of_check(check, states.get(&k).copied(), snapshot.now) {
            check_details.insert(k, details);
        }
    }

    let mut job_details = BTreeMap::new();
    let job_keys: BTreeSet<String> = snapshot
        .jobs
        .iter()
        .map(|j| key(&j.namespace().unwrap_or_default(), &j.name_any()))
        .collect();
    for (k, state) in &states {
        let is_job = job_keys.contains(k) || state.spec.workload == Some(Workload::Job);
        let ns = state.namespace().unwrap_or_default();
        if is_job && !check_details.contains_key(k) && included(&ns) && state.spec.has_result() {
            job_details.insert(k.clone(), details_from_state(state));
        }
    }

    // As v2: the page is OK when no included check or job has a non-blank error.
    let errors: Vec<String> = check_details
        .values()
        .chain(job_details.values())
        .flat_map(|d| d.errors.iter())
        .filter(|e| !e.trim().is_empty())
        .cloned()
        .collect();
    let ok = errors.is_empty()
        && check_details
            .values()
            .chain(job_details.values())
            .all(|d| d.ok);
    StatusPage {
        ok,
        errors,
        check_details,
        job_details,
        current_master: snapshot.current_master.unwrap_or_default().to_string(),
        metadata: snapshot.metadata.clone(),
    }
}

#[cfg(test)]
mod tests;
