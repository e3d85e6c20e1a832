//! The checks that read the cluster (pod-restarts, pod-status, resource-quota) through the
//! real Kubernetes client, against a fake API server on 127.0.0.1 that answers lists: which
//! paths they read (one namespace or all) and what they conclude from the answers, and an API
//! refusal named in the error.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use jiff::Timestamp;
use kuberhealthy::checker::checks::knobs::Knobs;
use kuberhealthy::checker::checks::{pod_restarts, pod_status, resource_quota};
use serde_json::{Value, json};
use tokio::sync::Mutex;

type Seen = Arc<Mutex<Vec<String>>>;

fn list(kind: &str, items: Value) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn pod(ns: &str, name: &str, phase: &str, created: &str, restarts: i32) -> Value {
    json!({
        "metadata": {"namespace": ns, "name": name, "creationTimestamp": created},
        "status": {
            "phase": phase,
            "containerStatuses": [{
                "name": "app", "image": "x", "imageID": "", "ready": false,
                "restartCount": restarts
            }]
        }
    })
}

fn answer(path: &str) -> (StatusCode, Value) {
    let long_ago = "2020-01-01T00:00:00Z";
    let pods = || {
        list(
            "PodList",
            json!([
                pod("shop", "cart-1", "Running", long_ago, 12),
                pod("shop", "cart-2", "Pending", long_ago, 0),
                pod("shop", "cart-3", "Running", long_ago, 0),
            ]),
        )
    };
    match path {
        "/api/v1/namespaces/shop/pods" | "/api/v1/pods" => (StatusCode::OK, pods()),
        "/api/v1/namespaces/shop/events" | "/api/v1/events" => (
            StatusCode::OK,
            list(
                "EventList",
                json!([{
                    "metadata": {"namespace": "shop", "name": "cart-3.1"},
                    "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "cart-3"},
                    "reason": "BackOff", "count": 11
                }]),
            ),
        ),
        "/api/v1/namespaces/kube-system/resourcequotas" | "/api/v1/resourcequotas" => (
            StatusCode::OK,
            list(
                "ResourceQuotaList",
                json!([{
                    "metadata": {"namespace": "kube-system", "name": "compute"},
                    "status": {
                        "hard": {"limits.cpu": "2", "limits.memory": "1Gi"},
                        "used": {"limits.cpu": "1900m", "limits.memory": "100Mi"}
                    }
                }]),
            ),
        ),
        "/api/v1/namespaces/kuberhealthy/resourcequotas" => {
            (StatusCode::OK, list("ResourceQuotaList", json!([])))
        }
        _ => (
            StatusCode::FORBIDDEN,
            json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
                "reason": "Forbidden", "message": format!("{path} is forbidden")
            }),
        ),
    }
}

async fn fake_api() -> (kube::Client, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .fallback(|State(seen): State<Seen>, uri: Uri| async move {
            seen.lock().await.push(uri.path().to_string());
            let (status, body) = answer(uri.path());
            (status, axum::Json(body))
        })
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = kube::Config::new(url.parse().unwrap());
    (kube::Client::try_from(config).unwrap(), seen)
}

#[tokio::test]
async fn pod_restarts_reads_one_namespace_or_all() {
    let (client, seen) = fake_api().await;
    let mut knobs = Knobs::from_pairs(&[("POD_NAMESPACE", "shop")]);
    let config = pod_restarts::Config::read(&mut knobs);
    let observed = pod_restarts::observe(client.clone(), &config)
        .await
        .unwrap();
    assert_eq!(
        pod_restarts::evaluate(&config, &observed).unwrap_err(),
        [
            "pod cart-1 in namespace shop: container app restarted 12 times, over MAX_FAILURES_ALLOWED 10",
            "pod cart-3 in namespace shop: 11 BackOff events, over MAX_FAILURES_ALLOWED 10",
        ]
    );
    let config = pod_restarts::Config::read(&mut Knobs::from_pairs(&[]));
    pod_restarts::observe(client, &config).await.unwrap();
    assert_eq!(
        *seen.lock().await,
        [
            "/api/v1/namespaces/shop/events",
            "/api/v1/namespaces/shop/pods",
            "/api/v1/events",
            "/api/v1/pods",
        ]
    );
}

#[tokio::test]
async fn pod_status_names_the_stuck_pod_and_a_refusal() {
    let (client, _) = fake_api().await;
    let mut knobs = Knobs::from_pairs(&[("TARGET_NAMESPACE", "shop")]);
    let config = pod_status::Config::read(&mut knobs);
    let observed = pod_status::observe(client.clone(), &config).await.unwrap();
    let errors = pod_status::evaluate(&config, &observed, Timestamp::now()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("pod cart-2 in namespace shop is Pending at age "),
        "{errors:?}"
    );
    let mut knobs = Knobs::from_pairs(&[("TARGET_NAMESPACE", "vault")]);
    let config = pod_status::Config::read(&mut knobs);
    let e = pod_status::observe(client, &config).await.unwrap_err();
    // The API server's message, code and reason in one line; not kube's dump of the Status.
    assert_eq!(
        e,
        [
            "cannot list pods in namespace vault: /api/v1/namespaces/vault/pods is forbidden (HTTP 403 Forbidden)"
        ]
    );
}

#[tokio::test]
async fn resource_quota_reads_the_whitelisted_namespaces() {
    let (client, seen) = fake_api().await;
    let config = resource_quota::Config::read(&mut Knobs::from_pairs(&[]));
    let observed = resource_quota::observe(client.clone(), &config)
        .await
        .unwrap();
    assert_eq!(
        resource_quota::evaluate(&config, &observed).unwrap_err(),
        [
            "ResourceQuota compute in namespace kube-system: limits.cpu is 95.0% used (1900m of 2), at or over THRESHOLD 0.9"
        ]
    );
    let config = resource_quota::Config::read(&mut Knobs::from_pairs(&[("THRESHOLD", "0.96")]));
    let observed = resource_quota::observe(client.clone(), &config)
        .await
        .unwrap();
    assert_eq!(resource_quota::evaluate(&config, &observed), Ok(()));
    let config = resource_quota::Config::read(&mut Knobs::from_pairs(&[("WHITELIST", "*")]));
    resource_quota::observe(client, &config).await.unwrap();
    assert_eq!(
        *seen.lock().await,
        [
            "/api/v1/namespaces/kube-system/resourcequotas",
            "/api/v1/namespaces/kuberhealthy/resourcequotas",
            "/api/v1/namespaces/kube-system/resourcequotas",
            "/api/v1/namespaces/kuberhealthy/resourcequotas",
            "/api/v1/resourcequotas",
        ]
    );
}
