//! `helm lint` and `helm template` with the defaults and every documented toggle; each
//! rendering is server-side applied to the local API server with strict validation.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use kuberhealthy_e2e::accounts;
use serde_json::{Value, json};

use crate::cluster;
use crate::support::{self, Rendered, apply_rendered, args, helm, str, template};

/// `helm lint --strict` fails on warnings as well as errors.
async fn lint(extra: &[String]) -> Result<String> {
    let mut all = args(&["lint", "--strict"]);
    all.push(support::chart_dir().display().to_string());
    all.extend(extra.iter().cloned());
    let out = helm(&all, None).await?;
    ensure!(
        out.contains("1 chart(s) linted, 0 chart(s) failed"),
        "helm lint did not pass: {out}"
    );
    ensure!(
        !out.contains("[WARNING]") && !out.contains("[ERROR]"),
        "helm lint reported findings: {out}"
    );
    Ok(out)
}

#[tokio::test]
async fn lint_is_clean() {
    lint(&[]).await.unwrap();
}

fn pod_spec(r: &Rendered) -> Result<&Value> {
    Ok(&r.one("Deployment")?["spec"]["template"]["spec"])
}

fn pod_labels(r: &Rendered) -> Result<&serde_json::Map<String, Value>> {
    r.one("Deployment")?["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .context("the pod template has no labels")
}

/// Every `key: value` of `selector` is among `labels`.
fn selects(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// What the defaults must render, for release `kh` in `ns`.
fn check_defaults(r: &Rendered, ns: &str) -> Result<()> {
    let name = "kh-kuberhealthy";
    let mut expected: Vec<String> = CONTROLLER_OBJECTS
        .iter()
        .chain(&[
            // The three built-in checks on by default; dns-status reads nothing from the
            // cluster, so it has a ServiceAccount and no role.
            "KuberhealthyCheck/dns-status",
            "ServiceAccount/khcheck-dns-status",
            "KuberhealthyCheck/pod-restarts",
            "ServiceAccount/khcheck-pod-restarts",
            "ClusterRole/khcheck-pod-restarts",
            "ClusterRoleBinding/khcheck-pod-restarts",
            "KuberhealthyCheck/pod-status",
            "ServiceAccount/khcheck-pod-status",
            "ClusterRole/khcheck-pod-status",
            "ClusterRoleBinding/khcheck-pod-status",
        ])
        .map(|s| s.to_string())
        .collect();
    expected.sort();
    ensure!(r.kinds() == expected, "rendered {:?}", r.kinds());
    check_healthcheck_crd(r)?;
    for doc in &r.docs {
        let cluster_scoped = [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
        ];
        if !cluster_scoped.iter().any(|kind| doc["kind"] == *kind) {
            ensure!(
                doc["metadata"]["namespace"] == ns,
                "{} is not in the release namespace {ns}",
                str(&doc["metadata"]["name"])
            );
        }
    }

    let deployment = r.one("Deployment")?;
    ensure!(deployment["spec"]["replicas"] == 2, "2 replicas by default");
    let pod = pod_spec(r)?;
    ensure!(
        pod["serviceAccountName"] == name,
        "{}",
        pod["serviceAccountName"]
    );
    // The restricted Pod Security profile.
    let psc = &pod["securityContext"];
    ensure!(psc["runAsNonRoot"] == true, "runAsNonRoot: {psc}");
    ensure!(
        psc["runAsUser"].as_i64().is_some_and(|u| u > 0),
        "a non-root runAsUser: {psc}"
    );
    ensure!(
        psc["seccompProfile"]["type"] == "RuntimeDefault",
        "seccomp RuntimeDefault: {psc}"
    );
    let c = r.container()?;
    let sc = &c["securityContext"];
    ensure!(sc["allowPrivilegeEscalation"] == false, "{sc}");
    ensure!(sc["readOnlyRootFilesystem"] == true, "{sc}");
    ensure!(sc["capabilities"]["drop"] == json!(["ALL"]), "{sc}");
    ensure!(
        sc["capabilities"]["add"].is_null() && sc["privileged"] != true,
        "{sc}"
    );
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        ensure!(pod[host] != true, "{host} is set");
    }
    // Probes and the port.
    ensure!(
        c["ports"] == json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}]),
        "{}",
        c["ports"]
    );
    ensure!(
        c["livenessProbe"]["httpGet"] == json!({"path": "/healthz", "port": "http"}),
        "{}",
        c["livenessProbe"]
    );
    ensure!(
        c["readinessProbe"]["httpGet"] == json!({"path": "/readyz", "port": "http"}),
        "{}",
        c["readinessProbe"]
    );
    // The downward API.
    let env = c["env"].as_array().context("no env")?;
    for (var, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let found = env.iter().find(|v| v["name"] == var);
        ensure!(
            found.is_some_and(|v| v["valueFrom"]["fieldRef"]["fieldPath"] == field),
            "{var} must come from the downward API ({field}): {found:?}"
        );
    }
    ensure!(
        !env.iter().any(|v| v["name"] == "TARGET_NAMESPACE"),
        "cluster-wide by default: no TARGET_NAMESPACE"
    );
    ensure!(
        r.env("KH_EXTERNAL_REPORTING_URL")?
            == format!("http://{name}.{ns}.svc.cluster.local/externalCheckStatus"),
        "{}",
        r.env("KH_EXTERNAL_REPORTING_URL")?
    );
    for var in [
        "KH_LOG_FORMAT",
        "KH_LEADER_ELECTION_NAME",
        "KH_LEADER_ELECTION_LEASE_DURATION",
        "KH_LEADER_ELECTION_RENEW_DEADLINE",
        "KH_LEADER_ELECTION_RETRY_PERIOD",
        "KH_MAX_STARTS_PER_SECOND",
    ] {
        r.env(var)?;
    }
    let resources = &c["resources"];
    for field in ["/requests/cpu", "/requests/memory", "/limits/memory"] {
        ensure!(
            resources.pointer(field).is_some_and(Value::is_string),
            "resources{field} is not set: {resources}"
        );
    }
    // The config file.
    ensure!(
        c["args"] == json!(["run", "--config", "/etc/config/kuberhealthy.yaml"]),
        "{}",
        c["args"]
    );
    ensure!(
        c["volumeMounts"]
            == json!([{"name": "config", "mountPath": "/etc/config", "readOnly": true}]),
        "{}",
        c["volumeMounts"]
    );
    ensure!(
        pod["volumes"] == json!([{"name": "config", "configMap": {"name": name}}]),
        "{}",
        pod["volumes"]
    );
    let config_text = str(&r.one("ConfigMap")?["data"]["kuberhealthy.yaml"]);
    let config: Value = serde_saphyr::from_str(config_text).context("the config file")?;
    ensure!(config["listenAddress"] == ":8080", "{config}");
    ensure!(config["maxKHJobAge"] == "15m", "{config}");
    ensure!(
        deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            .as_str()
            .is_some_and(|s| s.len() == 64),
        "a config checksum rolls the pods when the config changes"
    );
    // Spread across nodes.
    let preferred =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
    ensure!(
        preferred[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname",
        "{preferred}"
    );
    ensure!(
        selects(
            &preferred[0]["podAffinityTerm"]["labelSelector"]["matchLabels"],
            pod_labels(r)?
        ),
        "the anti-affinity selects the replicas"
    );
    ensure!(
        pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname",
        "{}",
        pod["topologySpreadConstraints"]
    );
    // Service 80 -> the container's port named http (8080).
    let service = r.one("Service")?;
    ensure!(
        service["spec"]["ports"]
            == json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]),
        "{}",
        service["spec"]["ports"]
    );
    ensure!(service["spec"]["type"] == "ClusterIP");
    ensure!(
        selects(&service["spec"]["selector"], pod_labels(r)?),
        "the Service selects the replicas"
    );
    ensure!(
        selects(
            &deployment["spec"]["selector"]["matchLabels"],
            pod_labels(r)?
        ),
        "the Deployment selects its pods"
    );
    // The disruption budget.
    let pdb = r.one("PodDisruptionBudget")?;
    ensure!(pdb["spec"]["minAvailable"] == 1, "{pdb}");
    ensure!(
        selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels(r)?),
        "the PDB selects the replicas"
    );
    // RBAC: cluster-wide controller rules, the Lease Role in the release namespace, every
    // binding to the ServiceAccount.
    check_rbac(r, ns, name, None)?;
    // The built-in checks on by default, in the release namespace.
    check_builtin(r, ns, &DEFAULT_CHECKS, None)?;
    let dns = r.named("KuberhealthyCheck", "dns-status")?;
    ensure!(
        check_env(&dns["spec"]["podSpec"]["containers"][0], "HOSTNAME")? == "kubernetes.default",
        "{dns}"
    );
    Ok(())
}

