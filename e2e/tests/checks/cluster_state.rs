//! The checks that read the cluster: pod-restarts, pod-status and resource-quota. Each runs
//! with a kubeconfig for its own ServiceAccount (`KUBECONFIG`; the pod runner mounts no
//! token) whose only access is what `kuberhealthy rbac --check NAME` grants. The objects they
//! judge have statuses the test writes through the status subresource, as a kubelet or the
//! quota controller would (pods pinned to a node the pod runner does not serve, quotas no
//! controller updates), or that the pod runner gives them (a `:missing` image stays Pending).
//! A control run as a ServiceAccount granted nothing shows the grant is what lets them read.

use k8s_openapi::api::core::v1::{Event, ObjectReference, Pod, ResourceQuota};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use kuberhealthy_e2e::wait_until;
use serde_json::{Value, json};

use crate::support::{CheckTest, TIMEOUT, summary};

/// A node the pod runner does not serve: pods bound to it are left to the test.
const ELSEWHERE: &str = "node-elsewhere";

/// Creates pod `name` bound to [`ELSEWHERE`] with one container `app`.
async fn pod_elsewhere(pods: &Api<Pod>, name: &str) -> Pod {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "nodeName": ELSEWHERE,
            "restartPolicy": "Always",
            "containers": [{ "name": "app", "image": format!("example.invalid/shop/{name}:1.0") }],
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap()
}

/// Writes `status` through the status subresource, as admin.
async fn write_pod_status(pods: &Api<Pod>, name: &str, status: Value) {
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap_or_else(|e| panic!("writing the status of pod {name}: {e}"));
}

/// A running pod whose container `app` restarted `restarts` times.
fn running_with_restarts(image: &str, restarts: i32) -> Value {
    json!({
        "phase": "Running",
        "hostIP": "10.0.0.7",
        "podIP": "10.1.0.7",
        "startTime": Time(Timestamp::now()),
        "containerStatuses": [{
            "name": "app",
            "ready": true,
            "started": true,
            "restartCount": restarts,
            "image": image,
            "imageID": "",
            "state": { "running": { "startedAt": Time(Timestamp::now()) } },
        }],
    })
}

/// A `BackOff` Event for pod `pod`, counted `count` times, as a kubelet records it.
async fn backoff_event(t: &CheckTest, pod: &Pod, count: i32) {
    let events: Api<Event> = Api::namespaced(t.client(), t.ns());
    let now = Time(Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.backoff", pod.name_any())),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name_any()),
            namespace: Some(t.ns().into()),
            uid: pod.uid(),
            field_path: Some("spec.containers{app}".into()),
            ..Default::default()
        },
        reason: Some("BackOff".into()),
        message: Some("Back-off restarting failed container app".into()),
        type_: Some("Warning".into()),
        count: Some(count),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some("kubelet".into()),
            host: Some(ELSEWHERE.into()),
        }),
        ..Default::default()
    };
    events.create(&PostParams::default(), &event).await.unwrap();
}

#[tokio::test]
async fn pod_restarts_passes_at_the_limit_and_fails_over_it() {
    let t = CheckTest::start("pod-restarts").await;
    let kubeconfig = t.grant("pod-restarts").await.kubeconfig();
    let pods: Api<Pod> = Api::namespaced(t.client(), t.ns());

    // At MAX_FAILURES_ALLOWED (the example's 10), not over it: passes.
    let cart = pod_elsewhere(&pods, "cart").await;
    write_pod_status(
        &pods,
        "cart",
        running_with_restarts("example.invalid/shop/cart:1.0", 10),
    )
    .await;
    backoff_event(&t, &cart, 10).await;
    // The example's POD_NAMESPACE (a fieldRef to the pod's namespace) is kept.
    t.apply(&t.check_from_example(
        "pod-restarts",
        "pod-restarts",
        &[("KUBECONFIG", &kubeconfig)],
    ))
    .await;
    let ok = t.result("pod-restarts").await;
    ok.assert_ok();

    // A crash loop: 11 restarts and 12 BackOff events.
    let payments = pod_elsewhere(&pods, "payments").await;
    write_pod_status(
        &pods,
        "payments",
        running_with_restarts("example.invalid/shop/payments:1.0", 11),
    )
    .await;
    backoff_event(&t, &payments, 12).await;
    t.apply(&t.check_from_example(
        "pod-restarts",
        "pod-restarts-crash-loop",
        &[("KUBECONFIG", &kubeconfig)],
    ))
    .await;
    let failing = t.result("pod-restarts-crash-loop").await;
    failing.assert_errors(&[format!(
        "pod payments in namespace {}: 12 BackOff events and container app restarted 11 times, \
         over MAX_FAILURES_ALLOWED 10",
        t.ns()
    )]);
    t.assert_page(&[&ok, &failing]).await;
    println!("{:#}", json!(summary(&[&ok, &failing])));
}

