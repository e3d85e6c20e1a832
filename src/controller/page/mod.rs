//! The status page people look at: an HTML overview of every check and job, a page per
//! check, and shields-style badges. Everything here is pure (a cache snapshot and the time
//! in, a view or bytes out), so a render-once-per-change layer can serve it; the routes live
//! in [`crate::controller::server`].
//!
//! The page's verdicts are the status JSON's ([`status::render`]): a check is failing, stale
//! or blocked here exactly when the JSON says so. The page adds what the JSON hides: checks
//! that never ran, runs in flight, and suspended checks.

pub mod badge;
pub mod html;
pub mod negotiate;
pub mod serve;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::api::PodSpecText;
use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::history::{self, DayCounts, LastResult, RunResult};
use crate::api::uptime::{self, Uptime};
use crate::api::{
    HealthCheck, KuberhealthyCheck, KuberhealthyJob, KuberhealthyState, KuberhealthyStateSpec,
    key_of,
};
use crate::controller::run::healthcheck;
use crate::controller::status::{self, NextTurn, Snapshot, WorkloadDetails};

/// How many days the overview's bar shows, oldest first.
pub const BAR_DAYS: usize = 30;

/// What a check or job shows, in the order the overview lists them (failing first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowState {
    Failing,
    Stale,
    Blocked,
    Running,
    NeverRun,
    Suspended,
    Passing,
}

impl RowState {
    /// The word shown on the page, in CSS classes and on badges.
    pub fn label(self) -> &'static str {
        match self {
            RowState::Failing => "failing",
            RowState::Stale => "stale",
            RowState::Blocked => "blocked",
            RowState::Running => "running",
            RowState::NeverRun => "never run",
            RowState::Suspended => "suspended",
            RowState::Passing => "passing",
        }
    }

    /// The CSS class of the state (a label without spaces).
    pub fn class(self) -> &'static str {
        match self {
            RowState::NeverRun => "never-run",
            other => other.label(),
        }
    }

    /// Whether the state needs someone's attention.
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            RowState::Failing | RowState::Stale | RowState::Blocked
        )
    }
}

/// What kind of resource a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Check,
    Job,
    HealthCheck,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Check => "check",
            Kind::Job => "job",
            Kind::HealthCheck => "HealthCheck",
        }
    }

    /// The resource name `kubectl get` takes.
    fn kubectl_resource(self) -> &'static str {
        match self {
            Kind::Check => "khcheck",
            Kind::Job => "khjob",
            Kind::HealthCheck => "healthcheck",
        }
    }
}

/// One line of the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub kind: Kind,
    pub state: RowState,
    pub last_run: Option<Timestamp>,
    pub duration: String,
    pub next_run: Option<Timestamp>,
    pub consecutive_failures: u32,
    /// The errors of the last result (and why it is stale or blocked).
    pub errors: Vec<String>,
    /// Uptime over 24h, 7d and 30d, from the record's daily counters.
    pub uptime: Option<Uptime>,
    /// The share of each of the last [`BAR_DAYS`] UTC days (oldest first) the check passed;
    /// `None` for a day it was not observed.
    pub bar: Vec<Option<f64>>,
}

impl Row {
    pub fn key(&self) -> String {
        key_of(&self.namespace, &self.name)
    }

    /// The path of the row's own page.
    pub fn href(&self) -> String {
        check_path(&self.namespace, &self.name)
    }
}

/// The path of a check's page; namespace and name are DNS labels, safe in a path.
pub fn check_path(namespace: &str, name: &str) -> String {
    format!("/checks/{namespace}/{name}")
}

/// The overview: every row, failing first, and who leads and serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub rows: Vec<Row>,
    /// Every namespace with a row, for the filter, even those a filter hides.
    pub namespaces: Vec<String>,
    pub leader: Option<String>,
    pub serving: String,
    /// When the overview changes by the clock alone (a verdict turning, a new day).
    pub valid_until: Option<Timestamp>,
}

impl Overview {
    pub fn count(&self, state: RowState) -> usize {
        self.rows.iter().filter(|r| r.state == state).count()
    }
}

