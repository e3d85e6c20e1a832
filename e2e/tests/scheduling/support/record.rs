//! Watches that record, for the whole test, every checker pod of a namespace and every run
//! its khstates and HealthChecks showed. The runs come from each khstate version (the run in
//! flight or just finished) and from its `history`, so a run is known even if the watch skipped
//! a version; a HealthCheck's come from each version of its status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use kuberhealthy_e2e::wait_until;
use tokio::task::JoinHandle;

use super::checks::{StateSpec, Term};
use super::{TIMEOUT, healthchecks, khstates};

/// A checker pod as last seen.
#[derive(Debug, Clone)]
pub struct PodSeen {
    pub uid: String,
    pub name: String,
    pub check: String,
    pub run_id: String,
    pub phase: String,
    /// When its last container terminated.
    pub finished_at: Option<Timestamp>,
    /// Whether the watch saw it deleted (or marked for deletion).
    pub deleted: bool,
    /// The `value`s of the main container's environment.
    pub env: BTreeMap<String, String>,
}

/// A run as the khstates showed it.
#[derive(Debug, Clone, Default)]
pub struct RunSeen {
    pub uuid: String,
    pub check: String,
    pub started_at: Option<Timestamp>,
    pub deadline: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub ok: Option<bool>,
    pub errors: Vec<String>,
    pub term: Option<Term>,
    pub pod: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// By pod UID.
    pub pods: BTreeMap<String, PodSeen>,
    /// By run UUID.
    pub runs: BTreeMap<String, RunSeen>,
    /// Per check: the most checker pods that existed (not deleted) at once.
    pub max_alive: BTreeMap<String, usize>,
    /// khstates that exist now, by name.
    pub states: BTreeSet<String>,
}

impl Recorded {
    /// The runs of `check`, by start time (runs never seen started come last).
    pub fn runs_of(&self, check: &str) -> Vec<RunSeen> {
        let mut runs: Vec<RunSeen> = self
            .runs
            .values()
            .filter(|r| r.check == check)
            .cloned()
            .collect();
        runs.sort_by_key(|r| (r.started_at.is_none(), r.started_at));
        runs
    }

    /// The finished runs of `check`, by start time.
    pub fn finished_runs_of(&self, check: &str) -> Vec<RunSeen> {
        self.runs_of(check)
            .into_iter()
            .filter(|r| r.finished_at.is_some() && r.started_at.is_some())
            .collect()
    }

    pub fn pods_of(&self, check: &str) -> Vec<PodSeen> {
        self.pods
            .values()
            .filter(|p| p.check == check)
            .cloned()
            .collect()
    }

    /// The names of the pods of `check` the watch saw, by run UUID.
    pub fn pods_per_run(&self, check: &str) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pod in self.pods_of(check) {
            out.entry(pod.run_id).or_default().push(pod.name);
        }
        out
    }

    fn apply_pod(&mut self, pod: &Pod, deleted: bool) {
        let status = pod.status.as_ref();
        let finished_at = status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|s| s.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
            .map(|t| t.0)
            .max();
        let env = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.env.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect();
        let (check, run_id) = check_and_run(pod);
        let seen = PodSeen {
            uid: pod.uid().unwrap_or_default(),
            name: pod.name_any(),
            check,
            run_id,
            phase: status
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".into()),
            finished_at,
            deleted: deleted || pod.metadata.deletion_timestamp.is_some(),
            env,
        };
        let check = seen.check.clone();
        self.pods.insert(seen.uid.clone(), seen);
        let alive = self
            .pods
            .values()
            .filter(|p| p.check == check && !p.deleted)
            .count();
        let max = self.max_alive.entry(check).or_default();
        *max = (*max).max(alive);
    }

    fn apply_state(&mut self, object: &DynamicObject) {
        let check = object.name_any();
        self.states.insert(check.clone());
        let Ok(spec) = StateSpec::from_object(object) else {
            return;
        };
        for entry in &spec.history {
            let run = self.run(&entry.uuid, &check);
            run.started_at = Some(entry.started_at);
            run.finished_at = Some(entry.finished_at);
            run.ok = Some(entry.ok);
            if run.errors.is_empty() {
                run.errors = entry.errors.clone();
            }
        }
        if spec.uuid.is_empty() {
            return;
        }
        let finished = spec.run_finished_at;
        let errors = spec.errors();
        let run = self.run(&spec.uuid, &check);
        if spec.run_started_at.is_some() {
            run.started_at = spec.run_started_at;
        }
        run.deadline = spec.run_deadline.or(run.deadline);
        run.term = spec.run_term.clone().or(run.term.take());
        run.pod = spec.run_pod.clone().or(run.pod.take());
        if let Some(finished) = finished {
            run.finished_at = Some(finished);
            run.ok = Some(spec.ok);
            // The spec keeps every error; the history at most five.
            run.errors = errors;
        }
    }

    fn apply_healthcheck(&mut self, object: &DynamicObject) {
        let check = object.name_any();
        let Some(Ok(status)) = object
            .data
            .get("status")
            .map(|s| serde_json::from_value::<RunOfStatus>(s.clone()))
        else {
            return;
        };
        let Some(uuid) = status.run_uuid.clone() else {
            return;
        };
        let in_flight = !status.current_uuid.is_empty();
        let run = self.run(&uuid, &check);
        if status.run_started_at.is_some() {
            run.started_at = status.run_started_at;
        }
        run.deadline = status.run_deadline.or(run.deadline);
        run.term = status.run_term.clone().or(run.term.take());
        run.pod = status.run_pod.clone().or(run.pod.take());
        if !in_flight && let Some(finished) = status.run_finished_at {
            run.finished_at = Some(finished);
            run.ok = Some(status.ok);
            run.errors = status.errors.clone();
        }
    }

    fn run(&mut self, uuid: &str, check: &str) -> &mut RunSeen {
        let run = self.runs.entry(uuid.to_string()).or_default();
        run.uuid = uuid.to_string();
        run.check = check.to_string();
        run
    }
}

