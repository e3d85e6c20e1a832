//! The soak's world: an audited control plane with the pod runner, the CRDs, the
//! controller's RBAC, checks, and three replicas as ServiceAccount `kuberhealthy`, each in a
//! network namespace of its own (so its path to the API server can be cut).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use kube::Client;
use kuberhealthy_e2e::audit::{self, AuditEvent};
use kuberhealthy_e2e::lease_watch::LeaseLog;
use kuberhealthy_e2e::network::replica::ReplicaNetwork;
use kuberhealthy_e2e::pod_runner::record;
use kuberhealthy_e2e::{
    ControlPlane, ControlPlaneOptions, Replica, ReplicaOptions, TestCluster, TestContext, binaries,
    install,
};

pub const TIMEOUT: Duration = Duration::from_secs(120);
pub const LEASE_NAME: &str = "kuberhealthy";
pub const REPLICAS: usize = 3;
/// The short lease timings of the HA tests: lease, renew deadline, retry period.
pub const LEASE: Duration = Duration::from_secs(3);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(2);
pub const RETRY_PERIOD: Duration = Duration::from_millis(500);
/// The port replicas listen on, each on its own address.
const PORT: u16 = 8080;

/// A Go duration string (`3s`, `500ms`).
pub fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub fn replica_name(index: usize) -> String {
    format!("kh-{index}")
}

/// The checker: works `work`, then posts OK to its own replica's URL and, when that does
/// not answer 200 or 4xx, to the others (a Service in front of ready replicas), once a
/// second for up to a minute. Each answer goes to its log as `report <code> <url> <body>`
/// (the body says why a report was refused).
fn checker_script(work: Duration) -> String {
    format!(
        r#"sleep {work}
i=0
while [ $i -lt 60 ]; do
  for url in "$KH_REPORTING_URL" $SOAK_REPORT_URLS; do
    code=$(curl -s -o answer -w '%{{http_code}}' --max-time 5 -X POST -H "kh-run-uuid: $KH_RUN_UUID" -d '{{"OK": true}}' "$url")
    echo "report $code $url $(cat answer 2>/dev/null)"
    case $code in 200) exit 0;; 4*) exit 3;; esac
  done
  i=$((i+1)); sleep 1
done
exit 4"#,
        work = work.as_secs_f64()
    )
}

fn check_yaml(name: &str, interval: Duration, work: Duration, urls: &str) -> String {
    let script = serde_json::to_string(&checker_script(work)).expect("a string");
    format!(
        r#"apiVersion: comcast.github.io/v1
kind: KuberhealthyCheck
metadata:
  name: {name}
spec:
  runInterval: {interval}
  timeout: 2m
  podSpec:
    containers:
    - name: main
      image: docker.io/curlimages/curl:8.11.1
      command: ["sh", "-c", {script}]
      env:
      - name: SOAK_REPORT_URLS
        value: "{urls}"
"#,
        interval = go_duration(interval),
    )
}

/// Field order is drop order: replicas, their networks, the context, the cluster.
pub struct World {
    replicas: Vec<Replica>,
    networks: Vec<ReplicaNetwork>,
    addrs: Vec<SocketAddr>,
    pub lease: LeaseLog,
    client: Client,
    kubeconfig: PathBuf,
    ctx: TestContext,
    cluster: TestCluster,
}

