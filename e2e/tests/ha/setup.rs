//! One test's world: an audited control plane of its own, the pod runner, the controller's
//! RBAC, due checks, and three replicas acting as ServiceAccount `kuberhealthy`.

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kube::Client;
use kuberhealthy_e2e::audit::{self, AuditEvent};
use kuberhealthy_e2e::network::replica::ReplicaNetwork;
use kuberhealthy_e2e::pod_runner::record;
use kuberhealthy_e2e::{
    ControlPlane, ControlPlaneOptions, Replica, ReplicaOptions, TestCluster, TestContext, install,
    ports, wait_until,
};

use crate::observe::{self, LeaseLog, RunLog};
use crate::{LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD, TIMEOUT};

/// The Lease the replicas elect a leader with (`KH_LEADER_ELECTION_NAME`, the default).
pub const LEASE_NAME: &str = "kuberhealthy";
/// How many replicas run.
pub const REPLICAS: usize = 3;
/// Checks due every 2 s, so the leader always has runs to start, pods to create and reap.
pub const CHECKS: usize = 3;
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Where replicas run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// In the host's network, listening on the pod network's host side.
    Host,
    /// Each in a network namespace of its own on the pod network, so that its path to the
    /// API server can be cut ([`Ha::network`]).
    OwnNetwork,
}

/// The port replicas in a network namespace of their own listen on (all are free there).
const OWN_NETWORK_PORT: u16 = 8080;

/// Where checker pods send their reports (`KH_EXTERNAL_REPORTING_URL`).
#[derive(Clone, Copy, Debug)]
pub enum Reporting {
    /// Each replica gives its own URL: reports go back to the leader that started the run.
    OwnReplica,
    /// Every replica gives this replica's URL.
    Replica(usize),
}

pub fn replica_name(index: usize) -> String {
    format!("kh-{index}")
}

pub fn check_name(index: usize) -> String {
    format!("ha-check-{index}")
}

/// A check that reports OK to the URL its run was given.
fn check_yaml(name: &str) -> String {
    checker_yaml(name, CHECK_INTERVAL, "curl")
}

/// A check due every `interval` that works for `work` before it reports OK (so its runs
/// stay in flight), retrying its report for a while when it is not accepted (as check
/// clients do on 5xx).
pub fn working_check_yaml(name: &str, interval: Duration, work: Duration) -> String {
    let script = format!(
        "sleep {}; curl --retry 10 --retry-delay 1 --retry-all-errors",
        work.as_secs_f64()
    );
    checker_yaml(name, interval, &script)
}

/// A check due every `interval` whose checker runs `curl` (a command line ending with curl
/// and options of its own) to post OK with the run's UUID.
fn checker_yaml(name: &str, interval: Duration, curl: &str) -> String {
    format!(
        r#"apiVersion: comcast.github.io/v1
kind: KuberhealthyCheck
metadata:
  name: {name}
spec:
  runInterval: {interval}s
  timeout: 20s
  podSpec:
    containers:
    - name: main
      image: docker.io/curlimages/curl:8.11.1
      command: ["sh", "-c"]
      args:
      - >-
        {curl} --fail --silent --show-error -X POST -H "kh-run-uuid: $KH_RUN_UUID"
        -d '{{"OK": true}}' "$KH_REPORTING_URL"
"#,
        interval = interval.as_secs(),
    )
}

/// Field order is drop order: replicas go first (SIGKILL), then the context (which prints
/// the logs if the test panicked), then the pod runner and the control plane.
pub struct Ha {
    replicas: Vec<Replica>,
    /// Replicas' own network namespaces ([`Placement::OwnNetwork`]), removed once the
    /// replicas are gone.
    networks: Vec<ReplicaNetwork>,
    /// Where each replica listens (the pod network's host side), kept across restarts.
    addrs: Vec<SocketAddr>,
    pub lease: LeaseLog,
    pub runs: RunLog,
    client: Client,
    kubeconfig: PathBuf,
    reporting: Reporting,
    /// More environment of every replica started from now on (see [`Ha::set_env`]).
    extra_env: Vec<(String, String)>,
    /// Sampling rounds of every replica's `/metrics` that found exactly one leader.
    leader_rounds: AtomicUsize,
    ctx: TestContext,
    cluster: TestCluster,
}

impl Ha {
    /// Everything but the replicas, which run in the host's network: see [`Ha::spawn`] and
    /// [`Ha::spawn_all`].
    pub async fn start(test_name: &str, reporting: Reporting) -> Result<Ha> {
        Self::start_placed(test_name, reporting, Placement::Host).await
    }

