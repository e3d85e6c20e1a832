//! The leader's planner (pure): from what the cache shows, with what this term wrote laid
//! over it, and the time, decide what to do. The executor carries the actions out; the
//! supervisor loops the two.
//!
//! Rules, one place each:
//! - a valid check is due at its persisted last start plus `runInterval`, or at the next
//!   slot of its `schedule` ([`schedule::next_start`]); due checks start oldest first,
//!   within the start budget;
//! - a suspended check starts no run; a run-now annotation value starts one run once, after
//!   the run in flight if any, without moving the schedule;
//! - a check whose `dependsOn` names no check or forms a cycle is invalid
//!   ([`Dependencies`]);
//! - a run in flight is judged from its pod ([`verdict::judge`]): wait, create its pod if an
//!   earlier term persisted the run but not the pod, fail it, or time it out; a run whose
//!   pod was created late is dated from its pod ([`Record::dated_by_pod`]); a run that
//!   Kuberhealthy v3 started (no pod known) waits for its report until its deadline;
//! - an invalid check or job does not run; its state says why;
//! - a job runs once: start, mark `Running`, mark `Completed`, delete after `maxKHJobAge`;
//! - the state of a check or job is deleted once its deletion was seen, or, for a state whose
//!   owner was never seen, [`ORPHAN_GRACE`] after the state was created: a state restored or
//!   applied before its check keeps its timer;
//! - checker pods of deleted owners go; finished pods beyond the retention settings go;
//! - a HealthCheck (v3) follows the check's rules with its status as its record; with
//!   `singleRunOnly` it runs once; a new one whose namespace holds the khstate of a
//!   KuberhealthyCheck of its name starts from that khstate (and a new KuberhealthyCheck from
//!   the status of a HealthCheck of its name): a live migration keeps the result and the timer;
//! - a HealthCheck being deleted with v3's finalizer has its run's pod deleted and the
//!   finalizer released.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::action::{Action, Ending, LogSource, Owner};
use super::depends::Dependencies;
use super::healthcheck;
use super::pod::{self as checker_pod, PodOwner};
use super::reap::{self, Retention};
use super::record::Record;
use super::schedule::{self, NextStart};
use super::verdict::{self, Verdict};
use crate::api::cadence::Cadence;
use crate::api::key_of;
use crate::api::time::add;
use crate::api::validate::describe_invalid_as;
use crate::api::{
    HealthCheck, JobPhase, KuberhealthyCheck, KuberhealthyJob, KuberhealthyState, names,
};

/// How long a khstate whose check or job was never seen is kept: a backup restore or a
/// GitOps tool may apply states before their checks, and deleting such a state would throw
/// its timer away.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(10 * 60);

/// What the planner is configured with.
#[derive(Debug, Clone, Copy)]
pub struct PlanSettings {
    pub retention: Retention,
    pub max_khjob_age: Duration,
}

/// What the planner sees: the cache's objects, keyed `namespace/name`, with what this term
/// wrote laid over them ([`Memory::lay_over`]).
#[derive(Debug, Clone, Default)]
pub struct View {
    pub checks: Vec<Arc<KuberhealthyCheck>>,
    pub jobs: Vec<Arc<KuberhealthyJob>>,
    pub states: HashMap<String, Arc<KuberhealthyState>>,
    pub pods: HashMap<String, Arc<Pod>>,
    /// v3 HealthChecks, when this replica serves them ([`View::with_healthchecks`]).
    pub healthchecks: Vec<Arc<HealthCheck>>,
    /// Whether HealthChecks are served: without, pods labelled for one are left alone.
    pub serves_healthchecks: bool,
}

impl View {
    pub fn new(
        checks: Vec<Arc<KuberhealthyCheck>>,
        jobs: Vec<Arc<KuberhealthyJob>>,
        states: Vec<Arc<KuberhealthyState>>,
        pods: Vec<Arc<Pod>>,
    ) -> View {
        View {
            checks,
            jobs,
            states: keyed(states),
            pods: keyed(pods),
            healthchecks: Vec::new(),
            serves_healthchecks: false,
        }
    }

