//! The leader's executor: the only place that writes for the leader. It carries out the
//! planner's actions, checks the term before every write, classifies every failure once,
//! and counts it by action and kind of error.
//!
//! Fencing: every write of a run record (a khstate, or a HealthCheck's status) carries the
//! `resourceVersion` it was computed from, and the term is checked by this replica's own clock
//! just before each write, so a replica that lost the Lease, or was paused past it, cannot
//! start a run. The pod of a run is created only after the write that persisted the run has
//! won.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, LogParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, ResourceExt};

use super::action::{Action, Ending, LogSource, Owner};
use super::healthcheck;
use super::plan::Change;
use super::pod::{self, Generation, PodRequest};
use super::record::Record;
use super::transition::{self, Outcome, RunStart};
use crate::api::key_of;
use crate::api::time::add;
use crate::api::{
    HealthCheck, HealthCheckStatus, JobPhase, KuberhealthyCheck, KuberhealthyJob,
    KuberhealthyState, KuberhealthyStateSpec,
};
use crate::controller::api_error::{self, ApiErrorKind};
use crate::controller::leader::Term;
use crate::controller::metrics::{ControllerMetrics, RunOutcome};
use crate::controller::store::{HealthChecks, States, WriteError};

/// The checker lines read for a failed run: the last lines, of which the excerpt keeps the
/// end (see [`crate::api::history::LOG_EXCERPT_BYTES`]). The byte limit bounds the transfer.
const LOG_TAIL_LINES: i64 = 20;
const LOG_LIMIT_BYTES: i64 = 16 * 1024;

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
                kube::core::Status::failure("the run record changed since it was read", "Conflict")
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
    /// `KH_REPORTING_URL` of every checker pod of a check or job (v2's path).
    pub reporting_url: String,
    /// `KH_REPORTING_URL` of every checker pod of a HealthCheck (v3's `/check`).
    pub healthcheck_reporting_url: String,
    pub metrics: ControllerMetrics,
}

