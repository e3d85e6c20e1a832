//! The status page in a real browser: a headless Debian Chromium driven over WebDriver shows
//! the overview of the local cluster (passing and failing checks, failing first), narrows it
//! by namespace and by name, shows a new result without a reload (server-sent events),
//! opens the failing check's page with its recent runs; `curl /` still gets v2's JSON, and
//! badges answer from the cache. Screenshots land in `target/e2e-artifacts/page/`.

mod browser;

use std::path::Path;
use std::time::Duration;

use browser::Browser;
use fantoccini::Locator;
use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::{TestCluster, TestContext, http, manifests, wait_until};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// Deadline for any condition: generous, for a loaded 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(90);

async fn cluster() -> &'static TestCluster {
    static READY: OnceCell<&'static TestCluster> = OnceCell::const_new();
    READY
        .get_or_init(|| async {
            let cluster = TestCluster::shared(Path::new(env!("CARGO_BIN_EXE_pod-runner")))
                .await
                .expect("starting the shared test cluster (etcd, kube-apiserver, pod runner)");
            let crds = std::fs::read_to_string(
                workspace_root().join("charts/kuberhealthy/crds/crds.yaml"),
            )
            .expect("the committed CRDs");
            let admin = cluster.control_plane().client().await.unwrap();
            manifests::install_crds(&admin, &crds, TIMEOUT)
                .await
                .expect("installing the CRDs");
            cluster
        })
        .await
}

/// A check whose checker runs `script` (sh) and then reports `report` with its run's UUID.
fn check(name: &str, interval: &str, script: &str, report: &Value) -> Value {
    let report = report.to_string().replace('\'', r"'\''");
    raw_check(
        name,
        interval,
        &format!(
            "{script} curl --fail --silent --show-error -H \"kh-run-uuid: $KH_RUN_UUID\" \
             -H 'Content-Type: application/json' -d '{report}' \"$KH_REPORTING_URL\""
        ),
    )
}

/// A check whose checker runs `script` (sh), and reports only if the script does.
fn raw_check(name: &str, interval: &str, script: &str) -> Value {
    json!({
        "apiVersion": "comcast.github.io/v1",
        "kind": "KuberhealthyCheck",
        "metadata": {"name": name},
        "spec": {
            "runInterval": interval,
            "timeout": "5m",
            "podSpec": {"containers": [{
                "name": "main",
                "image": "docker.io/curlimages/curl:8.11.1",
                "command": ["sh", "-c"],
                "args": [script],
            }]}
        }
    })
}

async fn apply(ctx: &TestContext, value: &Value) {
    ctx.apply_yaml(&serde_json::to_string(value).unwrap())
        .await
        .unwrap();
}

/// The rows the overview shows (not hidden): `(namespace/name, state)`.
async fn visible_rows(browser: &Browser) -> Vec<(String, String)> {
    let rows = browser
        .eval(
            "return Array.from(document.querySelectorAll('tr[data-key]'))
               .filter(function (r) { return !r.hidden; })
               .map(function (r) { return [r.getAttribute('data-key'), r.getAttribute('data-state')]; });",
        )
        .await
        .unwrap();
    serde_json::from_value(rows).unwrap()
}

/// Waits until the overview's visible rows satisfy `ready`, and returns them.
async fn rows_when(
    browser: &Browser,
    what: &str,
    ready: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    wait_until(what, TIMEOUT, || async {
        let rows = visible_rows(browser).await;
        Ok(ready(&rows).then_some(rows))
    })
    .await
    .unwrap()
}

