//! The checks that reach something over the network: dns-status, http, http-content and
//! network-connection, against names and servers on the pod network's host side.

use std::time::Duration;

use serde_json::json;

use crate::support::servers::{HttpServer, Route, TcpTarget, closed_address};
use crate::support::{CheckTest, NODE, summary};

#[tokio::test]
async fn dns_status_resolves_localhost_and_fails_for_an_invalid_name() {
    let t = CheckTest::start("dns-status").await;
    let grant = t.grant("dns-status").await;
    assert!(grant.kubeconfig.is_none(), "dns-status reads no object");

    const INVALID: &str = "kuberhealthy-e2e.invalid";
    // The example's NODE_NAME (a fieldRef to spec.nodeName) is kept: it names the node.
    t.apply(&t.check_from_example(
        "dns-status",
        "dns-status-internal",
        &[("HOSTNAME", "localhost")],
    ))
    .await;
    t.apply(&t.check_from_example("dns-status", "dns-status-invalid", &[("HOSTNAME", INVALID)]))
        .await;

    let ok = t.result("dns-status-internal").await;
    ok.assert_ok();
    let failing = t.result("dns-status-invalid").await;
    let prefix = format!("DNS lookup of {INVALID} on node {NODE} failed: ");
    failing.single_error(&format!("{prefix:?}..."), |e| {
        e.starts_with(&prefix) && e.len() > prefix.len()
    });
    t.assert_page(&[&ok, &failing]).await;
    println!("{:#}", json!(summary(&[&ok, &failing])));
}

#[tokio::test]
async fn http_counts_answers_against_the_passing_percentage() {
    let t = CheckTest::start("http").await;
    assert!(t.grant("http").await.kubeconfig.is_none());

    // The example asks 5 GETs one second apart, 80% of them answering 200.
    let server = HttpServer::start(
        t.host_ip(),
        &[
            ("/mostly-up", Route::new(&[503, 200, 200, 200, 200], "up")),
            (
                "/mostly-down",
                Route::new(&[200, 503, 200, 503, 200], "down"),
            ),
            ("/orders", Route::new(&[201], "created")),
        ],
    )
    .await;
    let up = server.url("/mostly-up");
    let down = server.url("/mostly-down");
    let orders = server.url("/orders");
    t.apply(&t.check_from_example("http", "http", &[("CHECK_URL", &up)]))
        .await;
    t.apply(&t.check_from_example("http", "http-degraded", &[("CHECK_URL", &down)]))
        .await;
    let body = r#"{"item": "health-check", "quantity": 1}"#;
    t.apply(&t.check_from_example(
        "http",
        "http-post",
        &[
            ("CHECK_URL", &orders),
            ("COUNT", "1"),
            ("REQUEST_TYPE", "POST"),
            ("REQUEST_BODY", body),
            ("EXPECTED_STATUS_CODE", "201"),
        ],
    ))
    .await;

    let outcomes = t.results(&["http", "http-degraded", "http-post"]).await;
    let [ok, degraded, post] = &outcomes[..] else {
        unreachable!()
    };
    // 4 of 5 is 80%: just enough.
    ok.assert_ok();
    degraded.assert_errors(&[format!(
        "3 of 5 GET requests to {down} answered HTTP 200 (60.0%), under PASSING_PERCENT 80%; \
         the others: 2× HTTP 503"
    )]);
    post.assert_ok();

    for path in ["/mostly-up", "/mostly-down"] {
        let requests = server.requests_to(path);
        assert_eq!(requests.len(), 5, "COUNT 5 requests to {path}");
        assert!(requests.iter().all(|r| r.method == "GET"), "{requests:?}");
        // SECONDS 1 apart (the server sees them with a little jitter).
        for pair in requests.windows(2) {
            let gap = pair[1].at.duration_since(pair[0].at);
            assert!(
                gap >= Duration::from_millis(900),
                "requests to {path} only {gap:?} apart"
            );
        }
    }
    let posts = server.requests_to("/orders");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].method, "POST");
    assert_eq!(posts[0].body, body);
    assert_eq!(posts[0].content_type.as_deref(), Some("application/json"));
    t.assert_page(&[ok, degraded, post]).await;
    println!("{:#}", json!(summary(&[ok, degraded, post])));
}

