//! The HTTP server every replica runs, bounded against slow and hostile clients: every pod
//! of a cluster can reach it, and the replica that serves it may be the Lease holder, whose
//! renewals must not wait on anyone's request.
//!
//! - A request's headers must arrive within the header read time-out (hyper's), which is
//!   also how long an idle keep-alive connection is kept.
//! - Its body must arrive within the body read time-out, whole (not per chunk), or it is
//!   answered 408 and the connection is closed.
//! - At most `max_connections` connections are served at once; more wait in the listen
//!   backlog.
//! - At most `max_requests_in_flight` requests are handled at once; more are answered 503
//!   with `Retry-After` at once (checkers retry). The probes are never shed.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, Service, ServiceBuilder};

use crate::api::duration::GoDuration;
use crate::controller::reply::json_error;
use crate::controller::report::parse::MAX_BODY_BYTES;

/// The bounds of a replica's HTTP server (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpLimits {
    pub header_read_timeout: GoDuration,
    pub body_read_timeout: GoDuration,
    pub max_connections: u32,
    pub max_requests_in_flight: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10).into(),
            body_read_timeout: Duration::from_secs(10).into(),
            max_connections: 1024,
            max_requests_in_flight: 256,
        }
    }
}

/// How long a shed client is told to wait before it retries.
const RETRY_AFTER_SECONDS: u64 = 1;

/// `work` behind the in-flight limit and its load shedding, beside `probes` (never shed),
/// all behind the body read time-out and size limit.
pub fn bound(probes: Router, work: Router, limits: &HttpLimits) -> Router {
    let in_flight = limits.max_requests_in_flight as usize;
    let semaphore = Arc::new(Semaphore::new(in_flight));
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |_: BoxError| async move {
            shed_answer(in_flight)
        }))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(semaphore));
    let body = BodyBounds {
        timeout: limits.body_read_timeout.as_duration(),
        // A report's limit: no route takes a larger body.
        max_bytes: MAX_BODY_BYTES,
    };
    probes
        .merge(work.layer(shed))
        .layer(middleware::from_fn_with_state(body, read_body_within))
}

fn shed_answer(in_flight: usize) -> Response {
    let mut response = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "this replica is handling {in_flight} requests already; retry in {RETRY_AFTER_SECONDS} s"
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}

#[derive(Clone, Copy)]
struct BodyBounds {
    timeout: Duration,
    max_bytes: usize,
}

