//! External tools the tests need, found on PATH or a failure saying how to install them.

use std::path::PathBuf;

pub const INSTALL_HINT: &str = "run `bash e2e/tools/install-prometheus.sh` (or `make unit`, which runs it) to install Debian's prometheus package";

/// The path of `tool` on PATH; fails the test, with the fix, when it is missing.
pub fn require(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{tool}` is not on PATH: {INSTALL_HINT}"))
}
