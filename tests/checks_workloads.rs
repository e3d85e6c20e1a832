//! The checks that create workloads (deployment, daemonset, storage) through the real
//! Kubernetes client, against the fake API server of `support/fake_api.rs` with a per-test
//! "controller" that reacts to what the check creates the way the cluster's controllers
//! would (or would not). Each test shows what the check concluded and that it deleted what it
//! created.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;

use kuberhealthy::checker::checks::knobs::Knobs;
use kuberhealthy::checker::checks::{daemonset, deployment, storage};
use serde_json::{Value, json};
use support::fake_api::{Cluster, Happened, Shared, fake_api};

const NS: &str = "kh";

fn pods() -> String {
    format!("/api/v1/namespaces/{NS}/pods")
}

fn events() -> String {
    format!("/api/v1/namespaces/{NS}/events")
}

fn requests(cluster: &Shared) -> Vec<String> {
    cluster.lock().unwrap().requests.clone()
}

fn issued(cluster: &Shared, request: &str) -> bool {
    requests(cluster).iter().any(|r| r == request)
}

fn knobs(pairs: &[(&str, &str)]) -> Knobs {
    let mut all = vec![("KH_POD_NAMESPACE", NS), ("SHUTDOWN_GRACE_PERIOD", "2s")];
    all.extend_from_slice(pairs);
    Knobs::from_pairs(&all)
}

/// A web server answering 200 to every GET, counting them, as the Deployment's pods would.
async fn web_server() -> (u16, Arc<Mutex<u32>>) {
    let hits = Arc::new(Mutex::new(0u32));
    let counted = hits.clone();
    let app = Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            *counted.lock().unwrap() += 1;
            "Welcome to nginx!"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, hits)
}

/// The time left given to the checks that fail by running out of it.
const RUN_TIME: Duration = Duration::from_secs(6);

/// Runs the check under the time-out `checks::execute` puts around it: a check must finish,
/// cleaning up included, before the runner would cut it off.
async fn within_the_runners_time_out(
    check: impl Future<Output = kuberhealthy::checker::checks::Outcome>,
) -> kuberhealthy::checker::checks::Outcome {
    tokio::time::timeout(RUN_TIME, check)
        .await
        .expect("the check, clean-up included, outlasted the time left it was given")
}

// --- deployment -------------------------------------------------------------------------

fn deployment_pods_of(c: &mut Cluster, deployment: &Value, pod_status: Value) {
    let name = deployment["metadata"]["name"].as_str().unwrap();
    let labels = deployment["spec"]["template"]["metadata"]["labels"].clone();
    for i in 0..deployment["spec"]["replicas"].as_i64().unwrap() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-{i}"), "namespace": NS, "labels": labels},
            "status": pod_status
        });
        c.put(&pods(), pod);
    }
}

/// The Deployment controller of a healthy cluster: every replica of the current template
/// becomes available.
fn deployments_become_available(c: &mut Cluster, happened: &Happened) {
    match happened {
        Happened::Created(coll, d) | Happened::Patched(coll, d)
            if coll.ends_with("/deployments") =>
        {
            let mut d = (*d).clone();
            let n = d["spec"]["replicas"].clone();
            d["status"] = json!({
                "observedGeneration": d["metadata"]["generation"],
                "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n
            });
            c.put(coll, d);
        }
        _ => {}
    }
}

