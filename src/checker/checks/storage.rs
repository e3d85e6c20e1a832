//! `storage`: the storage check of the Kuberhealthy blog post and registry
//! (ChrisHirsch/kuberhealthy-storage-check), with its `CHECK_STORAGE_*` knobs. Creates a
//! PersistentVolumeClaim of `CHECK_STORAGE_PVC_STORAGE_CLASS_NAME` (the cluster's default
//! class when unset), waits until it is Bound, runs a pod that mounts it, writes a file and
//! reads it back, waits for that pod to succeed, then deletes pod and claim and waits until
//! they are gone, also when a step failed or ran out of time.
//!
//! A class that binds only for a consumer (`volumeBindingMode: WaitForFirstConsumer`) says so
//! in an Event; the pod is then created at once, since only it can get the claim bound.
//! Unlike the original, one pod writes and reads (the original ran an init Job and a check
//! Job, on chosen nodes); the knobs of that design are refused rather than ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Container, Event, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Pod, PodSpec, ResourceRequirements, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::Instant;

use super::Outcome;
use super::knobs::Knobs;
use super::resource_quota::quantity;
use super::workloads::{self, Budget, left};
use crate::api::access::Rule;

pub const RULES: &[Rule] = &[
    Rule {
        group: "",
        resources: &["persistentvolumeclaims"],
        verbs: &["get", "list", "watch", "create", "delete"],
        why: "creating, watching and deleting the check's PersistentVolumeClaim",
    },
    Rule {
        group: "",
        resources: &["pods"],
        verbs: &["get", "list", "watch", "create", "delete"],
        why: "running the pod that writes and reads the volume",
    },
    Rule {
        group: "",
        resources: &["events"],
        verbs: &["list", "watch"],
        why: "why a claim does not bind (no provisioner, no volume, waiting for a consumer)",
    },
];

pub const DEFAULT_IMAGE: &str = "alpine:3.11";
const MOUNT: &str = "/data";
const CONTENT: &str = "storage-check-ok";

/// The knobs of the original check's two-Job design, which this check does not have.
const REFUSED: &[(&str, &str)] = &[
    (
        "CHECK_STORAGE_INIT_IMAGE",
        "one pod of CHECK_STORAGE_IMAGE writes and reads",
    ),
    (
        "CHECK_STORAGE_INIT_JOB_NAME",
        "one pod, CHECK_STORAGE_JOB_NAME, writes and reads",
    ),
    ("CHECK_STORAGE_INIT_COMMAND", "the pod's command is fixed"),
    (
        "CHECK_STORAGE_INIT_COMMAND_ARGS",
        "the pod's command is fixed",
    ),
    ("CHECK_STORAGE_COMMAND", "the pod's command is fixed"),
    ("CHECK_STORAGE_COMMAND_ARGS", "the pod's command is fixed"),
    (
        "CHECK_STORAGE_ALLOWED_CHECK_NODES",
        "the scheduler picks the pod's node",
    ),
    (
        "CHECK_STORAGE_IGNORED_CHECK_NODES",
        "the scheduler picks the pod's node",
    ),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub namespace: String,
    pub claim: String,
    pub pod: String,
    pub size: String,
    /// `None`: the cluster's default StorageClass.
    pub storage_class: Option<String>,
    pub image: String,
    pub service_account: String,
    pub priority_class: Option<String>,
    /// The pod's CPU and memory requests, as set (none by default).
    pub requests: BTreeMap<String, String>,
    /// The pod's CPU and memory limits, as set (none by default).
    pub limits: BTreeMap<String, String>,
    /// Kept back from the time left for deleting what the check created.
    pub grace: Duration,
}

