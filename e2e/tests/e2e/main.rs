//! End-to-end tests against a real etcd + kube-apiserver, with the pod runner playing the
//! kubelet. One cluster serves every test of this binary; each test has its own
//! namespace. Run them with `make e2e` (which also checks that no process survives).

mod crds;
mod examples;
mod harness;
mod metrics;
mod pod_network;
mod pod_runner;
mod rbac;
mod reports;

use std::path::Path;
use std::time::Duration;

use kuberhealthy_e2e::TestCluster;

/// Deadline for any condition: generous, for a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The cluster shared by the tests of this binary, started on first use.
pub async fn cluster() -> &'static TestCluster {
    TestCluster::shared(Path::new(env!("CARGO_BIN_EXE_pod-runner")))
        .await
        .expect("starting the shared test cluster (etcd, kube-apiserver, pod runner)")
}
