//! What the chart renders with its defaults.

use super::*;

pub(super) fn pod_spec(r: &Rendered) -> Result<&Value> {
    Ok(&r.one("Deployment")?["spec"]["template"]["spec"])
}

pub(super) fn pod_labels(r: &Rendered) -> Result<&serde_json::Map<String, Value>> {
    r.one("Deployment")?["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .context("the pod template has no labels")
}

/// Every `key: value` of `selector` is among `labels`.
pub(super) fn selects(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// What the defaults must render, for release `kh` in `ns`.
pub(super) fn check_defaults(r: &Rendered, ns: &str) -> Result<()> {
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
pub(super) const CONTROLLER_OBJECTS: [&str; 10] = [
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

/// The default rendering: the controller's objects, their settings and the default checks.
pub(super) const TOGGLES: &[Toggle] = &[Toggle {
    name: "defaults",
    values: &[],
    namespaces: &[],
    check: check_defaults,
}];
