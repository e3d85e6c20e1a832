//! What every test of this binary shares: one cluster with the CRDs and one `kuberhealthy
//! run` replica under the controller's real RBAC ([`World`], started once per binary), and
//! per test a namespace with helpers to turn an example manifest into a local check, apply
//! the check's RBAC and read a run's result ([`CheckTest`]).

pub mod servers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DynamicObject;
use kube::{Api, Client};
use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::{
    Replica, TestCluster, TestContext, binaries, http, kubeconfig, manifests, wait_until,
};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// Deadline for any condition: generous, for a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// The replica's `POD_NAME`.
const REPLICA: &str = "kuberhealthy-0";
/// The controller's ServiceAccount, as `kuberhealthy rbac` names it.
const CONTROLLER_ACCOUNT: &str = "kuberhealthy";
/// The node the pod runner registers; checker pods run there.
pub const NODE: &str = "e2e-node";
/// The image every example names (the pod runner ignores images).
pub const EXAMPLE_IMAGE: &str = "kuberhealthy:0.1.0";

pub use kuberhealthy_e2e::resources::khstates;

/// Runs the `kuberhealthy` binary with `args` and returns its stdout.
pub fn run_binary(binary: &Path, args: &[&str]) -> Result<String> {
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
    Ok(String::from_utf8(output.stdout)?)
}

/// The cluster, the CRDs and one replica, shared by every test of this binary. Checks of
/// every namespace are scheduled by this replica and report to it.
pub struct World {
    cluster: &'static TestCluster,
    /// Runs in its own namespace (its ServiceAccount and Lease), logging into its directory.
    replica: Replica,
    kuberhealthy: PathBuf,
}

impl World {
    /// The shared world, started by the first test that asks.
    pub async fn get() -> &'static World {
        static WORLD: OnceCell<World> = OnceCell::const_new();
        WORLD
            .get_or_try_init(World::start)
            .await
            .expect("starting the cluster, the CRDs and the replica")
    }

    async fn start() -> Result<World> {
        // Absolute: checker processes run in their pods' directories.
        let kuberhealthy = std::fs::canonicalize(binaries::kuberhealthy()?)?;
        let cluster = TestCluster::shared(Path::new(env!("CARGO_BIN_EXE_pod-runner")))
            .await
            .context("starting the shared cluster (etcd, kube-apiserver, pod runner)")?;
        let ctx = cluster.context("kuberhealthy").await?;
        let ns = ctx.namespace().to_string();
        let admin = ctx.client().await?;

        let crds = run_binary(&kuberhealthy, &["crd"])?;
        manifests::install_crds(&admin, &crds, TIMEOUT)
            .await
            .context("installing the CRDs from `kuberhealthy crd`")?;
        let rbac = run_binary(&kuberhealthy, &["rbac", "--namespace", &ns])?;
        ctx.apply_yaml(&rbac)
            .await
            .context("applying the output of `kuberhealthy rbac`")?;
        let kubeconfig_path = ctx.service_account_kubeconfig_path(CONTROLLER_ACCOUNT);
        ctx.endpoint()
            .service_account_kubeconfig(&ns, CONTROLLER_ACCOUNT, &kubeconfig_path)
            .await?;
        // The authorizer reads RBAC from its own watch cache: wait until the grant applies.
        let account = kubeconfig::client(&kubeconfig_path).await?;
        kuberhealthy_e2e::accounts::wait_for_controller_grant(account, None, &ns, TIMEOUT).await?;

        let addr = ctx.free_address()?;
        let mut options = ctx.replica_options(REPLICA);
        options.kubeconfig = kubeconfig_path;
        options.listen_port = Some(addr.port());
        options.external_reporting_url = Some(format!("http://{addr}/externalCheckStatus"));
        options.binary = Some(kuberhealthy.clone());
        options.env = vec![("KH_LOG_FORMAT".into(), "text".into())];
        let mut replica = Replica::spawn(options)?;

        replica.wait_ready(TIMEOUT).await?;
        let leases: Api<Lease> = Api::namespaced(admin, &ns);
        wait_until(&format!("{REPLICA} to hold the Lease"), TIMEOUT, || async {
            let holder = leases
                .get_opt("kuberhealthy")
                .await?
                .and_then(|l| l.spec?.holder_identity);
            Ok((holder.as_deref() == Some(REPLICA)).then_some(()))
        })
        .await?;
        Ok(World {
            cluster,
            replica,
            kuberhealthy,
        })
    }

    /// The replica's lines that mention `needle` (a namespace), the last `lines` of them.
    fn replica_log_about(&self, needle: &str, lines: usize) -> String {
        let log = std::fs::read_to_string(self.replica.log_path()).unwrap_or_default();
        let matching: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
        matching[matching.len().saturating_sub(lines)..].join("\n")
    }
}