    /// The view with v3 HealthChecks served too.
    pub fn with_healthchecks(mut self, healthchecks: Vec<Arc<HealthCheck>>) -> View {
        self.healthchecks = healthchecks;
        self.serves_healthchecks = true;
        self
    }

    fn healthcheck(&self, namespace: &str, name: &str) -> Option<&Arc<HealthCheck>> {
        self.healthchecks
            .iter()
            .find(|h| h.namespace().as_deref() == Some(namespace) && h.name_any() == name)
    }

    fn state(&self, namespace: &str, name: &str) -> Option<&Arc<KuberhealthyState>> {
        self.states.get(&key_of(namespace, name))
    }
}

fn keyed<K: ResourceExt>(objects: Vec<Arc<K>>) -> HashMap<String, Arc<K>> {
    objects
        .into_iter()
        .map(|o| (key_of(&o.namespace().unwrap_or_default(), &o.name_any()), o))
        .collect()
}

/// An object this term wrote, and the version its write replaced: the cache still shows
/// that version until its watch catches up, and until then the written object is the truth.
#[derive(Debug, Clone)]
struct Written<K> {
    replaced: Option<String>,
    object: Arc<K>,
}

/// What one action changed, for [`Memory::record`].
#[derive(Debug, Clone)]
pub enum Change {
    StateWritten {
        replaced: Option<String>,
        state: Arc<KuberhealthyState>,
    },
    JobWritten {
        replaced: Option<String>,
        job: Arc<KuberhealthyJob>,
    },
    HealthCheckWritten {
        replaced: Option<String>,
        healthcheck: Arc<HealthCheck>,
    },
    PodCreated {
        key: String,
    },
    PodDeleted {
        key: String,
    },
    StateDeleted {
        key: String,
    },
}

/// What this term has done that the cache may not show yet, and what it has seen. It lives
/// as long as the term: a new term starts from the cache alone.
#[derive(Debug, Default)]
pub struct Memory {
    states: HashMap<String, Written<KuberhealthyState>>,
    jobs: HashMap<String, Written<KuberhealthyJob>>,
    healthchecks: HashMap<String, Written<HealthCheck>>,
    /// Pods created that the cache has not shown yet: not to be created twice.
    created_pods: HashSet<String>,
    /// Pods and states whose deletion was asked for that the cache still shows as they were.
    deleted_pods: HashSet<String>,
    deleted_states: HashSet<String>,
    /// Checks and jobs seen during this term.
    owners: HashSet<String>,
    /// Checks and jobs seen, then gone: their deletion was observed.
    gone: HashSet<String>,
}

impl Memory {
    pub fn record(&mut self, change: Change) {
        match change {
            Change::StateWritten { replaced, state } => {
                let key = key_of(&state.namespace().unwrap_or_default(), &state.name_any());
                self.states.insert(
                    key,
                    Written {
                        replaced,
                        object: state,
                    },
                );
            }
            Change::JobWritten { replaced, job } => {
                let key = key_of(&job.namespace().unwrap_or_default(), &job.name_any());
                self.jobs.insert(
                    key,
                    Written {
                        replaced,
                        object: job,
                    },
                );
            }
            Change::HealthCheckWritten {
                replaced,
                healthcheck,
            } => {
                let key = key_of(
                    &healthcheck.namespace().unwrap_or_default(),
                    &healthcheck.name_any(),
                );
                self.healthchecks.insert(
                    key,
                    Written {
                        replaced,
                        object: healthcheck,
                    },
                );
            }
            Change::PodCreated { key } => {
                self.created_pods.insert(key);
            }
            Change::PodDeleted { key } => {
                self.deleted_pods.insert(key);
            }
            Change::StateDeleted { key } => {
                self.deleted_states.insert(key);
            }
        }
    }

