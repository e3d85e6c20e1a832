//! The pod runner plays the kubelet: binding, processes, env, status, logs, deletion.

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use kube::api::{DeleteParams, LogParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use kuberhealthy_e2e::process::is_running;
use kuberhealthy_e2e::{TestContext, wait_until};

use crate::{TIMEOUT, cluster};

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn terminated<'a>(pod: &'a Pod, container: &str) -> &'a ContainerStateTerminated {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|statuses| statuses.iter().find(|s| s.name == container))
        .and_then(|s| s.state.as_ref()?.terminated.as_ref())
        .unwrap_or_else(|| panic!("container {container} has not terminated: {:?}", pod.status))
}

/// Waits (by watch) until the pod satisfies `condition`.
async fn wait_for_pod(
    ctx: &TestContext,
    name: &str,
    what: &str,
    condition: impl Fn(&Pod) -> bool,
) -> Pod {
    let pods: Api<Pod> = Api::namespaced(ctx.client().await.unwrap(), ctx.namespace());
    let cond = move |pod: Option<&Pod>| pod.is_some_and(&condition);
    tokio::time::timeout(crate::TIMEOUT, await_condition(pods, name, cond))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for pod {name}: {what}"))
        .unwrap()
        .unwrap_or_else(|| panic!("pod {name} disappeared while waiting: {what}"))
}

#[tokio::test]
async fn failing_container_reports_its_exit_code_and_log() {
    let ctx = cluster().await.context("exit-code").await.unwrap();
    ctx.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: exits-3
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: example.invalid/shell:latest
    command: ["sh", "-c", "echo hi; exit 3"]
"#,
    )
    .await
    .unwrap();
    let pod = wait_for_pod(&ctx, "exits-3", "phase Failed", |p| {
        phase(p) == Some("Failed")
    })
    .await;
    let main = terminated(&pod, "main");
    assert_eq!(main.exit_code, 3);
    assert_eq!(main.reason.as_deref(), Some("Error"));
    assert!(
        main.started_at.is_some() && main.finished_at.is_some(),
        "{main:?}"
    );
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some("e2e-node")
    );
    assert_eq!(ctx.container_log("exits-3", "main"), "hi\n");
}

#[tokio::test]
async fn pods_log_reads_a_containers_output_through_the_api_server() {
    let ctx = cluster().await.context("pods-log").await.unwrap();
    ctx.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: prints
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: example.invalid/shell:latest
    command: ["sh", "-c", "echo one; echo two; echo three >&2; exit 1"]
"#,
    )
    .await
    .unwrap();
    wait_for_pod(&ctx, "prints", "phase Failed", |p| {
        phase(p) == Some("Failed")
    })
    .await;
    // What `kubectl logs --tail` asks: the API server proxies to the runner's kubelet
    // endpoint, over TLS both ways.
    let pods: Api<Pod> = Api::namespaced(ctx.client().await.unwrap(), ctx.namespace());
    let all = pods
        .logs("prints", &LogParams::default())
        .await
        .expect("pods/log through the API server");
    assert_eq!(all, "one\ntwo\nthree\n", "stdout and stderr, in order");
    let tail = LogParams {
        container: Some("main".into()),
        tail_lines: Some(2),
        ..LogParams::default()
    };
    assert_eq!(pods.logs("prints", &tail).await.unwrap(), "two\nthree\n");
    let limited = LogParams {
        limit_bytes: Some(4),
        ..tail
    };
    assert_eq!(pods.logs("prints", &limited).await.unwrap(), "two\n");
}