/// One test: its namespace, the shared world, and the checks' plumbing.
pub struct CheckTest {
    pub world: &'static World,
    pub ctx: TestContext,
    client: Client,
}

impl Drop for CheckTest {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "==== {REPLICA} log lines about namespace {} ({}) ====\n{}",
                self.ns(),
                self.world.replica.log_path().display(),
                self.world.replica_log_about(self.ns(), 80)
            );
        }
    }
}

/// The Kubernetes access a check got from `kuberhealthy rbac --check`.
pub struct Grant {
    /// A kubeconfig for the check's ServiceAccount, for checks that read the cluster (the
    /// pod runner mounts no service-account token).
    pub kubeconfig: Option<PathBuf>,
}

impl Grant {
    /// The kubeconfig path, for the check's `KUBECONFIG` knob.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig
            .as_ref()
            .expect("this check was granted no Kubernetes access")
            .display()
            .to_string()
    }
}

impl CheckTest {
    pub async fn start(name: &str) -> CheckTest {
        let world = World::get().await;
        let ctx = world
            .cluster
            .context(name)
            .await
            .expect("creating the test's namespace");
        let client = ctx.client().await.expect("an admin client");
        CheckTest { world, ctx, client }
    }

    /// The pod network's host side, where servers that checker pods reach listen.
    pub fn host_ip(&self) -> std::net::Ipv4Addr {
        self.ctx.host_ip()
    }

    pub fn ns(&self) -> &str {
        self.ctx.namespace()
    }

    /// Another namespace, for objects a check reads across namespaces.
    pub async fn other_namespace(&self, name: &str) -> TestContext {
        self.world
            .cluster
            .context(name)
            .await
            .expect("creating a namespace")
    }

    /// An admin client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The `kuberhealthy` binary the checkers run.
    pub fn kuberhealthy(&self) -> &Path {
        &self.world.kuberhealthy
    }

    /// Applies `kuberhealthy rbac --check <check> --namespace <ns>` as is. For a check that
    /// reads the cluster, also writes a kubeconfig for its ServiceAccount and waits until
    /// the account can do everything the rules grant, cluster-wide.
    pub async fn grant(&self, check: &str) -> Grant {
        let account = format!("khcheck-{check}");
        let yaml = run_binary(
            self.kuberhealthy(),
            &["rbac", "--check", check, "--namespace", self.ns()],
        )
        .unwrap();
        let objects = manifests::parse(&yaml).unwrap();
        let mut rules = Vec::new();
        for object in &objects {
            let kind = object.types.as_ref().map(|t| t.kind.as_str());
            match kind {
                Some("ServiceAccount") => {
                    assert_eq!(object.metadata.name.as_deref(), Some(account.as_str()))
                }
                Some("ClusterRole") => rules = object.data["rules"].as_array().unwrap().clone(),
                _ => {}
            }
        }
        self.ctx
            .apply_yaml(&yaml)
            .await
            .unwrap_or_else(|e| panic!("applying `kuberhealthy rbac --check {check}`: {e:#}"));
        if rules.is_empty() {
            return Grant { kubeconfig: None };
        }
        let path = self.ctx.service_account_kubeconfig_path(&account);
        self.ctx
            .endpoint()
            .service_account_kubeconfig(self.ns(), &account, &path)
            .await
            .unwrap();
        let client = kubeconfig::client(&path).await.unwrap();
        // Every rule of the built-in checks is on the core group.
        let mut lists = Vec::new();
        for rule in &rules {
            assert_eq!(rule["apiGroups"], json!([""]), "{rule}");
            if rule["verbs"].as_array().unwrap().contains(&json!("list")) {
                for resource in rule["resources"].as_array().unwrap() {
                    lists.push(format!("/api/v1/{}?limit=1", resource.as_str().unwrap()));
                }
            }
        }
        wait_until(
            &format!("the RBAC of {account} to apply"),
            TIMEOUT,
            || async {
                for path in &lists {
                    let request = http_request(path)?;
                    client.request_text(request).await?;
                }
                Ok(Some(()))
            },
        )
        .await
        .unwrap();
        Grant {
            kubeconfig: Some(path),
        }
    }

