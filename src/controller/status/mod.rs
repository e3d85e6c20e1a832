//! The status page (`GET /`, `GET /json`): v2's JSON shape, computed from a cache snapshot.
//! HealthChecks (v3) are listed among the checks, keyed `namespace/name` with `"kind":
//! "HealthCheck"`; one that shares its namespace and name with a KuberhealthyCheck is keyed
//! `namespace/name (HealthCheck)`, so neither hides the other. [`v3`] renders v3's own shape.
//!
//! A check whose next run (after its last result, by `runInterval` or `schedule`) has not
//! reported within its `timeout` plus [`STALE_TOLERANCE`] counts as failing, with an error
//! saying so: a scheduler that stopped must never look green. A suspended check is neither
//! failing nor stale. A failing check whose dependency fails is shown as blocked by it.

pub mod v3;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::cadence::Cadence;
use crate::api::check::CheckTiming;
use crate::api::history::LastResult;
use crate::api::key_of;
use crate::api::time::add;
use crate::api::uptime::Uptime;
use crate::api::validate::{SpecError, describe_invalid_as};
use crate::api::{
    HealthCheck, KuberhealthyCheck, KuberhealthyJob, KuberhealthyState, KuberhealthyStateSpec,
    Workload, duration,
};
use crate::controller::run::depends::Dependencies;
use crate::controller::run::healthcheck;
use crate::controller::run::schedule::{self, NextStart};
use crate::controller::run::transition::last_result;

pub use crate::api::check::STALE_TOLERANCE;

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
    /// `HealthCheck` for a v3 HealthCheck; absent for v2's checks and jobs.
    #[serde(rename = "kind", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Uptime in percent over the last 24h, 7d and 30d (see [`crate::api::uptime`]); absent
    /// until a result was recorded with daily counters.
    #[serde(rename = "uptime", skip_serializing_if = "Option::is_none")]
    pub uptime: Option<Uptime>,
    /// The last result as uptime counts it (for the page's day bar); not served.
    #[serde(skip)]
    pub last_result: Option<LastResult>,
}

impl WorkloadDetails {
    /// Uptime from the record's daily counters and its last result (`timing` says when that
    /// turns stale; none: never).
    fn count_uptime(
        &mut self,
        state: &KuberhealthyStateSpec,
        timing: Option<&CheckTiming>,
        now: Timestamp,
    ) {
        self.last_result = last_result(state, timing);
        self.uptime = Uptime::of(&state.daily, self.last_result, now);
    }

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
    pub healthchecks: &'a [std::sync::Arc<HealthCheck>],
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

fn details_from_state(state: &KuberhealthyState) -> WorkloadDetails {
    details_from_run(&state.spec, &state.namespace().unwrap_or_default())
}

/// The entry of a run record; `namespace` when the record names none.
fn details_from_run(s: &KuberhealthyStateSpec, namespace: &str) -> WorkloadDetails {
    WorkloadDetails {
        ok: s.ok,
        errors: s.errors.clone(),
        run_duration: s.run_duration.clone(),
        namespace: if s.namespace.is_empty() {
            namespace.to_string()
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

/// A check of either generation, as the page judges it.
struct Subject<'a> {
    namespace: String,
    name: String,
    /// `check` or `HealthCheck`, for messages.
    what: &'static str,
    created: Option<Timestamp>,
    /// Its timing, or every error of its spec (its `dependsOn` errors included).
    timing: Result<CheckTiming, Vec<SpecError>>,
    suspended: bool,
    /// `singleRunOnly`: once it has run, it is neither due nor stale.
    single_run: bool,
    record: Option<Cow<'a, KuberhealthyStateSpec>>,
}

impl Subject<'_> {
    /// `dependency_errors` are its `dependsOn` errors, judged against all checks.
    fn of_check<'a>(
        check: &KuberhealthyCheck,
        state: Option<&'a KuberhealthyState>,
        dependency_errors: Option<&[SpecError]>,
    ) -> Subject<'a> {
        let timing = match (check.validate(), dependency_errors) {
            (Ok(t), None) => Ok(t),
            (result, dependency_errors) => {
                let mut errors = result.err().unwrap_or_default();
                errors.extend(dependency_errors.into_iter().flatten().cloned());
                Err(errors)
            }
        };
        Subject {
            namespace: check.namespace().unwrap_or_default(),
            name: check.name_any(),
            what: "check",
            created: check.creation_timestamp().map(|t| t.0),
            timing,
            suspended: check.suspended(),
            single_run: false,
            record: state.map(|s| Cow::Borrowed(&s.spec)),
        }
    }

