//! The built-in checks, run as `kuberhealthy check <name>` inside a checker pod.
//!
//! Each check reads v2's environment knobs (with v2's defaults) through [`knobs::Knobs`],
//! does its I/O, and hands its observations to a pure decision function. The runner here
//! computes the time left before `KH_CHECK_RUN_DEADLINE`, runs the check within it and
//! reports the outcome through the check client: a bad knob is a reported failure naming
//! the variable; only a report that cannot be delivered makes the command fail.

pub mod daemonset;
pub mod deployment;
pub mod dns;
pub mod http;
pub mod http_content;
pub mod knobs;
pub mod network;
pub mod pod_restarts;
pub mod pod_status;
pub mod resource_quota;
pub mod storage;
pub mod tls;
pub mod workloads;

use std::time::Duration;

use jiff::Timestamp;

use crate::api::access::Rule;
use crate::api::duration;
use crate::checker::client::{ReportError, Reporter};
use knobs::Knobs;

/// A check's verdict: `Err` holds one message per problem found.
pub type Outcome = Result<(), Vec<String>>;

/// The Kubernetes access a check's ServiceAccount needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// None at all.
    Nothing,
    /// These rules, in the namespaces it inspects: a ClusterRole for all namespaces, or a
    /// Role in one.
    Namespaced(&'static [Rule]),
}

/// A built-in check.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub name: &'static str,
    pub about: &'static str,
    /// How long it may run when the pod has no `KH_CHECK_RUN_DEADLINE`.
    pub default_time_limit: Duration,
    pub access: Access,
}

/// Every built-in check, by name.
pub const CHECKS: &[Check] = &[
    Check {
        name: "daemonset",
        about: "a DaemonSet of PAUSE_CONTAINER_IMAGE gets a Ready pod on every node expected to run it, and goes away",
        default_time_limit: Duration::from_secs(15 * 60),
        access: Access::Namespaced(daemonset::RULES),
    },
    Check {
        name: "deployment",
        about: "a Deployment of CHECK_IMAGE becomes available and its Service answers HTTP 200 (also after a rolling update), and both go away",
        default_time_limit: Duration::from_secs(15 * 60),
        access: Access::Namespaced(deployment::RULES),
    },
    Check {
        name: "dns-status",
        about: "resolves HOSTNAME",
        default_time_limit: Duration::from_secs(60),
        access: Access::Nothing,
    },
    Check {
        name: "http",
        about: "COUNT requests to CHECK_URL; PASSING_PERCENT of them answer EXPECTED_STATUS_CODE",
        default_time_limit: Duration::from_secs(5 * 60),
        access: Access::Nothing,
    },
    Check {
        name: "http-content",
        about: "the body of TARGET_URL contains TARGET_STRING",
        default_time_limit: Duration::from_secs(60),
        access: Access::Nothing,
    },
    Check {
        name: "network-connection",
        about: "CONNECTION_TARGET (tcp:// or udp://host:port) can be dialled, or must not be",
        default_time_limit: Duration::from_secs(20),
        access: Access::Nothing,
    },
    Check {
        name: "pod-restarts",
        about: "no pod has more than MAX_FAILURES_ALLOWED BackOff events or container restarts",
        default_time_limit: Duration::from_secs(10 * 60),
        access: Access::Namespaced(pod_restarts::RULES),
    },
    Check {
        name: "pod-status",
        about: "no pod older than SKIP_DURATION is Pending, Failed or Unknown",
        default_time_limit: Duration::from_secs(5 * 60),
        access: Access::Namespaced(pod_status::RULES),
    },
    Check {
        name: "resource-quota",
        about: "no ResourceQuota's CPU or memory use has reached THRESHOLD of its hard limit",
        default_time_limit: Duration::from_secs(5 * 60),
        access: Access::Namespaced(resource_quota::RULES),
    },
    Check {
        name: "ssl-expiry",
        about: "the certificate of DOMAIN_NAME:PORT is valid for more than DAYS days",
        default_time_limit: Duration::from_secs(60),
        access: Access::Nothing,
    },
    Check {
        name: "ssl-handshake",
        about: "a verified TLS handshake with DOMAIN_NAME:PORT succeeds",
        default_time_limit: Duration::from_secs(60),
        access: Access::Nothing,
    },
    Check {
        name: "storage",
        about: "a PersistentVolumeClaim of CHECK_STORAGE_PVC_STORAGE_CLASS_NAME binds and a pod writes and reads a file on it, and both go away",
        default_time_limit: Duration::from_secs(15 * 60),
        access: Access::Namespaced(storage::RULES),
    },
];