#[tokio::test]
async fn running_pod_reports_status_then_succeeds() {
    let ctx = cluster().await.context("running").await.unwrap();
    // `waits` runs until the test creates the file `done` in the pod's working directory.
    ctx.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: two-containers
spec:
  restartPolicy: Never
  containers:
  - name: waits
    image: example.invalid/shell:latest
    command: ["sh", "-c", "echo waiting; while [ ! -f done ]; do sleep 0.05; done; echo finished"]
  - name: quick
    image: example.invalid/shell:latest
    command: ["true"]
"#,
    )
    .await
    .unwrap();
    let running = |p: &Pod| {
        phase(p) == Some("Running")
            && p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|statuses| {
                    statuses.iter().any(|s| {
                        s.name == "waits" && s.state.as_ref().is_some_and(|st| st.running.is_some())
                    })
                })
    };
    let pod = wait_for_pod(&ctx, "two-containers", "phase Running", running).await;
    let status = pod.status.as_ref().unwrap();
    let host = ctx.host_ip();
    let pod_ip: std::net::Ipv4Addr = status.pod_ip.as_deref().unwrap().parse().unwrap();
    assert!(
        pod_ip != host && pod_ip.octets()[..3] == host.octets()[..3],
        "the pod's own address on the pod network {host}/24: {pod_ip}"
    );
    assert_eq!(status.host_ip.as_deref(), Some(host.to_string().as_str()));
    assert!(status.start_time.is_some());
    let waits = status
        .container_statuses
        .as_ref()
        .unwrap()
        .iter()
        .find(|s| s.name == "waits")
        .unwrap();
    assert!(waits.ready);
    assert!(
        waits
            .state
            .as_ref()
            .unwrap()
            .running
            .as_ref()
            .unwrap()
            .started_at
            .is_some()
    );
    assert!(
        waits
            .container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("pod-runner://"))
    );

    std::fs::write(ctx.pod_dir("two-containers").join("done"), "").unwrap();
    let pod = wait_for_pod(&ctx, "two-containers", "phase Succeeded", |p| {
        phase(p) == Some("Succeeded")
    })
    .await;
    for container in ["waits", "quick"] {
        let state = terminated(&pod, container);
        assert_eq!(
            (state.exit_code, state.reason.as_deref()),
            (0, Some("Completed")),
            "{container}"
        );
    }
    assert_eq!(
        ctx.container_log("two-containers", "waits"),
        "waiting\nfinished\n"
    );
}

#[tokio::test]
async fn container_env_is_resolved_like_a_kubelet() {
    let ctx = cluster().await.context("env").await.unwrap();
    ctx.apply_yaml(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  token: s3cret
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
---
apiVersion: v1
kind: Pod
metadata:
  name: env-echo
spec:
  restartPolicy: Never
  serviceAccountName: checker
  containers:
  - name: main
    image: example.invalid/shell:latest
    command: ["sh", "-c"]
    args:
    - |
      echo "name=$POD_NAME"
      echo "namespace=$POD_NAMESPACE"
      echo "ip=$POD_IP"
      echo "node=$NODE"
      echo "sa=$SA"
      echo "token=$TOKEN"
      echo "mode=$MODE"
      echo "greeting=$GREETING"
      echo "expanded=$(POD_NAME)"
    env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: POD_NAMESPACE
      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: NODE
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    - name: SA
      valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: creds, key: token}}
    - name: MODE
      valueFrom: {configMapKeyRef: {name: settings, key: mode}}
    - name: GREETING
      value: "hello $(POD_NAME)"
"#,
    )
    .await
    .unwrap();
    let pod = wait_for_pod(&ctx, "env-echo", "phase Succeeded", |p| {
        phase(p) == Some("Succeeded")
    })
    .await;
    let pod_ip = pod.status.unwrap().pod_ip.expect("a pod IP");
    let expected = format!(
        "name=env-echo\nnamespace={}\nip={pod_ip}\nnode=e2e-node\nsa=checker\ntoken=s3cret\nmode=fast\n\
         greeting=hello env-echo\nexpanded=env-echo\n",
        ctx.namespace()
    );
    assert_eq!(ctx.container_log("env-echo", "main"), expected);
}

#[tokio::test]
async fn deleting_a_pod_kills_its_processes_and_removes_it() {
    let ctx = cluster().await.context("delete").await.unwrap();
    // The sleep runs in the background, so killing it proves the whole group is killed.
    ctx.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: sleeper
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: example.invalid/shell:latest
    command: ["sh", "-c", "sleep 300 & echo $! > sleep.pid; wait"]
"#,
    )
    .await
    .unwrap();
    let pod = wait_for_pod(&ctx, "sleeper", "phase Running", |p| {
        phase(p) == Some("Running")
    })
    .await;
    let pid_file = ctx.pod_dir("sleeper").join("sleep.pid");
    let pid: u32 = wait_until("the sleep pid file", TIMEOUT, || async {
        Ok(std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok()))
    })
    .await
    .unwrap();
    assert!(is_running(pid), "sleep 300 (pid {pid}) should be running");

    let pods: Api<Pod> = Api::namespaced(ctx.client().await.unwrap(), ctx.namespace());
    pods.delete("sleeper", &DeleteParams::default())
        .await
        .unwrap();
    let uid = pod.uid().unwrap();
    tokio::time::timeout(
        TIMEOUT,
        await_condition(pods.clone(), "sleeper", conditions::is_deleted(&uid)),
    )
    .await
    .expect("the pod object should disappear")
    .unwrap();
    // The runner kills the processes before it completes the deletion.
    assert!(
        !is_running(pid),
        "sleep 300 (pid {pid}) survived the deletion of its pod"
    );
}

