//! Running `ip` from iproute2, the one tool the pod network is built with.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// Where `ip` is: on `PATH`, else in the sbin directories a non-root `PATH` often lacks.
fn binary() -> Result<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        on_path
            .into_iter()
            .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
            .map(|dir| dir.join("ip"))
            .find(|candidate| candidate.is_file())
    });
    found.as_deref().context(
        "the pod network needs `ip` from iproute2, which is not installed: \
         run `bash e2e/tools/install-tools.sh` (or apt-get install iproute2)",
    )
}

/// Fails with what to do unless this process may create network namespaces and links.
pub fn require() -> Result<()> {
    binary()?;
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the pod network needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN, to create a bridge, veth \
             pairs and network namespaces); run the e2e suite as root"
        );
    }
    Ok(())
}

/// `ip <args>`; its standard output, or an error quoting its standard error.
pub fn run(args: &[&str]) -> Result<String> {
    let output = Command::new(binary()?)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "ip {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Several `ip` commands in one process (`ip -batch -`), in the network namespace `netns`
/// when given. With `force`, every command runs even when one fails (for removals: some of
/// the objects may be gone already) and no failure is reported.
pub fn batch(netns: Option<&str>, commands: &[String], force: bool) -> Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new(binary()?);
    if let Some(netns) = netns {
        cmd.args(["-n", netns]);
    }
    if force {
        cmd.arg("-force");
    }
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("running ip -batch")?;
    let script = commands.join("\n") + "\n";
    child
        .stdin
        .take()
        .context("the stdin of ip -batch")?
        .write_all(script.as_bytes())
        .context("writing to ip -batch")?;
    let output = child.wait_with_output().context("waiting for ip -batch")?;
    if !force && !output.status.success() {
        bail!(
            "ip{} -batch failed ({}): {}; the commands were:\n{script}",
            netns.map(|n| format!(" -n {n}")).unwrap_or_default(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Names of the links of this network namespace (`ip -o link show`).
pub fn link_names() -> Result<Vec<String>> {
    Ok(parse_link_names(&run(&["-o", "link", "show"])?))
}

/// Names of the named network namespaces (`/run/netns`, where `ip netns add` puts them).
pub fn netns_names() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `3: khe2e7p2@if2: <...> ...` → `khe2e7p2` (the part after `@` names the peer).
fn parse_link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let name = line.split(": ").nth(1)?;
            Some(name.split('@').next().unwrap_or(name).to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_are_read_without_their_peer() {
        let text = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\\    link/loopback 00:00:00:00:00:00\n\
                    5: khe2e7: <BROADCAST,MULTICAST,UP> mtu 1500\\    alias kuberhealthy e2e\n\
                    6: khe2e7p2@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master khe2e7\n";
        assert_eq!(parse_link_names(text), ["lo", "khe2e7", "khe2e7p2"]);
    }
}
