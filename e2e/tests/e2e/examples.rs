//! The example checks of `make run` really run under the pod runner and report.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{EnvVar, Pod, PodSpec};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;
use kuberhealthy_e2e::manifests;
use kuberhealthy_e2e::session::workspace_root;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{TIMEOUT, cluster};

/// One request the fake reporting endpoint received.
#[derive(Clone, Debug)]
struct Report {
    request_line: String,
    run_uuid: Option<String>,
    body: serde_json::Value,
}

/// A stand-in for a replica's `/externalCheckStatus` on the pod network's host side, where
/// checker pods reach it: records each request, answers 200.
async fn reporting_endpoint() -> (SocketAddr, Arc<Mutex<Vec<Report>>>) {
    let listener = TcpListener::bind((cluster().await.host_ip(), 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then as many body bytes as Content-Length says.
            let (head, body) = loop {
                let n = socket.read(&mut buf).await.unwrap_or(0);
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= length || n == 0 {
                        break (head.to_string(), body.to_string());
                    }
                } else if n == 0 {
                    break (text, String::new());
                }
            };
            let run_uuid = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("kh-run-uuid")
                    .then(|| value.trim().to_string())
            });
            let report = Report {
                request_line: head.lines().next().unwrap_or_default().to_string(),
                run_uuid,
                body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
            };
            sink.lock().unwrap().push(report);
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (addr, reports)
}

/// Runs the pod spec of the example check in `file` as a checker pod would run, with the
/// two variables kuberhealthy injects, and returns what it reported.
async fn run_example(file: &str, addr: SocketAddr, reports: &Arc<Mutex<Vec<Report>>>) -> Report {
    let ctx = cluster()
        .await
        .context(&format!("example-{file}"))
        .await
        .unwrap();
    let path = workspace_root().join("e2e/examples").join(file);
    let check = manifests::parse(&std::fs::read_to_string(&path).unwrap())
        .unwrap()
        .remove(0);
    let mut spec: PodSpec = serde_json::from_value(check.data["spec"]["podSpec"].clone()).unwrap();
    let run_uuid = format!("run-{}", ctx.namespace());
    for container in &mut spec.containers {
        let env = container.env.get_or_insert_with(Vec::new);
        env.push(EnvVar {
            name: "KH_REPORTING_URL".into(),
            value: Some(format!("http://{addr}/externalCheckStatus")),
            ..Default::default()
        });
        env.push(EnvVar {
            name: "KH_RUN_UUID".into(),
            value: Some(run_uuid.clone()),
            ..Default::default()
        });
    }
    spec.restart_policy = Some("Never".into());
    let pods: Api<Pod> = Api::namespaced(ctx.client().await.unwrap(), ctx.namespace());
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("checker".into()),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    };
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let done = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.phase.as_deref())
            .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
    };
    let pod = tokio::time::timeout(TIMEOUT, await_condition(pods, "checker", done))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let log = ctx.container_log("checker", "main");
    assert_eq!(
        pod.status.unwrap().phase.as_deref(),
        Some("Succeeded"),
        "the checker failed; its output:\n{log}"
    );
    let report = reports
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.run_uuid.as_deref() == Some(&run_uuid))
        .cloned();
    report
        .unwrap_or_else(|| panic!("no report with kh-run-uuid {run_uuid}; checker output:\n{log}"))
}

#[tokio::test]
async fn passing_example_reports_ok() {
    let (addr, reports) = reporting_endpoint().await;
    let report = run_example("passing-check.yaml", addr, &reports).await;
    assert_eq!(report.request_line, "POST /externalCheckStatus HTTP/1.1");
    assert_eq!(report.body, serde_json::json!({"OK": true}));
}

#[tokio::test]
async fn failing_example_reports_a_clear_error() {
    let (addr, reports) = reporting_endpoint().await;
    let report = run_example("failing-check.yaml", addr, &reports).await;
    assert_eq!(report.body["OK"], false);
    let error = report.body["Errors"][0].as_str().unwrap_or_default();
    assert!(
        error.starts_with("example-fail: ") && error.contains("503"),
        "{:?}",
        report.body
    );
}
