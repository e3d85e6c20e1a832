//! `helm install`, `helm upgrade` and `helm uninstall` against the local API server.

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use kuberhealthy_e2e::wait_until;
use serde_json::Value;

use crate::support::{args, chart_dir, helm};
use crate::{TIMEOUT, cluster};

const RELEASE: &str = "khlife";
const NAME: &str = "khlife-kuberhealthy";

async fn status(ns: &str, kubeconfig: &std::path::Path) -> Result<Value> {
    let out = helm(
        &args(&["status", RELEASE, "--namespace", ns, "--output", "json"]),
        Some(kubeconfig),
    )
    .await?;
    Ok(serde_json::from_str(&out)?)
}

/// Which of the release's objects exist, as `Kind/name`.
async fn present(client: &Client, ns: &str) -> Result<Vec<String>> {
    let mut found = Vec::new();
    macro_rules! probe {
        ($kind:ty, $api:expr, $name:expr) => {
            let api: Api<$kind> = $api;
            if api.get_opt($name).await?.is_some() {
                found.push(format!("{}/{}", stringify!($kind), $name));
            }
        };
    }
    probe!(Deployment, Api::namespaced(client.clone(), ns), NAME);
    probe!(ConfigMap, Api::namespaced(client.clone(), ns), NAME);
    probe!(Service, Api::namespaced(client.clone(), ns), NAME);
    probe!(ServiceAccount, Api::namespaced(client.clone(), ns), NAME);
    probe!(
        PodDisruptionBudget,
        Api::namespaced(client.clone(), ns),
        NAME
    );
    probe!(
        Role,
        Api::namespaced(client.clone(), ns),
        &format!("{NAME}-lease")
    );
    probe!(
        RoleBinding,
        Api::namespaced(client.clone(), ns),
        &format!("{NAME}-lease")
    );
    probe!(ClusterRole, Api::all(client.clone()), NAME);
    probe!(ClusterRoleBinding, Api::all(client.clone()), NAME);
    Ok(found)
}

#[tokio::test]
async fn install_upgrade_and_uninstall_against_the_api_server() {
    let ctx = cluster().await.context("chart-lifecycle").await.unwrap();
    let ns = ctx.namespace().to_string();
    let kubeconfig = ctx.endpoint().admin_kubeconfig.clone();
    let client = ctx.client().await.unwrap();
    let chart = chart_dir().display().to_string();

    // Install. No --wait: without a kube-controller-manager, Deployments never get pods here.
    let out = helm(
        &args(&["install", RELEASE, &chart, "--namespace", &ns]),
        Some(&kubeconfig),
    )
    .await
    .unwrap();
    assert!(out.contains("STATUS: deployed"), "{out}");
    let first = status(&ns, &kubeconfig).await.unwrap();
    assert_eq!(first["info"]["status"], "deployed", "{first}");
    assert_eq!(first["version"], 1);
    let all = vec![
        format!("Deployment/{NAME}"),
        format!("ConfigMap/{NAME}"),
        format!("Service/{NAME}"),
        format!("ServiceAccount/{NAME}"),
        format!("PodDisruptionBudget/{NAME}"),
        format!("Role/{NAME}-lease"),
        format!("RoleBinding/{NAME}-lease"),
        format!("ClusterRole/{NAME}"),
        format!("ClusterRoleBinding/{NAME}"),
    ];
    assert_eq!(present(&client, &ns).await.unwrap(), all);
    // The CRDs come from the chart's crds/ (or were already there: helm skips existing ones).
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // The HealthCheck CRD comes from a template: this release's, or another release's
    // left to it (the chart tests install several releases in one cluster).
    for crd in [
        "khchecks.comcast.github.io",
        "khjobs.comcast.github.io",
        "khstates.comcast.github.io",
        "healthchecks.kuberhealthy.github.io",
    ] {
        assert!(crds.get_opt(crd).await.unwrap().is_some(), "CRD {crd}");
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let before = deployments.get(NAME).await.unwrap();
    assert_eq!(before.spec.as_ref().unwrap().replicas, Some(2));
    let checksum = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()["checksum/config"]
            .clone()
    };

    // Upgrade: more replicas, a config change, and the PDB turned off.
    let out = helm(
        &args(&[
            "upgrade",
            RELEASE,
            &chart,
            "--namespace",
            &ns,
            "--reuse-values",
            "--set",
            "replicas=3",
            "--set",
            "config.maxCompletedPodCount=7",
            "--set",
            "podDisruptionBudget.enabled=false",
        ]),
        Some(&kubeconfig),
    )
    .await
    .unwrap();
    assert!(out.contains("has been upgraded"), "{out}");
    let second = status(&ns, &kubeconfig).await.unwrap();
    assert_eq!(second["info"]["status"], "deployed", "{second}");
    assert_eq!(second["version"], 2);
    let after = deployments.get(NAME).await.unwrap();
    assert_eq!(after.spec.as_ref().unwrap().replicas, Some(3));
    assert_ne!(
        checksum(&before),
        checksum(&after),
        "a config change must roll the pods"
    );
    let config = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get(NAME)
        .await
        .unwrap();
    let text = &config.data.unwrap()["kuberhealthy.yaml"];
    assert!(text.contains("maxCompletedPodCount: 7"), "{text}");
    let without_pdb: Vec<String> = all
        .iter()
        .filter(|o| !o.starts_with("PodDisruptionBudget/"))
        .cloned()
        .collect();
    assert_eq!(present(&client, &ns).await.unwrap(), without_pdb);

    // Uninstall: every object of the release goes; the CRDs stay (Helm never deletes crds/,
    // and the HealthCheck CRD is marked to be kept).
    let out = helm(
        &args(&["uninstall", RELEASE, "--namespace", &ns]),
        Some(&kubeconfig),
    )
    .await
    .unwrap();
    assert!(out.contains("uninstalled"), "{out}");
    let gone = wait_until("the release's objects to be gone", TIMEOUT, || async {
        let left = present(&client, &ns).await?;
        Ok(left.is_empty().then_some(()))
    })
    .await;
    if let Err(err) = gone {
        panic!("{err:#}; still there: {:?}", present(&client, &ns).await);
    }
    let err = status(&ns, &kubeconfig).await.unwrap_err();
    assert!(format!("{err:#}").contains("not found"), "{err:#}");
    // The HealthCheck CRD is kept too (helm.sh/resource-policy: keep): HealthChecks survive.
    for crd in [
        "khchecks.comcast.github.io",
        "khstates.comcast.github.io",
        "healthchecks.kuberhealthy.github.io",
    ] {
        assert!(
            crds.get_opt(crd).await.unwrap().is_some(),
            "CRD {crd} must stay"
        );
    }
}