#[tokio::test]
async fn pod_status_passes_then_names_each_stuck_or_failed_pod() {
    let t = CheckTest::start("pod-status").await;
    let kubeconfig = t.grant("pod-status").await.kubeconfig();
    let pods: Api<Pod> = Api::namespaced(t.client(), t.ns());
    // The example's 10m would skip every pod this young.
    const SKIP: &str = "1s";
    let knobs = [("KUBECONFIG", kubeconfig.as_str()), ("SKIP_DURATION", SKIP)];

    // Healthy: a running pod (status written) and a finished one (run by the pod runner).
    pod_elsewhere(&pods, "web").await;
    write_pod_status(
        &pods,
        "web",
        running_with_restarts("example.invalid/shop/web:1.0", 0),
    )
    .await;
    t.ctx
        .apply_yaml(
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "migrate"},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "main", "image": "example.invalid/shop/migrate:1.0",
                                         "command": ["true"]}]}}"#,
        )
        .await
        .unwrap();
    wait_until("pod migrate to succeed", TIMEOUT, || async {
        let pod = pods.get("migrate").await?;
        let phase = pod.status.and_then(|s| s.phase);
        Ok((phase.as_deref() == Some("Succeeded")).then_some(()))
    })
    .await
    .unwrap();
    t.apply(&t.check_from_example("pod-status", "pod-status", &knobs))
        .await;
    let ok = t.result("pod-status").await;
    ok.assert_ok();

    // The control (after that run: a young Pending checker pod would fail it): the same
    // check as a ServiceAccount that was granted nothing.
    let nobody = t.ctx.service_account_kubeconfig_path("nobody");
    t.ctx
        .endpoint()
        .service_account_kubeconfig(t.ns(), "nobody", &nobody)
        .await
        .unwrap();
    let nobody = nobody.display().to_string();
    t.apply(&t.check_from_example(
        "pod-status",
        "pod-status-without-rbac",
        &[("KUBECONFIG", &nobody), ("SKIP_DURATION", SKIP)],
    ))
    .await;
    let forbidden = t.result("pod-status-without-rbac").await;
    let prefix = format!("cannot list pods in namespace {}: ", t.ns());
    forbidden.single_error("a refusal to list pods", |e| {
        e.starts_with(&prefix)
            && e.contains("forbidden")
            && e.contains(&format!("system:serviceaccount:{}:nobody", t.ns()))
    });

    // Broken: an image that cannot be pulled (the pod runner keeps it Pending) and an
    // eviction (status written).
    t.ctx
        .apply_yaml(
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stuck"},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "main", "image": "example.invalid/shop/worker:missing",
                                         "command": ["true"]}]}}"#,
        )
        .await
        .unwrap();
    pod_elsewhere(&pods, "evicted").await;
    write_pod_status(
        &pods,
        "evicted",
        json!({
            "phase": "Failed",
            "reason": "Evicted",
            "message": "The node was low on resource: memory.",
        }),
    )
    .await;
    // Both older than SKIP_DURATION, and the pull failure visible.
    wait_until(
        "pods stuck and evicted to be older than 1s, stuck failing its pull",
        TIMEOUT,
        || async {
            let now = Timestamp::now();
            let mut ready = true;
            for name in ["stuck", "evicted"] {
                let pod = pods.get(name).await?;
                let created = pod.metadata.creation_timestamp.unwrap().0;
                ready &= created.duration_until(now).as_secs() >= 2;
            }
            let stuck = pods.get("stuck").await?;
            let waiting = stuck
                .status
                .and_then(|s| s.container_statuses)
                .and_then(|c| c.first()?.state.clone()?.waiting?.reason);
            Ok((ready && waiting.is_some()).then_some(()))
        },
    )
    .await
    .unwrap();
    t.apply(&t.check_from_example("pod-status", "pod-status-broken", &knobs))
        .await;
    let failing = t.result("pod-status-broken").await;
    let ns = t.ns();
    failing.assert_errors_match(&[
        ("the eviction", &|e: &str| {
            e.starts_with(&format!("pod evicted in namespace {ns} is Failed at age "))
                && e.ends_with(&format!(
                    " (SKIP_DURATION {SKIP}): Evicted: The node was low on resource: memory."
                ))
        }),
        ("the image pull", &|e: &str| {
            e.starts_with(&format!("pod stuck in namespace {ns} is Pending at age "))
                && (e.contains(&format!(" (SKIP_DURATION {SKIP}): ErrImagePull"))
                    || e.contains(&format!(" (SKIP_DURATION {SKIP}): ImagePullBackOff")))
        }),
    ]);
    t.assert_page(&[&ok, &forbidden, &failing]).await;
    println!("{:#}", json!(summary(&[&ok, &forbidden, &failing])));
}