    /// Lays what this term wrote over the cache's view, forgets what the cache now shows,
    /// and notes which checks and jobs were seen and which are gone.
    pub fn lay_over(&mut self, view: &mut View) {
        self.states.retain(|key, written| {
            let cached = view.states.get(key).and_then(|s| s.resource_version());
            if cached == written.replaced {
                view.states.insert(key.clone(), written.object.clone());
                true
            } else {
                false
            }
        });
        lay_over_list(&mut self.jobs, &mut view.jobs);
        lay_over_list(&mut self.healthchecks, &mut view.healthchecks);
        self.created_pods.retain(|key| !view.pods.contains_key(key));
        self.deleted_pods.retain(|key| {
            view.pods
                .get(key)
                .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
        });
        self.deleted_states
            .retain(|key| view.states.contains_key(key));

        let present: HashSet<String> = owner_keys(view).collect();
        for key in &self.owners {
            if !present.contains(key) {
                self.gone.insert(key.clone());
            }
        }
        // A name seen again is a new owner; a gone owner is forgotten once its state is.
        self.gone
            .retain(|key| !present.contains(key) && view.states.contains_key(key));
        self.owners = present;
    }
}

/// Lays written objects over the cache's list; forgets those the cache caught up with.
fn lay_over_list<K: ResourceExt>(written: &mut HashMap<String, Written<K>>, listed: &mut [Arc<K>]) {
    written.retain(|key, written| {
        let Some(slot) = listed
            .iter_mut()
            .find(|o| key_of(&o.namespace().unwrap_or_default(), &o.name_any()) == *key)
        else {
            return false;
        };
        if slot.resource_version() == written.replaced {
            *slot = written.object.clone();
            true
        } else {
            false
        }
    });
}

/// The keys of v1 checks and jobs (the owners of khstates).
fn owner_keys(view: &View) -> impl Iterator<Item = String> + '_ {
    let checks = view
        .checks
        .iter()
        .map(|c| key_of(&c.namespace().unwrap_or_default(), &c.name_any()));
    let jobs = view
        .jobs
        .iter()
        .map(|j| key_of(&j.namespace().unwrap_or_default(), &j.name_any()));
    checks.chain(jobs)
}

/// What to do now, and when to look again if nothing changes before.
#[derive(Debug, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub wake: Option<Timestamp>,
    /// Due starts left for later because the start budget ran out.
    pub deferred: usize,
}

impl Plan {
    fn wake_at(&mut self, t: Timestamp) {
        self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
    }

    /// How many runs the actions start (what they take from the start budget).
    pub fn starts(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::StartRun { .. } | Action::StartJob { .. }))
            .count()
    }
}

/// Decides what to do. `starts_allowed` is what the start budget allows now.
pub fn plan(
    view: &View,
    memory: &Memory,
    settings: &PlanSettings,
    now: Timestamp,
    starts_allowed: usize,
) -> Plan {
    let mut plan = Plan::default();
    let mut due: Vec<(Timestamp, Action)> = Vec::new();

    let dependencies = Dependencies::resolve(&view.checks);
    for check in &view.checks {
        let owner = Owner::Check(check.clone());
        let (namespace, name) = (owner.namespace(), owner.name());
        let state = view.state(&namespace, &name);
        let timing = match check.validate() {
            Ok(t) => t,
            Err(errors) => {
                mark_invalid(&mut plan, &owner, owner.record(state), &errors);
                continue;
            }
        };
        if let Some(errors) = dependencies.errors(&owner.key()) {
            mark_invalid(&mut plan, &owner, owner.record(state), errors);
            continue;
        }
        if state.is_none()
            && let Some(healthcheck) = view
                .healthcheck(&namespace, &name)
                .filter(|h| h.status.as_ref().is_some_and(|s| s.has_run()))
        {
            plan.actions.push(Action::SeedState {
                check: check.clone(),
                healthcheck: healthcheck.clone(),
            });
            continue;
        }
        let created = check.creation_timestamp().map(|t| t.0).unwrap_or(now);
        // A run-now value is honoured once: the start that honours it persists it.
        let honoured = state.and_then(|s| s.spec.honoured_run_request.as_deref());
        let request = check.run_requested().filter(|r| Some(*r) != honoured);
        match schedule::next_start(state.map(|s| &s.spec), &timing.cadence, created) {
            NextStart::InFlight => {
                let record = owner.record(state).expect("a run in flight has a record");
                // A request during a run is honoured once the run ends.
                supervise_run(&mut plan, view, memory, owner, record, now);
            }
            // Suspended: no new run, not even a requested one (as Flux's reconcile
            // annotation on a suspended object); it resumes from its persisted last start.
            NextStart::At(_) if check.suspended() => {}
            NextStart::At(t) if t <= now || request.is_some() => {
                let scheduled = t <= now;
                due.push((
                    t.min(now),
                    Action::StartRun {
                        previous: owner.record(state),
                        owner,
                        timeout: timing.timeout,
                        due_at: scheduled.then_some(t),
                        scheduled,
                        honours: request.map(str::to_string),
                    },
                ));
            }
            NextStart::At(t) => plan.wake_at(t),
        }
    }

    for job in &view.jobs {
        plan_job(&mut plan, &mut due, view, memory, settings, job, now);
    }

    for healthcheck in &view.healthchecks {
        plan_healthcheck(&mut plan, &mut due, view, memory, healthcheck, now);
    }

    // Oldest due first; the start budget spreads a catch-up.
    due.sort_by_key(|(t, _)| *t);
    let deferred = due.len().saturating_sub(starts_allowed);
    plan.actions
        .extend(due.into_iter().take(starts_allowed).map(|(_, a)| a));
    plan.deferred = deferred;

    clean_up(&mut plan, view, memory, settings, now);
    plan
}