/// What narrows the overview: namespaces (`?namespace=a,b`, as the JSON) and a name search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub namespaces: BTreeSet<String>,
    pub search: String,
}

impl Filter {
    pub fn from_query(namespace: Option<&str>, search: Option<&str>) -> Filter {
        Filter {
            namespaces: status::parse_namespace_filter(namespace),
            search: search.unwrap_or_default().trim().to_string(),
        }
    }

    /// Case-insensitive: the search matches any part of `namespace/name`.
    pub fn admits(&self, row: &Row) -> bool {
        (self.namespaces.is_empty() || self.namespaces.contains(&row.namespace))
            && (self.search.is_empty()
                || row
                    .key()
                    .to_lowercase()
                    .contains(&self.search.to_lowercase()))
    }
}

/// One check, job or HealthCheck with what the page needs of it.
struct Subject<'a> {
    namespace: String,
    name: String,
    kind: Kind,
    record: Option<std::borrow::Cow<'a, KuberhealthyStateSpec>>,
    pod_spec: Option<&'a PodSpecText>,
    interval: Option<String>,
    schedule: Option<String>,
    time_zone: Option<String>,
    timeout: Option<String>,
    /// Its key in the status JSON.
    status_key: String,
}

/// Every subject of the snapshot.
fn subjects<'a>(snapshot: &Snapshot<'a>) -> Vec<Subject<'a>> {
    let states: BTreeMap<String, &'a KuberhealthyState> = snapshot
        .states
        .iter()
        .map(|s| {
            (
                key_of(&s.namespace().unwrap_or_default(), &s.name_any()),
                &**s,
            )
        })
        .collect();
    let record = |ns: &str, name: &str| {
        states
            .get(&key_of(ns, name))
            .copied()
            .map(|s| std::borrow::Cow::Borrowed(&s.spec))
    };
    let mut subjects = Vec::new();
    let check_keys: BTreeSet<String> = snapshot
        .checks
        .iter()
        .map(|c| key_of(&c.namespace().unwrap_or_default(), &c.name_any()))
        .collect();
    for check in snapshot.checks {
        subjects.push(of_check(check, record));
    }
    for job in snapshot.jobs {
        subjects.push(of_job(job, record));
    }
    for hc in snapshot.healthchecks {
        subjects.push(of_healthcheck(hc, &check_keys));
    }
    subjects
}

fn of_check<'a>(
    check: &'a Arc<KuberhealthyCheck>,
    record: impl Fn(&str, &str) -> Option<std::borrow::Cow<'a, KuberhealthyStateSpec>>,
) -> Subject<'a> {
    let (namespace, name) = (check.namespace().unwrap_or_default(), check.name_any());
    let spec = &check.spec;
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    Subject {
        record: record(&namespace, &name),
        status_key: key_of(&namespace, &name),
        kind: Kind::Check,
        pod_spec: Some(&spec.pod_spec),
        interval: non_empty(&spec.run_interval),
        schedule: spec.schedule.as_deref().and_then(non_empty),
        time_zone: spec.time_zone.clone(),
        timeout: Some(non_empty(&spec.timeout).unwrap_or_else(|| "5m".into())),
        namespace,
        name,
    }
}

fn of_job<'a>(
    job: &'a Arc<KuberhealthyJob>,
    record: impl Fn(&str, &str) -> Option<std::borrow::Cow<'a, KuberhealthyStateSpec>>,
) -> Subject<'a> {
    let (namespace, name) = (job.namespace().unwrap_or_default(), job.name_any());
    let timeout = job.spec.timeout.trim();
    Subject {
        record: record(&namespace, &name),
        status_key: key_of(&namespace, &name),
        kind: Kind::Job,
        pod_spec: Some(&job.spec.pod_spec),
        interval: None,
        schedule: None,
        time_zone: None,
        timeout: Some(if timeout.is_empty() { "5m" } else { timeout }.to_string()),
        namespace,
        name,
    }
}