#[tokio::test]
async fn http_content_finds_the_string_or_says_what_came_back() {
    let t = CheckTest::start("http-content").await;
    assert!(t.grant("http-content").await.kubeconfig.is_none());

    const WANTED: &str = "all systems operational";
    let maintenance = "<html><body>down for maintenance</body></html>";
    let server = HttpServer::start(
        t.host_ip(),
        &[
            (
                "/status",
                Route::new(
                    &[200],
                    "<html><body><h1>Shop</h1><p>all systems operational</p></body></html>",
                ),
            ),
            ("/maintenance", Route::new(&[503], maintenance)),
        ],
    )
    .await;
    let status = server.url("/status");
    let down = server.url("/maintenance");
    t.apply(&t.check_from_example(
        "http-content",
        "http-content",
        &[("TARGET_URL", &status), ("TARGET_STRING", WANTED)],
    ))
    .await;
    t.apply(&t.check_from_example(
        "http-content",
        "http-content-maintenance",
        &[("TARGET_URL", &down), ("TARGET_STRING", WANTED)],
    ))
    .await;

    let ok = t.result("http-content").await;
    ok.assert_ok();
    let failing = t.result("http-content-maintenance").await;
    failing.assert_errors(&[format!(
        "TARGET_STRING {WANTED:?} was not found in the {} bytes {down} answered (HTTP 503)",
        maintenance.len()
    )]);
    assert_eq!(server.requests_to("/status").len(), 1);
    assert_eq!(server.requests_to("/maintenance").len(), 1);
    t.assert_page(&[&ok, &failing]).await;
    println!("{:#}", json!(summary(&[&ok, &failing])));
}

#[tokio::test]
async fn network_connection_reachable_unreachable_and_inverted() {
    let t = CheckTest::start("network-connection").await;
    assert!(t.grant("network-connection").await.kubeconfig.is_none());

    let open = TcpTarget::start(t.host_ip()).await;
    let open_target = format!("tcp://{}", open.addr);
    let closed_target = format!("tcp://{}", closed_address(t.host_ip()));
    let checks = [
        ("network-connection", &open_target, "false"),
        ("network-connection-refused", &closed_target, "false"),
        ("network-connection-must-fail", &closed_target, "true"),
        ("network-connection-must-fail-open", &open_target, "true"),
    ];
    for (name, target, unreachable) in checks {
        t.apply(&t.check_from_example(
            "network-connection",
            name,
            &[
                ("CONNECTION_TARGET", target),
                ("CONNECTION_TARGET_UNREACHABLE", unreachable),
            ],
        ))
        .await;
    }
    let outcomes = t.results(&checks.map(|(name, ..)| name)).await;
    let [reachable, refused, must_fail, must_fail_open] = &outcomes[..] else {
        unreachable!()
    };
    reachable.assert_ok();
    let prefix = format!("{closed_target} is unreachable: ");
    refused.single_error("a refused connection", |e| {
        e.starts_with(&prefix) && e.to_lowercase().contains("refused")
    });
    must_fail.assert_ok();
    must_fail_open.assert_errors(&[format!(
        "{open_target} is reachable, but CONNECTION_TARGET_UNREACHABLE=true says it must not be"
    )]);
    assert!(
        open.accepted() >= 2,
        "both checks of the open port dialled it"
    );
    t.assert_page(&[reachable, refused, must_fail, must_fail_open])
        .await;
    println!(
        "{:#}",
        json!(summary(&[reachable, refused, must_fail, must_fail_open]))
    );
}
