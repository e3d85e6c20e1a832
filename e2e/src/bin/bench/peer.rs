//! The peer: Kuberhealthy v3 (v3.0.13) when the Go module proxy serves it, else v2 (v2.7.1,
//! the version this project replaces), built by `e2e/tools/build-peer.sh` at bench time and
//! run on a control plane of its own (the CRDs of both are `comcast.github.io/v1` and
//! cluster-scoped, so they cannot share one), with its own CRDs and RBAC from its module's
//! `deploy/kuberhealthy.yaml`, the pod runner, and the same checks.
//!
//! How v2 is configured (read from its source, `cmd/kuberhealthy/main.go`, `config.go`,
//! `pkg/masterCalculation`): a config file (`-c`, key `listenAddress`), `POD_NAME`,
//! `POD_NAMESPACE`, `KH_EXTERNAL_REPORTING_URL`; the API server from in-cluster config, else
//! `$HOME/.kube/config`; but its dynamic client is built from the `-c` file itself
//! (`initKubernetesClients`: `clientcmd.BuildConfigFromFlags("", configPath)`), which in a pod
//! falls back to the in-cluster config, so outside one that file is written as a kubeconfig
//! with v2's keys added (`yaml.v2` and client-go both ignore the other's keys). It has no Lease: the master is the alphabetically first pod labelled
//! `app=kuberhealthy` in phase Running in `POD_NAMESPACE`; here a stand-in Pod (bound to a node
//! no runner serves, its status set to Running) makes one replica the master, and a replica
//! whose name is not the first such pod is a follower.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kuberhealthy_e2e::process::ProcessGroup;
use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::{
    ControlPlane, TestCluster, TestContext, binaries, manifests, ports, wait_until,
};
use serde_json::{Value, json};

use crate::apimetrics::Requests;
use crate::world::{self, TIMEOUT, check, check_name, finished_state};

const V3: &str = "v3.0.13";
const V2: &str = "v2.7.1";
/// Why v2's leader cannot be measured idle with checks (the cell; the note explains).
pub const V2_LEADER_NOT_IDLE: &str = "n/a: never idle (see note)";
/// The note that explains it.
pub const V2_LEADER_NOTE: &str = "v2's leader starts every check at once when it becomes master \
    (runCheck in cmd/kuberhealthy/kuberhealthy.go runs a check before its first tick), so with \
    checks it is never idle; its leader is measured with 0 checks only, its follower (a replica \
    whose POD_NAME is not the master) at every stage";
/// Why v2's failover is not measured.
pub const V2_FAILOVER_NOTE: &str = "v2 has no Lease: its master is the alphabetically first pod \
    labelled app=kuberhealthy in phase Running (pkg/masterCalculation), so a crashed replica \
    stays master until a kubelet marks its pod not Running; replicas here are processes without \
    pods, so there is no equivalent handover to time";

#[derive(Debug, Clone)]
enum State {
    Skipped(String),
    Unavailable(String),
    V2 {
        binary: PathBuf,
        module_dir: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct Peer {
    state: State,
    /// The exact error that kept v3 out, if it did.
    v3_error: Option<String>,
}

impl Peer {
    pub fn skipped(reason: &str) -> Peer {
        Peer {
            state: State::Skipped(reason.into()),
            v3_error: None,
        }
    }

    /// Builds v3 (or finds it cached); if that fails, records the exact error and builds v2.
    pub fn build() -> Peer {
        let v3_error = match build_script(V3) {
            Ok(_) => Some(format!(
                "{V3} built, but this bench drives only v2's configuration; see e2e/tools/build-peer.sh"
            )),
            Err(err) => Some(err),
        };
        let state = match build_script(V2) {
            Ok((binary, module_dir)) => State::V2 { binary, module_dir },
            Err(err) => State::Unavailable(format!(
                "v3: {}; v2: {err}",
                v3_error.clone().unwrap_or_default()
            )),
        };
        Peer { state, v3_error }
    }

    /// The column header.
    pub fn column(&self) -> &'static str {
        match self.state {
            State::V2 { .. } => "peer: Kuberhealthy v2.7.1",
            _ => "peer",
        }
    }

    pub fn describe(&self) -> String {
        let v3 = match &self.v3_error {
            Some(err) => format!("Kuberhealthy {V3} is absent: {err}"),
            None => String::new(),
        };
        match &self.state {
            State::Skipped(reason) => reason.clone(),
            State::Unavailable(reason) => format!("absent: {reason}"),
            State::V2 { binary, .. } => format!(
                "{v3}. In its place: Kuberhealthy {V2} ({}), built from the Go module proxy with the machine's Go",
                binary.display()
            ),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "description": self.describe(),
            "v3_error": self.v3_error,
            "column": self.column(),
        })
    }

