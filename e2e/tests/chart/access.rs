//! The chart installed cluster-wide; the replicas run with a token of its ServiceAccount and
//! nothing more, and run checks in three namespaces other than the release namespace.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use kube::Api;
use kuberhealthy_e2e::{TestCluster, metrics, wait_until};

use crate::render::{cluster_policy, every_check_off, lease_policy};
use crate::support::{
    self, Installed, args, can, chart_dir, forbidden_lines, helm, replica_logs, short_lease_values,
    sibling_namespace, spawn_replicas, wait_for_ok_state,
};
use crate::{OWN_CLUSTER, TIMEOUT, pod_runner_bin};

const RELEASE: &str = "khrbac";
const NAME: &str = "khrbac-kuberhealthy";

/// Permissions the controller must not have (verb, group, resource).
pub const DENIED: &[(&str, &str, &str)] = &[
    ("get", "", "secrets"),
    ("list", "", "secrets"),
    ("get", "", "configmaps"),
    ("update", "", "pods"),
    ("patch", "", "pods"),
    ("create", "", "pods/exec"),
    ("create", "apps", "deployments"),
    ("create", "comcast.github.io", "khchecks"),
    ("update", "comcast.github.io", "khchecks"),
    ("delete", "comcast.github.io", "khchecks"),
    ("create", "rbac.authorization.k8s.io", "clusterroles"),
    ("create", "rbac.authorization.k8s.io", "rolebindings"),
    ("escalate", "rbac.authorization.k8s.io", "roles"),
    ("impersonate", "", "serviceaccounts"),
    ("list", "", "nodes"),
];

