//! One container = one local process group running `command` + `args`.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::process::Child;

use super::status::now;
use crate::process::{self, signal_group};

/// What to run for a container, already resolved.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    pub log: PathBuf,
    /// The pod's network namespace (`/run/netns/...`); `None` for `hostNetwork` pods.
    pub netns: Option<PathBuf>,
}

/// A started container process.
pub struct ContainerProcess {
    child: Child,
    pid: u32,
    reaped: bool,
    pub started_at: Time,
}

/// How a container process ended.
pub struct Exit {
    /// The exit code, or 128 + the signal number for a killed process (as a kubelet reports).
    pub code: i32,
    pub started_at: Time,
}

impl ContainerProcess {
    /// Starts the process, in the pod's network namespace when it has one, with exactly
    /// the pod's environment plus `PATH`, `HOME`, `HOSTNAME` and the harness session marker;
    /// stdout and stderr go to `launch.log` (truncated first, like a fresh container's log).
    pub fn start(launch: &Launch, hostname: &str) -> Result<Self> {
        let log = std::fs::File::create(&launch.log)
            .with_context(|| format!("creating {}", launch.log.display()))?;
        let netns = launch
            .netns
            .as_ref()
            .map(|path| {
                std::fs::File::open(path).with_context(|| {
                    format!("opening the pod's network namespace {}", path.display())
                })
            })
            .transpose()?;
        let mut cmd = std::process::Command::new(&launch.program);
        cmd.args(&launch.args)
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", std::env::var("HOME").unwrap_or_else(|_| "/".into()))
            .env("HOSTNAME", hostname)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&launch.working_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SIGKILL if the runner dies: a container must never outlive its kubelet.
        process::configure(&mut cmd, libc::SIGKILL);
        if let Some(netns) = &netns {
            process::join_netns(&mut cmd, netns);
        }
        let child = tokio::process::Command::from(cmd)
            .spawn()
            .with_context(|| format!("exec {:?}", launch.program))?;
        let pid = child.id().context("the container process has no pid")?;
        Ok(Self {
            child,
            pid,
            reaped: false,
            started_at: now(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to exit, then kills whatever it left behind in its group
    /// (a container's processes all end with its main process).
    pub async fn wait(&mut self) -> Exit {
        let status = self.child.wait().await;
        let _ = signal_group(self.pid, libc::SIGKILL);
        self.reaped = true;
        Exit {
            code: status.map(exit_code).unwrap_or(128),
            started_at: self.started_at.clone(),
        }
    }

    /// SIGTERM to the whole group, SIGKILL after `grace`, like a kubelet stopping a container.
    pub async fn kill(&mut self, grace: Duration) -> Exit {
        let _ = signal_group(self.pid, libc::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = signal_group(self.pid, libc::SIGKILL);
        }
        self.wait().await
    }
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        // Only while unreaped: afterwards the pid could belong to someone else.
        if !self.reaped {
            let _ = signal_group(self.pid, libc::SIGKILL);
        }
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// `<log_dir>/<namespace>/<pod>/<container>.log`: where a container's output goes.
pub fn log_path(log_dir: &Path, namespace: &str, pod: &str, container: &str) -> PathBuf {
    log_dir
        .join(namespace)
        .join(pod)
        .join(format!("{container}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(dir: &Path, script: &str) -> Launch {
        Launch {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("GREETING".into(), "hi".into())],
            working_dir: dir.to_path_buf(),
            log: dir.join("c.log"),
            netns: None,
        }
    }

    #[tokio::test]
    async fn runs_with_only_the_given_environment() {
        let dir = tempfile::tempdir().unwrap();
        // cargo sets this for the test process; it must not leak into the container.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let script = "echo \"$GREETING from $HOSTNAME in $(pwd)\"; echo \"leak=${CARGO_MANIFEST_DIR:-none}\"; exit 3";
        let mut process = ContainerProcess::start(&launch(dir.path(), script), "pod-a").unwrap();
        let exit = process.wait().await;
        assert_eq!(exit.code, 3);
        let log = std::fs::read_to_string(dir.path().join("c.log")).unwrap();
        assert!(
            log.contains(&format!("hi from pod-a in {}", dir.path().display())),
            "{log}"
        );
        assert!(log.contains("leak=none"), "{log}");
    }

    #[tokio::test]
    async fn kill_reports_the_signal_as_128_plus_n() {
        let dir = tempfile::tempdir().unwrap();
        let mut process =
            ContainerProcess::start(&launch(dir.path(), "exec sleep 300"), "pod-b").unwrap();
        let exit = process.kill(Duration::from_secs(5)).await;
        assert_eq!(exit.code, 128 + libc::SIGTERM);
    }

    #[test]
    fn log_paths_follow_the_convention() {
        assert_eq!(
            log_path(Path::new("/logs"), "ns", "pod", "main"),
            PathBuf::from("/logs/ns/pod/main.log")
        );
    }
}
