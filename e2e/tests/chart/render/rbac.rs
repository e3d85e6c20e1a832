//! RBAC renderings: the controller's rules cluster-wide or in `targetNamespace`, and the ServiceAccount.

use super::*;

/// A built-in check's RBAC object.
pub(super) fn is_check_object(doc: &Value) -> bool {
    str(&doc["metadata"]["name"]).starts_with("khcheck-")
}

/// Bindings name `account` in `ns`; the controller's rules are in a ClusterRole (no
/// target) or in a Role in `target`; the Lease Role is in `ns`.
pub(super) fn check_rbac(
    r: &Rendered,
    ns: &str,
    account: &str,
    target: Option<&str>,
) -> Result<()> {
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

/// The RBAC toggles.
pub(super) const TOGGLES: &[Toggle] = &[
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
];
