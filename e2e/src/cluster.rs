//! What a test gets: a control plane with a pod runner, and a per-test context.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Node;
use kube::api::DynamicObject;
use kube::{Api, Client};
use tokio::sync::OnceCell;

use crate::accounts::{self, ApiEndpoint};
use crate::control_plane::ControlPlane;
use crate::logs::{self, LogSource};
use crate::network::NetworkId;
use crate::pod_runner::logs::KubeletTls;
use crate::pod_runner::{self, DEFAULT_NODE_NAME};
use crate::process::ProcessGroup;
use crate::replica::ReplicaOptions;
use crate::wait::wait_until;
use crate::{manifests, resources};

/// A control plane plus a pod runner process. Dropping it stops both.
pub struct TestCluster {
    // Field order is drop order: the runner goes before the API server it talks to.
    pod_runner: ProcessGroup,
    pod_logs: PathBuf,
    control_plane: ControlPlane,
}

impl TestCluster {
    /// Starts a control plane and `pod_runner_bin` (the `pod-runner` binary; integration
    /// tests pass `env!("CARGO_BIN_EXE_pod-runner")`).
    pub async fn start(pod_runner_bin: &Path) -> Result<Self> {
        Self::start_on(ControlPlane::start().await?, pod_runner_bin).await
    }

    /// Like [`TestCluster::start`] on a control plane the caller started, e.g. with
    /// [`ControlPlane::start_audited`].
    pub async fn start_on(control_plane: ControlPlane, pod_runner_bin: &Path) -> Result<Self> {
        let pod_logs = control_plane.dir().join("pods");
        let pod_runner = spawn_pod_runner(
            pod_runner_bin,
            control_plane.kubeconfig_path(),
            &pod_logs,
            &control_plane.log_dir().join("pod-runner.log"),
            control_plane.network().id(),
            &control_plane.kubelet_tls(),
        )?;
        let mut cluster = Self {
            pod_runner,
            pod_logs,
            control_plane,
        };
        let client = cluster.control_plane.client().await?;
        wait_for_node(&client, &mut cluster.pod_runner, Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    /// One cluster for every test of this test binary, started by the first test that
    /// asks. It lives in a `static`, so it is stopped by the exit hook in `cleanup`.
    pub async fn shared(pod_runner_bin: &Path) -> Result<&'static TestCluster> {
        static SHARED: OnceCell<TestCluster> = OnceCell::const_new();
        SHARED.get_or_try_init(|| Self::start(pod_runner_bin)).await
    }

    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// For tests that stop and start the API server.
    pub fn control_plane_mut(&mut self) -> &mut ControlPlane {
        &mut self.control_plane
    }

    pub fn endpoint(&self) -> &ApiEndpoint {
        self.control_plane.endpoint()
    }

    /// The host-side address of the pod network: what pods reach the host at, so where
    /// replicas and test servers that pods talk to listen.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.control_plane.host_ip()
    }

    /// The pod runner's log directory (`<dir>/<namespace>/<pod>/<container>.log`).
    pub fn pod_logs_dir(&self) -> &Path {
        &self.pod_logs
    }

    /// A fresh namespace and log directory for one test; its logs are printed if the
    /// test panics.
    pub async fn context(&self, test_name: &str) -> Result<TestContext> {
        let namespace = accounts::unique_namespace(test_name);
        let client = self.control_plane.client().await?;
        accounts::create_namespace(&client, &namespace).await?;
        let log_dir = self.control_plane.dir().join("tests").join(&namespace);
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let cluster_logs = self.control_plane.log_dir();
        Ok(TestContext {
            name: test_name.to_string(),
            namespace,
            host_ip: self.host_ip(),
            endpoint: self.endpoint().clone(),
            log_dir,
            pod_logs: self.pod_logs.clone(),
            cluster_logs: vec![
                cluster_logs.join("apiserver.log"),
                cluster_logs.join("etcd.log"),
                cluster_logs.join("pod-runner.log"),
            ],
        })
    }
}

/// Starts the `pod-runner` binary against `kubeconfig`, putting pods on `network`, logging
/// to `log`, serving container logs with `kubelet` TLS. It gets SIGTERM (and 10 s to kill
/// its containers and remove their networks) when dropped or when this process dies.
pub fn spawn_pod_runner(
    binary: &Path,
    kubeconfig: &Path,
    pod_logs: &Path,
    log: &Path,
    network: NetworkId,
    kubelet: &KubeletTls,
) -> Result<ProcessGroup> {
    let mut cmd = Command::new(binary);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--log-dir")
        .arg(pod_logs)
        .arg("--node-name")
        .arg(DEFAULT_NODE_NAME)
        .arg("--pod-network")
        .arg(network.0.to_string())
        .arg("--kubelet-cert")
        .arg(&kubelet.cert)
        .arg("--kubelet-key")
        .arg(&kubelet.key)
        .arg("--client-ca")
        .arg(&kubelet.client_ca);
    ProcessGroup::spawn_graceful("pod-runner", cmd, log, Duration::from_secs(10))
}

