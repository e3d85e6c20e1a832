//! The life of one pod on the runner's node, from bound to finished or deleted.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use super::container::{self, ContainerProcess, Launch};
use super::env::{self, PodFacts, Sources};
use super::is_missing_image;
use super::record::{self, Entry, Event};
use super::status::{ContainerRecord, PodView, now};
use crate::network::NetworkId;
use crate::network::sandbox::{IpPool, Sandbox};

/// How long `ErrImagePull` shows before it turns into `ImagePullBackOff`.
const IMAGE_PULL_BACKOFF_AFTER: Duration = Duration::from_secs(5);

/// What the runner shares with every pod task.
pub(super) struct PodContext {
    pub client: Client,
    pub node_name: String,
    pub log_dir: PathBuf,
    /// The pod network pods get their namespaces and addresses on.
    pub network: NetworkId,
    pub addresses: Arc<Mutex<IpPool>>,
}

/// Why a pod task must stop early.
#[derive(Clone, Copy, Debug)]
pub(super) enum Stop {
    /// deletionTimestamp is set: kill with this grace, then complete the deletion.
    Delete { grace: Duration },
    /// The object is gone already: kill at once.
    Gone,
    /// The runner is shutting down: kill at once, leave the object alone.
    Shutdown,
}

/// Runs the pod to its end; completes its deletion if it was deleted meanwhile.
pub(super) async fn run(ctx: Arc<PodContext>, pod: Pod, mut stop: watch::Receiver<Option<Stop>>) {
    let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
    let mut lifecycle = Lifecycle::new(&ctx, &pod);
    let outcome = lifecycle.drive(&mut stop).await;
    // The pod's network goes with its processes (removing it runs `ip`: off the workers).
    if let Some(sandbox) = lifecycle.sandbox.take() {
        let _ = tokio::task::spawn_blocking(move || drop(sandbox)).await;
    }
    match outcome {
        Ok(Some(Stop::Delete { .. })) => {
            if let Err(err) = complete_deletion(&ctx.client, &pod).await {
                tracing::warn!(pod = %key, "completing the deletion failed: {err:#}");
            }
        }
        Ok(Some(reason)) => tracing::info!(pod = %key, ?reason, "stopped"),
        Ok(None) => {}
        Err(err) => tracing::warn!(pod = %key, "running the pod failed: {err:#}"),
    }
}

/// Deletes the pod for good (grace 0, only this incarnation), as a kubelet does once its
/// containers are gone.
pub(super) async fn complete_deletion(client: &Client, pod: &Pod) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        Ok(_) => {
            tracing::info!(pod = %format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()), "deletion completed");
            Ok(())
        }
        // Already gone, or a new pod took the name.
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

struct Lifecycle<'a> {
    ctx: &'a PodContext,
    pod: &'a Pod,
    key: String,
    api: Api<Pod>,
    view: PodView,
    /// The pod's own network namespace, once created (never for `hostNetwork` pods).
    sandbox: Option<Sandbox>,
}

