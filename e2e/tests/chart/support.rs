//! Helm, rendered manifests, and replicas that run the way the chart's Deployment says.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::{Replica, ReplicaOptions, TestContext, http, manifests, ports, wait_until};
use serde_json::Value;
use tokio::process::Command;

use crate::TIMEOUT;

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    workspace_root().join("charts/kuberhealthy")
}

/// The helm binary, built from the Go module proxy and cached by `e2e/tools/build-helm.sh`
/// (the first call of a cold cache takes minutes).
pub fn helm_binary() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let script = workspace_root().join("e2e/tools/build-helm.sh");
        let output = std::process::Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} failed ({}): helm could not be built; it needs Go and the Go module proxy",
            script.display(),
            output.status
        );
        let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
        assert!(
            !path.is_empty(),
            "{} printed no helm path",
            script.display()
        );
        PathBuf::from(path)
    })
}

/// Helm's own directories (cache, config, data) for this test process, so tests neither
/// read nor write the user's.
fn helm_home() -> &'static Path {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("kh-chart-test-helm-")
            .tempdir()
            .expect("a temporary directory for helm's home")
    })
    .path()
}

/// Runs helm with `args`; stdout on success, a failure with both streams otherwise.
/// `kubeconfig` is the cluster to talk to (none for `lint` and `template`).
pub async fn helm(args: &[String], kubeconfig: Option<&Path>) -> Result<String> {
    let home = helm_home();
    let mut cmd = Command::new(helm_binary());
    cmd.args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT")
        .kill_on_drop(true);
    match kubeconfig {
        Some(path) => cmd.env("KUBECONFIG", path),
        // Nothing to talk to: a stray KUBECONFIG must not make `template` reach a cluster.
        None => cmd.env("KUBECONFIG", home.join("no-kubeconfig")),
    };
    let output = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .map_err(|_| anyhow!("helm {} did not finish within 300 s", args.join(" ")))?
        .with_context(|| format!("running {}", helm_binary().display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!(
            "helm {} failed ({}):\n{}\n{}",
            args.join(" "),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// `--set`-style arguments, each `["--set", "k=v"]` or another flag pair, as strings.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `helm template <release> charts/kuberhealthy -n <namespace> <extra...>`, parsed.
pub async fn template(release: &str, namespace: &str, extra: &[String]) -> Result<Rendered> {
    let mut all = args(&["template", release]);
    all.push(chart_dir().display().to_string());
    all.extend(args(&["--namespace", namespace]));
    all.extend(extra.iter().cloned());
    let text = helm(&all, None).await?;
    Rendered::parse(&text)
}

/// The documents `helm template` printed.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub docs: Vec<Value>,
}

impl Rendered {
    pub fn parse(text: &str) -> Result<Self> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).context("parsing helm's output as YAML")?;
        let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
        for doc in &docs {
            ensure!(
                doc["kind"].is_string() && doc["metadata"]["name"].is_string(),
                "a rendered document without kind or name: {doc}"
            );
        }
        Ok(Self { docs })
    }

    /// `Kind/name` of every document, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .docs
            .iter()
            .map(|d| format!("{}/{}", str(&d["kind"]), str(&d["metadata"]["name"])))
            .collect();
        kinds.sort();
        kinds
    }

    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    /// The one document of `kind`, or a failure listing what was rendered.
    pub fn one(&self, kind: &str) -> Result<&Value> {
        match self.of_kind(kind).as_slice() {
            [one] => Ok(one),
            other => bail!(
                "expected exactly one {kind}, found {}; rendered: {:?}",
                other.len(),
                self.kinds()
            ),
        }
    }

    pub fn named(&self, kind: &str, name: &str) -> Result<&Value> {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .with_context(|| format!("no {kind} {name}; rendered: {:?}", self.kinds()))
    }

    /// The Deployment's only container.
    pub fn container(&self) -> Result<&Value> {
        let deployment = self.one("Deployment")?;
        let containers = deployment["spec"]["template"]["spec"]["containers"]
            .as_array()
            .context("the Deployment has no containers")?;
        ensure!(
            containers.len() == 1,
            "one container expected: {containers:?}"
        );
        Ok(&containers[0])
    }

    /// The value of the container's env var `name` (a literal value).
    pub fn env(&self, name: &str) -> Result<String> {
        let container = self.container()?;
        let var = container["env"]
            .as_array()
            .and_then(|env| env.iter().find(|v| v["name"] == name))
            .with_context(|| format!("the container has no env var {name}: {container}"))?;
        var["value"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("env var {name} has no literal value: {var}"))
    }

    /// The documents that are not of the prometheus-operator's API group, which the local
    /// API server does not serve (its CRDs are not installed here).
    pub fn appliable(&self) -> String {
        self.docs
            .iter()
            .filter(|d| !is_monitoring_coreos(d))
            .map(|d| format!("---\n{}\n", serde_json::to_string(d).expect("JSON")))
            .collect()
    }
}

pub fn is_monitoring_coreos(doc: &Value) -> bool {
    str(&doc["apiVersion"]).starts_with("monitoring.coreos.com/")
}

