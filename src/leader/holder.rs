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
    let stream = watcher(api, config).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut seen_in_list: Option<Option<String>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease)) => {
                    let holder = holder_of(&lease);
                    if matches!(seen_in_list, Some(_)) || !*synced_tx.borrow() {
                        seen_in_list = Some(holder.clone());
                    }
                    publish(&tx, holder);
                }
                Ok(watcher::Event::Delete(_)) => publish(&tx, None),
                Ok(watcher::Event::Init) => seen_in_list = Some(None),
                Ok(watcher::Event::InitDone) => {
                    // A Lease missing from the list means no leader.
                    if let Some(holder) = seen_in_list.take() {
                        publish(&tx, holder);
                    }
                    synced_tx.send_replace(true);
                }
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
