//! One scenario's world: a control plane of its own with the pod runner, the CRDs, a
//! namespace with the controller's RBAC, checks and their khstates created in bulk, and
//! `kuberhealthy run` replicas acting as ServiceAccount `kuberhealthy`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures::{StreamExt, TryStreamExt};
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, Client};
use kuberhealthy_e2e::{
    ControlPlane, Replica, ReplicaOptions, TestCluster, TestContext, binaries, http, install,
    ports, wait_until,
};
use serde_json::{Value, json};

/// Deadline for conditions that are not under measurement.
pub const TIMEOUT: Duration = Duration::from_secs(180);
/// The Lease name (`KH_LEADER_ELECTION_NAME`, the default).
pub const LEASE_NAME: &str = "kuberhealthy";
/// Concurrent creates when filling the API server with checks and states.
const CREATE_CONCURRENCY: usize = 32;

/// Leader election timings.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTimings {
    pub lease: Duration,
    pub renew: Duration,
    pub retry: Duration,
}

/// client-go's defaults, which kuberhealthy uses too.
pub const DEFAULT_LEASE: LeaseTimings = LeaseTimings {
    lease: Duration::from_secs(15),
    renew: Duration::from_secs(10),
    retry: Duration::from_secs(2),
};

/// The short settings of the high-availability tests.
pub const SHORT_LEASE: LeaseTimings = LeaseTimings {
    lease: Duration::from_secs(3),
    renew: Duration::from_secs(2),
    retry: Duration::from_millis(500),
};

impl LeaseTimings {
    pub fn describe(&self) -> String {
        format!(
            "{}/{}/{}",
            go_duration(self.lease),
            go_duration(self.renew),
            go_duration(self.retry)
        )
    }
}

/// A Go duration string (`3s`, `500ms`).
pub fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub use kuberhealthy_e2e::resources::{khchecks, khstates};

pub fn check_name(i: usize) -> String {
    format!("bench-{i:05}")
}

/// A check that runs `command` every `interval` (a Go duration string).
pub fn check(name: &str, interval: &str, timeout: &str, command: &[&str]) -> Value {
    json!({
        "apiVersion": "comcast.github.io/v1",
        "kind": "KuberhealthyCheck",
        "metadata": {"name": name},
        "spec": {
            "runInterval": interval,
            "timeout": timeout,
            "podSpec": {"containers": [{
                "name": "main",
                "image": "docker.io/curlimages/curl:8.11.1",
                "command": command,
            }]},
        },
    })
}

/// The field manager of `kubectl apply` (client-side).
const KUBECTL_CLIENT_SIDE_APPLY: &str = "kubectl-client-side-apply";

/// `object` as `kubectl apply` sends it when it creates it: with the last-applied annotation
/// holding the object as applied (compact JSON, namespace included).
pub fn as_kubectl_applies(mut object: Value, namespace: &str) -> Value {
    object["metadata"]["namespace"] = json!(namespace);
    let applied = serde_json::to_string(&object).expect("a JSON value serialises");
    object["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": format!("{applied}\n")});
    object
}

/// The command of a checker that reports OK to the URL its run was given.
pub const REPORT_OK: &[&str] = &[
    "sh",
    "-c",
    "curl --fail --silent --show-error -X POST -H \"kh-run-uuid: $KH_RUN_UUID\" -d '{\"OK\": true}' \"$KH_REPORTING_URL\"",
];

/// A khstate whose run finished just now: with a long interval, nothing is due for a while.
pub fn finished_state(name: &str, namespace: &str) -> Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    json!({
        "apiVersion": "comcast.github.io/v1",
        "kind": "KuberhealthyState",
        "metadata": {"name": name},
        "spec": {
            "OK": true,
            "Errors": [],
            "RunDuration": "1s",
            "Namespace": namespace,
            "Node": "",
            "LastRun": now,
            "AuthoritativePod": "bench",
            "uuid": format!("bench-{name}"),
            "khWorkload": "KHCheck",
            "runStartedAt": now,
            "runFinishedAt": now,
        },
    })
}

/// An audit policy logging every request once, when it completes (a watch when it ends),
/// with who made it: the user agent tells the replicas apart from the pod runner.
pub const ALL_REQUESTS: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
"#;

/// Field order is drop order: replicas go first, then the namespace context, the pod runner
/// and the control plane.
pub struct World {
    replicas: Vec<Option<Replica>>,
    /// Where each replica listens (the pod network's host side), kept across restarts.
    addrs: Vec<SocketAddr>,
    pub client: Client,
    kubeconfig: PathBuf,
    ctx: TestContext,
    cluster: TestCluster,
}

