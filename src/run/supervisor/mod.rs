//! The leader's supervisor: for one leader term, it starts due runs, fails runs whose pod
//! failed or whose deadline passed, runs new jobs once, removes what deleted checks left
//! behind, and reaps finished pods. Everything it reads comes from the watch cache; it
//! wakes on cache changes and on the next due time, never on a polling tick.
//!
//! Every write checks the term first and carries the `resourceVersion` it was computed from,
//! so a replica that lost the Lease cannot start a run.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};

mod cleanup;
mod jobs;

use super::pod::{self, PodRequest};
use super::reap::Retention;
use super::store::{States, WriteError};
use super::transition::{self, RunStart};
use super::verdict::{self, Verdict};
use crate::api::{
    KuberhealthyCheck, KuberhealthyJob, KuberhealthyState, KuberhealthyStateSpec, Workload,
};
use crate::cache::Cache;
use crate::leader::Term;
use crate::metrics::{ControllerMetrics, RunOutcome};
use crate::schedule::{self, NextStart, StartBudget};

#[derive(Clone)]
pub struct SupervisorSettings {
    pub identity: String,
    pub reporting_url: String,
    pub retention: Retention,
    pub max_khjob_age: Duration,
    pub starts_per_second: u32,
    pub metrics: ControllerMetrics,
}

/// What a run is built from: its check or job.
struct RunTarget<'a> {
    namespace: String,
    name: String,
    kind: Workload,
    pod_spec: &'a k8s_openapi::api::core::v1::PodSpec,
    extra_labels: Option<&'a std::collections::BTreeMap<String, String>>,
    extra_annotations: Option<&'a std::collections::BTreeMap<String, String>>,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
}

pub struct Supervisor {
    cache: Cache,
    states: States,
    client: Client,
    settings: SupervisorSettings,
    term: Term,
    recorder: Recorder,
    budget: StartBudget,
    /// States this term wrote that the cache has not shown yet: key -> (the version the
    /// write replaced, the written state). Planning uses them until the cache catches up.
    written: HashMap<String, (Option<String>, Arc<KuberhealthyState>)>,
    /// Pods this term created (or found existing), so a pod the cache has not shown yet is
    /// not created twice.
    created_pods: HashSet<String>,
}