/// A JSON string's text, or "".
pub fn str(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// Server-side applies every document the local API server serves (all but the
/// monitoring.coreos.com kinds), with strict field validation.
pub async fn apply_rendered(client: &Client, rendered: &Rendered) -> Result<Vec<DynamicObject>> {
    manifests::apply_yaml(client, &rendered.appliable(), None).await
}

/// The committed CRDs, installed and served.
pub async fn install_crds(client: &Client) -> Result<()> {
    let crds = std::fs::read_to_string(chart_dir().join("crds/crds.yaml"))
        .context("reading the chart's crds/crds.yaml")?;
    manifests::install_crds(client, &crds, TIMEOUT).await?;
    Ok(())
}

/// Lease timings short enough for a test, set through the chart's values.
pub fn short_lease_values() -> Vec<String> {
    args(&[
        "--set",
        "leaderElection.leaseDuration=4s",
        "--set",
        "leaderElection.renewDeadline=3s",
        "--set",
        "leaderElection.retryPeriod=500ms",
    ])
}

/// What the chart installed for a release, read back from the API server: the Deployment's
/// container and the ConfigMap's config file.
pub struct Installed {
    pub release_namespace: String,
    pub service_account: String,
    pub args: Vec<String>,
    /// Literal env values of the container (the downward-API ones are resolved per replica).
    pub env: Vec<(String, String)>,
    pub config_file: PathBuf,
}

impl Installed {
    /// Reads Deployment `name` and its ConfigMap from `namespace`, writing the config file
    /// into `dir`. Fails unless `POD_NAME` and `POD_NAMESPACE` come from the downward API.
    pub async fn read(client: &Client, namespace: &str, name: &str, dir: &Path) -> Result<Self> {
        let deployments: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            namespace,
            &ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment")),
        );
        let deployment = deployments
            .get(name)
            .await
            .with_context(|| format!("reading Deployment {namespace}/{name}"))?;
        let pod = &deployment.data["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let mut env = Vec::new();
        for var in container["env"].as_array().cloned().unwrap_or_default() {
            let var_name = str(&var["name"]).to_string();
            match (&var["value"], &var["valueFrom"]["fieldRef"]["fieldPath"]) {
                (Value::String(value), _) => env.push((var_name, value.clone())),
                (_, Value::String(field)) => {
                    let expected = match var_name.as_str() {
                        "POD_NAME" => "metadata.name",
                        "POD_NAMESPACE" => "metadata.namespace",
                        other => bail!("unexpected downward-API variable {other}: {var}"),
                    };
                    ensure!(
                        field == expected,
                        "{var_name} must come from {expected}: {var}"
                    );
                }
                // An empty value is stored as no value at all.
                (Value::Null, Value::Null) if var["valueFrom"].is_null() => {
                    env.push((var_name, String::new()))
                }
                _ => bail!("env var {var_name} is neither a value nor a fieldRef: {var}"),
            }
        }
        for required in ["POD_NAME", "POD_NAMESPACE"] {
            ensure!(
                container["env"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|v| v["name"] == required)),
                "the container does not set {required}: {container}"
            );
        }
        let args: Vec<String> = container["args"]
            .as_array()
            .context("the container has no args")?
            .iter()
            .map(|a| str(a).to_string())
            .collect();
        ensure!(
            args.first().map(String::as_str) == Some("run"),
            "the container must run `kuberhealthy run`: {args:?}"
        );
        let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(client.clone(), namespace);
        let volume = pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == "config"))
            .context("the pod has no config volume")?;
        let config_map_name = str(&volume["configMap"]["name"]);
        let config_map = config_maps
            .get(config_map_name)
            .await
            .with_context(|| format!("reading ConfigMap {namespace}/{config_map_name}"))?;
        let text = config_map
            .data
            .unwrap_or_default()
            .remove("kuberhealthy.yaml")
            .context("the ConfigMap has no kuberhealthy.yaml")?;
        let config_file = dir.join(format!("{name}-kuberhealthy.yaml"));
        std::fs::write(&config_file, text)?;
        Ok(Self {
            release_namespace: namespace.to_string(),
            service_account: str(&pod["serviceAccountName"]).to_string(),
            args,
            env,
            config_file,
        })
    }

    /// Options for replica `name`: the container's args (the config path pointing at the
    /// ConfigMap's file), its env, `POD_NAME`/`POD_NAMESPACE` as the downward API gives them,
    /// a kubeconfig with the ServiceAccount's token and listen address `addr`, on the pod
    /// network's host side (the config file's `:8080` is overridden by `KH_LISTEN_ADDRESS`,
    /// as the README allows).
    pub fn replica_options(
        &self,
        name: &str,
        kubeconfig: &Path,
        log_dir: &Path,
        addr: SocketAddrV4,
    ) -> ReplicaOptions {
        let mut options = ReplicaOptions::new(
            name,
            &self.release_namespace,
            kubeconfig,
            *addr.ip(),
            log_dir,
        );
        options.listen_port = Some(addr.port());
        let mut args = self.args[1..].to_vec();
        match args.iter().position(|a| a == "--config" || a == "-c") {
            Some(i) if i + 1 < args.len() => args[i + 1] = self.config_file.display().to_string(),
            _ => panic!("the container's args do not pass --config: {:?}", self.args),
        }
        options.args = args;
        options.env = self.env.clone();
        options
    }
}

