//! What the leader does, as values: the planner decides a list of actions from what it
//! sees, and the executor carries them out. Nothing here does I/O.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use super::record::Record;
use crate::api::cadence::Cadence;
use crate::api::check::CheckTiming;
use crate::api::{
    HealthCheck, JobPhase, KuberhealthyCheck, KuberhealthyJob, KuberhealthyState, Workload,
};
use crate::api::{PodSpecText, key_of};

/// The check, job or HealthCheck a run belongs to.
#[derive(Debug, Clone)]
pub enum Owner {
    Check(Arc<KuberhealthyCheck>),
    Job(Arc<KuberhealthyJob>),
    /// A v3 HealthCheck: its runs are recorded in its own status.
    HealthCheck(Arc<HealthCheck>),
}

/// The pod spec of a HealthCheck without one (it is invalid and never started).
static NO_POD_SPEC: std::sync::LazyLock<PodSpecText> =
    std::sync::LazyLock::new(PodSpecText::default);

impl Owner {
    pub fn namespace(&self) -> String {
        match self {
            Owner::Check(c) => c.namespace().unwrap_or_default(),
            Owner::Job(j) => j.namespace().unwrap_or_default(),
            Owner::HealthCheck(h) => h.namespace().unwrap_or_default(),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Owner::Check(c) => c.name_any(),
            Owner::Job(j) => j.name_any(),
            Owner::HealthCheck(h) => h.name_any(),
        }
    }

    /// `namespace/name`, as the status page keys it.
    pub fn key(&self) -> String {
        key_of(&self.namespace(), &self.name())
    }

    /// v2's `khWorkload` of its khstate; a HealthCheck has no khstate.
    pub fn workload(&self) -> Option<Workload> {
        match self {
            Owner::Check(_) => Some(Workload::Check),
            Owner::Job(_) => Some(Workload::Job),
            Owner::HealthCheck(_) => None,
        }
    }

    /// When its results turn stale, from its spec; none for a job (it runs once), a
    /// single-run HealthCheck or a spec that does not validate.
    pub fn timing(&self) -> Option<CheckTiming> {
        match self {
            Owner::Check(c) => c.validate().ok(),
            Owner::Job(_) => None,
            Owner::HealthCheck(h) => {
                h.validate()
                    .ok()
                    .filter(|t| !t.single_run)
                    .map(|t| CheckTiming {
                        cadence: Cadence::Interval(t.run_interval),
                        timeout: t.timeout,
                    })
            }
        }
    }

    /// What it is, for messages: `check`, `job` or `HealthCheck`.
    pub fn what(&self) -> &'static str {
        match self {
            Owner::Check(_) => "check",
            Owner::Job(_) => "job",
            Owner::HealthCheck(_) => "HealthCheck",
        }
    }

    /// Where its runs are recorded, given its khstate (checks and jobs) if it has one.
    pub fn record(&self, state: Option<&Arc<KuberhealthyState>>) -> Option<Record> {
        match self {
            Owner::HealthCheck(h) => Some(Record::Status(h.clone())),
            _ => state.cloned().map(Record::State),
        }
    }

    /// What the checker pod is built from.
    pub fn pod_template(&self) -> PodTemplate<'_> {
        match self {
            Owner::Check(c) => PodTemplate {
                spec: &c.spec.pod_spec,
                extra_labels: c.spec.extra_labels.as_ref(),
                extra_annotations: c.spec.extra_annotations.as_ref(),
                labels: None,
                annotations: None,
            },
            Owner::Job(j) => PodTemplate {
                spec: &j.spec.pod_spec,
                extra_labels: j.spec.extra_labels.as_ref(),
                extra_annotations: j.spec.extra_annotations.as_ref(),
                labels: None,
                annotations: None,
            },
            Owner::HealthCheck(h) => {
                let metadata = h.pod_metadata();
                PodTemplate {
                    spec: h.pod_spec().unwrap_or(&NO_POD_SPEC),
                    extra_labels: h.spec.extra_labels.as_ref(),
                    extra_annotations: h.spec.extra_annotations.as_ref(),
                    labels: metadata.and_then(|m| m.labels.as_ref()),
                    annotations: metadata.and_then(|m| m.annotations.as_ref()),
                }
            }
        }
    }

    /// The owner reference of its checker pods, so the cluster's garbage collector removes
    /// them with it.
    pub fn owner_reference(&self) -> Option<OwnerReference> {
        match self {
            Owner::Check(c) => c.controller_owner_ref(&()),
            Owner::Job(j) => j.controller_owner_ref(&()),
            Owner::HealthCheck(h) => h.controller_owner_ref(&()),
        }
    }

    /// What its Events are about.
    pub fn object_reference(&self) -> ObjectReference {
        match self {
            Owner::Check(c) => c.object_ref(&()),
            Owner::Job(j) => j.object_ref(&()),
            Owner::HealthCheck(h) => h.object_ref(&()),
        }
    }
}

