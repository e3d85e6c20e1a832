//! Kubeconfig files for the local API server, and clients built from them.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Writes a self-contained kubeconfig (the CA is embedded) that authenticates with a
/// bearer token, usable by kube-rs, client-go and kubectl alike.
pub fn write(path: &Path, server: &str, ca_pem: &str, user: &str, token: &str) -> Result<()> {
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: local\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca_data}\n\
         users:\n\
         - name: {user}\n  user:\n    token: {token}\n\
         contexts:\n\
         - name: {user}@local\n  context:\n    cluster: local\n    user: {user}\n\
         current-context: {user}@local\n"
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing kubeconfig {}", path.display()))
}

/// The client configuration a kubeconfig file describes.
pub async fn config(path: &Path) -> Result<Config> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))
}

/// A client for the kubeconfig at `path`.
pub async fn client(path: &Path) -> Result<Client> {
    Client::try_from(config(path).await?)
        .with_context(|| format!("building a client from {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn written_kubeconfigs_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let ca = crate::pki::Pki::generate(std::net::Ipv4Addr::LOCALHOST)
            .unwrap()
            .ca_cert;
        write(
            &path,
            "https://127.0.0.1:6443",
            &ca,
            "alice",
            "secret-token",
        )
        .unwrap();
        let config = config(&path).await.unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(config.root_cert.as_ref().map(Vec::len), Some(1));
    }
}
