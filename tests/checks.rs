//! The built-in checks that need no cluster, against local servers on 127.0.0.1: HTTP, TCP,
//! UDP and TLS (certificates made in the test). And `kuberhealthy check <name>` end to end
//! through a local report endpoint: what it reports, a bad knob, an undeliverable report.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use jiff::{Timestamp, ToSpan};
use kuberhealthy::checker::checks::{self, Outcome, knobs::Knobs};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

async fn execute(name: &str, pairs: &[(&str, &str)]) -> Outcome {
    let check = checks::find(name).unwrap();
    checks::execute(check, Knobs::from_pairs(pairs), Duration::from_secs(10)).await
}

/// `/ok` answers 200 "service ready"; `/flaky` answers 200, 500, 200, 500, ...; `/echo`
/// answers 201 when the body is `{"x":1}`.
async fn http_server() -> String {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/ok", get(|| async { "service ready" }))
        .route(
            "/flaky",
            get(|State(calls): State<Arc<AtomicUsize>>| async move {
                if calls.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                    StatusCode::OK
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            }),
        )
        .route(
            "/echo",
            post(|body: String| async move {
                if body == r#"{"x":1}"# {
                    StatusCode::CREATED
                } else {
                    StatusCode::BAD_REQUEST
                }
            }),
        )
        .with_state(calls);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn http_passes_and_fails_around_the_passing_percentage() {
    let base = http_server().await;
    let ok = format!("{base}/ok");
    assert_eq!(
        execute("http", &[("CHECK_URL", &ok), ("COUNT", "3")]).await,
        Ok(())
    );
    let flaky = format!("{base}/flaky");
    // 2 of 4 answer 200: 50% meets a bar of 50 and misses one of 51.
    assert_eq!(
        execute(
            "http",
            &[
                ("CHECK_URL", &flaky),
                ("COUNT", "4"),
                ("PASSING_PERCENT", "50")
            ]
        )
        .await,
        Ok(())
    );
    let e = execute(
        "http",
        &[
            ("CHECK_URL", &flaky),
            ("COUNT", "4"),
            ("PASSING_PERCENT", "51"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(
        e,
        [format!(
            "2 of 4 GET requests to {flaky} answered HTTP 200 (50.0%), under PASSING_PERCENT 51%; the others: 2× HTTP 500"
        )]
    );
}

#[tokio::test]
async fn http_sends_the_method_and_body() {
    let base = http_server().await;
    let echo = format!("{base}/echo");
    let knobs = [
        ("CHECK_URL", echo.as_str()),
        ("REQUEST_TYPE", "POST"),
        ("REQUEST_BODY", r#"{"x":1}"#),
        ("EXPECTED_STATUS_CODE", "201"),
    ];
    assert_eq!(execute("http", &knobs).await, Ok(()));
}

#[tokio::test]
async fn http_names_a_refused_connection() {
    let url = format!("http://127.0.0.1:{}/", closed_port().await);
    let e = execute("http", &[("CHECK_URL", &url)]).await.unwrap_err();
    assert!(
        e[0].starts_with(&format!(
            "0 of 1 GET requests to {url} answered HTTP 200 (0.0%), under PASSING_PERCENT 100%; the others: 1× error sending request"
        )),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_check_that_overruns_fails_naming_the_time_it_had() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let check = checks::find("http-content").unwrap();
    let knobs = Knobs::from_pairs(&[("TARGET_URL", &url), ("TARGET_STRING", "x")]);
    let started = std::time::Instant::now();
    let e = checks::execute(check, knobs, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(e.len(), 1);
    assert!(
        e[0] == "http-content did not finish within 1s, the time left before the run's deadline"
            || e[0].starts_with(&format!("GET {url} failed (TIMEOUT_DURATION 1s)")),
        "{e:?}"
    );
    held.abort();
}

#[tokio::test]
async fn http_content_finds_the_string_or_says_what_came_back() {
    let base = http_server().await;
    let ok = format!("{base}/ok");
    assert_eq!(
        execute(
            "http-content",
            &[("TARGET_URL", &ok), ("TARGET_STRING", "ready")]
        )
        .await,
        Ok(())
    );
    assert_eq!(
        execute(
            "http-content",
            &[("TARGET_URL", &ok), ("TARGET_STRING", "healthy")]
        )
        .await
        .unwrap_err(),
        [format!(
            "TARGET_STRING \"healthy\" was not found in the 13 bytes {ok} answered (HTTP 200)"
        )]
    );
}

#[tokio::test]
async fn network_connection_reachable_and_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = format!("tcp://{}", listener.local_addr().unwrap());
    assert_eq!(
        execute("network-connection", &[("CONNECTION_TARGET", &open)]).await,
        Ok(())
    );
    let closed = format!("tcp://127.0.0.1:{}", closed_port().await);
    let e = execute("network-connection", &[("CONNECTION_TARGET", &closed)])
        .await
        .unwrap_err();
    assert!(
        e[0].starts_with(&format!("{closed} is unreachable: ")),
        "{e:?}"
    );
    assert_eq!(
        execute(
            "network-connection",
            &[
                ("CONNECTION_TARGET", &closed),
                ("CONNECTION_TARGET_UNREACHABLE", "true")
            ]
        )
        .await,
        Ok(())
    );
    assert_eq!(
        execute(
            "network-connection",
            &[
                ("CONNECTION_TARGET", &open),
                ("CONNECTION_TARGET_UNREACHABLE", "true")
            ]
        )
        .await
        .unwrap_err(),
        [format!(
            "{open} is reachable, but CONNECTION_TARGET_UNREACHABLE=true says it must not be"
        )]
    );
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp = format!("udp://{}", udp.local_addr().unwrap());
    assert_eq!(
        execute("network-connection", &[("CONNECTION_TARGET", &udp)]).await,
        Ok(())
    );
}

#[tokio::test]
async fn dns_status_resolves_localhost() {
    assert_eq!(
        execute("dns-status", &[("HOSTNAME", "localhost")]).await,
        Ok(())
    );
}

/// A TLS server on 127.0.0.1 with a self-signed certificate for 127.0.0.1 that expires on
/// `not_after` (a date); completes handshakes and closes.
async fn tls_server(not_after: jiff::civil::Date) -> u16 {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(
        not_after.year().into(),
        not_after.month() as u8,
        not_after.day() as u8,
    );
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kuberhealthy-test");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(socket).await;
            });
        }
    });
    port
}

