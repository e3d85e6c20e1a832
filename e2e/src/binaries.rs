//! Finding the executables the harness runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::session::workspace_root;

/// Overrides the directory holding `etcd` and `kube-apiserver` (skips `build.sh`).
pub const CONTROL_PLANE_BIN_ENV: &str = "KH_CONTROL_PLANE_BIN";
/// Overrides the `kuberhealthy` binary the replicas run.
pub const KUBERHEALTHY_BIN_ENV: &str = "KH_BIN";

/// Where `etcd` and `kube-apiserver` are.
#[derive(Clone, Debug)]
pub struct ControlPlaneBinaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
}

/// The control-plane binaries: from `$KH_CONTROL_PLANE_BIN`, else from
/// `e2e/control-plane/build.sh`, which returns at once when they are cached and builds
/// them (minutes, cold) when they are not.
pub fn control_plane() -> Result<ControlPlaneBinaries> {
    let dir = match std::env::var_os(CONTROL_PLANE_BIN_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => run_build_script()?,
    };
    let binaries = ControlPlaneBinaries {
        etcd: dir.join("etcd"),
        kube_apiserver: dir.join("kube-apiserver"),
    };
    for path in [&binaries.etcd, &binaries.kube_apiserver] {
        if !is_executable(path) {
            bail!(
                "{} is missing or not executable; run `make control-plane` to build it",
                path.display()
            );
        }
    }
    Ok(binaries)
}

fn run_build_script() -> Result<PathBuf> {
    let script = workspace_root().join("e2e/control-plane/build.sh");
    // stderr is inherited so a cold build shows its progress.
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}); run `make control-plane` to see why",
            script.display(),
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout.lines().last().unwrap_or_default().trim();
    if dir.is_empty() {
        bail!("{} printed no binary directory", script.display());
    }
    Ok(PathBuf::from(dir))
}

/// The `kuberhealthy` binary: `$KH_BIN`, else `<workspace>/target/debug/kuberhealthy`.
pub fn kuberhealthy() -> Result<PathBuf> {
    let path = match std::env::var_os(KUBERHEALTHY_BIN_ENV) {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("target/debug/kuberhealthy"),
    };
    if !is_executable(&path) {
        bail!(
            "the kuberhealthy binary {} is missing; build it with `cargo build --bin kuberhealthy` \
             (`make e2e` and `make run` do) or point {KUBERHEALTHY_BIN_ENV} at one",
            path.display()
        );
    }
    Ok(path)
}

/// A binary of this crate (e.g. `pod-runner`) next to the running executable: the
/// executable is `target/<profile>/<bin>` for binaries and `target/<profile>/deps/<test>`
/// for tests, so look in its directory and the one above.
pub fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the running executable")?;
    let dir = exe
        .parent()
        .context("the running executable has no directory")?;
    let candidates = [
        dir.join(name),
        dir.parent().map(|p| p.join(name)).unwrap_or_default(),
    ];
    candidates.iter().find(|p| is_executable(p)).cloned().with_context(|| {
        format!(
            "cannot find the {name} binary next to {}; build it with `cargo build -p kuberhealthy-e2e --bins`",
            exe.display()
        )
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_are_recognised() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tool");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!is_executable(&file));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(is_executable(&file));
        assert!(!is_executable(dir.path()));
        assert!(!is_executable(&dir.path().join("nonexistent")));
    }
}
