//! The pod runner: a stand-in kubelet for end-to-end tests.
//!
//! It registers one Node (Ready, heartbeat every 20 s), binds every pending pod of every
//! namespace to it through `pods/binding`, and runs each container's `command` + `args`
//! as a local process group. Conventions (see `e2e/README.md`):
//!
//! - The image is ignored; a container without `command` fails the pod.
//! - An image whose tag is `:missing` never starts: `ErrImagePull`, then
//!   `ImagePullBackOff`, phase stays `Pending`.
//! - Every pod that is not `hostNetwork: true` runs in a network namespace of its own with
//!   an address of the pod network ([`crate::network`]), in `podIP`/`podIPs`; `hostNetwork`
//!   pods share the host's network and get the host-side address, which is every pod's
//!   `hostIP`. A pod's namespace and veth are removed when its containers are gone.
//! - Output goes to `<log dir>/<namespace>/<pod>/<container>.log`; that pod directory is
//!   also the working directory unless the container sets `workingDir`. Given TLS files, it
//!   serves the kubelet's container-log endpoint ([`logs`]) on the host-side address and
//!   registers its port on the Node, so `pods/log` and `kubectl logs` work.
//! - Only `restartPolicy: Never` semantics: a container is never restarted.
//! - A pod with `deletionTimestamp` gets SIGTERM on its process groups, SIGKILL after its
//!   grace period, and is then deleted with grace 0 and its UID as precondition.
//!
//! Everything is driven by a watch on pods; nothing polls.

mod container;
pub mod env;
pub mod logs;
mod node;
mod pod;
pub mod record;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use container::log_path as container_log_path;
use pod::{PodContext, Stop};

use crate::network::NetworkId;
use crate::network::sandbox::{self, IpPool};

/// The node name used when none is given.
pub const DEFAULT_NODE_NAME: &str = "e2e-node";
const HEARTBEAT: Duration = Duration::from_secs(20);
const BIND_ATTEMPTS: u32 = 5;

#[derive(Clone, Debug)]
pub struct PodRunnerConfig {
    pub node_name: String,
    /// Container logs go to `<log_dir>/<namespace>/<pod>/<container>.log`.
    pub log_dir: PathBuf,
    /// The pod network (its bridge exists already, made by the harness).
    pub network: NetworkId,
    /// The TLS of the container-log endpoint; none serves no logs.
    pub kubelet: Option<logs::KubeletTls>,
}

/// Whether an image follows the "cannot be pulled" convention: its tag is `missing`.
pub fn is_missing_image(image: &str) -> bool {
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    let without_digest = last_segment.split('@').next().unwrap_or(last_segment);
    without_digest
        .split_once(':')
        .is_some_and(|(_, tag)| tag == "missing")
}

/// Runs until `shutdown` completes, then kills every container it started.
pub async fn run(
    client: Client,
    config: PodRunnerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    std::fs::create_dir_all(&config.log_dir)?;
    // What an earlier runner on this network left: its pods died with it.
    let network = config.network;
    tokio::task::spawn_blocking(move || sandbox::remove_all(network)).await?;
    let log_server = match &config.kubelet {
        Some(tls) => {
            let listener = tokio::net::TcpListener::bind((network.host_ip(), 0)).await?;
            let port = listener.local_addr()?.port();
            Some((port, logs::serve(listener, tls, config.log_dir.clone())?))
        }
        None => None,
    };
    let kubelet_port = log_server.as_ref().map(|(port, _)| *port);
    node::register(&client, &config.node_name, network.host_ip(), kubelet_port).await?;
    tracing::info!(node = %config.node_name, log_dir = %config.log_dir.display(), bridge = %network.bridge(), subnet = %network.subnet(), ?kubelet_port, "node registered and Ready");

    let mut runner = Runner::new(client.clone(), config);
    let pods = watcher::watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .backoff(retry_backoff());
    let mut pods = std::pin::pin!(pods);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            event = pods.next() => match event {
                Some(Ok(event)) => runner.on_event(event),
                // The backoff wrapper retries; a broken watch is worth a line in the log.
                Some(Err(err)) => tracing::warn!("watching pods: {err}"),
                None => break Err(anyhow::anyhow!("the pod watch ended")),
            },
            Some(uid) = runner.done_rx.recv() => runner.on_pod_done(uid),
            _ = heartbeat.tick() => {
                if let Err(err) = node::heartbeat(&client, &runner.ctx.node_name).await {
                    tracing::warn!("node heartbeat: {err:#}");
                }
            }
        }
    };
    runner.shutdown().await;
    if let Some((_, server)) = log_server {
        server.abort();
    }
    // Each pod task removed its own network; this catches one whose removal failed.
    tokio::task::spawn_blocking(move || sandbox::remove_all(network)).await?;
    result
}

/// Re-watch within 2 s at most: tests stop and restart the local API server and expect the
/// runner back at once (client-go's default would wait up to 30 s).
fn retry_backoff() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_factor(2.0)
        .without_max_times()
        .with_jitter()
        .into()
}

struct PodTask {
    stop: watch::Sender<Option<Stop>>,
    handle: JoinHandle<()>,
}

struct Runner {
    ctx: Arc<PodContext>,
    /// Pods whose task is running, by UID.
    running: HashMap<String, PodTask>,
    /// Pods this runner finished (or found finished); never started again.
    finished: HashSet<String>,
    /// Pods with a bind or a deletion in flight.
    binding: HashSet<String>,
    deleting: HashSet<String>,
    /// UIDs seen since the watch (re)started, to notice pods deleted while it was down.
    listed: HashSet<String>,
    done_tx: mpsc::UnboundedSender<String>,
    done_rx: mpsc::UnboundedReceiver<String>,
}

