//! What every scheduling scenario shares: a cluster of its own with three replicas running
//! under the controller's real RBAC, the report "Service", recorders and figures.

pub mod checks;
pub mod figures;
pub mod proxy;
pub mod record;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams};
use kube::{Api, Client};
use kuberhealthy_e2e::{Replica, TestCluster, TestContext, binaries, http, wait_until};
use serde_json::Value;

use self::checks::StateSpec;
use self::proxy::ReportProxy;

/// Deadline for any condition: generous, for a loaded 2-core machine. The bounds the tests
/// assert are separate and stated where they are checked.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// Lease timings of every replica (`KH_LEADER_ELECTION_*`).
pub const LEASE_DURATION: Duration = Duration::from_secs(3);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(2);
pub const RETRY_PERIOD: Duration = Duration::from_millis(500);

/// The ServiceAccount `kuberhealthy rbac` creates and binds.
const SERVICE_ACCOUNT: &str = "kuberhealthy";
/// The Lease name (the default of `--lease-name`).
const LEASE_NAME: &str = "kuberhealthy";

pub use kuberhealthy_e2e::resources::{healthchecks, khchecks, khjobs, khstates};

/// How a scenario is set up.
#[derive(Clone, Debug)]
pub struct ScenarioOptions {
    /// Names the namespace and the log directory.
    pub name: &'static str,
    pub replicas: usize,
    /// v2's YAML config file (`maxCompletedPodCount`, ...), passed with `KH_CONFIG_FILE`.
    pub config_file: Option<String>,
    /// Namespace-scoped RBAC (`kuberhealthy rbac --namespace NS --target-namespace NS`) and
    /// `TARGET_NAMESPACE=NS`, where NS is the scenario's namespace.
    pub namespaced: bool,
}

impl ScenarioOptions {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            replicas: 3,
            config_file: None,
            namespaced: false,
        }
    }
}

/// One scenario's world. Fields drop in order: replicas first, then the proxy, then the
/// context (which dumps every log if the test panicked), then the cluster.
pub struct Scenario {
    replicas: Vec<Option<Replica>>,
    pub proxy: ReportProxy,
    ports: Vec<u16>,
    names: Vec<String>,
    service_account_kubeconfig: PathBuf,
    config_path: Option<PathBuf>,
    namespaced: bool,
    admin: Client,
    pub ctx: TestContext,
    cluster: TestCluster,
}

/// The pod runner binary of this crate.
fn pod_runner() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pod-runner"))
}