    fn of_healthcheck(hc: &HealthCheck) -> Subject<'static> {
        let timing = hc.validate();
        Subject {
            namespace: hc.namespace().unwrap_or_default(),
            name: hc.name_any(),
            what: "HealthCheck",
            created: hc.creation_timestamp().map(|t| t.0),
            single_run: timing.as_ref().is_ok_and(|t| t.single_run),
            timing: timing.map(|t| CheckTiming {
                cadence: Cadence::Interval(t.run_interval),
                timeout: t.timeout,
            }),
            suspended: false,
            record: Some(Cow::Owned(healthcheck::as_run(hc))),
        }
    }
}

/// The earliest moment after a rendering at which some entry changes by the clock alone (a
/// result turns stale, a never-run check's first result turns overdue): until then, the
/// rendering stays true.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct NextTurn(pub Option<Timestamp>);

impl NextTurn {
    fn at(&mut self, t: Timestamp) {
        self.0 = Some(self.0.map_or(t, |n| n.min(t)));
    }
}

/// The details of one check: its record, its spec errors, whether it is suspended, and
/// whether its result is stale; `turn` learns when that judgement changes by the clock.
fn details_of(
    subject: Subject<'_>,
    now: Timestamp,
    turn: &mut NextTurn,
) -> Option<WorkloadDetails> {
    let Subject {
        namespace,
        name,
        what,
        created,
        timing,
        suspended,
        single_run,
        record,
    } = subject;
    let state = record.as_deref();
    let timing = match timing {
        Ok(t) => t,
        Err(errors) => {
            // An invalid check can never run: show why, whatever its record says.
            let mut details = state
                .map(|s| details_from_run(s, &namespace))
                .unwrap_or_else(|| WorkloadDetails::failing(namespace.clone(), vec![], false));
            details.ok = false;
            details.errors = describe_invalid_as(&key_of(&namespace, &name), what, &errors);
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
    if suspended {
        // Paused on purpose: neither failing nor stale; the last result stays in history.
        let mut details = state
            .map(|s| details_from_run(s, &namespace))
            .unwrap_or_else(|| WorkloadDetails {
                namespace: namespace.clone(),
                ..Default::default()
            });
        details.ok = true;
        details.errors.clear();
        details.failing_since = None;
        details.suspended = true;
        // Paused: its last result does not turn stale.
        if let Some(s) = state {
            details.count_uptime(s, None, now);
        }
        describe_cadence(&mut details);
        return Some(details);
    }
    let written = state.filter(|s| s.has_result());
    let tolerance = timing.timeout + STALE_TOLERANCE;
    let created = created.unwrap_or(now);
    let Some(state) = written else {
        // Never run: hidden (as in v2) until a first result is overdue.
        let first = timing.cadence.first_start(created);
        let overdue = add(first, tolerance);
        if now <= overdue {
            turn.at(overdue);
            return None;
        }
        let of_slot = match &timing.cadence {
            Cadence::Interval(_) => String::new(),
            Cadence::Cron(_) => format!(" of its first slot at {first}"),
        };
        let error = format!(
            "{namespace}/{name}: stale: no result since the {what} was created at {created}; \
             a first result was due within timeout ({}) + {}{of_slot} (is a leader elected and scheduling?)",
            duration::format(timing.timeout),
            duration::format(STALE_TOLERANCE)
        );
        let mut details = WorkloadDetails::failing(namespace, vec![error], true);
        details.failing_since = Some(overdue);
        describe_cadence(&mut details);
        return Some(details);
    };
    let mut details = details_from_run(state, &namespace);
    describe_cadence(&mut details);
    if single_run && !state.run_in_flight() {
        // It ran, once: nothing is due and nothing turns stale.
        details.count_uptime(state, None, now);
        return Some(details);
    }
    details.count_uptime(state, Some(&timing), now);
    // The scheduler's own rule, so the page shows when the check really runs next.
    if let NextStart::At(t) = schedule::next_start(Some(state), &timing.cadence, created) {
        details.next_run_at = Some(t);
    }
    let last = state.last_run.or(state.run_started_at);
    if let Some(last) = last {
        let next = timing.cadence.next_after(last);
        let stale_at = timing.stale_at(last);
        if now <= stale_at {
            turn.at(stale_at);
        } else {
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

/// The page's entry of a HealthCheck (see [`details_of`]).
pub(crate) fn details_of_healthcheck(
    hc: &HealthCheck,
    now: Timestamp,
    turn: &mut NextTurn,
) -> Option<WorkloadDetails> {
    let mut details = details_of(Subject::of_healthcheck(hc), now, turn)?;
    details.kind = Some("HealthCheck");
    Some(details)
}

/// The key of a HealthCheck on the page: `namespace/name`, or `namespace/name (HealthCheck)`
/// when a KuberhealthyCheck has that key.
pub fn healthcheck_key(namespace: &str, name: &str, check_keys: &BTreeSet<String>) -> String {
    let k = key_of(namespace, name);
    if check_keys.contains(&k) {
        format!("{k} (HealthCheck)")
    } else {
        k
    }
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

/// A page's `OK` and `Errors` from its entries' (`ok`, errors). As v2: the page is OK when no
/// entry has a non-blank error (and every entry is OK); its errors are the entries'.
pub(crate) fn verdict<'a>(
    entries: impl Iterator<Item = (bool, &'a [String])>,
) -> (bool, Vec<String>) {
    let mut ok = true;
    let mut errors = Vec::new();
    for (entry_ok, entry_errors) in entries {
        ok &= entry_ok;
        errors.extend(
            entry_errors
                .iter()
                .filter(|e| !e.trim().is_empty())
                .cloned(),
        );
    }
    (ok && errors.is_empty(), errors)
}

/// Computes the page for the namespaces in `filter` (empty: all).
pub fn render(snapshot: &Snapshot<'_>, filter: &BTreeSet<String>) -> StatusPage {
    render_until(snapshot, filter).0
}

/// The page for the namespaces in `filter`, and when it next changes by the clock alone.
pub fn render_until(snapshot: &Snapshot<'_>, filter: &BTreeSet<String>) -> (StatusPage, NextTurn) {
    let mut turn = NextTurn::default();
    let included = |ns: &str| filter.is_empty() || filter.contains(ns);
    let states: BTreeMap<String, &KuberhealthyState> = snapshot
        .states
        .iter()
        .map(|s| {
            (
                key_of(&s.namespace().unwrap_or_default(), &s.name_any()),
                s.as_ref(),
            )
        })
        .collect();

    // Every check first: a dependency may live in a namespace the filter leaves out.
    let dependencies = Dependencies::resolve(snapshot.checks);
    let mut check_details = BTreeMap::new();
    for check in snapshot.checks {
        let k = key_of(&check.namespace().unwrap_or_default(), &check.name_any());
        let state = states.get(&k).copied();
        let subject = Subject::of_check(check, state, dependencies.errors(&k));
        if let Some(details) = details_of(subject, snapshot.now, &mut turn) {
            check_details.insert(k, details);
        }
    }
    mark_blocked(&mut check_details, &dependencies);
    check_details.retain(|_, d| included(&d.namespace));
    let check_keys: BTreeSet<String> = snapshot
        .checks
        .iter()
        .map(|c| key_of(&c.namespace().unwrap_or_default(), &c.name_any()))
        .collect();
    for hc in snapshot.healthchecks {
        let ns = hc.namespace().unwrap_or_default();
        if !included(&ns) {
            continue;
        }
        if let Some(details) = details_of_healthcheck(hc, snapshot.now, &mut turn) {
            check_details.insert(healthcheck_key(&ns, &hc.name_any(), &check_keys), details);
        }
    }

    let mut job_details = BTreeMap::new();
    let job_keys: BTreeSet<String> = snapshot
        .jobs
        .iter()
        .map(|j| key_of(&j.namespace().unwrap_or_default(), &j.name_any()))
        .collect();
    for (k, state) in &states {
        let is_job = job_keys.contains(k) || state.spec.workload == Some(Workload::Job);
        let ns = state.namespace().unwrap_or_default();
        if is_job && !check_details.contains_key(k) && included(&ns) && state.spec.has_result() {
            job_details.insert(k.clone(), details_from_state(state));
        }
    }

    let (ok, errors) = verdict(
        check_details
            .values()
            .chain(job_details.values())
            .map(|d| (d.ok, d.errors.as_slice())),
    );
    let page = StatusPage {
        ok,
        errors,
        check_details,
        job_details,
        current_master: snapshot.current_master.unwrap_or_default().to_string(),
        metadata: snapshot.metadata.clone(),
    };
    (page, turn)
}

#[cfg(test)]
mod tests;