impl World {
    pub async fn start(name: &str) -> Result<World> {
        let plane = ControlPlane::start()
            .await
            .context("starting a control plane")?;
        World::start_on(name, plane).await
    }

    /// A world whose API server logs every request in its audit log ([`ALL_REQUESTS`]).
    pub async fn start_audited(name: &str) -> Result<World> {
        let plane = ControlPlane::start_audited(Default::default(), ALL_REQUESTS)
            .await
            .context("starting an audited control plane")?;
        World::start_on(name, plane).await
    }

    async fn start_on(name: &str, plane: ControlPlane) -> Result<World> {
        let pod_runner = binaries::sibling("pod-runner")?;
        let cluster = TestCluster::start_on(plane, &pod_runner).await?;
        let ctx = cluster.context(name).await?;
        let client = ctx.client().await?;
        let kubeconfig = install::install(&ctx, TIMEOUT).await?;
        Ok(World {
            replicas: Vec::new(),
            addrs: Vec::new(),
            client,
            kubeconfig,
            ctx,
            cluster,
        })
    }

    pub fn namespace(&self) -> &str {
        self.ctx.namespace()
    }

    pub fn plane(&self) -> &ControlPlane {
        self.cluster.control_plane()
    }

    /// The pid of this world's kube-apiserver.
    pub fn apiserver_pid(&self) -> Result<u32> {
        let marker = self.plane().dir().to_string_lossy().to_string();
        crate::procfs::find_process("kube-apiserver", &marker)
            .context("cannot find this control plane's kube-apiserver in /proc")
    }

    /// Creates `objects` (checks or states) in this namespace, `CREATE_CONCURRENCY` at a time.
    pub async fn create_all(&self, resource: &ApiResource, objects: Vec<Value>) -> Result<()> {
        self.create_all_as(resource, objects, "bench").await
    }

