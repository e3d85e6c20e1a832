//! The pod network: a Linux bridge whose host-side address pods and host processes both
//! reach, and for each pod a network namespace of its own with a veth on that bridge.
//!
//! Addresses come from `10.213.0.0/16`, used only inside this machine: each network is one
//! `/24` of it, `10.213.<n>.0/24`, with the host side at `.1` (what the API server, replicas
//! and test servers listen on) and pods at `.2`–`.254`. Pods get no default route, the host
//! does no NAT, so nothing a pod sends leaves the machine.
//!
//! Several harness processes (test binaries, engineers) claim networks at the same time: a
//! network is claimed by holding an exclusive `flock` on `/run/kh-e2e-net/<n>.lock` for as
//! long as it exists. The kernel drops the lock when its holder dies, even by SIGKILL, so
//! the next claim can tell a dead owner's leftovers (bridge, veths, namespaces) from a live
//! network and remove them. The lock file holds `<session> <pid>` of its last owner, which
//! `e2e/leftovers.sh` reads to find what a session left behind.

mod ip;
pub mod replica;
pub mod sandbox;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::{cleanup, session};

/// The private range every pod network is a `/24` of.
pub const RANGE: (u8, u8) = (10, 213);
/// Where the claim locks live (a tmpfs, emptied at boot like the links themselves).
pub const LOCK_DIR: &str = "/run/kh-e2e-net";
/// Prefix of every link and network namespace name (links are limited to 15 bytes).
const NAME_PREFIX: &str = "khe2e";

/// One pod network's names and addresses, all derived from its number `n` (the third
/// octet of its subnet): bridge `khe2e<n>`, host side `10.213.<n>.1`, pod `h` at
/// `10.213.<n>.<h>` in namespace `khe2e<n>-<h>` with host-side veth `khe2e<n>p<h>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NetworkId(pub u8);

/// The prefix length of every pod network.
pub const PREFIX_LEN: u8 = 24;
/// The host parts pods get (`.1` is the host, `.255` broadcast).
pub const POD_HOSTS: std::ops::RangeInclusive<u8> = 2..=239;
/// The host parts replicas in network namespaces of their own get: apart from the pods',
/// because the pod runner (another process) hands those out and removes their leftovers.
pub const REPLICA_HOSTS: std::ops::RangeInclusive<u8> = 240..=254;

impl NetworkId {
    /// Its name among what `cleanup` undoes at exit.
    fn cleanup_name(self) -> String {
        format!("pod network {}", self.bridge())
    }

    pub fn bridge(self) -> String {
        format!("{NAME_PREFIX}{}", self.0)
    }

    /// The bridge's address: the host as pods see it.
    pub fn host_ip(self) -> Ipv4Addr {
        self.address(1)
    }

    /// A locally administered MAC of the bridge, the same for the network's whole life.
    pub fn bridge_mac(self) -> String {
        format!("02:6b:68:65:32:{:02x}", self.0)
    }

    /// `10.213.<n>.<host>`
    pub fn address(self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(RANGE.0, RANGE.1, self.0, host)
    }

    /// `10.213.<n>.0/24`
    pub fn subnet(self) -> String {
        format!("{}/{PREFIX_LEN}", self.address(0))
    }

    /// The host-side end of pod `host`'s veth pair.
    pub fn veth(self, host: u8) -> String {
        format!("{NAME_PREFIX}{}p{host}", self.0)
    }

    /// Pod `host`'s network namespace (`/run/netns/<name>`).
    pub fn netns(self, host: u8) -> String {
        format!("{NAME_PREFIX}{}-{host}", self.0)
    }

    fn lock_path(self) -> PathBuf {
        PathBuf::from(LOCK_DIR).join(format!("{}.lock", self.0))
    }

    /// Whether link `name` is this network's bridge or one of its veths.
    fn owns_link(self, name: &str) -> bool {
        name == self.bridge() || self.pod_of_link(name).is_some()
    }

    fn pod_of_link(self, name: &str) -> Option<u8> {
        name.strip_prefix(&format!("{NAME_PREFIX}{}p", self.0))?
            .parse()
            .ok()
    }

    fn pod_of_netns(self, name: &str) -> Option<u8> {
        name.strip_prefix(&format!("{NAME_PREFIX}{}-", self.0))?
            .parse()
            .ok()
    }

    /// The network a link or namespace name belongs to, if it is one of ours.
    fn of_name(name: &str) -> Option<NetworkId> {
        let rest = name.strip_prefix(NAME_PREFIX)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let id = NetworkId(digits.parse().ok()?);
        let ours = id.owns_link(name) || id.pod_of_netns(name).is_some();
        ours.then_some(id)
    }

