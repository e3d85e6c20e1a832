//! Kuberhealthy installed in a test namespace as a release installs it: the committed CRDs,
//! the RBAC `kuberhealthy rbac` prints, and a kubeconfig of its ServiceAccount for the
//! replicas. Shared by the HA tests, the bench and the soak.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DynamicObject};

use crate::session::workspace_root;
use crate::{TestContext, binaries, kubeconfig, manifests, resources, wait_until};

/// The ServiceAccount the replicas act as.
pub const SERVICE_ACCOUNT: &str = "kuberhealthy";

/// Installs the CRDs and the controller's RBAC in `ctx`'s namespace and returns the
/// ServiceAccount's kubeconfig once its grants have taken effect.
pub async fn install(ctx: &TestContext, timeout: Duration) -> Result<PathBuf> {
    let client = ctx.client().await?;
    let namespace = ctx.namespace().to_string();
    let crds = std::fs::read_to_string(workspace_root().join("charts/kuberhealthy/crds/crds.yaml"))
        .context("reading the committed CRDs")?;
    manifests::install_crds(&client, &crds, timeout).await?;
    // The controller's own RBAC, exactly as `kuberhealthy rbac` prints it.
    ctx.apply_yaml(&kuberhealthy_output(&["rbac", "--namespace", &namespace])?)
        .await?;
    let path = ctx.service_account_kubeconfig_path(SERVICE_ACCOUNT);
    ctx.endpoint()
        .service_account_kubeconfig(&namespace, SERVICE_ACCOUNT, &path)
        .await?;
    wait_for_grants(&path, &namespace, timeout).await?;
    Ok(path)
}

/// The output of `kuberhealthy <args>`, from the binary the replicas run.
pub fn kuberhealthy_output(args: &[&str]) -> Result<String> {
    let binary = binaries::kuberhealthy()?;
    let output = Command::new(&binary)
        .args(args)
        .output()
        .with_context(|| format!("running {} {}", binary.display(), args.join(" ")))?;
    ensure!(
        output.status.success(),
        "{} {} failed: {}",
        binary.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).context("non-UTF-8 output")
}

/// The authorizer learns new bindings from its own watch: waits until the ServiceAccount of
/// `kubeconfig` may read the Leases and khstates of `namespace`.
pub async fn wait_for_grants(kubeconfig: &Path, namespace: &str, timeout: Duration) -> Result<()> {
    let client = kubeconfig::client(kubeconfig).await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let states: Api<DynamicObject> =
        Api::namespaced_with(client, namespace, &resources::khstates());
    wait_until("the controller's RBAC to take effect", timeout, || async {
        leases.list(&Default::default()).await?;
        states.list(&Default::default()).await?;
        Ok(Some(()))
    })
    .await
}
