//! The static-file anchor of scenario 2: Debian's `nginx` (one worker) serving the same bytes
//! a replica served just before, and Debian's `wrk` as the load generator of both, installed
//! by the bench when missing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Installs nginx and wrk from Debian's packages when either is missing.
pub fn ensure_tools() -> Result<()> {
    let missing: Vec<&str> = ["nginx", "wrk"]
        .into_iter()
        .filter(|tool| find(tool).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let script = kuberhealthy_e2e::session::workspace_root().join("e2e/tools/apt-install.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg("bench")
        .args(&missing)
        .status()
        .context("running e2e/tools/apt-install.sh")?;
    if !status.success() {
        bail!("installing {} failed ({status})", missing.join(", "));
    }
    for tool in missing {
        find(tool).with_context(|| format!("{tool} is still missing after installing it"))?;
    }
    Ok(())
}

/// `tool` on PATH or in an sbin directory (nginx lives in /usr/sbin).
fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// nginx with one worker serving files from a directory of its own, stopped when dropped.
pub struct StaticServer {
    child: Child,
    root: PathBuf,
    pub addr: SocketAddr,
}

impl StaticServer {
    /// Serves `files` (name, content type, bytes) at `/<name>` on a free port of 127.0.0.1.
    pub async fn start(dir: &Path, files: &[(&str, &str, Vec<u8>)]) -> Result<StaticServer> {
        let root = dir.join("htdocs");
        std::fs::create_dir_all(&root)?;
        let mut locations = String::new();
        for (name, content_type, bytes) in files {
            std::fs::write(root.join(name), bytes)?;
            locations.push_str(&format!(
                "    location = /{name} {{ default_type \"{content_type}\"; }}\n"
            ));
        }
        let ip = std::net::Ipv4Addr::LOCALHOST;
        let port = std::net::TcpListener::bind((ip, 0))?.local_addr()?.port();
        let addr = SocketAddr::from((ip, port));
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "user root;\nworker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\n\
                 error_log {dir}/error.log;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n\
                 keepalive_requests 1000000;\n  keepalive_timeout 60s;\n\
                 client_body_temp_path {dir}/tmp;\n  proxy_temp_path {dir}/tmp;\n\
                 fastcgi_temp_path {dir}/tmp;\n  uwsgi_temp_path {dir}/tmp;\n  scgi_temp_path {dir}/tmp;\n\
                 server {{\n    listen {addr};\n    root {root};\n{locations}  }}\n}}\n",
                dir = dir.display(),
                root = root.display(),
            ),
        )?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        let nginx = find("nginx").context("nginx is not installed")?;
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let server = StaticServer { child, root, addr };
        let first = files.first().map(|f| f.0).unwrap_or_default();
        kuberhealthy_e2e::wait_until("nginx to serve", Duration::from_secs(20), || async {
            Ok(kuberhealthy_e2e::http::get(addr, &format!("/{first}"))
                .await
                .ok()
                .filter(|r| r.status == 200)
                .map(|_| ()))
        })
        .await?;
        Ok(server)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `wrk` run measured.
#[derive(Debug, Clone)]
pub struct WrkResult {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    pub errors: u64,
    pub output: String,
}

impl WrkResult {
    pub fn to_json(&self) -> Value {
        json!({
            "rps": self.rps, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
            "requests": self.requests, "errors": self.errors, "wrk_output": self.output,
        })
    }
}

/// `wrk` with `connections` keep-alive connections on 2 threads for `duration`, with
/// `headers` on every request.
pub async fn wrk(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
    headers: &[&str],
) -> Result<WrkResult> {
    let wrk = find("wrk").context("wrk is not installed")?;
    let mut command = tokio::process::Command::new(wrk);
    command
        .arg("-t2")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("10s")
        .arg("--latency");
    for header in headers {
        command.arg("-H").arg(header);
    }
    let output = command
        .arg(format!("http://{addr}{path}"))
        .output()
        .await
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_wrk(&text)
}

/// Reads `Requests/sec`, the latency distribution's 50% and 99%, the request count and the
/// errors (socket errors and non-2xx/3xx answers) from wrk's report.
pub fn parse_wrk(text: &str) -> Result<WrkResult> {
    let mut result = WrkResult {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        errors: 0,
        output: text.to_string(),
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rps] => result.rps = rps.parse()?,
            ["50%", latency] => result.p50_ms = millis(latency)?,
            ["99%", latency] => result.p99_ms = millis(latency)?,
            [requests, "requests", "in", ..] => result.requests = requests.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => result.errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                result.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    if result.rps.is_nan() {
        bail!("no Requests/sec in wrk's output: {text}");
    }
    Ok(result)
}

/// wrk's durations: `812.00us`, `3.51ms`, `1.02s`, `2.00m`.
fn millis(value: &str) -> Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {value:?}"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => bail!("unknown unit in {value:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_reports() {
        let report = "Running 4s test @ http://127.0.0.1:8080/json
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.71ms    1.20ms  21.33ms   80.12%
    Req/Sec     2.16k   120.00     2.40k    70.00%
  Latency Distribution
     50%    3.51ms
     75%    4.10ms
     90%    5.00ms
     99%  812.00us
  17280 requests in 4.00s, 11.40GB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   4319.20
Transfer/sec:      2.85GB
";
        let r = parse_wrk(report).unwrap();
        assert_eq!(r.rps, 4319.2);
        assert_eq!(r.p50_ms, 3.51);
        assert_eq!(r.p99_ms, 0.812);
        assert_eq!(r.requests, 17280);
        assert_eq!(r.errors, 7);
        assert_eq!(millis("1.02s").unwrap(), 1020.0);
    }
}