    /// The example of `check`, made local: in this test's namespace under `name`, running
    /// the local binary, with `knobs` replacing the example's values (or added).
    pub fn check_from_example(&self, check: &str, name: &str, knobs: &[(&str, &str)]) -> Value {
        let mut object = example(check);
        let command = object["spec"]["podSpec"]["containers"][0]["command"]
            .as_array_mut()
            .unwrap();
        command[0] = json!(self.kuberhealthy().display().to_string());
        self.localize(object, name, knobs)
    }

    /// `object` (a check) in this test's namespace under `name`, with `knobs` set on its
    /// first container.
    pub fn localize(&self, mut object: Value, name: &str, knobs: &[(&str, &str)]) -> Value {
        object["metadata"]["namespace"] = json!(self.ns());
        object["metadata"]["name"] = json!(name);
        let container = &mut object["spec"]["podSpec"]["containers"][0];
        if container["env"].is_null() {
            container["env"] = json!([]);
        }
        let env = container["env"].as_array_mut().unwrap();
        for (knob, value) in knobs {
            let entry = json!({ "name": knob, "value": value });
            match env.iter_mut().find(|e| e["name"] == json!(knob)) {
                Some(existing) => *existing = entry,
                None => env.push(entry),
            }
        }
        object
    }

    /// Server-side applies an object given as JSON, as admin, into this test's namespace.
    pub async fn apply(&self, object: &Value) {
        self.ctx
            .apply_yaml(&serde_json::to_string(object).unwrap())
            .await
            .unwrap_or_else(|e| panic!("applying {}: {e:#}", object["metadata"]["name"]));
    }

    /// The status page of the replica for this test's namespace (`GET /json?namespace=`).
    pub async fn status_page(&self) -> Result<Value> {
        let path = format!("/json?namespace={}", self.ns());
        let response = http::get(self.world.replica.addr(), &path).await?;
        if response.status != 200 {
            bail!("GET {path} answered {}: {}", response.status, response.body);
        }
        serde_json::from_str(&response.body).context("the status page is not JSON")
    }

    /// Waits for the first run of check `name` to finish in its khstate, for the status page
    /// to show that result (the same `LastRun`, `OK` and `Errors`), and for the checker pod
    /// to end; returns what the page shows, with the checker's output and exit code.
    pub async fn result(&self, name: &str) -> Outcome {
        let states: Api<DynamicObject> =
            Api::namespaced_with(self.client(), self.ns(), &khstates());
        let (uuid, pod, state) = wait_until(
            &format!("a finished run of {}/{name} in its khstate", self.ns()),
            TIMEOUT,
            || async {
                let Some(state) = states.get_opt(name).await? else {
                    return Ok(None);
                };
                let spec = &state.data["spec"];
                let uuid = spec["uuid"].as_str().unwrap_or_default().to_string();
                if uuid.is_empty() || spec["runFinishedAt"].is_null() {
                    return Ok(None);
                }
                let pod = spec["runPod"].as_str().map(str::to_string);
                Ok(Some((uuid, pod, spec.clone())))
            },
        )
        .await
        .unwrap();
        let key = format!("{}/{name}", self.ns());
        // The page answers from the replica's cache, which may still hold the run in flight.
        let details = wait_until(
            &format!("the status page to show the finished run {uuid} of {key}"),
            TIMEOUT,
            || async {
                let page = self.status_page().await?;
                let details = &page["CheckDetails"][&key];
                let finished = details["uuid"] == json!(uuid)
                    && details["LastRun"].is_string()
                    && details["LastRun"] == state["LastRun"];
                Ok(finished.then(|| details.clone()))
            },
        )
        .await
        .unwrap();
        assert_eq!(
            details["OK"], state["OK"],
            "{key}: page {details:#}, khstate {state:#}"
        );
        assert_eq!(
            strings(&details["Errors"]),
            strings(&state["Errors"]),
            "{key}: page {details:#}, khstate {state:#}"
        );
        // The checker says what it did after its report was answered: wait for it to end.
        let pods: Api<Pod> = Api::namespaced(self.client(), self.ns());
        let pod_name = pod
            .clone()
            .unwrap_or_else(|| panic!("{key}: no runPod in {state:#}"));
        let exit_code = wait_until(
            &format!("checker pod {pod_name} to end"),
            TIMEOUT,
            || async {
                let status = pods.get(&pod_name).await?.status.unwrap_or_default();
                Ok(status
                    .container_statuses
                    .unwrap_or_default()
                    .first()
                    .and_then(|c| c.state.clone()?.terminated)
                    .map(|t| t.exit_code))
            },
        )
        .await
        .unwrap();
        Outcome {
            key,
            details,
            log: self.ctx.container_log(&pod_name, "main"),
            pod: pod_name,
            exit_code,
        }
    }

