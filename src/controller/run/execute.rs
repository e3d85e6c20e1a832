//! The leader's executor: the only place that writes for the leader. It carries out the
//! planner's actions, checks the term before every write, classifies every failure once,
//! and counts it by action and kind of error.
//!
//! Fencing: every khstate write carries the `resourceVersion` its new spec was computed from,
//! and the term is checked by this replica's own clock just before each write, so a replica
//! that lost the Lease, or was paused past it, cannot start a run. The pod of a run is
//! created only after the write that persisted the run has won.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, ResourceExt};

use super::action::{Action, Ending, Owner, key_of};
use super::plan::Change;
use super::pod::{self, PodRequest};
use super::transition::{self, RunStart};
use crate::api::time::add;
use crate::api::{JobPhase, KuberhealthyJob, KuberhealthyState, KuberhealthyStateSpec};
use crate::controller::api_error::{self, ApiErrorKind};
use crate::controller::leader::Term;
use crate::controller::metrics::{ControllerMetrics, RunOutcome};
use crate::controller::store::{States, WriteError};

/// A start write that took longer than this is dated again when it landed.
const LATE_START_WRITE: Duration = Duration::from_secs(1);

/// Kubernetes Event notes are limited to 1 KiB.
const EVENT_NOTE_CHARS: usize = 1000;

/// Why an action did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("the leader term ended; nothing more is written with it")]
    TermEnded,
    #[error("{}", api_error::reason(.0))]
    Api(kube::Error),
}

impl ActionError {
    /// The `error` label of the failure metric.
    pub fn label(&self) -> &'static str {
        match self {
            ActionError::TermEnded => "term_ended",
            ActionError::Api(e) => api_error::classify(e).label(),
        }
    }

    fn kind(&self) -> Option<ApiErrorKind> {
        match self {
            ActionError::TermEnded => None,
            ActionError::Api(e) => Some(api_error::classify(e)),
        }
    }
}

impl From<WriteError> for ActionError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Conflict => ActionError::Api(kube::Error::Api(Box::new(
                kube::core::Status::failure("the khstate changed since it was read", "Conflict")
                    .with_code(409),
            ))),
            WriteError::Api(e) => ActionError::Api(e),
        }
    }
}

/// How a run starts.
struct Start<'a> {
    timeout: Duration,
    due_at: Option<Timestamp>,
    scheduled: bool,
    honours: Option<&'a str>,
}

/// What the executor writes with.
#[derive(Clone)]
pub struct ExecutorSettings {
    /// This replica: `AuthoritativePod` of what it writes.
    pub identity: String,
    /// `KH_REPORTING_URL` of every checker pod.
    pub reporting_url: String,
    pub metrics: ControllerMetrics,
}

/// What one action did: what it changed (for the planner's memory), and why it stopped
/// short if it did.
#[derive(Debug, Default)]
pub struct Done {
    pub changes: Vec<Change>,
    pub failure: Option<ActionError>,
}

pub struct Executor {
    client: Client,
    states: States,
    recorder: Recorder,
    term: Term,
    settings: ExecutorSettings,
}

