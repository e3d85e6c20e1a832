use futures::StreamExt;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde_json::json;

use super::*;
use crate::api::{KuberhealthyCheck, KuberhealthyState};
use crate::controller::cache::cached;

/// Metadata as the API server returns an object created with `kubectl apply`.
fn applied_metadata(name: &str) -> serde_json::Value {
    json!({
        "name": name,
        "namespace": "checks",
        "uid": "5c1f0c9e-0000-4000-8000-000000000001",
        "resourceVersion": "42",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": {"team": "a"},
        "annotations": {
            LAST_APPLIED: "{\"apiVersion\":\"comcast.github.io/v1\",\"kind\":\"KuberhealthyCheck\"}",
            "team/owner": "ops"
        },
        "managedFields": [{
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": "comcast.github.io/v1",
            "time": "2026-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:runInterval": {}, "f:timeout": {}, "f:podSpec": {}}}
        }]
    })
}

fn check(name: &str) -> KuberhealthyCheck {
    serde_json::from_value(json!({
        "apiVersion": "comcast.github.io/v1",
        "kind": "KuberhealthyCheck",
        "metadata": applied_metadata(name),
        "spec": {
            "runInterval": "1m",
            "timeout": "30s",
            "podSpec": {"containers": [{"name": "main", "image": "example/checker:v1"}]}
        }
    }))
    .unwrap()
}

fn pod(name: &str) -> Pod {
    let mut metadata = applied_metadata(name);
    metadata["labels"] = json!({"app": "kuberhealthy-check", "kuberhealthy-run-id": "u-1"});
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": "node-a",
            "restartPolicy": "Never",
            "containers": [{
                "name": "main",
                "image": "example/checker:v1",
                "env": [{"name": "KH_REPORTING_URL", "value": "http://kuberhealthy/externalCheckStatus"}]
            }]
        },
        "status": {
            "phase": "Failed",
            "podIP": "10.213.0.7",
            "podIPs": [{"ip": "10.213.0.7"}],
            "hostIP": "10.0.0.1",
            "startTime": "2026-01-01T00:00:01Z",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{
                "name": "main",
                "image": "example/checker:v1",
                "imageID": "sha256:abc",
                "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 3, "reason": "Error",
                                         "finishedAt": "2026-01-01T00:00:09Z"}}
            }]
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn cached_objects_carry_no_managed_fields_nor_last_applied() {
    let (store, writer) = reflector::store::<KuberhealthyCheck>();
    let events = futures::stream::iter([
        Ok(Event::Init),
        Ok(Event::InitApply(check("a"))),
        Ok(Event::InitDone),
        Ok(Event::Apply(check("b"))),
    ]);
    let passed: Vec<_> = cached(writer, events, trim).collect().await;
    assert_eq!(passed.len(), 4);
    let cached = store.state();
    assert_eq!(cached.len(), 2);
    for object in cached {
        assert_eq!(object.metadata.managed_fields, None, "{object:?}");
        let annotations = object.metadata.annotations.as_ref().unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED));
        // What the replica reads stays.
        assert_eq!(annotations["team/owner"], "ops");
        assert_eq!(object.metadata.labels.as_ref().unwrap()["team"], "a");
        assert_eq!(object.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(object.spec, check("a").spec);
    }
}

#[test]
fn an_object_with_only_the_last_applied_annotation_keeps_none() {
    let mut state: KuberhealthyState = serde_json::from_value(json!({
        "apiVersion": "comcast.github.io/v1",
        "kind": "KuberhealthyState",
        "metadata": {"name": "s", "namespace": "checks",
                     "annotations": {LAST_APPLIED: "{}"}},
        "spec": {"OK": true, "Errors": [], "uuid": "u"}
    }))
    .unwrap();
    let spec = state.spec.clone();
    trim(&mut state);
    assert_eq!(state.metadata.annotations, None);
    assert_eq!(state.spec, spec);
}

#[test]
fn states_written_back_whole_keep_the_last_applied_annotation() {
    // The leader replaces khstates from the cached copy: dropping the annotation there would
    // delete it from the stored object on the next write.
    let mut state: KuberhealthyState = serde_json::from_value(json!({
        "apiVersion": "comcast.github.io/v1",
        "kind": "KuberhealthyState",
        "metadata": applied_metadata("s"),
        "spec": {"OK": true, "Errors": [], "uuid": "u"}
    }))
    .unwrap();
    trim_written(&mut state);
    assert_eq!(state.metadata.managed_fields, None);
    let annotations = state.metadata.annotations.as_ref().unwrap();
    assert!(annotations.contains_key(LAST_APPLIED));
    assert_eq!(annotations["team/owner"], "ops");
}

#[tokio::test]
async fn checker_pods_are_held_as_their_projection() {
    let (store, writer) = reflector::store::<Pod>();
    let events = futures::stream::iter([Ok(Event::Apply(pod("c-1")))]);
    cached(writer, events, project_pod)
        .collect::<Vec<_>>()
        .await;
    let held = store.state().pop().unwrap();
    assert_eq!(held.metadata.managed_fields, None);
    assert!(
        !held
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(LAST_APPLIED)
    );
    assert_eq!(
        held.metadata.labels.as_ref().unwrap()["kuberhealthy-run-id"],
        "u-1"
    );
    let spec = held.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("node-a"));
    assert!(spec.containers.is_empty() && spec.restart_policy.is_none());
    let status = held.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.pod_ip.as_deref(), Some("10.213.0.7"));
    assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "10.213.0.7");
    assert!(status.host_ip.is_none() && status.conditions.is_none() && status.start_time.is_none());
    let container = &status.container_statuses.as_ref().unwrap()[0];
    assert_eq!(container.name, "main");
    assert!(container.image.is_empty());
    let terminated = container
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (3, Some("Error"))
    );
    // What the supervisor and report intake judge by reads the same from the projection.
    use crate::controller::run::verdict::{describe, judge};
    let full = pod("c-1");
    let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
    let deadline: jiff::Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
    assert_eq!(describe(&held), describe(&full));
    assert_eq!(
        judge("checks/c", "c-1", deadline, Some(&held), now),
        judge("checks/c", "c-1", deadline, Some(&full), now)
    );
}
