//! A small HTTP/1.1 load loop of our own: `concurrency` keep-alive connections to a
//! replica on the pod network's host side, each sending the next request as soon as the previous answer is read, until
//! `max_requests` were sent or `time_cap` passed. Plain tokio sockets, so the client costs
//! little of the two cores it shares with the server under test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::stats::Summary;

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Latency of each successful request, in milliseconds.
    pub latencies_ms: Vec<f64>,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub bytes: usize,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn summary(&self) -> Summary {
        Summary::of(&self.latencies_ms)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.latencies_ms.len(),
            "errors": self.errors,
            "first_error": self.first_error,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rps": self.rps(),
            "latency_ms": self.summary().to_json(),
            "mean_body_bytes": self.bytes as f64 / self.latencies_ms.len().max(1) as f64,
        })
    }
}

/// One request of a load run.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn get(path: &str) -> Request {
        Request {
            method: "GET",
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn encode(&self, addr: SocketAddr) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\nHost: {addr}\r\n", self.method, self.path);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !self.body.is_empty() || self.method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// GETs `path` with `concurrency` connections: at most `max_requests` in all, for at most
/// `time_cap`. Any answer but 200 counts as an error.
pub async fn run(
    addr: SocketAddr,
    path: &str,
    concurrency: usize,
    max_requests: usize,
    time_cap: Duration,
) -> LoadResult {
    let request = Request::get(path);
    run_with(addr, concurrency, max_requests, time_cap, move |_| {
        request.clone()
    })
    .await
}

/// Like [`run`], with request `n` (0-based, in the order they are sent) made by `make`.
pub async fn run_with<F>(
    addr: SocketAddr,
    concurrency: usize,
    max_requests: usize,
    time_cap: Duration,
    make: F,
) -> LoadResult
where
    F: Fn(usize) -> Request + Send + Sync + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let make = Arc::new(make);
    let began = Instant::now();
    let deadline = began + time_cap;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let make = make.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut first_error = None;
            let mut bytes = 0;
            let mut conn: Option<BufReader<TcpStream>> = None;
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= max_requests {
                    break;
                }
                let wire = make(n).encode(addr);
                let sent = Instant::now();
                let outcome = tokio::time::timeout(
                    deadline.saturating_duration_since(sent) + Duration::from_secs(10),
                    exchange(&mut conn, addr, &wire),
                )
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer in time")));
                match outcome {
                    Ok((200, len)) => {
                        latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                        bytes += len;
                    }
                    Ok((status, _)) => {
                        errors += 1;
                        first_error.get_or_insert(format!("HTTP {status}"));
                    }
                    Err(err) => {
                        errors += 1;
                        conn = None;
                        first_error.get_or_insert(format!("{err:#}"));
                    }
                }
            }
            (latencies, errors, first_error, bytes)
        }));
    }
    let mut result = LoadResult {
        latencies_ms: Vec::new(),
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        bytes: 0,
    };
    for worker in workers {
        match worker.await {
            Ok((latencies, errors, first_error, bytes)) => {
                result.latencies_ms.extend(latencies);
                result.errors += errors;
                result.bytes += bytes;
                if result.first_error.is_none() {
                    result.first_error = first_error;
                }
            }
            Err(err) => {
                result.errors += 1;
                result.first_error.get_or_insert(format!("worker: {err}"));
            }
        }
    }
    result.elapsed = began.elapsed();
    result
}

/// Sends one request on the connection (opening it if needed) and reads the whole answer.
/// Returns the status and the body length; drops the connection if the server closes it.
async fn exchange(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: SocketAddr,
    wire: &[u8],
) -> Result<(u16, usize)> {
    if conn.is_none() {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        *conn = Some(BufReader::with_capacity(64 * 1024, stream));
    }
    let stream = conn.as_mut().expect("connected above");
    stream.get_mut().write_all(wire).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    if line.is_empty() {
        bail!("the server closed the connection");
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP status line: {line:?}"))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body_len = 0;
    if chunked {
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                line.clear();
                stream.read_line(&mut line).await?;
                break;
            }
            skip(stream, size + 2).await?;
            body_len += size;
        }
    } else if let Some(length) = length {
        skip(stream, length).await?;
        body_len = length;
    } else {
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await?;
        body_len = rest.len();
        close = true;
    }
    if close {
        *conn = None;
    }
    Ok((status, body_len))
}

async fn skip(stream: &mut BufReader<TcpStream>, mut n: usize) -> Result<()> {
    let mut buf = [0u8; 16 * 1024];
    while n > 0 {
        let want = n.min(buf.len());
        let got = stream.read(&mut buf[..want]).await?;
        if got == 0 {
            bail!("the connection closed inside a body");
        }
        n -= got;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A keep-alive server answering alternately with a Content-Length and a chunked body.
    #[tokio::test]
    async fn reads_sized_and_chunked_answers_on_one_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut socket = BufReader::new(socket);
            let mut n = 0;
            loop {
                let mut line = String::new();
                loop {
                    line.clear();
                    if socket.read_line(&mut line).await.unwrap() == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let answer: &[u8] = if n % 2 == 0 {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                } else {
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                };
                socket.get_mut().write_all(answer).await.unwrap();
                n += 1;
            }
        });
        let result = run(addr, "/x", 1, 6, Duration::from_secs(10)).await;
        assert_eq!(result.errors, 0, "{:?}", result.first_error);
        assert_eq!(result.latencies_ms.len(), 6);
        assert_eq!(result.bytes, 3 * 5 + 3 * 5);
    }
}