fn mark_invalid(
    plan: &mut Plan,
    owner: &Owner,
    previous: Option<Record>,
    errors: &[crate::api::validate::SpecError],
) {
    let messages = describe_invalid_as(&owner.key(), owner.what(), errors);
    // Written once: the record already says it.
    if previous.as_ref().is_some_and(|r| {
        let run = r.run();
        !run.ok && run.errors == messages
    }) {
        return;
    }
    plan.actions.push(Action::MarkInvalid {
        owner: owner.clone(),
        previous,
        errors: messages,
    });
}

/// Judges a run in flight from its pod.
fn supervise_run(
    plan: &mut Plan,
    view: &View,
    memory: &Memory,
    owner: Owner,
    record: Record,
    now: Timestamp,
) {
    let run = record.run();
    let Some(deadline) = run.run_deadline else {
        // A run without a deadline was not started by this project: let it time out at
        // the next start instead of waiting forever.
        return;
    };
    let Some(pod_name) = run.run_pod.clone() else {
        // A run Kuberhealthy v3 started before this project took over: its pod is v3's and
        // unknown here; its report is accepted until its deadline, then it times out.
        if now >= deadline {
            let message = format!(
                "{}: timed out waiting for checker pod to report in (deadline {deadline}; the run was started by Kuberhealthy v3)",
                owner.key()
            );
            drop(run);
            plan.actions.push(Action::FinishRun {
                owner,
                record,
                ending: Ending::TimedOut,
                message,
                node: None,
                log: None,
                delete_pod: None,
            });
        } else {
            plan.wake_at(deadline);
        }
        return;
    };
    drop(run);
    let pod_name = pod_name.as_str();
    let namespace = owner.namespace();
    let pod_key = key_of(&namespace, pod_name);
    let pod = view.pods.get(&pod_key);
    let node = pod.and_then(|p| p.spec.as_ref()?.node_name.clone());
    // A run whose pod was created late ends dated from its pod.
    let pod_created = pod.and_then(|p| p.creation_timestamp()).map(|t| t.0);
    let log = pod
        .and_then(|p| verdict::log_container(p))
        .map(|container| LogSource {
            pod: pod_name.to_string(),
            container,
        });
    match verdict::judge(
        &owner.key(),
        pod_name,
        deadline,
        pod.map(AsRef::as_ref),
        now,
    ) {
        Verdict::WaitUntil(t) => plan.wake_at(t),
        Verdict::PodMissing => {
            if !memory.created_pods.contains(&pod_key) {
                plan.actions.push(Action::AdoptRun { owner, record });
            }
            plan.wake_at(deadline);
        }
        Verdict::Fail(message) => plan.actions.push(Action::FinishRun {
            owner,
            record: record.dated_by_pod(pod_created),
            ending: Ending::PodFailed,
            message,
            node,
            log,
            delete_pod: None,
        }),
        Verdict::TimedOut(message) => {
            let delete_pod = pod
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|_| pod_name.to_string());
            plan.actions.push(Action::FinishRun {
                owner,
                record: record.dated_by_pod(pod_created),
                ending: Ending::TimedOut,
                message,
                node,
                log,
                delete_pod,
            });
        }
    }
}

