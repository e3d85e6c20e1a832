//! Built-in check renderings: each enabled check's KuberhealthyCheck, ServiceAccount and rules.

use super::*;

/// The built-in checks the chart enables by default.
pub(super) const DEFAULT_CHECKS: [&str; 3] = ["dns-status", "pod-restarts", "pod-status"];

/// The entries of values.yaml's `checks`.
pub(super) fn values_checks() -> Result<serde_json::Map<String, Value>> {
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
pub(super) fn placeholder(knob: &str) -> &'static str {
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
pub(super) fn check_env(container: &Value, name: &str) -> Result<String> {
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
pub(super) fn check_builtin(
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

/// A check whose knob must be set (`""` in values.yaml) cannot be enabled without it: the
/// rendering fails naming the value to set.
#[tokio::test]
pub(super) async fn a_check_enabled_without_a_knob_it_needs_fails_to_render_naming_it() {
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

/// The built-in check toggles.
pub(super) const TOGGLES: &[Toggle] = &[
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