/// The names of the built-in checks.
pub fn names() -> impl Iterator<Item = &'static str> {
    CHECKS.iter().map(|c| c.name)
}

pub fn find(name: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.name == name)
}

/// Time kept back from the run's deadline for delivering the report.
pub const REPORT_MARGIN: Duration = Duration::from_secs(5);

/// How long the check may run: until the deadline less [`REPORT_MARGIN`] (at least one
/// second), or the check's own limit when the pod has no deadline.
pub fn time_left(deadline: Option<Timestamp>, now: Timestamp, default: Duration) -> Duration {
    match deadline {
        None => default,
        Some(d) => Duration::try_from(now.duration_until(d))
            .unwrap_or(Duration::ZERO)
            .saturating_sub(REPORT_MARGIN)
            .max(Duration::from_secs(1)),
    }
}

/// Runs the named check with these knobs for at most `time_left`.
pub async fn execute(check: &Check, knobs: Knobs, time_left: Duration) -> Outcome {
    let run = async {
        match check.name {
            "daemonset" => daemonset::run(knobs, time_left).await,
            "deployment" => deployment::run(knobs, time_left).await,
            "dns-status" => dns::run(knobs, time_left).await,
            "http" => http::run(knobs, time_left).await,
            "http-content" => http_content::run(knobs, time_left).await,
            "network-connection" => network::run(knobs, time_left).await,
            "pod-restarts" => pod_restarts::run(knobs, time_left).await,
            "pod-status" => pod_status::run(knobs, time_left).await,
            "resource-quota" => resource_quota::run(knobs, time_left).await,
            "ssl-expiry" => tls::run_expiry(knobs, time_left).await,
            "ssl-handshake" => tls::run_handshake(knobs, time_left).await,
            "storage" => storage::run(knobs, time_left).await,
            other => Err(vec![format!("{other} is not a built-in check")]),
        }
    };
    match tokio::time::timeout(time_left, run).await {
        Ok(outcome) => outcome,
        Err(_) => Err(vec![format!(
            "{} did not finish within {}, the time left before the run's deadline",
            check.name,
            duration::format(time_left)
        )]),
    }
}

/// The Kubernetes client of a check: the pod's ServiceAccount (or a kubeconfig).
pub async fn kube_client() -> Result<kube::Client, Vec<String>> {
    kube::Client::try_default()
        .await
        .map_err(|e| vec![format!("cannot create a Kubernetes client: {e}")])
}

/// An API error, saying what was attempted where.
pub fn kube_error(what: &str, namespace: &Option<String>, e: kube::Error) -> Vec<String> {
    let place = match namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "in all namespaces".to_string(),
    };
    vec![format!("cannot {what} {place}: {}", describe(&e))]
}

/// A Kubernetes client error in one line for a check's result: the API server's message,
/// code and reason, not kube's debug dump of the whole Status.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} (HTTP {} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

/// `kuberhealthy check <name>`: runs the check in a checker pod and reports its outcome.
/// Returns the outcome that was reported, or why the report could not be delivered.
pub async fn run(check: &Check) -> Result<Outcome, ReportError> {
    let reporter = Reporter::from_env()?;
    let limit = time_left(
        reporter.deadline,
        Timestamp::now(),
        check.default_time_limit,
    );
    let outcome = execute(check, Knobs::from_env(), limit).await;
    match &outcome {
        Ok(()) => reporter.report_success().await?,
        Err(errors) => reporter.report_failure(errors).await?,
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_keeps_a_margin_for_the_report() {
        let now = Timestamp::from_second(1_000).unwrap();
        let at = |s| Some(Timestamp::from_second(s).unwrap());
        let default = Duration::from_secs(42);
        assert_eq!(time_left(None, now, default), default);
        assert_eq!(time_left(at(1_065), now, default), Duration::from_secs(60));
        assert_eq!(time_left(at(1_006), now, default), Duration::from_secs(1));
        assert_eq!(time_left(at(900), now, default), Duration::from_secs(1));
    }

    #[test]
    fn names_are_unique_and_found() {
        let mut names: Vec<_> = names().collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
        assert!(names.iter().all(|n| find(n).is_some()));
        assert!(find("nope").is_none());
    }
}
