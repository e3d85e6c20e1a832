//! Where the harness keeps its files, and the marker that identifies its processes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tempfile::TempDir;

/// Environment variable carried by every process the harness starts (and by their
/// children). `make e2e` sets it to a fresh value and then looks for any process whose
/// environment or command line still contains that value.
pub const SESSION_ENV: &str = "KH_E2E_SESSION";

/// Set to `1` to keep scratch directories (etcd data, certificates, logs) after a run.
pub const KEEP_ENV: &str = "KH_E2E_KEEP";

/// Prefix of every scratch directory; the pid of the owning process follows it.
const SCRATCH_PREFIX: &str = "kh-e2e-";

/// The session marker: `$KH_E2E_SESSION` when set, otherwise one made for this process.
pub fn session_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| match std::env::var(SESSION_ENV) {
        Ok(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => id,
        _ => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("p{}-{nanos}", std::process::id())
        }
    })
}

/// The root of the cargo workspace (the directory holding `Makefile` and `e2e/`).
pub fn workspace_root() -> PathBuf {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR"));
    e2e.parent().unwrap_or(e2e).to_path_buf()
}

/// Whether scratch directories should survive the run, for debugging.
pub fn keep_scratch() -> bool {
    std::env::var(KEEP_ENV).is_ok_and(|v| v == "1")
}

/// A fresh scratch directory, on tmpfs when there is one (etcd is much faster there).
/// Its name holds the session marker, so it shows in the command line of every process
/// that is given a path inside it.
pub fn new_scratch_dir(label: &str) -> Result<TempDir> {
    let base = scratch_base();
    remove_stale_scratch_dirs(&base);
    let prefix = format!(
        "{SCRATCH_PREFIX}{}-{}-{label}-",
        std::process::id(),
        session_id()
    );
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).disable_cleanup(keep_scratch());
    builder
        .tempdir_in(&base)
        .with_context(|| format!("creating a scratch directory in {}", base.display()))
}

fn scratch_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Removes scratch directories left by harness processes that no longer exist (for
/// example a test binary that was SIGKILLed and so never ran its cleanup).
fn remove_stale_scratch_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() && !keep_scratch() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid in a scratch directory name `kh-e2e-<pid>-...`.
fn owner_pid(dir_name: &str) -> Option<u32> {
    dir_name
        .strip_prefix(SCRATCH_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_read_from_scratch_names() {
        assert_eq!(owner_pid("kh-e2e-4242-p1-99-cp-abc"), Some(4242));
        assert_eq!(owner_pid("kh-e2e-x-1"), None);
        assert_eq!(owner_pid("other-4242"), None);
    }

    #[test]
    fn session_id_is_safe_in_paths() {
        let id = session_id();
        assert!(!id.is_empty());
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{id}"
        );
    }
}