/// Three replicas as the chart runs them; replica 0 listens on `first`, the address of
/// the reporting URL the release was installed with, the others on free ports of its IP.
pub fn spawn_replicas(
    installed: &Installed,
    kubeconfig: &Path,
    log_dir: &Path,
    first: SocketAddrV4,
    count: usize,
) -> Result<Vec<Replica>> {
    (0..count)
        .map(|i| {
            let addr = if i == 0 {
                first
            } else {
                SocketAddrV4::new(*first.ip(), ports::free_port(*first.ip())?)
            };
            Replica::spawn(installed.replica_options(
                &format!("{}-{i}", installed.release_namespace),
                kubeconfig,
                log_dir,
                addr,
            ))
        })
        .collect()
}

/// A check that reports OK to the URL its run was given.
pub fn passing_check(name: &str, namespace: &str, interval: &str) -> String {
    format!(
        r#"apiVersion: comcast.github.io/v1
kind: KuberhealthyCheck
metadata:
  name: {name}
  namespace: {namespace}
spec:
  runInterval: {interval}
  timeout: 2m
  podSpec:
    containers:
    - name: main
      image: docker.io/curlimages/curl:8.11.1
      command: ["sh", "-c"]
      args:
      - >-
        curl -sS -f -X POST -H "kh-run-uuid: $KH_RUN_UUID"
        -d '{{"OK": true}}' "$KH_REPORTING_URL"
"#
    )
}

pub use kuberhealthy_e2e::resources::khstates;

/// The khstate of check `namespace/name` once it holds a finished, OK run.
pub async fn wait_for_ok_state(client: &Client, namespace: &str, name: &str) -> Result<Value> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &khstates());
    wait_until(
        &format!("khstate {namespace}/{name} to record an OK result"),
        TIMEOUT,
        || async {
            let state = api.get_opt(name).await?;
            Ok(state
                .filter(|s| s.data["spec"]["OK"] == Value::Bool(true))
                .map(|s| s.data))
        },
    )
    .await
}

/// `GET <path>` on a replica, as JSON.
pub async fn get_json(replica: &Replica, path: &str) -> Result<Value> {
    let response = http::get(replica.addr(), path).await?;
    ensure!(
        response.status == 200,
        "GET {path} on {} answered {}: {}",
        replica.name(),
        response.status,
        response.body
    );
    serde_json::from_str(&response.body).with_context(|| format!("GET {path}: not JSON"))
}

/// Whether the ServiceAccount behind `client` may `verb` `group/resource` in `namespace`
/// ("" for every namespace), by a SelfSubjectAccessReview.
pub async fn can(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
) -> Result<bool> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .with_context(|| format!("SelfSubjectAccessReview {verb} {group}/{resource}"))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Every `*` in the rules of the rendered Roles and ClusterRoles, as `Kind/name: field`.
pub fn wildcards(rendered: &Rendered) -> Vec<String> {
    let mut found = Vec::new();
    for doc in rendered
        .docs
        .iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
    {
        for rule in doc["rules"].as_array().cloned().unwrap_or_default() {
            for field in [
                "apiGroups",
                "resources",
                "verbs",
                "resourceNames",
                "nonResourceURLs",
            ] {
                for item in rule[field].as_array().cloned().unwrap_or_default() {
                    if str(&item).contains('*') {
                        found.push(format!(
                            "{}/{}: {field} {item}",
                            str(&doc["kind"]),
                            str(&doc["metadata"]["name"])
                        ));
                    }
                }
            }
        }
        if doc["aggregationRule"].is_object() {
            found.push(format!(
                "{}: aggregationRule",
                str(&doc["metadata"]["name"])
            ));
        }
    }
    found
}

/// Lines of the replicas' logs that say the API server refused a request.
pub fn forbidden_lines(replicas: &[Replica]) -> Vec<String> {
    replicas
        .iter()
        .flat_map(|r| {
            std::fs::read_to_string(r.log_path())
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    let lower = l.to_ascii_lowercase();
                    lower.contains("forbidden") || lower.contains("\"code\":403")
                })
                .map(|l| format!("{}: {l}", r.name()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The last lines of every replica's log, for failure messages.
pub fn replica_logs(replicas: &[Replica]) -> String {
    replicas
        .iter()
        .map(|r| format!("--- {} ---\n{}", r.name(), r.log_tail(40)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A fresh namespace next to the test's (`<test namespace>-<suffix>`).
pub async fn sibling_namespace(ctx: &TestContext, suffix: &str) -> Result<String> {
    let name = format!("{}-{suffix}", ctx.namespace());
    kuberhealthy_e2e::accounts::create_namespace(&ctx.client().await?, &name).await?;
    Ok(name)
}
