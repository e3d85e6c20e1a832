//! Which finished checker pods to delete (pure): per check, at most `maxCompletedPodCount`
//! succeeded and `maxErrorPodCount` failed pods are kept (the newest), pods that finished
//! more than `maxCheckPodAge` ago go, and the pod of a run in flight is never touched.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::pod::{PodOwner, owner_of};
use crate::api::time::add;

#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_completed: usize,
    pub max_failed: usize,
    pub max_age: Duration,
}

/// A pod to delete and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub namespace: String,
    pub name: String,
    pub reason: &'static str,
}

/// When a finished pod finished: its last container's end, else its creation.
fn finished_at(pod: &Pod) -> Option<Timestamp> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref();
    statuses
        .into_iter()
        .flatten()
        .filter_map(|s| s.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
        .or_else(|| pod.creation_timestamp().map(|t| t.0))
}

/// Finished pods of one check with their finish times: (succeeded, failed).
type Finished<'a> = (Vec<(Timestamp, &'a Pod)>, Vec<(Timestamp, &'a Pod)>);

/// `in_flight` holds `namespace/name` of the pods of runs in flight.
pub fn reap<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    in_flight: &HashSet<String>,
    retention: Retention,
    now: Timestamp,
) -> Vec<Reaped> {
    // (namespace, check) -> (succeeded, failed), each with finish times.
    let mut groups: BTreeMap<(String, String), Finished<'_>> = BTreeMap::new();
    for pod in pods {
        let ns = pod.namespace().unwrap_or_default();
        if in_flight.contains(&format!("{ns}/{}", pod.name_any()))
            || pod.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        // A KuberhealthyCheck and a HealthCheck of one name keep their pods apart.
        let check = match owner_of(pod) {
            Some(PodOwner::Check(name)) => format!("check/{name}"),
            Some(PodOwner::HealthCheck(name)) => format!("healthcheck/{name}"),
            None => continue,
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let Some(at) = finished_at(pod) else { continue };
        let group = groups.entry((ns, check)).or_default();
        match phase {
            Some("Succeeded") => group.0.push((at, pod)),
            Some("Failed") => group.1.push((at, pod)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (_, (mut succeeded, mut failed)) in groups {
        for (list, keep, reason) in [
            (
                &mut succeeded,
                retention.max_completed,
                "more succeeded pods than maxCompletedPodCount",
            ),
            (
                &mut failed,
                retention.max_failed,
                "more failed pods than maxErrorPodCount",
            ),
        ] {
            // Newest first; ties broken by name so the choice is stable.
            list.sort_by(|a, b| {
                b.0.cmp(&a.0)
                    .then_with(|| a.1.name_any().cmp(&b.1.name_any()))
            });
            for (i, (at, pod)) in list.iter().enumerate() {
                let reason = if add(*at, retention.max_age) <= now {
                    "finished longer ago than maxCheckPodAge"
                } else if i >= keep {
                    reason
                } else {
                    continue;
                };
                out.push(Reaped {
                    namespace: pod.namespace().unwrap_or_default(),
                    name: pod.name_any(),
                    reason,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::names;

    fn pod(name: &str, check: &str, phase: &str, finished_minute: u32) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.labels =
            Some([(names::LABEL_CHECK_NAME.to_string(), check.to_string())].into());
        pod.status = Some(PodStatus {
            phase: Some(phase.into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "main".into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        finished_at: Some(Time(
                            format!("2026-01-01T00:{finished_minute:02}:00Z")
                                .parse()
                                .unwrap(),
                        )),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    }

    const RETENTION: Retention = Retention {
        max_completed: 2,
        max_failed: 1,
        max_age: Duration::from_secs(3600),
    };

    fn names_of(r: &[Reaped]) -> Vec<&str> {
        r.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn keeps_the_newest_per_check_and_phase() {
        let pods = [
            pod("a1", "a", "Succeeded", 1),
            pod("a2", "a", "Succeeded", 2),
            pod("a3", "a", "Succeeded", 3),
            pod("a4", "a", "Failed", 4),
            pod("a5", "a", "Failed", 5),
            pod("b1", "b", "Succeeded", 1),
            pod("r", "a", "Running", 0),
        ];
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let reaped = reap(&pods, &HashSet::new(), RETENTION, now);
        assert_eq!(names_of(&reaped), ["a1", "a4"]);
        assert_eq!(
            reaped[0].reason,
            "more succeeded pods than maxCompletedPodCount"
        );
    }

    #[test]
    fn old_pods_go_and_pods_in_flight_stay() {
        let pods = [
            pod("old", "a", "Succeeded", 0),
            pod("flying", "a", "Failed", 0),
        ];
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let in_flight = HashSet::from(["ns/flying".to_string()]);
        let reaped = reap(&pods, &in_flight, RETENTION, now);
        assert_eq!(names_of(&reaped), ["old"]);
        assert_eq!(reaped[0].reason, "finished longer ago than maxCheckPodAge");
    }

    #[test]
    fn zero_retention_deletes_every_finished_pod() {
        let pods = [pod("s", "a", "Succeeded", 1), pod("f", "a", "Failed", 1)];
        let none = Retention {
            max_completed: 0,
            max_failed: 0,
            max_age: Duration::from_secs(3600),
        };
        let reaped = reap(
            &pods,
            &HashSet::new(),
            none,
            "2026-01-01T00:02:00Z".parse().unwrap(),
        );
        assert_eq!(names_of(&reaped), ["s", "f"]);
    }
}
