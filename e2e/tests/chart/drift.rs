//! `rbac/`, the chart's rendered RBAC and the code (`kuberhealthy::generate::rbac`) cannot disagree.
//! The chart installed as release `kuberhealthy` in namespace `kuberhealthy` renders the same
//! ServiceAccount, roles, bindings and rules as `kuberhealthy rbac` prints and `rbac/` holds,
//! cluster-wide and with `targetNamespace`; so does every built-in check's ServiceAccount
//! and RBAC, which the chart renders from `files/check-rules.yaml` (`kuberhealthy rbac
//! --rules checks`) and `rbac/checks/` holds. `make crds-check` (CI) runs these tests.

use anyhow::{Context, Result};
use kuberhealthy::generate::rbac;
use kuberhealthy_e2e::session::workspace_root;
use serde_json::{Value, json};

use crate::render::{chart_checks, every_check_off, every_check_on};
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
                "automountServiceAccountToken": d["automountServiceAccountToken"],
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
    // The controller's own RBAC: the built-in checks' are compared below.
    let mut values = every_check_off()?;
    if let Some(target) = target {
        values.extend(args(&["--set", &format!("targetNamespace={target}")]));
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

/// Every built-in check enabled, cluster-wide (`target` None: objects of checks in namespace
/// `kuberhealthy`) or with `targetNamespace`: each check's ServiceAccount, roles and bindings
/// are what `kuberhealthy rbac --check NAME --namespace <the checks' namespace>
/// [--target-namespace NS]` prints; cluster-wide, `rbac/checks/NAME.yaml` holds the same.
async fn compare_checks(target: Option<&str>) -> Result<()> {
    let mut code_names: Vec<&str> = kuberhealthy::checker::checks::names().collect();
    code_names.sort();
    let chart_names = chart_checks()?;
    anyhow::ensure!(
        chart_names == code_names,
        "values.yaml's `checks` must have an entry for every built-in check and no other:\n\
         values.yaml: {chart_names:?}\ncode: {code_names:?}"
    );
    let mut values = every_check_on()?;
    if let Some(target) = target {
        values.extend(args(&["--set", &format!("targetNamespace={target}")]));
    }
    let chart = template("kuberhealthy", "kuberhealthy", &values).await?;
    // The checks' pods run where their KuberhealthyChecks are: where the controller watches.
    let namespace = target.unwrap_or("kuberhealthy");
    let mut failures = Vec::new();
    for name in code_names {
        let check = kuberhealthy::checker::checks::find(name).expect("a built-in check");
        let account = rbac::check_service_account(name);
        let ours: Vec<Value> = chart
            .docs
            .iter()
            .filter(|d| d["metadata"]["name"] == account.as_str())
            .cloned()
            .collect();
        let rendered = rbac_objects(&ours);
        let code = rbac_objects(&parse(&rbac::to_yaml(&rbac::check_manifests(
            name,
            rbac::check_rules(check),
            namespace,
            target,
        )))?);
        if rendered != code {
            failures.push(format!(
                "{name}: the chart's RBAC differs from `kuberhealthy rbac --check {name}`:\n\
                 chart: {rendered:#?}\ncode: {code:#?}"
            ));
        }
        if target.is_none() {
            let path = workspace_root().join(format!("rbac/checks/{name}.yaml"));
            let file = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (run `make rbac`)", path.display()))
                .and_then(|text| parse(&text));
            match file {
                Ok(file) if rbac_objects(&file) == code => {}
                Ok(file) => failures.push(format!(
                    "{} is stale (run `make rbac`):\nfile: {:#?}\ncode: {code:#?}",
                    path.display(),
                    rbac_objects(&file)
                )),
                Err(err) => failures.push(format!("{err:#}")),
            }
        }
    }
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test]
async fn cluster_wide_check_rbac_is_the_same_in_the_chart_rbac_dir_and_code() {
    compare_checks(None).await.unwrap();
}

#[tokio::test]
async fn namespace_scoped_check_rbac_is_the_same_in_the_chart_and_code() {
    compare_checks(Some("checks")).await.unwrap();
}

#[test]
fn the_charts_check_rules_file_is_the_codes() {
    let text = std::fs::read_to_string(chart_dir().join("files/check-rules.yaml")).unwrap();
    assert_eq!(
        text,
        rbac::check_rules_yaml(),
        "charts/kuberhealthy/files/check-rules.yaml is stale: run `make rbac`"
    );
}

#[test]
fn the_charts_rule_files_are_the_codes() {
    for (file, rules) in [
        ("files/controller-rules.yaml", rbac::CONTROLLER_RULES),
        ("files/auth-rules.yaml", rbac::AUTH_RULES),
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
