//! The CRDs and the Kuberhealthy v2 fixture manifests, on a real API server.

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::{accounts, manifests};

use crate::{TIMEOUT, cluster};

async fn install_crds(client: &Client) -> Vec<CustomResourceDefinition> {
    let path = workspace_root().join("charts/kuberhealthy/crds/crds.yaml");
    let yaml = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    manifests::install_crds(client, &yaml, TIMEOUT)
        .await
        .unwrap()
}

#[tokio::test]
async fn crds_become_established() {
    let ctx = cluster().await.context("crds").await.unwrap();
    let crds = install_crds(&ctx.client().await.unwrap()).await;
    let names: BTreeSet<String> = crds
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    let expected: BTreeSet<String> = ["khchecks", "khjobs", "khstates"]
        .iter()
        .map(|n| format!("{n}.comcast.github.io"))
        .collect();
    assert_eq!(names, expected);
    for crd in &crds {
        assert_eq!(crd.spec.scope, "Namespaced", "{:?}", crd.metadata.name);
        assert!(
            crd.spec
                .versions
                .iter()
                .any(|v| v.name == "v1" && v.served && v.storage),
            "{:?}",
            crd.metadata.name
        );
    }
}

#[tokio::test]
async fn v2_fixtures_apply_with_strict_validation() {
    let ctx = cluster().await.context("fixtures").await.unwrap();
    let client = ctx.client().await.unwrap();
    install_crds(&client).await;
    let dir = workspace_root().join("tests/fixtures/v2");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());

    let mut applied = 0;
    for file in &files {
        let yaml = std::fs::read_to_string(file).unwrap();
        // Fixtures that name a namespace (v2 used `kuberhealthy`) need it to exist.
        for object in manifests::parse(&yaml).unwrap() {
            if let Some(namespace) = &object.metadata.namespace {
                accounts::create_namespace(&client, namespace)
                    .await
                    .unwrap();
            }
        }
        let objects = manifests::apply_file(&client, file, Some(ctx.namespace()))
            .await
            .unwrap_or_else(|e| panic!("{} was rejected: {e:#}", file.display()));
        for object in &objects {
            let kind = object
                .types
                .as_ref()
                .map(|t| t.kind.as_str())
                .unwrap_or_default();
            assert!(
                ["KuberhealthyCheck", "KuberhealthyJob", "KuberhealthyState"].contains(&kind),
                "{}: unexpected kind {kind}",
                file.display()
            );
            assert!(
                object.metadata.uid.is_some(),
                "{}: not stored",
                file.display()
            );
        }
        applied += objects.len();
    }
    assert!(
        applied >= files.len(),
        "applied {applied} objects from {} files",
        files.len()
    );
}

#[tokio::test]
async fn check_without_pod_spec_is_rejected() {
    let ctx = cluster().await.context("invalid-check").await.unwrap();
    install_crds(&ctx.client().await.unwrap()).await;
    let err = ctx
        .apply_yaml(
            r#"
apiVersion: comcast.github.io/v1
kind: KuberhealthyCheck
metadata:
  name: no-pod-spec
spec:
  runInterval: 5m
  timeout: 2m
"#,
        )
        .await
        .expect_err("a KuberhealthyCheck without podSpec must be rejected");
    let message = format!("{err:#}");
    assert!(
        message.contains("spec.podSpec: Required value"),
        "{message}"
    );
}

#[tokio::test]
async fn unknown_fields_are_rejected_by_strict_validation() {
    let ctx = cluster().await.context("strict").await.unwrap();
    install_crds(&ctx.client().await.unwrap()).await;
    let err = ctx
        .apply_yaml(
            r#"
apiVersion: comcast.github.io/v1
kind: KuberhealthyCheck
metadata:
  name: typo
spec:
  runInterval: 5m
  timeout: 2m
  runIntervall: 5m
  podSpec:
    containers:
    - name: main
      image: example.invalid/checker:v1
"#,
        )
        .await
        .expect_err("an unknown field must be rejected with fieldValidation=Strict");
    let message = format!("{err:#}");
    assert!(
        message.contains(".spec.runIntervall: field not declared in schema"),
        "{message}"
    );
}

#[tokio::test]
async fn make_run_examples_apply_with_strict_validation() {
    let ctx = cluster().await.context("examples").await.unwrap();
    let client = ctx.client().await.unwrap();
    install_crds(&client).await;
    // Two of them are v3 HealthChecks: their CRD is the chart's template's file.
    let path = workspace_root().join("charts/kuberhealthy/files/healthcheck-crd.yaml");
    manifests::install_crds(&client, &std::fs::read_to_string(&path).unwrap(), TIMEOUT)
        .await
        .unwrap();
    let dir = workspace_root().join("e2e/examples");
    let mut checks = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let objects = manifests::apply_file(&client, &path, Some(ctx.namespace()))
                .await
                .unwrap_or_else(|e| panic!("{} was rejected: {e:#}", path.display()));
            checks.extend(
                objects
                    .into_iter()
                    .map(|o| o.metadata.name.unwrap_or_default()),
            );
        }
    }
    checks.sort();
    assert_eq!(
        checks,
        [
            "example-exits",
            "example-fail",
            "example-healthcheck-fail",
            "example-healthcheck-pass",
            "example-pass",
            "openbayes-gear-check"
        ]
    );
}
