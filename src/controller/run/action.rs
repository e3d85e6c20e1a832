//! What the leader does, as values: the planner decides a list of actions from what it
//! sees, and the executor carries them out. Nothing here does I/O.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ObjectReference, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use crate::api::{JobPhase, KuberhealthyCheck, KuberhealthyJob, KuberhealthyState, Workload};

/// The check or job a run belongs to.
#[derive(Debug, Clone)]
pub enum Owner {
    Check(Arc<KuberhealthyCheck>),
    Job(Arc<KuberhealthyJob>),
}

impl Owner {
    pub fn namespace(&self) -> String {
        match self {
            Owner::Check(c) => c.namespace().unwrap_or_default(),
            Owner::Job(j) => j.namespace().unwrap_or_default(),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Owner::Check(c) => c.name_any(),
            Owner::Job(j) => j.name_any(),
        }
    }

    /// `namespace/name`, as the status page keys it.
    pub fn key(&self) -> String {
        key_of(&self.namespace(), &self.name())
    }

    pub fn workload(&self) -> Workload {
        match self {
            Owner::Check(_) => Workload::Check,
            Owner::Job(_) => Workload::Job,
        }
    }

    /// What the checker pod is built from.
    pub fn pod_template(&self) -> PodTemplate<'_> {
        match self {
            Owner::Check(c) => PodTemplate {
                spec: &c.spec.pod_spec,
                extra_labels: c.spec.extra_labels.as_ref(),
                extra_annotations: c.spec.extra_annotations.as_ref(),
            },
            Owner::Job(j) => PodTemplate {
                spec: &j.spec.pod_spec,
                extra_labels: j.spec.extra_labels.as_ref(),
                extra_annotations: j.spec.extra_annotations.as_ref(),
            },
        }
    }

    /// The owner reference of its checker pods, so the cluster's garbage collector removes
    /// them with it.
    pub fn owner_reference(&self) -> Option<OwnerReference> {
        match self {
            Owner::Check(c) => c.controller_owner_ref(&()),
            Owner::Job(j) => j.controller_owner_ref(&()),
        }
    }

    /// What its Events are about.
    pub fn object_reference(&self) -> ObjectReference {
        match self {
            Owner::Check(c) => c.object_ref(&()),
            Owner::Job(j) => j.object_ref(&()),
        }
    }
}

/// The parts of a check or job its checker pods are built from.
pub struct PodTemplate<'a> {
    pub spec: &'a PodSpec,
    pub extra_labels: Option<&'a BTreeMap<String, String>>,
    pub extra_annotations: Option<&'a BTreeMap<String, String>>,
}

/// `namespace/name`.
pub fn key_of(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
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
    /// Start a run: persist its UUID, times and pod in the state (conditioned on the
    /// version `previous` was read at), and create the pod only if that write won.
    StartRun {
        owner: Owner,
        previous: Option<Arc<KuberhealthyState>>,
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
    AdoptRun {
        owner: Owner,
        state: Arc<KuberhealthyState>,
    },
    /// Fail a run that ended without a report; delete its pod when given.
    FinishRun {
        owner: Owner,
        state: Arc<KuberhealthyState>,
        ending: Ending,
        message: String,
        /// The node its pod ran on, if it was scheduled.
        node: Option<String>,
        delete_pod: Option<String>,
    },
    /// Record why a check or job cannot run (errors naming each field).
    MarkInvalid {
        owner: Owner,
        previous: Option<Arc<KuberhealthyState>>,
        errors: Vec<String>,
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
            Action::SetJobPhase { .. } => "set_job_phase",
            Action::ExpireJob { .. } => "expire_job",
            Action::DeleteState { .. } => "delete_state",
            Action::DeletePod { .. } => "delete_pod",
        }
    }
}
