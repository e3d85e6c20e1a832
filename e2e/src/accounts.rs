//! Who talks to the API server: the admin, and ServiceAccounts through TokenRequest.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::kubeconfig;

/// How to reach one API server. Cheap to clone; holds no connection, so it can be shared
/// between tests that each run their own tokio runtime (a `kube::Client` cannot).
#[derive(Clone, Debug)]
pub struct ApiEndpoint {
    /// `https://<host ip>:<port>`, the host-side address of the pod network
    pub server: String,
    pub ca_pem: String,
    /// A kubeconfig for the admin user (group `system:masters`, which RBAC lets do anything).
    pub admin_kubeconfig: PathBuf,
}

impl ApiEndpoint {
    /// A new admin client (one per test: clients are bound to the runtime that made them).
    pub async fn admin_client(&self) -> Result<Client> {
        kubeconfig::client(&self.admin_kubeconfig).await
    }

    /// Writes a kubeconfig for ServiceAccount `namespace/name` (created if missing) with a
    /// token from the TokenRequest API, valid for 24 h.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        path: &Path,
    ) -> Result<()> {
        let token = self.service_account_token(namespace, name).await?;
        let user = format!("system:serviceaccount:{namespace}:{name}");
        kubeconfig::write(path, &self.server, &self.ca_pem, &user, &token)
    }

    /// A bearer token of ServiceAccount `namespace/name` (created if missing) from the
    /// TokenRequest API, valid for 24 h.
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> Result<String> {
        let admin = self.admin_client().await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(admin, namespace);
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        create_if_absent(&accounts, &account)
            .await
            .with_context(|| format!("creating ServiceAccount {namespace}/{name}"))?;
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![],
                expiration_seconds: Some(24 * 3600),
                ..Default::default()
            },
            ..Default::default()
        };
        Ok(accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?
            .status
            .context("the TokenRequest came back without a status")?
            .token)
    }

    /// A client acting as ServiceAccount `namespace/name`; its kubeconfig is written to `path`.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
        path: &Path,
    ) -> Result<Client> {
        self.service_account_kubeconfig(namespace, name, path)
            .await?;
        kubeconfig::client(path).await
    }

    /// The API server's own Prometheus metrics (`GET /metrics` as admin).
    pub async fn metrics(&self) -> Result<String> {
        let client = self.admin_client().await?;
        let request = http::Request::get("/metrics").body(Vec::new())?;
        client
            .request_text(request)
            .await
            .context("reading the API server's /metrics")
    }
}

/// Creates `namespace`; one that already exists is fine.
pub async fn create_namespace(client: &Client, namespace: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    create_if_absent(&namespaces, &object)
        .await
        .with_context(|| format!("creating namespace {namespace}"))
}

/// Creates `object`; a 409 AlreadyExists is fine.
async fn create_if_absent<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// A namespace name unique within this process: `<prefix>-<n>`, where `prefix` is made
/// a valid DNS label (lowercase alphanumerics and '-') and shortened to fit 63 chars.
pub fn unique_namespace(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let mut label: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    label.truncate(50);
    let label = label.trim_matches('-');
    let label = if label.is_empty() { "test" } else { label };
    format!("{label}-{n}")
}

/// Waits until `account` may list khchecks (in `checks_namespace`, or in every namespace) and
/// Leases in `lease_namespace`: the API server's authorizer reads RBAC from its own watch
/// cache, so a grant just applied takes a moment to count.
pub async fn wait_for_controller_grant(
    account: Client,
    checks_namespace: Option<&str>,
    lease_namespace: &str,
    timeout: std::time::Duration,
) -> Result<()> {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{DynamicObject, ListParams};
    let khchecks = crate::resources::khchecks();
    let checks: Api<DynamicObject> = match checks_namespace {
        Some(ns) => Api::namespaced_with(account.clone(), ns, &khchecks),
        None => Api::all_with(account.clone(), &khchecks),
    };
    let leases: Api<Lease> = Api::namespaced(account, lease_namespace);
    crate::wait_until(
        "the kuberhealthy ServiceAccount's RBAC to apply",
        timeout,
        || async {
            checks.list(&ListParams::default().limit(1)).await?;
            leases.list(&ListParams::default().limit(1)).await?;
            Ok(Some(()))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_valid_and_unique() {
        let a = unique_namespace("pod_runner::Exit Code");
        let b = unique_namespace("pod_runner::Exit Code");
        assert!(a.starts_with("pod-runner--exit-code-"), "{a}");
        assert_ne!(a, b);
        let long = unique_namespace(&"x".repeat(100));
        assert!(long.len() <= 63);
        assert!(unique_namespace("__").starts_with("test-"));
    }
}