fn plan_job(
    plan: &mut Plan,
    due: &mut Vec<(Timestamp, Action)>,
    view: &View,
    memory: &Memory,
    settings: &PlanSettings,
    job: &Arc<KuberhealthyJob>,
    now: Timestamp,
) {
    let owner = Owner::Job(job.clone());
    let (namespace, name) = (owner.namespace(), owner.name());
    let state = view.state(&namespace, &name);
    let timeout = match job.validate() {
        Ok(t) => t,
        Err(errors) => return mark_invalid(plan, &owner, owner.record(state), &errors),
    };
    let phase = match job.phase() {
        Ok(p) => p,
        Err(error) => return mark_invalid(plan, &owner, owner.record(state), &[error]),
    };
    let created = job.creation_timestamp().map(|t| t.0).unwrap_or(now);
    match phase {
        JobPhase::New => {
            // Its run was persisted but the phase write did not land: only mark it.
            let started = state
                .filter(|s| s.spec.run_in_flight())
                .and_then(|s| s.spec.run_started_at)
                .is_some_and(|at| at >= created);
            if started {
                plan.actions.push(Action::SetJobPhase {
                    job: job.clone(),
                    phase: JobPhase::Running,
                });
            } else {
                due.push((
                    created,
                    Action::StartJob {
                        job: job.clone(),
                        previous: state.cloned(),
                        timeout,
                    },
                ));
            }
        }
        JobPhase::Running => match state {
            Some(s) if s.spec.run_in_flight() => {
                supervise_run(plan, view, memory, owner, Record::State(s.clone()), now);
            }
            Some(_) => plan.actions.push(Action::SetJobPhase {
                job: job.clone(),
                phase: JobPhase::Completed,
            }),
            // Running without a state: its start was lost; run it again.
            None => due.push((
                created,
                Action::StartRun {
                    owner,
                    previous: None,
                    timeout,
                    due_at: Some(created),
                    scheduled: true,
                    honours: None,
                },
            )),
        },
        JobPhase::Completed => {
            let finished = state.and_then(|s| s.spec.run_finished_at.or(s.spec.last_run));
            let expires = add(finished.unwrap_or(created), settings.max_khjob_age);
            if expires <= now {
                plan.actions.push(Action::ExpireJob { job: job.clone() });
            } else {
                plan.wake_at(expires);
            }
        }
    }
}

fn plan_healthcheck(
    plan: &mut Plan,
    due: &mut Vec<(Timestamp, Action)>,
    view: &View,
    memory: &Memory,
    healthcheck: &Arc<HealthCheck>,
    now: Timestamp,
) {
    let owner = Owner::HealthCheck(healthcheck.clone());
    let record = Record::Status(healthcheck.clone());
    let (namespace, name) = (owner.namespace(), owner.name());
    if healthcheck.metadata.deletion_timestamp.is_some() {
        if healthcheck
            .finalizers()
            .iter()
            .any(|f| f == names::FINALIZER_V3)
        {
            let run = record.run();
            let delete_pod = run
                .run_pod
                .clone()
                .filter(|_| run.run_in_flight())
                .filter(|pod| {
                    view.pods
                        .get(&key_of(&namespace, pod))
                        .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
                });
            plan.actions.push(Action::ReleaseHealthCheck {
                healthcheck: healthcheck.clone(),
                delete_pod,
            });
        }
        return;
    }
    let timing = match healthcheck.validate() {
        Ok(t) => t,
        Err(errors) => return mark_invalid(plan, &owner, Some(record), &errors),
    };
    let never_ran = !healthcheck.status.as_ref().is_some_and(|s| s.has_run());
    if never_ran
        && let Some(state) = view
            .state(&namespace, &name)
            .filter(|s| schedule::last_start(&s.spec).is_some())
    {
        plan.actions.push(Action::SeedStatus {
            healthcheck: healthcheck.clone(),
            state: state.clone(),
        });
        return;
    }
    let run = record.run();
    if timing.single_run && !run.run_in_flight() && schedule::last_start(&run).is_some() {
        // singleRunOnly: it has run.
        return;
    }
    let created = healthcheck.creation_timestamp().map(|t| t.0).unwrap_or(now);
    let next = schedule::next_start(Some(&run), &Cadence::Interval(timing.run_interval), created);
    drop(run);
    match next {
        NextStart::InFlight => supervise_run(plan, view, memory, owner, record, now),
        NextStart::At(t) if t <= now => due.push((
            t,
            Action::StartRun {
                owner,
                previous: Some(record),
                timeout: timing.timeout,
                due_at: Some(t),
                scheduled: true,
                honours: None,
            },
        )),
        NextStart::At(t) => plan.wake_at(t),
    }
}