fn key_of(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Supervisor {
    pub fn new(
        cache: Cache,
        client: Client,
        settings: SupervisorSettings,
        term: Term,
    ) -> Supervisor {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "kuberhealthy".into(),
                instance: Some(settings.identity.clone()),
            },
        );
        let budget = StartBudget::new(settings.starts_per_second);
        Supervisor {
            states: States::new(client.clone()),
            cache,
            client,
            settings,
            term,
            recorder,
            budget,
            written: HashMap::new(),
            created_pods: HashSet::new(),
        }
    }

    pub async fn run(mut self) {
        let mut changes = self.cache.changes();
        while !self.cache.unsynced().is_empty() {
            tokio::select! {
                _ = self.term.ended() => return,
                _ = changes.changed() => {}
            }
        }
        tracing::info!(
            transitions = self.term.id.transitions,
            "supervising checks for this leader term"
        );
        loop {
            let wake = self.pass().await;
            let pause = wake
                .map(|w| Timestamp::now().duration_until(w).unsigned_abs())
                .unwrap_or(Duration::from_secs(300));
            tokio::select! {
                _ = self.term.ended() => return,
                _ = changes.changed() => {
                    // Let a burst of watch events settle into one pass.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// The current state of `namespace/name`, preferring what this term wrote over a cache
    /// that has not caught up with it yet.
    fn state(&mut self, namespace: &str, name: &str) -> Option<Arc<KuberhealthyState>> {
        let key = key_of(namespace, name);
        let cached = self
            .cache
            .states
            .get(&ObjectRef::new(name).within(namespace));
        if let Some((replaced, ours)) = self.written.get(&key) {
            let cache_version = cached.as_ref().and_then(|c| c.resource_version());
            if cache_version == *replaced {
                return Some(ours.clone());
            }
            self.written.remove(&key);
        }
        cached
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.cache.pods.get(&ObjectRef::new(name).within(namespace))
    }

    /// One pass over everything; returns when something next needs attention.
    async fn pass(&mut self) -> Option<Timestamp> {
        let now = Timestamp::now();
        let mut wake: Option<Timestamp> = None;
        let mut soon = |t: Timestamp| wake = Some(wake.map_or(t, |w: Timestamp| w.min(t)));

        // Checks: invalid specs, runs in flight, due starts.
        let mut due: Vec<(Timestamp, Arc<KuberhealthyCheck>)> = Vec::new();
        for check in self.cache.checks.state() {
            let (namespace, name) = (check.namespace().unwrap_or_default(), check.name_any());
            let state = self.state(&namespace, &name);
            let timing = match check.validate() {
                Ok(t) => t,
                Err(errors) => {
                    self.mark_invalid(&check, state.as_deref(), errors).await;
                    continue;
                }
            };
            let created = check.creation_timestamp().map(|t| t.0).unwrap_or(now);
            match schedule::next_start(
                state.as_ref().map(|s| &s.spec),
                timing.run_interval,
                created,
            ) {
                NextStart::InFlight => {
                    if let Some(state) = state
                        && let Some(t) = self.supervise_run(&state, Source::Check(&check)).await
                    {
                        soon(t);
                    }
                }
                NextStart::At(t) if t <= now => due.push((t, check.clone())),
                NextStart::At(t) => soon(t),
            }
        }
        // Oldest due first; the start budget spreads a catch-up.
        due.sort_by_key(|(t, _)| *t);
        for (due_at, check) in due {
            if !self.budget.try_take() {
                soon(schedule::add(Timestamp::now(), self.budget.wait()));
                break;
            }
            self.start_check(&check, due_at).await;
        }

        if let Some(t) = self.supervise_jobs(now).await {
            soon(t);
        }
        self.clean_up(now).await;
        wake
    }

    async fn mark_invalid(
        &mut self,
        check: &KuberhealthyCheck,
        state: Option<&KuberhealthyState>,
        errors: Vec<crate::api::validate::SpecError>,
    ) {
        let key = key_of(&check.namespace().unwrap_or_default(), &check.name_any());
        let messages: Vec<String> = errors
            .iter()
            .map(|e| format!("{key}: invalid check: {e}"))
            .collect();
        if state.is_some_and(|s| s.spec.errors == messages && !s.spec.ok) {
            return;
        }
        tracing::warn!(check = %key, errors = ?messages, "invalid check: it will not run until fixed");
        let spec = transition::invalid(
            state.map(|s| &s.spec),
            messages.clone(),
            &check.namespace().unwrap_or_default(),
            &self.settings.identity,
            Timestamp::now(),
        );
        if self
            .write(
                &check.namespace().unwrap_or_default(),
                &check.name_any(),
                state,
                spec,
            )
            .await
            .is_some()
        {
            let note = messages.join("; ");
            self.event(
                &Source::Check(check),
                EventType::Warning,
                "InvalidSpec",
                "Validate",
                note,
            )
            .await;
        }
    }

    /// Writes a state with the version it was computed from. `None` when the write lost
    /// (conflict: the cache will bring the winner) or failed.
    async fn write(
        &mut self,
        namespace: &str,
        name: &str,
        previous: Option<&KuberhealthyState>,
        spec: KuberhealthyStateSpec,
    ) -> Option<Arc<KuberhealthyState>> {
        if !self.term.is_valid() {
            return None;
        }
        let key = key_of(namespace, name);
        let result = match previous {
            Some(prev) => self.states.replace(prev, spec).await,
            None => self.states.create(namespace, name, spec).await,
        };
        match result {
            Ok(written) => {
                let written = Arc::new(written);
                self.written.insert(
                    key,
                    (previous.and_then(|p| p.resource_version()), written.clone()),
                );
                Some(written)
            }
            Err(WriteError::Conflict) => {
                tracing::debug!(state = %key, "lost a write race; re-reading");
                None
            }
            Err(WriteError::Api(e)) => {
                tracing::warn!(state = %key, error = %e, "cannot write the khstate");
                None
            }
        }
    }

    async fn start_check(&mut self, check: &Arc<KuberhealthyCheck>, due_at: Timestamp) {
        let Ok(timing) = check.validate() else { return };
        let source = Source::Check(check);
        if self.start_run(&source, timing.timeout).await {
            let lateness = Timestamp::now().duration_since(due_at).unsigned_abs();
            self.settings.metrics.run_started_late(lateness);
            tracing::debug!(check = %source.key(), late_by = ?lateness, "run started");
        }
    }

    /// Starts a run: writes its UUID, times, term and pod into the state, and creates the
    /// pod only if that write won.
    async fn start_run(&mut self, source: &Source<'_>, timeout: Duration) -> bool {
        let w = source.workload();
        let previous = self.state(&w.namespace, &w.name);
        let uuid = uuid::Uuid::new_v4().to_string();
        let pod_name = pod::pod_name(&w.name, &uuid);
        let started_at = Timestamp::now();
        let deadline = schedule::add(started_at, timeout);
        let term = self.term.id.clone();
        let spec = transition::started(
            previous.as_ref().map(|s| &s.spec),
            RunStart {
                uuid: &uuid,
                started_at,
                deadline,
                term: &term,
                pod: &pod_name,
                namespace: &w.namespace,
                workload: w.kind,
            },
        );
        let Some(state) = self
            .write(&w.namespace, &w.name, previous.as_deref(), spec)
            .await
        else {
            return false;
        };
        tracing::info!(check = %source.key(), run = %uuid, pod = %pod_name, "starting a run");
        self.settings.metrics.run_started(&w.namespace, &w.name);
        self.create_pod(source, &state).await;
        true
    }

    async fn create_pod(&mut self, source: &Source<'_>, state: &KuberhealthyState) {
        let w = source.workload();
        let (Some(pod_name), Some(deadline)) =
            (state.spec.run_pod.as_deref(), state.spec.run_deadline)
        else {
            return;
        };
        let pod = pod::build(&PodRequest {
            check_name: &w.name,
            namespace: &w.namespace,
            pod_name,
            run_uuid: &state.spec.uuid,
            deadline,
            reporting_url: &self.settings.reporting_url,
            pod_spec: w.pod_spec,
            extra_labels: w.extra_labels,
            extra_annotations: w.extra_annotations,
            owner: w.owner.clone(),
        });
        if !self.term.is_valid() {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &w.namespace);
        let pod_key = key_of(&w.namespace, pod_name);
        match api.create(&PostParams::default(), &pod).await {
            Ok(_) => {
                self.created_pods.insert(pod_key);
                let note = format!("run {} started: checker pod {pod_name}", state.spec.uuid);
                self.event(source, EventType::Normal, "RunStarted", "StartRun", note)
                    .await;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.created_pods.insert(pod_key);
            }
            Err(e) => {
                // The API server's reason fails the run; the next attempt is the next interval.
                let reason = match &e {
                    kube::Error::Api(s) => s.message.clone(),
                    other => other.to_string(),
                };
                let message = format!(
                    "{}: failed to create pod for checker: {reason}",
                    source.key()
                );
                tracing::warn!(check = %source.key(), error = %reason, "cannot create the checker pod");
                self.finish_failed(source, state, message, "PodCreateFailed")
                    .await;
            }
        }
    }

    /// Judges a run in flight; returns when to look again.
    async fn supervise_run(
        &mut self,
        state: &Arc<KuberhealthyState>,
        source: Source<'_>,
    ) -> Option<Timestamp> {
        let (Some(pod_name), Some(deadline)) =
            (state.spec.run_pod.clone(), state.spec.run_deadline)
        else {
            return None;
        };
        let namespace = state.namespace().unwrap_or_default();
        let pod = self.pod(&namespace, &pod_name);
        let key = key_of(&namespace, &state.name_any());
        match verdict::judge(&key, &pod_name, deadline, pod.as_deref(), Timestamp::now()) {
            Verdict::WaitUntil(t) => Some(t),
            Verdict::PodMissing => {
                // An adopted run whose pod was never created (its leader died in between).
                if !self.created_pods.contains(&key_of(&namespace, &pod_name)) {
                    tracing::info!(check = %key, run = %state.spec.uuid, "adopting a run in flight without a pod; creating it");
                    self.create_pod(&source, state).await;
                }
                Some(deadline)
            }
            Verdict::Fail(message) => {
                self.finish_failed(&source, state, message, "RunFailed")
                    .await;
                None
            }
            Verdict::TimedOut(message) => {
                if self
                    .finish_failed(&source, state, message, "RunTimedOut")
                    .await
                    && pod
                        .as_ref()
                        .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
                {
                    self.delete_pod(&namespace, &pod_name, "its run timed out")
                        .await;
                }
                None
            }
        }
    }

    async fn finish_failed(
        &mut self,
        source: &Source<'_>,
        state: &KuberhealthyState,
        message: String,
        reason: &str,
    ) -> bool {
        let w = source.workload();
        let node = state
            .spec
            .run_pod
            .as_deref()
            .and_then(|p| self.pod(&w.namespace, p))
            .and_then(|p| p.spec.as_ref()?.node_name.clone());
        let spec = transition::finished(
            &state.spec,
            false,
            vec![message.clone()],
            Timestamp::now(),
            &self.settings.identity,
            node,
        );
        if self
            .write(&w.namespace, &w.name, Some(state), spec)
            .await
            .is_none()
        {
            return false;
        }
        tracing::warn!(check = %source.key(), run = %state.spec.uuid, "{message}");
        let outcome = if reason == "RunTimedOut" {
            RunOutcome::TimedOut
        } else {
            RunOutcome::Failed
        };
        self.settings
            .metrics
            .run_finished(&w.namespace, &w.name, outcome);
        self.event(source, EventType::Warning, reason, "FinishRun", message)
            .await;
        true
    }

    async fn delete_pod(&self, namespace: &str, name: &str, why: &str) {
        if !self.term.is_valid() {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(pod = %name, namespace = %namespace, "deleted checker pod: {why}")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(pod = %name, namespace = %namespace, error = %e, "cannot delete checker pod")
            }
        }
    }
}

/// The check or job a run belongs to.
enum Source<'a> {
    Check(&'a KuberhealthyCheck),
    Job(&'a KuberhealthyJob),
}

impl Source<'_> {
    fn key(&self) -> String {
        match self {
            Source::Check(c) => key_of(&c.namespace().unwrap_or_default(), &c.name_any()),
            Source::Job(j) => key_of(&j.namespace().unwrap_or_default(), &j.name_any()),
        }
    }

    fn workload(&self) -> RunTarget<'_> {
        match self {
            Source::Check(c) => RunTarget {
                namespace: c.namespace().unwrap_or_default(),
                name: c.name_any(),
                kind: Workload::Check,
                pod_spec: &c.spec.pod_spec,
                extra_labels: c.spec.extra_labels.as_ref(),
                extra_annotations: c.spec.extra_annotations.as_ref(),
                owner: c.controller_owner_ref(&()),
            },
            Source::Job(j) => RunTarget {
                namespace: j.namespace().unwrap_or_default(),
                name: j.name_any(),
                kind: Workload::Job,
                pod_spec: &j.spec.pod_spec,
                extra_labels: j.spec.extra_labels.as_ref(),
                extra_annotations: j.spec.extra_annotations.as_ref(),
                owner: j.controller_owner_ref(&()),
            },
        }
    }

    fn reference(&self) -> k8s_openapi::api::core::v1::ObjectReference {
        match self {
            Source::Check(c) => c.object_ref(&()),
            Source::Job(j) => j.object_ref(&()),
        }
    }
}

impl Supervisor {
    /// Publishes a Kubernetes Event on the check or job.
    async fn event(
        &self,
        source: &Source<'_>,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        // Event notes are limited to 1 KiB by the API server.
        let note: String = note.chars().take(1000).collect();
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &source.reference()).await {
            tracing::debug!(error = %e, "cannot publish an event");
        }
    }
}