    /// The results of several checks (waited for in turn; they run concurrently).
    pub async fn results(&self, names: &[&str]) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for name in names {
            outcomes.push(self.result(name).await);
        }
        outcomes
    }

    /// The page for this namespace agrees with `outcomes` (its checks, in any order): each
    /// entry as read, the page failing exactly when one of them fails, its `Errors` theirs.
    pub async fn assert_page(&self, outcomes: &[&Outcome]) {
        let page = self.status_page().await.unwrap();
        let details = page["CheckDetails"].as_object().unwrap();
        let shown: Vec<&String> = details.keys().collect();
        let expected: Vec<&String> = outcomes.iter().map(|o| &o.key).collect();
        let mut sorted = expected.clone();
        sorted.sort();
        assert_eq!(shown, sorted, "the checks on the page: {page:#}");
        for outcome in outcomes {
            assert_eq!(
                details[&outcome.key]["OK"], outcome.details["OK"],
                "{}: {page:#}",
                outcome.key
            );
            assert_eq!(
                details[&outcome.key]["Errors"], outcome.details["Errors"],
                "{}: {page:#}",
                outcome.key
            );
            assert_eq!(
                details[&outcome.key]["AuthoritativePod"],
                json!(REPLICA),
                "{}: {page:#}",
                outcome.key
            );
        }
        let all_ok = outcomes.iter().all(|o| o.ok());
        assert_eq!(page["OK"], json!(all_ok), "{page:#}");
        let mut page_errors: Vec<String> = strings(&page["Errors"]);
        let mut errors: Vec<String> = outcomes.iter().flat_map(|o| o.errors()).collect();
        page_errors.sort();
        errors.sort();
        assert_eq!(page_errors, errors, "the page's Errors: {page:#}");
    }
}