/// Reads the whole request body within the time-out and the size limit before the request
/// is handled, so no handler (and no in-flight slot) waits on a slow client.
async fn read_body_within(
    State(bounds): State<BodyBounds>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let read = Limited::new(body, bounds.max_bytes).collect();
    match tokio::time::timeout(bounds.timeout, read).await {
        Err(_) => json_error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {}; send the whole body at once",
                GoDuration::from(bounds.timeout)
            ),
        ),
        Ok(Err(e)) if e.is::<LengthLimitError>() => json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} bytes; a report is at most that",
                bounds.max_bytes
            ),
        ),
        Ok(Err(e)) => json_error(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
        ),
        Ok(Ok(collected)) => {
            let body = Body::from(collected.to_bytes());
            next.run(Request::from_parts(parts, body)).await
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown`, then lets the requests in
/// progress finish. Each request carries its connection's peer address as
/// [`ConnectInfo<SocketAddr>`], as `into_make_service_with_connect_info` gives it.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout.as_duration());
    let graceful = GracefulShutdown::new();
    loop {
        // At the cap, further connections wait in the kernel's listen backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, mostly: give connections time to close.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let app = app.clone();
        let service = tower::service_fn(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().call(request)
        });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(peer = %peer, %error, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::Notify;

    use super::*;

    /// Long enough for any answer on a loaded machine.
    const DEADLINE: Duration = Duration::from_secs(10);

    struct Server {
        addr: SocketAddr,
        shutdown: CancellationToken,
        /// Signalled when `/slow` is entered; `/slow` answers once `release` is signalled.
        entered: Arc<Notify>,
        release: Arc<Notify>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.shutdown.cancel();
        }
    }

    async fn start(limits: HttpLimits) -> Server {
        let entered = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let (e, r) = (entered.clone(), release.clone());
        let probes = Router::new().route("/healthz", get(|| async { "ok" }));
        let work = Router::new()
            .route(
                "/slow",
                get(move || async move {
                    e.notify_one();
                    r.notified().await;
                    "done"
                }),
            )
            .route(
                "/echo",
                post(|body: axum::body::Bytes| async move { format!("{} bytes", body.len()) }),
            );
        let app = bound(probes, work, &limits);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, app, limits, shutdown.clone()));
        Server {
            addr,
            shutdown,
            entered,
            release,
        }
    }

    fn limits(header: u64, body: u64, connections: u32, in_flight: u32) -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_millis(header).into(),
            body_read_timeout: Duration::from_millis(body).into(),
            max_connections: connections,
            max_requests_in_flight: in_flight,
        }
    }

    /// Everything the server sends until it closes the connection.
    async fn read_all(stream: &mut TcpStream) -> String {
        let mut raw = Vec::new();
        tokio::time::timeout(DEADLINE, stream.read_to_end(&mut raw))
            .await
            .expect("the server closes the connection")
            .ok();
        String::from_utf8_lossy(&raw).into_owned()
    }

    async fn request(addr: SocketAddr, raw: String) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        read_all(&mut stream).await
    }

    fn get_request(path: &str) -> String {
        format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n")
    }

    #[tokio::test]
    async fn a_slowloris_connection_is_closed_after_the_header_time_out() {
        let server = start(limits(300, 10_000, 16, 16)).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let started = Instant::now();
        stream.write_all(b"GET /healthz HT").await.unwrap();
        let answer = read_all(&mut stream).await;
        let held = started.elapsed();
        assert!(
            held >= Duration::from_millis(250),
            "closed after {held:?}, before the time-out"
        );
        assert!(!answer.contains("200 OK"), "{answer}");
        // The server still answers others.
        let ok = request(server.addr, get_request("/healthz")).await;
        assert!(ok.starts_with("HTTP/1.0 200"), "{ok}");
    }

    #[tokio::test]
    async fn a_chunked_body_that_never_ends_is_cut() {
        let server = start(limits(10_000, 300, 16, 16)).await;
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        write
            .write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        // A chunk every 50 ms for up to a minute: far longer than the body time-out.
        let trickle = tokio::spawn(async move {
            for _ in 0..1200 {
                if write.write_all(b"1\r\nx\r\n").await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        });
        let started = Instant::now();
        let mut raw = Vec::new();
        tokio::time::timeout(DEADLINE, read.read_to_end(&mut raw))
            .await
            .expect("the connection is closed")
            .ok();
        let answer = String::from_utf8_lossy(&raw);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("the request body did not arrive within 300ms"),
            "{answer}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            tokio::time::timeout(DEADLINE, trickle)
                .await
                .unwrap()
                .unwrap(),
            "the sender's writes fail once the connection is cut"
        );
    }

    #[tokio::test]
    async fn requests_beyond_the_in_flight_cap_are_shed_with_retry_after_but_probes_are_not() {
        let server = start(limits(10_000, 10_000, 16, 1)).await;
        let entered = server.entered.notified();
        let first = tokio::spawn(request(server.addr, get_request("/slow")));
        tokio::time::timeout(DEADLINE, entered)
            .await
            .expect("the first request is being handled");

        let shed = request(server.addr, get_request("/slow")).await;
        assert!(shed.starts_with("HTTP/1.0 503"), "{shed}");
        assert!(
            shed.to_ascii_lowercase().contains("retry-after: 1\r\n"),
            "{shed}"
        );
        assert!(
            shed.contains(
                r#"{"error":"this replica is handling 1 requests already; retry in 1 s"}"#
            ),
            "{shed}"
        );
        let echo = request(
            server.addr,
            "POST /echo HTTP/1.0\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}".into(),
        )
        .await;
        assert!(echo.starts_with("HTTP/1.0 503"), "{echo}");
        let probe = request(server.addr, get_request("/healthz")).await;
        assert!(probe.starts_with("HTTP/1.0 200"), "{probe}");

        server.release.notify_one();
        let answer = tokio::time::timeout(DEADLINE, first)
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        let after = request(
            server.addr,
            "POST /echo HTTP/1.0\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}".into(),
        )
        .await;
        assert!(after.ends_with("2 bytes"), "{after}");
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_until_one_closes() {
        let server = start(limits(10_000, 10_000, 1, 16)).await;
        let idle = TcpStream::connect(server.addr).await.unwrap();
        // The first connection holds the only slot; the next is not served meanwhile.
        let mut waiting = TcpStream::connect(server.addr).await.unwrap();
        waiting
            .write_all(get_request("/healthz").as_bytes())
            .await
            .unwrap();
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut byte)).await;
        assert!(early.is_err(), "served while the cap was reached");
        drop(idle);
        let answer = read_all(&mut waiting).await;
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_413() {
        let server = start(HttpLimits::default()).await;
        let size = MAX_BODY_BYTES + 1;
        let head = format!("POST /echo HTTP/1.0\r\nHost: test\r\nContent-Length: {size}\r\n\r\n");
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        // The server may answer and close before it has read all of it.
        let _ = stream.write_all(&vec![b' '; size]).await;
        let answer = read_all(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.0 413"), "{answer}");
        assert!(
            answer.contains("the request body is larger than 1048576 bytes"),
            "{answer}"
        );
    }
}
