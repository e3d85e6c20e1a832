//! The harness itself: replica handles, and restarting the API server under a cluster.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::runtime::wait::await_condition;
use kuberhealthy_e2e::process::{ProcessGroup, is_running, process_state};
use kuberhealthy_e2e::{Replica, TestCluster, metrics, wait_until};

use crate::{TIMEOUT, cluster};

/// A stand-in for `kuberhealthy`: prints its arguments and environment, then becomes one
/// sleeping process (a shell loop would fork, and a SIGSTOP landing on a vfork child
/// leaves the shell in `D`, not `T`).
const FAKE_REPLICA: &str = r#"#!/bin/sh
echo "args=$*"
echo "env=$POD_NAME $POD_NAMESPACE $KH_LISTEN_ADDRESS $KUBECONFIG $KH_EXTERNAL_REPORTING_URL"
exec sleep 300
"#;

#[tokio::test]
async fn replica_handles_signal_and_configure_the_process() {
    let ctx = cluster().await.context("replica-handle").await.unwrap();
    let fake = ctx.log_dir().join("fake-kuberhealthy");
    std::fs::write(&fake, FAKE_REPLICA).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let options = |name: &str| {
        let mut options = ctx.replica_options(name);
        options.binary = Some(fake.clone());
        options.args = vec!["--flag".into()];
        options.external_reporting_url = Some("http://127.0.0.1:1/externalCheckStatus".into());
        options
    };

    let mut replica = Replica::spawn(options("kuberhealthy-0")).unwrap();
    let env_line = format!(
        "env=kuberhealthy-0 {} {} {} http://127.0.0.1:1/externalCheckStatus",
        ctx.namespace(),
        replica.addr(),
        ctx.endpoint().admin_kubeconfig.display()
    );
    let log_path = replica.log_path().to_path_buf();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until("the replica to print its environment", TIMEOUT, || async {
        Ok(log().contains(&env_line).then_some(()))
    })
    .await
    .unwrap();
    assert!(log().contains("args=run --flag"), "{}", log());

    replica.sigstop().unwrap();
    let pid = replica.pid();
    let stopped = wait_until("the replica to be stopped", TIMEOUT, || async {
        Ok((process_state(pid) == Some('T')).then_some(()))
    })
    .await;
    if let Err(err) = stopped {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        panic!("{err:#}\n/proc/{pid}/status:\n{status}");
    }
    replica.sigcont().unwrap();
    wait_until("the replica to run again", TIMEOUT, || async {
        Ok(matches!(process_state(pid), Some('S' | 'R')).then_some(()))
    })
    .await
    .unwrap();

    replica.sigterm().unwrap();
    let status = replica.wait_exit(TIMEOUT).await.unwrap();
    assert_eq!(
        ProcessGroup::describe_exit(status),
        format!("signal {}", libc::SIGTERM)
    );

    let mut crashed = Replica::spawn(options("kuberhealthy-1")).unwrap();
    crashed.sigkill().unwrap();
    let status = crashed.wait_exit(TIMEOUT).await.unwrap();
    assert_eq!(
        ProcessGroup::describe_exit(status),
        format!("signal {}", libc::SIGKILL)
    );

    let dropped = Replica::spawn(options("kuberhealthy-2")).unwrap();
    let pid = dropped.pid();
    assert!(is_running(pid));
    drop(dropped);
    assert!(!is_running(pid), "a dropped replica must be gone");
}

#[tokio::test]
async fn apiserver_restarts_on_the_same_port_with_the_same_data() {
    // Its own cluster: stopping the shared API server would break other tests.
    let mut cluster = TestCluster::start(Path::new(env!("CARGO_BIN_EXE_pod-runner")))
        .await
        .unwrap();
    eprintln!(
        "cluster started; the control plane took {:.1?}",
        cluster.control_plane().started_in()
    );
    let ctx = cluster.context("restart").await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client().await.unwrap(), ctx.namespace());
    let mut object = ConfigMap::default();
    object.metadata.name = Some("kept".into());
    object.data = Some([("k".to_string(), "v".to_string())].into());
    config_maps
        .create(&Default::default(), &object)
        .await
        .unwrap();

    let plane = cluster.control_plane_mut();
    let url = plane.server_url().to_string();
    plane.stop_apiserver().await.unwrap();
    assert!(!plane.is_apiserver_running());
    assert!(
        config_maps.get("kept").await.is_err(),
        "the API server should be down"
    );

    plane.start_apiserver().await.unwrap();
    assert_eq!(plane.server_url(), url);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client().await.unwrap(), ctx.namespace());
    let kept = config_maps.get("kept").await.unwrap();
    assert_eq!(kept.data.unwrap()["k"], "v");

    // A crash (SIGKILL) and a restart work the same way.
    plane.kill_apiserver().await.unwrap();
    assert!(
        config_maps.get("kept").await.is_err(),
        "the API server should be down"
    );
    plane.start_apiserver().await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client().await.unwrap(), ctx.namespace());
    assert!(config_maps.get("kept").await.is_ok());

    // The pod runner rides out the outage: a pod created now still runs.
    ctx.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: after-restart
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: example.invalid/shell:latest
    command: ["sh", "-c", "echo back"]
"#,
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(ctx.client().await.unwrap(), ctx.namespace());
    let succeeded =
        |p: Option<&Pod>| p.and_then(|p| p.status.as_ref()?.phase.as_deref()) == Some("Succeeded");
    tokio::time::timeout(TIMEOUT, await_condition(pods, "after-restart", succeeded))
        .await
        .expect("a pod created after the restart should run")
        .unwrap();
    assert_eq!(ctx.container_log("after-restart", "main"), "back\n");

    let samples =
        metrics::parse(&cluster.control_plane().apiserver_metrics().await.unwrap()).unwrap();
    let gets = metrics::sum(
        &samples,
        "apiserver_request_total",
        &[("verb", "GET"), ("resource", "configmaps")],
    );
    assert!(
        gets >= 1.0,
        "the restarted API server counted {gets} GETs of configmaps"
    );

    // etcd, kube-apiserver and the pod runner all name the scratch directory in their
    // command line; all must be gone once the cluster is dropped.
    let dir = cluster.control_plane().dir().to_string_lossy().into_owned();
    let processes: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&dir))
        })
        .collect();
    assert_eq!(
        processes.len(),
        3,
        "expected etcd, kube-apiserver and pod-runner, found pids {processes:?}"
    );
    drop(ctx);
    drop(cluster);
    for pid in processes {
        assert!(!is_running(pid), "pid {pid} survived the cluster");
    }
}
