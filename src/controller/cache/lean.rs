//! What the cache keeps of each object: only what the replica reads. Objects are trimmed as
//! they arrive, before the reflector stores them: `managedFields` and kubectl's
//! last-applied-configuration annotation (together often larger than the object) go from
//! every object the replica only reads (khstates and HealthChecks, which the leader writes
//! back whole, keep the annotation); checker pods are held as the projection the supervisor and report intake
//! read (identity, labels, annotations, node, phase, addresses, container states).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

/// kubectl's copy of the whole object as last applied, kept in an annotation.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops the metadata nobody in the replica reads.
pub fn trim_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Any cached resource: its metadata trimmed.
pub fn trim<K: Resource>(object: &mut K) {
    trim_metadata(object.meta_mut());
}

/// A resource the leader writes back whole (khstates are replaced, a HealthCheck's finalizer
/// is released by a replace): only `managedFields` go, so a write never drops kubectl's
/// last-applied annotation from the stored object.
pub fn trim_written<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// A checker pod as the cache holds it: its spec reduced to the node it runs on, its status
/// to phase, addresses, reason and container states.
pub fn project_pod(pod: &mut Pod) {
    trim_metadata(&mut pod.metadata);
    pod.metadata.generate_name = None;
    pod.spec = pod.spec.take().map(|spec| PodSpec {
        node_name: spec.node_name,
        ..Default::default()
    });
    pod.status = pod.status.take().map(|status| PodStatus {
        phase: status.phase,
        pod_ip: status.pod_ip,
        pod_ips: status.pod_ips,
        reason: status.reason,
        message: status.message,
        container_statuses: status.container_statuses.map(|statuses| {
            statuses
                .into_iter()
                .map(|s| ContainerStatus {
                    name: s.name,
                    state: s.state,
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    });
}

#[cfg(test)]
mod tests;
