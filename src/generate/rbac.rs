//! The permissions the controller needs, declared once. `kuberhealthy rbac` prints them as
//! manifests; `rbac/` holds that output, and the e2e suite runs the replicas with exactly
//! these permissions. No rule uses a wildcard.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::ObjectMeta;
use serde::Serialize;

pub use crate::api::access::Rule;

/// What the controller does in the namespaces it watches (all, or `TARGET_NAMESPACE`).
pub const CONTROLLER_RULES: &[Rule] = &[
    Rule {
        group: "comcast.github.io",
        resources: &["khchecks"],
        verbs: &["get", "list", "watch", "patch"],
        why: "the cache of checks; setting the run-now annotation for POST /api/run",
    },
    Rule {
        group: "comcast.github.io",
        resources: &["khjobs"],
        verbs: &["get", "list", "watch", "update", "delete"],
        why: "the cache of jobs; setting their phase; deleting completed jobs after maxKHJobAge",
    },
    Rule {
        group: "comcast.github.io",
        resources: &["khstates"],
        verbs: &["get", "list", "watch", "create", "update", "delete"],
        why: "persisting runs and results; removing the states of deleted checks",
    },
    Rule {
        group: "",
        resources: &["pods"],
        verbs: &["get", "list", "watch", "create", "delete"],
        why: "creating, watching and reaping checker pods; finding the run of a report",
    },
    Rule {
        group: "",
        resources: &["pods/log"],
        verbs: &["get"],
        why: "the last lines a checker printed, kept with a run that failed without reporting",
    },
    Rule {
        group: "events.k8s.io",
        resources: &["events"],
        verbs: &["create", "patch"],
        why: "Events on checks and jobs",
    },
];

/// What `POST /api/run` needs to authenticate and authorise its caller: reviews of their
/// token and of their access. Cluster-scoped, so only in the cluster-wide mode; with
/// `--target-namespace` (Roles only) `/api/run` answers 503 saying so.
pub const AUTH_RULES: &[Rule] = &[
    Rule {
        group: "authentication.k8s.io",
        resources: &["tokenreviews"],
        verbs: &["create"],
        why: "POST /api/run: who the caller's bearer token belongs to",
    },
    Rule {
        group: "authorization.k8s.io",
        resources: &["subjectaccessreviews"],
        verbs: &["create"],
        why: "POST /api/run: whether the caller may update the khcheck",
    },
];

/// What the controller does with Kuberhealthy v3's HealthChecks, in the same namespaces (the
/// chart grants them only while it installs the HealthCheck CRD).
pub const HEALTHCHECK_RULES: &[Rule] = &[
    Rule {
        group: "kuberhealthy.github.io",
        resources: &["healthchecks"],
        verbs: &["get", "list", "watch", "update"],
        why: "the cache of HealthChecks; releasing Kuberhealthy v3's finalizer when one is deleted",
    },
    Rule {
        group: "kuberhealthy.github.io",
        resources: &["healthchecks/status"],
        verbs: &["update"],
        why: "persisting runs and results in HealthChecks' status",
    },
];

/// Every rule of the controller in the namespaces it watches: v2's resources, then v3's.
pub fn all_controller_rules() -> Vec<Rule> {
    CONTROLLER_RULES
        .iter()
        .chain(HEALTHCHECK_RULES)
        .copied()
        .collect()
}

/// What the replicas do in their own namespace: elect a leader.
pub const LEASE_RULES: &[Rule] = &[Rule {
    group: "coordination.k8s.io",
    resources: &["leases"],
    verbs: &["get", "list", "watch", "create", "update"],
    why: "leader election and knowing the current leader",
}];

pub const NAME: &str = "kuberhealthy";

fn policy(rules: &[Rule]) -> Vec<PolicyRule> {
    rules
        .iter()
        .map(|r| PolicyRule {
            api_groups: Some(vec![r.group.to_string()]),
            resources: Some(r.resources.iter().map(|s| s.to_string()).collect()),
            verbs: r.verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .collect()
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_string),
        labels: Some([("app.kubernetes.io/name".to_string(), NAME.to_string())].into()),
        ..Default::default()
    }
}

fn subject(namespace: &str) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".into(),
        name: NAME.into(),
        namespace: Some(namespace.into()),
        ..Default::default()
    }]
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}

/// A manifest of any of the RBAC kinds, for printing.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Manifest {
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
}