/// A cluster that cannot pull the image: the pods stay Pending in ImagePullBackOff.
fn deployments_never_available(c: &mut Cluster, happened: &Happened) {
    match happened {
        Happened::Created(coll, d) if coll.ends_with("/deployments") => {
            let mut d = (*d).clone();
            let n = d["spec"]["replicas"].clone();
            d["status"] = json!({
                "observedGeneration": 1, "replicas": n, "updatedReplicas": n,
                "unavailableReplicas": n
            });
            c.put(coll, d.clone());
            deployment_pods_of(
                c,
                &d,
                json!({
                    "phase": "Pending",
                    "containerStatuses": [{
                        "name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                        "state": {"waiting": {"reason": "ImagePullBackOff",
                            "message": "Back-off pulling image \"nginxinc/nginx-unprivileged:1.17.8\""}}
                    }]
                }),
            );
        }
        Happened::Deleted(coll) if coll.ends_with("/deployments") => {
            for pod in c.items(&pods()) {
                c.remove(&pods(), pod["metadata"]["name"].as_str().unwrap());
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn deployment_becomes_available_answers_200_rolls_and_is_deleted() {
    let (port, hits) = web_server().await;
    let (client, cluster) = fake_api(deployments_become_available, |_| {}).await;
    let port = port.to_string();
    let mut k = knobs(&[
        ("CHECK_LOAD_BALANCER_PORT", &port),
        ("CHECK_DEPLOYMENT_ROLLING_UPDATE", "true"),
    ]);
    let config = deployment::Config::read(&mut k);
    k.finish().unwrap();
    let outcome = deployment::check(client, &config, Duration::from_secs(20)).await;
    assert_eq!(outcome, Ok(()));
    // Once before and once after the rolling update.
    assert_eq!(*hits.lock().unwrap(), 2);
    let deployments = format!("/apis/apps/v1/namespaces/{NS}/deployments");
    let services = format!("/api/v1/namespaces/{NS}/services");
    let mut made: Vec<String> = requests(&cluster)
        .into_iter()
        .filter(|r| !r.starts_with("GET"))
        .collect();
    // The final two deletes run concurrently.
    made[5..].sort();
    assert_eq!(
        made,
        [
            format!("DELETE {deployments}/deployment-deployment"),
            format!("DELETE {services}/deployment-svc"),
            format!("POST {deployments}"),
            format!("POST {services}"),
            format!("PATCH {deployments}/deployment-deployment"),
            format!("DELETE {services}/deployment-svc"),
            format!("DELETE {deployments}/deployment-deployment"),
        ]
    );
    let c = cluster.lock().unwrap();
    let rolled = c
        .log
        .iter()
        .filter(|(_, coll, kind, _)| *coll == deployments && *kind == "MODIFIED")
        .filter_map(|(_, _, _, d)| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str())
        .any(|image| image == deployment::DEFAULT_IMAGE_ROLL_TO);
    assert!(
        rolled,
        "the Deployment was never rolled to CHECK_IMAGE_ROLL_TO"
    );
    assert!(c.items(&deployments).is_empty() && c.items(&services).is_empty());
}

#[tokio::test]
async fn a_deployment_that_never_becomes_available_fails_and_is_still_deleted() {
    let (client, cluster) = fake_api(deployments_never_available, |_| {}).await;
    let mut k = knobs(&[]);
    let config = deployment::Config::read(&mut k);
    k.finish().unwrap();
    let errors = within_the_runners_time_out(deployment::check(client, &config, RUN_TIME))
        .await
        .unwrap_err();
    assert_eq!(
        errors,
        [
            "Deployment deployment-deployment in namespace kh with image nginxinc/nginx-unprivileged:1.17.8 and 2 replicas: not available in time: 0 of 2 replicas available",
            "pod deployment-deployment-0 of the Deployment is Pending: ImagePullBackOff: Back-off pulling image \"nginxinc/nginx-unprivileged:1.17.8\"",
            "pod deployment-deployment-1 of the Deployment is Pending: ImagePullBackOff: Back-off pulling image \"nginxinc/nginx-unprivileged:1.17.8\"",
        ]
    );
    assert!(issued(
        &cluster,
        &format!("DELETE /apis/apps/v1/namespaces/{NS}/deployments/deployment-deployment")
    ));
    assert!(issued(
        &cluster,
        &format!("DELETE /api/v1/namespaces/{NS}/services/deployment-svc")
    ));
    let c = cluster.lock().unwrap();
    assert!(
        c.items(&format!("/apis/apps/v1/namespaces/{NS}/deployments"))
            .is_empty()
    );
}

#[tokio::test]
async fn a_refused_watch_is_named_in_the_error_and_the_deletes_are_still_issued() {
    let deployments = format!("/apis/apps/v1/namespaces/{NS}/deployments");
    let refused = deployments.clone();
    let (client, cluster) = fake_api(deployments_become_available, move |c| {
        c.forbidden.push(refused)
    })
    .await;
    let mut k = knobs(&[]);
    let config = deployment::Config::read(&mut k);
    k.finish().unwrap();
    let errors = within_the_runners_time_out(deployment::check(client, &config, RUN_TIME))
        .await
        .unwrap_err();
    assert!(
        errors[0].starts_with(
            "Deployment deployment-deployment in namespace kh with image nginxinc/nginx-unprivileged:1.17.8 and 2 replicas: not available in time: the Deployment was not seen (the last watch error: "
        ) && errors[0].contains("forbidden"),
        "{errors:?}"
    );
    // Deleting is still tried; that it could not be watched to the end is said too.
    assert!(
        errors.last().unwrap().starts_with(
            "cannot watch Deployment deployment-deployment in namespace kh being deleted: "
        ),
        "{errors:?}"
    );
    assert!(issued(
        &cluster,
        &format!("DELETE {deployments}/deployment-deployment")
    ));
    assert!(issued(
        &cluster,
        &format!("DELETE /api/v1/namespaces/{NS}/services/deployment-svc")
    ));
}

#[tokio::test]
async fn a_bad_knob_is_reported_before_anything_is_created() {
    let outcome = deployment::run(
        knobs(&[("CHECK_DEPLOYMENT_REPLICAS", "many")]),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        outcome,
        Err(vec![
            "CHECK_DEPLOYMENT_REPLICAS is \"many\", expected a whole number".to_string()
        ])
    );
}

// --- daemonset --------------------------------------------------------------------------

fn node(name: &str, taints: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("node-{name}"), "labels": {"kubernetes.io/hostname": name}},
        "spec": {"taints": taints}
    })
}

