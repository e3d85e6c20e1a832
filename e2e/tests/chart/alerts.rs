//! The chart's PrometheusRule under `promtool test rules`: `e2e/chart/alerts_test.yaml` has
//! firing and not-firing cases for every alert, run against the rules as rendered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use kuberhealthy_e2e::session::workspace_root;
use serde_json::Value;

use crate::support::{args, str, template};

/// The unit tests, relative to the workspace.
const TESTS: &str = "e2e/chart/alerts_test.yaml";
/// The rule file name `alerts_test.yaml` loads.
const RULES_FILE: &str = "kuberhealthy-rules.yaml";

/// `promtool` from Debian's prometheus package, or a failure saying how to install it.
pub fn promtool() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("promtool"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`promtool` is not on PATH: run `bash e2e/tools/install-prometheus.sh`")
        })
}

/// The alerting rules of a rendered PrometheusRule, in order.
pub fn alerts(rule: &Value) -> Result<Vec<Value>> {
    let groups = rule["spec"]["groups"]
        .as_array()
        .context("the PrometheusRule has no groups")?;
    Ok(groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["alert"].is_string())
        .collect())
}

/// Writes the PrometheusRule's `spec` (Prometheus's rule file format) to `dir/RULES_FILE`.
fn write_rules(rule: &Value, dir: &Path) -> Result<PathBuf> {
    let path = dir.join(RULES_FILE);
    // JSON is YAML: promtool reads it as is.
    std::fs::write(&path, serde_json::to_string_pretty(&rule["spec"])?)?;
    Ok(path)
}

fn run(cmd: &mut std::process::Command) -> Result<String> {
    let output = cmd.output().context("running promtool")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(output.status.success(), "{cmd:?} failed:\n{text}");
    Ok(text)
}

/// `promtool check rules` on a rendered PrometheusRule.
pub fn promtool_check_rules(rule: &Value) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = write_rules(rule, dir.path())?;
    let out = run(std::process::Command::new(promtool())
        .arg("check")
        .arg("rules")
        .arg(&path))?;
    let count = alerts(rule)?.len();
    ensure!(
        out.contains(&format!("SUCCESS: {count} rules found")),
        "{out}"
    );
    Ok(())
}

#[tokio::test]
async fn promtool_unit_tests_of_every_alert_pass() {
    let rendered = template(
        "kh",
        "monitoring",
        &args(&[
            "--set",
            "prometheus.prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
        ]),
    )
    .await
    .unwrap();
    let rule = rendered.one("PrometheusRule").unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_rules(rule, dir.path()).unwrap();
    let tests_text = std::fs::read_to_string(workspace_root().join(TESTS)).unwrap();
    std::fs::write(dir.path().join("alerts_test.yaml"), &tests_text).unwrap();

    // Every alert has at least one case where it fires and one where it does not.
    let tests: Value = serde_saphyr::from_str(&tests_text).unwrap();
    let mut coverage: BTreeMap<String, (usize, usize)> = alerts(rule)
        .unwrap()
        .iter()
        .map(|a| (str(&a["alert"]).to_string(), (0, 0)))
        .collect();
    for case in tests["tests"].as_array().unwrap() {
        for check in case["alert_rule_test"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let name = str(&check["alertname"]).to_string();
            let entry = coverage
                .get_mut(&name)
                .unwrap_or_else(|| panic!("{TESTS} tests {name}, which the chart does not define"));
            if check["exp_alerts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    for (alert, (firing, quiet)) in &coverage {
        assert!(
            *firing > 0 && *quiet > 0,
            "{alert} needs firing and not-firing cases in {TESTS} (has {firing} firing, {quiet} not firing)"
        );
    }

    let out = run(std::process::Command::new(promtool())
        .current_dir(dir.path())
        .args(["test", "rules", "alerts_test.yaml"]))
    .unwrap_or_else(|e| panic!("promtool test rules failed:\n{e:#}"));
    assert!(out.contains("SUCCESS"), "{out}");
}