impl Config {
    pub fn read(knobs: &mut Knobs) -> Config {
        for (name, instead) in REFUSED {
            workloads::unsupported(knobs, name, instead);
        }
        let size = knobs.string("CHECK_STORAGE_PVC_SIZE", "1G");
        if quantity(&size).is_none_or(|q| q <= 0.0) {
            knobs.invalid(format!(
                "CHECK_STORAGE_PVC_SIZE is {size:?}, expected a storage size such as 1G or 100Mi"
            ));
        }
        Config {
            namespace: workloads::namespace(knobs, Some("CHECK_NAMESPACE")),
            claim: workloads::object_name(knobs, "CHECK_STORAGE_NAME", "storage-check-pvc"),
            pod: workloads::object_name(knobs, "CHECK_STORAGE_JOB_NAME", "storage-check-job"),
            size,
            storage_class: knobs.raw("CHECK_STORAGE_PVC_STORAGE_CLASS_NAME"),
            image: knobs.string("CHECK_STORAGE_IMAGE", DEFAULT_IMAGE),
            service_account: knobs.string("CHECK_SERVICE_ACCOUNT", "default"),
            priority_class: knobs.raw("PRIORITY_CLASS_NAME"),
            requests: amounts(knobs, "CHECK_POD_CPU_REQUEST", "CHECK_POD_MEM_REQUEST"),
            limits: amounts(knobs, "CHECK_POD_CPU_LIMIT", "CHECK_POD_MEM_LIMIT"),
            grace: workloads::grace_period(knobs, Duration::from_secs(30)),
        }
    }

    fn what_claim(&self) -> String {
        format!(
            "PersistentVolumeClaim {} in namespace {}",
            self.claim, self.namespace
        )
    }

    fn what_pod(&self) -> String {
        format!("pod {} in namespace {}", self.pod, self.namespace)
    }
}

/// The CPU and memory amounts that are set, by resource name (v2's bare numbers are
/// millicores and mebibytes).
fn amounts(knobs: &mut Knobs, cpu: &str, memory: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if knobs.raw(cpu).is_some() {
        out.insert("cpu".to_string(), workloads::cpu(knobs, cpu, 0));
    }
    if knobs.raw(memory).is_some() {
        out.insert("memory".to_string(), workloads::memory(knobs, memory, 0));
    }
    out
}