fn http_request(path: &str) -> Result<::http::Request<Vec<u8>>> {
    ::http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| anyhow!("building GET {path}: {e}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The file of an example check, `examples/checks/<check>.yaml`.
pub fn example_path(check: &str) -> PathBuf {
    workspace_root()
        .join("examples/checks")
        .join(format!("{check}.yaml"))
}

/// Reads the example of `check` and asserts it is what the README promises: one v2-style
/// check in namespace `kuberhealthy`, running `/kuberhealthy check <check>` from the
/// project's image as ServiceAccount `khcheck-<check>`.
pub fn example(check: &str) -> Value {
    let path = example_path(check);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let objects = manifests::parse(&text).unwrap();
    assert_eq!(objects.len(), 1, "{}: one object", path.display());
    let object: Value = serde_saphyr::from_str(&text).unwrap();
    let shape = |what: &str, actual: &Value, expected: Value| {
        assert_eq!(actual, &expected, "{}: {what}", path.display());
    };
    shape(
        "apiVersion",
        &object["apiVersion"],
        json!("comcast.github.io/v1"),
    );
    shape("kind", &object["kind"], json!("KuberhealthyCheck"));
    shape(
        "metadata.namespace",
        &object["metadata"]["namespace"],
        json!("kuberhealthy"),
    );
    let pod = &object["spec"]["podSpec"];
    shape(
        "serviceAccountName",
        &pod["serviceAccountName"],
        json!(format!("khcheck-{check}")),
    );
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{}: one container", path.display());
    shape("image", &containers[0]["image"], json!(EXAMPLE_IMAGE));
    shape(
        "command",
        &containers[0]["command"],
        json!(["/kuberhealthy", "check", check]),
    );
    for field in ["runInterval", "timeout"] {
        assert!(
            object["spec"][field].is_string(),
            "{}: spec.{field} is missing",
            path.display()
        );
    }
    object
}

/// Whether an error message is the one expected.
pub type ErrorMatcher<'a> = dyn Fn(&str) -> bool + 'a;

/// A finished run as the status page shows it.
pub struct Outcome {
    /// `<namespace>/<name>`
    pub key: String,
    /// The page's entry.
    pub details: Value,
    /// The checker pod of the run.
    pub pod: String,
    /// The checker's output.
    pub log: String,
    /// The checker's exit code.
    pub exit_code: i32,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.details["OK"] == json!(true)
    }

    pub fn errors(&self) -> Vec<String> {
        strings(&self.details["Errors"])
    }

    fn context(&self) -> String {
        format!(
            "{}: status page entry {:#}\nchecker pod {} (exit code {}) output:\n{}",
            self.key, self.details, self.pod, self.exit_code, self.log
        )
    }

    /// The run passed.
    pub fn assert_passed(&self) {
        assert!(
            self.ok() && self.errors().is_empty(),
            "expected OK; {}",
            self.context()
        );
    }

    /// The run failed with exactly `expected`.
    pub fn assert_failed_with(&self, expected: &[String]) {
        assert!(!self.ok(), "expected a failure; {}", self.context());
        assert_eq!(self.errors(), expected, "{}", self.context());
    }

    /// A built-in check passed, and the checker said it reported so.
    pub fn assert_ok(&self) {
        self.assert_passed();
        self.assert_exit_code(0);
        assert!(
            self.log.contains(": OK, reported"),
            "the checker did not say it reported OK; {}",
            self.context()
        );
    }

    /// A built-in check failed with exactly `expected`, reported by the checker.
    pub fn assert_errors(&self, expected: &[String]) {
        self.assert_failed_with(expected);
        self.assert_failure_reported();
    }

    /// A built-in check failed with one error, which `matches` (described by `what`), reported
    /// by the checker; returns the error.
    pub fn single_error(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        assert!(!self.ok(), "expected a failure; {}", self.context());
        let errors = self.errors();
        assert_eq!(errors.len(), 1, "expected one error; {}", self.context());
        assert!(
            matches(&errors[0]),
            "the error is not {what}; {}",
            self.context()
        );
        self.assert_failure_reported();
        errors[0].clone()
    }

    /// A built-in check failed with one error per matcher, in order, reported by the checker.
    pub fn assert_errors_match(&self, expected: &[(&str, &ErrorMatcher<'_>)]) {
        assert!(!self.ok(), "expected a failure; {}", self.context());
        let errors = self.errors();
        assert_eq!(
            errors.len(),
            expected.len(),
            "expected {} errors; {}",
            expected.len(),
            self.context()
        );
        for (error, (what, matches)) in errors.iter().zip(expected) {
            assert!(
                matches(error),
                "{error:?} is not {what}; {}",
                self.context()
            );
        }
        self.assert_failure_reported();
    }

    /// The checker ended with `code`.
    pub fn assert_exit_code(&self, code: i32) {
        assert_eq!(self.exit_code, code, "{}", self.context());
    }

    fn assert_failure_reported(&self) {
        // `kuberhealthy check` exits 0 once its result, failing or not, was delivered.
        self.assert_exit_code(0);
        assert!(
            self.log.contains(": failure reported"),
            "the checker did not say it reported the failure; {}",
            self.context()
        );
    }
}

/// `<namespace>/<name>` → the page's entries, for printing what a test saw.
pub fn summary(outcomes: &[&Outcome]) -> BTreeMap<String, Value> {
    outcomes
        .iter()
        .map(|o| {
            (
                o.key.clone(),
                json!({ "OK": o.details["OK"], "Errors": o.details["Errors"] }),
            )
        })
        .collect()
}