/// What the chart renders for its controller (release `kh`), the checks aside.
const CONTROLLER_OBJECTS: [&str; 10] = [
    "ClusterRole/kh-kuberhealthy",
    "ClusterRoleBinding/kh-kuberhealthy",
    "ConfigMap/kh-kuberhealthy",
    HEALTHCHECK_CRD,
    "Deployment/kh-kuberhealthy",
    "PodDisruptionBudget/kh-kuberhealthy",
    "Role/kh-kuberhealthy-lease",
    "RoleBinding/kh-kuberhealthy-lease",
    "Service/kh-kuberhealthy",
    "ServiceAccount/kh-kuberhealthy",
];

/// The HealthCheck CRD, which the chart renders unless `healthChecks.enabled=false`.
const HEALTHCHECK_CRD: &str = "CustomResourceDefinition/healthchecks.kuberhealthy.github.io";

/// The HealthCheck CRD as rendered: the code's (`kuberhealthy crd --only healthcheck`), kept
/// on uninstall, labelled as the release.
fn check_healthcheck_crd(r: &Rendered) -> Result<()> {
    let crd = r.named(
        "CustomResourceDefinition",
        "healthchecks.kuberhealthy.github.io",
    )?;
    let code = serde_json::to_value(kuberhealthy::generate::crd::healthcheck_crd())?;
    ensure!(
        crd["spec"] == code["spec"],
        "the rendered CRD is the code's"
    );
    ensure!(
        crd["metadata"]["annotations"] == json!({"helm.sh/resource-policy": "keep"}),
        "{}",
        crd["metadata"]
    );
    ensure!(
        crd["metadata"]["labels"]["app.kubernetes.io/instance"] == "kh",
        "{}",
        crd["metadata"]
    );
    ensure!(r.env("KH_HEALTHCHECKS")? == "true");
    Ok(())
}

/// The built-in checks the chart enables by default.
const DEFAULT_CHECKS: [&str; 3] = ["dns-status", "pod-restarts", "pod-status"];

/// The entries of values.yaml's `checks`.
fn values_checks() -> Result<serde_json::Map<String, Value>> {
    let values: Value = serde_saphyr::from_str(&std::fs::read_to_string(
        support::chart_dir().join("values.yaml"),
    )?)?;
    values["checks"]
        .as_object()
        .cloned()
        .context("values.yaml has no `checks` map")
}

/// The names of the built-in checks values.yaml has an entry for, sorted.
pub fn chart_checks() -> Result<Vec<String>> {
    Ok(values_checks()?.keys().cloned().collect())
}

/// A stand-in for a knob that must be set (`""` in values.yaml) to enable a check.
fn placeholder(knob: &str) -> &'static str {
    if knob.ends_with("_URL") {
        "https://example.com/"
    } else {
        "example.com"
    }
}

/// `--set` arguments enabling every check of values.yaml, with a stand-in for each knob that
/// must be set.
pub fn every_check_on() -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (name, entry) in values_checks()? {
        out.extend(args(&["--set", &format!("checks.{name}.enabled=true")]));
        for (knob, value) in entry["env"].as_object().into_iter().flatten() {
            if value == "" {
                out.extend(args(&[
                    "--set",
                    &format!("checks.{name}.env.{knob}={}", placeholder(knob)),
                ]));
            }
        }
    }
    Ok(out)
}

/// `--set` arguments disabling every check of values.yaml.
pub fn every_check_off() -> Result<Vec<String>> {
    Ok(chart_checks()?
        .iter()
        .flat_map(|name| args(&["--set", &format!("checks.{name}.enabled=false")]))
        .collect())
}

/// The literal value of env var `name` of `container`.
fn check_env(container: &Value, name: &str) -> Result<String> {
    let var = container["env"]
        .as_array()
        .and_then(|env| env.iter().find(|v| v["name"] == name))
        .with_context(|| format!("no env var {name}: {container}"))?;
    var["value"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("env var {name} has no literal value: {var}"))
}