    /// [`World::create_all`] with the field manager `manager`.
    pub async fn create_all_as(
        &self,
        resource: &ApiResource,
        objects: Vec<Value>,
        manager: &str,
    ) -> Result<()> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.namespace(), resource);
        let params = PostParams {
            field_manager: Some(manager.to_string()),
            ..PostParams::default()
        };
        futures::stream::iter(objects)
            .map(|object| {
                let api = api.clone();
                let params = params.clone();
                async move {
                    let object: DynamicObject = serde_json::from_value(object)?;
                    api.create(&params, &object).await.with_context(|| {
                        format!("creating {}", object.metadata.name.unwrap_or_default())
                    })?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Creates checks `range` (named [`check_name`]) with a finished khstate each, due
    /// again only after `interval`.
    pub async fn create_idle_checks(
        &self,
        range: std::ops::Range<usize>,
        interval: &str,
    ) -> Result<Duration> {
        self.create_idle_checks_by(range, interval, false).await
    }

    /// [`World::create_idle_checks`], each check created as `kubectl apply` creates it: with
    /// the `kubectl.kubernetes.io/last-applied-configuration` annotation holding the whole
    /// object as applied, and kubectl's field manager.
    pub async fn create_idle_checks_applied(
        &self,
        range: std::ops::Range<usize>,
        interval: &str,
    ) -> Result<Duration> {
        self.create_idle_checks_by(range, interval, true).await
    }

    async fn create_idle_checks_by(
        &self,
        range: std::ops::Range<usize>,
        interval: &str,
        kubectl_applies: bool,
    ) -> Result<Duration> {
        let began = Instant::now();
        let ns = self.namespace().to_string();
        let states = range
            .clone()
            .map(|i| finished_state(&check_name(i), &ns))
            .collect();
        self.create_all(&khstates(), states).await?;
        let checks = range.map(|i| {
            let check = check(&check_name(i), interval, "1m", &["true"]);
            if kubectl_applies {
                as_kubectl_applies(check, &ns)
            } else {
                check
            }
        });
        let manager = if kubectl_applies {
            KUBECTL_CLIENT_SIDE_APPLY
        } else {
            "bench"
        };
        self.create_all_as(&khchecks(), checks.collect(), manager)
            .await?;
        Ok(began.elapsed())
    }

    pub fn replica_name(index: usize) -> String {
        format!("kh-{index}")
    }

    fn addr(&mut self, index: usize) -> Result<SocketAddr> {
        let ip = self.ctx.host_ip();
        while self.addrs.len() <= index {
            self.addrs.push((ip, ports::free_port(ip)?).into());
        }
        Ok(self.addrs[index])
    }

    /// Starts replica `index` (again) with `lease` timings and `env`, and waits until ready.
    pub async fn spawn(
        &mut self,
        index: usize,
        lease: LeaseTimings,
        env: &[(&str, &str)],
    ) -> Result<()> {
        let addr = self.addr(index)?;
        let name = Self::replica_name(index);
        let mut options = ReplicaOptions::new(
            &name,
            self.namespace(),
            &self.kubeconfig,
            self.ctx.host_ip(),
            self.ctx.log_dir(),
        );
        options.binary = Some(binaries::kuberhealthy()?);
        options.target_namespace = Some(self.namespace().to_string());
        options.listen_port = Some(addr.port());
        options.external_reporting_url = Some(format!("http://{addr}/externalCheckStatus"));
        options.env = vec![
            (
                "KH_LEADER_ELECTION_LEASE_DURATION".into(),
                go_duration(lease.lease),
            ),
            (
                "KH_LEADER_ELECTION_RENEW_DEADLINE".into(),
                go_duration(lease.renew),
            ),
            (
                "KH_LEADER_ELECTION_RETRY_PERIOD".into(),
                go_duration(lease.retry),
            ),
            ("KH_LEADER_ELECTION_NAME".into(), LEASE_NAME.into()),
        ];
        options
            .env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let replica = Replica::spawn(options)?;
        while self.replicas.len() <= index {
            self.replicas.push(None);
        }
        self.replicas[index]
            .insert(replica)
            .wait_ready(TIMEOUT)
            .await
    }

    pub fn replica(&self, index: usize) -> Result<&Replica> {
        self.replicas
            .get(index)
            .and_then(Option::as_ref)
            .with_context(|| format!("replica {index} is not running"))
    }

    pub fn replica_mut(&mut self, index: usize) -> Result<&mut Replica> {
        self.replicas
            .get_mut(index)
            .and_then(Option::as_mut)
            .with_context(|| format!("replica {index} is not running"))
    }

    /// Stops every replica (SIGKILL).
    pub fn stop_replicas(&mut self) {
        self.replicas.clear();
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&i| self.replicas[i].is_some())
            .collect()
    }

    /// The Lease's holder and `leaseTransitions` now, if it names one.
    pub async fn lease_term(&self) -> Result<Option<(String, i32)>> {
        kuberhealthy_e2e::lease_watch::lease_term(&self.client, self.namespace(), LEASE_NAME).await
    }

    /// Waits for one leader that every replica names, whatever the pages show (checks that
    /// never ran are hidden there); returns its index.
    pub async fn settle_leader(&self) -> Result<usize> {
        self.settle_showing(None).await
    }

    /// Waits until the Lease names a running replica, every running replica is ready and
    /// its status page shows that leader and `checks` checks; returns the leader's index.
    pub async fn settle(&self, checks: usize) -> Result<usize> {
        self.settle_showing(Some(checks)).await
    }

    async fn settle_showing(&self, checks: Option<usize>) -> Result<usize> {
        let what = match checks {
            Some(n) => {
                format!("one leader that every replica names, and {n} checks on every status page")
            }
            None => "one leader that every replica names".to_string(),
        };
        wait_until(&what, TIMEOUT, || async {
            let Some((holder, _)) = self.lease_term().await? else {
                return Ok(None);
            };
            let Some(leader) = self
                .running()
                .into_iter()
                .find(|&i| Self::replica_name(i) == holder)
            else {
                return Ok(None);
            };
            for i in self.running() {
                let page = status_page(self.addrs[i]).await?;
                if page["CurrentMaster"].as_str() != Some(holder.as_str()) {
                    return Ok(None);
                }
                let shown = page["CheckDetails"].as_object().map_or(0, |d| d.len());
                if checks.is_some_and(|n| shown != n) {
                    return Ok(None);
                }
            }
            Ok(Some(leader))
        })
        .await
    }

    pub fn addr_of(&self, index: usize) -> SocketAddr {
        self.addrs[index]
    }

    pub async fn list_states(&self) -> Result<Vec<DynamicObject>> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.namespace(), &khstates());
        Ok(api.list(&Default::default()).await?.items)
    }
}

/// `GET /json` of a replica, parsed.
pub async fn status_page(addr: SocketAddr) -> Result<Value> {
    let response = http::get(addr, "/json").await?;
    ensure!(
        response.status == 200,
        "GET /json answered {}",
        response.status
    );
    serde_json::from_str(&response.body).context("GET /json is not JSON")
}

pub use kuberhealthy_e2e::install::wait_for_grants;