impl Runner {
    fn new(client: Client, config: PodRunnerConfig) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            ctx: Arc::new(PodContext {
                client,
                node_name: config.node_name,
                log_dir: config.log_dir,
                network: config.network,
                addresses: Arc::new(std::sync::Mutex::new(IpPool::default())),
            }),
            running: HashMap::new(),
            finished: HashSet::new(),
            binding: HashSet::new(),
            deleting: HashSet::new(),
            listed: HashSet::new(),
            done_tx,
            done_rx,
        }
    }

    fn on_event(&mut self, event: Event<Pod>) {
        match event {
            Event::Init => self.listed.clear(),
            Event::InitApply(pod) => {
                self.listed.extend(pod.uid());
                self.on_pod(pod);
            }
            Event::InitDone => {
                for (uid, task) in &self.running {
                    if !self.listed.contains(uid) {
                        task.stop.send_replace(Some(Stop::Gone));
                    }
                }
            }
            Event::Apply(pod) => self.on_pod(pod),
            Event::Delete(pod) => {
                if let Some(task) = pod.uid().and_then(|uid| self.running.get(&uid)) {
                    task.stop.send_replace(Some(Stop::Gone));
                }
            }
        }
    }

    fn on_pod(&mut self, pod: Pod) {
        let Some(uid) = pod.uid() else { return };
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let deleting = pod.metadata.deletion_timestamp.is_some();
        if node.is_empty() {
            // The API server deletes unbound pods at once; nothing to do for those.
            if !deleting && self.binding.insert(uid.clone()) {
                self.spawn_bind(pod, uid);
            }
            return;
        }
        if node != self.ctx.node_name {
            return;
        }
        self.binding.remove(&uid);
        if deleting {
            let grace = Duration::from_secs(
                pod.metadata
                    .deletion_grace_period_seconds
                    .unwrap_or(30)
                    .max(0) as u64,
            );
            match self.running.get(&uid) {
                Some(task) => {
                    task.stop.send_replace(Some(Stop::Delete { grace }));
                }
                None if self.deleting.insert(uid) => {
                    let client = self.ctx.client.clone();
                    tokio::spawn(async move {
                        if let Err(err) = pod::complete_deletion(&client, &pod).await {
                            tracing::warn!(pod = %pod.name_any(), "completing the deletion failed: {err:#}");
                        }
                    });
                }
                None => {}
            }
            return;
        }
        if self.running.contains_key(&uid) || self.finished.contains(&uid) {
            return;
        }
        match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Succeeded" | "Failed") => {
                self.finished.insert(uid);
            }
            None | Some("Pending") => self.start(pod, uid),
            Some(phase) => {
                // Started by an earlier runner whose processes died with it.
                tracing::warn!(pod = %pod.name_any(), phase, "pod was started by a previous pod runner; marking it Failed");
                self.finished.insert(uid);
                let client = self.ctx.client.clone();
                tokio::spawn(async move {
                    if let Err(err) = mark_lost(&client, &pod).await {
                        tracing::warn!(pod = %pod.name_any(), "marking a lost pod Failed: {err:#}");
                    }
                });
            }
        }
    }

    fn start(&mut self, pod: Pod, uid: String) {
        let (stop, stop_rx) = watch::channel(None);
        let ctx = self.ctx.clone();
        let done = self.done_tx.clone();
        let task_uid = uid.clone();
        let handle = tokio::spawn(async move {
            pod::run(ctx, pod, stop_rx).await;
            let _ = done.send(task_uid);
        });
        self.running.insert(uid, PodTask { stop, handle });
    }

    fn on_pod_done(&mut self, uid: String) {
        self.running.remove(&uid);
        self.finished.insert(uid);
    }

    fn spawn_bind(&self, pod: Pod, uid: String) {
        let client = self.ctx.client.clone();
        let node = self.ctx.node_name.clone();
        tokio::spawn(async move {
            let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
            let mut attempt = 1;
            loop {
                match bind(&client, &pod, &uid, &node).await {
                    Ok(()) => {
                        tracing::info!(pod = %key, node = %node, "bound");
                        return;
                    }
                    // Already bound (by us or anyone), or gone: nothing left to do.
                    Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => return,
                    Err(err) if attempt < BIND_ATTEMPTS => {
                        tracing::warn!(pod = %key, attempt, "binding failed, retrying: {err}");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    }
                    Err(err) => {
                        tracing::error!(pod = %key, "binding failed, giving up: {err}");
                        return;
                    }
                }
            }
        });
    }

    async fn shutdown(self) {
        for task in self.running.values() {
            task.stop.send_replace(Some(Stop::Shutdown));
        }
        for (_, task) in self.running {
            let _ = task.handle.await;
        }
    }
}

/// `POST pods/<name>/binding`, as the scheduler does; the UID guards against a new pod
/// that took the same name.
async fn bind(client: &Client, pod: &Pod, uid: &str, node: &str) -> kube::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name_any()),
            uid: Some(uid.to_string()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        &pod.name_any(),
        &PostParams::default(),
        &binding,
    )
    .await?;
    Ok(())
}

async fn mark_lost(client: &Client, pod: &Pod) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": { "uid": pod.uid() },
        "status": {
            "phase": "Failed",
            "reason": "PodRunnerRestarted",
            "message": "the e2e pod runner that ran this pod stopped; its processes are gone",
        }
    });
    api.patch_status(
        &pod.name_any(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_images_are_recognised_by_tag() {
        assert!(is_missing_image("example.invalid/checker:missing"));
        assert!(is_missing_image("registry:5000/team/checker:missing"));
        assert!(is_missing_image("checker:missing@sha256:abc"));
        assert!(!is_missing_image("registry:5000/checker"));
        assert!(!is_missing_image("example.invalid/missing:v1"));
        assert!(!is_missing_image("busybox"));
    }
}