fn of_healthcheck<'a>(hc: &'a Arc<HealthCheck>, check_keys: &BTreeSet<String>) -> Subject<'a> {
    let (namespace, name) = (hc.namespace().unwrap_or_default(), hc.name_any());
    let record = hc
        .status
        .is_some()
        .then(|| std::borrow::Cow::Owned(healthcheck::as_run(hc)));
    Subject {
        status_key: status::healthcheck_key(&namespace, &name, check_keys),
        record,
        kind: Kind::HealthCheck,
        pod_spec: hc.pod_spec(),
        interval: Some(hc.spec.run_interval.clone().unwrap_or_else(|| "10m".into())),
        schedule: None,
        time_zone: None,
        timeout: Some(hc.spec.timeout.clone().unwrap_or_else(|| "30s".into())),
        namespace,
        name,
    }
}

/// The row of a subject, judged as the status JSON judges it (`details`, absent while the
/// JSON hides a check that never ran).
fn row_of(subject: &Subject<'_>, details: Option<&WorkloadDetails>, now: Timestamp) -> Row {
    let record = subject.record.as_deref();
    let in_flight = record.is_some_and(KuberhealthyStateSpec::run_in_flight);
    let mut row = Row {
        namespace: subject.namespace.clone(),
        name: subject.name.clone(),
        kind: subject.kind,
        state: RowState::NeverRun,
        last_run: None,
        duration: String::new(),
        next_run: None,
        consecutive_failures: 0,
        errors: vec![],
        uptime: None,
        bar: vec![],
    };
    let Some(details) = details else {
        row.state = if in_flight {
            RowState::Running
        } else {
            RowState::NeverRun
        };
        return row;
    };
    row.last_run = details.last_run;
    row.duration = details.run_duration.clone();
    row.next_run = details.next_run_at;
    row.consecutive_failures = details.consecutive_failures;
    row.errors = details.errors.clone();
    row.uptime = details.uptime;
    row.bar = record
        .map(|r| daily_bar(&r.daily, details.last_result, now))
        .unwrap_or_default();
    row.state = if details.suspended {
        RowState::Suspended
    } else if details.ok {
        // A passing check re-running shows as running; a failing one stays failing.
        if in_flight {
            RowState::Running
        } else if details.last_run.is_none() {
            RowState::NeverRun
        } else {
            RowState::Passing
        }
    } else if details.blocked_by.is_some() {
        RowState::Blocked
    } else if details.stale {
        RowState::Stale
    } else {
        RowState::Failing
    };
    row
}

/// The share of each of the last [`BAR_DAYS`] UTC days up to `now`'s (oldest first) that the
/// check passed, counted as uptime counts it (daily counters, then the time since the `last`
/// result); `None` for a day nothing was observed.
pub fn daily_bar(
    daily: &[DayCounts],
    last: Option<LastResult>,
    now: Timestamp,
) -> Vec<Option<f64>> {
    let today = history::day_of(now);
    (0..BAR_DAYS)
        .rev()
        .map(|back| {
            let day = today
                .checked_sub(jiff::Span::new().days(back as i64))
                .ok()?;
            let from = history::start_of(day);
            let to = history::start_of(day.tomorrow().ok()?).min(now);
            let (observed, down) = uptime::observed_and_down_between(daily, last, now, from, to);
            (observed > 0.0).then(|| (observed - down.min(observed)) / observed)
        })
        .collect()
}

/// When a rendering from `turn` at `now` stops being current: the status page's next turn,
/// or the next UTC midnight, when the bar moves on a day.
fn valid_until(NextTurn(turn): NextTurn, now: Timestamp) -> Option<Timestamp> {
    let midnight = history::start_of(history::day_of(now).tomorrow().ok()?);
    Some(turn.map_or(midnight, |t| t.min(midnight)))
}

