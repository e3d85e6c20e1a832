//! Child processes that never outlive the harness.
//!
//! Every child runs in its own process group (so a signal reaches its own children too),
//! gets `PR_SET_PDEATHSIG = SIGKILL` (so it dies even when the harness is SIGKILLed) and
//! carries the session marker in its environment.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the
//! process. Test threads and tokio blocking threads come and go, so children are forked
//! by one dedicated thread that lives as long as the process.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cleanup, logs, session};

/// Puts `cmd` in a new process group, has the kernel send it `death_signal` when the
/// calling thread dies (`PR_SET_PDEATHSIG`) and adds the session marker to its environment.
pub fn configure(cmd: &mut Command, death_signal: libc::c_int) {
    let parent = std::process::id() as libc::pid_t;
    cmd.process_group(0)
        .env(session::SESSION_ENV, session::session_id());
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (prctl, getppid, raise).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
}

/// Has `cmd` join the network namespace open as `netns` (a `/run/netns/<name>` file) before
/// it executes; `netns` must stay open until `cmd` is spawned.
pub fn join_netns(cmd: &mut Command, netns: &File) {
    let fd = netns.as_raw_fd();
    // SAFETY: runs between fork and exec and only calls setns(2), which is async-signal-safe;
    // `fd` is open at fork time (the caller keeps it; close-on-exec is fine).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Forks `cmd` on the long-lived spawner thread (see the module comment).
fn spawn_on_spawner_thread(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("e2e-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the e2e spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("the e2e spawner thread has stopped"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the e2e spawner thread dropped a request"))?
}

/// Opens (appending) the log file a child writes its stdout and stderr to.
pub fn open_log(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating log directory {}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log file {}", path.display()))
}

/// A child process leading its own process group. Dropping it kills the whole group.
#[derive(Debug)]
pub struct ProcessGroup {
    name: String,
    child: Child,
    log: PathBuf,
    exit: Option<ExitStatus>,
    /// SIGTERM first and wait this long before SIGKILL (for processes with children of
    /// their own to clean up, like the pod runner); `None` means SIGKILL at once.
    graceful_stop: Option<Duration>,
}

impl ProcessGroup {
    /// Starts `cmd` with stdin closed and stdout+stderr appended to `log`. Dropping the
    /// handle, or the death of the spawning process, SIGKILLs it.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> Result<Self> {
        Self::start(name, cmd, log, None)
    }

    /// Like [`ProcessGroup::spawn`] for a process that must clean up its own children:
    /// it gets SIGTERM (on drop, and when the spawning process dies) and `grace` to exit
    /// before SIGKILL.
    pub fn spawn_graceful(name: &str, cmd: Command, log: &Path, grace: Duration) -> Result<Self> {
        Self::start(name, cmd, log, Some(grace))
    }

    fn start(
        name: &str,
        mut cmd: Command,
        log: &Path,
        graceful_stop: Option<Duration>,
    ) -> Result<Self> {
        let out = open_log(log)?;
        let err = out.try_clone().context("duplicating a log file handle")?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        configure(
            &mut cmd,
            if graceful_stop.is_some() {
                libc::SIGTERM
            } else {
                libc::SIGKILL
            },
        );
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child =
            spawn_on_spawner_thread(cmd).with_context(|| format!("starting {name} ({program})"))?;
        cleanup::register_group(child.id() as i32, graceful_stop.is_some());
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            exit: None,
            graceful_stop,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pid of the leader, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Sends `signal` to every process of the group.
    pub fn signal(&self, signal: libc::c_int) -> Result<()> {
        signal_group(self.pid(), signal)
            .with_context(|| format!("sending signal {signal} to {}", self.name))
    }

    /// The exit status if the leader has exited (it is reaped then), without waiting.
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>> {
        if self.exit.is_none() {
            self.exit = self
                .child
                .try_wait()
                .with_context(|| format!("checking whether {} exited", self.name))?;
        }
        Ok(self.exit)
    }

    /// Waits up to `timeout` for the leader to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} (pid {}) did not exit within {timeout:?}",
                    self.name,
                    self.pid()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM to the group, then SIGKILL if the leader is still there after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.try_exit()? {
            self.kill_group();
            return Ok(status);
        }
        self.signal(libc::SIGTERM)?;
        let status = match self.wait_exit(grace).await {
            Ok(status) => status,
            Err(_) => {
                self.kill_group();
                self.wait_exit(Duration::from_secs(10)).await?
            }
        };
        self.kill_group();
        Ok(status)
    }

    /// SIGKILL to the group, like a crash, and reap the leader.
    pub async fn kill(&mut self) -> Result<ExitStatus> {
        self.kill_group();
        self.wait_exit(Duration::from_secs(10)).await
    }

    /// A one-line description of how the leader ended, e.g. `exit code 2` or `signal 9`.
    pub fn describe_exit(status: ExitStatus) -> String {
        match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            _ => format!("{status}"),
        }
    }

    /// The last lines of the log, to explain a failure.
    pub fn log_tail(&self, lines: usize) -> String {
        logs::tail(&self.log, lines)
    }

    /// SIGKILLs every process still in the group (stragglers included).
    fn kill_group(&self) {
        let _ = signal_group(self.pid(), libc::SIGKILL);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(grace) = self.graceful_stop
            && self.exit.is_none()
            && self.signal(libc::SIGTERM).is_ok()
        {
            // Drop cannot await: poll the exit for at most `grace`.
            let deadline = Instant::now() + grace;
            while matches!(self.try_exit(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill_group();
        if self.exit.is_none() {
            let _ = self.child.wait();
        }
        cleanup::unregister_group(self.pid() as i32);
    }
}

/// `kill(-pgid, signal)`; a group that no longer exists is not an error.
pub fn signal_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers.
    let rc = unsafe { libc::kill(-(pgid as libc::pid_t), signal) };
    let err = io::Error::last_os_error();
    if rc == 0 || err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// The state letter of a process from `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`...), or
/// `None` when the process does not exist.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name sits in parentheses and may contain spaces; the state follows it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.trim_start().chars().next()
}

/// Whether a process is still running (it exists and is not a zombie).
pub fn is_running(pid: u32) -> bool {
    matches!(process_state(pid), Some(state) if state != 'Z' && state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_group_is_killed_on_drop_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!(
            "sleep 300 & echo $! > {}; wait",
            pid_file.display()
        ));
        let group = ProcessGroup::spawn("sleeper", cmd, &dir.path().join("log")).unwrap();
        let leader = group.pid();
        let child: u32 = crate::wait_until("the pid file", Duration::from_secs(20), || async {
            Ok(std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse().ok()))
        })
        .await
        .unwrap();
        assert!(is_running(leader) && is_running(child));
        drop(group);
        crate::wait_until(
            "the background sleep to die",
            Duration::from_secs(20),
            || async { Ok((!is_running(child)).then_some(())) },
        )
        .await
        .unwrap();
        assert!(!is_running(leader));
    }

    #[tokio::test]
    async fn stop_reports_how_the_process_ended() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("echo started; exec sleep 300");
        let mut group = ProcessGroup::spawn("sleeper", cmd, &dir.path().join("log")).unwrap();
        let status = group.stop(Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            ProcessGroup::describe_exit(status),
            format!("signal {}", libc::SIGTERM)
        );
    }

    #[test]
    fn process_state_reads_this_process() {
        assert!(matches!(process_state(std::process::id()), Some('R' | 'S')));
        assert_eq!(process_state(u32::MAX), None);
    }
}
