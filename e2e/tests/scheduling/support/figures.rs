//! What a test measured: printed, and written as JSON under `target/e2e-figures/`.

use std::path::PathBuf;

use kuberhealthy_e2e::session::workspace_root;
use serde_json::Value;

/// Prints `figures` and writes them to `target/e2e-figures/scheduling-<test>.json`.
pub fn publish(test: &str, figures: &Value) -> PathBuf {
    let dir = workspace_root().join("target/e2e-figures");
    let path = dir.join(format!("scheduling-{test}.json"));
    let text = serde_json::to_string_pretty(figures).expect("figures are JSON");
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &text)) {
        panic!("writing {}: {e}", path.display());
    }
    println!("==== figures of {test} ({}) ====\n{text}", path.display());
    path
}
