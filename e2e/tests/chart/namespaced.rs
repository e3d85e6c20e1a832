//! The chart installed with `targetNamespace`: Roles only; replicas with the chart's
//! `TARGET_NAMESPACE` run the checks there and never schedule a check elsewhere.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use kuberhealthy_e2e::{metrics, wait_until};

use crate::render::{controller_policy, every_check_off};
use crate::support::{
    self, Installed, args, can, chart_dir, forbidden_lines, helm, replica_logs, short_lease_values,
    sibling_namespace, spawn_replicas, wait_for_ok_state,
};
use crate::{TIMEOUT, cluster};

const RELEASE: &str = "khns";
const NAME: &str = "khns-kuberhealthy";

#[tokio::test]
async fn namespace_scoped_install_uses_roles_only_and_runs_checks_only_there() {
    let ctx = cluster().await.context("chart-namespaced").await.unwrap();
    let ns = ctx.namespace().to_string();
    let admin = ctx.client().await.unwrap();
    let target = sibling_namespace(&ctx, "checks").await.unwrap();
    let other = sibling_namespace(&ctx, "other").await.unwrap();
    let first = ctx.free_address().unwrap();

    // The rendering has no cluster-scoped RBAC at all.
    let mut values = args(&[
        "--set",
        &format!("targetNamespace={target}"),
        "--set",
        &format!("reportingURL=http://{first}/externalCheckStatus"),
    ]);
    values.extend(short_lease_values());
    // The chart's built-in checks run `/kuberhealthy check <name>` from the controller's
    // image; the pod runner here runs container commands as local processes, where
    // `/kuberhealthy` does not exist, so their pods would only fail. This test is about the
    // controller and its own checks: they are off (render.rs and drift.rs cover them).
    values.extend(every_check_off().unwrap());
    let rendered = support::template(RELEASE, &ns, &values).await.unwrap();
    assert!(
        rendered.of_kind("ClusterRole").is_empty()
            && rendered.of_kind("ClusterRoleBinding").is_empty(),
        "{:?}",
        rendered.kinds()
    );

    let mut install = args(&["install", RELEASE]);
    install.push(chart_dir().display().to_string());
    install.extend(args(&["--namespace", &ns]));
    install.extend(values);
    helm(&install, Some(&ctx.endpoint().admin_kubeconfig))
        .await
        .unwrap();

    // Installed: the controller's Role in the target namespace, the Lease Role in the release
    // namespace, and nothing cluster-scoped.
    let by_release = ListParams::default().labels(&format!("app.kubernetes.io/instance={RELEASE}"));
    let cluster_roles = Api::<ClusterRole>::all(admin.clone())
        .list(&by_release)
        .await
        .unwrap();
    let cluster_bindings = Api::<ClusterRoleBinding>::all(admin.clone())
        .list(&by_release)
        .await
        .unwrap();
    assert!(
        cluster_roles.items.is_empty() && cluster_bindings.items.is_empty(),
        "namespace-scoped mode installed cluster-scoped RBAC"
    );
    let role = Api::<Role>::namespaced(admin.clone(), &target)
        .get(NAME)
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&role.rules).unwrap(),
        controller_policy()
    );
    Api::<RoleBinding>::namespaced(admin.clone(), &target)
        .get(NAME)
        .await
        .unwrap();
    Api::<Role>::namespaced(admin.clone(), &ns)
        .get(&format!("{NAME}-lease"))
        .await
        .unwrap();

    // The check outside the target namespace exists before the replicas start, so a
    // controller that saw it would have run it at once, like the one inside.
    ctx.apply_yaml(&support::passing_check("outside", &other, "10m"))
        .await
        .unwrap();
    ctx.apply_yaml(&support::passing_check("inside", &target, "10m"))
        .await
        .unwrap();

    let installed = Installed::read(&admin, &ns, NAME, ctx.log_dir())
        .await
        .unwrap();
    let kubeconfig = ctx.service_account_kubeconfig_path(NAME);
    ctx.endpoint()
        .service_account_kubeconfig(&ns, NAME, &kubeconfig)
        .await
        .unwrap();
    let as_controller = kuberhealthy_e2e::kubeconfig::client(&kubeconfig)
        .await
        .unwrap();
    let replicas = spawn_replicas(&installed, &kubeconfig, ctx.log_dir(), first, 3).unwrap();

    let outcome = async {
        wait_for_ok_state(&admin, &target, "inside").await?;
        for replica in &replicas {
            let page = wait_until(
                &format!("{}'s status page to show the check", replica.name()),
                TIMEOUT,
                || async {
                    let page = support::get_json(replica, "/").await?;
                    Ok(
                        (page["CheckDetails"][format!("{target}/inside")]["OK"] == true)
                            .then_some(page),
                    )
                },
            )
            .await?;
            let keys: Vec<&String> = page["CheckDetails"].as_object().unwrap().keys().collect();
            anyhow::ensure!(
                keys == [&format!("{target}/inside")],
                "{} shows checks outside {target}: {keys:?}",
                replica.name()
            );
        }
        // The leader started a run for the inside check, and none for the outside one.
        let mut started_inside = 0.0;
        for replica in &replicas {
            let samples = metrics::parse(
                &kuberhealthy_e2e::http::get(replica.addr(), "/metrics")
                    .await?
                    .body,
            )?;
            started_inside += metrics::sum(
                &samples,
                "kuberhealthy_runs_started_total",
                &[("namespace", &target)],
            );
            let outside = metrics::sum(
                &samples,
                "kuberhealthy_runs_started_total",
                &[("namespace", &other)],
            );
            anyhow::ensure!(
                outside == 0.0,
                "{} started {outside} runs in {other}",
                replica.name()
            );
        }
        anyhow::ensure!(started_inside >= 1.0, "no run started in {target}");
        anyhow::Ok(())
    }
    .await;
    if let Err(err) = outcome {
        panic!("{err:#}\n{}", replica_logs(&replicas));
    }
    let states: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &other, &support::khstates());
    assert!(
        states
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "a khstate was written in {other}"
    );
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &other);
    assert!(
        pods.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "a checker pod was created in {other}"
    );
    let refused = forbidden_lines(&replicas);
    assert!(
        refused.is_empty(),
        "the controller tried something its Roles do not allow:\n{}",
        refused.join("\n")
    );

    // The ServiceAccount can do its work in the target namespace only.
    for rule in &kuberhealthy::generate::rbac::all_controller_rules() {
        for resource in rule.resources {
            for verb in rule.verbs {
                assert!(
                    can(&as_controller, verb, rule.group, resource, &target)
                        .await
                        .unwrap(),
                    "{verb} {}/{resource} in {target} must be allowed",
                    rule.group
                );
                for elsewhere in [other.as_str(), ""] {
                    assert!(
                        !can(&as_controller, verb, rule.group, resource, elsewhere)
                            .await
                            .unwrap(),
                        "{verb} {}/{resource} in {elsewhere:?} must be denied",
                        rule.group
                    );
                }
            }
        }
    }
}
