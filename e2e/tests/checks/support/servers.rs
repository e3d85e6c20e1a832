//! Local targets for the checks: an HTTP server answering scripted statuses and bodies and
//! recording every request and a TCP listener that counts connections, on the pod network's
//! host side where checker pods reach them, and TLS servers with certificates made by rcgen.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::jiff::{Timestamp, ToSpan, civil::Date, tz::TimeZone};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What a path answers: `statuses` in turn (cycling), always with `body`.
#[derive(Clone, Debug)]
pub struct Route {
    pub statuses: Vec<u16>,
    pub body: String,
}

impl Route {
    pub fn new(statuses: &[u16], body: &str) -> Route {
        Route {
            statuses: statuses.to_vec(),
            body: body.to_string(),
        }
    }
}

/// A request the HTTP server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: String,
    pub at: Instant,
}

/// An HTTP/1.1 server answering each path by its [`Route`] (404 elsewhere). It stops when
/// dropped.
pub struct HttpServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    task: JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    /// Listens on a free port of `ip` (the pod network's host side, for checker pods).
    pub async fn start(ip: Ipv4Addr, routes: &[(&str, Route)]) -> HttpServer {
        let routes: Arc<BTreeMap<String, Route>> = Arc::new(
            routes
                .iter()
                .map(|(path, route)| (path.to_string(), route.clone()))
                .collect(),
        );
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (routes, sink) = (routes.clone(), sink.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, &routes, &sink).await;
                });
            }
        });
        HttpServer {
            addr,
            requests,
            task,
        }
    }

    /// `http://<ip>:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests to `path` so far, in order.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

/// Reads one request, answers it from `routes` and closes.
async fn serve(
    mut socket: TcpStream,
    routes: &BTreeMap<String, Route>,
    sink: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let (head, mut body) = loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            break (head, raw[end + 4..].to_vec());
        }
    };
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while body.len() < length {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let mut request_line = head.lines().next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let (status, text) = {
        let mut requests = sink.lock().unwrap();
        let earlier = requests.iter().filter(|r| r.path == path).count();
        requests.push(Request {
            method,
            path: path.clone(),
            content_type: header("content-type"),
            body: String::from_utf8_lossy(&body).to_string(),
            at: Instant::now(),
        });
        match routes.get(&path) {
            Some(route) => (
                route.statuses[earlier % route.statuses.len()],
                route.body.clone(),
            ),
            None => (404, "not found".to_string()),
        }
    };
    let answer = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        reason(status),
        text.len()
    );
    socket.write_all(answer.as_bytes()).await?;
    socket.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A TCP listener that accepts and counts connections.
pub struct TcpTarget {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TcpTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpTarget {
    /// Listens on a free port of `ip`.
    pub async fn start(ip: Ipv4Addr) -> TcpTarget {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((_socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        TcpTarget {
            addr,
            accepted,
            task,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// An address of `ip` where nothing listens (its port was free a moment ago).
pub fn closed_address(ip: Ipv4Addr) -> SocketAddr {
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    listener.local_addr().unwrap()
}

/// The first day a certificate is valid: far enough back for any clock.
const NOT_BEFORE: (i32, u8, u8) = (2020, 1, 1);

/// Today (UTC) plus `days`.
pub fn today_plus(days: i64) -> Date {
    Timestamp::now()
        .to_zoned(TimeZone::UTC)
        .date()
        .checked_add(days.days())
        .unwrap()
}

/// Midnight UTC at the start of `date`, as certificates' `notAfter` is.
pub fn midnight(date: Date) -> Timestamp {
    date.to_zoned(TimeZone::UTC).unwrap().timestamp()
}

fn params(names: &[&str], common_name: &str, not_after: Date) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let (y, m, d) = NOT_BEFORE;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    params.not_after = rcgen::date_time_ymd(
        not_after.year().into(),
        not_after.month() as u8,
        not_after.day() as u8,
    );
    params
}

/// A certificate authority the tests trust through `SSL_CERT_FILE`.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

impl Authority {
    pub fn generate(common_name: &str) -> Authority {
        let key = KeyPair::generate().unwrap();
        let mut params = params(&[], common_name, today_plus(3650));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Authority {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate as a PEM bundle at `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, &self.pem).unwrap();
    }

    /// A serving certificate for `names`, signed by this authority, valid until `not_after`.
    pub fn issue(&self, names: &[&str], common_name: &str, not_after: Date) -> Identity {
        let key = KeyPair::generate().unwrap();
        let mut params = params(names, common_name, not_after);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }
}

/// A certificate and its private key (PKCS#8 DER).
pub struct Identity {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Identity {
    /// A self-signed certificate for `names`.
    pub fn self_signed(names: &[&str], common_name: &str, not_after: Date) -> Identity {
        let key = KeyPair::generate().unwrap();
        let cert = params(names, common_name, not_after)
            .self_signed(&key)
            .unwrap();
        Identity {
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }
}

/// A TLS server on 127.0.0.1 presenting `identity`: it completes handshakes and closes,
/// counting them. It stops when dropped. (Its checkers share the host's network, so that
/// `localhost` names it; see `tls.rs`.)
pub struct TlsServer {
    pub port: u16,
    handshakes: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsServer {
    pub async fn start(identity: &Identity) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![identity.cert.clone()],
                PrivateKeyDer::Pkcs8(identity.key.clone().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let count = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (acceptor, count) = (acceptor.clone(), count.clone());
                tokio::spawn(async move {
                    if let Ok(mut stream) = acceptor.accept(socket).await {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.shutdown().await;
                    }
                });
            }
        });
        TlsServer {
            port,
            handshakes,
            task,
        }
    }

    /// Handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}
