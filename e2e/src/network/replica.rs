//! A replica's own network namespace on the pod network, like a pod's, with a switch that
//! cuts its path to the API server alone: the partition that really happens, where the
//! replica is alive, still serves its status page and reports, but its API calls go nowhere.
//!
//! The cut takes nothing but `ip` (no netfilter, no `tc` actions): policy rules inside the
//! replica's namespace. Packets from the API server's port are dropped as they come in (a
//! `blackhole` rule on `eth0`), and packets to it are routed into `lo`, where a namespace
//! that does not forward drops them. Both drops are silent, so calls hang (as across a dead
//! link) instead of failing at once; established connections resume when the cut heals.
//! Incoming packets reach policy rules only once the `local` table's rule (preference 0)
//! is moved behind them, which the namespace does when it is made.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};

use super::sandbox::{IpPool, Sandbox};
use super::{NetworkId, REPLICA_HOSTS, ip};

/// The routing table of the cut: the API server's address through `lo`.
const CUT_TABLE: u32 = 100;
/// Preference of the `local` table's rule once moved behind the cut's rules.
const LOCAL_PREF: u32 = 100;
/// Preferences of the cut's two rules (incoming, outgoing).
const CUT_IN_PREF: u32 = 10;
const CUT_OUT_PREF: u32 = 11;

/// The replica addresses of each network this process uses.
fn pool(id: NetworkId) -> Arc<Mutex<IpPool>> {
    static POOLS: OnceLock<Mutex<BTreeMap<NetworkId, Arc<Mutex<IpPool>>>>> = OnceLock::new();
    POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(id)
        .or_insert_with(|| Arc::new(Mutex::new(IpPool::new(REPLICA_HOSTS))))
        .clone()
}

/// A replica's network namespace. Dropping it removes the namespace and its veth (any cut
/// goes with them).
#[derive(Debug)]
pub struct ReplicaNetwork {
    sandbox: Sandbox,
    api_server: SocketAddr,
}

impl ReplicaNetwork {
    /// A namespace with an address of `REPLICA_HOSTS` on network `id`, from which the API
    /// server at `api_server` (on the network's host side) is reachable until [`cut`].
    ///
    /// [`cut`]: ReplicaNetwork::cut_api_server
    pub fn create(id: NetworkId, api_server: SocketAddr) -> Result<ReplicaNetwork> {
        let sandbox = Sandbox::create(id, &pool(id))?;
        let netns = sandbox.netns_name();
        ip::batch(
            Some(&netns),
            &[
                format!("rule add pref {LOCAL_PREF} lookup local"),
                "rule del pref 0".to_string(),
                format!("route add {}/32 dev lo table {CUT_TABLE}", api_server.ip()),
            ],
            false,
        )
        .with_context(|| format!("preparing the routing rules of {netns}"))?;
        Ok(ReplicaNetwork {
            sandbox,
            api_server,
        })
    }

    /// The replica's address: where it listens, and where its requests come from.
    pub fn ip(&self) -> Ipv4Addr {
        self.sandbox.ip()
    }

    /// What the replica's process joins (`ReplicaOptions::netns`).
    pub fn netns_path(&self) -> PathBuf {
        self.sandbox.netns_path()
    }

    /// Drops every packet between the replica and the API server, silently, both ways.
    pub fn cut_api_server(&self) -> Result<()> {
        let (host, port) = (self.api_server.ip(), self.api_server.port());
        self.rules(
            "add",
            &[
                format!(
                    "pref {CUT_IN_PREF} iif eth0 from {host} ipproto tcp sport {port} blackhole"
                ),
                format!("pref {CUT_OUT_PREF} to {host} ipproto tcp dport {port} table {CUT_TABLE}"),
            ],
        )
        .context("cutting a replica's path to the API server")
    }

    /// Undoes [`ReplicaNetwork::cut_api_server`].
    pub fn heal_api_server(&self) -> Result<()> {
        self.rules(
            "del",
            &[
                format!("pref {CUT_IN_PREF}"),
                format!("pref {CUT_OUT_PREF}"),
            ],
        )
        .context("healing a replica's path to the API server")
    }

    /// Whether the cut is in place now (as the kernel has it).
    pub fn is_cut(&self) -> Result<bool> {
        let rules = ip::run(&["-n", &self.sandbox.netns_name(), "rule", "show"])?;
        Ok(rules
            .lines()
            .any(|line| line.starts_with(&format!("{CUT_IN_PREF}:"))))
    }

    fn rules(&self, verb: &str, rules: &[String]) -> Result<()> {
        let commands: Vec<String> = rules.iter().map(|r| format!("rule {verb} {r}")).collect();
        ip::batch(Some(&self.sandbox.netns_name()), &commands, false)
    }
}
