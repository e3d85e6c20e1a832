//! The checks that create workloads (deployment, daemonset, storage) through the real
//! Kubernetes client, against a fake API server on 127.0.0.1: an in-memory store that answers
//! creates, merge patches, deletes, lists and watches (newline-delimited JSON events from a
//! resourceVersion), and a per-test "controller" that reacts to what the check creates the way
//! the cluster's controllers would (or would not). Each test shows what the check concluded and
//! that it deleted what it created.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kuberhealthy::checker::checks::knobs::Knobs;
use kuberhealthy::checker::checks::{daemonset, deployment, storage};
use serde_json::{Value, json};
use tokio::sync::broadcast;

const NS: &str = "kh";
const PLURALS: &[&str] = &[
    "pods",
    "services",
    "deployments",
    "daemonsets",
    "persistentvolumeclaims",
    "events",
    "nodes",
];

/// A change, as a watch reports it: resourceVersion, collection path, type, object.
type Change = (u64, String, &'static str, Value);

/// What happened to an object, for the fake controllers.
enum Happened<'a> {
    Created(&'a str, &'a Value),
    Patched(&'a str, &'a Value),
    Deleted(&'a str),
}

type Controller = fn(&mut Cluster, &Happened);

struct Cluster {
    rv: u64,
    uids: u64,
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    log: Vec<Change>,
    live: broadcast::Sender<Change>,
    /// "METHOD path" of every request but lists and watches.
    requests: Vec<String>,
    controller: Controller,
    /// Collections whose lists and watches are refused, as without RBAC for them.
    forbidden: Vec<String>,
}

impl Cluster {
    /// Stores the object (a create or an update), as a watch would report it.
    fn put(&mut self, collection: &str, mut object: Value) {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let objects = self.objects.entry(collection.to_string()).or_default();
        let kind = if objects.contains_key(&name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        objects.insert(name, object.clone());
        self.record((self.rv, collection.to_string(), kind, object));
    }

    fn remove(&mut self, collection: &str, name: &str) -> Option<Value> {
        let object = self.objects.get_mut(collection)?.remove(name)?;
        self.rv += 1;
        self.record((self.rv, collection.to_string(), "DELETED", object.clone()));
        Some(object)
    }

    fn record(&mut self, change: Change) {
        self.log.push(change.clone());
        let _ = self.live.send(change);
    }

    fn get(&self, collection: &str, name: &str) -> Option<Value> {
        self.objects.get(collection)?.get(name).cloned()
    }

    fn items(&self, collection: &str) -> Vec<Value> {
        self.objects
            .get(collection)
            .map(|o| o.values().cloned().collect())
            .unwrap_or_default()
    }

    fn new_uid(&mut self) -> String {
        self.uids += 1;
        format!("uid-{}", self.uids)
    }
}

type Shared = Arc<Mutex<Cluster>>;

fn pods() -> String {
    format!("/api/v1/namespaces/{NS}/pods")
}

fn events() -> String {
    format!("/api/v1/namespaces/{NS}/events")
}

/// Splits a path into its collection and, for an item, the name.
fn locate(path: &str) -> (String, Option<String>) {
    let last = path.rsplit('/').next().unwrap_or_default();
    if PLURALS.contains(&last) {
        (path.to_string(), None)
    } else {
        let (collection, name) = path.rsplit_once('/').unwrap();
        (collection.to_string(), Some(name.to_string()))
    }
}

/// Whether the object matches `labelSelector` and `fieldSelector` (equality terms only).
fn selected(object: &Value, query: &HashMap<String, String>) -> bool {
    let terms = |key: &str| -> Vec<(String, String)> {
        query
            .get(key)
            .map(|s| {
                s.split(',')
                    .filter(|t| !t.is_empty())
                    .map(|t| {
                        let (k, v) = t.split_once('=').unwrap();
                        (k.to_string(), v.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let labels_match = terms("labelSelector")
        .iter()
        .all(|(k, v)| object["metadata"]["labels"][k].as_str() == Some(v));
    let fields_match = terms("fieldSelector").iter().all(|(path, v)| {
        let found = path.split('.').fold(object, |o, key| &o[key]);
        found.as_str() == Some(v)
    });
    labels_match && fields_match
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
        "reason": reason, "message": message
    });
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let object = target.as_object_mut().unwrap();
            for (k, v) in fields {
                if v.is_null() {
                    object.remove(k);
                } else {
                    merge(object.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

async fn serve(
    State(cluster): State<Shared>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let (coll, name) = locate(&path);
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let mut c = cluster.lock().unwrap();
    if method != Method::GET || name.is_some() {
        c.requests.push(format!("{method} {path}"));
    }
    match (method, name) {
        (Method::GET, None) if c.forbidden.contains(&coll) => status(
            403,
            "Forbidden",
            format!("cannot list or watch {coll}: forbidden"),
        ),
        (Method::GET, None) if watching => {
            let since: u64 = query
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let replay: Vec<Change> = c
                .log
                .iter()
                .filter(|(rv, at, _, _)| *rv > since && *at == coll)
                .cloned()
                .collect();
            let live = c.live.subscribe();
            drop(c);
            let line = |(_, _, kind, object): Change| -> Result<Bytes, Infallible> {
                Ok(Bytes::from(format!(
                    "{}\n",
                    json!({"type": kind, "object": object})
                )))
            };
            let (q1, q2, coll2) = (query.clone(), query.clone(), coll.clone());
            let replayed = futures::stream::iter(
                replay
                    .into_iter()
                    .filter(move |ch| selected(&ch.3, &q1))
                    .map(line),
            );
            let following = futures::stream::unfold(live, |mut live| async move {
                loop {
                    match live.recv().await {
                        Ok(change) => return Some((change, live)),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
            use futures::StreamExt;
            let following = following
                .filter(move |ch| {
                    let keep = ch.1 == coll2 && selected(&ch.3, &q2);
                    async move { keep }
                })
                .map(line);
            Response::new(Body::from_stream(replayed.chain(following)))
        }
        (Method::GET, None) => {
            let items: Vec<Value> = c
                .items(&coll)
                .into_iter()
                .filter(|o| selected(o, &query))
                .collect();
            let body = json!({
                "apiVersion": "v1", "kind": "List",
                "metadata": {"resourceVersion": c.rv.to_string()}, "items": items
            });
            axum::Json(body).into_response()
        }
        (Method::GET, Some(name)) => match c.get(&coll, &name) {
            Some(o) => axum::Json(o).into_response(),
            None => status(404, "NotFound", format!("{name} not found")),
        },
        (Method::POST, None) => {
            let mut object: Value = serde_json::from_slice(&body).unwrap();
            let name = object["metadata"]["name"].as_str().unwrap().to_string();
            if c.get(&coll, &name).is_some() {
                return status(409, "AlreadyExists", format!("{name} already exists"));
            }
            object["metadata"]["uid"] = json!(c.new_uid());
            object["metadata"]["generation"] = json!(1);
            object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            // What the API server allocates: a Service's cluster IP (here, this host).
            if coll.ends_with("/services") {
                object["spec"]["clusterIP"] = json!("127.0.0.1");
            }
            c.put(&coll, object.clone());
            let react = c.controller;
            react(&mut c, &Happened::Created(&coll, &object));
            let stored = c.get(&coll, &name).unwrap_or(object);
            (StatusCode::CREATED, axum::Json(stored)).into_response()
        }
        (Method::PATCH, Some(name)) => {
            let Some(mut object) = c.get(&coll, &name) else {
                return status(404, "NotFound", format!("{name} not found"));
            };
            let patch: Value = serde_json::from_slice(&body).unwrap();
            let before = object["spec"].clone();
            merge(&mut object, &patch);
            if object["spec"] != before {
                let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
                object["metadata"]["generation"] = json!(generation + 1);
            }
            c.put(&coll, object.clone());
            let react = c.controller;
            react(&mut c, &Happened::Patched(&coll, &object));
            axum::Json(c.get(&coll, &name).unwrap()).into_response()
        }
        (Method::DELETE, Some(name)) => match c.remove(&coll, &name) {
            Some(object) => {
                let react = c.controller;
                react(&mut c, &Happened::Deleted(&coll));
                axum::Json(object).into_response()
            }
            None => status(404, "NotFound", format!("{name} not found")),
        },
        (method, _) => status(405, "MethodNotAllowed", format!("{method} {path}")),
    }
}

async fn fake_api(
    controller: Controller,
    seed: impl FnOnce(&mut Cluster),
) -> (kube::Client, Shared) {
    let (live, _) = broadcast::channel(1024);
    let mut cluster = Cluster {
        rv: 1,
        uids: 0,
        objects: BTreeMap::new(),
        log: Vec::new(),
        live,
        requests: Vec::new(),
        controller,
        forbidden: Vec::new(),
    };
    seed(&mut cluster);
    let shared = Arc::new(Mutex::new(cluster));
    let app = Router::new().fallback(serve).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = kube::Config::new(url.parse().unwrap());
    (kube::Client::try_from(config).unwrap(), shared)
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
