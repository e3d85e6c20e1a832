//! The Helm chart (`charts/kuberhealthy`) and the generated RBAC, proven (issue 7):
//!
//! - `render`: `helm lint --strict`; `helm template` with the defaults and with every
//!   documented toggle, asserting what each must render; every rendered manifest
//!   server-side applied to the local API server with strict field validation.
//! - `values_doc`: every value of `values.yaml` is documented in the chart's README.
//! - `drift`: the chart's rendered RBAC, `rbac/` and `kuberhealthy::generate::rbac` agree, in both
//!   modes (`make crds-check` runs these too).
//! - `lifecycle`: `helm install`, `helm upgrade` (a changed value lands) and `helm uninstall`.
//! - `access`: the chart installed cluster-wide; three replicas run as its ServiceAccount
//!   (a TokenRequest token) with the Deployment's env and the ConfigMap's config file, and
//!   run checks in three namespaces other than the release namespace; every (verb, resource)
//!   the code declares is allowed, others are denied, and no rule has a wildcard.
//! - `namespaced`: the chart installed with `targetNamespace`: Roles only, checks there run,
//!   a check elsewhere is never scheduled.
//! - `alerts`: `promtool test rules` on the rendered PrometheusRule (`e2e/chart/alerts_test.yaml`).
//! - `dashboard`: the Grafana dashboard parses, has v2's queries and a leader panel, and every
//!   query returns data from a real Prometheus scraping a replica.
//! - `footprint`: an idle leader and follower with 100 checks fit the chart's resources.
//!
//! Run with `make chart-test` (or `cargo test -p kuberhealthy-e2e --test chart`); helm is
//! built from the Go module proxy and cached by `e2e/tools/build-helm.sh`.

mod access;
mod alerts;
mod dashboard;
mod drift;
mod footprint;
mod lifecycle;
mod namespaced;
mod render;
mod support;
mod values_doc;

use std::path::Path;
use std::time::Duration;

use kuberhealthy_e2e::TestCluster;

/// Deadline for any condition: generous, for a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// The cluster shared by the tests that need no cluster of their own.
pub async fn cluster() -> &'static TestCluster {
    TestCluster::shared(pod_runner_bin())
        .await
        .expect("starting the shared test cluster (etcd, kube-apiserver, pod runner)")
}

pub fn pod_runner_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pod-runner"))
}

/// Tests that run a control plane of their own and a set of cluster-wide replicas take
/// turns: two of them at once would only measure each other on a small machine.
pub static OWN_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
