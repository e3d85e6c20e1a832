//! A real etcd + kube-apiserver. The API server listens on the host-side address of the pod
//! network it creates first, so that pods in their own network namespaces reach it; etcd,
//! which only the API server talks to, stays on 127.0.0.1.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::Client;
use tempfile::TempDir;

use crate::accounts::ApiEndpoint;
use crate::binaries::{self, ControlPlaneBinaries};
use crate::network::PodNetwork;
use crate::pki::{self, Pki, PkiFiles};
use crate::pod_runner::logs::KubeletTls;
use crate::process::ProcessGroup;
use crate::{cleanup, kubeconfig, ports, session};

/// How long the API server gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Attempts with fresh ports when a port taken between choosing and binding it.
const PORT_ATTEMPTS: usize = 3;

#[derive(Clone, Debug, Default)]
pub struct ControlPlaneOptions {
    /// Where `etcd.log` and `apiserver.log` go; defaults to `<scratch dir>/logs`.
    pub log_dir: Option<PathBuf>,
}

/// etcd and kube-apiserver on a pod network of their own, killed (with the network and the
/// scratch directory removed) when dropped.
pub struct ControlPlane {
    binaries: ControlPlaneBinaries,
    pki: PkiFiles,
    log_dir: PathBuf,
    /// The audit policy file, when the audit log is on (see [`ControlPlane::start_audited`]).
    audit_policy: Option<PathBuf>,
    etcd: ProcessGroup,
    etcd_url: String,
    apiserver: Option<ProcessGroup>,
    port: u16,
    endpoint: ApiEndpoint,
    started_in: Duration,
    /// After the processes, so it goes once nothing listens on it (fields drop in order).
    network: PodNetwork,
    /// Last, so it is removed after the processes using it are gone.
    scratch: TempDir,
}

impl ControlPlane {
    pub async fn start() -> Result<Self> {
        Self::start_with(ControlPlaneOptions::default()).await
    }

    /// Builds or finds the binaries, generates the PKI and tokens, starts etcd and the
    /// API server on free ports and waits until `/readyz` answers `ok`.
    pub async fn start_with(options: ControlPlaneOptions) -> Result<Self> {
        Self::start_inner(options, None).await
    }

    /// Like [`ControlPlane::start_with`], with the API server's audit log on: every request
    /// that `policy` (an `audit.k8s.io/v1` Policy in YAML, such as
    /// [`crate::audit::WRITES_POLICY`]) selects is written as one JSON line to
    /// [`ControlPlane::audit_log_path`] (in blocking mode: before the API server finishes the
    /// request). The log survives [`ControlPlane::stop_apiserver`]; a restart appends to it.
    pub async fn start_audited(options: ControlPlaneOptions, policy: &str) -> Result<Self> {
        Self::start_inner(options, Some(policy)).await
    }