fn today_plus(days: i64) -> jiff::civil::Date {
    Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(days.days())
        .unwrap()
}

#[tokio::test]
async fn ssl_expiry_around_the_days_threshold() {
    // Certificates end at midnight UTC: 62 days ahead is more than 61 days left.
    let port = tls_server(today_plus(62)).await.to_string();
    let knobs = |days: &'static str| {
        vec![
            ("DOMAIN_NAME", "127.0.0.1"),
            ("PORT", port.as_str()),
            ("INSECURE", "true"),
            ("DAYS", days),
        ]
    };
    assert_eq!(execute("ssl-expiry", &knobs("60")).await, Ok(()));
    assert_eq!(execute("ssl-expiry", &knobs("61")).await, Ok(()));
    let e = execute("ssl-expiry", &knobs("62")).await.unwrap_err();
    let not_after: Timestamp = today_plus(62)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp();
    let days_left = Timestamp::now().duration_until(not_after).as_secs() / 86_400;
    assert_eq!(
        e,
        [format!(
            "the certificate of 127.0.0.1:{port} (CN=kuberhealthy-test) expires at {not_after}, in {days_left} days, within DAYS 62"
        )]
    );
}

#[tokio::test]
async fn ssl_expiry_verifies_unless_insecure() {
    let port = tls_server(today_plus(400)).await.to_string();
    let e = execute(
        "ssl-expiry",
        &[("DOMAIN_NAME", "127.0.0.1"), ("PORT", &port)],
    )
    .await
    .unwrap_err();
    assert!(
        e[0].starts_with(&format!(
            "the TLS handshake with 127.0.0.1:{port} failed: invalid peer certificate"
        )),
        "{e:?}"
    );
}

