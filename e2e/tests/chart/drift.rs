//! `rbac/`, the chart's rendered RBAC and the code (`kuberhealthy::rbac`) cannot disagree.
//! The chart installed as release `kuberhealthy` in namespace `kuberhealthy` renders the same
//! ServiceAccount, roles, bindings and rules as `kuberhealthy rbac` prints and `rbac/` holds,
//! cluster-wide and with `targetNamespace`. `make crds-check` (CI) runs these tests.

use anyhow::{Context, Result};
use kuberhealthy::rbac;
use kuberhealthy_e2e::session::workspace_root;
use serde_json::{Value, json};

use crate::support::{Rendered, args, chart_dir, str, template};

const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// The RBAC objects of a YAML stream, reduced to what grants access (labels and the like
/// differ by design: the chart adds Helm's), sorted.
fn rbac_objects(docs: &[Value]) -> Vec<Value> {
    let mut objects: Vec<Value> = docs
        .iter()
        .filter(|d| RBAC_KINDS.contains(&str(&d["kind"])))
        .map(|d| {
            json!({
                "kind": d["kind"],
                "name": d["metadata"]["name"],
                "namespace": d["metadata"]["namespace"],
                "rules": d["rules"],
                "roleRef": d["roleRef"],
                "subjects": d["subjects"],
            })
        })
        .collect();
    objects.sort_by_key(|o| o.to_string());
    objects
}

fn parse(text: &str) -> Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

async fn compare(target: Option<&str>, committed: &str) -> Result<()> {
    let mut values = Vec::new();
    if let Some(target) = target {
        values = args(&["--set", &format!("targetNamespace={target}")]);
    }
    let chart: Rendered = template("kuberhealthy", "kuberhealthy", &values).await?;
    let chart = rbac_objects(&chart.docs);
    let code = rbac_objects(&parse(&rbac::to_yaml(&rbac::controller_manifests(
        "kuberhealthy",
        target,
    )))?);
    let path = workspace_root().join(committed);
    let file = rbac_objects(&parse(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )?);
    anyhow::ensure!(
        code == file,
        "{committed} is stale (run `make rbac`):\ncode: {code:#?}\nfile: {file:#?}"
    );
    anyhow::ensure!(
        chart == code,
        "the chart's RBAC differs from `kuberhealthy rbac`:\nchart: {chart:#?}\ncode: {code:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn cluster_wide_rbac_is_the_same_in_the_chart_rbac_dir_and_code() {
    compare(None, "rbac/kuberhealthy.yaml").await.unwrap();
}

#[tokio::test]
async fn namespace_scoped_rbac_is_the_same_in_the_chart_rbac_dir_and_code() {
    compare(Some("kuberhealthy"), "rbac/kuberhealthy-namespaced.yaml")
        .await
        .unwrap();
}

#[test]
fn the_charts_rule_files_are_the_codes() {
    for (file, rules) in [
        ("files/controller-rules.yaml", rbac::CONTROLLER_RULES),
        ("files/lease-rules.yaml", rbac::LEASE_RULES),
    ] {
        let text = std::fs::read_to_string(chart_dir().join(file)).unwrap();
        assert_eq!(
            text,
            rbac::rules_yaml(rules),
            "charts/kuberhealthy/{file} is stale: run `make rbac`"
        );
    }
}