fn seed_nodes(c: &mut Cluster) {
    c.put("/api/v1/nodes", node("node-a", json!([])));
    c.put("/api/v1/nodes", node("node-b", json!([])));
    c.put(
        "/api/v1/nodes",
        node(
            "gpu-1",
            json!([{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]),
        ),
    );
}

/// A DaemonSet controller that places a Ready pod on each of `nodes`.
fn daemon_pods_on(c: &mut Cluster, happened: &Happened, nodes: &[&str]) {
    match happened {
        Happened::Created(coll, ds) if coll.ends_with("/daemonsets") => {
            let name = ds["metadata"]["name"].as_str().unwrap();
            let labels = ds["spec"]["template"]["metadata"]["labels"].clone();
            for node in nodes {
                c.put(
                    &pods(),
                    json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": format!("{name}-{node}"), "namespace": NS, "labels": labels},
                        "spec": {"nodeName": node, "containers": [{"name": "pause"}]},
                        "status": {"phase": "Running",
                            "conditions": [{"type": "Ready", "status": "True"}]}
                    }),
                );
            }
        }
        Happened::Deleted(coll) if coll.ends_with("/daemonsets") => {
            for pod in c.items(&pods()) {
                c.remove(&pods(), pod["metadata"]["name"].as_str().unwrap());
            }
        }
        _ => {}
    }
}

fn daemon_pods_everywhere_schedulable(c: &mut Cluster, happened: &Happened) {
    daemon_pods_on(c, happened, &["node-a", "node-b"]);
}

fn daemon_pod_missing_on_node_b(c: &mut Cluster, happened: &Happened) {
    daemon_pods_on(c, happened, &["node-a"]);
}

#[tokio::test]
async fn a_daemonset_on_every_node_it_tolerates_passes_without_the_tainted_node() {
    let (client, cluster) = fake_api(daemon_pods_everywhere_schedulable, seed_nodes).await;
    let mut k = knobs(&[]);
    let config = daemonset::Config::read(&mut k);
    k.finish().unwrap();
    let outcome = daemonset::check(client, &config, Duration::from_secs(20)).await;
    assert_eq!(outcome, Ok(()));
    let ds = format!("/apis/apps/v1/namespaces/{NS}/daemonsets");
    let made: Vec<String> = requests(&cluster)
        .into_iter()
        .filter(|r| !r.starts_with("GET"))
        .collect();
    assert_eq!(
        made,
        [
            format!("DELETE {ds}/daemonset"),
            format!("POST {ds}"),
            format!("DELETE {ds}/daemonset"),
        ]
    );
    let c = cluster.lock().unwrap();
    assert!(c.items(&ds).is_empty() && c.items(&pods()).is_empty());
}

#[tokio::test]
async fn a_node_without_its_daemon_pod_is_named_and_the_daemonset_deleted() {
    let (client, cluster) = fake_api(daemon_pod_missing_on_node_b, seed_nodes).await;
    let mut k = knobs(&[]);
    let config = daemonset::Config::read(&mut k);
    k.finish().unwrap();
    let errors = within_the_runners_time_out(daemonset::check(client, &config, RUN_TIME))
        .await
        .unwrap_err();
    assert_eq!(
        errors,
        [
            "DaemonSet daemonset in namespace kh did not have a Ready pod on 1 of 2 expected nodes in time",
            "node node-b: no pod of the DaemonSet",
        ]
    );
    assert!(issued(
        &cluster,
        &format!("DELETE /apis/apps/v1/namespaces/{NS}/daemonsets/daemonset")
    ));
    assert!(cluster.lock().unwrap().items(&pods()).is_empty());
}