/// Fails clearly when a tool the checkers need is missing.
pub fn require_curl() {
    let found = Command::new("sh")
        .args(["-c", "command -v curl"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "curl is not installed: the checker scripts of these tests POST their reports with curl \
         (apt-get install curl)"
    );
}

impl Scenario {
    /// A cluster of its own, the CRDs, the controller's RBAC, its ServiceAccount's
    /// kubeconfig and the report proxy. No replica runs yet: see [`Scenario::start_replicas`].
    pub async fn prepare(options: ScenarioOptions) -> Result<Scenario> {
        require_curl();
        let kuberhealthy = binaries::kuberhealthy()?;
        let cluster = TestCluster::start(pod_runner())
            .await
            .context("starting a control plane and the pod runner")?;
        let ctx = cluster.context(options.name).await?;
        let admin = ctx.client().await?;
        let ns = ctx.namespace().to_string();

        let crds = run_binary(&kuberhealthy, &["crd"])?;
        kuberhealthy_e2e::manifests::install_crds(&admin, &crds, TIMEOUT)
            .await
            .context("installing the CRDs from `kuberhealthy crd`")?;
        let mut rbac_args = vec!["rbac", "--namespace", ns.as_str()];
        if options.namespaced {
            rbac_args.extend(["--target-namespace", ns.as_str()]);
        }
        let rbac = run_binary(&kuberhealthy, &rbac_args)?;
        ctx.apply_yaml(&rbac)
            .await
            .context("applying the output of `kuberhealthy rbac`")?;

        let service_account_kubeconfig = ctx.service_account_kubeconfig_path(SERVICE_ACCOUNT);
        ctx.endpoint()
            .service_account_kubeconfig(&ns, SERVICE_ACCOUNT, &service_account_kubeconfig)
            .await?;
        // The authorizer reads RBAC from its own watch cache: wait until the grant applies.
        let account = kuberhealthy_e2e::kubeconfig::client(&service_account_kubeconfig).await?;
        let checks_namespace = options.namespaced.then_some(ns.as_str());
        kuberhealthy_e2e::accounts::wait_for_controller_grant(
            account,
            checks_namespace,
            &ns,
            TIMEOUT,
        )
        .await?;

        let config_path = match &options.config_file {
            Some(text) => {
                let path = ctx.log_dir().join("kuberhealthy.yaml");
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let proxy = ReportProxy::start(
            ctx.host_ip().into(),
            &ctx.log_dir().join("report-proxy.log"),
        )
        .await?;
        let ports = (0..options.replicas)
            .map(|_| kuberhealthy_e2e::ports::free_port(ctx.host_ip()))
            .collect::<Result<Vec<_>>>()?;
        proxy.set_backends(ports.clone());
        Ok(Scenario {
            replicas: (0..options.replicas).map(|_| None).collect(),
            proxy,
            names: (0..options.replicas)
                .map(|i| format!("kuberhealthy-{i}"))
                .collect(),
            ports,
            service_account_kubeconfig,
            config_path,
            namespaced: options.namespaced,
            admin,
            ctx,
            cluster,
        })
    }

    /// [`Scenario::prepare`], then every replica started and a leader elected.
    pub async fn start(options: ScenarioOptions) -> Result<Scenario> {
        let mut scenario = Self::prepare(options).await?;
        scenario.start_replicas().await?;
        Ok(scenario)
    }

    pub async fn start_replicas(&mut self) -> Result<()> {
        for i in 0..self.replicas.len() {
            self.spawn(i)?;
        }
        for i in 0..self.replicas.len() {
            self.wait_ready(i).await?;
        }
        self.wait_for_leader(None).await?;
        Ok(())
    }

    pub fn ns(&self) -> &str {
        self.ctx.namespace()
    }

    pub fn client(&self) -> Client {
        self.admin.clone()
    }

    pub fn cluster(&self) -> &TestCluster {
        &self.cluster
    }

    pub fn replica_count(&self) -> usize {
        self.replicas.len()
    }

    /// The HTTP address of replica `i` (on the pod network's host side).
    pub fn addr(&self, i: usize) -> std::net::SocketAddr {
        (self.ctx.host_ip(), self.ports[i]).into()
    }

    pub fn name_of(&self, i: usize) -> &str {
        &self.names[i]
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.replicas[i].is_some()
    }

    /// Starts replica `i` (again), on its own port, as the controller's ServiceAccount.
    pub fn spawn(&mut self, i: usize) -> Result<()> {
        if self.replicas[i].is_some() {
            bail!("{} is already running", self.names[i]);
        }
        let mut options = self.ctx.replica_options(&self.names[i]);
        options.kubeconfig = self.service_account_kubeconfig.clone();
        options.listen_port = Some(self.ports[i]);
        options.external_reporting_url = Some(self.proxy.url("/externalCheckStatus"));
        if self.namespaced {
            options.target_namespace = Some(self.ns().to_string());
        }
        options.env = vec![
            ("KH_LOG_FORMAT".into(), "text".into()),
            (
                "KH_LEADER_ELECTION_LEASE_DURATION".into(),
                format!("{}ms", LEASE_DURATION.as_millis()),
            ),
            (
                "KH_LEADER_ELECTION_RENEW_DEADLINE".into(),
                format!("{}ms", RENEW_DEADLINE.as_millis()),
            ),
            (
                "KH_LEADER_ELECTION_RETRY_PERIOD".into(),
                format!("{}ms", RETRY_PERIOD.as_millis()),
            ),
        ];
        if let Some(path) = &self.config_path {
            options
                .env
                .push(("KH_CONFIG_FILE".into(), path.display().to_string()));
        }
        self.replicas[i] = Some(Replica::spawn(options)?);
        Ok(())
    }

    /// Waits until replica `i` answers `/readyz` with 200 (its caches synced).
    pub async fn wait_ready(&mut self, i: usize) -> Result<()> {
        let name = &self.names[i];
        let replica = self.replicas[i]
            .as_mut()
            .ok_or_else(|| anyhow!("{name} is not running"))?;
        replica.wait_ready(TIMEOUT).await
    }

    /// Sends `signal` to replica `i` and waits for it to exit.
    pub async fn stop(&mut self, i: usize, signal: libc::c_int) -> Result<()> {
        let mut replica = self.replicas[i]
            .take()
            .ok_or_else(|| anyhow!("{} is not running", self.names[i]))?;
        match signal {
            libc::SIGTERM => replica.sigterm()?,
            libc::SIGKILL => replica.sigkill()?,
            other => bail!("unsupported signal {other}"),
        }
        replica.wait_exit(Duration::from_secs(30)).await?;
        Ok(())
    }

    /// Sends `signal` to every running replica at once, then waits for all to exit.
    pub async fn stop_all(&mut self, signal: libc::c_int) -> Result<()> {
        let mut stopping = Vec::new();
        for slot in &mut self.replicas {
            if let Some(replica) = slot.take() {
                match signal {
                    libc::SIGTERM => replica.sigterm()?,
                    libc::SIGKILL => replica.sigkill()?,
                    other => bail!("unsupported signal {other}"),
                }
                stopping.push(replica);
            }
        }
        for replica in &mut stopping {
            replica.wait_exit(Duration::from_secs(30)).await?;
        }
        Ok(())
    }

    /// `(holderIdentity, leaseTransitions)` of the Lease, if it exists.
    pub async fn lease(&self) -> Result<Option<(String, i32)>> {
        let leases: Api<Lease> = Api::namespaced(self.client(), self.ns());
        Ok(leases.get_opt(LEASE_NAME).await?.and_then(|l| {
            let spec = l.spec?;
            Some((
                spec.holder_identity.unwrap_or_default(),
                spec.lease_transitions.unwrap_or(0),
            ))
        }))
    }

    /// Waits until a running replica other than `not` holds the Lease; returns its index and
    /// the Lease's transitions.
    pub async fn wait_for_leader(&self, not: Option<&str>) -> Result<(usize, i32)> {
        wait_until("a running replica to hold the Lease", TIMEOUT, || async {
            let Some((holder, transitions)) = self.lease().await? else {
                return Ok(None);
            };
            if Some(holder.as_str()) == not {
                return Ok(None);
            }
            Ok(self
                .index_of(&holder)
                .filter(|i| self.is_running(*i))
                .map(|i| (i, transitions)))
        })
        .await
    }

    /// `GET path` on replica `i`: the body of its 200 answer.
    pub async fn get(&self, i: usize, path: &str) -> Result<String> {
        let response = http::get(self.addr(i), path).await?;
        if response.status != 200 {
            bail!(
                "GET {path} on {} answered {}: {}",
                self.names[i],
                response.status,
                response.body
            );
        }
        Ok(response.body)
    }

    /// The status page (`GET /json`) of replica `i`.
    pub async fn status_page(&self, i: usize) -> Result<Value> {
        serde_json::from_str(&self.get(i, "/json").await?).context("the status page is not JSON")
    }

    /// Server-side applies a check, job or other object given as JSON.
    pub async fn apply(&self, object: &Value) -> Result<()> {
        self.ctx.apply_yaml(&serde_json::to_string(object)?).await?;
        Ok(())
    }

    pub async fn delete(&self, resource: &ApiResource, name: &str) -> Result<()> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client(), self.ns(), resource);
        api.delete(name, &DeleteParams::default()).await?;
        Ok(())
    }

    /// The khstate of `name`, if any.
    pub async fn khstate(&self, name: &str) -> Result<Option<StateSpec>> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client(), self.ns(), &khstates());
        match api.get_opt(name).await? {
            Some(object) => Ok(Some(StateSpec::from_object(&object)?)),
            None => Ok(None),
        }
    }

    /// Waits until the khstate of `name` satisfies `condition`.
    pub async fn wait_for_state(
        &self,
        name: &str,
        what: &str,
        condition: impl Fn(&StateSpec) -> bool,
    ) -> Result<StateSpec> {
        let condition = &condition;
        wait_until(&format!("khstate {name}: {what}"), TIMEOUT, || async move {
            Ok(self.khstate(name).await?.filter(|s| condition(s)))
        })
        .await
    }

    /// Every checker pod of the namespace (label `app=kuberhealthy-check`).
    pub async fn checker_pods(&self) -> Result<Vec<Pod>> {
        let pods: Api<Pod> = Api::namespaced(self.client(), self.ns());
        Ok(pods
            .list(&ListParams::default().labels("app=kuberhealthy-check"))
            .await?
            .items)
    }

    /// The log of replica `i` so far.
    pub fn replica_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.ctx.log_dir().join(format!("{}.log", self.names[i])))
            .unwrap_or_default()
    }

    /// Every replica's log, concatenated.
    pub fn all_replica_logs(&self) -> String {
        (0..self.replicas.len())
            .map(|i| self.replica_log(i))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs `kuberhealthy <args>` and returns its stdout.
fn run_binary(binary: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(binary)
        .args(args)
        .output()
        .with_context(|| format!("running {} {}", binary.display(), args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "`kuberhealthy {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("the output is not UTF-8")
}

/// Seconds from `a` to `b` (negative when `b` is earlier).
pub fn secs(a: Timestamp, b: Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64()
}

/// Sleeps until wall-clock time `t` (returns at once if it has passed).
pub async fn sleep_until(t: Timestamp) {
    let left = Timestamp::now().duration_until(t);
    if left.is_positive() {
        tokio::time::sleep(left.unsigned_abs()).await;
    }
}

/// `t` plus `seconds`.
pub fn plus(t: Timestamp, seconds: f64) -> Timestamp {
    t + k8s_openapi::jiff::SignedDuration::from_secs_f64(seconds)
}

/// Rounds to milliseconds, for printing.
pub fn ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}