    /// Like [`Ha::start`], with replicas placed as `placement` says.
    pub async fn start_placed(
        test_name: &str,
        reporting: Reporting,
        placement: Placement,
    ) -> Result<Ha> {
        let plane =
            ControlPlane::start_audited(ControlPlaneOptions::default(), audit::WRITES_POLICY)
                .await
                .context("starting an audited control plane")?;
        let cluster =
            TestCluster::start_on(plane, Path::new(env!("CARGO_BIN_EXE_pod-runner"))).await?;
        let ctx = cluster.context(test_name).await?;
        let client = ctx.client().await?;
        let namespace = ctx.namespace().to_string();
        let kubeconfig = install::install(&ctx, TIMEOUT).await?;

        for i in 0..CHECKS {
            ctx.apply_yaml(&check_yaml(&check_name(i))).await?;
        }
        let host_ip = ctx.host_ip();
        let plane = cluster.control_plane();
        let api_server = SocketAddr::from((host_ip, plane.port()));
        let networks = match placement {
            Placement::Host => Vec::new(),
            Placement::OwnNetwork => (0..REPLICAS)
                .map(|_| ReplicaNetwork::create(plane.network().id(), api_server))
                .collect::<Result<Vec<_>>>()?,
        };
        let addrs = match placement {
            Placement::Host => (0..REPLICAS)
                .map(|_| Ok(SocketAddr::from((host_ip, ports::free_port(host_ip)?))))
                .collect::<Result<Vec<_>>>()?,
            Placement::OwnNetwork => networks
                .iter()
                .map(|n| SocketAddr::from((n.ip(), OWN_NETWORK_PORT)))
                .collect(),
        };
        let lease = LeaseLog::start(client.clone(), &namespace, LEASE_NAME);
        let runs = RunLog::start(client.clone(), &namespace);
        Ok(Ha {
            replicas: Vec::new(),
            networks,
            addrs,
            lease,
            runs,
            client,
            kubeconfig,
            reporting,
            extra_env: Vec::new(),
            leader_rounds: AtomicUsize::new(0),
            ctx,
            cluster,
        })
    }

    fn options(&self, index: usize) -> ReplicaOptions {
        let name = replica_name(index);
        let mut options = ReplicaOptions::new(
            &name,
            self.ctx.namespace(),
            &self.kubeconfig,
            self.ctx.host_ip(),
            self.ctx.log_dir(),
        );
        if let Some(network) = self.networks.get(index) {
            options.listen_ip = network.ip();
            options.netns = Some(network.netns_path());
        }
        options.target_namespace = Some(self.ctx.namespace().to_string());
        // The same port across restarts, so a replica's reporting URL stays its own.
        options.listen_port = Some(self.addrs[index].port());
        let reporter = match self.reporting {
            Reporting::OwnReplica => index,
            Reporting::Replica(r) => r,
        };
        options.external_reporting_url = Some(format!(
            "http://{}/externalCheckStatus",
            self.addrs[reporter]
        ));
        options.env = vec![
            (
                "KH_LEADER_ELECTION_LEASE_DURATION".into(),
                go_duration(LEASE_DURATION),
            ),
            (
                "KH_LEADER_ELECTION_RENEW_DEADLINE".into(),
                go_duration(RENEW_DEADLINE),
            ),
            (
                "KH_LEADER_ELECTION_RETRY_PERIOD".into(),
                go_duration(RETRY_PERIOD),
            ),
            ("KH_LEADER_ELECTION_NAME".into(), LEASE_NAME.into()),
            ("KH_LOG_FORMAT".into(), "json".into()),
        ];
        options.env.extend(self.extra_env.iter().cloned());
        options
    }