/// A run record to write: a khstate's spec (created when there is no khstate yet), or a
/// HealthCheck's status.
enum Next<'a> {
    State(Option<&'a KuberhealthyState>, KuberhealthyStateSpec),
    Status(&'a HealthCheck, HealthCheckStatus),
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
    healthchecks: HealthChecks,
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
            healthchecks: HealthChecks::new(client.clone()),
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
                self.start_run(&owner, previous.as_ref(), start, changes)
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
                let previous = owner.record(previous.as_ref());
                self.start_run(&owner, previous.as_ref(), start, changes)
                    .await?;
                self.set_job_phase(&job, JobPhase::Running, changes).await
            }
            Action::AdoptRun { owner, record } => {
                tracing::info!(check = %owner.key(), run = %record.run().uuid, "adopting a run in flight without a pod; creating it");
                let now = Timestamp::now();
                let record = match transition::began_late(record.run().run_started_at, now) {
                    // Persisted by an earlier term long before: the run begins with its pod.
                    Some(at) => {
                        tracing::info!(check = %owner.key(), run = %record.run().uuid, "the adopted run was persisted long before; dating it when its pod is created");
                        self.write_redated(&owner, &record, at, changes).await?
                    }
                    None => record,
                };
                self.create_pod(&owner, &record, changes).await
            }
            Action::FinishRun {
                owner,
                record,
                ending,
                message,
                node,
                log,
                delete_pod,
            } => {
                let excerpt = match &log {
                    Some(source) => self.read_log(&owner, source).await,
                    None => None,
                };
                self.finish(&owner, &record, ending, message, excerpt, node, changes)
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
                self.mark_invalid(&owner, previous.as_ref(), errors, changes)
                    .await
            }
            Action::SeedStatus { healthcheck, state } => {
                self.seed_status(&healthcheck, &state, changes).await
            }
            Action::SeedState { check, healthcheck } => {
                self.seed_state(&check, &healthcheck, changes).await
            }
            Action::ReleaseHealthCheck {
                healthcheck,
                delete_pod,
            } => {
                let namespace = healthcheck.namespace().unwrap_or_default();
                if let Some(pod) = delete_pod {
                    self.delete_pod(
                        &namespace,
                        &pod,
                        "its HealthCheck is being deleted",
                        changes,
                    )
                    .await?;
                }
                self.ensure_term()?;
                self.healthchecks.release_finalizer(&healthcheck).await?;
                tracing::info!(healthcheck = %key_of(&namespace, &healthcheck.name_any()), "released Kuberhealthy v3's finalizer of a HealthCheck being deleted");
                Ok(())
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

    /// Writes a run record conditioned on the version it was computed from (or creates the
    /// khstate).
    async fn write_record(
        &self,
        owner: &Owner,
        next: Next<'_>,
        changes: &mut Vec<Change>,
    ) -> Result<Record, ActionError> {
        self.ensure_term()?;
        match next {
            Next::State(previous, spec) => {
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
                Ok(Record::State(written))
            }
            Next::Status(current, status) => {
                let written = Arc::new(self.healthchecks.replace_status(current, status).await?);
                changes.push(Change::HealthCheckWritten {
                    replaced: current.resource_version(),
                    healthcheck: written.clone(),
                });
                Ok(Record::Status(written))
            }
        }
    }

    /// Rewrites the run in flight of `record` dated `at` (see [`Record::redated`]).
    async fn write_redated(
        &self,
        owner: &Owner,
        record: &Record,
        at: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<Record, ActionError> {
        // The dated record keeps the version it was read at: the write stays conditioned.
        let dated = record.redated(at);
        let next = match &dated {
            Record::State(state) => Next::State(Some(state), state.spec.clone()),
            Record::Status(hc) => Next::Status(hc, hc.status.clone().unwrap_or_default()),
        };
        self.write_record(owner, next, changes).await
    }

    /// Persists a new run, then creates its pod. The start time is taken just before the
    /// write that persists it, so a start delayed in the executor is not dated earlier.
    async fn start_run(
        &self,
        owner: &Owner,
        previous: Option<&Record>,
        start: Start<'_>,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        let uuid = uuid::Uuid::new_v4().to_string();
        let pod_name = pod::pod_name(&owner.name(), &uuid);
        let started_at = Timestamp::now();
        let namespace = owner.namespace();
        let run = RunStart {
            uuid: &uuid,
            scheduled: start.scheduled,
            honours: start.honours,
            started_at,
            deadline: add(started_at, start.timeout),
            term: &self.term.id,
            pod: &pod_name,
            namespace: &namespace,
            workload: owner.workload(),
        };
        let next = match previous {
            Some(Record::Status(hc)) => {
                Next::Status(hc, healthcheck::started(hc.status.as_ref(), &run))
            }
            other => {
                let state = other.and_then(Record::as_state).map(AsRef::as_ref);
                Next::State(state, transition::started(state.map(|s| &s.spec), run))
            }
        };
        let mut record = self.write_record(owner, next, changes).await?;
        let landed = Timestamp::now();
        if transition::began_late(Some(started_at), landed).is_some() {
            // Held up (an etcd stall): dated before the stall, the run would make its next
            // run due at once. Date it when it landed, before its pod exists.
            tracing::warn!(check = %owner.key(), run = %uuid, written_after = ?landed.duration_since(started_at), "the start of a run was persisted late; dating it when it landed");
            record = self.write_redated(owner, &record, landed, changes).await?;
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
        self.create_pod(owner, &record, changes).await
    }

    /// Creates the pod of the run in flight in `record`. A pod that cannot be created fails
    /// the run with the API server's reason; the next attempt is the next interval.
    async fn create_pod(
        &self,
        owner: &Owner,
        record: &Record,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        let run = record.run();
        let (Some(pod_name), Some(deadline)) = (run.run_pod.as_deref(), run.run_deadline) else {
            return Ok(());
        };
        let namespace = owner.namespace();
        let template = owner.pod_template();
        let (generation, reporting_url) = match owner {
            Owner::HealthCheck(_) => (
                Generation::V3 {
                    labels: template.labels,
                    annotations: template.annotations,
                    started_at: run.run_started_at.unwrap_or_else(Timestamp::now),
                },
                &self.settings.healthcheck_reporting_url,
            ),
            _ => (Generation::V2, &self.settings.reporting_url),
        };
        let pod = pod::build(&PodRequest {
            check_name: &owner.name(),
            namespace: &namespace,
            pod_name,
            run_uuid: &run.uuid,
            deadline,
            reporting_url,
            pod_spec: template.spec,
            extra_labels: template.extra_labels,
            extra_annotations: template.extra_annotations,
            owner: owner.owner_reference(),
            generation,
        });
        let pod_key = key_of(&namespace, pod_name);
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
                    record,
                    Ending::PodCreateFailed,
                    message,
                    None,
                    None,
                    changes,
                )
                .await?;
                return Err(ActionError::Api(e));
            }
        }
        changes.push(Change::PodCreated { key: pod_key });
        Ok(())
    }

    /// The last lines the checker container of a failed run printed, through the API
    /// server's `pods/log`: one request, cut by lines and bytes. A log that cannot be read
    /// (the node is gone, the container never started) leaves the run without an excerpt.
    async fn read_log(&self, owner: &Owner, source: &LogSource) -> Option<String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &owner.namespace());
        let params = LogParams {
            container: Some(source.container.clone()),
            tail_lines: Some(LOG_TAIL_LINES),
            limit_bytes: Some(LOG_LIMIT_BYTES),
            ..LogParams::default()
        };
        match api.logs(&source.pod, &params).await {
            Ok(log) if log.trim().is_empty() => None,
            Ok(log) => Some(log),
            Err(e) => {
                tracing::info!(check = %owner.key(), pod = %source.pod, container = %source.container, error = %api_error::reason(&e), "cannot read the log of a failed run's checker");
                None
            }
        }
    }

    /// Fails a run that ended without a report, and says so in a Warning Event. The checker's
    /// last lines, when read, are kept with the run and follow its errors.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        owner: &Owner,
        record: &Record,
        ending: Ending,
        message: String,
        log_excerpt: Option<String>,
        node: Option<String>,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        let now = Timestamp::now();
        let outcome = Outcome {
            ok: false,
            errors: vec![message.clone()],
            log_excerpt,
        };
        let next = match record {
            Record::Status(hc) => Next::Status(
                hc,
                healthcheck::finished(
                    &hc.status.clone().unwrap_or_default(),
                    false,
                    outcome.errors_with_excerpt(),
                    now,
                    node,
                ),
            ),
            Record::State(state) => Next::State(
                Some(state),
                transition::finished(
                    &state.spec,
                    outcome,
                    now,
                    &self.settings.identity,
                    node,
                    owner.timing().as_ref(),
                ),
            ),
        };
        let written = self.write_record(owner, next, changes).await?;
        let run = written.run();
        tracing::warn!(check = %owner.key(), run = %run.uuid, "{message}");
        if let (Record::Status(_), Some(started)) = (&written, run.run_started_at) {
            self.settings
                .metrics
                .healthcheck_run_finished(now.duration_since(started).unsigned_abs());
        }
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
        previous: Option<&Record>,
        errors: Vec<String>,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        tracing::warn!(check = %owner.key(), ?errors, "invalid spec: it will not run until fixed");
        let note = errors.join("; ");
        let namespace = owner.namespace();
        let next = match (previous, owner.workload()) {
            (Some(Record::Status(hc)), _) => Next::Status(
                hc,
                healthcheck::invalid(hc.status.as_ref(), errors, &namespace),
            ),
            (previous, workload) => {
                let state = previous.and_then(Record::as_state).map(AsRef::as_ref);
                Next::State(
                    state,
                    transition::invalid(
                        state.map(|s| &s.spec),
                        errors,
                        &namespace,
                        workload.unwrap_or(crate::api::Workload::Check),
                        &self.settings.identity,
                        Timestamp::now(),
                    ),
                )
            }
        };
        self.write_record(owner, next, changes).await?;
        self.event(owner, "InvalidSpec", "Validate", note).await;
        Ok(())
    }

    /// A new HealthCheck's status from the khstate of the check it replaces.
    async fn seed_status(
        &self,
        hc: &Arc<HealthCheck>,
        state: &KuberhealthyState,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        let owner = Owner::HealthCheck(hc.clone());
        let status = healthcheck::seeded_from_state(&state.spec, &owner.namespace());
        self.write_record(&owner, Next::Status(hc, status), changes)
            .await?;
        tracing::info!(healthcheck = %owner.key(), "a new HealthCheck takes the last result and the timer of the khstate of its name");
        Ok(())
    }

    /// A new KuberhealthyCheck's khstate from the status of the HealthCheck it replaces.
    async fn seed_state(
        &self,
        check: &Arc<KuberhealthyCheck>,
        hc: &HealthCheck,
        changes: &mut Vec<Change>,
    ) -> Result<(), ActionError> {
        let owner = Owner::Check(check.clone());
        let spec = healthcheck::state_from(hc, &self.settings.identity);
        self.write_record(&owner, Next::State(None, spec), changes)
            .await?;
        tracing::info!(check = %owner.key(), "a new check takes the last result and the timer of the HealthCheck of its name");
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