    /// Why the peer was not measured, or `None` when it runs.
    pub fn absent_reason(&self) -> Option<String> {
        match &self.state {
            State::Skipped(r) => Some(r.clone()),
            State::Unavailable(_) => Some("absent (see the peer line above)".into()),
            State::V2 { .. } => None,
        }
    }

    /// A note explaining the peer's `n/a` cells, when the peer ran.
    pub fn note(&self, text: &str) -> Option<String> {
        matches!(self.state, State::V2 { .. }).then(|| format!("peer: {text}"))
    }

    /// The peer's idle request rate with many checks (master + follower): not measurable.
    pub async fn idle_requests(&self) -> Result<Requests, String> {
        match self.absent_reason() {
            Some(reason) => Err(reason),
            None => Err(V2_LEADER_NOT_IDLE.to_string()),
        }
    }

    /// Why the peer's failover is not measured (the cell; see [`V2_FAILOVER_NOTE`]).
    pub fn failover_absent(&self) -> String {
        self.absent_reason()
            .unwrap_or_else(|| "n/a: no Lease (see note)".into())
    }
}

/// Runs `build-peer.sh VERSION`: the binary and the module directory, or the exact error.
fn build_script(version: &str) -> Result<(PathBuf, PathBuf), String> {
    let script = workspace_root().join("e2e/tools/build-peer.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(version)
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    if output.status.success() && lines.len() >= 2 {
        return Ok((
            PathBuf::from(lines[lines.len() - 2]),
            PathBuf::from(lines[lines.len() - 1]),
        ));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error = stderr
        .lines()
        .filter(|l| !l.starts_with("go: downloading"))
        .collect::<Vec<_>>()
        .join(" ")
        .replace("\\n\\t", " ")
        .replace('\t', " ");
    Err(if error.trim().is_empty() {
        format!("build-peer.sh {version} exited with {}", output.status)
    } else {
        error.trim().to_string()
    })
}

/// A control plane with v2's CRDs and RBAC, the pod runner, and v2 replicas `peer-<i>`.
/// Field order is drop order.
pub struct V2World {
    pub procs: Vec<Option<ProcessGroup>>,
    /// Where each replica listens (the pod network's host side).
    pub addrs: Vec<SocketAddr>,
    pub binary: PathBuf,
    pub home: PathBuf,
    pub kubeconfig: PathBuf,
    pub client: Client,
    pub ctx: TestContext,
    pub cluster: TestCluster,
}

impl V2World {
    pub async fn start(peer: &Peer, name: &str) -> Result<V2World> {
        let State::V2 { binary, module_dir } = &peer.state else {
            bail!("the peer is not available");
        };
        let pod_runner = binaries::sibling("pod-runner")?;
        let plane = ControlPlane::start().await?;
        let cluster = TestCluster::start_on(plane, &pod_runner).await?;
        let ctx = cluster.context(name).await?;
        let client = ctx.client().await?;
        let ns = ctx.namespace().to_string();
        let deploy = std::fs::read_to_string(module_dir.join("deploy/kuberhealthy.yaml"))
            .context("reading v2's deploy/kuberhealthy.yaml")?;
        let objects = manifests::parse(&deploy)?;
        let kind = |o: &kube::api::DynamicObject| {
            o.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default()
        };
        let crds: Vec<String> = objects
            .iter()
            .filter(|o| kind(o) == "CustomResourceDefinition")
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?;
        manifests::install_crds(&client, &crds.join("\n---\n"), TIMEOUT).await?;
        for object in &objects {
            let wanted = matches!(
                (kind(object).as_str(), object.metadata.name.as_deref()),
                (
                    "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding",
                    Some("kuberhealthy")
                )
            );
            if !wanted {
                continue;
            }
            let mut value = serde_json::to_value(object)?;
            if kind(object) == "ServiceAccount" {
                value["metadata"]["namespace"] = json!(ns);
            }
            if let Some(subjects) = value.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subjects {
                    s["namespace"] = json!(ns);
                }
            }
            manifests::apply(&client, &serde_json::from_value(value)?, Some(&ns)).await?;
        }
        let kubeconfig = ctx.service_account_kubeconfig_path("kuberhealthy");
        ctx.endpoint()
            .service_account_kubeconfig(&ns, "kuberhealthy", &kubeconfig)
            .await?;
        world::wait_for_grants(&kubeconfig, &ns, TIMEOUT).await.ok();
        let home = ctx.log_dir().join("peer-home");
        std::fs::create_dir_all(home.join(".kube"))?;
        std::fs::copy(&kubeconfig, home.join(".kube/config"))?;
        Ok(V2World {
            procs: Vec::new(),
            addrs: Vec::new(),
            binary: binary.clone(),
            home,
            kubeconfig,
            client,
            ctx,
            cluster,
        })
    }

    pub fn name(index: usize) -> String {
        format!("peer-{index}")
    }

    pub async fn create_all(
        &self,
        resource: &kube::api::ApiResource,
        objects: Vec<Value>,
    ) -> Result<()> {
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.ctx.namespace(), resource);
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(objects)
            .map(|object| {
                let api = api.clone();
                async move {
                    let object: kube::api::DynamicObject = serde_json::from_value(object)?;
                    api.create(&PostParams::default(), &object).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    pub async fn create_idle_checks(&self, range: std::ops::Range<usize>) -> Result<()> {
        let ns = self.ctx.namespace().to_string();
        let states = range
            .clone()
            .map(|i| finished_state(&check_name(i), &ns))
            .collect();
        self.create_all(&world::khstates(), states).await?;
        let checks = range
            .map(|i| check(&check_name(i), "24h", "1m", &["true"]))
            .collect();
        self.create_all(&world::khchecks(), checks).await
    }

    pub fn spawn(&mut self, index: usize) -> Result<()> {
        let ip = self.ctx.host_ip();
        while self.addrs.len() <= index {
            self.addrs.push((ip, ports::free_port(ip)?).into());
            self.procs.push(None);
        }
        let addr = self.addrs[index];
        let name = Self::name(index);
        let config = self.ctx.log_dir().join(format!("{name}.yaml"));
        // The file is v2's config and a kubeconfig at once (see the module comment).
        let kubeconfig = std::fs::read_to_string(&self.kubeconfig)?;
        std::fs::write(
            &config,
            format!("{kubeconfig}listenAddress: {addr}\nlogLevel: info\n"),
        )?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c")
            .arg(&config)
            .env("POD_NAME", &name)
            .env("POD_NAMESPACE", self.ctx.namespace())
            .env(
                "KH_EXTERNAL_REPORTING_URL",
                format!("http://{addr}/externalCheckStatus"),
            )
            .env("HOME", &self.home)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBECONFIG");
        let log = self.ctx.log_dir().join(format!("{name}.log"));
        self.procs[index] = Some(ProcessGroup::spawn(&name, cmd, &log)?);
        Ok(())
    }

    pub fn pid(&self, index: usize) -> Result<u32> {
        Ok(self.procs[index].as_ref().context("not running")?.pid())
    }

    pub fn stop_all(&mut self) {
        for p in &mut self.procs {
            *p = None;
        }
    }

    /// Waits until replica `index` accepts connections on its port.
    pub async fn wait_listening(&mut self, index: usize) -> Result<()> {
        let addr = self.addrs[index];
        let result = wait_until(
            &format!("{} to listen", Self::name(index)),
            TIMEOUT,
            || async { Ok(tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())) },
        )
        .await;
        if let Err(err) = result {
            let tail = self.procs[index]
                .as_ref()
                .map(|p| p.log_tail(20))
                .unwrap_or_default();
            bail!("{err:#}; last lines of its log:\n{tail}");
        }
        Ok(())
    }

    /// A stand-in Pod `peer-<index>` labelled `app=kuberhealthy` and Running: v2 makes the
    /// replica of that name its master.
    pub async fn make_master(&self, index: usize) -> Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.ctx.namespace());
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": Self::name(index), "labels": {"app": "kuberhealthy"}},
            "spec": {"nodeName": "no-runner-node", "containers": [{"name": "kuberhealthy", "image": "kuberhealthy/kuberhealthy:v2.7.1"}]},
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
        let status = json!({"status": {"phase": "Running", "podIP": "127.0.0.1"}});
        pods.patch_status(
            &Self::name(index),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await?;
        Ok(())
    }

    pub async fn unmake_master(&self, index: usize) -> Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.ctx.namespace());
        pods.delete(
            &Self::name(index),
            &kube::api::DeleteParams::default().grace_period(0),
        )
        .await?;
        Ok(())
    }
}
