//! The harness itself: replica handles and restarting the API server.

use std::os::unix::fs::PermissionsExt;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kuberhealthy_e2e::process::{ProcessGroup, is_running, process_state};
use kuberhealthy_e2e::{ControlPlane, Replica, accounts, metrics, wait_until};

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
        "env=kuberhealthy-0 {} 127.0.0.1:{} {} http://127.0.0.1:1/externalCheckStatus",
        ctx.namespace(),
        replica.port(),
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
    // Its own control plane: stopping the shared API server would break other tests.
    let mut plane = ControlPlane::start().await.unwrap();
    eprintln!("control plane started in {:.1?}", plane.started_in());
    let client = plane.client().await.unwrap();
    accounts::create_namespace(&client, "survives")
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client, "survives");
    let mut object = ConfigMap::default();
    object.metadata.name = Some("kept".into());
    object.data = Some([("k".to_string(), "v".to_string())].into());
    config_maps
        .create(&Default::default(), &object)
        .await
        .unwrap();

    let url = plane.server_url().to_string();
    plane.stop_apiserver().await.unwrap();
    assert!(!plane.is_apiserver_running());
    assert!(
        config_maps.get("kept").await.is_err(),
        "the API server should be down"
    );

    plane.start_apiserver().await.unwrap();
    assert_eq!(plane.server_url(), url);
    let config_maps: Api<ConfigMap> = Api::namespaced(plane.client().await.unwrap(), "survives");
    let kept = config_maps.get("kept").await.unwrap();
    assert_eq!(kept.data.unwrap()["k"], "v");

    let samples = metrics::parse(&plane.apiserver_metrics().await.unwrap()).unwrap();
    let gets = metrics::sum(
        &samples,
        "apiserver_request_total",
        &[("verb", "GET"), ("resource", "configmaps")],
    );
    assert!(
        gets >= 1.0,
        "the restarted API server counted {gets} GETs of configmaps"
    );

    let etcd_and_apiserver: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c).contains(&*plane.dir().to_string_lossy())
            })
        })
        .collect();
    assert_eq!(
        etcd_and_apiserver.len(),
        2,
        "expected etcd and kube-apiserver, found pids {etcd_and_apiserver:?}"
    );
    drop(plane);
    for pid in etcd_and_apiserver {
        assert!(!is_running(pid), "pid {pid} survived the control plane");
    }
}