/// The parts of a check, job or HealthCheck its checker pods are built from.
pub struct PodTemplate<'a> {
    pub spec: &'a PodSpecText,
    pub extra_labels: Option<&'a BTreeMap<String, String>>,
    pub extra_annotations: Option<&'a BTreeMap<String, String>>,
    /// A HealthCheck's `podSpec.metadata`.
    pub labels: Option<&'a BTreeMap<String, String>>,
    pub annotations: Option<&'a BTreeMap<String, String>>,
}

/// Where the last lines of a failed run's checker are read from (`pods/log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    pub pod: String,
    pub container: String,
}

/// Why a run ended without a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The checker pod ended, was deleted, or cannot start.
    PodFailed,
    /// The checker pod could not be created.
    PodCreateFailed,
    /// No report arrived before the run's deadline.
    TimedOut,
}

impl Ending {
    /// The reason of the Warning Event it is published with.
    pub fn event_reason(self) -> &'static str {
        match self {
            Ending::PodFailed => "RunFailed",
            Ending::PodCreateFailed => "PodCreateFailed",
            Ending::TimedOut => "RunTimedOut",
        }
    }
}

/// One thing for the leader to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Start a run: persist its UUID, times and pod in the record (conditioned on the
    /// version `previous` was read at), and create the pod only if that write won.
    StartRun {
        owner: Owner,
        previous: Option<Record>,
        timeout: Duration,
        /// When the run was due, for the lateness metric; none for a run asked for now.
        due_at: Option<Timestamp>,
        /// Whether the run is a slot of the regular schedule (a run-now alone is not).
        scheduled: bool,
        /// The run-now annotation value the run honours.
        honours: Option<String>,
    },
    /// Start a new job's only run, then mark the job `Running`.
    StartJob {
        job: Arc<KuberhealthyJob>,
        previous: Option<Arc<KuberhealthyState>>,
        timeout: Duration,
    },
    /// Create the missing pod of a run in flight that an earlier term persisted (its leader
    /// stopped between the two writes).
    AdoptRun { owner: Owner, record: Record },
    /// Fail a run that ended without a report; delete its pod when given.
    FinishRun {
        owner: Owner,
        record: Record,
        ending: Ending,
        message: String,
        /// The node its pod ran on, if it was scheduled.
        node: Option<String>,
        /// The container whose last lines are kept with the run, when one has started.
        log: Option<LogSource>,
        delete_pod: Option<String>,
    },
    /// Record why a check or job cannot run (errors naming each field).
    MarkInvalid {
        owner: Owner,
        previous: Option<Record>,
        errors: Vec<String>,
    },
    /// Start a new HealthCheck's status from the khstate of the KuberhealthyCheck of the same
    /// name it replaces (a live migration): its last result and its timer.
    SeedStatus {
        healthcheck: Arc<HealthCheck>,
        state: Arc<KuberhealthyState>,
    },
    /// Start a new KuberhealthyCheck's khstate from the status of the HealthCheck of the same
    /// name it replaces.
    SeedState {
        check: Arc<KuberhealthyCheck>,
        healthcheck: Arc<HealthCheck>,
    },
    /// Let a HealthCheck that Kuberhealthy v3 marked with its finalizer be deleted: delete
    /// the pod of its run in flight, then remove the finalizer.
    ReleaseHealthCheck {
        healthcheck: Arc<HealthCheck>,
        delete_pod: Option<String>,
    },
    /// Write a job's phase (`Running` after a crash between the two writes of its start,
    /// `Completed` once its run finished).
    SetJobPhase {
        job: Arc<KuberhealthyJob>,
        phase: JobPhase,
    },
    /// Delete a completed job older than `maxKHJobAge`.
    ExpireJob { job: Arc<KuberhealthyJob> },
    /// Delete the state of a check or job that is gone.
    DeleteState {
        namespace: String,
        name: String,
        why: &'static str,
    },
    /// Delete a checker pod.
    DeletePod {
        namespace: String,
        name: String,
        why: &'static str,
    },
}

impl Action {
    /// The action's name, for logs and the failure metric's `action` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::StartRun { .. } => "start_run",
            Action::StartJob { .. } => "start_job",
            Action::AdoptRun { .. } => "adopt_run",
            Action::FinishRun { .. } => "finish_run",
            Action::MarkInvalid { .. } => "mark_invalid",
            Action::SeedStatus { .. } => "seed_status",
            Action::SeedState { .. } => "seed_state",
            Action::ReleaseHealthCheck { .. } => "release_healthcheck",
            Action::SetJobPhase { .. } => "set_job_phase",
            Action::ExpireJob { .. } => "expire_job",
            Action::DeleteState { .. } => "delete_state",
            Action::DeletePod { .. } => "delete_pod",
        }
    }
}