#[tokio::test]
async fn ssl_handshake_trusts_a_self_signed_host_only_when_told() {
    let port = tls_server(today_plus(400)).await.to_string();
    let e = execute(
        "ssl-handshake",
        &[("DOMAIN_NAME", "127.0.0.1"), ("PORT", &port)],
    )
    .await
    .unwrap_err();
    assert!(
        e[0].starts_with(&format!(
            "the TLS handshake with 127.0.0.1:{port} failed: invalid peer certificate"
        )),
        "{e:?}"
    );
    assert_eq!(
        execute(
            "ssl-handshake",
            &[
                ("DOMAIN_NAME", "127.0.0.1"),
                ("PORT", &port),
                ("SELF_SIGNED", "true")
            ]
        )
        .await,
        Ok(())
    );
    let closed = closed_port().await.to_string();
    let e = execute(
        "ssl-handshake",
        &[("DOMAIN_NAME", "127.0.0.1"), ("PORT", &closed)],
    )
    .await
    .unwrap_err();
    assert!(
        e[0].starts_with(&format!("cannot connect to 127.0.0.1:{closed}: ")),
        "{e:?}"
    );
}

/// A report endpoint recording the bodies it receives.
async fn report_endpoint() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = Router::new()
        .route(
            "/externalCheckStatus",
            post(
                |State(r): State<Arc<Mutex<Vec<Value>>>>, body: String| async move {
                    r.lock().await.push(serde_json::from_str(&body).unwrap());
                    StatusCode::OK
                },
            ),
        )
        .with_state(received.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/externalCheckStatus",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

async fn check_command(
    args: &[&str],
    reporting_url: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kuberhealthy"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(args)
        .env("KH_REPORTING_URL", reporting_url)
        .env("KH_RUN_UUID", "run-7")
        .env(
            "KH_CHECK_RUN_DEADLINE",
            (Timestamp::now().as_second() + 20).to_string(),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_check_command_reports_passes_failures_and_bad_knobs() {
    let base = http_server().await;
    let (url, received) = report_endpoint().await;
    let ok = format!("{base}/ok");
    let out = check_command(&["check", "http"], &url, &[("CHECK_URL", &ok)]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check_command(
        &["check", "http"],
        &url,
        &[("CHECK_URL", &ok), ("COUNT", "ten")],
    )
    .await;
    assert!(
        out.status.success(),
        "a delivered failure is a successful run"
    );
    let out = check_command(&["check", "network-connection"], &url, &[]).await;
    assert!(out.status.success());
    assert_eq!(
        *received.lock().await,
        [
            serde_json::json!({"OK": true, "Errors": []}),
            serde_json::json!({"OK": false, "Errors": ["COUNT is \"ten\", expected a whole number"]}),
            serde_json::json!({"OK": false, "Errors": ["CONNECTION_TARGET is not set, expected tcp://host:port or udp://host:port"]}),
        ]
    );
}

#[tokio::test]
async fn the_check_command_fails_when_the_report_cannot_be_delivered() {
    let nowhere = format!(
        "http://127.0.0.1:{}/externalCheckStatus",
        closed_port().await
    );
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kuberhealthy"));
    cmd.env_clear()
        .args(["check", "dns-status"])
        .env("HOSTNAME", "localhost")
        .env("KH_REPORTING_URL", nowhere)
        .env("KH_RUN_UUID", "run-8")
        .env(
            "KH_CHECK_RUN_DEADLINE",
            (Timestamp::now().as_second() + 2).to_string(),
        );
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kuberhealthy check dns-status: the result could not be reported"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_check_lists_the_built_in_ones() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kuberhealthy"))
        .args(["check", "pod-sparkles"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in checks::names() {
        assert!(stderr.contains(name), "{stderr}");
    }
}