impl World {
    pub async fn start() -> Result<World> {
        let plane =
            ControlPlane::start_audited(ControlPlaneOptions::default(), audit::WRITES_POLICY)
                .await
                .context("starting an audited control plane")?;
        let cluster = TestCluster::start_on(plane, &binaries::sibling("pod-runner")?).await?;
        let ctx = cluster.context("soak").await?;
        let client = ctx.client().await?;
        let namespace = ctx.namespace().to_string();
        let kubeconfig = install::install(&ctx, TIMEOUT).await?;
        let plane = cluster.control_plane();
        let api_server = SocketAddr::from((plane.host_ip(), plane.port()));
        let networks = (0..REPLICAS)
            .map(|_| ReplicaNetwork::create(plane.network().id(), api_server))
            .collect::<Result<Vec<_>>>()?;
        let addrs = networks
            .iter()
            .map(|n| SocketAddr::from((n.ip(), PORT)))
            .collect();
        let lease = LeaseLog::start(client.clone(), &namespace, LEASE_NAME);
        Ok(World {
            replicas: Vec::new(),
            networks,
            addrs,
            lease,
            client,
            kubeconfig,
            ctx,
            cluster,
        })
    }

    /// Applies the checks `(name, interval, work)`; checkers report to every replica.
    pub async fn apply_checks(&self, checks: &[(String, Duration, Duration)]) -> Result<()> {
        let urls = self
            .addrs
            .iter()
            .map(|a| format!("http://{a}/externalCheckStatus"))
            .collect::<Vec<_>>()
            .join(" ");
        for (name, interval, work) in checks {
            self.ctx
                .apply_yaml(&check_yaml(name, *interval, *work, &urls))
                .await?;
        }
        Ok(())
    }

    fn options(&self, index: usize) -> ReplicaOptions {
        let mut options = ReplicaOptions::new(
            &replica_name(index),
            self.ctx.namespace(),
            &self.kubeconfig,
            self.networks[index].ip(),
            self.ctx.log_dir(),
        );
        options.netns = Some(self.networks[index].netns_path());
        options.listen_port = Some(PORT);
        options.target_namespace = Some(self.ctx.namespace().to_string());
        options.external_reporting_url =
            Some(format!("http://{}/externalCheckStatus", self.addrs[index]));
        options.env = vec![
            (
                "KH_LEADER_ELECTION_LEASE_DURATION".into(),
                go_duration(LEASE),
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
        options
    }

    /// Starts replica `index`, or restarts it once it has exited, and waits until ready.
    pub async fn spawn(&mut self, index: usize) -> Result<()> {
        let replica = Replica::spawn(self.options(index))?;
        if index == self.replicas.len() {
            self.replicas.push(replica);
        } else {
            self.replicas[index] = replica;
        }
        self.replicas[index].wait_ready(TIMEOUT).await
    }

    pub fn replica(&self, index: usize) -> &Replica {
        &self.replicas[index]
    }

    pub fn replica_mut(&mut self, index: usize) -> &mut Replica {
        &mut self.replicas[index]
    }

    pub fn network(&self, index: usize) -> &ReplicaNetwork {
        &self.networks[index]
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        (0..self.replicas.len()).find(|&i| replica_name(i) == name)
    }

    pub fn namespace(&self) -> &str {
        self.ctx.namespace()
    }

    /// The Lease's holder now, if it names one.
    pub async fn holder(&self) -> Result<Option<String>> {
        Ok(
            kuberhealthy_e2e::lease_watch::lease_term(&self.client, self.namespace(), LEASE_NAME)
                .await?
                .map(|(holder, _)| holder),
        )
    }

    /// The pod runner's record so far.
    pub fn pod_record(&self) -> Result<Vec<record::Entry>> {
        record::read(self.cluster.pod_logs_dir())
    }

    /// A checker's log (`report <code> <url>` lines), empty when it has none.
    pub fn checker_log(&self, pod: &str) -> String {
        self.ctx.container_log(pod, "main")
    }

    pub fn audit(&self) -> Result<Vec<AuditEvent>> {
        let path = self
            .cluster
            .control_plane()
            .audit_log_path()
            .context("the control plane has no audit log")?;
        audit::read(&path)
    }

    /// Tails of every replica's log, for a failure.
    pub fn describe_replicas(&self) -> String {
        self.replicas
            .iter()
            .map(|r| format!("--- {} ---\n{}", r.name(), r.log_tail(20)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