/// The claim: `size`, ReadWriteOnce, of the class (or the default one).
pub fn claim(config: &Config) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(config.claim.clone()),
            namespace: Some(config.namespace.clone()),
            labels: Some([("source".to_string(), "kuberhealthy".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: config.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_string(), Quantity(config.size.clone()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pod that writes a file to the volume and reads it back; it succeeds only if both work.
pub fn pod(config: &Config) -> Pod {
    let file = format!("{MOUNT}/storage-check");
    Pod {
        metadata: ObjectMeta {
            name: Some(config.pod.clone()),
            namespace: Some(config.namespace.clone()),
            labels: Some([("source".to_string(), "kuberhealthy".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            service_account_name: Some(config.service_account.clone()),
            priority_class_name: config.priority_class.clone(),
            termination_grace_period_seconds: Some(1),
            containers: vec![Container {
                name: "write-read".into(),
                image: Some(config.image.clone()),
                command: Some(vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    format!("echo {CONTENT} > {file} && grep -qx {CONTENT} {file}"),
                ]),
                resources: (!config.requests.is_empty() || !config.limits.is_empty()).then(|| {
                    let quantities = |amounts: &BTreeMap<String, String>| {
                        (!amounts.is_empty()).then(|| {
                            amounts
                                .iter()
                                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                                .collect()
                        })
                    };
                    ResourceRequirements {
                        requests: quantities(&config.requests),
                        limits: quantities(&config.limits),
                        ..Default::default()
                    }
                }),
                volume_mounts: Some(vec![VolumeMount {
                    name: "data".into(),
                    mount_path: MOUNT.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "data".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: config.claim.clone(),
                    read_only: Some(false),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An Event about the claim: its reason and message.
pub type Note = (String, String);

/// Where the claim stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimState {
    Bound,
    /// Its class binds only once a pod uses it.
    AwaitsConsumer,
    Pending,
    /// Its volume is gone.
    Lost,
}

pub fn claim_state(phase: Option<&str>, notes: &[Note]) -> ClaimState {
    match phase {
        Some("Bound") => ClaimState::Bound,
        Some("Lost") => ClaimState::Lost,
        _ if notes
            .iter()
            .any(|(reason, _)| reason == "WaitForFirstConsumer") =>
        {
            ClaimState::AwaitsConsumer
        }
        _ => ClaimState::Pending,
    }
}

/// Why a claim is not Bound: its phase and the latest message of each reason its Events gave,
/// in the order the reasons first appeared.
pub fn describe_claim(what: &str, phase: Option<&str>, notes: &[Note]) -> String {
    let mut reasons: Vec<(&str, &str)> = Vec::new();
    for (reason, message) in notes {
        match reasons.iter_mut().find(|(r, _)| r == reason) {
            Some(entry) => entry.1 = message,
            None => reasons.push((reason, message)),
        }
    }
    let phase = phase.unwrap_or("without a phase");
    let mut text = format!("{what} is {phase}, not Bound");
    if reasons.is_empty() {
        text.push_str(" (no Events about it)");
    }
    for (reason, message) in reasons {
        text.push_str(&format!("; {reason}: {message}"));
    }
    text
}

/// How the write-read pod ended, if it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodEnd {
    Succeeded,
    Failed(String),
    Running(String),
}

pub fn pod_end(pod: &Pod) -> PodEnd {
    let status = pod.status.clone().unwrap_or_default();
    match status.phase.as_deref() {
        Some("Succeeded") => PodEnd::Succeeded,
        Some("Failed") => {
            let terminated = status
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
                .map(|t| {
                    let mut text = format!("exit code {}", t.exit_code);
                    if let Some(r) = &t.reason {
                        text.push_str(&format!(", {r}"));
                    }
                    if let Some(m) = t.message.as_ref().filter(|m| !m.trim().is_empty()) {
                        text.push_str(&format!(": {}", m.trim()));
                    }
                    text
                })
                .next();
            PodEnd::Failed(terminated.unwrap_or_else(|| workloads::describe_pod(pod)))
        }
        _ => PodEnd::Running(workloads::describe_pod(pod)),
    }
}

pub async fn run(mut knobs: Knobs, time_left: Duration) -> Outcome {
    let config = Config::read(&mut knobs);
    knobs.finish()?;
    check(super::kube_client().await?, &config, time_left).await
}

/// Exercises the cluster within `time_left`, then cleans up within what is left of it.
pub async fn check(client: kube::Client, config: &Config, time_left: Duration) -> Outcome {
    let budget = Budget::new(Instant::now(), time_left, config.grace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &config.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &config.namespace);
    let events: Api<Event> = Api::namespaced(client, &config.namespace);
    let work = exercise(&claims, &pods, &events, config, budget.steps);
    let cleanup = async {
        remove(&claims, &pods, config, budget.cleanup)
            .await
            .err()
            .into_iter()
            .collect()
    };
    let what = format!("{} and {}", config.what_pod(), config.what_claim());
    workloads::run_then_clean_up(
        "storage",
        &budget,
        time_left,
        config.grace,
        work,
        cleanup,
        what,
    )
    .await
}

/// Deletes the pod, then the claim (which stays while a pod uses it), waiting for each.
async fn remove(
    claims: &Api<PersistentVolumeClaim>,
    pods: &Api<Pod>,
    config: &Config,
    until: Instant,
) -> Result<(), String> {
    workloads::delete_and_wait(pods, &config.pod, &config.what_pod(), until).await?;
    workloads::delete_and_wait(claims, &config.claim, &config.what_claim(), until).await
}

async fn exercise(
    claims: &Api<PersistentVolumeClaim>,
    pods: &Api<Pod>,
    events: &Api<Event>,
    config: &Config,
    until: Instant,
) -> Outcome {
    let one = |e: String| vec![e];
    // A previous run cut short may have left them behind.
    remove(claims, pods, config, until).await.map_err(one)?;
    let pp = PostParams::default();
    let created = claims.create(&pp, &claim(config)).await.map_err(|e| {
        one(format!(
            "cannot create {}: {}",
            config.what_claim(),
            super::describe(&e)
        ))
    })?;
    let uid = created.metadata.uid.clone().unwrap_or_default();
    wait_claim(claims, events, config, &uid, until)
        .await
        .map_err(one)?;
    pods.create(&pp, &pod(config)).await.map_err(|e| {
        one(format!(
            "cannot create {}: {}",
            config.what_pod(),
            super::describe(&e)
        ))
    })?;
    wait_pod(claims, pods, events, config, &uid, until).await
}

enum Seen {
    Claim(Option<PersistentVolumeClaim>),
    Note(Event),
}

/// The Events about the claim with this UID (an earlier claim of the same name has another).
fn notes_of(events: &[Event], uid: &str) -> Vec<Note> {
    events
        .iter()
        .filter(|e| e.involved_object.uid.as_deref() == Some(uid))
        .map(|e| {
            (
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn events_config(config: &Config) -> watcher::Config {
    watcher::Config::default().fields(&format!(
        "involvedObject.kind=PersistentVolumeClaim,involvedObject.name={}",
        config.claim
    ))
}

/// Watches the claim and its Events until it is Bound (or awaits a consumer), or time runs out.
async fn wait_claim(
    claims: &Api<PersistentVolumeClaim>,
    events: &Api<Event>,
    config: &Config,
    uid: &str,
    until: Instant,
) -> Result<(), String> {
    let claim_updates =
        workloads::object_updates(claims.clone(), &config.claim).map(|r| r.map(Seen::Claim));
    let notes = watcher(events.clone(), events_config(config))
        .default_backoff()
        .applied_objects()
        .map(|r| r.map(Seen::Note));
    let mut seen = std::pin::pin!(futures::stream::select(claim_updates, notes));
    let mut phase: Option<String> = None;
    let mut received: Vec<Event> = Vec::new();
    let mut watch_error = None;
    let wait = async {
        while let Some(update) = seen.next().await {
            match update {
                Ok(Seen::Claim(Some(c))) => phase = c.status.and_then(|s| s.phase),
                Ok(Seen::Claim(None)) => {
                    return Err("was deleted while the check waited for it".to_string());
                }
                Ok(Seen::Note(e)) => received.push(e),
                Err(e) => {
                    watch_error = Some(e.to_string());
                    continue;
                }
            }
            match claim_state(phase.as_deref(), &notes_of(&received, uid)) {
                ClaimState::Bound | ClaimState::AwaitsConsumer => return Ok(()),
                ClaimState::Lost => return Err("lost its volume".to_string()),
                ClaimState::Pending => {}
            }
        }
        Err("could not be watched".to_string())
    };
    match tokio::time::timeout(left(until), wait).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(format!(
            "creating the volume: {} {why}",
            config.what_claim()
        )),
        Err(_) => Err(workloads::with_watch_error(
            format!(
                "creating the volume: {}",
                describe_claim(
                    &config.what_claim(),
                    phase.as_deref(),
                    &notes_of(&received, uid)
                )
            ),
            &watch_error,
        )),
    }
}

/// Watches the write-read pod until it ends or time runs out; the error says how it ended,
/// or what it and the claim showed.
async fn wait_pod(
    claims: &Api<PersistentVolumeClaim>,
    pods: &Api<Pod>,
    events: &Api<Event>,
    config: &Config,
    uid: &str,
    until: Instant,
) -> Outcome {
    let mut last = PodEnd::Running("not seen yet".into());
    let mut watch_error = None;
    let mut updates = std::pin::pin!(workloads::object_updates(pods.clone(), &config.pod));
    let wait = async {
        while let Some(update) = updates.next().await {
            match update {
                Ok(Some(p)) => last = pod_end(&p),
                Ok(None) => last = PodEnd::Failed("it was deleted".into()),
                Err(e) => {
                    watch_error = Some(e.to_string());
                    continue;
                }
            }
            if !matches!(last, PodEnd::Running(_)) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(left(until), wait).await;
    let what = format!(
        "writing and reading a file on the volume: {} mounting {}",
        config.what_pod(),
        config.claim
    );
    match last {
        PodEnd::Succeeded => Ok(()),
        PodEnd::Failed(why) => Err(vec![format!("{what} failed: {why}")]),
        PodEnd::Running(now) => {
            let mut errors = vec![workloads::with_watch_error(
                format!("{what} did not finish in time: {now}"),
                &watch_error,
            )];
            // A claim that waited for its consumer may still be unbound: say why.
            if let Ok(c) = claims.get(&config.claim).await {
                let phase = c.status.and_then(|s| s.phase);
                if phase.as_deref() != Some("Bound") {
                    let lp = ListParams::default().fields(&format!(
                        "involvedObject.kind=PersistentVolumeClaim,involvedObject.name={}",
                        config.claim
                    ));
                    let listed = events.list(&lp).await.map(|l| l.items).unwrap_or_default();
                    errors.push(describe_claim(
                        &config.what_claim(),
                        phase.as_deref(),
                        &notes_of(&listed, uid),
                    ));
                }
            }
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut k = Knobs::from_pairs(pairs);
        let c = Config::read(&mut k);
        k.finish().unwrap();
        c
    }

    fn errors(pairs: &[(&str, &str)]) -> Vec<String> {
        let mut k = Knobs::from_pairs(pairs);
        Config::read(&mut k);
        k.finish().unwrap_err()
    }

    fn note(reason: &str, message: &str) -> Note {
        (reason.into(), message.into())
    }

    #[test]
    fn the_storage_checks_defaults() {
        let c = config(&[("KH_POD_NAMESPACE", "kh")]);
        assert_eq!(c.namespace, "kh");
        assert_eq!(c.claim, "storage-check-pvc");
        assert_eq!(c.pod, "storage-check-job");
        assert_eq!(c.size, "1G");
        assert_eq!(c.storage_class, None);
        assert_eq!(c.image, DEFAULT_IMAGE);
        assert_eq!(c.service_account, "default");
        assert_eq!(c.priority_class, None);
        assert!(c.requests.is_empty() && c.limits.is_empty());
        assert_eq!(c.grace, Duration::from_secs(30));
    }

    #[test]
    fn every_bad_knob_is_named() {
        assert_eq!(
            errors(&[("CHECK_STORAGE_PVC_SIZE", "big")]),
            ["CHECK_STORAGE_PVC_SIZE is \"big\", expected a storage size such as 1G or 100Mi"]
        );
        assert_eq!(errors(&[("CHECK_STORAGE_PVC_SIZE", "0")]).len(), 1);
        assert_eq!(
            errors(&[("CHECK_STORAGE_INIT_IMAGE", "bitnami/nginx:1.19")]),
            [
                "CHECK_STORAGE_INIT_IMAGE is \"bitnami/nginx:1.19\", but this check does not support it: one pod of CHECK_STORAGE_IMAGE writes and reads; unset it"
            ]
        );
        for (name, _) in REFUSED {
            assert_eq!(errors(&[(name, "x")]).len(), 1, "{name}");
        }
        assert_eq!(
            errors(&[("CHECK_POD_MEM_LIMIT", "plenty")]),
            [
                "CHECK_POD_MEM_LIMIT is \"plenty\", expected an amount such as 20 (mebibytes) or 64Mi"
            ]
        );
        assert_eq!(errors(&[("CHECK_POD_CPU_REQUEST", "-5")]).len(), 1);
        assert_eq!(errors(&[("CHECK_STORAGE_NAME", "PVC")]).len(), 1);
        assert_eq!(errors(&[("CHECK_STORAGE_JOB_NAME", "job_1")]).len(), 1);
        assert_eq!(errors(&[("SHUTDOWN_GRACE_PERIOD", "x")]).len(), 1);
    }

    #[test]
    fn the_claim_and_pod_carry_the_knobs() {
        let c = config(&[
            ("CHECK_STORAGE_PVC_STORAGE_CLASS_NAME", "fast"),
            ("CHECK_STORAGE_PVC_SIZE", "100Mi"),
            ("CHECK_STORAGE_IMAGE", "busybox:1.36"),
        ]);
        let spec = claim(&c).spec.unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"].0,
            "100Mi"
        );
        assert_eq!(claim(&config(&[])).spec.unwrap().storage_class_name, None);
        assert_eq!(pod(&c).spec.unwrap().containers[0].resources, None);
        let c = config(&[
            ("CHECK_STORAGE_IMAGE", "busybox:1.36"),
            ("CHECK_POD_CPU_REQUEST", "15"),
            ("CHECK_POD_MEM_LIMIT", "64Mi"),
            ("PRIORITY_CLASS_NAME", "low"),
        ]);
        let pod = pod(&c).spec.unwrap();
        let resources = pod.containers[0].resources.clone().unwrap();
        assert_eq!(resources.requests.unwrap()["cpu"].0, "15m");
        assert_eq!(resources.limits.unwrap()["memory"].0, "64Mi");
        assert_eq!(pod.priority_class_name.as_deref(), Some("low"));
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.containers[0].image.as_deref(), Some("busybox:1.36"));
        assert_eq!(
            pod.containers[0].command.as_ref().unwrap()[2],
            "echo storage-check-ok > /data/storage-check && grep -qx storage-check-ok /data/storage-check"
        );
        let volume = &pod.volumes.unwrap()[0];
        assert_eq!(
            volume.persistent_volume_claim.as_ref().unwrap().claim_name,
            "storage-check-pvc"
        );
    }

    #[test]
    fn claim_states() {
        assert_eq!(claim_state(Some("Bound"), &[]), ClaimState::Bound);
        assert_eq!(claim_state(Some("Lost"), &[]), ClaimState::Lost);
        assert_eq!(claim_state(Some("Pending"), &[]), ClaimState::Pending);
        assert_eq!(claim_state(None, &[]), ClaimState::Pending);
        let waiting = [note(
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        )];
        assert_eq!(
            claim_state(Some("Pending"), &waiting),
            ClaimState::AwaitsConsumer
        );
        assert_eq!(claim_state(Some("Bound"), &waiting), ClaimState::Bound);
    }

    #[test]
    fn an_unbound_claim_is_described_with_its_events() {
        let notes = [
            note(
                "ExternalProvisioning",
                "waiting for a volume to be created by ebs.csi.aws.com",
            ),
            note(
                "ProvisioningFailed",
                "storageclass.storage.k8s.io \"fast\" not found",
            ),
            note(
                "ExternalProvisioning",
                "waiting for a volume to be created by ebs.csi.aws.com, again",
            ),
        ];
        assert_eq!(
            describe_claim(
                "PersistentVolumeClaim p in namespace kh",
                Some("Pending"),
                &notes
            ),
            "PersistentVolumeClaim p in namespace kh is Pending, not Bound; ExternalProvisioning: waiting for a volume to be created by ebs.csi.aws.com, again; ProvisioningFailed: storageclass.storage.k8s.io \"fast\" not found"
        );
        assert_eq!(
            describe_claim("PersistentVolumeClaim p", None, &[]),
            "PersistentVolumeClaim p is without a phase, not Bound (no Events about it)"
        );
    }

    fn ended(phase: &str, exit: Option<(i32, &str)>) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: exit.map(|(code, message)| {
                    vec![ContainerStatus {
                        name: "write-read".into(),
                        state: Some(ContainerState {
                            terminated: Some(ContainerStateTerminated {
                                exit_code: code,
                                reason: Some("Error".into()),
                                message: Some(message.into()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn how_the_pod_ended() {
        assert_eq!(pod_end(&ended("Succeeded", None)), PodEnd::Succeeded);
        assert_eq!(
            pod_end(&ended("Failed", Some((1, "read-only file system\n")))),
            PodEnd::Failed("exit code 1, Error: read-only file system".into())
        );
        assert_eq!(
            pod_end(&ended("Failed", None)),
            PodEnd::Failed("Failed".into())
        );
        assert_eq!(
            pod_end(&ended("Pending", None)),
            PodEnd::Running("Pending".into())
        );
    }
}