#[tokio::test]
async fn cluster_wide_install_runs_checks_in_three_namespaces_as_the_charts_service_account() {
    let _turn = OWN_CLUSTER.lock().await;
    // A control plane of its own: cluster-wide replicas would run every other test's checks.
    let cluster = TestCluster::start(pod_runner_bin()).await.unwrap();
    let ctx = cluster.context("chart-access").await.unwrap();
    let ns = ctx.namespace().to_string();
    let admin = ctx.client().await.unwrap();
    let first = ctx.free_address().unwrap();

    let mut install = args(&["install", RELEASE]);
    install.push(chart_dir().display().to_string());
    install.extend(args(&[
        "--namespace",
        &ns,
        "--set",
        &format!("reportingURL=http://{first}/externalCheckStatus"),
    ]));
    install.extend(short_lease_values());
    // The chart's built-in checks run `/kuberhealthy check <name>` from the controller's
    // image; the pod runner here runs container commands as local processes, where
    // `/kuberhealthy` does not exist, so their pods would only fail. This test is about the
    // controller and its own checks: they are off (render.rs and drift.rs cover them).
    install.extend(every_check_off().unwrap());
    helm(&install, Some(&ctx.endpoint().admin_kubeconfig))
        .await
        .unwrap();

    // The token is the chart's ServiceAccount's, minted through the TokenRequest API.
    let installed = Installed::read(&admin, &ns, NAME, ctx.log_dir())
        .await
        .unwrap();
    assert_eq!(installed.service_account, NAME);
    let account = Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .get(NAME)
        .await
        .expect("the chart creates the ServiceAccount");
    assert_eq!(
        account.metadata.labels.unwrap_or_default()["app.kubernetes.io/managed-by"],
        "Helm"
    );
    let kubeconfig = ctx.service_account_kubeconfig_path(NAME);
    ctx.endpoint()
        .service_account_kubeconfig(&ns, NAME, &kubeconfig)
        .await
        .unwrap();
    let as_controller = kuberhealthy_e2e::kubeconfig::client(&kubeconfig)
        .await
        .unwrap();

    // Three namespaces other than the release namespace, one check each.
    let mut check_namespaces = Vec::new();
    for suffix in ["a", "b", "c"] {
        let check_ns = sibling_namespace(&ctx, suffix).await.unwrap();
        ctx.apply_yaml(&support::passing_check("probe", &check_ns, "10m"))
            .await
            .unwrap();
        check_namespaces.push(check_ns);
    }

    let replicas = spawn_replicas(&installed, &kubeconfig, ctx.log_dir(), first, 3).unwrap();
    let names: BTreeSet<String> = replicas.iter().map(|r| r.name().to_string()).collect();

    let outcome = async {
        for check_ns in &check_namespaces {
            let state = wait_for_ok_state(&admin, check_ns, "probe").await?;
            let authority = state["spec"]["AuthoritativePod"]
                .as_str()
                .unwrap_or_default();
            anyhow::ensure!(
                names.contains(authority),
                "khstate {check_ns}/probe was recorded by {authority:?}, not a replica: {state}"
            );
        }
        // Every replica's status page shows the three checks passing, and one leader.
        let filter = format!("/?namespace={}", check_namespaces.join(","));
        for replica in &replicas {
            let page = wait_until(
                &format!(
                    "{}'s status page to show three passing checks",
                    replica.name()
                ),
                TIMEOUT,
                || async {
                    let page = support::get_json(replica, &filter).await?;
                    let details = page["CheckDetails"]
                        .as_object()
                        .cloned()
                        .unwrap_or_default();
                    Ok((page["OK"] == true
                        && details.len() == 3
                        && details.values().all(|d| d["OK"] == true))
                    .then_some(page))
                },
            )
            .await?;
            let master = page["CurrentMaster"].as_str().unwrap_or_default();
            anyhow::ensure!(names.contains(master), "CurrentMaster {master:?}: {page}");
        }
        let mut leaders = 0.0;
        for replica in &replicas {
            let text = kuberhealthy_e2e::http::get(replica.addr(), "/metrics")
                .await?
                .body;
            leaders += metrics::sum(
                &metrics::parse(&text)?,
                "kuberhealthy_controller_leader",
                &[],
            );
        }
        anyhow::ensure!(leaders == 1.0, "{leaders} replicas say they lead");
        anyhow::Ok(())
    }
    .await;
    if let Err(err) = outcome {
        panic!("{err:#}\n{}", replica_logs(&replicas));
    }
    let refused = forbidden_lines(&replicas);
    assert!(
        refused.is_empty(),
        "the API server refused the controller something:\n{}",
        refused.join("\n")
    );

    // Every (verb, resource) the code declares is allowed: the controller rules in every
    // namespace (list/watch across all of them too), the Lease rules in the release namespace.
    let mut missing = Vec::new();
    for rule in &kuberhealthy::generate::rbac::all_controller_rules() {
        for resource in rule.resources {
            for verb in rule.verbs {
                for where_ in ["", check_namespaces[0].as_str()] {
                    if !can(&as_controller, verb, rule.group, resource, where_)
                        .await
                        .unwrap()
                    {
                        missing.push(format!("{verb} {}/{resource} in {where_:?}", rule.group));
                    }
                }
            }
        }
    }
    // /api/run's reviews are cluster-scoped.
    for rule in kuberhealthy::generate::rbac::AUTH_RULES {
        for resource in rule.resources {
            for verb in rule.verbs {
                if !can(&as_controller, verb, rule.group, resource, "")
                    .await
                    .unwrap()
                {
                    missing.push(format!("{verb} {}/{resource} (cluster-scoped)", rule.group));
                }
            }
        }
    }
    for rule in kuberhealthy::generate::rbac::LEASE_RULES {
        for resource in rule.resources {
            for verb in rule.verbs {
                if !can(&as_controller, verb, rule.group, resource, &ns)
                    .await
                    .unwrap()
                {
                    missing.push(format!("{verb} {}/{resource} in {ns}", rule.group));
                }
                if can(
                    &as_controller,
                    verb,
                    rule.group,
                    resource,
                    &check_namespaces[0],
                )
                .await
                .unwrap()
                {
                    missing.push(format!(
                        "{verb} {}/{resource} is allowed outside the release namespace",
                        rule.group
                    ));
                }
            }
        }
    }
    assert!(missing.is_empty(), "declared but not granted: {missing:?}");
    let mut granted = Vec::new();
    for (verb, group, resource) in DENIED {
        for where_ in ["", check_namespaces[0].as_str(), ns.as_str()] {
            if can(&as_controller, verb, group, resource, where_)
                .await
                .unwrap()
            {
                granted.push(format!("{verb} {group}/{resource} in {where_:?}"));
            }
        }
    }
    assert!(granted.is_empty(), "granted but never needed: {granted:?}");

    // What the API server holds: the code's rules, no wildcard.
    let cluster_role = Api::<ClusterRole>::all(admin.clone())
        .get(NAME)
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&cluster_role.rules).unwrap(),
        cluster_policy()
    );
    let lease = Api::<Role>::namespaced(admin.clone(), &ns)
        .get(&format!("{NAME}-lease"))
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(&lease.rules).unwrap(), lease_policy());
    for rules in [&cluster_role.rules, &lease.rules] {
        let text = serde_json::to_string(rules).unwrap();
        assert!(!text.contains('*'), "a wildcard in {text}");
    }
    // And in every rendering of the chart's RBAC.
    for values in [vec![], args(&["--set", "targetNamespace=checks"])] {
        let rendered = support::template("kh", "kuberhealthy", &values)
            .await
            .unwrap();
        assert_eq!(
            support::wildcards(&rendered),
            Vec::<String>::new(),
            "{values:?}"
        );
        assert!(
            rendered
                .docs
                .iter()
                .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
                .all(|d| d["rules"].as_array().is_some_and(|r| !r.is_empty())),
            "every role has rules"
        );
    }
}