    /// Sets an environment variable of every replica started after this call.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.extra_env.push((name.into(), value.into()));
    }

    /// Starts replica `index` (the next one when it is `replicas().len()`, or a restart of
    /// one that has exited) and waits until it is ready.
    pub async fn spawn(&mut self, index: usize) -> Result<()> {
        let replica = Replica::spawn(self.options(index))?;
        if index == self.replicas.len() {
            self.replicas.push(replica);
        } else {
            let old = &mut self.replicas[index];
            ensure!(
                old.try_exit()?.is_some(),
                "{} is still running; it cannot be started twice",
                old.name()
            );
            self.replicas[index] = replica;
        }
        self.wait_ready(index).await
    }

    pub async fn spawn_all(&mut self) -> Result<()> {
        while self.replicas.len() < REPLICAS {
            self.spawn(self.replicas.len()).await?;
        }
        Ok(())
    }

    async fn wait_ready(&mut self, index: usize) -> Result<()> {
        self.replicas[index].wait_ready(TIMEOUT).await
    }

    pub fn replica(&self, index: usize) -> &Replica {
        &self.replicas[index]
    }

    pub fn replica_mut(&mut self, index: usize) -> &mut Replica {
        &mut self.replicas[index]
    }

    /// Replica `index`'s own network namespace ([`Placement::OwnNetwork`]).
    pub fn network(&self, index: usize) -> &ReplicaNetwork {
        &self.networks[index]
    }

    /// The pod runner's record of the containers it started and saw exit.
    pub fn pod_record(&self) -> Result<Vec<record::Entry>> {
        record::read(self.cluster.pod_logs_dir())
    }

    pub fn addr(&self, index: usize) -> SocketAddr {
        self.addrs[index]
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        (0..self.replicas.len()).find(|&i| replica_name(i) == name)
    }

    pub fn namespace(&self) -> &str {
        self.ctx.namespace()
    }

    /// Applies `yaml` into the test's namespace.
    pub async fn apply(&self, yaml: &str) -> Result<()> {
        self.ctx.apply_yaml(yaml).await.map(drop)
    }

    pub fn control_plane(&self) -> &ControlPlane {
        self.cluster.control_plane()
    }

    pub fn cluster_mut(&mut self) -> &mut TestCluster {
        &mut self.cluster
    }

    /// The Lease's holder as the API server has it now ("" or `None`: nobody).
    pub async fn lease_holder(&self) -> Result<Option<String>> {
        Ok(self.lease_term().await?.map(|(holder, _)| holder))
    }

    /// The Lease's holder and `leaseTransitions` (the current term), if it names one.
    pub async fn lease_term(&self) -> Result<Option<(String, i32)>> {
        kuberhealthy_e2e::lease_watch::lease_term(&self.client, self.namespace(), LEASE_NAME).await
    }

    /// Waits until the cluster is settled and returns the leader's index: the Lease names a
    /// running replica, every replica is ready, every status page shows it as
    /// `CurrentMaster`, and in three sampling rounds in a row exactly one replica, that
    /// one, reports `kuberhealthy_controller_leader 1`.
    pub async fn settle(&self) -> Result<usize> {
        let rounds = Cell::new(0);
        wait_until(
            "one leader that every replica names, and only it reporting leadership",
            TIMEOUT,
            || async {
                match self.settled_round().await {
                    Ok(leader) => {
                        rounds.set(rounds.get() + 1);
                        Ok((rounds.get() >= 3).then_some(leader))
                    }
                    Err(err) => {
                        rounds.set(0);
                        Err(err)
                    }
                }
            },
        )
        .await
    }

    async fn settled_round(&self) -> Result<usize> {
        let holder = self
            .lease_holder()
            .await?
            .context("the Lease names no leader")?;
        let leader = self
            .index_of(&holder)
            .with_context(|| format!("the Lease names {holder:?}, not one of the replicas"))?;
        for i in 0..self.replicas.len() {
            let addr = self.addrs[i];
            let ready = kuberhealthy_e2e::http::get(addr, "/readyz").await?;
            ensure!(ready.status == 200, "{} is not ready", replica_name(i));
            let master = observe::current_master(addr).await?;
            ensure!(
                master.as_deref() == Some(holder.as_str()),
                "{} shows CurrentMaster {master:?}, the Lease names {holder:?}",
                replica_name(i)
            );
        }
        let leaders = self.leaders_by_metric().await?;
        ensure!(
            leaders == vec![leader],
            "replicas reporting kuberhealthy_controller_leader 1: {leaders:?}; the Lease names {holder}"
        );
        self.leader_rounds.fetch_add(1, Ordering::SeqCst);
        Ok(leader)
    }

    /// How many sampling rounds (every replica's `/metrics`, while settled) found exactly
    /// one replica reporting `kuberhealthy_controller_leader 1`, the Lease holder.
    pub fn leader_rounds(&self) -> usize {
        self.leader_rounds.load(Ordering::SeqCst)
    }

    /// The replicas whose `/metrics` say `kuberhealthy_controller_leader 1`.
    pub async fn leaders_by_metric(&self) -> Result<Vec<usize>> {
        let mut leaders = Vec::new();
        for i in 0..self.replicas.len() {
            if observe::is_leader(self.addrs[i]).await? {
                leaders.push(i);
            }
        }
        Ok(leaders)
    }

    /// Every write the API server has audited so far.
    pub fn audit(&self) -> Result<Vec<AuditEvent>> {
        let path = self
            .cluster
            .control_plane()
            .audit_log_path()
            .context("the control plane has no audit log")?;
        audit::read(&path)
    }

    /// Waits until the audit log holds a successful write by `replica` received at or
    /// after `since` (the API server writes each event as it finishes the request).
    pub async fn wait_for_audited_write(
        &self,
        replica: &str,
        resource: &str,
        since: k8s_openapi::jiff::Timestamp,
    ) -> Result<()> {
        wait_until(
            &format!("an audited write of {resource} by {replica}"),
            TIMEOUT,
            || async {
                Ok(self
                    .audit()?
                    .iter()
                    .any(|e| {
                        crate::history::replica_of(e) == Some(replica)
                            && e.resource() == resource
                            && e.succeeded()
                            && e.request_received_timestamp >= since
                    })
                    .then_some(()))
            },
        )
        .await
    }

    /// Kept for failure messages: how long the replicas have been up, and their log tails.
    pub fn describe_replicas(&self) -> String {
        self.replicas
            .iter()
            .map(|r| format!("--- {} (pid {}) ---\n{}", r.name(), r.pid(), r.log_tail(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A Go duration string for the replica's environment (`3s`, `500ms`).
pub fn go_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}
