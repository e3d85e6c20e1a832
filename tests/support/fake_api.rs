//! A fake Kubernetes API server on 127.0.0.1 for the checks' tests, through the real
//! Kubernetes client: an in-memory store that answers gets, lists, creates, merge patches,
//! deletes and watches (newline-delimited JSON events from a resourceVersion), with a
//! per-test "controller" that reacts to what the check creates the way the cluster's
//! controllers would (or would not), and collections whose reads are refused as without RBAC.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub const PLURALS: &[&str] = &[
    "pods",
    "services",
    "deployments",
    "daemonsets",
    "persistentvolumeclaims",
    "events",
    "nodes",
    "resourcequotas",
];

/// A change, as a watch reports it: resourceVersion, collection path, type, object.
pub type Change = (u64, String, &'static str, Value);

/// What happened to an object, for the fake controllers.
pub enum Happened<'a> {
    Created(&'a str, &'a Value),
    Patched(&'a str, &'a Value),
    Deleted(&'a str),
}

pub type Controller = fn(&mut Cluster, &Happened);

pub struct Cluster {
    pub rv: u64,
    pub uids: u64,
    pub objects: BTreeMap<String, BTreeMap<String, Value>>,
    pub log: Vec<Change>,
    pub live: broadcast::Sender<Change>,
    /// "METHOD path" of every request but lists and watches.
    pub requests: Vec<String>,
    pub controller: Controller,
    /// Collections whose lists and watches are refused, as without RBAC for them.
    pub forbidden: Vec<String>,
    /// The collection path of every list, in order.
    pub lists: Vec<String>,
}

impl Cluster {
    /// Stores the object (a create or an update), as a watch would report it.
    pub fn put(&mut self, collection: &str, mut object: Value) {
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

    pub fn remove(&mut self, collection: &str, name: &str) -> Option<Value> {
        let object = self.objects.get_mut(collection)?.remove(name)?;
        self.rv += 1;
        self.record((self.rv, collection.to_string(), "DELETED", object.clone()));
        Some(object)
    }

    fn record(&mut self, change: Change) {
        self.log.push(change.clone());
        let _ = self.live.send(change);
    }

    pub fn get(&self, collection: &str, name: &str) -> Option<Value> {
        self.objects.get(collection)?.get(name).cloned()
    }

    pub fn items(&self, collection: &str) -> Vec<Value> {
        self.objects
            .get(collection)
            .map(|o| o.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn new_uid(&mut self) -> String {
        self.uids += 1;
        format!("uid-{}", self.uids)
    }
}

pub type Shared = Arc<Mutex<Cluster>>;

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
        (Method::GET, None) if c.forbidden.contains(&coll) => {
            status(403, "Forbidden", format!("{coll} is forbidden"))
        }
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
            c.lists.push(coll.clone());
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

pub async fn fake_api(
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
        lists: Vec::new(),
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