    /// Whether `dst` (a route destination such as `10.213.7.0/24`, `10.213.7.1` or
    /// `default`) overlaps this network's subnet. The default route does not count: pods
    /// get no route through it.
    fn overlaps(self, dst: &str) -> bool {
        let (addr, len) = match dst.split_once('/') {
            Some((addr, len)) => (addr, len.parse::<u8>().ok()),
            None => (dst, Some(32)),
        };
        let (Ok(addr), Some(len)) = (addr.parse::<Ipv4Addr>(), len) else {
            return false;
        };
        if len == 0 || len > 32 {
            return false;
        }
        let shorter = len.min(PREFIX_LEN);
        let mask = u32::MAX << (32 - u32::from(shorter));
        u32::from(addr) & mask == u32::from(self.address(0)) & mask
    }
}

/// A claimed pod network: the bridge exists, up, with the host-side address. Dropping it
/// removes the bridge and anything of the network still there.
#[derive(Debug)]
pub struct PodNetwork {
    id: NetworkId,
    /// Held for the network's lifetime; the claim.
    _lock: File,
}

impl PodNetwork {
    /// Removes what dead owners left, claims a free `/24` that no route of this machine
    /// overlaps, and creates its bridge.
    pub fn create() -> Result<PodNetwork> {
        ip::require()?;
        std::fs::create_dir_all(LOCK_DIR).with_context(|| format!("creating {LOCK_DIR}"))?;
        remove_abandoned()?;
        let routes = foreign_routes()?;
        let start = (std::process::id() % 256) as u8;
        for offset in 0..=255u8 {
            let id = NetworkId(start.wrapping_add(offset));
            if routes.iter().any(|dst| id.overlaps(dst)) {
                continue;
            }
            let Some(mut lock) = try_claim(id)? else {
                continue;
            };
            // A previous owner may have died between listing and locking.
            remove(id);
            lock.set_len(0)?;
            writeln!(lock, "{} {}", session::session_id(), std::process::id())
                .with_context(|| format!("writing {}", id.lock_path().display()))?;
            cleanup::register_last(id.cleanup_name(), move || remove(id));
            let network = PodNetwork { id, _lock: lock };
            network.create_bridge()?;
            tracing::info!(bridge = %id.bridge(), subnet = %id.subnet(), "pod network ready");
            return Ok(network);
        }
        bail!(
            "no free pod network: all 256 /24 networks of {}.{}.0.0/16 are claimed by other \
             harness processes or overlap a route of this machine (see {LOCK_DIR} and `ip route`)",
            RANGE.0,
            RANGE.1
        )
    }

    fn create_bridge(&self) -> Result<()> {
        let bridge = self.id.bridge();
        let alias = format!(
            "kuberhealthy e2e pod network, session {}, pid {}",
            session::session_id(),
            std::process::id()
        );
        // A bridge takes the lowest MAC of its ports unless given one: pods come and go, and
        // the others would keep sending to the host's old MAC until their ARP entry expires.
        ip::batch(
            None,
            &[
                format!(
                    "link add {bridge} address {} type bridge",
                    self.id.bridge_mac()
                ),
                format!("addr add {}/{PREFIX_LEN} dev {bridge}", self.id.host_ip()),
                format!("link set {bridge} alias \"{alias}\" up"),
            ],
            false,
        )
        .with_context(|| format!("creating the pod network bridge {bridge}"))
    }

    pub fn id(&self) -> NetworkId {
        self.id
    }

    /// The host as pods see it: where whatever pods must reach listens.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.id.host_ip()
    }
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        remove(self.id);
        cleanup::unregister_last(&self.id.cleanup_name());
    }
}