/// The check and the run of a checker pod: v2's labels, or a HealthCheck's (v3's).
fn check_and_run(pod: &Pod) -> (String, String) {
    let labels = pod.labels();
    let label = |v2: &str, v3: &str| {
        labels
            .get(v2)
            .or_else(|| labels.get(v3))
            .cloned()
            .unwrap_or_default()
    };
    (
        label("kuberhealthy-check-name", "healthcheck"),
        label("kuberhealthy-run-id", "kh-run-uuid"),
    )
}

/// The names of the listed `pods` of `check`, by run UUID.
pub fn listed_pods_per_run(pods: &[Pod], check: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in pods {
        let (of, run) = check_and_run(pod);
        if of == check {
            out.entry(run).or_default().push(pod.name_any());
        }
    }
    out
}

/// The run fields of a HealthCheck's status (v3's `currentUUID` and this project's run fields).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunOfStatus {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    errors: Vec<String>,
    #[serde(rename = "currentUUID", default)]
    current_uuid: String,
    #[serde(rename = "runUUID", default)]
    run_uuid: Option<String>,
    #[serde(default)]
    run_started_at: Option<Timestamp>,
    #[serde(default)]
    run_deadline: Option<Timestamp>,
    #[serde(default)]
    run_finished_at: Option<Timestamp>,
    #[serde(default)]
    run_term: Option<Term>,
    #[serde(default)]
    run_pod: Option<String>,
}

/// Records pods, khstates and HealthChecks of one namespace until dropped.
pub struct Recorder {
    data: Arc<Mutex<Recorded>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Recorder {
    /// Starts both watches and waits until each has listed what exists.
    pub async fn start(client: Client, namespace: &str) -> Result<Recorder> {
        let data = Arc::new(Mutex::new(Recorded::default()));
        let synced = Arc::new(Mutex::new([false, false, false]));

        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let config = watcher::Config::default().labels("app=kuberhealthy-check");
        let (sink, flags) = (data.clone(), synced.clone());
        let pod_task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher::watcher(pods, config));
            while let Some(event) = stream.next().await {
                let mut data = sink.lock().unwrap();
                match event {
                    Ok(Event::Apply(pod) | Event::InitApply(pod)) => data.apply_pod(&pod, false),
                    Ok(Event::Delete(pod)) => data.apply_pod(&pod, true),
                    Ok(Event::InitDone) => flags.lock().unwrap()[0] = true,
                    Ok(Event::Init) | Err(_) => {}
                }
            }
        });

        let states: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &khstates());
        let (sink, flags) = (data.clone(), synced.clone());
        let state_task = tokio::spawn(async move {
            let config = watcher::Config::default();
            let mut stream = std::pin::pin!(watcher::watcher(states, config));
            while let Some(event) = stream.next().await {
                let mut data = sink.lock().unwrap();
                match event {
                    Ok(Event::Apply(state) | Event::InitApply(state)) => data.apply_state(&state),
                    Ok(Event::Delete(state)) => {
                        data.states.remove(&state.name_any());
                    }
                    Ok(Event::InitDone) => flags.lock().unwrap()[1] = true,
                    Ok(Event::Init) | Err(_) => {}
                }
            }
        });
        let objects: Api<DynamicObject> = Api::namespaced_with(client, namespace, &healthchecks());
        let (sink, flags) = (data.clone(), synced.clone());
        let healthcheck_task = tokio::spawn(async move {
            let config = watcher::Config::default();
            let mut stream = std::pin::pin!(watcher::watcher(objects, config));
            while let Some(event) = stream.next().await {
                let mut data = sink.lock().unwrap();
                match event {
                    Ok(Event::Apply(hc) | Event::InitApply(hc)) => data.apply_healthcheck(&hc),
                    Ok(Event::InitDone) => flags.lock().unwrap()[2] = true,
                    Ok(Event::Delete(_) | Event::Init) | Err(_) => {}
                }
            }
        });
        let recorder = Recorder {
            data,
            tasks: vec![pod_task, state_task, healthcheck_task],
        };
        wait_until("the recorder's watches to sync", TIMEOUT, || async {
            Ok((*synced.lock().unwrap() == [true, true, true]).then_some(()))
        })
        .await?;
        Ok(recorder)
    }

    pub fn snapshot(&self) -> Recorded {
        self.data.lock().unwrap().clone()
    }

    /// Waits until `condition` holds on what was recorded.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: std::time::Duration,
        condition: impl Fn(&Recorded) -> Option<T>,
    ) -> Result<T> {
        let condition = &condition;
        wait_until(
            what,
            timeout,
            || async move { Ok(condition(&self.snapshot())) },
        )
        .await
    }
}
