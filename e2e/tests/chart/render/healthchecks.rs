//! HealthCheck renderings: the v3 CRD on or off, and its reporting URL.

use super::*;

/// The HealthCheck CRD, which the chart renders unless `healthChecks.enabled=false`.
pub(super) const HEALTHCHECK_CRD: &str =
    "CustomResourceDefinition/healthchecks.kuberhealthy.github.io";

/// The HealthCheck CRD as rendered: the code's (`kuberhealthy crd --only healthcheck`), kept
/// on uninstall, labelled as the release.
pub(super) fn check_healthcheck_crd(r: &Rendered) -> Result<()> {
    let crd = r.named(
        "CustomResourceDefinition",
        "healthchecks.kuberhealthy.github.io",
    )?;
    let code = serde_json::to_value(kuberhealthy::generate::crd::healthcheck_crd())?;
    ensure!(
        crd["spec"] == code["spec"],
        "the rendered CRD is the code's"
    );
    ensure!(
        crd["metadata"]["annotations"] == json!({"helm.sh/resource-policy": "keep"}),
        "{}",
        crd["metadata"]
    );
    ensure!(
        crd["metadata"]["labels"]["app.kubernetes.io/instance"] == "kh",
        "{}",
        crd["metadata"]
    );
    ensure!(r.env("KH_HEALTHCHECKS")? == "true");
    Ok(())
}

/// The HealthCheck toggles.
pub(super) const TOGGLES: &[Toggle] = &[
    Toggle {
        name: "healthChecks.enabled=false",
        values: &["--set", "healthChecks.enabled=false"],
        namespaces: &[],
        check: |r, _| {
            ensure!(
                r.of_kind("CustomResourceDefinition").is_empty(),
                "no HealthCheck CRD: {:?}",
                r.kinds()
            );
            let mut v2_rules = policy(kuberhealthy::generate::rbac::CONTROLLER_RULES);
            v2_rules.as_array_mut().context("a list of rules")?.extend(
                policy(kuberhealthy::generate::rbac::AUTH_RULES)
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
            ensure!(
                r.named("ClusterRole", "kh-kuberhealthy")?["rules"] == v2_rules,
                "v2's rules (and /api/run's reviews) only"
            );
            ensure!(r.env("KH_HEALTHCHECKS")? == "false");
            Ok(())
        },
    },
    Toggle {
        name: "healthChecks.enabled=false with targetNamespace",
        values: &[
            "--set",
            "healthChecks.enabled=false",
            "--set",
            "targetNamespace={ns}-checks",
        ],
        namespaces: &["checks"],
        check: |r, ns| {
            let role = r.named("Role", "kh-kuberhealthy")?;
            ensure!(
                role["metadata"]["namespace"] == format!("{ns}-checks"),
                "{role}"
            );
            ensure!(
                role["rules"] == policy(kuberhealthy::generate::rbac::CONTROLLER_RULES),
                "v2's rules only: {role}"
            );
            Ok(())
        },
    },
    Toggle {
        name: "healthChecks.reportURL",
        values: &["--set", "healthChecks.reportURL=http://kh.example:8080"],
        namespaces: &[],
        check: |r, _| {
            ensure!(r.env("KH_CHECK_REPORT_URL")? == "http://kh.example:8080");
            check_healthcheck_crd(r)
        },
    },
];
