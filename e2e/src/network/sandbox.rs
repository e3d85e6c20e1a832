//! A pod's own network, as a CNI plugin would set it up: a network namespace with loopback
//! up and `eth0`, one end of a veth pair whose other end is on the pod network's bridge,
//! holding the pod's address. No default route: only the pod network is reachable.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::{NetworkId, POD_HOSTS, PREFIX_LEN, ip};

/// The pod addresses of one network that are in use, handed out round-robin so that a
/// finished pod's address is not given to the next pod at once (a late report from the
/// finished pod must not be taken for the new one's).
#[derive(Debug)]
pub struct IpPool {
    hosts: RangeInclusive<u8>,
    next: u8,
    in_use: BTreeSet<u8>,
}

impl Default for IpPool {
    /// The pods' addresses.
    fn default() -> Self {
        IpPool::new(POD_HOSTS)
    }
}

impl IpPool {
    /// A pool of the host parts `hosts`.
    pub fn new(hosts: RangeInclusive<u8>) -> Self {
        IpPool {
            next: *hosts.start(),
            hosts,
            in_use: BTreeSet::new(),
        }
    }

    /// The first free host part from where the last search stopped, or `None` when every
    /// address is in use.
    pub fn take(&mut self) -> Option<u8> {
        let (first, last) = (*self.hosts.start(), *self.hosts.end());
        let count = usize::from(last - first) + 1;
        let host = (0..count)
            .map(|i| first + ((usize::from(self.next - first) + i) % count) as u8)
            .find(|host| !self.in_use.contains(host))?;
        self.in_use.insert(host);
        self.next = if host == last { first } else { host + 1 };
        Some(host)
    }

    pub fn give_back(&mut self, host: u8) {
        self.in_use.remove(&host);
    }
}

/// A pod's network namespace and veth pair; dropping it removes both and frees the address.
#[derive(Debug)]
pub struct Sandbox {
    id: NetworkId,
    host: u8,
    pool: Arc<Mutex<IpPool>>,
}

impl Sandbox {
    /// Takes an address from `pool` and builds the namespace around it.
    pub fn create(id: NetworkId, pool: &Arc<Mutex<IpPool>>) -> Result<Sandbox> {
        let host = pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .with_context(|| {
                format!("every address of the pod network {} is in use", id.subnet())
            })?;
        // From here on, dropping `sandbox` undoes whatever was created.
        let sandbox = Sandbox {
            id,
            host,
            pool: pool.clone(),
        };
        let (netns, veth, bridge) = (id.netns(host), id.veth(host), id.bridge());
        ip::batch(
            None,
            &[
                format!("netns add {netns}"),
                format!("link add {veth} type veth peer name eth0 netns {netns}"),
                format!("link set {veth} master {bridge} up"),
            ],
            false,
        )
        .with_context(|| format!("creating the network namespace {netns}"))?;
        ip::batch(
            Some(&netns),
            &[
                "link set lo up".to_string(),
                format!("addr add {}/{PREFIX_LEN} dev eth0", sandbox.ip()),
                "link set eth0 up".to_string(),
            ],
            false,
        )
        .with_context(|| format!("configuring eth0 in {netns}"))?;
        Ok(sandbox)
    }

    /// The pod's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.id.address(self.host)
    }

    /// What a process joins with `setns(2)` to run in the pod's network.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(self.netns_name())
    }

    /// The namespace's name, for `ip -n`.
    pub fn netns_name(&self) -> String {
        self.id.netns(self.host)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The veth goes explicitly: a process that escaped its container's group would keep
        // the namespace, and with it the veth, alive.
        let commands = [
            format!("link del {}", self.id.veth(self.host)),
            format!("netns del {}", self.id.netns(self.host)),
        ];
        if let Err(err) = ip::batch(None, &commands, true) {
            tracing::warn!("removing the network of pod address {}: {err:#}", self.ip());
        }
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .give_back(self.host);
    }
}

/// Removes the pod namespaces and veths of network `id` that an earlier pod runner left
/// (its pods' processes died with it), keeping the bridge and the replicas' namespaces.
pub fn remove_all(id: NetworkId) {
    super::remove_objects(id, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_go_round_robin_and_skip_those_in_use() {
        let mut pool = IpPool::default();
        assert_eq!(pool.take(), Some(2));
        assert_eq!(pool.take(), Some(3));
        pool.give_back(2);
        assert_eq!(
            pool.take(),
            Some(4),
            "a freed address is not reused at once"
        );
        let rest: Vec<u8> = std::iter::from_fn(|| pool.take()).collect();
        assert_eq!(rest.first(), Some(&5));
        assert_eq!(rest.last(), Some(&2), "then the search wraps around");
        assert_eq!(rest.len() + 2, 238, "238 addresses in all");
        assert_eq!(pool.take(), None);
        pool.give_back(100);
        assert_eq!(pool.take(), Some(100));
    }
}
