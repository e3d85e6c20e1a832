//! `pod-restarts`: v2's pod-restarts-check. Fails for every pod with more than
//! `MAX_FAILURES_ALLOWED` `BackOff` events (v2's rule), and — beyond v2 — for every
//! container whose `restartCount` is over the same limit. Events of pods that no longer exist
//! are ignored. `POD_NAMESPACE` unset means all namespaces.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};

use super::Outcome;
use super::knobs::Knobs;
use crate::api::access::Rule;

pub const RULES: &[Rule] = &[
    Rule {
        group: "",
        resources: &["events"],
        verbs: &["list"],
        why: "BackOff events of pods",
    },
    Rule {
        group: "",
        resources: &["pods"],
        verbs: &["list"],
        why: "containers' restart counts; ignoring events of deleted pods",
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub namespace: Option<String>,
    pub max_failures: u64,
}

impl Config {
    pub fn read(knobs: &mut Knobs) -> Config {
        Config {
            namespace: knobs.raw("POD_NAMESPACE"),
            max_failures: knobs.whole("MAX_FAILURES_ALLOWED", 10),
        }
    }
}

/// A pod, by namespace and name.
pub type PodKey = (String, String);

/// What the check saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// `BackOff` events per pod, summed over their `count`.
    pub backoffs: BTreeMap<PodKey, u64>,
    /// Restart count per pod and container, for the pods that exist.
    pub restarts: BTreeMap<PodKey, Vec<(String, u64)>>,
}

impl Observations {
    pub fn from_objects(events: &[Event], pods: &[Pod]) -> Observations {
        let mut seen = Observations::default();
        for pod in pods {
            let key = (
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone().unwrap_or_default(),
            );
            let statuses = pod
                .status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
                .chain(
                    pod.status
                        .iter()
                        .flat_map(|s| s.init_container_statuses.iter().flatten()),
                );
            let counts = statuses
                .map(|c| (c.name.clone(), c.restart_count.max(0) as u64))
                .collect();
            seen.restarts.insert(key, counts);
        }
        for event in events {
            let object = &event.involved_object;
            if object.kind.as_deref() != Some("Pod") || event.reason.as_deref() != Some("BackOff") {
                continue;
            }
            let count = event
                .count
                .or(event.series.as_ref().and_then(|s| s.count))
                .unwrap_or(1)
                .max(1) as u64;
            let key = (
                object
                    .namespace
                    .clone()
                    .or_else(|| event.metadata.namespace.clone())
                    .unwrap_or_default(),
                object.name.clone().unwrap_or_default(),
            );
            *seen.backoffs.entry(key).or_default() += count;
        }
        seen
    }
}

/// One message per pod over the limit, naming pod, namespace and counts.
pub fn evaluate(config: &Config, seen: &Observations) -> Outcome {
    let max = config.max_failures;
    let pods: BTreeSet<&PodKey> = seen.restarts.keys().collect();
    let mut errors = Vec::new();
    for key in pods {
        let (namespace, name) = key;
        let mut found = Vec::new();
        if let Some(&backoffs) = seen.backoffs.get(key).filter(|n| **n > max) {
            found.push(format!("{backoffs} BackOff events"));
        }
        for (container, restarts) in &seen.restarts[key] {
            if *restarts > max {
                found.push(format!("container {container} restarted {restarts} times"));
            }
        }
        if !found.is_empty() {
            errors.push(format!(
                "pod {name} in namespace {namespace}: {}, over MAX_FAILURES_ALLOWED {max}",
                found.join(" and ")
            ));
        }
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
    evaluate(&config, &seen)
}

/// Lists the events and pods of the namespace (or all).
pub async fn observe(client: kube::Client, config: &Config) -> Result<Observations, Vec<String>> {
    let (events, pods): (Api<Event>, Api<Pod>) = match &config.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let lp = ListParams::default();
    let events = events
        .list(&lp)
        .await
        .map_err(|e| super::kube_error("list events", &config.namespace, e))?;
    let pods = pods
        .list(&lp)
        .await
        .map_err(|e| super::kube_error("list pods", &config.namespace, e))?;
    Ok(Observations::from_objects(&events.items, &pods.items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, ObjectReference, PodStatus};
    use kube::api::ObjectMeta;

    fn config(max: &str) -> Config {
        let mut k = Knobs::from_pairs(&[("MAX_FAILURES_ALLOWED", max)]);
        let c = Config::read(&mut k);
        k.finish().unwrap();
        c
    }

    fn pod(ns: &str, name: &str, restarts: i32) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "app".into(),
                    restart_count: restarts,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn backoff(ns: &str, name: &str, count: i32) -> Event {
        Event {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            reason: Some("BackOff".into()),
            count: Some(count),
            ..Default::default()
        }
    }

    #[test]
    fn restart_counts_just_under_at_and_over_the_limit() {
        let c = config("10");
        for (restarts, ok) in [(9, true), (10, true), (11, false)] {
            let seen = Observations::from_objects(&[], &[pod("shop", "cart-1", restarts)]);
            assert_eq!(evaluate(&c, &seen).is_ok(), ok, "{restarts}");
        }
        let seen = Observations::from_objects(&[], &[pod("shop", "cart-1", 11)]);
        assert_eq!(
            evaluate(&c, &seen).unwrap_err(),
            [
                "pod cart-1 in namespace shop: container app restarted 11 times, over MAX_FAILURES_ALLOWED 10"
            ]
        );
    }

    #[test]
    fn backoff_events_just_under_at_and_over_the_limit() {
        let c = config("10");
        let pods = [pod("shop", "cart-1", 0)];
        for (count, ok) in [(9, true), (10, true), (11, false)] {
            let seen = Observations::from_objects(&[backoff("shop", "cart-1", count)], &pods);
            assert_eq!(evaluate(&c, &seen).is_ok(), ok, "{count}");
        }
        // Events add up.
        let events = [backoff("shop", "cart-1", 6), backoff("shop", "cart-1", 6)];
        assert_eq!(
            evaluate(&c, &Observations::from_objects(&events, &pods)).unwrap_err(),
            ["pod cart-1 in namespace shop: 12 BackOff events, over MAX_FAILURES_ALLOWED 10"]
        );
    }

    #[test]
    fn events_of_deleted_pods_and_other_reasons_are_ignored() {
        let c = config("1");
        let mut other = backoff("shop", "cart-1", 50);
        other.reason = Some("Pulled".into());
        let events = [backoff("shop", "gone-1", 50), other];
        let seen = Observations::from_objects(&events, &[pod("shop", "cart-1", 0)]);
        assert_eq!(evaluate(&c, &seen), Ok(()));
    }

    #[test]
    fn both_findings_on_one_pod_make_one_message() {
        let c = config("0");
        let seen = Observations::from_objects(
            &[backoff("a", "p", 3)],
            &[pod("a", "p", 2), pod("b", "q", 0)],
        );
        assert_eq!(
            evaluate(&c, &seen).unwrap_err(),
            [
                "pod p in namespace a: 3 BackOff events and container app restarted 2 times, over MAX_FAILURES_ALLOWED 0"
            ]
        );
    }

    #[test]
    fn knobs() {
        let mut k = Knobs::from_pairs(&[]);
        assert_eq!(
            Config::read(&mut k),
            Config {
                namespace: None,
                max_failures: 10
            }
        );
        let mut k = Knobs::from_pairs(&[("MAX_FAILURES_ALLOWED", "ten")]);
        Config::read(&mut k);
        assert_eq!(
            k.finish().unwrap_err(),
            ["MAX_FAILURES_ALLOWED is \"ten\", expected a whole number"]
        );
    }
}
