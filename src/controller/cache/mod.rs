//! The watch-fed cache every replica serves from: checks, jobs, states, checker pods and, when
//! served, v3 HealthChecks, kept current by kube-runtime reflectors. HTTP reads come from here
//! only, never from the API server. Objects are trimmed to what the replica reads ([`lean`]).

pub mod lean;

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use k8s_openapi::api::core::v1::Pod;

use crate::api::{HealthCheck, KuberhealthyCheck, KuberhealthyJob, KuberhealthyState, names};
use crate::controller::memory;

/// Objects per list request when a watch starts: a page is held whole, untrimmed, while it
/// is parsed, and what it leaves between the trimmed objects kept stays resident, so kube's
/// default of 500 would cost several MiB for the replica's life. 50 took about 0.5 MiB per
/// 1,000 kubectl-applied checks off 100 in the bench, for one request per 50 objects at start.
pub const LIST_PAGE: u32 = 50;

/// How every cached resource is watched.
fn watch_config() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE)
}

#[derive(Clone)]
pub struct Cache {
    pub checks: Store<KuberhealthyCheck>,
    pub jobs: Store<KuberhealthyJob>,
    pub states: Store<KuberhealthyState>,
    /// Checker pods (label `app=kuberhealthy-check`, which HealthChecks' pods carry too).
    pub pods: Store<Pod>,
    /// v3 HealthChecks, when this replica serves them.
    pub healthchecks: Option<Store<HealthCheck>>,
    synced: Arc<Vec<(&'static str, Arc<AtomicBool>)>>,
    changes: watch::Receiver<u64>,
}

impl Cache {
    /// Starts watching `namespace` (or every namespace); HealthChecks too when `healthchecks`.
    pub fn start(client: Client, namespace: Option<&str>, healthchecks: bool) -> Cache {
        let (changes_tx, changes) = watch::channel(0u64);
        let changes_tx = Arc::new(changes_tx);
        let all = watch_config();
        let (checks, checks_synced) = reflect::<KuberhealthyCheck>(
            client.clone(),
            namespace,
            all.clone(),
            changes_tx.clone(),
            lean::trim,
        );
        let (jobs, jobs_synced) = reflect::<KuberhealthyJob>(
            client.clone(),
            namespace,
            all.clone(),
            changes_tx.clone(),
            lean::trim,
        );
        let (states, states_synced) = reflect::<KuberhealthyState>(
            client.clone(),
            namespace,
            all,
            changes_tx.clone(),
            lean::trim_written,
        );
        let checker_pods =
            watch_config().labels(&format!("{}={}", names::LABEL_APP, names::LABEL_APP_VALUE));
        let (pods, pods_synced) = reflect::<Pod>(
            client.clone(),
            namespace,
            checker_pods,
            changes_tx.clone(),
            lean::project_pod,
        );
        let mut synced = vec![
            ("khchecks", checks_synced),
            ("khjobs", jobs_synced),
            ("khstates", states_synced),
            ("checker pods", pods_synced),
        ];
        let healthchecks = healthchecks.then(|| {
            let (store, flag) = reflect::<HealthCheck>(
                client,
                namespace,
                watch_config(),
                changes_tx,
                lean::trim_written,
            );
            synced.push(("healthchecks", flag));
            store
        });
        Cache {
            checks,
            jobs,
            states,
            pods,
            healthchecks,
            synced: Arc::new(synced),
            changes,
        }
    }

    /// Which of the caches have not finished their first list yet.
    pub fn unsynced(&self) -> Vec<&'static str> {
        self.synced
            .iter()
            .filter(|(_, s)| !s.load(Ordering::Relaxed))
            .map(|(name, _)| *name)
            .collect()
    }

    /// The HealthChecks, or none when they are not served.
    pub fn healthchecks(&self) -> Vec<Arc<HealthCheck>> {
        self.healthchecks
            .as_ref()
            .map(|store| store.state())
            .unwrap_or_default()
    }

    /// A counter that moves whenever any cached object changes: what served documents are
    /// rendered again on.
    pub fn version(&self) -> u64 {
        *self.changes.borrow()
    }

    /// A receiver that changes whenever any cached object changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

fn reflect<K>(
    client: Client,
    namespace: Option<&str>,
    config: watcher::Config,
    changes: Arc<watch::Sender<u64>>,
    trim: fn(&mut K),
) -> (Store<K>, Arc<AtomicBool>)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let (store, writer) = reflector::store::<K>();
    let synced = Arc::new(AtomicBool::new(false));
    let flag = synced.clone();
    let kind = K::plural(&()).to_string();
    let stream = cached(writer, watcher(api, config).backoff(watch_backoff()), trim);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    if !flag.swap(true, Ordering::Relaxed) {
                        tracing::info!(resource = %kind, "cache synced");
                    }
                    changes.send_modify(|n| *n += 1);
                    // The list's pages, parsed whole, are free now.
                    memory::freed();
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    changes.send_modify(|n| *n += 1);
                    // The object it replaced, and the event's own parse, are free now.
                    memory::freed();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(resource = %kind, error = %e, "watch failed; retrying with backoff")
                }
            }
        }
    });
    (store, synced)
}

/// The events of `events`, each object trimmed by `trim` before `writer` stores it.
pub(crate) fn cached<K, S>(
    writer: reflector::store::Writer<K>,
    events: S,
    trim: fn(&mut K),
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    reflector::reflector(writer, events.modify(trim))
}

/// The retry pace of every watch: kube's default grows to 30 s during an API-server outage,
/// so caches and the Lease holder would stay stale for up to half a minute after it ends.
/// Capped at 5 s, a replica catches up within seconds, at the cost of one request per watch
/// every 5 s while the API server is down.
pub fn watch_backoff() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(500))
        .with_max_delay(std::time::Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}
