//! The checks that read the cluster (pod-restarts, pod-status, resource-quota) through the
//! real Kubernetes client, against the fake API server of `support/fake_api.rs`: which paths
//! they read (one namespace or all) and what they conclude from the answers, and an API
//! refusal named in the error.

mod support;

use jiff::Timestamp;
use kuberhealthy::checker::checks::knobs::Knobs;
use kuberhealthy::checker::checks::{pod_restarts, pod_status, resource_quota};
use serde_json::{Value, json};
use support::fake_api::{Cluster, Happened, Shared, fake_api};

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

/// Nothing reacts: these checks only read.
fn no_controller(_: &mut Cluster, _: &Happened) {}

/// Pods and events in namespace `shop`, a quota in `kube-system`, each also listed from all
/// namespaces; pods of namespace `vault` are refused.
fn seed(c: &mut Cluster) {
    let long_ago = "2020-01-01T00:00:00Z";
    for pods in ["/api/v1/namespaces/shop/pods", "/api/v1/pods"] {
        c.put(pods, pod("shop", "cart-1", "Running", long_ago, 12));
        c.put(pods, pod("shop", "cart-2", "Pending", long_ago, 0));
        c.put(pods, pod("shop", "cart-3", "Running", long_ago, 0));
    }
    for events in ["/api/v1/namespaces/shop/events", "/api/v1/events"] {
        c.put(
            events,
            json!({
                "metadata": {"namespace": "shop", "name": "cart-3.1"},
                "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "cart-3"},
                "reason": "BackOff", "count": 11
            }),
        );
    }
    for quotas in [
        "/api/v1/namespaces/kube-system/resourcequotas",
        "/api/v1/resourcequotas",
    ] {
        c.put(
            quotas,
            json!({
                "metadata": {"namespace": "kube-system", "name": "compute"},
                "status": {
                    "hard": {"limits.cpu": "2", "limits.memory": "1Gi"},
                    "used": {"limits.cpu": "1900m", "limits.memory": "100Mi"}
                }
            }),
        );
    }
    c.forbidden.push("/api/v1/namespaces/vault/pods".into());
}

fn lists(cluster: &Shared) -> Vec<String> {
    cluster.lock().unwrap().lists.clone()
}

#[tokio::test]
async fn pod_restarts_reads_one_namespace_or_all() {
    let (client, cluster) = fake_api(no_controller, seed).await;
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
        lists(&cluster),
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
    let (client, _) = fake_api(no_controller, seed).await;
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
    let (client, cluster) = fake_api(no_controller, seed).await;
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
        lists(&cluster),
        [
            "/api/v1/namespaces/kube-system/resourcequotas",
            "/api/v1/namespaces/kuberhealthy/resourcequotas",
            "/api/v1/namespaces/kube-system/resourcequotas",
            "/api/v1/namespaces/kuberhealthy/resourcequotas",
            "/api/v1/resourcequotas",
        ]
    );
}
