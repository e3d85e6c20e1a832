//! `helm lint` and `helm template` with the defaults and every documented toggle; each
//! rendering is server-side applied to the local API server with strict validation. The
//! toggles live by family, each file with what its renderings must show.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use kuberhealthy_e2e::accounts;
use serde_json::{Value, json};

use crate::cluster;
use crate::support::{self, Rendered, apply_rendered, args, helm, str, template};

mod checks;
mod defaults;
mod healthchecks;
mod monitoring;
mod rbac;
mod workload;

use checks::*;
use defaults::*;
use healthchecks::*;
use rbac::*;

pub use checks::{chart_checks, every_check_off, every_check_on};
pub use rbac::{cluster_policy, controller_policy, lease_policy};

/// `helm lint --strict` fails on warnings as well as errors.
async fn lint(extra: &[String]) -> Result<String> {
    let mut all = args(&["lint", "--strict"]);
    all.push(support::chart_dir().display().to_string());
    all.extend(extra.iter().cloned());
    let out = helm(&all, None).await?;
    ensure!(
        out.contains("1 chart(s) linted, 0 chart(s) failed"),
        "helm lint did not pass: {out}"
    );
    ensure!(
        !out.contains("[WARNING]") && !out.contains("[ERROR]"),
        "helm lint reported findings: {out}"
    );
    Ok(out)
}

#[tokio::test]
async fn lint_is_clean() {
    lint(&[]).await.unwrap();
}

/// One documented toggle: its values (`{ns}` is the release namespace) and what it must
/// render. Namespaces `{ns}-<suffix>` for each of `namespaces` are created before applying.
pub(super) struct Toggle {
    name: &'static str,
    values: &'static [&'static str],
    namespaces: &'static [&'static str],
    check: fn(&Rendered, &str) -> Result<()>,
}

/// In a toggle's values: every built-in check enabled (with a stand-in for each knob that must
/// be set), or every one disabled.
const EVERY_CHECK_ON: &str = "{every check on}";

const EVERY_CHECK_OFF: &str = "{every check off}";

/// The toggle's values with `{ns}` replaced and the built-in check switches expanded.
fn values_for(toggle: &Toggle, ns: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for value in toggle.values {
        match *value {
            EVERY_CHECK_ON => out.extend(every_check_on()?),
            EVERY_CHECK_OFF => out.extend(every_check_off()?),
            other => out.push(other.replace("{ns}", ns)),
        }
    }
    Ok(out)
}

#[tokio::test]
async fn every_toggle_lints_renders_and_applies_with_server_side_validation() {
    let ctx = cluster().await.context("chart-toggles").await.unwrap();
    let client = ctx.client().await.unwrap();
    support::install_crds(&client).await.unwrap();
    let mut failures = Vec::new();
    for (i, toggle) in toggles().enumerate() {
        let ns = format!("{}-t{i}", ctx.namespace());
        let outcome = async {
            accounts::create_namespace(&client, &ns).await?;
            for suffix in toggle.namespaces {
                accounts::create_namespace(&client, &format!("{ns}-{suffix}")).await?;
            }
            let values = values_for(toggle, &ns)?;
            lint(&values).await?;
            let rendered = template("kh", &ns, &values).await?;
            (toggle.check)(&rendered, &ns).context("the rendering")?;
            // Every document the API server serves is applied with strict validation. The
            // monitoring.coreos.com kinds (ServiceMonitor, PrometheusRule) are not served here:
            // the prometheus-operator's CRDs are not available on this machine. They are
            // checked above instead (the ServiceMonitor against the Service; the rules by
            // promtool, here and in the `alerts` tests).
            let applied = apply_rendered(&client, &rendered).await?;
            let expected = rendered
                .docs
                .iter()
                .filter(|d| !support::is_monitoring_coreos(d))
                .count();
            ensure!(
                applied.len() == expected,
                "applied {} of {expected}",
                applied.len()
            );
            anyhow::Ok(())
        }
        .await;
        if let Err(err) = outcome {
            failures.push(format!("{} (namespace {ns}): {err:#}", toggle.name));
        }
    }
    assert!(
        failures.is_empty(),
        "toggles that fail:\n{}",
        failures.join("\n")
    );
}

/// Every documented toggle, family by family.
fn toggles() -> impl Iterator<Item = &'static Toggle> {
    defaults::TOGGLES
        .iter()
        .chain(rbac::TOGGLES)
        .chain(monitoring::TOGGLES)
        .chain(healthchecks::TOGGLES)
        .chain(workload::TOGGLES)
        .chain(checks::TOGGLES)
}
