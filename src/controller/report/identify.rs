//! Finding the run of a report that came without a `kh-run-uuid` header, as v2 did: by the
//! connection's source address, which is the checker pod's `status.podIP` (pure).
//!
//! Only the cache is read. A checker pod is one of the cached pods (label
//! `app=kuberhealthy-check`) with a run label (v2's `kuberhealthy-run-id` or v3's
//! `kh-run-uuid`); it can report while it has not finished.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::controller::run::pod::run_of;

/// How a report was tied to its run (the `identified_by` field of the report's log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifiedBy {
    /// The `kh-run-uuid` header named the run.
    Header,
    /// The connection's source address was the checker pod's address.
    SourceAddress,
}

impl IdentifiedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifiedBy::Header => "kh-run-uuid header",
            IdentifiedBy::SourceAddress => "source address",
        }
    }
}

/// What the source address says about a report's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identification {
    /// The run of the one checker pod with that address (`namespace/name`).
    Run { uuid: String, pod: String },
    /// No unfinished checker pod has the address. `pending` when some unfinished checker pod
    /// has no address yet: its status may still be on its way to the cache.
    Unknown { pending: bool },
    /// Several unfinished checker pods have the address (`hostNetwork` pods share their
    /// node's) and not exactly one of them belongs to a run in flight.
    Ambiguous { pods: Vec<String> },
}

/// The checker pod among `pods` whose `status.podIP` or `status.podIPs` is `peer`. When
/// several are, the one whose run is the run in flight of its record (`in_flight(uuid)`).
pub fn by_address(
    pods: &[Arc<Pod>],
    peer: IpAddr,
    in_flight: impl Fn(&str) -> bool,
) -> Identification {
    let peer = peer.to_canonical();
    let unfinished: Vec<(&Pod, &str)> = pods
        .iter()
        .filter(|pod| !finished(pod))
        .filter_map(|pod| Some((pod.as_ref(), run_of(pod).filter(|uuid| !uuid.is_empty())?)))
        .collect();
    let candidates: Vec<(&Pod, &str)> = unfinished
        .iter()
        .copied()
        .filter(|(pod, _)| addresses(pod).any(|ip| ip == peer))
        .collect();
    let chosen = match candidates.as_slice() {
        [] => {
            let pending = unfinished
                .iter()
                .any(|(pod, _)| addresses(pod).next().is_none());
            return Identification::Unknown { pending };
        }
        [one] => Some(*one),
        several => {
            let mut in_flight = several.iter().filter(|(_, uuid)| in_flight(uuid));
            match (in_flight.next(), in_flight.next()) {
                (Some(one), None) => Some(*one),
                _ => None,
            }
        }
    };
    match chosen {
        Some((pod, uuid)) => Identification::Run {
            uuid: uuid.to_string(),
            pod: key(pod),
        },
        None => Identification::Ambiguous {
            pods: candidates.iter().map(|(pod, _)| key(pod)).collect(),
        },
    }
}

fn key(pod: &Pod) -> String {
    crate::api::key_of(&pod.namespace().unwrap_or_default(), &pod.name_any())
}

fn finished(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// `status.podIP` and every `status.podIPs` entry that parses as an address.
fn addresses(pod: &Pod) -> impl Iterator<Item = IpAddr> + '_ {
    let status = pod.status.as_ref();
    let first = status.and_then(|s| s.pod_ip.as_deref());
    let all = status
        .and_then(|s| s.pod_ips.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|ip| ip.ip.as_str());
    first
        .into_iter()
        .chain(all)
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, uuid: &str, phase: &str, ips: &[&str]) -> Arc<Pod> {
        let mut status = json!({ "phase": phase });
        if let Some(first) = ips.first() {
            status["podIP"] = json!(first);
            status["podIPs"] = json!(ips.iter().map(|ip| json!({ "ip": ip })).collect::<Vec<_>>());
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {
                    "name": name,
                    "namespace": "ns",
                    "labels": { "app": "kuberhealthy-check", "kuberhealthy-run-id": uuid },
                },
                "status": status,
            }))
            .unwrap(),
        )
    }

    /// No run is known to be in flight.
    fn none(_: &str) -> bool {
        false
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_pod_with_the_address_gives_its_run() {
        let pods = [
            pod("a", "u-a", "Running", &["10.0.0.2"]),
            pod("b", "u-b", "Running", &["10.0.0.3", "fd00::3"]),
        ];
        assert_eq!(
            by_address(&pods, ip("10.0.0.3"), none),
            Identification::Run {
                uuid: "u-b".into(),
                pod: "ns/b".into()
            }
        );
        assert_eq!(
            by_address(&pods, ip("fd00::3"), none),
            Identification::Run {
                uuid: "u-b".into(),
                pod: "ns/b".into()
            },
            "any of podIPs"
        );
        assert_eq!(
            by_address(&pods, ip("::ffff:10.0.0.2"), none),
            Identification::Run {
                uuid: "u-a".into(),
                pod: "ns/a".into()
            },
            "an IPv4 peer seen on an IPv6 socket"
        );
    }

    #[test]
    fn a_healthchecks_pod_is_found_by_its_v3_run_label() {
        let pod: Arc<Pod> = Arc::new(
            serde_json::from_value(json!({
                "metadata": {
                    "name": "v3-check-abcde",
                    "namespace": "ns",
                    "labels": { "app": "kuberhealthy-check", "healthcheck": "v3-check", "kh-run-uuid": "u-3" },
                },
                "status": { "phase": "Running", "podIP": "10.0.0.4" },
            }))
            .unwrap(),
        );
        assert_eq!(
            by_address(&[pod], ip("10.0.0.4"), none),
            Identification::Run {
                uuid: "u-3".into(),
                pod: "ns/v3-check-abcde".into()
            }
        );
    }

    #[test]
    fn finished_pods_and_pods_of_no_run_are_not_reporters() {
        let pods = [
            pod("done", "u-1", "Succeeded", &["10.0.0.2"]),
            pod("failed", "u-2", "Failed", &["10.0.0.2"]),
            pod("no-run", "", "Running", &["10.0.0.2"]),
        ];
        assert_eq!(
            by_address(&pods, ip("10.0.0.2"), none),
            Identification::Unknown { pending: false }
        );
    }

    #[test]
    fn an_unknown_address_is_pending_while_a_pod_has_none_yet() {
        let pods = [
            pod("a", "u-a", "Running", &["10.0.0.2"]),
            pod("new", "u-n", "Pending", &[]),
        ];
        assert_eq!(
            by_address(&pods, ip("10.0.0.9"), none),
            Identification::Unknown { pending: true }
        );
        assert_eq!(
            by_address(&pods[..1], ip("10.0.0.9"), none),
            Identification::Unknown { pending: false }
        );
    }

    #[test]
    fn shared_addresses_are_told_apart_by_the_run_in_flight() {
        let pods = [
            pod("old", "u-old", "Running", &["10.0.0.1"]),
            pod("new", "u-new", "Running", &["10.0.0.1"]),
        ];
        assert_eq!(
            by_address(&pods, ip("10.0.0.1"), |uuid| uuid == "u-new"),
            Identification::Run {
                uuid: "u-new".into(),
                pod: "ns/new".into()
            }
        );
        assert_eq!(
            by_address(&pods, ip("10.0.0.1"), |_| true),
            Identification::Ambiguous {
                pods: vec!["ns/old".into(), "ns/new".into()]
            }
        );
        assert_eq!(
            by_address(&pods, ip("10.0.0.1"), none),
            Identification::Ambiguous {
                pods: vec!["ns/old".into(), "ns/new".into()]
            }
        );
    }
}
