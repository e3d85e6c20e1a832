//! High availability, end to end (issue 4): three `kuberhealthy run` replicas, each a
//! separate process with the controller's own RBAC (ServiceAccount `kuberhealthy`, token
//! from TokenRequest), on a control plane of their own per test (etcd and kube-apiserver
//! with the audit log on, and the pod runner playing the kubelet). Checks are due every
//! 2 s all along, so the leader is busy writing while it is signalled.
//!
//! Timings, short on purpose: lease duration 3 s, renew deadline 2 s, retry period 500 ms.
//!
//! - `handover`: SIGTERM and SIGKILL to the leader, 10 trials each, measured from the
//!   signal to the moment the Lease names another replica; all live replicas' status pages
//!   agree on `CurrentMaster` within 1 s; figures in `target/e2e-figures/handover.json`.
//! - `pause`: SIGSTOP the leader past the lease, SIGCONT; the audit log shows it wrote
//!   nothing after it resumed; figures in `target/e2e-figures/pause.json`.
//! - `outage`: the API server is stopped for 20 s; figures in
//!   `target/e2e-figures/outage.json`.
//! - `partition`: replicas in network namespaces of their own; the leader's path to the API
//!   server is cut while it leads, then healed; figures in `target/e2e-figures/partition.json`.
//! - `stall`: etcd is frozen (SIGSTOP) past the lease mid-schedule, then thawed; figures in
//!   `target/e2e-figures/stall.json`.
//! - `flood`: hundreds of slow clients, endless bodies, status page and report requests at
//!   the leader for 20 s; its Lease renewals stay on time (audit log) and its page answers;
//!   figures in `target/e2e-figures/flood.json`.
//!
//! Every test also proves "one leader at a time" from the audit log (see `history`).
//! The tests of this binary run one at a time ([`serial`]): their measurements must not
//! compete with each other for the machine's two cores.
//!
//! Run them with `cargo test -p kuberhealthy-e2e --test ha` (after `make control-plane`
//! and `cargo build --bin kuberhealthy`), or as part of `make e2e`.

mod figures;
mod flood;
mod handover;
mod history;
mod observe;
mod outage;
mod partition;
mod pause;
mod setup;
mod stall;

use std::time::Duration;

/// `KH_LEADER_ELECTION_LEASE_DURATION`
pub const LEASE_DURATION: Duration = Duration::from_secs(3);
/// `KH_LEADER_ELECTION_RENEW_DEADLINE`
pub const RENEW_DEADLINE: Duration = Duration::from_secs(2);
/// `KH_LEADER_ELECTION_RETRY_PERIOD`
pub const RETRY_PERIOD: Duration = Duration::from_millis(500);

/// Deadline for conditions that are not under measurement: generous, for a loaded
/// 2-core machine shared with builds.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// How often the status pages and metrics are polled while a change is measured.
pub const POLL: Duration = Duration::from_millis(50);

/// Holds the other tests of this binary off until the current one is done.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}
