//! `kuberhealthy run` replicas as separate processes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process::{self, ProcessGroup};
use crate::{binaries, http, ports};

/// How to start one replica.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// `POD_NAME`, e.g. `kuberhealthy-0`; also names the log file `<name>.log`.
    pub name: String,
    /// `POD_NAMESPACE`
    pub namespace: String,
    /// `KUBECONFIG`
    pub kubeconfig: PathBuf,
    /// `TARGET_NAMESPACE`; unset means every namespace.
    pub target_namespace: Option<String>,
    /// `KH_EXTERNAL_REPORTING_URL`
    pub external_reporting_url: Option<String>,
    /// The address of `KH_LISTEN_ADDRESS=<ip>:<port>`: the pod network's host side, so
    /// checker pods reach the replica.
    pub listen_ip: Ipv4Addr,
    /// Port for `KH_LISTEN_ADDRESS`; a free one when `None`.
    pub listen_port: Option<u16>,
    /// A network namespace to run in (a [`ReplicaNetwork`]'s, whose address is then
    /// `listen_ip`); `None` runs in the host's network.
    ///
    /// [`ReplicaNetwork`]: crate::network::replica::ReplicaNetwork
    pub netns: Option<PathBuf>,
    /// More environment, applied last.
    pub env: Vec<(String, String)>,
    /// Arguments after `run`.
    pub args: Vec<String>,
    /// The binary; [`binaries::kuberhealthy`] when `None`.
    pub binary: Option<PathBuf>,
    pub log_dir: PathBuf,
}

impl ReplicaOptions {
    pub fn new(
        name: &str,
        namespace: &str,
        kubeconfig: &Path,
        listen_ip: Ipv4Addr,
        log_dir: &Path,
    ) -> Self {
        Self {
            name: name.to_string(),
            namespace: namespace.to_string(),
            kubeconfig: kubeconfig.to_path_buf(),
            target_namespace: None,
            external_reporting_url: None,
            listen_ip,
            listen_port: None,
            netns: None,
            env: Vec::new(),
            args: Vec::new(),
            binary: None,
            log_dir: log_dir.to_path_buf(),
        }
    }
}

/// A running replica. Dropping it SIGKILLs it.
pub struct Replica {
    name: String,
    addr: SocketAddr,
    process: ProcessGroup,
}

impl Replica {
    pub fn spawn(options: ReplicaOptions) -> Result<Self> {
        let binary = match options.binary {
            Some(binary) => binary,
            None => binaries::kuberhealthy()?,
        };
        // In a namespace of its own, every port of its address is free.
        let port = match (options.listen_port, &options.netns) {
            (Some(port), _) => port,
            (None, Some(_)) => ports::free_port(Ipv4Addr::LOCALHOST)?,
            (None, None) => ports::free_port(options.listen_ip)?,
        };
        let addr = SocketAddr::from((options.listen_ip, port));
        let mut cmd = Command::new(&binary);
        cmd.arg("run")
            .args(&options.args)
            .env("POD_NAME", &options.name)
            .env("POD_NAMESPACE", &options.namespace)
            .env("KUBECONFIG", &options.kubeconfig)
            .env("KH_LISTEN_ADDRESS", addr.to_string())
            .env_remove("TARGET_NAMESPACE")
            .env_remove("KH_EXTERNAL_REPORTING_URL");
        if let Some(target) = &options.target_namespace {
            cmd.env("TARGET_NAMESPACE", target);
        }
        if let Some(url) = &options.external_reporting_url {
            cmd.env("KH_EXTERNAL_REPORTING_URL", url);
        }
        cmd.envs(options.env.iter().map(|(k, v)| (k, v)));
        let netns = options
            .netns
            .as_ref()
            .map(|path| {
                std::fs::File::open(path)
                    .with_context(|| format!("opening the network namespace {}", path.display()))
            })
            .transpose()?;
        if let Some(netns) = &netns {
            process::join_netns(&mut cmd, netns);
        }
        let log = options.log_dir.join(format!("{}.log", options.name));
        // `netns` stays open until here: the spawn has forked by the time this returns.
        let process = ProcessGroup::spawn(&options.name, cmd, &log)?;
        drop(netns);
        Ok(Self {
            name: options.name,
            addr,
            process,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `KH_LISTEN_ADDRESS`
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port of `KH_LISTEN_ADDRESS`.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://<ip>:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Graceful shutdown request.
    pub fn sigterm(&self) -> Result<()> {
        self.process.signal(libc::SIGTERM)
    }

    /// A crash.
    pub fn sigkill(&self) -> Result<()> {
        self.process.signal(libc::SIGKILL)
    }

    /// Freezes the process (a long GC pause, a stalled node).
    pub fn sigstop(&self) -> Result<()> {
        self.process.signal(libc::SIGSTOP)
    }

    /// Thaws a stopped process.
    pub fn sigcont(&self) -> Result<()> {
        self.process.signal(libc::SIGCONT)
    }

    /// The exit status if it has exited, without waiting.
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>> {
        self.process.try_exit()
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.process.wait_exit(timeout).await
    }

    /// Waits until `GET /readyz` answers 200 (its caches are synced), failing at once with
    /// the tail of its log if it exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit()? {
                bail!(
                    "{} exited ({}) before it was ready; last lines of its log:\n{}",
                    self.name,
                    ProcessGroup::describe_exit(status),
                    self.log_tail(40)
                );
            }
            if http::get(self.addr, "/readyz")
                .await
                .is_ok_and(|r| r.status == 200)
            {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "{} was not ready after {timeout:?}; last lines of its log:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