/// Waits until the runner's Node reports Ready, failing early if the runner exits.
pub async fn wait_for_node(
    client: &Client,
    runner: &mut ProcessGroup,
    timeout: Duration,
) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = runner.try_exit()? {
            bail!(
                "the pod runner exited ({}); last lines of {}:\n{}",
                ProcessGroup::describe_exit(status),
                runner.log_path().display(),
                runner.log_tail(30)
            );
        }
        let ready = nodes.get_opt(DEFAULT_NODE_NAME).await?.is_some_and(|node| {
            node.status
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!(
                "node {DEFAULT_NODE_NAME} was not Ready after {timeout:?}; see {}",
                runner.log_path().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One test's namespace, log directory and helpers. When the test panics, dropping it
/// prints the tails of the control-plane logs, the pod runner's lines about this
/// namespace, this test's replica logs and every container log of the namespace.
pub struct TestContext {
    name: String,
    namespace: String,
    host_ip: Ipv4Addr,
    endpoint: ApiEndpoint,
    log_dir: PathBuf,
    pod_logs: PathBuf,
    cluster_logs: Vec<PathBuf>,
}

impl TestContext {
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The host-side address of the pod network (see [`TestCluster::host_ip`]).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// A free port on [`TestContext::host_ip`], for a replica or server pods must reach.
    pub fn free_address(&self) -> Result<SocketAddrV4> {
        Ok(SocketAddrV4::new(
            self.host_ip,
            crate::ports::free_port(self.host_ip)?,
        ))
    }

    /// This test's own log directory (replica logs, ServiceAccount kubeconfigs).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    pub fn endpoint(&self) -> &ApiEndpoint {
        &self.endpoint
    }

    /// A new admin client.
    pub async fn client(&self) -> Result<Client> {
        self.endpoint.admin_client().await
    }

    /// A client acting as ServiceAccount `name` of this test's namespace (created if
    /// missing); its kubeconfig is `<log dir>/<name>.kubeconfig`.
    pub async fn service_account_client(&self, name: &str) -> Result<Client> {
        let path = self.service_account_kubeconfig_path(name);
        self.endpoint
            .service_account_client(&self.namespace, name, &path)
            .await
    }

    pub fn service_account_kubeconfig_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.kubeconfig"))
    }

    /// Applies YAML as admin; namespaced objects without a namespace land in this test's.
    pub async fn apply_yaml(&self, yaml: &str) -> Result<Vec<DynamicObject>> {
        manifests::apply_yaml(&self.client().await?, yaml, Some(&self.namespace)).await
    }

    /// The spec of this namespace's khstate `name` once `ready` holds for it (`what` says
    /// what is awaited, for the time-out's message).
    pub async fn khstate_spec_when(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client().await?,
            &self.namespace,
            &resources::khstates(),
        );
        wait_until(&format!("khstate {name}: {what}"), timeout, || {
            let api = api.clone();
            let ready = &ready;
            async move {
                let state = api.get_opt(name).await?;
                Ok(state
                    .map(|s| s.data["spec"].clone())
                    .filter(|spec| ready(spec)))
            }
        })
        .await
    }

    /// Where the pod runner writes a container's output in this namespace.
    pub fn container_log_path(&self, pod: &str, container: &str) -> PathBuf {
        pod_runner::container_log_path(&self.pod_logs, &self.namespace, pod, container)
    }

    /// A container's output so far ("" if it has not started).
    pub fn container_log(&self, pod: &str, container: &str) -> String {
        std::fs::read_to_string(self.container_log_path(pod, container)).unwrap_or_default()
    }

    /// The working directory of a pod's containers (unless they set `workingDir`).
    pub fn pod_dir(&self, pod: &str) -> PathBuf {
        self.pod_logs.join(&self.namespace).join(pod)
    }

    /// Options for a replica in this namespace, as admin, listening on the pod network's
    /// host-side address, logging into this test's dir.
    pub fn replica_options(&self, name: &str) -> ReplicaOptions {
        ReplicaOptions::new(
            name,
            &self.namespace,
            &self.endpoint.admin_kubeconfig,
            self.host_ip,
            &self.log_dir,
        )
    }

    fn log_sources(&self) -> Vec<LogSource> {
        let mut sources: Vec<LogSource> = Vec::new();
        for path in &self.cluster_logs {
            let runner = path.ends_with("pod-runner.log");
            sources.push(LogSource {
                path: path.clone(),
                filter: runner.then(|| self.namespace.clone()),
                lines: if runner { 80 } else { 30 },
            });
        }
        let own = logs::files_under(&self.log_dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"));
        let containers = logs::files_under(&self.pod_logs.join(&self.namespace))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"));
        sources.extend(own.chain(containers).map(|path| LogSource {
            path,
            filter: None,
            lines: 60,
        }));
        sources
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        if std::thread::panicking() {
            logs::print_logs(
                &format!("{} (namespace {})", self.name, self.namespace),
                &self.log_sources(),
            );
            eprintln!(
                "(set KH_E2E_KEEP=1 to keep the scratch directories, with all logs, after the run)"
            );
        }
    }
}