#[tokio::test]
async fn missing_image_reports_err_image_pull_then_back_off() {
    let ctx = cluster().await.context("image-pull").await.unwrap();
    let pods: Api<Pod> = Api::namespaced(ctx.client().await.unwrap(), ctx.namespace());
    // Watch from before the pod exists, so no status change can be missed.
    let config = watcher::Config::default().fields("metadata.name=pull-fails");
    let mut events = Box::pin(watcher::watcher(pods.clone(), config));
    while !matches!(events.try_next().await.unwrap(), Some(Event::InitDone)) {}

    ctx.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: pull-fails
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: example.invalid/checker:missing
    command: ["sh", "-c", "echo should never run"]
"#,
    )
    .await
    .unwrap();
    let mut reasons: Vec<String> = Vec::new();
    let observe = async {
        while let Some(event) = events.try_next().await.unwrap() {
            let Event::Apply(pod) = event else { continue };
            assert_eq!(phase(&pod).unwrap_or("Pending"), "Pending");
            let waiting = pod
                .status
                .and_then(|s| s.container_statuses)
                .and_then(|s| s.into_iter().next())
                .and_then(|s| s.state?.waiting?.reason);
            if let Some(reason) = waiting
                && reasons.last() != Some(&reason)
            {
                reasons.push(reason.clone());
                if reason == "ImagePullBackOff" {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(TIMEOUT, observe)
        .await
        .unwrap_or_else(|_| panic!("no ImagePullBackOff; saw {reasons:?}"));
    assert_eq!(reasons, ["ErrImagePull", "ImagePullBackOff"]);
    assert!(
        !ctx.container_log_path("pull-fails", "main").exists(),
        "the container must never start"
    );

    // A pod that never started is deleted all the same.
    let uid = pods.get("pull-fails").await.unwrap().uid().unwrap();
    pods.delete("pull-fails", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(
        TIMEOUT,
        await_condition(pods, "pull-fails", conditions::is_deleted(&uid)),
    )
    .await
    .expect("the pod object should disappear")
    .unwrap();
}

#[tokio::test]
async fn container_without_command_fails_the_pod() {
    let ctx = cluster().await.context("no-command").await.unwrap();
    ctx.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: no-command
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: docker.io/library/busybox:1.36
"#,
    )
    .await
    .unwrap();
    let pod = wait_for_pod(&ctx, "no-command", "phase Failed", |p| {
        phase(p) == Some("Failed")
    })
    .await;
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.reason.as_deref(), Some("ContainerCommandMissing"));
    let message = status.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("container \"main\" has no command"),
        "{message}"
    );
    assert_eq!(
        terminated(&pod, "main").reason.as_deref(),
        Some("StartError")
    );
}

#[tokio::test]
async fn init_containers_run_first_and_unexecutable_commands_fail() {
    let ctx = cluster()
        .await
        .context("init-and-start-error")
        .await
        .unwrap();
    ctx.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: init-first
spec:
  restartPolicy: Never
  initContainers:
  - name: prepare
    image: example.invalid/shell:latest
    command: ["sh", "-c", "echo prepared > state"]
  containers:
  - name: main
    image: example.invalid/shell:latest
    command: ["cat", "state"]
---
apiVersion: v1
kind: Pod
metadata:
  name: cannot-exec
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: example.invalid/shell:latest
    command: ["/nonexistent/checker"]
"#,
    )
    .await
    .unwrap();
    let pod = wait_for_pod(&ctx, "init-first", "phase Succeeded", |p| {
        phase(p) == Some("Succeeded")
    })
    .await;
    let init = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .expect("init container statuses");
    assert_eq!(
        init[0]
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code),
        Some(0)
    );
    assert_eq!(ctx.container_log("init-first", "main"), "prepared\n");

    let pod = wait_for_pod(&ctx, "cannot-exec", "phase Failed", |p| {
        phase(p) == Some("Failed")
    })
    .await;
    let main = terminated(&pod, "main");
    assert_eq!(
        (main.exit_code, main.reason.as_deref()),
        (128, Some("StartError"))
    );
    let message = main.message.as_deref().unwrap_or_default();
    assert!(message.contains("/nonexistent/checker"), "{message}");
}