    async fn start_inner(options: ControlPlaneOptions, audit_policy: Option<&str>) -> Result<Self> {
        let binaries = binaries::control_plane()?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&binaries, &options, audit_policy).await {
                Err(err)
                    if attempt < PORT_ATTEMPTS
                        && format!("{err:#}").contains("address already in use") =>
                {
                    tracing::warn!(
                        "a port was taken while starting the control plane; retrying: {err:#}"
                    );
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(
        binaries: &ControlPlaneBinaries,
        options: &ControlPlaneOptions,
        audit_policy: Option<&str>,
    ) -> Result<Self> {
        let begin = Instant::now();
        let scratch = session::new_scratch_dir("cp")?;
        let dir = scratch.path();
        let log_dir = options.log_dir.clone().unwrap_or_else(|| dir.join("logs"));
        let audit_policy = match audit_policy {
            Some(policy) => {
                let path = dir.join("audit-policy.yaml");
                std::fs::write(&path, policy).context("writing the audit policy")?;
                Some(path)
            }
            None => None,
        };
        let network = PodNetwork::create()?;
        let host_ip = network.host_ip();
        let pki = Pki::generate(host_ip)?;
        let pki_files = pki.write(&dir.join("pki"))?;

        let admin_token = pki::random_token()?;
        std::fs::write(
            dir.join("tokens.csv"),
            format!("{admin_token},admin,uid-admin,\"system:masters\"\n"),
        )
        .context("writing the static token file")?;

        let (etcd_port, peer_port, port) = (
            ports::free_port(Ipv4Addr::LOCALHOST)?,
            ports::free_port(Ipv4Addr::LOCALHOST)?,
            ports::free_port(host_ip)?,
        );
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd_cmd = Command::new(&binaries.etcd);
        etcd_cmd.args([
            "--name=e2e".to_string(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=e2e={peer_url}"),
            // Test data needs no durability; fsync is most of etcd's latency.
            "--unsafe-no-fsync".to_string(),
            "--log-level=warn".to_string(),
        ]);
        let etcd = ProcessGroup::spawn("etcd", etcd_cmd, &log_dir.join("etcd.log"))?;

        let server = format!("https://{host_ip}:{port}");
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        kubeconfig::write(
            &admin_kubeconfig,
            &server,
            &pki.ca_cert,
            "admin",
            &admin_token,
        )?;
        let endpoint = ApiEndpoint {
            server,
            ca_pem: pki.ca_cert.clone(),
            admin_kubeconfig,
        };

        // Registered so a shared control plane living in a `static` is still removed.
        cleanup::register_dir(dir.to_path_buf());
        let mut plane = Self {
            binaries: binaries.clone(),
            pki: pki_files,
            log_dir,
            audit_policy,
            etcd,
            etcd_url,
            apiserver: None,
            port,
            endpoint,
            started_in: Duration::ZERO,
            network,
            scratch,
        };
        plane.start_apiserver().await?;
        plane.started_in = begin.elapsed();
        tracing::info!(server = %plane.endpoint.server, "control plane ready in {:.1?}", plane.started_in);
        Ok(plane)
    }

    /// Starts the API server (again) on the same port, against the same etcd, and waits
    /// until it is ready.
    pub async fn start_apiserver(&mut self) -> Result<()> {
        if self.apiserver.is_some() {
            bail!("the API server is already running");
        }
        let cmd = self.apiserver_command();
        self.apiserver = Some(ProcessGroup::spawn(
            "kube-apiserver",
            cmd,
            &self.log_dir.join("apiserver.log"),
        )?);
        self.wait_ready().await
    }

    /// Stops the API server alone, in order: SIGTERM, then SIGKILL after 5 s (its graceful
    /// shutdown can hang on open watch connections). etcd keeps running.
    pub async fn stop_apiserver(&mut self) -> Result<()> {
        let mut apiserver = self
            .apiserver
            .take()
            .context("the API server is not running")?;
        apiserver.stop(Duration::from_secs(5)).await?;
        Ok(())
    }

    /// Kills the API server alone with SIGKILL, like a crash. etcd keeps running.
    pub async fn kill_apiserver(&mut self) -> Result<()> {
        let mut apiserver = self
            .apiserver
            .take()
            .context("the API server is not running")?;
        apiserver.kill().await?;
        Ok(())
    }

    fn apiserver_command(&self) -> Command {
        let dir = self.scratch.path();
        let host_ip = self.network.host_ip();
        let mut cmd = Command::new(&self.binaries.kube_apiserver);
        cmd.args([
            format!("--etcd-servers={}", self.etcd_url),
            format!("--bind-address={host_ip}"),
            format!("--advertise-address={host_ip}"),
            format!("--secure-port={}", self.port),
            format!("--tls-cert-file={}", self.pki.serving_cert.display()),
            format!("--tls-private-key-file={}", self.pki.serving_key.display()),
            format!("--client-ca-file={}", self.pki.ca_cert.display()),
            format!("--token-auth-file={}", dir.join("tokens.csv").display()),
            "--authorization-mode=RBAC".to_string(),
            format!("--service-account-issuer={}", self.endpoint.server),
            format!(
                "--service-account-key-file={}",
                self.pki.service_account_public_key.display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                self.pki.service_account_key.display()
            ),
            "--service-cluster-ip-range=10.0.0.0/24".to_string(),
            // No controller-manager creates `default` ServiceAccounts, so the plugin would
            // reject every pod.
            "--disable-admission-plugins=ServiceAccount".to_string(),
            "--allow-privileged=true".to_string(),
            // No Service proxy routes to the `kubernetes` Endpoints: clients use the address.
            "--endpoint-reconciler-type=none".to_string(),
            // Less CPU on a small machine; request throttling is not under test.
            "--enable-priority-and-fairness=false".to_string(),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            "--profiling=false".to_string(),
            // `pods/log` goes to the pod runner's kubelet endpoint: at the Node's InternalIP
            // (its Hostname resolves nowhere), verified by the cluster CA, with a client
            // certificate the runner checks.
            "--kubelet-preferred-address-types=InternalIP".to_string(),
            format!(
                "--kubelet-certificate-authority={}",
                self.pki.ca_cert.display()
            ),
            format!(
                "--kubelet-client-certificate={}",
                self.pki.kubelet_client_cert.display()
            ),
            format!(
                "--kubelet-client-key={}",
                self.pki.kubelet_client_key.display()
            ),
            "--v=1".to_string(),
        ]);
        if let (Some(policy), Some(log)) = (&self.audit_policy, self.audit_log_path()) {
            cmd.args([
                format!("--audit-policy-file={}", policy.display()),
                format!("--audit-log-path={}", log.display()),
                "--audit-log-format=json".to_string(),
                // The request waits for its event to be written: none is dropped under load.
                "--audit-log-mode=blocking".to_string(),
            ]);
        }
        cmd
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let client = self.endpoint.admin_client().await?;
        let begin = Instant::now();
        loop {
            for process in [self.apiserver.as_mut(), Some(&mut self.etcd)]
                .into_iter()
                .flatten()
            {
                if let Some(status) = process.try_exit()? {
                    bail!(
                        "{} exited during start-up ({}); last lines of {}:\n{}",
                        process.name(),
                        ProcessGroup::describe_exit(status),
                        process.log_path().display(),
                        process.log_tail(30)
                    );
                }
            }
            let request = http::Request::get("/readyz").body(Vec::new())?;
            if let Ok(body) = client.request_text(request).await
                && body.trim() == "ok"
            {
                return Ok(());
            }
            if begin.elapsed() > READY_TIMEOUT {
                bail!(
                    "the API server was not ready after {READY_TIMEOUT:?}; last lines of {}:\n{}",
                    self.log_dir.join("apiserver.log").display(),
                    crate::logs::tail(&self.log_dir.join("apiserver.log"), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Server URL, CA and admin kubeconfig.
    pub fn endpoint(&self) -> &ApiEndpoint {
        &self.endpoint
    }

    /// `https://<host ip>:<port>`
    pub fn server_url(&self) -> &str {
        &self.endpoint.server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host-side address of this control plane's pod network: where the API server
    /// listens, and where anything pods must reach (replicas, test servers) listens too.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.network.host_ip()
    }

    /// Freezes etcd (SIGSTOP): the API server stays up, but every request that needs
    /// storage hangs until [`ControlPlane::resume_etcd`].
    pub fn pause_etcd(&self) -> Result<()> {
        self.etcd.signal(libc::SIGSTOP)
    }

    /// Thaws etcd after [`ControlPlane::pause_etcd`].
    pub fn resume_etcd(&self) -> Result<()> {
        self.etcd.signal(libc::SIGCONT)
    }

    /// etcd's pid (its process group).
    pub fn etcd_pid(&self) -> u32 {
        self.etcd.pid()
    }

    /// The TLS files of the pod runner's kubelet endpoint, which this API server trusts.
    pub fn kubelet_tls(&self) -> KubeletTls {
        KubeletTls {
            cert: self.pki.kubelet_cert.clone(),
            key: self.pki.kubelet_key.clone(),
            client_ca: self.pki.ca_cert.clone(),
        }
    }

    /// The pod network the pod runner puts pods on.
    pub fn network(&self) -> &PodNetwork {
        &self.network
    }

    /// The admin kubeconfig (a `system:masters` token; the CA is embedded).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.endpoint.admin_kubeconfig
    }

    /// A new admin client.
    pub async fn client(&self) -> Result<Client> {
        self.endpoint.admin_client().await
    }

    /// The API server's own Prometheus metrics (e.g. `apiserver_request_total`).
    pub async fn apiserver_metrics(&self) -> Result<String> {
        self.endpoint.metrics().await
    }

    pub fn is_apiserver_running(&self) -> bool {
        self.apiserver.is_some()
    }

    /// `<log dir>/audit.log` when the control plane was started with
    /// [`ControlPlane::start_audited`]; read it with [`crate::audit::read`].
    pub fn audit_log_path(&self) -> Option<PathBuf> {
        self.audit_policy
            .as_ref()
            .map(|_| self.log_dir.join("audit.log"))
    }

    /// Where `etcd.log` and `apiserver.log` are.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The scratch directory (PKI, etcd data, default log directory).
    pub fn dir(&self) -> &Path {
        self.scratch.path()
    }

    /// How long [`ControlPlane::start`] took, binaries already built.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // The API server goes first so it does not log etcd errors while shutting down.
        drop(self.apiserver.take());
        cleanup::unregister_dir(self.scratch.path());
    }
}
