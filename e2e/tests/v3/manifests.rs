//! Manifests apply with strict field validation on a real API server: a HealthCheck in
//! Kuberhealthy v3.0.13's documented form with every spec field, v3's status with every field
//! (written through the status subresource and read back whole: v3's own CRD prunes
//! `consecutiveFailures`), and the v3 forms, by `kuberhealthy convert`, of every example of
//! this project.

use std::path::{Path, PathBuf};

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::{accounts, manifests};
use serde_json::{Value, json};

use crate::support::{Scenario, ScenarioOptions, healthchecks};

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn convert(file: &Path) -> String {
    let binary = kuberhealthy_e2e::binaries::kuberhealthy().unwrap();
    let output = std::process::Command::new(binary)
        .arg("convert")
        .arg(file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kuberhealthy convert {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn v3_manifests_and_the_v3_forms_of_the_examples_apply_with_strict_validation() {
    // The CRDs of `kuberhealthy crd` and the controller's RBAC; no replica is needed.
    let scenario = Scenario::prepare(ScenarioOptions::new("v3-manifests"))
        .await
        .expect("preparing the scenario");
    let client = scenario.client();
    accounts::create_namespace(&client, "kuberhealthy")
        .await
        .unwrap();

    // v3.0.13's documented form, every spec field.
    let fixture = workspace_root().join("tests/fixtures/v3/healthcheck.yaml");
    let applied = manifests::apply_file(&client, &fixture, None)
        .await
        .unwrap_or_else(|e| panic!("{} was rejected: {e:#}", fixture.display()));
    let written: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    assert_eq!(
        applied[0].data["spec"], written["spec"],
        "every spec field is kept as written"
    );

    // v3's status, every field, through the status subresource.
    let status_file = workspace_root().join("tests/fixtures/v3/healthcheck-status.yaml");
    let status: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&status_file).unwrap()).unwrap();
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "kuberhealthy", &healthchecks());
    let params = PatchParams::apply(manifests::FIELD_MANAGER)
        .force()
        .validation_strict();
    let patched = api
        .patch_status(
            "deployment",
            &params,
            &Patch::Apply(json!({
                "apiVersion": "kuberhealthy.github.io/v2",
                "kind": "HealthCheck",
                "metadata": {"name": "deployment"},
                "status": status,
            })),
        )
        .await
        .unwrap_or_else(|e| panic!("v3's status was rejected: {e}"));
    assert_eq!(patched.data["status"], status, "no status field is pruned");
    assert_eq!(
        patched.data["spec"], written["spec"],
        "the spec is untouched"
    );

    // The v3 form of every example: each KuberhealthyCheck becomes a HealthCheck.
    let mut files = yaml_files(&workspace_root().join("examples/checks"));
    files.push(workspace_root().join("examples/blog/check.yaml"));
    files.extend(yaml_files(&workspace_root().join("e2e/examples")));
    let mut converted = 0;
    for file in &files {
        // Its KuberhealthyChecks, and its HealthChecks (which pass through).
        let checks = manifests::parse(&std::fs::read_to_string(file).unwrap())
            .unwrap()
            .iter()
            .filter(|o| {
                o.types
                    .as_ref()
                    .is_some_and(|t| t.kind == "KuberhealthyCheck" || t.kind == "HealthCheck")
            })
            .count();
        let yaml = convert(file);
        let objects = manifests::apply_yaml(&client, &yaml, Some(scenario.ns()))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the v3 form of {} was rejected: {e:#}\n{yaml}",
                    file.display()
                )
            });
        let kinds: Vec<&str> = objects
            .iter()
            .filter_map(|o| o.types.as_ref().map(|t| t.kind.as_str()))
            .collect();
        assert!(
            !kinds.contains(&"KuberhealthyCheck"),
            "{}: {kinds:?}",
            file.display()
        );
        let healthchecks = kinds.iter().filter(|k| **k == "HealthCheck").count();
        assert_eq!(healthchecks, checks, "{}: {kinds:?}", file.display());
        assert!(healthchecks > 0, "{} holds no check", file.display());
        converted += healthchecks;
    }
    assert!(converted >= 15, "{converted} examples converted");
}
