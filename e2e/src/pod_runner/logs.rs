//! The kubelet's container-log endpoint, so the API server's `pods/log` (and `kubectl logs`)
//! work as on a real node: `GET /containerLogs/{namespace}/{pod}/{container}` with
//! `tailLines` and `limitBytes`, over TLS with a serving certificate of the cluster's CA, for
//! clients with a certificate of that CA only (the API server's kubelet client certificate).
//! `follow`, `timestamps`, `sinceSeconds` and `previous` are not supported: the log as it is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::container::log_path;

/// The PEM files of the endpoint's TLS.
#[derive(Clone, Debug)]
pub struct KubeletTls {
    /// Its serving certificate and key (for the node's address).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA a client certificate must be signed by.
    pub client_ca: PathBuf,
}

/// Serves the endpoint on `listener` until the task is aborted.
pub fn serve(
    listener: TcpListener,
    tls: &KubeletTls,
    log_dir: PathBuf,
) -> Result<tokio::task::JoinHandle<()>> {
    let acceptor = TlsAcceptor::from(Arc::new(server_config(tls)?));
    let app = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_log),
        )
        .with_state(Arc::new(log_dir));
    Ok(tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!("kubelet endpoint: accept failed: {err}");
                    continue;
                }
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                if let Err(err) = connection(acceptor, app, stream, peer).await {
                    tracing::debug!(%peer, "kubelet endpoint: {err:#}");
                }
            });
        }
    }))
}

async fn connection(
    acceptor: TlsAcceptor,
    app: Router,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Result<()> {
    let tls = acceptor
        .accept(stream)
        .await
        .with_context(|| format!("TLS handshake with {peer}"))?;
    auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
        .await
        .map_err(|e| anyhow::anyhow!("serving {peer}: {e}"))
}

fn server_config(tls: &KubeletTls) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in certificates(&tls.client_ca)? {
        roots.add(ca).context("adding the client CA")?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .context("building the client certificate verifier")?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("reading {}", tls.key.display()))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificates(&tls.cert)?, key)
        .context("the kubelet serving certificate")
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", path.display()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
}

async fn container_log(
    State(log_dir): State<Arc<PathBuf>>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    if [&namespace, &pod, &container]
        .iter()
        .any(|part| part.contains('/') || part.starts_with('.'))
    {
        return (StatusCode::BAD_REQUEST, "invalid name").into_response();
    }
    let path = log_path(&log_dir, &namespace, &pod, &container);
    match tokio::fs::read(&path).await {
        Ok(content) => excerpt(&content, query.tail_lines, query.limit_bytes).into_response(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => (
            StatusCode::NOT_FOUND,
            format!("container {container} of pod {namespace}/{pod} has no log on this node"),
        )
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// The kubelet's selection: the last `tail_lines` lines, then at most `limit_bytes` bytes of
/// them from their start.
pub fn excerpt(content: &[u8], tail_lines: Option<usize>, limit_bytes: Option<usize>) -> Vec<u8> {
    let mut start = 0;
    if let Some(lines) = tail_lines {
        // A final line break ends the last line; it does not start another one.
        let body = content.strip_suffix(b"\n").unwrap_or(content);
        start = match lines {
            0 => content.len(),
            n => body
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, b)| **b == b'\n')
                .nth(n - 1)
                .map_or(0, |(i, _)| i + 1),
        };
    }
    let selected = &content[start..];
    let end = limit_bytes.map_or(selected.len(), |limit| limit.min(selected.len()));
    selected[..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"one\ntwo\nthree\n";

    #[test]
    fn the_last_lines_are_selected() {
        assert_eq!(excerpt(LOG, None, None), LOG);
        assert_eq!(excerpt(LOG, Some(2), None), b"two\nthree\n");
        assert_eq!(excerpt(LOG, Some(10), None), LOG);
        assert_eq!(excerpt(LOG, Some(0), None), b"");
        assert_eq!(excerpt(b"one\ntwo", Some(1), None), b"two");
    }

    #[test]
    fn the_byte_limit_counts_from_the_start_of_the_selection() {
        assert_eq!(excerpt(LOG, Some(2), Some(5)), b"two\nt");
        assert_eq!(excerpt(LOG, None, Some(3)), b"one");
        assert_eq!(excerpt(LOG, None, Some(100)), LOG);
    }
}
