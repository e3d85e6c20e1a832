//! Every replica watches the Lease to know the current leader (`CurrentMaster`), whether or
//! not it contends.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

/// The holder named in the Lease, or `None` when it is free or released.
pub type Holder = watch::Receiver<Option<String>>;

/// Watches Lease `name` in `namespace`; the returned receiver follows its holder. The
/// second receiver turns true once the first list has been seen (for readiness).
pub fn watch_holder(
    client: Client,
    namespace: &str,
    name: &str,
) -> (Holder, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(None);
    let (synced_tx, synced_rx) = watch::channel(false);
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(api, config).backoff(crate::controller::cache::watch_backoff());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        // During a (re)list the holder is collected and published when the list is complete,
        // so a Lease missing from the list reads as no leader.
        let mut listing: Option<Option<String>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listing = Some(None),
                Ok(watcher::Event::InitApply(lease)) => listing = Some(holder_of(&lease)),
                Ok(watcher::Event::InitDone) => {
                    if let Some(holder) = listing.take() {
                        publish(&tx, holder);
                    }
                    synced_tx.send_replace(true);
                }
                Ok(watcher::Event::Apply(lease)) => publish(&tx, holder_of(&lease)),
                Ok(watcher::Event::Delete(_)) => publish(&tx, None),
                Err(e) => tracing::warn!(error = %e, "watch of the Lease failed; retrying"),
            }
        }
    });
    (rx, synced_rx)
}

fn holder_of(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

fn publish(tx: &watch::Sender<Option<String>>, holder: Option<String>) {
    tx.send_if_modified(|current| {
        if *current == holder {
            return false;
        }
        match &holder {
            Some(h) => tracing::info!(holder = %h, "the Lease names a new leader"),
            None => tracing::info!("the Lease names no leader"),
        }
        *current = holder;
        true
    });
}