impl<'a> Lifecycle<'a> {
    fn new(ctx: &'a PodContext, pod: &'a Pod) -> Self {
        let spec = pod.spec.clone().unwrap_or_default();
        let has_init = spec.init_containers.as_ref().is_some_and(|c| !c.is_empty());
        let first_wait = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let records = |containers: &[Container], reason: &str| {
            containers
                .iter()
                .map(|c| {
                    ContainerRecord::waiting(
                        &c.name,
                        c.image.as_deref().unwrap_or_default(),
                        reason,
                        None,
                    )
                })
                .collect()
        };
        Self {
            ctx,
            pod,
            key: format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()),
            api: Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default()),
            view: PodView {
                phase: "Pending",
                start_time: now(),
                init_containers: records(
                    spec.init_containers.as_deref().unwrap_or_default(),
                    "ContainerCreating",
                ),
                containers: records(&spec.containers, first_wait),
                reason: None,
                message: None,
                pod_ip: None,
                host_ip: ctx.network.host_ip().to_string(),
            },
            sandbox: None,
        }
    }

    fn spec_containers(&self) -> (Vec<Container>, Vec<Container>) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        (spec.init_containers.unwrap_or_default(), spec.containers)
    }

    /// `Ok(Some(stop))` when stopped early (processes already killed), `Ok(None)` when
    /// the pod ran to its end.
    async fn drive(&mut self, stop: &mut watch::Receiver<Option<Stop>>) -> Result<Option<Stop>> {
        let (init, main) = self.spec_containers();
        let policy = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        if policy != "Never" {
            tracing::info!(pod = %self.key, "restartPolicy {policy} is treated as Never: containers are not restarted");
        }
        if init
            .iter()
            .chain(&main)
            .any(|c| c.image.as_deref().is_some_and(is_missing_image))
        {
            return self.fail_image_pull(stop).await.map(Some);
        }
        if let Some(container) = init
            .iter()
            .chain(&main)
            .find(|c| c.command.as_ref().is_none_or(Vec::is_empty))
        {
            return self
                .fail_without_command(&container.name)
                .await
                .map(|()| None);
        }

        if let Err(err) = self.create_network().await {
            return self.fail_network(err).await.map(|()| None);
        }
        let launches = match self.launches(&init, &main).await? {
            Ok(launches) => launches,
            Err((container, message)) => {
                return self.fail_config(&container, message, stop).await.map(Some);
            }
        };
        let (init_launches, main_launches) = launches.split_at(init.len());
        self.write_status().await?;

        for (i, launch) in init_launches.iter().enumerate() {
            let code = match self.run_init_container(i, launch, stop).await? {
                Ok(code) => code,
                Err(stop) => return Ok(Some(stop)),
            };
            if code != 0 {
                self.view.phase = "Failed";
                self.write_status().await?;
                return Ok(None);
            }
        }
        if let Some(stop) = self.run_containers(main_launches, stop).await? {
            return Ok(Some(stop));
        }
        let all_succeeded = self
            .view
            .containers
            .iter()
            .all(|c| c.exit_code() == Some(0));
        self.view.phase = if all_succeeded { "Succeeded" } else { "Failed" };
        tracing::info!(pod = %self.key, phase = self.view.phase, "pod finished");
        self.write_status().await?;
        Ok(None)
    }

    /// Resolves the environment, command and args of every container (init first), or
    /// names the container whose configuration cannot be built and why.
    async fn launches(
        &self,
        init: &[Container],
        main: &[Container],
    ) -> Result<Result<Vec<Launch>, (String, String)>> {
        let all: Vec<&Container> = init.iter().chain(main).collect();
        let namespace = self.pod.namespace().unwrap_or_default();
        let sources = Sources::fetch(&self.ctx.client, &namespace, &all).await?;
        let facts = PodFacts {
            pod: self.pod,
            node_name: &self.ctx.node_name,
            pod_ip: self.view.pod_ip.as_deref().unwrap_or_default(),
            host_ip: &self.view.host_ip,
        };
        let netns = self.sandbox.as_ref().map(Sandbox::netns_path);
        let pod_dir = self.ctx.log_dir.join(&namespace).join(self.pod.name_any());
        std::fs::create_dir_all(&pod_dir)
            .with_context(|| format!("creating {}", pod_dir.display()))?;
        let mut launches = Vec::new();
        for container in all {
            let vars = match env::resolve(container, &facts, &sources) {
                Ok(vars) => vars,
                Err(message) => return Ok(Err((container.name.clone(), message))),
            };
            let lookup = |name: &str| {
                vars.iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            let mut words: Vec<String> = container
                .command
                .iter()
                .flatten()
                .chain(container.args.iter().flatten())
                .map(|w| env::expand(w, lookup))
                .collect();
            let program = words.remove(0);
            launches.push(Launch {
                program,
                args: words,
                env: vars.clone(),
                working_dir: container
                    .working_dir
                    .as_ref()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| pod_dir.clone()),
                log: container::log_path(
                    &self.ctx.log_dir,
                    &namespace,
                    &self.pod.name_any(),
                    &container.name,
                ),
                netns: netns.clone(),
            });
        }
        Ok(Ok(launches))
    }

    /// Gives the pod its address: a network namespace of its own on the pod network, or the
    /// host's network for `hostNetwork: true`, as a kubelet with a CNI plugin does.
    async fn create_network(&mut self) -> Result<()> {
        let host_network = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if host_network {
            self.view.pod_ip = Some(self.view.host_ip.clone());
            return Ok(());
        }
        let (network, addresses) = (self.ctx.network, self.ctx.addresses.clone());
        let sandbox =
            tokio::task::spawn_blocking(move || Sandbox::create(network, &addresses)).await??;
        tracing::info!(pod = %self.key, ip = %sandbox.ip(), netns = %sandbox.netns_path().display(), "pod network ready");
        self.view.pod_ip = Some(sandbox.ip().to_string());
        self.sandbox = Some(sandbox);
        Ok(())
    }

    /// The pod's network could not be built: the pod fails at once, saying why (a kubelet
    /// would retry `FailedCreatePodSandBox`; a test wants the reason now).
    async fn fail_network(&mut self, err: anyhow::Error) -> Result<()> {
        let message = format!("the e2e pod runner could not create the pod's network: {err:#}");
        tracing::warn!(pod = %self.key, "{message}");
        self.fail_before_start("PodSandboxFailed", message, None)
            .await
    }

    async fn run_init_container(
        &mut self,
        index: usize,
        launch: &Launch,
        stop: &mut watch::Receiver<Option<Stop>>,
    ) -> Result<Result<i32, Stop>> {
        let record = &mut self.view.init_containers[index];
        let mut process = match ContainerProcess::start(launch, &self.pod.name_any()) {
            Ok(process) => process,
            Err(err) => {
                record.set_terminated_with_reason(
                    128,
                    "StartError",
                    Some(now()),
                    Some(format!("{err:#}")),
                );
                return Ok(Ok(128));
            }
        };
        tracing::info!(pod = %self.key, container = %record.name, pid = process.pid(), "started init container");
        record.set_running(process.pid(), process.started_at.clone());
        self.write_status().await?;
        let outcome = tokio::select! {
            exit = process.wait() => Ok(exit),
            reason = stopped(stop) => Err(reason),
        };
        let exit = match outcome {
            Ok(exit) => exit,
            Err(stop) => {
                let exit = process.kill(grace(stop)).await;
                tracing::info!(pod = %self.key, code = exit.code, "killed init container");
                return Ok(Err(stop));
            }
        };
        let record = &mut self.view.init_containers[index];
        tracing::info!(pod = %self.key, container = %record.name, code = exit.code, "init container exited");
        record.set_terminated(exit.code, Some(exit.started_at), None);
        Ok(Ok(exit.code))
    }

    /// Starts every main container, reports Running, and follows them until all have
    /// exited (`Ok(None)`) or the pod is stopped (`Ok(Some(_))`, processes killed).
    async fn run_containers(
        &mut self,
        launches: &[Launch],
        stop: &mut watch::Receiver<Option<Stop>>,
    ) -> Result<Option<Stop>> {
        let mut processes: Vec<Option<ContainerProcess>> = Vec::new();
        for (record, launch) in self.view.containers.iter_mut().zip(launches) {
            match ContainerProcess::start(launch, &self.pod.name_any()) {
                Ok(process) => {
                    tracing::info!(pod = %self.key, container = %record.name, pid = process.pid(), "started container");
                    record::append(
                        &self.ctx.log_dir,
                        &Entry::new(self.pod, &record.name, Event::Started, None),
                    );
                    record.set_running(process.pid(), process.started_at.clone());
                    processes.push(Some(process));
                }
                Err(err) => {
                    tracing::info!(pod = %self.key, container = %record.name, "container failed to start: {err:#}");
                    record.set_terminated_with_reason(
                        128,
                        "StartError",
                        Some(now()),
                        Some(format!("{err:#}")),
                    );
                    processes.push(None);
                }
            }
        }
        if processes.iter().any(Option::is_some) {
            self.view.phase = "Running";
        }
        self.write_status().await?;

        let stopped_by = {
            let mut exits: FuturesUnordered<_> = processes
                .iter_mut()
                .enumerate()
                .filter_map(|(i, p)| p.as_mut().map(|p| async move { (i, p.wait().await) }))
                .collect();
            loop {
                if exits.is_empty() {
                    break None;
                }
                tokio::select! {
                    Some((i, exit)) = exits.next() => {
                        let record = &mut self.view.containers[i];
                        tracing::info!(pod = %self.key, container = %record.name, code = exit.code, "container exited");
                        record::append(
                            &self.ctx.log_dir,
                            &Entry::new(self.pod, &record.name, Event::Exited, Some(exit.code)),
                        );
                        record.set_terminated(exit.code, Some(exit.started_at), None);
                        if !exits.is_empty() {
                            self.write_status().await?;
                        }
                    }
                    reason = stopped(stop) => break Some(reason),
                }
            }
        };
        let Some(stop) = stopped_by else {
            return Ok(None);
        };
        let kills = processes.iter_mut().flatten().map(|p| p.kill(grace(stop)));
        let exits = futures::future::join_all(kills).await;
        tracing::info!(pod = %self.key, ?stop, codes = ?exits.iter().map(|e| e.code).collect::<Vec<_>>(), "killed containers");
        Ok(Some(stop))
    }

    async fn fail_image_pull(&mut self, stop: &mut watch::Receiver<Option<Stop>>) -> Result<Stop> {
        let images = |view: &PodView| -> Vec<String> {
            view.init_containers
                .iter()
                .chain(&view.containers)
                .filter(|c| is_missing_image(&c.image))
                .map(|c| c.image.clone())
                .collect()
        };
        tracing::info!(pod = %self.key, images = ?images(&self.view), "image cannot be pulled (tagged :missing)");
        self.set_image_waiting("ErrImagePull", |image| {
            format!("failed to pull image \"{image}\": the e2e pod runner never pulls images tagged :missing")
        });
        self.write_status().await?;
        tokio::select! {
            _ = tokio::time::sleep(IMAGE_PULL_BACKOFF_AFTER) => {}
            reason = stopped(stop) => return Ok(reason),
        }
        self.set_image_waiting("ImagePullBackOff", |image| {
            format!("Back-off pulling image \"{image}\"")
        });
        self.write_status().await?;
        Ok(stopped(stop).await)
    }

    fn set_image_waiting(&mut self, reason: &str, message: impl Fn(&str) -> String) {
        for record in self
            .view
            .init_containers
            .iter_mut()
            .chain(self.view.containers.iter_mut())
        {
            if is_missing_image(&record.image) {
                let text = message(&record.image);
                record.set_waiting(reason, Some(text));
            }
        }
    }

    async fn fail_without_command(&mut self, container: &str) -> Result<()> {
        let message = format!(
            "container \"{container}\" has no command: the e2e pod runner ignores images and runs only \
             command + args, so every container needs a command"
        );
        tracing::info!(pod = %self.key, "{message}");
        self.fail_before_start("ContainerCommandMissing", message, Some(container))
            .await
    }

    /// Fails the pod before any container started: every container terminated with
    /// `StartError` (`culprit`'s with the message too), the pod `Failed` with `reason`.
    async fn fail_before_start(
        &mut self,
        reason: &str,
        message: String,
        culprit: Option<&str>,
    ) -> Result<()> {
        for record in self
            .view
            .init_containers
            .iter_mut()
            .chain(self.view.containers.iter_mut())
        {
            let text = (Some(record.name.as_str()) == culprit).then(|| message.clone());
            record.set_terminated_with_reason(128, "StartError", Some(now()), text);
        }
        self.view.phase = "Failed";
        self.view.reason = Some(reason.into());
        self.view.message = Some(message);
        self.write_status().await
    }

    async fn fail_config(
        &mut self,
        container: &str,
        message: String,
        stop: &mut watch::Receiver<Option<Stop>>,
    ) -> Result<Stop> {
        tracing::info!(pod = %self.key, container, "cannot configure container: {message}");
        for record in self
            .view
            .init_containers
            .iter_mut()
            .chain(self.view.containers.iter_mut())
        {
            if record.name == container {
                record.set_waiting("CreateContainerConfigError", Some(message.clone()));
            }
        }
        self.write_status().await?;
        Ok(stopped(stop).await)
    }

    /// Merge-patches the status. `metadata.uid` in the patch makes it fail rather than
    /// touch a newer pod that took the same name.
    async fn write_status(&self) -> Result<()> {
        let patch = serde_json::json!({
            "metadata": { "uid": self.pod.uid() },
            "status": self.view.to_status(),
        });
        self.api
            .patch_status(
                &self.pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .with_context(|| {
                format!(
                    "writing the status of pod {} (phase {})",
                    self.key, self.view.phase
                )
            })?;
        Ok(())
    }
}

/// Waits until the runner asks this pod to stop; a runner that went away means shutdown.
async fn stopped(stop: &mut watch::Receiver<Option<Stop>>) -> Stop {
    match stop.wait_for(Option::is_some).await {
        Ok(value) => value.unwrap_or(Stop::Shutdown),
        Err(_) => Stop::Shutdown,
    }
}

fn grace(stop: Stop) -> Duration {
    match stop {
        Stop::Delete { grace } => grace,
        Stop::Gone | Stop::Shutdown => Duration::ZERO,
    }
}