/// Exactly the checks `names` are rendered, as KuberhealthyChecks in `checks_ns` whose pod
/// runs `/kuberhealthy check <name>` from the controller's image as `khcheck-<name>`, with the
/// controller's (restricted) security contexts and pull secrets, the entry's interval,
/// timeout, resources and knobs; each ServiceAccount with the check's own rules (a ClusterRole,
/// or a Role in `target`), or mounting no token when it has none.
fn check_builtin(
    r: &Rendered,
    checks_ns: &str,
    names: &[&str],
    target: Option<&str>,
) -> Result<()> {
    let mut rendered: Vec<&str> = r
        .of_kind("KuberhealthyCheck")
        .iter()
        .map(|d| str(&d["metadata"]["name"]))
        .collect();
    rendered.sort();
    let mut expected = names.to_vec();
    expected.sort();
    ensure!(rendered == expected, "checks rendered: {rendered:?}");
    let controller_pod = pod_spec(r)?;
    let controller = r.container()?;
    let values = values_checks()?;
    for name in names {
        let khc = r.named("KuberhealthyCheck", name)?;
        let entry = &values[*name];
        ensure!(khc["apiVersion"] == "comcast.github.io/v1", "{khc}");
        ensure!(khc["metadata"]["namespace"] == checks_ns, "{khc}");
        ensure!(
            khc["spec"]["runInterval"] == entry["runInterval"]
                && khc["spec"]["timeout"] == entry["timeout"],
            "{khc}"
        );
        let pod = &khc["spec"]["podSpec"];
        let account = kuberhealthy::generate::rbac::check_service_account(name);
        ensure!(pod["serviceAccountName"] == account.as_str(), "{pod}");
        ensure!(
            pod["imagePullSecrets"] == controller_pod["imagePullSecrets"],
            "{name}: the controller's pull secrets: {pod}"
        );
        // The restricted Pod Security profile, as the controller's.
        let psc = &pod["securityContext"];
        ensure!(psc == &controller_pod["securityContext"], "{name}: {psc}");
        ensure!(
            psc["runAsNonRoot"] == true && psc["seccompProfile"]["type"] == "RuntimeDefault",
            "{name}: {psc}"
        );
        let containers = pod["containers"].as_array().context("no containers")?;
        ensure!(containers.len() == 1, "{name}: {containers:?}");
        let c = &containers[0];
        ensure!(
            c["command"] == json!(["/kuberhealthy", "check", name]) && c["args"].is_null(),
            "{name}: {c}"
        );
        ensure!(
            c["image"] == controller["image"]
                && c["imagePullPolicy"] == controller["imagePullPolicy"],
            "{name} runs the controller's image: {c}"
        );
        let sc = &c["securityContext"];
        ensure!(sc == &controller["securityContext"], "{name}: {sc}");
        ensure!(
            sc["allowPrivilegeEscalation"] == false
                && sc["readOnlyRootFilesystem"] == true
                && sc["capabilities"]["drop"] == json!(["ALL"]),
            "{name}: {sc}"
        );
        ensure!(c["resources"] == entry["resources"], "{name}: {c}");
        ensure!(
            c["resources"]["requests"]["cpu"].is_string()
                && c["resources"]["requests"]["memory"].is_string(),
            "{name}: requests: {c}"
        );
        // The knobs, and the one that limits the check to `target`'s namespace.
        let scope = entry["namespaceEnv"].as_str().filter(|_| target.is_some());
        for (knob, value) in entry["env"].as_object().into_iter().flatten() {
            let expected = match (scope, value.as_str()) {
                (Some(var), _) if var == knob => target.unwrap_or_default().to_string(),
                (_, Some("")) => placeholder(knob).to_string(),
                (_, Some(v)) => v.to_string(),
                _ => value.to_string(),
            };
            ensure!(
                check_env(c, knob)? == expected,
                "{name}: {knob} should be {expected:?}: {c}"
            );
        }
        if let (Some(var), Some(target)) = (scope, target) {
            ensure!(check_env(c, var)? == target, "{name}: {c}");
        }
        let node = c["env"]
            .as_array()
            .and_then(|env| env.iter().find(|v| v["name"] == "NODE_NAME"));
        ensure!(
            node.is_some_and(|v| v["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
            "{name}: NODE_NAME from the downward API: {c}"
        );

        let sa = r.named("ServiceAccount", &account)?;
        ensure!(sa["metadata"]["namespace"] == checks_ns, "{sa}");
        let check = kuberhealthy::checker::checks::find(name).context("not a built-in check")?;
        let rules = kuberhealthy::generate::rbac::check_rules(check);
        let (role_kind, binding_kind) = match target {
            Some(_) => ("Role", "RoleBinding"),
            None => ("ClusterRole", "ClusterRoleBinding"),
        };
        if rules.is_empty() {
            ensure!(sa["automountServiceAccountToken"] == false, "{sa}");
            for kind in ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"] {
                ensure!(
                    r.named(kind, &account).is_err(),
                    "{name} needs no access, yet has a {kind}"
                );
            }
            continue;
        }
        ensure!(sa["automountServiceAccountToken"].is_null(), "{sa}");
        let role = r.named(role_kind, &account)?;
        ensure!(role["rules"] == policy(rules), "{name}: {role}");
        let binding = r.named(binding_kind, &account)?;
        if let Some(target) = target {
            ensure!(role["metadata"]["namespace"] == target, "{role}");
            ensure!(binding["metadata"]["namespace"] == target, "{binding}");
        }
        ensure!(
            binding["roleRef"]
                == json!({"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": account}),
            "{binding}"
        );
        ensure!(
            binding["subjects"]
                == json!([{"kind": "ServiceAccount", "name": account, "namespace": checks_ns}]),
            "{binding}"
        );
    }
    Ok(())
}

/// A built-in check's RBAC object.
fn is_check_object(doc: &Value) -> bool {
    str(&doc["metadata"]["name"]).starts_with("khcheck-")
}

/// Bindings name `account` in `ns`; the controller's rules are in a ClusterRole (no
/// target) or in a Role in `target`; the Lease Role is in `ns`.
fn check_rbac(r: &Rendered, ns: &str, account: &str, target: Option<&str>) -> Result<()> {
    for binding in r
        .docs
        .iter()
        .filter(|d| str(&d["kind"]).ends_with("Binding") && !is_check_object(d))
    {
        ensure!(
            binding["subjects"]
                == json!([{"kind": "ServiceAccount", "name": account, "namespace": ns}]),
            "{binding}"
        );
    }
    let controller_rules: Value = serde_json::to_value(controller_policy())?;
    match target {
        None => {
            ensure!(
                r.named("ClusterRole", "kh-kuberhealthy")?["rules"] == cluster_policy(),
                "the ClusterRole's rules are the code's"
            );
            r.named("ClusterRoleBinding", "kh-kuberhealthy")?;
        }
        Some(target) => {
            ensure!(
                r.of_kind("ClusterRole").is_empty() && r.of_kind("ClusterRoleBinding").is_empty(),
                "namespace-scoped mode must render no ClusterRole: {:?}",
                r.kinds()
            );
            let role = r
                .of_kind("Role")
                .into_iter()
                .find(|d| d["metadata"]["namespace"] == target && !is_check_object(d))
                .with_context(|| format!("no Role in {target}: {:?}", r.kinds()))?;
            ensure!(role["rules"] == controller_rules, "{role}");
        }
    }
    let lease = r
        .of_kind("Role")
        .into_iter()
        .find(|d| str(&d["metadata"]["name"]).ends_with("-lease"))
        .context("no Lease Role")?;
    ensure!(lease["metadata"]["namespace"] == ns, "{lease}");
    ensure!(
        lease["rules"] == serde_json::to_value(lease_policy())?,
        "{lease}"
    );
    let wildcards = support::wildcards(r);
    ensure!(wildcards.is_empty(), "wildcards in RBAC: {wildcards:?}");
    Ok(())
}

/// The controller's rules as the chart grants them by default (the Role of
/// `--target-namespace` mode, and the ClusterRole's first rules): v2's resources and v3's
/// HealthChecks.
pub fn controller_policy() -> Value {
    policy(&kuberhealthy::generate::rbac::all_controller_rules())
}

/// The rules of the controller's ClusterRole: its rules and `/api/run`'s reviews.
pub fn cluster_policy() -> Value {
    let mut rules = controller_policy();
    let auth = policy(kuberhealthy::generate::rbac::AUTH_RULES);
    rules
        .as_array_mut()
        .expect("a list of rules")
        .extend(auth.as_array().expect("a list of rules").iter().cloned());
    rules
}

pub fn lease_policy() -> Value {
    policy(kuberhealthy::generate::rbac::LEASE_RULES)
}

/// Rules as the chart writes them (the code's `rules_yaml`, read back).
pub fn policy(rules: &[kuberhealthy::api::access::Rule]) -> Value {
    serde_saphyr::from_str(&kuberhealthy::generate::rbac::rules_yaml(rules))
        .expect("the code's rules")
}

/// One documented toggle: its values (`{ns}` is the release namespace) and what it must
/// render. Namespaces `{ns}-<suffix>` for each of `namespaces` are created before applying.
struct Toggle {
    name: &'static str,
    values: &'static [&'static str],
    namespaces: &'static [&'static str],
    check: fn(&Rendered, &str) -> Result<()>,
}