#[tokio::test]
async fn resource_quota_passes_under_the_threshold_and_fails_at_it() {
    let t = CheckTest::start("resource-quota").await;
    // ClusterRole: the check reads the quotas of another namespace.
    let kubeconfig = t.grant("resource-quota").await.kubeconfig();
    let shop = t.other_namespace("shop").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client(), shop.namespace());
    let hard = json!({ "requests.cpu": "1", "limits.cpu": "2", "limits.memory": "4Gi" });
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": { "name": "compute" },
        "spec": { "hard": hard },
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let write_usage = |used: Value| {
        let quotas = quotas.clone();
        let hard = hard.clone();
        async move {
            quotas
                .patch_status(
                    "compute",
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": { "hard": hard, "used": used } })),
                )
                .await
                .unwrap();
        }
    };
    let knobs = [
        ("KUBECONFIG", kubeconfig.as_str()),
        ("WHITELIST", shop.namespace()),
    ];

    // 50%, 75% and 50% used, under the example's THRESHOLD 0.9.
    write_usage(json!({ "requests.cpu": "500m", "limits.cpu": "1500m", "limits.memory": "2Gi" }))
        .await;
    t.apply(&t.check_from_example("resource-quota", "resource-quota", &knobs))
        .await;
    let ok = t.result("resource-quota").await;
    ok.assert_ok();

    write_usage(json!({ "requests.cpu": "500m", "limits.cpu": "1900m", "limits.memory": "4Gi" }))
        .await;
    t.apply(&t.check_from_example("resource-quota", "resource-quota-full", &knobs))
        .await;
    let failing = t.result("resource-quota-full").await;
    let shop_ns = shop.namespace();
    failing.assert_errors(&[
        format!(
            "ResourceQuota compute in namespace {shop_ns}: limits.cpu is 95.0% used (1900m of 2), \
             at or over THRESHOLD 0.9"
        ),
        format!(
            "ResourceQuota compute in namespace {shop_ns}: limits.memory is 100.0% used (4Gi of 4Gi), \
             at or over THRESHOLD 0.9"
        ),
    ]);
    t.assert_page(&[&ok, &failing]).await;
    println!("{:#}", json!(summary(&[&ok, &failing])));
}
