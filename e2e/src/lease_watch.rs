//! The Lease as seen by a watch of its own, with the instant each version arrived: what
//! the high-availability tests and the failover benchmark measure handovers against.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::task::JoinHandle;

/// The Lease as the test's watch delivered it.
#[derive(Clone, Debug)]
pub struct LeaseSeen {
    /// When the event reached the test.
    pub at: Instant,
    /// `holderIdentity`; `None` when empty (released).
    pub holder: Option<String>,
    pub transitions: i32,
    pub acquire_time: Option<Timestamp>,
}

/// Every version of the Lease the test's watch delivered, in order.
pub struct LeaseLog {
    seen: Arc<Mutex<Vec<LeaseSeen>>>,
    task: JoinHandle<()>,
}

impl LeaseLog {
    pub fn start(client: Client, namespace: &str, name: &str) -> LeaseLog {
        let api: Api<Lease> = Api::namespaced(client, namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let stream = watcher(api, config).default_backoff().applied_objects();
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                // Errors (the API server is down) are retried by the backoff.
                let Ok(lease) = event else { continue };
                let at = Instant::now();
                let spec = lease.spec.unwrap_or_default();
                sink.lock().unwrap().push(LeaseSeen {
                    at,
                    holder: spec.holder_identity.filter(|h| !h.is_empty()),
                    transitions: spec.lease_transitions.unwrap_or(0),
                    acquire_time: spec.acquire_time.map(|t| t.0),
                });
            }
        });
        LeaseLog { seen, task }
    }

    pub fn snapshot(&self) -> Vec<LeaseSeen> {
        self.seen.lock().unwrap().clone()
    }

    /// The first version seen at or after `since` whose holder is someone other than `old`.
    pub async fn wait_for_new_holder(
        &self,
        old: &str,
        since: Instant,
        timeout: Duration,
    ) -> Result<LeaseSeen> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .snapshot()
                .into_iter()
                .find(|s| s.at >= since && s.holder.as_deref().is_some_and(|h| h != old));
            if let Some(found) = found {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                bail!(
                    "the Lease did not name a leader other than {old} within {timeout:?}; seen since: {:?}",
                    self.snapshot()
                        .iter()
                        .filter(|s| s.at >= since)
                        .map(|s| &s.holder)
                        .collect::<Vec<_>>()
                );
            }
            // Fine-grained: the watch stamps the event, this only notices it.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for LeaseLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The holder and `leaseTransitions` (the current term) of Lease `name`, if it names one.
pub async fn lease_term(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<(String, i32)>> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let spec = leases.get_opt(name).await?.and_then(|l| l.spec);
    Ok(spec.and_then(|s| {
        let transitions = s.lease_transitions.unwrap_or(0);
        s.holder_identity
            .filter(|h| !h.is_empty())
            .map(|h| (h, transitions))
    }))
}
