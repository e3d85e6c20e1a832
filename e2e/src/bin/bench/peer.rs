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
use std::time::Duration;

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

use crate::apicost::{RUN_INTERVAL, RunCost};
use crate::apimetrics::{self, Requests};
use crate::footprint::{Idle, idle_windows};
use crate::load::LoadResult;
use crate::world::{self, REPORT_OK, TIMEOUT, check, check_name, finished_state};
use crate::{Plan, procfs, serving};

const V3: &str = "v3.0.13";
/// How long one status request of the peer may take before its serving is called absent.
const PROBE: Duration = Duration::from_secs(30);
const V2: &str = "v2.7.1";
/// Why v2's leader cannot be measured idle with checks (the cell; the note explains).
const V2_LEADER_NOT_IDLE: &str = "n/a: never idle (see note)";
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

/// One stage of the peer's footprint.
#[derive(Debug, Clone)]
pub struct PeerStage {
    pub leader: Result<Idle, String>,
    pub follower: Result<Idle, String>,
}

impl PeerStage {
    fn absent(reason: &str) -> PeerStage {
        PeerStage {
            leader: Err(reason.to_string()),
            follower: Err(reason.to_string()),
        }
    }

    pub fn to_json(&self) -> Value {
        let one = |r: &Result<Idle, String>| match r {
            Ok(i) => json!({"rss_mib": i.rss_mib, "hwm_mib": i.hwm_mib, "cpu_pct": i.cpu_pct}),
            Err(e) => json!({"absent": e}),
        };
        json!({"leader": one(&self.leader), "follower": one(&self.follower)})
    }
}

/// `GET /json` and `/metrics` figures of the peer, or why they are absent.
#[derive(Debug, Clone, Copy)]
pub struct ServingFigure {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
}

#[derive(Debug, Clone)]
pub struct PeerServing {
    follower: Result<Vec<(String, usize, ServingFigure, Value)>, String>,
}

impl PeerServing {
    pub fn get(&self, role: &str, path: &str, c: usize) -> Result<ServingFigure, String> {
        if role == "leader" {
            return Err(match &self.follower {
                Err(reason) => reason.clone(),
                Ok(_) => V2_LEADER_NOT_IDLE.to_string(),
            });
        }
        match &self.follower {
            Err(reason) => Err(reason.clone()),
            Ok(figures) => figures
                .iter()
                .find(|(p, cc, _, _)| p == path && *cc == c)
                .map(|(_, _, f, _)| *f)
                .ok_or_else(|| "not measured".to_string()),
        }
    }