/// States and pods of deleted checks and jobs, and finished pods beyond retention.
fn clean_up(
    plan: &mut Plan,
    view: &View,
    memory: &Memory,
    settings: &PlanSettings,
    now: Timestamp,
) {
    let owners: HashSet<String> = owner_keys(view).collect();
    let healthchecks: HashSet<String> = view
        .healthchecks
        .iter()
        .map(|h| key_of(&h.namespace().unwrap_or_default(), &h.name_any()))
        .collect();
    // A khstate a HealthCheck is starting from this pass is deleted at the next.
    let seeding: HashSet<String> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::SeedStatus { healthcheck, .. } => Some(key_of(
                &healthcheck.namespace().unwrap_or_default(),
                &healthcheck.name_any(),
            )),
            _ => None,
        })
        .collect();
    let mut in_flight = HashSet::new();
    for healthcheck in &view.healthchecks {
        let run = healthcheck::as_run(healthcheck);
        if run.run_in_flight()
            && let Some(pod) = &run.run_pod
        {
            in_flight.insert(key_of(&healthcheck.namespace().unwrap_or_default(), pod));
        }
    }
    let mut states: Vec<(&String, &Arc<KuberhealthyState>)> = view.states.iter().collect();
    states.sort_by(|a, b| a.0.cmp(b.0));
    for (key, state) in states {
        if owners.contains(key) {
            if state.spec.run_in_flight()
                && let Some(pod) = &state.spec.run_pod
            {
                in_flight.insert(key_of(&state.namespace().unwrap_or_default(), pod));
            }
            continue;
        }
        if memory.deleted_states.contains(key) || seeding.contains(key) {
            continue;
        }
        let why = if memory.gone.contains(key) {
            "its check or job was deleted"
        } else {
            let created = state.creation_timestamp().map(|t| t.0).unwrap_or(now);
            let expires = add(created, ORPHAN_GRACE);
            if expires > now {
                plan.wake_at(expires);
                continue;
            }
            "no check or job of its name appeared within the orphan grace period"
        };
        plan.actions.push(Action::DeleteState {
            namespace: state.namespace().unwrap_or_default(),
            name: state.name_any(),
            why,
        });
    }

    let mut pods: Vec<(&String, &Arc<Pod>)> = view.pods.iter().collect();
    pods.sort_by(|a, b| a.0.cmp(b.0));
    let mut kept = Vec::with_capacity(pods.len());
    for (key, pod) in pods {
        if memory.deleted_pods.contains(key) {
            continue;
        }
        let namespace = pod.namespace().unwrap_or_default();
        let orphan = match checker_pod::owner_of(pod) {
            Some(PodOwner::Check(check)) => (!owners.contains(&key_of(&namespace, check)))
                .then_some("its check or job was deleted"),
            Some(PodOwner::HealthCheck(name)) => (view.serves_healthchecks
                && !healthchecks.contains(&key_of(&namespace, name)))
            .then_some("its HealthCheck was deleted"),
            None => None,
        };
        if let Some(why) = orphan {
            if pod.metadata.deletion_timestamp.is_none() {
                plan.actions.push(Action::DeletePod {
                    namespace,
                    name: pod.name_any(),
                    why,
                });
            }
        } else {
            kept.push(pod.as_ref());
        }
    }
    let finished = kept.into_iter();
    for reaped in reap::reap(finished, &in_flight, settings.retention, now) {
        plan.actions.push(Action::DeletePod {
            namespace: reaped.namespace,
            name: reaped.name,
            why: reaped.reason,
        });
    }
}

#[cfg(test)]
mod tests;
