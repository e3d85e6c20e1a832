//! `pod-status`: v2's pod-status-check. Fails for every pod older than `SKIP_DURATION` that
//! is `Pending`, `Failed` or `Unknown`. `TARGET_NAMESPACE` unset means all namespaces.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::Outcome;
use super::knobs::Knobs;
use crate::api::access::Rule;
use crate::api::duration;

pub const RULES: &[Rule] = &[Rule {
    group: "",
    resources: &["pods"],
    verbs: &["list"],
    why: "the phase and age of pods",
}];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub namespace: Option<String>,
    pub skip: Duration,
}

impl Config {
    pub fn read(knobs: &mut Knobs) -> Config {
        Config {
            namespace: knobs.raw("TARGET_NAMESPACE"),
            skip: knobs.duration("SKIP_DURATION", Duration::from_secs(10 * 60)),
        }
    }
}

/// What the check needs to know of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSeen {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub created: Option<Timestamp>,
    /// Why it is in that phase, when the pod or a container says.
    pub why: Option<String>,
}

impl PodSeen {
    pub fn from_pod(pod: &Pod) -> PodSeen {
        let status = pod.status.clone().unwrap_or_default();
        let waiting = status
            .container_statuses
            .iter()
            .chain(status.init_container_statuses.iter())
            .flatten()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
            .filter_map(|w| match (&w.reason, &w.message) {
                (Some(r), Some(m)) => Some(format!("{r}: {m}")),
                (Some(r), None) => Some(r.clone()),
                _ => None,
            })
            .next();
        let unscheduled = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .and_then(|c| c.message.clone());
        let own = match (&status.reason, &status.message) {
            (Some(r), Some(m)) => Some(format!("{r}: {m}")),
            (Some(r), None) => Some(r.clone()),
            (None, Some(m)) => Some(m.clone()),
            (None, None) => None,
        };
        PodSeen {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            phase: status.phase.unwrap_or_else(|| "Unknown".into()),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            why: own.or(waiting).or(unscheduled),
        }
    }
}

const BAD_PHASES: &[&str] = &["Pending", "Failed", "Unknown"];

/// One message per pod at least `SKIP_DURATION` old in a bad phase.
pub fn evaluate(config: &Config, pods: &[PodSeen], now: Timestamp) -> Outcome {
    let skip = SignedDuration::try_from(config.skip).unwrap_or(SignedDuration::MAX);
    let mut errors = Vec::new();
    for pod in pods {
        if !BAD_PHASES.contains(&pod.phase.as_str()) {
            continue;
        }
        let age = pod
            .created
            .map(|c| c.duration_until(now))
            .unwrap_or(SignedDuration::MAX);
        if age < skip {
            continue;
        }
        let age = duration::format(
            Duration::try_from(age.max(SignedDuration::ZERO)).unwrap_or(Duration::MAX),
        );
        let why = pod
            .why
            .as_ref()
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        errors.push(format!(
            "pod {} in namespace {} is {} at age {age} (SKIP_DURATION {}){why}",
            pod.name,
            pod.namespace,
            pod.phase,
            duration::format(config.skip)
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

pub async fn run(mut knobs: Knobs, _time_left: Duration) -> Outcome {
    let config = Config::read(&mut knobs);
    knobs.finish()?;
    let seen = observe(super::kube_client().await?, &config).await?;
    evaluate(&config, &seen, Timestamp::now())
}

/// Lists the pods of the namespace (or all).
pub async fn observe(client: kube::Client, config: &Config) -> Result<Vec<PodSeen>, Vec<String>> {
    let pods: Api<Pod> = match &config.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let pods = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| super::kube_error("list pods", &config.namespace, e))?;
    Ok(pods.items.iter().map(PodSeen::from_pod).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn seen(phase: &str, created: i64) -> PodSeen {
        PodSeen {
            namespace: "shop".into(),
            name: "cart-1".into(),
            phase: phase.into(),
            created: Some(at(created)),
            why: None,
        }
    }

    fn config() -> Config {
        let mut k = Knobs::from_pairs(&[]);
        let c = Config::read(&mut k);
        k.finish().unwrap();
        c
    }

    #[test]
    fn pending_just_under_and_at_the_skip_duration() {
        let c = config();
        assert_eq!(c.skip, Duration::from_secs(600));
        let now = at(10_000);
        assert_eq!(evaluate(&c, &[seen("Pending", 10_000 - 599)], now), Ok(()));
        assert_eq!(
            evaluate(&c, &[seen("Pending", 10_000 - 600)], now).unwrap_err(),
            ["pod cart-1 in namespace shop is Pending at age 10m0s (SKIP_DURATION 10m0s)"]
        );
        assert!(evaluate(&c, &[seen("Pending", 10_000 - 601)], now).is_err());
    }

    #[test]
    fn only_bad_phases_fail() {
        let c = config();
        let now = at(100_000);
        for (phase, ok) in [
            ("Running", true),
            ("Succeeded", true),
            ("Pending", false),
            ("Failed", false),
            ("Unknown", false),
        ] {
            assert_eq!(evaluate(&c, &[seen(phase, 0)], now).is_ok(), ok, "{phase}");
        }
    }

    #[test]
    fn the_error_says_why() {
        let pod = Pod {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("cart-1".into()),
                creation_timestamp: Some(Time(at(0))),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: "app".into(),
                    state: Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some("ImagePullBackOff".into()),
                            message: Some("Back-off pulling image \"nope\"".into()),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = Config {
            namespace: None,
            skip: Duration::from_secs(60),
        };
        assert_eq!(
            evaluate(&c, &[PodSeen::from_pod(&pod)], at(3_600)).unwrap_err(),
            [
                "pod cart-1 in namespace shop is Pending at age 1h0m0s (SKIP_DURATION 1m0s): ImagePullBackOff: Back-off pulling image \"nope\""
            ]
        );
    }

    #[test]
    fn a_bad_skip_duration_names_the_variable() {
        let mut k = Knobs::from_pairs(&[("SKIP_DURATION", "ten minutes")]);
        Config::read(&mut k);
        assert_eq!(
            k.finish().unwrap_err(),
            ["SKIP_DURATION is \"ten minutes\", expected a duration such as 30s, 10m or 1h"]
        );
    }
}