const TOGGLES: &[Toggle] = &[
    Toggle {
        name: "defaults",
        values: &[],
        namespaces: &[],
        check: check_defaults,
    },
    Toggle {
        name: "targetNamespace",
        values: &["--set", "targetNamespace={ns}-checks"],
        namespaces: &["checks"],
        check: |r, ns| {
            ensure!(r.env("TARGET_NAMESPACE")? == format!("{ns}-checks"));
            let target = format!("{ns}-checks");
            check_rbac(r, ns, "kh-kuberhealthy", Some(&target))?;
            // The controller's Role and the Lease Role; the default checks' Roles are in
            // the target namespace with their checks.
            let controller_roles = |kind: &str| {
                r.of_kind(kind)
                    .into_iter()
                    .filter(|d| !is_check_object(d))
                    .count()
            };
            ensure!(
                controller_roles("Role") == 2 && controller_roles("RoleBinding") == 2,
                "{:?}",
                r.kinds()
            );
            check_builtin(r, &target, &DEFAULT_CHECKS, Some(&target))
        },
    },
    Toggle {
        name: "prometheus.serviceMonitor",
        values: &[
            "--set",
            "prometheus.serviceMonitor.enabled=true",
            "--set",
            "prometheus.serviceMonitor.interval=15s",
            "--set",
            "prometheus.serviceMonitor.additionalLabels.release=prometheus",
        ],
        namespaces: &[],
        check: |r, _| {
            let monitor = r.one("ServiceMonitor")?;
            let service = r.one("Service")?;
            let endpoint = &monitor["spec"]["endpoints"][0];
            ensure!(
                endpoint["port"] == service["spec"]["ports"][0]["name"],
                "the ServiceMonitor scrapes the Service's named port: {endpoint}"
            );
            ensure!(endpoint["path"] == "/metrics" && endpoint["interval"] == "15s");
            ensure!(
                endpoint["honorLabels"] == true,
                "the check's `namespace` label must win over the target's"
            );
            let labels = service["metadata"]["labels"].as_object().unwrap();
            ensure!(
                selects(&monitor["spec"]["selector"]["matchLabels"], labels),
                "the ServiceMonitor selects the Service"
            );
            ensure!(monitor["metadata"]["labels"]["release"] == "prometheus");
            Ok(())
        },
    },
    Toggle {
        name: "prometheus.prometheusRule",
        values: &[
            "--set",
            "prometheus.prometheusRule.enabled=true",
            "--set",
            "prometheus.prometheusRule.additionalLabels.release=prometheus",
        ],
        namespaces: &[],
        check: |r, ns| {
            let rule = r.one("PrometheusRule")?;
            ensure!(rule["metadata"]["labels"]["release"] == "prometheus");
            let alerts = crate::alerts::alerts(rule)?;
            let names: Vec<&str> = alerts.iter().map(|a| str(&a["alert"])).collect();
            ensure!(
                names
                    == [
                        "KuberhealthyCheckFailing",
                        "KuberhealthyCheckStale",
                        "KuberhealthyNoLeader",
                        "KuberhealthyReplicasDown"
                    ],
                "{names:?}"
            );
            for alert in &alerts {
                for field in [
                    "/labels/severity",
                    "/annotations/summary",
                    "/annotations/description",
                    "/for",
                ] {
                    ensure!(
                        alert
                            .pointer(field)
                            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty())),
                        "{} has no {field}",
                        alert["alert"]
                    );
                }
            }
            let selector = format!(r#"job="kh-kuberhealthy", namespace="{ns}""#);
            ensure!(
                str(&alerts[3]["expr"]).contains(&selector)
                    && str(&alerts[3]["expr"]).ends_with("< 2"),
                "{}",
                alerts[3]["expr"]
            );
            crate::alerts::promtool_check_rules(rule)?;
            Ok(())
        },
    },
    Toggle {
        name: "prometheus.prometheusRule with targetSelector and 3 replicas",
        values: &[
            "--set",
            "prometheus.prometheusRule.enabled=true",
            "--set",
            "replicas=3",
            "--set-string",
            "prometheus.prometheusRule.targetSelector=job=\"kuberhealthy\"",
            "--set",
            "prometheus.prometheusRule.failingFor=15m",
            "--set",
            "prometheus.prometheusRule.severity.checkFailing=critical",
        ],
        namespaces: &[],
        check: |r, _| {
            let alerts = crate::alerts::alerts(r.one("PrometheusRule")?)?;
            ensure!(alerts[0]["for"] == "15m" && alerts[0]["labels"]["severity"] == "critical");
            ensure!(
                str(&alerts[2]["expr"])
                    == r#"(max(kuberhealthy_controller_leader{job="kuberhealthy"}) or vector(0)) < 1"#,
                "{}",
                alerts[2]["expr"]
            );
            ensure!(
                str(&alerts[3]["expr"]) == r#"(sum(up{job="kuberhealthy"}) or vector(0)) < 3"#,
                "{}",
                alerts[3]["expr"]
            );
            crate::alerts::promtool_check_rules(r.one("PrometheusRule")?)
        },
    },
    Toggle {
        name: "prometheus.grafanaDashboard",
        values: &[
            "--set",
            "prometheus.grafanaDashboard.enabled=true",
            "--set",
            "prometheus.grafanaDashboard.namespace={ns}-grafana",
            "--set",
            "prometheus.grafanaDashboard.annotations.grafana_folder=Kuberhealthy",
        ],
        namespaces: &["grafana"],
        check: |r, ns| {
            let map = r.named("ConfigMap", "kh-kuberhealthy-dashboard")?;
            ensure!(map["metadata"]["namespace"] == format!("{ns}-grafana"));
            ensure!(
                map["metadata"]["labels"]["grafana_dashboard"] == "1",
                "{map}"
            );
            ensure!(map["metadata"]["annotations"]["grafana_folder"] == "Kuberhealthy");
            let shipped: Value = serde_json::from_str(str(&map["data"]["kuberhealthy.json"]))
                .context("the dashboard in the ConfigMap is not JSON")?;
            ensure!(
                shipped == crate::dashboard::dashboard()?,
                "the ConfigMap holds files/dashboard.json"
            );
            Ok(())
        },
    },
    Toggle {
        name: "podDisruptionBudget.enabled=false",
        values: &["--set", "podDisruptionBudget.enabled=false"],
        namespaces: &[],
        check: |r, _| {
            ensure!(
                r.of_kind("PodDisruptionBudget").is_empty(),
                "{:?}",
                r.kinds()
            );
            Ok(())
        },
    },
    Toggle {
        name: "replicas=1 (no PodDisruptionBudget)",
        values: &[
            "--set",
            "replicas=1",
            "--set",
            "podDisruptionBudget.minAvailable=1",
        ],
        namespaces: &[],
        check: |r, _| {
            ensure!(r.one("Deployment")?["spec"]["replicas"] == 1);
            ensure!(
                r.of_kind("PodDisruptionBudget").is_empty(),
                "a budget of 1 on one replica would block node drains"
            );
            Ok(())
        },
    },
    Toggle {
        name: "serviceAccount.create=false",
        values: &[
            "--set",
            "serviceAccount.create=false",
            "--set",
            "serviceAccount.name=existing",
        ],
        namespaces: &[],
        check: |r, ns| {
            // Only the built-in checks' own ServiceAccounts are rendered.
            ensure!(
                r.of_kind("ServiceAccount")
                    .iter()
                    .all(|d| is_check_object(d)),
                "{:?}",
                r.kinds()
            );
            ensure!(pod_spec(r)?["serviceAccountName"] == "existing");
            check_rbac(r, ns, "existing", None)
        },
    },
    Toggle {
        name: "serviceAccount.annotations",
        values: &[
            "--set",
            "serviceAccount.annotations.example\\.com/role=kuberhealthy",
        ],
        namespaces: &[],
        check: |r, _| {
            let account = r.named("ServiceAccount", "kh-kuberhealthy")?;
            ensure!(
                account["metadata"]["annotations"]["example.com/role"] == "kuberhealthy",
                "{account}"
            );
            Ok(())
        },
    },
    Toggle {
        name: "podAntiAffinity=hard",
        values: &["--set", "podAntiAffinity=hard"],
        namespaces: &[],
        check: |r, _| {
            let anti = &pod_spec(r)?["affinity"]["podAntiAffinity"];
            let required = &anti["requiredDuringSchedulingIgnoredDuringExecution"][0];
            ensure!(
                required["topologyKey"] == "kubernetes.io/hostname",
                "{anti}"
            );
            ensure!(selects(
                &required["labelSelector"]["matchLabels"],
                pod_labels(r)?
            ));
            ensure!(
                anti["preferredDuringSchedulingIgnoredDuringExecution"].is_null(),
                "{anti}"
            );
            Ok(())
        },
    },
    Toggle {
        name: "healthChecks.enabled=false",
        values: &["--set", "healthChecks.enabled=false"],
        namespaces: &[],
        check: |r, _| {
            ensure!(
                r.of_kind("CustomResourceDefinition").is_empty(),
                "no HealthCheck CRD: {:?}",
                r.kinds()
            );
            let mut v2_rules = policy(kuberhealthy::generate::rbac::CONTROLLER_RULES);
            v2_rules.as_array_mut().context("a list of rules")?.extend(
                policy(kuberhealthy::generate::rbac::AUTH_RULES)
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
            ensure!(
                r.named("ClusterRole", "kh-kuberhealthy")?["rules"] == v2_rules,
                "v2's rules (and /api/run's reviews) only"
            );
            ensure!(r.env("KH_HEALTHCHECKS")? == "false");
            Ok(())
        },
    },
    Toggle {
        name: "healthChecks.enabled=false with targetNamespace",
        values: &[
            "--set",
            "healthChecks.enabled=false",
            "--set",
            "targetNamespace={ns}-checks",
        ],
        namespaces: &["checks"],
        check: |r, ns| {
            let role = r.named("Role", "kh-kuberhealthy")?;
            ensure!(
                role["metadata"]["namespace"] == format!("{ns}-checks"),
                "{role}"
            );
            ensure!(
                role["rules"] == policy(kuberhealthy::generate::rbac::CONTROLLER_RULES),
                "v2's rules only: {role}"
            );
            Ok(())
        },
    },
    Toggle {
        name: "healthChecks.reportURL",
        values: &["--set", "healthChecks.reportURL=http://kh.example:8080"],
        namespaces: &[],
        check: |r, _| {
            ensure!(r.env("KH_CHECK_REPORT_URL")? == "http://kh.example:8080");
            check_healthcheck_crd(r)
        },
    },
    Toggle {
        name: "reportingURL",
        values: &[
            "--set",
            "reportingURL=http://kh.example:8080/externalCheckStatus",
        ],
        namespaces: &[],
        check: |r, _| {
            ensure!(
                r.env("KH_EXTERNAL_REPORTING_URL")? == "http://kh.example:8080/externalCheckStatus"
            );
            Ok(())
        },
    },
    Toggle {
        name: "image",
        values: &[
            "--set",
            "image.registry=registry.example.com",
            "--set",
            "image.repository=team/kuberhealthy",
            "--set",
            "image.tag=1.2.3",
            "--set",
            "image.pullPolicy=Always",
            "--set",
            "imagePullSecrets[0].name=regcred",
        ],
        namespaces: &[],
        check: |r, ns| {
            let c = r.container()?;
            ensure!(
                c["image"] == "registry.example.com/team/kuberhealthy:1.2.3",
                "{}",
                c["image"]
            );
            ensure!(c["imagePullPolicy"] == "Always");
            ensure!(pod_spec(r)?["imagePullSecrets"] == json!([{"name": "regcred"}]));
            // The built-in checks run the same image, with the same pull secrets.
            check_builtin(r, ns, &DEFAULT_CHECKS, None)
        },
    },
    Toggle {
        name: "image defaults to the appVersion",
        values: &[],
        namespaces: &[],
        check: |r, _| {
            let chart: Value = serde_saphyr::from_str(&std::fs::read_to_string(
                support::chart_dir().join("Chart.yaml"),
            )?)?;
            let expected = format!("kuberhealthy:{}", str(&chart["appVersion"]));
            ensure!(
                r.container()?["image"] == expected.as_str(),
                "{}",
                r.container()?["image"]
            );
            Ok(())
        },
    },
    Toggle {
        name: "scheduling",
        values: &[
            "--set",
            "nodeSelector.kubernetes\\.io/os=linux",
            "--set",
            "tolerations[0].key=dedicated",
            "--set",
            "tolerations[0].operator=Exists",
            "--set",
            "priorityClassName=system-cluster-critical",
            "--set",
            "terminationGracePeriodSeconds=45",
        ],
        namespaces: &[],
        check: |r, _| {
            let pod = pod_spec(r)?;
            ensure!(pod["nodeSelector"] == json!({"kubernetes.io/os": "linux"}));
            ensure!(pod["tolerations"] == json!([{"key": "dedicated", "operator": "Exists"}]));
            ensure!(pod["priorityClassName"] == "system-cluster-critical");
            ensure!(pod["terminationGracePeriodSeconds"] == 45);
            Ok(())
        },
    },
    Toggle {
        name: "pod metadata",
        values: &[
            "--set",
            "podAnnotations.example\\.com/owner=sre",
            "--set",
            "podLabels.team=sre",
        ],
        namespaces: &[],
        check: |r, _| {
            let meta = &r.one("Deployment")?["spec"]["template"]["metadata"];
            ensure!(meta["annotations"]["example.com/owner"] == "sre", "{meta}");
            ensure!(meta["labels"]["team"] == "sre", "{meta}");
            ensure!(
                r.one("Deployment")?["spec"]["selector"]["matchLabels"]["team"].is_null(),
                "extra pod labels stay out of the immutable selector"
            );
            Ok(())
        },
    },
    Toggle {
        name: "service",
        values: &[
            "--set",
            "service.type=NodePort",
            "--set",
            "service.port=8081",
            "--set-string",
            "service.annotations.example\\.com/scrape=true",
        ],
        namespaces: &[],
        check: |r, ns| {
            let service = r.one("Service")?;
            ensure!(service["spec"]["type"] == "NodePort");
            ensure!(service["spec"]["ports"][0]["port"] == 8081);
            ensure!(service["spec"]["ports"][0]["targetPort"] == "http");
            ensure!(service["metadata"]["annotations"]["example.com/scrape"] == "true");
            ensure!(
                r.env("KH_EXTERNAL_REPORTING_URL")?
                    == format!(
                        "http://kh-kuberhealthy.{ns}.svc.cluster.local:8081/externalCheckStatus"
                    ),
                "the default reporting URL follows the Service port: {}",
                r.env("KH_EXTERNAL_REPORTING_URL")?
            );
            Ok(())
        },
    },
    Toggle {
        name: "controller settings",
        values: &[
            "--set",
            "logFormat=text",
            "--set",
            "maxStartsPerSecond=25",
            "--set",
            "leaderElection.leaseName=kh-lease",
            "--set",
            "leaderElection.leaseDuration=30s",
            "--set",
            "leaderElection.renewDeadline=20s",
            "--set",
            "leaderElection.retryPeriod=4s",
            "--set",
            "extraEnv[0].name=OTEL_EXPORTER_OTLP_ENDPOINT",
            "--set",
            "extraEnv[0].value=http://otel-collector:4318",
            "--set",
            "config.logLevel=debug",
            "--set",
            "config.maxCompletedPodCount=9",
            "--set",
            "config.stateMetadata.cluster=prod-1",
            "--set",
            "config.promMetricsConfig.suppressErrorLabel=true",
        ],
        namespaces: &[],
        check: |r, _| {
            for (var, value) in [
                ("KH_LOG_FORMAT", "text"),
                ("KH_MAX_STARTS_PER_SECOND", "25"),
                ("KH_LEADER_ELECTION_NAME", "kh-lease"),
                ("KH_LEADER_ELECTION_LEASE_DURATION", "30s"),
                ("KH_LEADER_ELECTION_RENEW_DEADLINE", "20s"),
                ("KH_LEADER_ELECTION_RETRY_PERIOD", "4s"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector:4318"),
            ] {
                ensure!(r.env(var)? == value, "{var}: {}", r.env(var)?);
            }
            let config: Value =
                serde_saphyr::from_str(str(&r.one("ConfigMap")?["data"]["kuberhealthy.yaml"]))?;
            ensure!(
                config["logLevel"] == "debug" && config["maxCompletedPodCount"] == 9,
                "{config}"
            );
            ensure!(
                config["stateMetadata"] == json!({"cluster": "prod-1"}),
                "{config}"
            );
            ensure!(
                config["promMetricsConfig"]["suppressErrorLabel"] == true,
                "{config}"
            );
            Ok(())
        },
    },
    Toggle {
        name: "resources",
        values: &[
            "--set",
            "resources.requests.cpu=200m",
            "--set",
            "resources.requests.memory=128Mi",
            "--set",
            "resources.limits.memory=512Mi",
        ],
        namespaces: &[],
        check: |r, _| {
            ensure!(
                r.container()?["resources"]
                    == json!({"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}),
                "{}",
                r.container()?["resources"]
            );
            Ok(())
        },
    },
    Toggle {
        name: "every built-in check",
        values: &[EVERY_CHECK_ON],
        namespaces: &[],
        check: |r, ns| {
            let all = chart_checks()?;
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            check_builtin(r, ns, &all, None)
        },
    },
    Toggle {
        name: "every built-in check with targetNamespace",
        values: &[EVERY_CHECK_ON, "--set", "targetNamespace={ns}-checks"],
        namespaces: &["checks"],
        check: |r, ns| {
            let target = format!("{ns}-checks");
            let all = chart_checks()?;
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            check_builtin(r, &target, &all, Some(&target))?;
            ensure!(
                r.of_kind("ClusterRole").is_empty() && r.of_kind("ClusterRoleBinding").is_empty(),
                "namespace-scoped mode must render no ClusterRole: {:?}",
                r.kinds()
            );
            Ok(())
        },
    },
    Toggle {
        name: "no built-in check",
        values: &[EVERY_CHECK_OFF],
        namespaces: &[],
        check: |r, _| {
            let mut expected: Vec<String> =
                CONTROLLER_OBJECTS.iter().map(|s| s.to_string()).collect();
            expected.sort();
            ensure!(r.kinds() == expected, "rendered {:?}", r.kinds());
            Ok(())
        },
    },
    Toggle {
        name: "built-in check settings",
        values: &[
            "--set",
            "checks.dns-status.runInterval=10m",
            "--set",
            "checks.dns-status.timeout=1m",
            "--set",
            "checks.dns-status.env.HOSTNAME=example.com",
            "--set",
            "checks.dns-status.env.NODE_NAME=fixed",
            "--set",
            "checks.dns-status.resources.requests.cpu=20m",
            "--set",
            "checks.dns-status.resources.limits.memory=64Mi",
            "--set",
            "checks.pod-status.env.SKIP_DURATION=null",
            "--set",
            "checks.pod-restarts.enabled=false",
        ],
        namespaces: &[],
        check: |r, _| {
            let dns = r.named("KuberhealthyCheck", "dns-status")?;
            ensure!(
                dns["spec"]["runInterval"] == "10m" && dns["spec"]["timeout"] == "1m",
                "{dns}"
            );
            let c = &dns["spec"]["podSpec"]["containers"][0];
            ensure!(check_env(c, "HOSTNAME")? == "example.com", "{c}");
            // A NODE_NAME of the values replaces the downward API's.
            let node: Vec<&Value> = c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["name"] == "NODE_NAME")
                .collect();
            ensure!(
                node == [&json!({"name": "NODE_NAME", "value": "fixed"})],
                "{c}"
            );
            ensure!(
                c["resources"]
                    == json!({"requests": {"cpu": "20m", "memory": "50Mi"}, "limits": {"memory": "64Mi"}}),
                "{c}"
            );
            let status =
                &r.named("KuberhealthyCheck", "pod-status")?["spec"]["podSpec"]["containers"][0];
            ensure!(
                !status["env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| v["name"] == "SKIP_DURATION"),
                "a knob set to null is left out: {status}"
            );
            for kind in ["KuberhealthyCheck", "ServiceAccount"] {
                let name = if kind == "KuberhealthyCheck" {
                    "pod-restarts"
                } else {
                    "khcheck-pod-restarts"
                };
                ensure!(r.named(kind, name).is_err(), "{kind} {name} is rendered");
            }
            ensure!(r.named("ClusterRole", "khcheck-pod-restarts").is_err());
            ensure!(r.named("ClusterRole", "khcheck-pod-status").is_ok());
            Ok(())
        },
    },
];

/// In a toggle's values: every built-in check enabled (with a stand-in for each knob that must
/// be set), or every one disabled.
const EVERY_CHECK_ON: &str = "{every check on}";
const EVERY_CHECK_OFF: &str = "{every check off}";

/// The toggle's values with `{ns}` replaced and the built-in check switches expanded.
fn values_for(toggle: &Toggle, ns: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for value in toggle.values {
        match *value {
            EVERY_CHECK_ON => out.extend(every_check_on()?),
            EVERY_CHECK_OFF => out.extend(every_check_off()?),
            other => out.push(other.replace("{ns}", ns)),
        }
    }
    Ok(out)
}

#[tokio::test]
async fn every_toggle_lints_renders_and_applies_with_server_side_validation() {
    let ctx = cluster().await.context("chart-toggles").await.unwrap();
    let client = ctx.client().await.unwrap();
    support::install_crds(&client).await.unwrap();
    let mut failures = Vec::new();
    for (i, toggle) in TOGGLES.iter().enumerate() {
        let ns = format!("{}-t{i}", ctx.namespace());
        let outcome = async {
            accounts::create_namespace(&client, &ns).await?;
            for suffix in toggle.namespaces {
                accounts::create_namespace(&client, &format!("{ns}-{suffix}")).await?;
            }
            let values = values_for(toggle, &ns)?;
            lint(&values).await?;
            let rendered = template("kh", &ns, &values).await?;
            (toggle.check)(&rendered, &ns).context("the rendering")?;
            // Every document the API server serves is applied with strict validation. The
            // monitoring.coreos.com kinds (ServiceMonitor, PrometheusRule) are not served here:
            // the prometheus-operator's CRDs are not available on this machine. They are
            // checked above instead (the ServiceMonitor against the Service; the rules by
            // promtool, here and in the `alerts` tests).
            let applied = apply_rendered(&client, &rendered).await?;
            let expected = rendered
                .docs
                .iter()
                .filter(|d| !support::is_monitoring_coreos(d))
                .count();
            ensure!(
                applied.len() == expected,
                "applied {} of {expected}",
                applied.len()
            );
            anyhow::Ok(())
        }
        .await;
        if let Err(err) = outcome {
            failures.push(format!("{} (namespace {ns}): {err:#}", toggle.name));
        }
    }
    assert!(
        failures.is_empty(),
        "toggles that fail:\n{}",
        failures.join("\n")
    );
}

/// A check whose knob must be set (`""` in values.yaml) cannot be enabled without it: the
/// rendering fails naming the value to set.
#[tokio::test]
async fn a_check_enabled_without_a_knob_it_needs_fails_to_render_naming_it() {
    let mut required = Vec::new();
    for (name, entry) in values_checks().unwrap() {
        let env = entry["env"].as_object().cloned().unwrap_or_default();
        for (knob, _) in env.iter().filter(|(_, v)| *v == "") {
            required.push((name.clone(), knob.clone(), env.clone()));
        }
    }
    assert!(
        required
            .iter()
            .any(|(name, knob, _)| name == "http" && knob == "CHECK_URL"),
        "the http check needs CHECK_URL: {required:?}"
    );
    for (name, knob, env) in required {
        // Every other knob of the check that must be set is set: only `knob` is missing.
        let mut values = args(&["--set", &format!("checks.{name}.enabled=true")]);
        for (other, value) in &env {
            if other != &knob && value == "" {
                values.extend(args(&[
                    "--set",
                    &format!("checks.{name}.env.{other}={}", placeholder(other)),
                ]));
            }
        }
        let err = template("kh", "kuberhealthy", &values)
            .await
            .expect_err(&format!("{name} rendered without {knob}"));
        let expected =
            format!("checks.{name}.env.{knob} is required when checks.{name}.enabled is true");
        assert!(format!("{err:#}").contains(&expected), "{err:#}");
        // And with it, it renders.
        values.extend(args(&[
            "--set",
            &format!("checks.{name}.env.{knob}={}", placeholder(&knob)),
        ]));
        let rendered = template("kh", "kuberhealthy", &values).await.unwrap();
        rendered.named("KuberhealthyCheck", &name).unwrap();
    }
}

/// The pod the Deployment's template makes is admitted in a namespace that enforces the
/// restricted Pod Security Standard (the API server's PodSecurity admission, dry run); a
/// pod without `runAsNonRoot` is refused there, so the admission is really on.
#[tokio::test]
async fn the_pod_passes_the_restricted_pod_security_admission() {
    let ctx = cluster().await.context("chart-psa").await.unwrap();
    let client = ctx.client().await.unwrap();
    let restricted = format!("{}-restricted", ctx.namespace());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(restricted.clone()),
            labels: Some(
                [
                    ("pod-security.kubernetes.io/enforce", "restricted"),
                    ("pod-security.kubernetes.io/enforce-version", "latest"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let rendered = template("kh", &restricted, &every_check_on().unwrap())
        .await
        .unwrap();
    let template = &rendered.one("Deployment").unwrap()["spec"]["template"];
    let pod = |template: &Value| -> Pod {
        let mut pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "restricted-check", "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        }))
        .unwrap();
        pod.metadata.namespace = Some(restricted.clone());
        pod
    };
    let pods: Api<Pod> = Api::namespaced(client, &restricted);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    if let Err(err) = pods.create(&dry_run, &pod(template)).await {
        panic!("the chart's pod is refused under the restricted profile: {err}");
    }
    // So is the pod of every built-in check (the controller adds env, labels and
    // `restartPolicy: Never` to it, nothing that touches the profile).
    let checks = rendered.of_kind("KuberhealthyCheck");
    assert_eq!(checks.len(), chart_checks().unwrap().len());
    for check in checks {
        let name = str(&check["metadata"]["name"]);
        let spec = json!({"metadata": {"labels": {}}, "spec": check["spec"]["podSpec"]});
        if let Err(err) = pods.create(&dry_run, &pod(&spec)).await {
            panic!("the {name} check's pod is refused under the restricted profile: {err}");
        }
    }
    let mut weakened = template.clone();
    weakened["spec"]["securityContext"]
        .as_object_mut()
        .unwrap()
        .remove("runAsNonRoot");
    match pods.create(&dry_run, &pod(&weakened)).await {
        Err(kube::Error::Api(status)) => assert!(
            status.message.contains("restricted") && status.message.contains("runAsNonRoot"),
            "{}",
            status.message
        ),
        other => panic!("a pod without runAsNonRoot should be refused: {other:?}"),
    }
}

/// The ConfigMap's config file and the Deployment's env are accepted by `kuberhealthy run`
/// as it resolves its configuration (`--print-config`), with what the values say.
#[tokio::test]
async fn the_rendered_config_and_env_are_accepted_by_the_controller() {
    let rendered = template(
        "kh",
        "monitoring",
        &args(&[
            "--set",
            "targetNamespace=checks",
            "--set",
            "config.maxCompletedPodCount=9",
            "--set",
            "config.stateMetadata.cluster=prod-1",
            "--set",
            "config.identifyReportsBySourceIP=false",
        ]),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kuberhealthy.yaml");
    std::fs::write(
        &config,
        str(&rendered.one("ConfigMap").unwrap()["data"]["kuberhealthy.yaml"]),
    )
    .unwrap();
    let binary = kuberhealthy_e2e::binaries::kuberhealthy().unwrap();
    let mut cmd = std::process::Command::new(&binary);
    cmd.args(["run", "--print-config", "--config"])
        .arg(&config)
        .env_clear()
        .env("POD_NAME", "kh-kuberhealthy-abc")
        .env("POD_NAMESPACE", "monitoring");
    for var in rendered.container().unwrap()["env"].as_array().unwrap() {
        if let Some(value) = var["value"].as_str() {
            cmd.env(str(&var["name"]), value);
        }
    }
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "kuberhealthy refused the chart's configuration: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let settings: Value = serde_json::from_slice(&output.stdout).unwrap();
    let expect = [
        ("/listenAddress", json!("0.0.0.0:8080")),
        ("/targetNamespace", json!("checks")),
        (
            "/reportingUrl",
            json!("http://kh-kuberhealthy.monitoring.svc.cluster.local/externalCheckStatus"),
        ),
        ("/healthchecks", json!(true)),
        (
            "/healthcheckReportingUrl",
            json!("http://kh-kuberhealthy.monitoring.svc.cluster.local/check"),
        ),
        ("/lease/name", json!("kuberhealthy")),
        ("/lease/leaseDuration", json!("15s")),
        ("/maxCompletedPodCount", json!(9)),
        ("/stateMetadata", json!({"cluster": "prod-1"})),
        ("/identifyReportsBySourceIP", json!(false)),
    ];
    for (pointer, value) in expect {
        assert_eq!(
            settings.pointer(pointer),
            Some(&value),
            "{pointer} in {settings:#}"
        );
    }
}
