//! The status page (`GET /`, `GET /json`): v2's JSON shape, computed from a cache snapshot.
//!
//! A check whose next run (after its last result, by `runInterval` or `schedule`) has not
//! reported within its `timeout` plus [`STALE_TOLERANCE`] counts as failing, with an error
//! saying so: a scheduler that stopped must never look green. A suspended check is neither
//! failing nor stale. A failing check whose dependency fails is shown as blocked by it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::cadence::Cadence;
use crate::api::time::add;
use crate::api::validate::SpecError;
use crate::api::validate::describe_invalid;
use crate::api::{KuberhealthyCheck, KuberhealthyJob, KuberhealthyState, Workload, duration};
use crate::controller::run::depends::Dependencies;
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
    /// The cron schedule and its time zone, for checks that run on one.
    #[serde(rename = "schedule", skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(rename = "timeZone", skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// True while `spec.suspend` is: no runs, neither failing nor stale.
    #[serde(rename = "suspended", skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// Since when the check has been failing (or stale).
    #[serde(rename = "failingSince", skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Timestamp>,
    /// The dependency (`namespace/name`) that fails or is stale while this check fails.
    #[serde(rename = "blockedBy", skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
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
        failing_since: if s.ok {
            None
        } else {
            s.failing_since.or(s.last_run)
        },
        ..Default::default()
    }
}

/// The details of one check: its state, its spec errors, whether it is suspended, and
/// whether its result is stale. `dependency_errors` are its `dependsOn` errors, judged
/// against all checks.
fn details_of_check(
    check: &KuberhealthyCheck,
    state: Option<&KuberhealthyState>,
    dependency_errors: Option<&[SpecError]>,
    now: Timestamp,
) -> Option<WorkloadDetails> {
    let namespace = check.namespace().unwrap_or_default();
    let name = check.name_any();
    let timing = match (check.validate(), dependency_errors) {
        (Ok(t), None) => t,
        (result, dependency_errors) => {
            let mut errors = result.err().unwrap_or_default();
            errors.extend(dependency_errors.into_iter().flatten().cloned());
            // An invalid check can never run: show why, whatever its state says.
            let mut details = state
                .map(details_from_state)
                .unwrap_or_else(|| WorkloadDetails::failing(namespace.clone(), vec![], false));
            details.ok = false;
            details.errors = describe_invalid(&key(&namespace, &name), Workload::Check, &errors);
            return Some(details);
        }
    };
    let describe_cadence = |details: &mut WorkloadDetails| match &timing.cadence {
        Cadence::Interval(interval) => details.run_interval = Some(duration::format(*interval)),
        Cadence::Cron(cron) => {
            details.schedule = Some(cron.expression.clone());
            details.time_zone = Some(cron.zone_name.clone());
        }
    };
    if check.suspended() {
        // Paused on purpose: neither failing nor stale; the last result stays in history.
        let mut details = state
            .map(details_from_state)
            .unwrap_or_else(|| WorkloadDetails {
                namespace: namespace.clone(),
                ..Default::default()
            });
        details.ok = true;
        details.errors.clear();
        details.failing_since = None;
        details.suspended = true;
        describe_cadence(&mut details);
        return Some(details);
    }
    let written = state.filter(|s| s.spec.has_result());
    let tolerance = timing.timeout + STALE_TOLERANCE;
    let created = check.creation_timestamp().map_or(now, |t| t.0);
    let Some(state) = written else {
        // Never run: hidden (as in v2) until a first result is overdue.
        let first = timing.cadence.first_start(created);
        let overdue = add(first, tolerance);
        if now <= overdue {
            return None;
        }
        let of_slot = match &timing.cadence {
            Cadence::Interval(_) => String::new(),
            Cadence::Cron(_) => format!(" of its first slot at {first}"),
        };
        let error = format!(
            "{namespace}/{name}: stale: no result since the check was created at {created}; \
             a first result was due within timeout ({}) + {}{of_slot} (is a leader elected and scheduling?)",
            duration::format(timing.timeout),
            duration::format(STALE_TOLERANCE)
        );
        let mut details = WorkloadDetails::failing(namespace, vec![error], true);
        details.failing_since = Some(overdue);
        describe_cadence(&mut details);
        return Some(details);
    };
    let mut details = details_from_state(state);
    describe_cadence(&mut details);
    // The scheduler's own rule, so the page shows when the check really runs next.
    if let NextStart::At(t) = schedule::next_start(Some(&state.spec), &timing.cadence, created) {
        details.next_run_at = Some(t);
    }
    let last = state.spec.last_run.or(state.spec.run_started_at);
    if let Some(last) = last {
        let next = timing.cadence.next_after(last);
        let stale_at = add(next, tolerance);
        if now > stale_at {
            details.ok = false;
            details.stale = true;
            details.failing_since = details.failing_since.or(Some(stale_at));
            details.errors.push(match &timing.cadence {
                Cadence::Interval(interval) => format!(
                    "{namespace}/{name}: stale: the last result is from {last}, older than runInterval ({}) + timeout ({}) + {} (is a leader elected and scheduling?)",
                    duration::format(*interval),
                    duration::format(timing.timeout),
                    duration::format(STALE_TOLERANCE)
                ),
                Cadence::Cron(_) => format!(
                    "{namespace}/{name}: stale: the last result is from {last}; the run of the next slot ({next}) should have reported within timeout ({}) + {} (is a leader elected and scheduling?)",
                    duration::format(timing.timeout),
                    duration::format(STALE_TOLERANCE)
                ),
            });
        }
    }
    Some(details)
}

/// Marks failing checks whose dependency fails or is stale as blocked by it: the first such
/// dependency, in the order of `dependsOn`, with the time it has been failing since.
fn mark_blocked(details: &mut BTreeMap<String, WorkloadDetails>, dependencies: &Dependencies) {
    let failing: BTreeMap<String, Option<Timestamp>> = details
        .iter()
        .filter(|(_, d)| !d.ok)
        .map(|(k, d)| (k.clone(), d.failing_since.or(d.last_run)))
        .collect();
    for (key, d) in details.iter_mut() {
        // An invalid `dependsOn` blocks nothing: the check's own spec is what is wrong.
        if d.ok || dependencies.errors(key).is_some() {
            continue;
        }
        let Some((dependency, since)) = dependencies
            .of(key)
            .iter()
            .find_map(|dep| failing.get(dep).map(|since| (dep, since)))
        else {
            continue;
        };
        let since = since
            .map(|t| format!(", failing since {t}"))
            .unwrap_or_default();
        d.errors
            .insert(0, format!("{key}: blocked by {dependency}{since}"));
        d.blocked_by = Some(dependency.clone());
    }
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

    // Every check first: a dependency may live in a namespace the filter leaves out.
    let dependencies = Dependencies::resolve(snapshot.checks);
    let mut check_details = BTreeMap::new();
    for check in snapshot.checks {
        let k = key(&check.namespace().unwrap_or_default(), &check.name_any());
        let state = states.get(&k).copied();
        if let Some(details) = details_of_check(check, state, dependencies.errors(&k), snapshot.now)
        {
            check_details.insert(k, details);
        }
    }
    mark_blocked(&mut check_details, &dependencies);
    check_details.retain(|_, d| included(&d.namespace));

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