/// The ServiceAccount `kuberhealthy` in `namespace` and its permissions: cluster-wide, or
/// only in `target_namespace` when set (Roles only).
pub fn controller_manifests(namespace: &str, target_namespace: Option<&str>) -> Vec<Manifest> {
    let mut out = vec![Manifest::ServiceAccount(ServiceAccount {
        metadata: meta(NAME, Some(namespace)),
        ..Default::default()
    })];
    match target_namespace {
        None => {
            let mut rules = policy(&all_controller_rules());
            rules.extend(policy(AUTH_RULES));
            out.push(Manifest::ClusterRole(ClusterRole {
                metadata: meta(NAME, None),
                rules: Some(rules),
                ..Default::default()
            }));
            out.push(Manifest::ClusterRoleBinding(ClusterRoleBinding {
                metadata: meta(NAME, None),
                role_ref: role_ref("ClusterRole", NAME),
                subjects: Some(subject(namespace)),
            }));
        }
        Some(target) => {
            out.push(Manifest::Role(Role {
                metadata: meta(NAME, Some(target)),
                rules: Some(policy(&all_controller_rules())),
            }));
            out.push(Manifest::RoleBinding(RoleBinding {
                metadata: meta(NAME, Some(target)),
                role_ref: role_ref("Role", NAME),
                subjects: Some(subject(namespace)),
            }));
        }
    }
    let lease = format!("{NAME}-lease");
    out.push(Manifest::Role(Role {
        metadata: meta(&lease, Some(namespace)),
        rules: Some(policy(LEASE_RULES)),
    }));
    out.push(Manifest::RoleBinding(RoleBinding {
        metadata: meta(&lease, Some(namespace)),
        role_ref: role_ref("Role", &lease),
        subjects: Some(subject(namespace)),
    }));
    out
}

/// The ServiceAccount a built-in check runs as.
pub fn check_service_account(check: &str) -> String {
    format!("khcheck-{check}")
}

/// The ServiceAccount `khcheck-<check>` in `namespace` (where the check's pods run) and the
/// check's rules: cluster-wide, or only in `target_namespace` when set (a Role). A check
/// without rules gets a ServiceAccount that does not mount a token.
pub fn check_manifests(
    check: &str,
    rules: &[Rule],
    namespace: &str,
    target_namespace: Option<&str>,
) -> Vec<Manifest> {
    let name = check_service_account(check);
    let subjects = Some(vec![Subject {
        kind: "ServiceAccount".into(),
        name: name.clone(),
        namespace: Some(namespace.into()),
        ..Default::default()
    }]);
    let mut out = vec![Manifest::ServiceAccount(ServiceAccount {
        metadata: meta(&name, Some(namespace)),
        automount_service_account_token: rules.is_empty().then_some(false),
        ..Default::default()
    })];
    if rules.is_empty() {
        return out;
    }
    match target_namespace {
        None => {
            out.push(Manifest::ClusterRole(ClusterRole {
                metadata: meta(&name, None),
                rules: Some(policy(rules)),
                ..Default::default()
            }));
            out.push(Manifest::ClusterRoleBinding(ClusterRoleBinding {
                metadata: meta(&name, None),
                role_ref: role_ref("ClusterRole", &name),
                subjects,
            }));
        }
        Some(target) => {
            out.push(Manifest::Role(Role {
                metadata: meta(&name, Some(target)),
                rules: Some(policy(rules)),
            }));
            out.push(Manifest::RoleBinding(RoleBinding {
                metadata: meta(&name, Some(target)),
                role_ref: role_ref("Role", &name),
                subjects,
            }));
        }
    }
    out
}

/// The rules alone as a YAML list, for the Helm chart's templates (`files/`).
pub fn rules_yaml(rules: &[Rule]) -> String {
    serde_saphyr::to_string(&policy(rules)).expect("RBAC rules serialize to YAML")
}

/// The rules a built-in check declares (none for `Access::Nothing`).
pub fn check_rules(check: &crate::checker::checks::Check) -> &'static [Rule] {
    match check.access {
        crate::checker::checks::Access::Nothing => &[],
        crate::checker::checks::Access::Namespaced(rules) => rules,
    }
}

/// The rules of every built-in check that has any, as a YAML map `check name -> rules`, for
/// the Helm chart's `files/check-rules.yaml`.
pub fn check_rules_yaml() -> String {
    let map: std::collections::BTreeMap<&str, Vec<PolicyRule>> = crate::checker::checks::CHECKS
        .iter()
        .filter(|c| !check_rules(c).is_empty())
        .map(|c| (c.name, policy(check_rules(c))))
        .collect();
    serde_saphyr::to_string(&map).expect("RBAC rules serialize to YAML")
}