impl Executor {
    pub fn new(client: Client, term: Term, settings: ExecutorSettings) -> Executor {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "kuberhealthy".into(),
                instance: Some(settings.identity.clone()),
            },
        );
        Executor {
            states: States::new(client.clone()),
            client,
            recorder,
            term,
            settings,
        }
    }

    /// Carries out one action. A failure is logged and counted here, once.
    pub async fn execute(&self, action: Action) -> Done {
        let kind = action.kind();
        let mut changes = Vec::new();
        let result = self.carry_out(action, &mut changes).await;
        let failure = result.err();
        if let Some(error) = &failure {
            self.settings.metrics.action_failed(kind, error.label());
            match error.kind() {
                // Lost a race: the cache brings the winner and the next pass decides again.
                Some(ApiErrorKind::Conflict) | None => {
                    tracing::debug!(action = kind, %error, "action not carried out")
                }
                _ => tracing::warn!(action = kind, %error, "action failed"),
            }
        }
        Done { changes, failure }
    }

    async fn carry_out(
        &self,
        action: Action,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        match action {
            Action::StartRun {
                owner,
                previous,
                timeout,
                due_at,
                scheduled,
                honours,
            } => {
                let start = Start {
                    timeout,
                    due_at,
                    scheduled,
                    honours: honours.as_deref(),
                };
                self.start_run(&owner, previous.as_deref(), start, changes)
                    .await
            }
            Action::StartJob {
                job,
                previous,
                timeout,
            } => {
                let owner = Owner::Job(job.clone());
                let start = Start {
                    timeout,
                    due_at: None,
                    scheduled: true,
                    honours: None,
                };
                self.start_run(&owner, previous.as_deref(), start, changes)
                    .await?;
                self.set_job_phase(&job, JobPhase::Running, changes).await
            }
            Action::AdoptRun { owner, state } => {
                tracing::info!(check = %owner.key(), run = %state.spec.uuid, "adopting a run in flight without a pod; creating it");
                self.create_pod(&owner, &state, changes).await
            }
            Action::FinishRun {
                owner,
                state,
                ending,
                message,
                node,
                delete_pod,
            } => {
                self.finish(&owner, &state, ending, message, node, changes)
                    .await?;
                if let Some(pod) = delete_pod {
                    self.delete_pod(&owner.namespace(), &pod, "its run timed out", changes)
                        .await?;
                }
                Ok(())
            }
            Action::MarkInvalid {
                owner,
                previous,
                errors,
            } => {
                self.mark_invalid(&owner, previous.as_deref(), errors, changes)
                    .await
            }
            Action::SetJobPhase { job, phase } => self.set_job_phase(&job, phase, changes).await,
            Action::ExpireJob { job } => self.expire_job(&job).await,
            Action::DeleteState {
                namespace,
                name,
                why,
            } => {
                self.ensure_term()?;
                self.states
                    .delete(&namespace, &name)
                    .await
                    .map_err(ActionError::Api)?;
                tracing::info!(state = %key_of(&namespace, &name), "deleted a khstate: {why}");
                changes.push(Change::StateDeleted {
                    key: key_of(&namespace, &name),
                });
                Ok(())
            }
            Action::DeletePod {
                namespace,
                name,
                why,
            } => self.delete_pod(&namespace, &name, why, changes).await,
        }
    }

    fn ensure_term(&self) -> Result<(), ActionError> {
        if self.term.is_valid() {
            Ok(())
        } else {
            Err(ActionError::TermEnded)
        }
    }

    /// Writes a state conditioned on the version `previous` was read at (or creates it).
    async fn write_state(
        &self,
        owner: &Owner,
        previous: Option<&KuberhealthyState>,
        spec: KuberhealthyStateSpec,
        changes: &mut Vec<Change>,
    ) -> Result<Arc<KuberhealthyState>, ActionError> {
        self.ensure_term()?;
        let written = match previous {
            Some(prev) => self.states.replace(prev, spec).await?,
            None => {
                self.states
                    .create(&owner.namespace(), &owner.name(), spec)
                    .await?
            }
        };
        let written = Arc::new(written);
        changes.push(Change::StateWritten {
            replaced: previous.and_then(|p| p.resource_version()),
            state: written.clone(),
        });
        Ok(written)
    }

    /// Persists a new run, then creates its pod. The start time is taken just before the
    /// write that persists it, so a start delayed in the executor is not dated earlier.
    async fn start_run(
        &self,
        owner: &Owner,
        previous: Option<&KuberhealthyState>,
        start: Start<'_>,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        let uuid = uuid::Uuid::new_v4().to_string();
        let pod_name = pod::pod_name(&owner.name(), &uuid);
        let started_at = Timestamp::now();
        let spec = transition::started(
            previous.map(|s| &s.spec),
            RunStart {
                uuid: &uuid,
                scheduled: start.scheduled,
                honours: start.honours,
                started_at,
                deadline: add(started_at, start.timeout),
                term: &self.term.id,
                pod: &pod_name,
                namespace: &owner.namespace(),
                workload: owner.workload(),
            },
        );
        let mut state = self.write_state(owner, previous, spec, changes).await?;
        let landed = Timestamp::now();
        if landed.duration_since(started_at).unsigned_abs() > LATE_START_WRITE {
            // Held up (an etcd stall): dated before the stall, the run would make its next
            // run due at once. Date it when it landed, before its pod exists.
            tracing::warn!(check = %owner.key(), run = %uuid, written_after = ?landed.duration_since(started_at), "the start of a run was persisted late; dating it when it landed");
            let spec = transition::redated(&state.spec, landed, start.timeout);
            state = self.write_state(owner, Some(&state), spec, changes).await?;
        }
        match start.honours {
            Some(request) => {
                tracing::info!(check = %owner.key(), run = %uuid, pod = %pod_name, %request, "starting a run asked for with run-now")
            }
            None => {
                tracing::info!(check = %owner.key(), run = %uuid, pod = %pod_name, "starting a run")
            }
        }
        self.settings
            .metrics
            .run_started(&owner.namespace(), &owner.name());
        if let Some(due_at) = start.due_at {
            let lateness = started_at.duration_since(due_at).unsigned_abs();
            self.settings.metrics.run_started_late(lateness);
        }
        self.create_pod(owner, &state, changes).await
    }

    /// Creates the pod of the run in flight in `state`. A pod that cannot be created fails
    /// the run with the API server's reason; the next attempt is the next interval.
    async fn create_pod(
        &self,
        owner: &Owner,
        state: &Arc<KuberhealthyState>,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        let (Some(pod_name), Some(deadline)) =
            (state.spec.run_pod.as_deref(), state.spec.run_deadline)
        else {
            return Ok(());
        };
        let namespace = owner.namespace();
        let template = owner.pod_template();
        let pod = pod::build(&PodRequest {
            check_name: &owner.name(),
            namespace: &namespace,
            pod_name,
            run_uuid: &state.spec.uuid,
            deadline,
            reporting_url: &self.settings.reporting_url,
            pod_spec: template.spec,
            extra_labels: template.extra_labels,
            extra_annotations: template.extra_annotations,
            owner: owner.owner_reference(),
        });
        self.ensure_term()?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), &pod).await {
            Ok(_) => {}
            // Created by an earlier attempt of this run: the same run, the same pod.
            Err(e) if api_error::classify(&e) == ApiErrorKind::Conflict => {}
            Err(e) => {
                let message = format!(
                    "{}: failed to create pod for checker: {}",
                    owner.key(),
                    api_error::reason(&e)
                );
                self.finish(
                    owner,
                    state,
                    Ending::PodCreateFailed,
                    message,
                    None,
                    changes,
                )
                .await?;
                return Err(ActionError::Api(e));
            }
        }
        changes.push(Change::PodCreated {
            key: key_of(&namespace, pod_name),
        });
        Ok(())
    }

    /// Fails a run that ended without a report, and says so in a Warning Event.
    async fn finish(
        &self,
        owner: &Owner,
        state: &KuberhealthyState,
        ending: Ending,
        message: String,
        node: Option<String>,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        let spec = transition::finished(
            &state.spec,
            false,
            vec![message.clone()],
            Timestamp::now(),
            &self.settings.identity,
            node,
        );
        self.write_state(owner, Some(state), spec, changes).await?;
        tracing::warn!(check = %owner.key(), run = %state.spec.uuid, "{message}");
        let outcome = match ending {
            Ending::TimedOut => RunOutcome::TimedOut,
            Ending::PodFailed | Ending::PodCreateFailed => RunOutcome::Failed,
        };
        self.settings
            .metrics
            .run_finished(&owner.namespace(), &owner.name(), outcome);
        self.event(owner, ending.event_reason(), "FinishRun", message)
            .await;
        Ok(())
    }

    async fn mark_invalid(
        &self,
        owner: &Owner,
        previous: Option<&KuberhealthyState>,
        errors: Vec<String>,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        tracing::warn!(check = %owner.key(), ?errors, "invalid spec: it will not run until fixed");
        let note = errors.join("; ");
        let spec = transition::invalid(
            previous.map(|s| &s.spec),
            errors,
            &owner.namespace(),
            owner.workload(),
            &self.settings.identity,
            Timestamp::now(),
        );
        self.write_state(owner, previous, spec, changes).await?;
        self.event(owner, "InvalidSpec", "Validate", note).await;
        Ok(())
    }

    async fn set_job_phase(
        &self,
        job: &Arc<KuberhealthyJob>,
        phase: JobPhase,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        self.ensure_term()?;
        let api: Api<KuberhealthyJob> =
            Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        let mut next = (**job).clone();
        next.spec.phase = Some(phase.as_str().into());
        let written = api
            .replace(&job.name_any(), &PostParams::default(), &next)
            .await
            .map_err(ActionError::Api)?;
        tracing::info!(job = %job.name_any(), phase = phase.as_str(), "job phase");
        changes.push(Change::JobWritten {
            replaced: job.resource_version(),
            job: Arc::new(written),
        });
        Ok(())
    }

    async fn expire_job(&self, job: &KuberhealthyJob) -> Result<(), ActionError> {
        self.ensure_term()?;
        let namespace = job.namespace().unwrap_or_default();
        let api: Api<KuberhealthyJob> = Api::namespaced(self.client.clone(), &namespace);
        match api.delete(&job.name_any(), &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(job = %job.name_any(), namespace = %namespace, "deleted a completed job older than maxKHJobAge");
                Ok(())
            }
            Err(e) if api_error::classify(&e) == ApiErrorKind::NotFound => Ok(()),
            Err(e) => Err(ActionError::Api(e)),
        }
    }

    async fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        why: &str,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        self.ensure_term()?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(pod = %name, namespace = %namespace, "deleted checker pod: {why}")
            }
            Err(e) if api_error::classify(&e) == ApiErrorKind::NotFound => {}
            Err(e) => return Err(ActionError::Api(e)),
        }
        changes.push(Change::PodDeleted {
            key: key_of(namespace, name),
        });
        Ok(())
    }

    /// Publishes a Warning Event on the check or job. Events are only written when something
    /// went wrong: a run's start and success are in its khstate already.
    async fn event(&self, owner: &Owner, reason: &str, action: &str, note: String) {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.chars().take(EVENT_NOTE_CHARS).collect()),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self
            .recorder
            .publish(&event, &owner.object_reference())
            .await
        {
            tracing::debug!(error = %e, "cannot publish an event");
        }
    }
}

#[cfg(test)]
mod tests;
