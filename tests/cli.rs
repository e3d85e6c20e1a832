//! The `kuberhealthy` command as users run it: flags beat environment beats config file.

use std::process::Command;

fn kuberhealthy() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuberhealthy"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

fn config_file(text: &str) -> tempfile_path::TempFile {
    tempfile_path::TempFile::new(text)
}

/// A config file in the target directory, removed when dropped.
mod tempfile_path {
    pub struct TempFile(pub std::path::PathBuf);
    impl TempFile {
        pub fn new(text: &str) -> TempFile {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
            let path = dir.join(format!("config-{}.yaml", uuid::Uuid::new_v4()));
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn printed_config(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn flag_beats_environment_beats_file() {
    let file = config_file("listenAddress: \":9000\"\nlogLevel: error\nnamespace: from-file\n");
    let config = printed_config(
        kuberhealthy()
            .args(["run", "--print-config", "--config"])
            .arg(&file.0)
            .args(["--listen-address", "127.0.0.1:9100"])
            .env("KH_LISTEN_ADDRESS", "127.0.0.1:9200")
            .env("KH_LOG_LEVEL", "warn")
            .env("POD_NAME", "kh-0")
            .env("POD_NAMESPACE", "kuberhealthy"),
    );
    assert_eq!(
        config["listenAddress"], "127.0.0.1:9100",
        "the flag wins over the environment"
    );
    assert_eq!(
        config["logLevel"], "warn",
        "the environment wins over the file"
    );
    assert_eq!(
        config["targetNamespace"], "from-file",
        "the file wins over the default"
    );
    assert_eq!(config["podName"], "kh-0");
}

#[test]
fn v2_environment_is_honoured() {
    let config = printed_config(
        kuberhealthy()
            .args(["run", "--print-config"])
            .env("POD_NAME", "kh-1")
            .env("POD_NAMESPACE", "monitoring")
            .env("TARGET_NAMESPACE", "checks")
            .env(
                "KH_EXTERNAL_REPORTING_URL",
                "http://kh.monitoring.svc/externalCheckStatus",
            ),
    );
    assert_eq!(config["podNamespace"], "monitoring");
    assert_eq!(config["targetNamespace"], "checks");
    assert_eq!(
        config["reportingUrl"],
        "http://kh.monitoring.svc/externalCheckStatus"
    );
}

#[test]
fn a_bad_value_stops_start_up_naming_key_and_value() {
    let file = config_file("maxErrorPodCount: lots\n");
    let out = kuberhealthy()
        .args(["run", "--config"])
        .arg(&file.0)
        .env("POD_NAME", "kh-0")
        .env("POD_NAMESPACE", "kuberhealthy")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(": maxErrorPodCount: \"lots\" is not a whole number from 0 to 4294967295"),
        "{stderr}"
    );
}

#[test]
fn an_explicit_missing_config_file_is_an_error() {
    let out = kuberhealthy()
        .args(["run", "--config", "/nonexistent/kuberhealthy.yaml"])
        .env("POD_NAME", "kh-0")
        .env("POD_NAMESPACE", "kuberhealthy")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read /nonexistent/kuberhealthy.yaml"),
        "{stderr}"
    );
}

#[test]
fn crd_prints_three_documents() {
    let out = kuberhealthy()
        .args(["crd", "--only", "v2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().filter(|l| *l == "---").count(), 3);
    for name in [
        "khchecks.comcast.github.io",
        "khjobs.comcast.github.io",
        "khstates.comcast.github.io",
    ] {
        assert!(text.contains(&format!("name: {name}")), "missing {name}");
    }
}

#[test]
fn crd_prints_v2s_three_and_the_healthcheck() {
    let run = |args: &[&str]| {
        let out = kuberhealthy().args(args).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let all = run(&["crd"]);
    let v2 = run(&["crd", "--only", "v2"]);
    let v3 = run(&["crd", "--only", "healthcheck"]);
    assert_eq!(all, format!("{v2}{v3}"));
    assert_eq!(v3.lines().filter(|l| *l == "---").count(), 1);
    assert!(v3.contains("name: healthchecks.kuberhealthy.github.io"));
}

fn convert(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = kuberhealthy()
        .arg("convert")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/v2/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn documents(text: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple(text).unwrap()
}

#[test]
fn convert_turns_files_into_healthchecks_and_stdin_back() {
    let out = convert(
        &[&fixture("dns-status-internal.yaml"), &fixture("khjob.yaml")],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = documents(&text);
    let kinds: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| {
            (
                d["apiVersion"].as_str().unwrap(),
                d["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("kuberhealthy.github.io/v2", "HealthCheck")),
        "{kinds:?}"
    );
    assert!(
        !kinds
            .iter()
            .any(|(group, _)| *group == "comcast.github.io/v1"),
        "{kinds:?}"
    );
    let job = docs
        .iter()
        .find(|d| d["spec"]["singleRunOnly"] == true)
        .expect("the khjob became a single-run HealthCheck");
    assert!(job["spec"]["podSpec"]["spec"]["containers"].is_array());

    // And back, from stdin: the same v2 specs.
    let back = convert(&["--to", "v2"], &text);
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    let back = documents(&String::from_utf8(back.stdout).unwrap());
    let originals: Vec<serde_json::Value> = [
        std::fs::read_to_string(fixture("dns-status-internal.yaml")).unwrap(),
        std::fs::read_to_string(fixture("khjob.yaml")).unwrap(),
    ]
    .iter()
    .flat_map(|t| documents(t))
    .collect();
    for original in originals
        .iter()
        .filter(|d| d["apiVersion"] == "comcast.github.io/v1" && d["kind"] == "KuberhealthyCheck")
    {
        let name = &original["metadata"]["name"];
        let converted = back
            .iter()
            .find(|d| d["metadata"]["name"] == *name && d["kind"] == "KuberhealthyCheck")
            .unwrap_or_else(|| panic!("{name} did not come back"));
        assert_eq!(converted["spec"], original["spec"], "{name}");
    }
}

#[test]
fn convert_refuses_what_has_no_equivalent_and_prints_nothing() {
    let out = convert(&[&fixture("khstate.yaml")], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("khstate.yaml: document 1 (KuberhealthyState")
            && stderr.contains("holds a result, not a check"),
        "{stderr}"
    );
    let out = convert(
        &[],
        "apiVersion: comcast.github.io/v1\nkind: KuberhealthyCheck\nmetadata: {name: x}\nspec: {runInterval: 1m, podSpec: {containers: []}, schedule: \"* * * * *\"}\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "stdin: document 1 (KuberhealthyCheck x): spec.schedule has no HealthCheck equivalent"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