#[tokio::test]
async fn a_tolerated_taint_makes_its_node_expected() {
    // Tolerating the GPU taint makes gpu-1 expected, and it has no pod.
    let (client, _) = fake_api(daemon_pods_everywhere_schedulable, seed_nodes).await;
    let mut k = knobs(&[("TOLERATIONS", "nvidia.com/gpu")]);
    let config = daemonset::Config::read(&mut k);
    k.finish().unwrap();
    let errors = within_the_runners_time_out(daemonset::check(client, &config, RUN_TIME))
        .await
        .unwrap_err();
    assert_eq!(errors[1..], ["node gpu-1: no pod of the DaemonSet"]);
}

// --- storage ----------------------------------------------------------------------------

fn claims() -> String {
    format!("/api/v1/namespaces/{NS}/persistentvolumeclaims")
}

/// No provisioner for the class: the claim stays Pending and an Event says why.
fn claims_stay_pending(c: &mut Cluster, happened: &Happened) {
    if let Happened::Created(coll, pvc) = happened
        && coll.ends_with("/persistentvolumeclaims")
    {
        let mut pvc = (*pvc).clone();
        pvc["status"] = json!({"phase": "Pending"});
        c.put(coll, pvc.clone());
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "storage-check-pvc.1", "namespace": NS},
            "involvedObject": {"kind": "PersistentVolumeClaim", "namespace": NS,
                "name": pvc["metadata"]["name"], "uid": pvc["metadata"]["uid"]},
            "reason": "ProvisioningFailed",
            "message": "storageclass.storage.k8s.io \"fast\" not found",
            "type": "Warning"
        });
        c.put(&events(), event);
    }
}

/// A working provisioner and kubelet: the claim binds, the pod succeeds.
fn claims_bind_and_pods_succeed(c: &mut Cluster, happened: &Happened) {
    if let Happened::Created(coll, object) = happened {
        let mut object = (*object).clone();
        if coll.ends_with("/persistentvolumeclaims") {
            object["status"] = json!({"phase": "Bound"});
        } else if coll.ends_with("/pods") {
            object["status"] = json!({"phase": "Succeeded"});
        } else {
            return;
        }
        c.put(coll, object);
    }
}

#[tokio::test]
async fn a_claim_stuck_pending_fails_with_the_events_message_and_is_deleted() {
    let (client, cluster) = fake_api(claims_stay_pending, |_| {}).await;
    let mut k = knobs(&[("CHECK_STORAGE_PVC_STORAGE_CLASS_NAME", "fast")]);
    let config = storage::Config::read(&mut k);
    k.finish().unwrap();
    let errors = within_the_runners_time_out(storage::check(client, &config, RUN_TIME))
        .await
        .unwrap_err();
    assert_eq!(
        errors,
        [
            "creating the volume: PersistentVolumeClaim storage-check-pvc in namespace kh is Pending, not Bound; ProvisioningFailed: storageclass.storage.k8s.io \"fast\" not found"
        ]
    );
    let made: Vec<String> = requests(&cluster)
        .into_iter()
        .filter(|r| !r.starts_with("GET"))
        .collect();
    assert_eq!(
        made,
        [
            format!("DELETE {}/storage-check-job", pods()),
            format!("DELETE {}/storage-check-pvc", claims()),
            format!("POST {}", claims()),
            format!("DELETE {}/storage-check-job", pods()),
            format!("DELETE {}/storage-check-pvc", claims()),
        ]
    );
    assert!(cluster.lock().unwrap().items(&claims()).is_empty());
}

#[tokio::test]
async fn a_claim_that_binds_and_a_pod_that_writes_and_reads_pass() {
    let (client, cluster) = fake_api(claims_bind_and_pods_succeed, |_| {}).await;
    let mut k = knobs(&[]);
    let config = storage::Config::read(&mut k);
    k.finish().unwrap();
    let outcome = storage::check(client, &config, Duration::from_secs(20)).await;
    assert_eq!(outcome, Ok(()));
    let c = cluster.lock().unwrap();
    let pod = c
        .log
        .iter()
        .find(|(_, coll, kind, _)| *coll == pods() && *kind == "ADDED")
        .map(|(_, _, _, p)| p.clone())
        .unwrap();
    assert_eq!(
        pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "storage-check-pvc"
    );
    assert!(c.items(&pods()).is_empty() && c.items(&claims()).is_empty());
}