/// The manifests as one multi-document YAML stream, with `apiVersion` and `kind`.
pub fn to_yaml(manifests: &[Manifest]) -> String {
    manifests
        .iter()
        .map(|m| {
            let (api_version, kind) = match m {
                Manifest::ServiceAccount(_) => ("v1", "ServiceAccount"),
                Manifest::ClusterRole(_) => ("rbac.authorization.k8s.io/v1", "ClusterRole"),
                Manifest::ClusterRoleBinding(_) => {
                    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
                }
                Manifest::Role(_) => ("rbac.authorization.k8s.io/v1", "Role"),
                Manifest::RoleBinding(_) => ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            };
            let mut value = serde_json::to_value(m).expect("RBAC manifests serialize");
            let object = value.as_object_mut().expect("a manifest is an object");
            object.insert("apiVersion".into(), api_version.into());
            object.insert("kind".into(), kind.into());
            format!(
                "---\n{}",
                serde_saphyr::to_string(&value).expect("RBAC manifests serialize to YAML")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rule_uses_a_wildcard() {
        for rule in all_controller_rules().iter().chain(LEASE_RULES) {
            assert!(!rule.group.contains('*'));
            assert!(
                rule.resources
                    .iter()
                    .chain(rule.verbs)
                    .all(|s| !s.contains('*')),
                "{rule:?}"
            );
        }
    }

    #[test]
    fn cluster_mode_uses_a_cluster_role_and_namespace_mode_roles_only() {
        let cluster = to_yaml(&controller_manifests("kuberhealthy", None));
        assert!(
            cluster.contains("kind: ClusterRole\n")
                && cluster.contains("kind: ClusterRoleBinding\n")
        );
        let scoped = to_yaml(&controller_manifests("kuberhealthy", Some("checks")));
        assert!(!scoped.contains("ClusterRole"), "{scoped}");
        assert!(scoped.contains("namespace: checks"));
        assert_eq!(scoped.lines().filter(|l| *l == "---").count(), 5);
    }

    #[test]
    fn a_check_gets_its_own_account_and_only_its_rules() {
        const RULES: &[Rule] = &[Rule {
            group: "",
            resources: &["pods"],
            verbs: &["list"],
            why: "test",
        }];
        let cluster = to_yaml(&check_manifests("pod-status", RULES, "kuberhealthy", None));
        // The ServiceAccount, the ClusterRole, its binding, the roleRef and the subject.
        assert_eq!(
            cluster.matches("name: khcheck-pod-status").count(),
            5,
            "{cluster}"
        );
        assert!(cluster.contains("kind: ClusterRoleBinding\n"));
        let scoped = to_yaml(&check_manifests(
            "pod-status",
            RULES,
            "kuberhealthy",
            Some("shop"),
        ));
        assert!(!scoped.contains("ClusterRole"), "{scoped}");
        assert!(scoped.contains("namespace: shop"));
        let none = to_yaml(&check_manifests("http", &[], "kuberhealthy", None));
        assert_eq!(none.lines().filter(|l| *l == "---").count(), 1, "{none}");
        assert!(
            none.contains("automountServiceAccountToken: false"),
            "{none}"
        );
    }

    #[test]
    fn the_chart_gets_the_rules_of_exactly_the_checks_that_have_some() {
        let map: std::collections::BTreeMap<String, Vec<PolicyRule>> =
            serde_saphyr::from_str(&check_rules_yaml()).unwrap();
        for check in crate::checker::checks::CHECKS {
            let rules = check_rules(check);
            if rules.is_empty() {
                assert!(!map.contains_key(check.name), "{}", check.name);
            } else {
                assert_eq!(map[check.name], policy(rules), "{}", check.name);
            }
        }
        assert_eq!(
            map.len(),
            crate::checker::checks::CHECKS
                .iter()
                .filter(|c| !check_rules(c).is_empty())
                .count()
        );
    }

    #[test]
    fn the_lease_role_stays_in_the_replicas_namespace() {
        let yaml = to_yaml(&controller_manifests("monitoring", Some("checks")));
        let lease_doc = yaml
            .split("---\n")
            .find(|d| d.contains("name: kuberhealthy-lease") && d.contains("kind: Role\n"))
            .unwrap();
        assert!(lease_doc.contains("namespace: monitoring"), "{lease_doc}");
        assert!(lease_doc.contains("leases"));
    }
}
