//! The report "Service": one address on the pod network's host side (every replica's
//! `KH_EXTERNAL_REPORTING_URL`) that forwards each connection to a live replica, rotating
//! over them and skipping those that refuse, as a Kubernetes Service with several
//! endpoints would. It records every exchange: the run UUID of the request and the status
//! of the answer, so a test can prove no valid report was rejected.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One request through the proxy.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub at: Timestamp,
    /// `POST /externalCheckStatus HTTP/1.1`
    pub request_line: String,
    pub run_uuid: Option<String>,
    /// The replica port that got it; `None` when no replica accepted the connection.
    pub backend: Option<u16>,
    /// The answer's status; `None` when the connection closed without one.
    pub status: Option<u16>,
    /// The start of the answer's body, for failure messages.
    pub body: String,
}

struct Shared {
    /// Where the replicas listen: this address, on the ports of `backends`.
    ip: IpAddr,
    backends: Mutex<Vec<u16>>,
    exchanges: Mutex<Vec<Exchange>>,
    next: AtomicUsize,
    log: PathBuf,
}

pub struct ReportProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for ReportProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReportProxy {
    /// Listens on a free port of `ip`, where the replicas listen too; logs every exchange
    /// to `log`.
    pub async fn start(ip: IpAddr, log: &Path) -> Result<ReportProxy> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            ip,
            backends: Mutex::new(Vec::new()),
            exchanges: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            log: log.to_path_buf(),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    let exchange = forward(&shared, client).await;
                    shared.record(exchange);
                });
            }
        });
        Ok(ReportProxy { addr, shared, task })
    }

    /// `http://<ip>:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The replica ports to forward to.
    pub fn set_backends(&self, ports: Vec<u16>) {
        *self.shared.backends.lock().unwrap() = ports;
    }

    /// Every exchange so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.exchanges.lock().unwrap().clone()
    }
}

impl Shared {
    fn record(&self, exchange: Exchange) {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
        {
            let _ = writeln!(
                file,
                "{} {:?} run={} backend={} status={} {}",
                exchange.at,
                exchange.request_line,
                exchange.run_uuid.as_deref().unwrap_or("-"),
                exchange
                    .backend
                    .map_or("none".to_string(), |p| p.to_string()),
                exchange
                    .status
                    .map_or("none".to_string(), |s| s.to_string()),
                exchange.body.replace('\n', " "),
            );
        }
        self.exchanges.lock().unwrap().push(exchange);
    }
}

/// Connects to the first replica, in rotation, that accepts.
async fn connect(shared: &Shared) -> Option<(u16, TcpStream)> {
    let ports = shared.backends.lock().unwrap().clone();
    let start = shared.next.fetch_add(1, Ordering::Relaxed);
    for k in 0..ports.len() {
        let port = ports[(start + k) % ports.len()];
        let attempt = TcpStream::connect((shared.ip, port));
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(1), attempt).await {
            return Some((port, stream));
        }
    }
    None
}

async fn forward(shared: &Shared, client: TcpStream) -> Exchange {
    let at = Timestamp::now();
    let mut exchange = Exchange {
        at,
        request_line: String::new(),
        run_uuid: None,
        backend: None,
        status: None,
        body: String::new(),
    };
    let (mut client_read, mut client_write) = client.into_split();
    let Some((port, server)) = connect(shared).await else {
        // Read what the client sent, for the record, then close without an answer.
        let mut head = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_millis(200), client_read.read_buf(&mut head)).await;
        describe_request(&head, &mut exchange);
        return exchange;
    };
    exchange.backend = Some(port);
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut head = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if head.len() < 64 * 1024 {
                        head.extend_from_slice(&buf[..n]);
                    }
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = server_write.shutdown().await;
        head
    };
    let downstream = async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if answer.len() < 64 * 1024 {
                        answer.extend_from_slice(&buf[..n]);
                    }
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = client_write.shutdown().await;
        answer
    };
    let both = async { tokio::join!(upstream, downstream) };
    let (head, answer) = tokio::time::timeout(Duration::from_secs(60), both)
        .await
        .unwrap_or_default();
    describe_request(&head, &mut exchange);
    let answer = String::from_utf8_lossy(&answer);
    exchange.status = answer
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok());
    exchange.body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.chars().take(500).collect())
        .unwrap_or_default();
    exchange
}

fn describe_request(head: &[u8], exchange: &mut Exchange) {
    let text = String::from_utf8_lossy(head);
    exchange.request_line = text.lines().next().unwrap_or_default().to_string();
    exchange.run_uuid = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("kh-run-uuid")
                .then(|| value.trim().to_string())
        });
}
