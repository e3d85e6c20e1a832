//! The check client against a local report endpoint: what it sends, what it retries and what
//! it never retries; and `kuberhealthy report` as a shell check uses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use jiff::Timestamp;
use kuberhealthy::checker::client::{ReportError, Reporter};
use serde_json::Value;
use tokio::sync::Mutex;

/// A report endpoint that answers from a script of statuses and records what it received.
#[derive(Clone, Default)]
struct Endpoint {
    calls: Arc<AtomicUsize>,
    script: Arc<Vec<u16>>,
    received: Arc<Mutex<Vec<(String, Value)>>>,
}

async fn receive(
    State(e): State<Endpoint>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let n = e.calls.fetch_add(1, Ordering::SeqCst);
    let uuid = headers
        .get("kh-run-uuid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    e.received
        .lock()
        .await
        .push((uuid, serde_json::from_str(&body).unwrap_or(Value::Null)));
    let code = e.script.get(n).copied().unwrap_or(200);
    let status = StatusCode::from_u16(code).unwrap();
    (status, format!("{{\"error\": \"scripted {code}\"}}"))
}

async fn serve(script: &[u16]) -> (String, Endpoint) {
    let endpoint = Endpoint {
        script: Arc::new(script.to_vec()),
        ..Default::default()
    };
    let app = Router::new()
        .route("/externalCheckStatus", post(receive))
        .with_state(endpoint.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/externalCheckStatus",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, endpoint)
}

fn deadline_in(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp::from_second(Timestamp::now().as_second() + seconds).unwrap())
}

#[tokio::test]
async fn sends_v2s_body_and_the_run_header() {
    let (url, endpoint) = serve(&[]).await;
    let reporter = Reporter::new(url, "run-1".into(), deadline_in(30)).unwrap();
    reporter
        .report_failure(&["Error 1 here".into(), "Error 2 here".into()])
        .await
        .unwrap();
    reporter.report_success().await.unwrap();
    let received = endpoint.received.lock().await;
    assert_eq!(received[0].0, "run-1");
    assert_eq!(
        received[0].1,
        serde_json::json!({"OK": false, "Errors": ["Error 1 here", "Error 2 here"]})
    );
    assert_eq!(received[1].1, serde_json::json!({"OK": true, "Errors": []}));
}

#[tokio::test]
async fn a_4xx_is_never_retried_and_its_reason_is_returned() {
    let (url, endpoint) = serve(&[410]).await;
    let reporter = Reporter::new(url, "run-1".into(), deadline_in(30)).unwrap();
    let err = reporter.report_success().await.unwrap_err();
    assert!(
        matches!(err, ReportError::Refused { status: 410, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the report was refused with HTTP 410: scripted 410"
    );
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_5xx_is_retried_until_it_succeeds() {
    let (url, endpoint) = serve(&[500, 503, 200]).await;
    let reporter = Reporter::new(url, "run-1".into(), deadline_in(30)).unwrap();
    reporter.report_success().await.unwrap();
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn transport_errors_are_retried_until_the_deadline() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reporter = Reporter::new(
        format!("http://127.0.0.1:{port}/externalCheckStatus"),
        "u".into(),
        deadline_in(2),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = reporter.report_success().await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, ReportError::Undelivered(_)), "{err:?}");
    assert!(
        err.to_string().contains("cannot reach http://127.0.0.1:"),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(500),
        "it retried for a while: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "it gave up near the deadline: {took:?}"
    );
}

fn kuberhealthy() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kuberhealthy"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

#[tokio::test]
async fn the_report_command_for_shell_checks() {
    let (url, endpoint) = serve(&[200, 400]).await;
    let deadline = (Timestamp::now().as_second() + 30).to_string();
    let run = |args: Vec<&'static str>| {
        let (url, deadline) = (url.clone(), deadline.clone());
        tokio::task::spawn_blocking(move || {
            kuberhealthy()
                .arg("report")
                .args(args)
                .env("KH_REPORTING_URL", url)
                .env("KH_RUN_UUID", "run-9")
                .env("KH_CHECK_RUN_DEADLINE", deadline)
                .output()
                .unwrap()
        })
    };
    let ok = run(vec!["--error", "disk full", "--error", "no quota"])
        .await
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        endpoint.received.lock().await[0].1,
        serde_json::json!({"OK": false, "Errors": ["disk full", "no quota"]})
    );
    let refused = run(vec!["--ok"]).await.unwrap();
    assert!(!refused.status.success());
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim(),
        "kuberhealthy report: the report was refused with HTTP 400: scripted 400"
    );
}

#[test]
fn the_report_command_names_a_missing_variable() {
    let out = kuberhealthy().args(["report", "--ok"]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "kuberhealthy report: KH_REPORTING_URL is not set: this command runs inside a checker pod, where Kuberhealthy sets it"
    );
    let neither = kuberhealthy().arg("report").output().unwrap();
    assert!(!neither.status.success(), "--ok or --error is required");
}
