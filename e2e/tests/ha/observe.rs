//! What the test sees, with the instant it saw it: the Lease and the khstates through
//! watches of its own (admin), the replicas through their status pages and metrics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use kuberhealthy_e2e::{http, metrics, wait_until};
use tokio::task::JoinHandle;

pub use kuberhealthy_e2e::lease_watch::LeaseLog;

/// A run start as the test's khstate watch delivered it (a new `uuid` in a khstate).
#[derive(Clone, Debug)]
pub struct RunSeen {
    pub at: Instant,
    pub check: String,
    pub uuid: String,
    /// `runTerm`: the holder and `leaseTransitions` of the term that started the run.
    pub holder: String,
    pub transitions: i64,
}

/// Every run start the test's khstate watch delivered, in the order the API server
/// committed them (one watch over the namespace delivers events in revision order).
pub struct RunLog {
    seen: Arc<Mutex<Vec<RunSeen>>>,
    task: JoinHandle<()>,
}

pub use kuberhealthy_e2e::resources::khstates as khstates_resource;

impl RunLog {
    pub fn start(client: Client, namespace: &str) -> RunLog {
        let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &khstates_resource());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut last_uuid: HashMap<String, String> = HashMap::new();
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects();
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let Ok(state) = event else { continue };
                let at = Instant::now();
                let spec = &state.data["spec"];
                let uuid = spec["uuid"].as_str().unwrap_or_default().to_string();
                let check = state.name_any();
                if uuid.is_empty() || last_uuid.get(&check) == Some(&uuid) {
                    continue;
                }
                last_uuid.insert(check.clone(), uuid.clone());
                sink.lock().unwrap().push(RunSeen {
                    at,
                    check,
                    uuid,
                    holder: spec["runTerm"]["holder"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    transitions: spec["runTerm"]["transitions"].as_i64().unwrap_or(-1),
                });
            }
        });
        RunLog { seen, task }
    }

    pub fn snapshot(&self) -> Vec<RunSeen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until every one of `checks` has a run started by `holder` that the test saw at
    /// or after `since`; returns those runs.
    pub async fn wait_for_runs_by(
        &self,
        holder: &str,
        checks: &[String],
        since: Instant,
    ) -> Result<Vec<RunSeen>> {
        wait_until(
            &format!("a run of each check started by {holder}"),
            crate::TIMEOUT,
            || async {
                let runs: Vec<RunSeen> = checks
                    .iter()
                    .filter_map(|check| {
                        self.snapshot()
                            .into_iter()
                            .find(|r| &r.check == check && r.holder == holder && r.at >= since)
                    })
                    .collect();
                Ok((runs.len() == checks.len()).then_some(runs))
            },
        )
        .await
    }
}