/// Takes the claim on `id`, or `None` when a live process holds it.
fn try_claim(id: NetworkId) -> Result<Option<File>> {
    let path = id.lock_path();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The links and network namespaces of network `id` that exist now, by name.
pub fn objects(id: NetworkId) -> Result<Vec<String>> {
    let mut names: Vec<String> = ip::link_names()?
        .into_iter()
        .filter(|name| id.owns_link(name))
        .collect();
    names.extend(
        ip::netns_names()
            .into_iter()
            .filter(|name| id.pod_of_netns(name).is_some()),
    );
    Ok(names)
}

/// The first line of network `id`'s claim lock: `<session> <pid>` of its last owner.
pub fn last_owner(id: NetworkId) -> Option<String> {
    let text = std::fs::read_to_string(id.lock_path()).ok()?;
    text.lines().next().map(str::to_string)
}

/// Removes every link and namespace of network `id` (whatever of them exists). Also run by
/// the exit hook for networks of clusters that live in a `static`.
pub(crate) fn remove(id: NetworkId) {
    remove_objects(id, true);
}

/// Removes the pods' namespaces and veths of network `id`, or with `bridge` the whole network
/// (replicas' namespaces too).
fn remove_objects(id: NetworkId, bridge: bool) {
    let Ok(links) = ip::link_names() else { return };
    let wanted = |host: Option<u8>| host.is_some_and(|h| bridge || POD_HOSTS.contains(&h));
    let mut commands: Vec<String> = links
        .iter()
        .filter(|name| wanted(id.pod_of_link(name)))
        .map(|name| format!("link del {name}"))
        .collect();
    commands.extend(
        ip::netns_names()
            .iter()
            .filter(|name| wanted(id.pod_of_netns(name)))
            .map(|name| format!("netns del {name}")),
    );
    if bridge && links.contains(&id.bridge()) {
        commands.push(format!("link del {}", id.bridge()));
    }
    if let Err(err) = ip::batch(None, &commands, true) {
        tracing::warn!("removing pod network {}: {err:#}", id.subnet());
    }
}

/// Removes the leftovers of networks whose owner is gone (a harness killed by SIGKILL).
fn remove_abandoned() -> Result<()> {
    let mut ids: Vec<NetworkId> = ip::link_names()?
        .iter()
        .chain(&ip::netns_names())
        .filter_map(|name| NetworkId::of_name(name))
        .collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        if let Some(lock) = try_claim(id)? {
            tracing::info!(bridge = %id.bridge(), "removing a pod network its owner left behind");
            remove(id);
            drop(lock);
        }
    }
    Ok(())
}

/// Destinations of every IPv4 route of this machine (all tables) that is not on one of our
/// bridges: a pod network must not overlap any of them.
fn foreign_routes() -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Route {
        #[serde(default)]
        dst: String,
        #[serde(default)]
        dev: Option<String>,
    }
    let text = ip::run(&["-j", "-4", "route", "show", "table", "all"])?;
    let routes: Vec<Route> = serde_json::from_str(&text).context("reading `ip -j route` output")?;
    Ok(routes
        .into_iter()
        .filter(|r| r.dev.as_deref().and_then(NetworkId::of_name).is_none())
        .map(|r| r.dst)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_derive_from_the_number() {
        let id = NetworkId(7);
        assert_eq!(id.bridge(), "khe2e7");
        assert_eq!(id.host_ip(), Ipv4Addr::new(10, 213, 7, 1));
        assert_eq!(id.subnet(), "10.213.7.0/24");
        assert_eq!(id.veth(254), "khe2e7p254");
        assert_eq!(id.netns(2), "khe2e7-2");
        assert_eq!(id.bridge_mac(), "02:6b:68:65:32:07");
        assert!(
            NetworkId(255).veth(254).len() <= 15,
            "link names fit IFNAMSIZ"
        );
    }

    #[test]
    fn names_are_told_apart_by_network() {
        assert_eq!(NetworkId::of_name("khe2e7"), Some(NetworkId(7)));
        assert_eq!(NetworkId::of_name("khe2e7p3"), Some(NetworkId(7)));
        assert_eq!(NetworkId::of_name("khe2e17p3"), Some(NetworkId(17)));
        assert_eq!(NetworkId::of_name("khe2e17-30"), Some(NetworkId(17)));
        assert!(!NetworkId(1).owns_link("khe2e17p3"));
        assert!(NetworkId(1).pod_of_netns("khe2e17-3").is_none());
        for foreign in [
            "eth0", "khe2e", "khe2e7x", "khe2e300", "khe2e7p", "khe2e7-x",
        ] {
            assert_eq!(NetworkId::of_name(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn routes_overlap_when_either_prefix_holds_the_other() {
        let id = NetworkId(7);
        for dst in [
            "10.213.7.0/24",
            "10.213.7.5",
            "10.213.0.0/16",
            "10.0.0.0/8",
            "10.213.7.128/25",
        ] {
            assert!(id.overlaps(dst), "{dst}");
        }
        for dst in [
            "default",
            "10.213.8.0/24",
            "192.0.2.0/24",
            "10.213.6.255",
            "fe80::/64",
            "0.0.0.0/0",
        ] {
            assert!(!id.overlaps(dst), "{dst}");
        }
    }
}