/// The overview of `snapshot`: every row, failing first, then by key. A [`Filter`] hides rows
/// when the page is drawn, so the browser can widen it again without a request.
pub fn overview(snapshot: &Snapshot<'_>, serving: &str) -> Overview {
    let (page, turn) = status::render_until(snapshot, &BTreeSet::new());
    let mut rows: Vec<Row> = subjects(snapshot)
        .iter()
        .map(|s| {
            let details = match s.kind {
                Kind::Job => page.job_details.get(&s.status_key),
                _ => page.check_details.get(&s.status_key),
            };
            row_of(s, details, snapshot.now)
        })
        .collect();
    let namespaces: BTreeSet<String> = rows.iter().map(|r| r.namespace.clone()).collect();
    rows.sort_by(|a, b| {
        (a.state, &a.namespace, &a.name, a.kind.label()).cmp(&(
            b.state,
            &b.namespace,
            &b.name,
            b.kind.label(),
        ))
    });
    Overview {
        rows,
        namespaces: namespaces.into_iter().collect(),
        leader: snapshot.current_master.map(str::to_string),
        serving: serving.to_string(),
        valid_until: valid_until(turn, snapshot.now),
    }
}

/// A check's own page.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckView {
    pub row: Row,
    pub interval: Option<String>,
    pub schedule: Option<String>,
    pub time_zone: Option<String>,
    pub timeout: Option<String>,
    /// The images of the checker pod's containers, in order.
    pub images: Vec<String>,
    /// Finished runs, newest first.
    pub history: Vec<RunResult>,
    /// The checker pod of the current or last run.
    pub pod: Option<String>,
    pub node: String,
    /// The commands that show more, each ready to paste.
    pub commands: Vec<String>,
    pub leader: Option<String>,
    pub serving: String,
    pub valid_until: Option<Timestamp>,
}

/// The page of the check (or job, or HealthCheck) `namespace/name`; `None` when there is
/// none. A KuberhealthyCheck wins over a HealthCheck of the same name.
pub fn check_view(
    snapshot: &Snapshot<'_>,
    serving: &str,
    namespace: &str,
    name: &str,
) -> Option<CheckView> {
    let (page, turn) = status::render_until(snapshot, &BTreeSet::new());
    let subjects = subjects(snapshot);
    let subject = subjects
        .iter()
        .find(|s| s.namespace == namespace && s.name == name)?;
    let details = match subject.kind {
        Kind::Job => page.job_details.get(&subject.status_key),
        _ => page.check_details.get(&subject.status_key),
    };
    let row = row_of(subject, details, snapshot.now);
    let record = subject.record.as_deref();
    let pod = record.and_then(|r| r.run_pod.clone());
    Some(CheckView {
        commands: kubectl_commands(subject, pod.as_deref()),
        interval: subject.interval.clone(),
        schedule: subject.schedule.clone(),
        time_zone: subject.time_zone.clone(),
        timeout: subject.timeout.clone(),
        images: subject
            .pod_spec
            .map(|p| {
                p.containers()
                    .iter()
                    .filter_map(|c| c.image.clone())
                    .collect()
            })
            .unwrap_or_default(),
        history: record.map(|r| r.history.clone()).unwrap_or_default(),
        node: record.map(|r| r.node.clone()).unwrap_or_default(),
        pod,
        row,
        leader: snapshot.current_master.map(str::to_string),
        serving: serving.to_string(),
        valid_until: valid_until(turn, snapshot.now),
    })
}

/// The `kubectl` commands that show more of a check: its spec, its state, its pods, the
/// last pod's log.
fn kubectl_commands(subject: &Subject<'_>, pod: Option<&str>) -> Vec<String> {
    let ns = &subject.namespace;
    let name = &subject.name;
    let resource = subject.kind.kubectl_resource();
    let mut commands = vec![format!("kubectl -n {ns} get {resource} {name} -o yaml")];
    let label = match subject.kind {
        Kind::HealthCheck => crate::api::names::LABEL_HEALTHCHECK,
        _ => crate::api::names::LABEL_CHECK_NAME,
    };
    if subject.kind != Kind::HealthCheck {
        commands.push(format!("kubectl -n {ns} get khstate {name} -o yaml"));
    }
    commands.push(format!("kubectl -n {ns} get pods -l {label}={name}"));
    if let Some(pod) = pod {
        commands.push(format!("kubectl -n {ns} logs {pod}"));
        commands.push(format!("kubectl -n {ns} describe pod {pod}"));
    }
    commands.push(format!(
        "kubectl -n {ns} get events --field-selector involvedObject.name={name}"
    ));
    commands
}

#[cfg(test)]
mod tests;