    pub fn to_json(&self) -> Value {
        match &self.follower {
            Err(reason) => json!({"absent": reason}),
            Ok(figures) => Value::Object(
                figures
                    .iter()
                    .map(|(p, c, f, raw)| {
                        (
                            format!("follower {p} c={c}"),
                            json!({"rps_median": f.rps, "p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "errors": f.errors, "trials": raw}),
                        )
                    })
                    .collect(),
            ),
        }
    }
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

    fn absent_reason(&self) -> Option<String> {
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

    /// The peer's footprint at each of `plan.footprint_counts`.
    pub async fn footprint(&self, plan: &Plan) -> Vec<PeerStage> {
        if let Some(reason) = self.absent_reason() {
            return plan
                .footprint_counts
                .iter()
                .map(|_| PeerStage::absent(&reason))
                .collect();
        }
        match self.footprint_v2(plan).await {
            Ok(stages) => stages,
            Err(err) => {
                let reason = format!("failed: {err:#}");
                plan.footprint_counts
                    .iter()
                    .map(|_| PeerStage::absent(&reason))
                    .collect()
            }
        }
    }

    async fn footprint_v2(&self, plan: &Plan) -> Result<Vec<PeerStage>> {
        let mut world = V2World::start(self, "peer-footprint").await?;
        let mut stages = Vec::new();
        let mut created = 0;
        for &count in &plan.footprint_counts {
            world.create_idle_checks(created..count).await?;
            created = count;
            let mut stage = PeerStage::absent(V2_LEADER_NOT_IDLE);
            // The follower alone: no stand-in pod names it master.
            world.spawn(1)?;
            world.wait_listening(1).await?;
            if count == 0 {
                world.make_master(0).await?;
                world.spawn(0)?;
                world.wait_listening(0).await?;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            let mut pids = vec![world.pid(1)?];
            if count == 0 {
                pids.push(world.pid(0)?);
            }
            let (cpu, _) = idle_windows_plane(&world, &pids, plan).await?;
            let idle = |i: usize| -> Result<Idle> {
                let mem = procfs::memory(pids[i])?;
                Ok(Idle {
                    rss_mib: mem.rss_mib,
                    hwm_mib: mem.hwm_mib,
                    cpu_pct: crate::stats::median(&cpu[i]),
                })
            };
            stage.follower = Ok(idle(0)?);
            if count == 0 {
                stage.leader = Ok(idle(1)?);
                world.unmake_master(0).await?;
            }
            world.stop_all();
            stages.push(stage);
        }
        Ok(stages)
    }

    /// The peer's follower serving `/json` and `/metrics` with `n` checks.
    pub async fn serving(&self, n: usize, plan: &Plan) -> PeerServing {
        if let Some(reason) = self.absent_reason() {
            return PeerServing {
                follower: Err(reason),
            };
        }
        let follower = async {
            let mut world = V2World::start(self, "peer-serving").await?;
            world.create_idle_checks(0..n).await?;
            world.spawn(1)?;
            world.wait_listening(1).await?;
            let addr = world.addrs[1];
            // v2 GETs every khcheck for each status request, throttled by client-go to 5
            // requests per second: first see whether one request answers within the probe.
            for path in serving::PATHS {
                let probe = crate::load::run(addr, path, 1, 1, PROBE).await;
                if probe.latencies_ms.is_empty() {
                    bail!(
                        "one GET {path} with {n} checks got no answer within {} s ({})",
                        PROBE.as_secs(),
                        probe.first_error.unwrap_or_default()
                    );
                }
            }
            let mut figures = Vec::new();
            for c in serving::CONCURRENCIES {
                for path in serving::PATHS {
                    let trials: Vec<LoadResult> = serving::measure(addr, path, c, plan).await;
                    figures.push((
                        path.to_string(),
                        c,
                        serving::figure(&trials),
                        serving::trials_json(&trials),
                    ));
                }
            }
            anyhow::Ok(figures)
        }
        .await
        .map_err(|e| format!("{e:#}"));
        PeerServing { follower }
    }

    /// The peer's requests per run: a master and a follower, the same checks as ours.
    pub async fn apicost(&self, plan: &Plan) -> Result<RunCost, String> {
        if let Some(reason) = self.absent_reason() {
            return Err(reason);
        }
        async {
            let mut world = V2World::start(self, "peer-apicost").await?;
            let checks = (0..plan.apicost_checks)
                .map(|i| check(&check_name(i), RUN_INTERVAL, "30s", REPORT_OK))
                .collect();
            world.create_all(&world::khchecks(), checks).await?;
            world.make_master(0).await?;
            world.spawn(0)?;
            world.spawn(1)?;
            // Every check reported twice: two results written after the master started.
            let states: Api<kube::api::DynamicObject> = Api::namespaced_with(
                world.client.clone(),
                world.ctx.namespace(),
                &world::khstates(),
            );
            let start = k8s_openapi::jiff::Timestamp::now();
            let wait_for_results = || async {
                let list = states.list(&Default::default()).await?;
                let fresh = list
                    .items
                    .iter()
                    .filter(|s| {
                        s.data["spec"]["LastRun"]
                            .as_str()
                            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                            .is_some_and(|t| t > start)
                    })
                    .count();
                Ok((fresh >= plan.apicost_checks).then_some(()))
            };
            wait_until("the peer's checks to report", TIMEOUT, wait_for_results).await?;
            let cost = measure_runs_plane(&world, plan.apicost_window).await?;
            if cost.pods_created == 0.0 {
                bail!("the peer created no checker pod in the window");
            }
            Ok(cost)
        }
        .await
        .map_err(|e: anyhow::Error| format!("failed: {e:#}"))
    }

    /// The peer's idle request rate with many checks (master + follower): not measurable.
    pub async fn idle_requests(&self, _plan: &Plan) -> Result<Requests, String> {
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
struct V2World {
    procs: Vec<Option<ProcessGroup>>,
    /// Where each replica listens (the pod network's host side).
    addrs: Vec<SocketAddr>,
    binary: PathBuf,
    home: PathBuf,
    kubeconfig: PathBuf,
    client: Client,
    ctx: TestContext,
    cluster: TestCluster,
}

impl V2World {
    async fn start(peer: &Peer, name: &str) -> Result<V2World> {
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
        world::wait_for_grants(&kubeconfig, &ns).await.ok();
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

    fn name(index: usize) -> String {
        format!("peer-{index}")
    }

    async fn create_all(
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

    async fn create_idle_checks(&self, range: std::ops::Range<usize>) -> Result<()> {
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

    fn spawn(&mut self, index: usize) -> Result<()> {
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

    fn pid(&self, index: usize) -> Result<u32> {
        Ok(self.procs[index].as_ref().context("not running")?.pid())
    }

    fn stop_all(&mut self) {
        for p in &mut self.procs {
            *p = None;
        }
    }

    /// Waits until replica `index` accepts connections on its port.
    async fn wait_listening(&mut self, index: usize) -> Result<()> {
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
    async fn make_master(&self, index: usize) -> Result<()> {
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

    async fn unmake_master(&self, index: usize) -> Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.ctx.namespace());
        pods.delete(
            &Self::name(index),
            &kube::api::DeleteParams::default().grace_period(0),
        )
        .await?;
        Ok(())
    }
}

async fn idle_windows_plane(
    world: &V2World,
    pids: &[u32],
    plan: &Plan,
) -> Result<(Vec<Vec<f64>>, f64)> {
    idle_windows(world.cluster.control_plane(), pids, plan).await
}

async fn measure_runs_plane(world: &V2World, window: Duration) -> Result<RunCost> {
    let before = apimetrics::snapshot(world.cluster.control_plane()).await?;
    tokio::time::sleep(window).await;
    let after = apimetrics::snapshot(world.cluster.control_plane()).await?;
    let requests = after.since(&before);
    let pods_created = requests
        .0
        .get(&("POST".to_string(), "pods".to_string()))
        .copied()
        .unwrap_or(0.0);
    Ok(RunCost {
        requests,
        completed_runs: f64::NAN,
        pods_created,
        window,
    })
}