fn state_of<'a>(rows: &'a [(String, String)], key: &str) -> Option<&'a str> {
    rows.iter().find(|(k, _)| k == key).map(|(_, s)| s.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_chromium() {
    let cluster = cluster().await;
    let web = cluster.context("page-web").await.unwrap();
    let db = cluster.context("page-db").await.unwrap();
    let (web_ns, db_ns) = (web.namespace().to_string(), db.namespace().to_string());

    // One replica for both namespaces; checkers report to it on the pod network.
    let addr = web.free_address().unwrap();
    let mut options = web.replica_options("kuberhealthy-0");
    options.listen_port = Some(addr.port());
    options.external_reporting_url = Some(format!("http://{addr}/externalCheckStatus"));
    options.env = [
        ("KH_LEADER_ELECTION_LEASE_DURATION", "3s"),
        ("KH_LEADER_ELECTION_RENEW_DEADLINE", "2s"),
        ("KH_LEADER_ELECTION_RETRY_PERIOD", "500ms"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut replica = kuberhealthy_e2e::Replica::spawn(options).unwrap();
    replica.wait_ready(TIMEOUT).await.unwrap();

    let error = "disk /data is 97% full on db-0 (limit 90%)";
    apply(
        &web,
        &check("frontend", "1h", "", &json!({"OK": true, "Errors": []})),
    )
    .await;
    apply(
        &web,
        &check(
            "storage",
            "1h",
            "",
            &json!({"OK": false, "Errors": [error]}),
        ),
    )
    .await;
    apply(
        &db,
        &check("replication", "1h", "", &json!({"OK": true, "Errors": []})),
    )
    .await;
    // Exits without reporting: the leader keeps the checker's last lines with the run.
    let fatal = "FATAL: password authentication failed for user migrator";
    apply(
        &web,
        &raw_check(
            "migrate",
            "1h",
            &format!("echo 'connecting to db-0:5432'; echo '{fatal}' >&2; exit 1"),
        ),
    )
    .await;
    // Its checker waits for a file the test creates once the page is open.
    let gate = db.log_dir().join("gate");
    let wait_for_gate = format!("while [ ! -e '{}' ]; do sleep 0.1; done;", gate.display());
    apply(
        &db,
        &check(
            "backup",
            "1h",
            &wait_for_gate,
            &json!({"OK": true, "Errors": []}),
        ),
    )
    .await;
    for (ctx, name) in [
        (&web, "frontend"),
        (&web, "storage"),
        (&web, "migrate"),
        (&db, "replication"),
    ] {
        ctx.khstate_spec_when(name, "a first result", TIMEOUT, |s| {
            s.get("LastRun").is_some()
        })
        .await
        .unwrap();
    }

    let browser = Browser::start(web.log_dir()).await.unwrap();
    browser.client.goto(&replica.url("/")).await.unwrap();
    let key = |ns: &str, name: &str| format!("{ns}/{name}");
    let rows = rows_when(&browser, "the overview to list the five checks", |rows| {
        state_of(rows, &key(&web_ns, "frontend")) == Some("passing")
            && state_of(rows, &key(&web_ns, "storage")) == Some("failing")
            && state_of(rows, &key(&web_ns, "migrate")) == Some("failing")
            && state_of(rows, &key(&db_ns, "replication")) == Some("passing")
            && state_of(rows, &key(&db_ns, "backup")) == Some("running")
    })
    .await;
    // Failing first; the replica's own name as leader and server; uptime from the counters.
    assert_eq!(rows[0].0, key(&web_ns, "migrate"), "{rows:?}");
    assert_eq!(rows[1].0, key(&web_ns, "storage"), "{rows:?}");
    let uptime = |name: String| {
        let browser = &browser;
        async move {
            let script = format!(
                "return document.querySelector('tr[data-key=\"{name}\"] td.uptime').textContent;"
            );
            browser.eval(&script).await.unwrap()
        }
    };
    wait_until(
        "uptime of a passing and a failing check",
        TIMEOUT,
        || async {
            let passing = uptime(key(&web_ns, "frontend")).await;
            let failing = uptime(key(&web_ns, "storage")).await;
            Ok((passing == json!("100% · 100% · 100%")
                && failing == json!("0.00% · 0.00% · 0.00%"))
            .then_some(()))
        },
    )
    .await
    .unwrap();
    let header = browser
        .client
        .find(Locator::Css("header"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(header.contains("leader: kuberhealthy-0"), "{header}");
    assert!(header.contains("served by: kuberhealthy-0"), "{header}");
    let shown = browser.screenshot("overview").await.unwrap();
    println!("screenshot: {}", shown.display());

    // The namespace filter, then the search, narrow the list without a request.
    browser
        .client
        .find(Locator::Id("namespace"))
        .await
        .unwrap()
        .select_by_value(&db_ns)
        .await
        .unwrap();
    rows_when(
        &browser,
        "the namespace filter to narrow the list",
        |rows| {
            rows.len() == 2
                && rows
                    .iter()
                    .all(|(k, _)| k.starts_with(&format!("{db_ns}/")))
        },
    )
    .await;
    browser
        .client
        .find(Locator::Id("namespace"))
        .await
        .unwrap()
        .select_by_value("")
        .await
        .unwrap();
    let search = browser.client.find(Locator::Id("search")).await.unwrap();
    search.send_keys("stor").await.unwrap();
    rows_when(
        &browser,
        "the search to narrow the list to storage",
        |rows| rows == [(key(&web_ns, "storage"), "failing".to_string())],
    )
    .await;
    browser.screenshot("filtered").await.unwrap();
    search.clear().await.unwrap();
    // `clear` fires no input event: the page filters on the next keystroke.
    search.send_keys(" ").await.unwrap();
    rows_when(
        &browser,
        "every check again once the search is empty",
        |rows| rows.len() == 5,
    )
    .await;

    // A new result appears without a reload: the marker set in this document survives.
    browser
        .eval("window.khMarker = 'same document'; return null;")
        .await
        .unwrap();
    std::fs::write(&gate, b"go").unwrap();
    db.khstate_spec_when("backup", "its result", TIMEOUT, |s| s["OK"] == true)
        .await
        .unwrap();
    rows_when(
        &browser,
        "backup to turn passing on the open page",
        |rows| state_of(rows, &key(&db_ns, "backup")) == Some("passing"),
    )
    .await;
    let marker = browser
        .eval("return window.khMarker || null;")
        .await
        .unwrap();
    assert_eq!(marker, json!("same document"), "the page reloaded");

    // The failing check's page: its recent runs with the error, and kubectl commands.
    browser
        .client
        .find(Locator::Css(&format!("a[href='/checks/{web_ns}/storage']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let history = wait_until("the check's page and its history", TIMEOUT, || async {
        let found = browser.client.find(Locator::Id("history")).await;
        Ok(match found {
            Ok(table) => Some(table.text().await?),
            Err(_) => None,
        })
    })
    .await
    .unwrap();
    assert!(history.contains("failing"), "{history}");
    assert!(history.contains(error), "{history}");
    let page = browser.client.source().await.unwrap();
    assert!(page.contains(&format!("kubectl -n {web_ns} get khstate storage -o yaml")));

    // The check that exited without reporting: its run shows what the checker printed.
    browser
        .client
        .goto(&replica.url(&format!("/checks/{web_ns}/migrate")))
        .await
        .unwrap();
    let log = browser
        .client
        .find(Locator::Css("#history pre.log"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains(fatal), "{log}");
    assert!(log.contains("connecting to db-0:5432"), "{log}");
    browser.screenshot("failing-check").await.unwrap();
    browser.close().await.unwrap();

    // curl's `Accept: */*`, and no Accept at all: v2's JSON, as before.
    for accept in [Some("*/*"), None] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let response = http::request(replica.addr(), "GET", "/", &headers, b"")
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        let page: Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(page["OK"], false);
        assert_eq!(
            page["CheckDetails"][key(&web_ns, "storage")]["Errors"][0],
            error
        );
        assert_eq!(page["CurrentMaster"], "kuberhealthy-0");
    }

    // Badges, from the cache; an unknown check is a 404 that says why.
    let badge = http::get(
        replica.addr(),
        &format!("/badges/{web_ns}/storage/status.svg"),
    )
    .await
    .unwrap();
    assert_eq!(badge.status, 200);
    assert!(badge.body.starts_with("<svg"), "{}", badge.body);
    assert!(badge.body.contains("storage: failing"));
    let missing = http::get(
        replica.addr(),
        &format!("/badges/{web_ns}/absent/status.svg"),
    )
    .await
    .unwrap();
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains(&format!("{web_ns}/absent")),
        "{}",
        missing.body
    );
}