impl RunLog {
    /// Waits until a run started by term (`holder`, `transitions`) has been seen.
    pub async fn wait_for_run_by_term(&self, holder: &str, transitions: i32) -> Result<RunSeen> {
        wait_until(
            &format!("a run started by term ({holder}, {transitions})"),
            crate::TIMEOUT,
            || async {
                Ok(self
                    .snapshot()
                    .into_iter()
                    .find(|r| r.holder == holder && r.transitions == i64::from(transitions)))
            },
        )
        .await
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `CurrentMaster` of a replica's status page (`None` when empty).
pub async fn current_master(addr: SocketAddr) -> Result<Option<String>> {
    Ok(status_page(addr).await?.current_master)
}

/// What the tests read from `GET /json`.
#[derive(Debug, Clone)]
pub struct StatusPage {
    pub current_master: Option<String>,
    /// The keys of `CheckDetails` (`namespace/name`).
    pub checks: Vec<String>,
}

pub async fn status_page(addr: SocketAddr) -> Result<StatusPage> {
    let response = http::get(addr, "/json").await?;
    if response.status != 200 {
        bail!("GET /json answered {}: {}", response.status, response.body);
    }
    parse_status_page(&response.body)
}

fn parse_status_page(body: &str) -> Result<StatusPage> {
    let page: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("GET /json is not JSON: {body}"))?;
    let current_master = page["CurrentMaster"]
        .as_str()
        .context("the status page has no CurrentMaster string")?;
    let checks = page["CheckDetails"]
        .as_object()
        .map(|details| details.keys().cloned().collect())
        .unwrap_or_default();
    Ok(StatusPage {
        current_master: (!current_master.is_empty()).then(|| current_master.to_string()),
        checks,
    })
}

/// Whether a replica's `/metrics` says `kuberhealthy_controller_leader 1`.
pub async fn is_leader(addr: SocketAddr) -> Result<bool> {
    let response = http::get(addr, "/metrics").await?;
    if response.status != 200 {
        bail!("GET /metrics answered {}", response.status);
    }
    let samples = metrics::parse(&response.body)?;
    let sample = samples
        .iter()
        .find(|s| s.name == "kuberhealthy_controller_leader")
        .context("no kuberhealthy_controller_leader in /metrics")?;
    Ok(sample.value == 1.0)
}

/// What [`MasterWatch`] saw.
#[derive(Debug)]
pub struct MasterSeen {
    /// Per status page, when it first showed the new `CurrentMaster`.
    pub firsts: Vec<Option<Instant>>,
    /// Rounds in which every replica's `/metrics` was read.
    pub metric_rounds: usize,
    /// Rounds in which two replicas reported `kuberhealthy_controller_leader 1` and a second
    /// reading of both, right after, still did.
    pub two_leaders: Vec<String>,
}

/// When each of a set of replicas first showed a new `CurrentMaster`, from polling their
/// status pages every [`crate::POLL`]; in the same rounds, every replica's leadership metric.
pub struct MasterWatch {
    task: JoinHandle<MasterSeen>,
}

impl MasterWatch {
    /// Polls the status pages at `addrs` until each has shown a `CurrentMaster` that is
    /// neither empty nor `old`, or `timeout` passes; each first sighting is the instant the
    /// answer arrived. Each round also reads the `/metrics` of every address in `all_addrs`
    /// (one that does not answer counts as not leading).
    pub fn start(
        addrs: Vec<SocketAddr>,
        all_addrs: Vec<SocketAddr>,
        old: String,
        timeout: Duration,
    ) -> MasterWatch {
        let task = tokio::spawn(async move {
            let deadline = Instant::now() + timeout;
            let mut seen = MasterSeen {
                firsts: vec![None; addrs.len()],
                metric_rounds: 0,
                two_leaders: Vec::new(),
            };
            while seen.firsts.iter().any(Option::is_none) && Instant::now() < deadline {
                let round = Instant::now();
                for (i, addr) in addrs.iter().enumerate() {
                    if seen.firsts[i].is_some() {
                        continue;
                    }
                    if let Ok(Some(master)) = current_master(*addr).await
                        && master != old
                    {
                        seen.firsts[i] = Some(Instant::now());
                    }
                }
                let leaders = leading_addrs(&all_addrs).await;
                if leaders.len() > 1 {
                    // A reading can straddle a handover by a few milliseconds: read again.
                    let again = leading_addrs(&leaders).await;
                    if again.len() > 1 {
                        seen.two_leaders.push(format!(
                            "replicas at {again:?} reported kuberhealthy_controller_leader 1 twice in a row"
                        ));
                    }
                }
                seen.metric_rounds += 1;
                tokio::time::sleep_until((round + crate::POLL).into()).await;
            }
            seen
        });
        MasterWatch { task }
    }

    pub async fn finish(self) -> Result<MasterSeen> {
        self.task.await.context("the status page poller panicked")
    }
}

/// The addresses whose `/metrics` report `kuberhealthy_controller_leader 1`.
async fn leading_addrs(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut leading = Vec::new();
    for &addr in addrs {
        if is_leader(addr).await.unwrap_or(false) {
            leading.push(addr);
        }
    }
    leading
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_page() {
        let page = parse_status_page(
            r#"{"OK": true, "Errors": [], "CheckDetails": {"ns/a": {}, "ns/b": {}}, "JobDetails": {}, "CurrentMaster": "kh-1", "Metadata": {}}"#,
        )
        .unwrap();
        assert_eq!(page.current_master.as_deref(), Some("kh-1"));
        assert_eq!(page.checks, vec!["ns/a".to_string(), "ns/b".to_string()]);
        let empty = parse_status_page(r#"{"CurrentMaster": ""}"#).unwrap();
        assert_eq!(empty.current_master, None);
        assert!(parse_status_page("{}").is_err());
    }
}
