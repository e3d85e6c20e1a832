//! Checkers written the way v2's Python and JavaScript clients report: a JSON POST to
//! `KH_REPORTING_URL` without the `kh-run-uuid` header, from Python's standard library
//! (urllib) and from Node's built-in fetch.

use std::process::Command;

use crate::{Scene, check};

/// Fails the test with what to install when `program --version` does not run.
fn require(program: &str, package: &str) -> String {
    let output = Command::new(program).arg("--version").output();
    match output {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
                + String::from_utf8_lossy(&o.stderr).trim()
        }
        _ => panic!(
            "{program} is not installed: this checker is a {program} script \
             (bash e2e/tools/install-tools.sh, or apt-get install {package})"
        ),
    }
}

const PYTHON_CHECKER: &str = r#"
import json, os, urllib.request
report = {"OK": False, "Errors": ["disk /data is 97% full"]}
request = urllib.request.Request(
    os.environ["KH_REPORTING_URL"],
    data=json.dumps(report).encode(),
    headers={"Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(request, timeout=10) as answer:
    print(answer.status, answer.read().decode())
"#;

#[tokio::test]
async fn a_python_checker_with_urllib_and_no_header_is_recorded() {
    let version = require("python3", "python3");
    let scene = Scene::start("reporters-python", &[]).await;
    scene
        .apply(&check("python", &["python3", "-c", PYTHON_CHECKER]))
        .await;
    let run = scene.recorded_by_address("python").await;
    run.assert_result(false, &["disk /data is 97% full"]);
    assert!(run.output.starts_with("200 "), "{}", run.output);
    println!("{version}: recorded from {}", run.pod_ip);
}

const NODE_CHECKER: &str = r#"
(async () => {
  const answer = await fetch(process.env.KH_REPORTING_URL, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ Errors: [], OK: true }),
  });
  console.log(answer.status, await answer.text());
  process.exit(answer.status === 200 ? 0 : 1);
})();
"#;

#[tokio::test]
async fn a_node_checker_with_fetch_and_no_header_is_recorded() {
    let version = require("node", "nodejs");
    let scene = Scene::start("reporters-node", &[]).await;
    scene
        .apply(&check("node", &["node", "-e", NODE_CHECKER]))
        .await;
    let run = scene.recorded_by_address("node").await;
    run.assert_result(true, &[]);
    assert!(run.output.contains("200 "), "{}", run.output);
    println!("node {version}: recorded from {}", run.pod_ip);
}
