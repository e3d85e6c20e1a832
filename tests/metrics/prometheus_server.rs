//! A real Prometheus for tests: scrapes one 127.0.0.1 target every second and answers PromQL
//! through its HTTP API. Depends on std and serde_json only, so an end-to-end test can include
//! it as is (`#[path = "../../tests/metrics/prometheus_server.rs"] mod prometheus_server;`).
//!
//! Blocking; from async code call it inside `tokio::task::spawn_blocking`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One series of a query result: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The queries of Kuberhealthy v2's Grafana dashboard.
pub const V2_DASHBOARD_QUERIES: [&str; 3] = [
    "avg(kuberhealthy_check) by(check)",
    "avg(kuberhealthy_cluster_state)",
    "avg(kuberhealthy_running)",
];

/// What the v2 dashboard should show: each check's average status, the cluster state, and
/// `kuberhealthy_running`.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardExpectation {
    pub checks: BTreeMap<String, f64>,
    pub cluster_state: f64,
    pub running: f64,
}

/// A running `prometheus`, stopped and its storage removed on drop.
pub struct PrometheusServer {
    child: Child,
    address: SocketAddr,
    dir: PathBuf,
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

impl PrometheusServer {
    /// Starts `prometheus` (found at `binary`) on a free 127.0.0.1 port, scraping `target`
    /// (`127.0.0.1:<port>`, path `/metrics`) every second, and waits until it is ready.
    pub fn start(binary: &Path, target: SocketAddr) -> Result<PrometheusServer, String> {
        let dir = std::env::temp_dir().join(format!(
            "kh-prometheus-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(dir.join("data")).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config = dir.join("prometheus.yml");
        fs::write(&config, scrape_config(target))
            .map_err(|e| format!("{}: {e}", config.display()))?;
        let log_path = dir.join("prometheus.log");
        let log =
            fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let address = free_address()?;
        let mut command = Command::new(binary);
        // Prometheus dies with the test process, even when that is killed.
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut server = PrometheusServer {
            child,
            address,
            dir,
        };
        server.wait_until("ready", Duration::from_secs(30), |s| {
            Ok(s.get("/-/ready")
                .map(|(code, _)| code == 200)
                .unwrap_or(false))
        })?;
        Ok(server)
    }

    /// Waits until the scrape target reports `up` (a scrape succeeded).
    pub fn wait_for_target_up(&mut self, within: Duration) -> Result<(), String> {
        self.wait_until("the scrape target to be up", within, |s| {
            let targets = s.api("/api/v1/targets")?;
            let active = targets["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(error) = active
                .iter()
                .filter_map(|t| t["lastError"].as_str())
                .find(|e| !e.is_empty())
            {
                // Not fatal yet: the first scrape may race the target's start.
                eprintln!("prometheus: scrape error so far: {error}");
            }
            Ok(active.iter().any(|t| t["health"] == "up"))
        })
    }

    /// An instant query; the series it returns.
    pub fn query(&mut self, promql: &str) -> Result<Vec<Series>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode_query(promql)))?;
        if data["resultType"] != "vector" {
            return Err(format!("{promql}: expected a vector result, got {data}"));
        }
        data["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| series(promql, s))
            .collect()
    }

    /// Waits until `promql` returns at least one series, and returns them.
    pub fn wait_for_query(
        &mut self,
        promql: &str,
        within: Duration,
    ) -> Result<Vec<Series>, String> {
        let mut found = Vec::new();
        self.wait_until(&format!("a result for {promql}"), within, |s| {
            found = s.query(promql)?;
            Ok(!found.is_empty())
        })?;
        Ok(found)
    }

    /// Runs the v2 dashboard's three queries until they show `expected` (or `within` passes,
    /// then fails with what they showed last).
    pub fn check_v2_dashboard(
        &mut self,
        expected: &DashboardExpectation,
        within: Duration,
    ) -> Result<(), String> {
        let mut seen = None;
        let waited = self.wait_until("the v2 dashboard's expected series", within, |s| {
            let [by_check, cluster_state, running] = V2_DASHBOARD_QUERIES;
            let checks: BTreeMap<String, f64> = s
                .query(by_check)?
                .into_iter()
                .map(|series| {
                    let check = series.labels.get("check").cloned().unwrap_or_default();
                    (check, series.value)
                })
                .collect();
            let single = |found: Vec<Series>| match found.as_slice() {
                [one] if one.labels.is_empty() => Some(one.value),
                _ => None,
            };
            let shown = (
                checks,
                single(s.query(cluster_state)?),
                single(s.query(running)?),
            );
            let matches = shown.0 == expected.checks
                && shown.1 == Some(expected.cluster_state)
                && shown.2 == Some(expected.running);
            seen = Some(shown);
            Ok(matches)
        });
        waited.map_err(|e| {
            format!(
                "{e}\nexpected {expected:?}\nlast seen (checks, cluster_state, running): {seen:?}"
            )
        })
    }

    /// The log so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    fn wait_until(
        &mut self,
        what: &str,
        within: Duration,
        mut condition: impl FnMut(&mut Self) -> Result<bool, String>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "prometheus exited ({status}) while waiting for {what}:\n{}",
                    self.log()
                ));
            }
            if condition(self)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no {what} within {within:?}; prometheus log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `GET path` on the API; the `data` of a `success` answer.
    fn api(&self, path: &str) -> Result<Value, String> {
        let (code, body) = self.get(path)?;
        let value: Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}: {body}"))?;
        if code != 200 || value["status"] != "success" {
            return Err(format!("GET {path}: HTTP {code}: {body}"));
        }
        Ok(value["data"].clone())
    }

    fn get(&self, path: &str) -> Result<(u16, String), String> {
        http_get(self.address, path)
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn scrape_config(target: SocketAddr) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: kuberhealthy\n    metrics_path: /metrics\n    \
         static_configs:\n      - targets: ['{target}']\n"
    )
}

/// A port nobody listens on right now (the OS's choice, released for prometheus to take).
fn free_address() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map_err(|e| e.to_string())
}

fn series(promql: &str, value: &Value) -> Result<Series, String> {
    let labels = value["metric"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let sample = value["value"][1]
        .as_str()
        .ok_or_else(|| format!("{promql}: a series without a value: {value}"))?;
    let value = sample
        .parse()
        .map_err(|e| format!("{promql}: value {sample:?}: {e}"))?;
    Ok(Series { labels, value })
}

/// Percent-encodes a query parameter (everything but RFC 3986's unreserved characters).
fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A plain HTTP/1.0 GET (Prometheus answers without chunking and closes the connection).
fn http_get(address: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
        .map_err(|e| format!("connect {address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")
        .map_err(|e| format!("GET {path}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("GET {path}: {e}"))?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("GET {path}: no status line in {head:?}"))?;
    Ok((code, body.to_string()))
}
