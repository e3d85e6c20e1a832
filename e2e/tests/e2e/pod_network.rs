//! The pod network: each pod in a network namespace of its own with an address its processes
//! see and its status carries, `hostNetwork` pods on the host's, pods reaching a replica and
//! the API server on the host side, and nothing of a network left once its owner is gone,
//! even when the owner was killed.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::wait::await_condition;
use kuberhealthy_e2e::network::{self, NetworkId, PodNetwork};
use kuberhealthy_e2e::process::ProcessGroup;
use kuberhealthy_e2e::{Replica, TestCluster, TestContext, wait_until};

use crate::{TIMEOUT, cluster};

/// Waits (by watch) until pod `name` has finished, and returns it.
async fn finished(ctx: &TestContext, name: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(ctx.client().await.unwrap(), ctx.namespace());
    let done = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.phase.as_deref())
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed")
    };
    tokio::time::timeout(TIMEOUT, await_condition(pods, name, done))
        .await
        .unwrap_or_else(|_| panic!("pod {name} did not finish in time"))
        .unwrap()
        .unwrap()
}

fn pod_yaml(name: &str, host_network: bool, script: &str) -> String {
    let script = serde_json::to_string(script).unwrap();
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: Never
  hostNetwork: {host_network}
  containers:
  - name: main
    image: example.invalid/shell:latest
    command: ["sh", "-c", {script}]
"#
    )
}

fn status_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("a podIP in the status")
}

#[tokio::test]
async fn each_pod_has_its_own_address_which_its_processes_see() {
    let ctx = cluster().await.context("pod-addresses").await.unwrap();
    let host = ctx.host_ip().to_string();
    // What the processes see: `hostname -I` and the kernel's own table of local addresses.
    let script = r#"hostname -I; awk '/\|--/ {ip = $2} /\/32 host LOCAL/ {print ip}' /proc/net/fib_trie | grep -v '^127\.' | sort -u"#;
    for (name, host_network) in [("one", false), ("two", false), ("on-host", true)] {
        ctx.apply_yaml(&pod_yaml(name, host_network, script))
            .await
            .unwrap();
    }
    let mut own = Vec::new();
    for name in ["one", "two"] {
        let pod = finished(&ctx, name).await;
        let ip = status_ip(&pod);
        let seen = ctx.container_log(name, "main");
        let mut lines = seen.lines();
        assert_eq!(
            lines.next().map(str::trim),
            Some(ip.as_str()),
            "hostname -I in pod {name} shows only its own address: {seen:?}"
        );
        assert_eq!(
            lines.collect::<Vec<_>>(),
            [ip.as_str()],
            "its only local address besides the loopback: {seen:?}"
        );
        assert_ne!(ip, host);
        assert_eq!(
            pod.status.as_ref().unwrap().pod_ips.as_ref().unwrap()[0].ip,
            ip
        );
        assert_eq!(
            pod.status.as_ref().unwrap().host_ip.as_deref(),
            Some(host.as_str())
        );
        own.push(ip);
    }
    assert_ne!(own[0], own[1], "two pods, two addresses");
    println!("pods one and two at {own:?}, the host side at {host}");

    let on_host = finished(&ctx, "on-host").await;
    assert_eq!(
        status_ip(&on_host),
        host,
        "a hostNetwork pod has its node's address"
    );
    let seen = ctx.container_log("on-host", "main");
    assert!(
        seen.lines().skip(1).any(|l| l == host),
        "the hostNetwork pod's processes see the host's addresses, the host side among them: {seen:?}"
    );
}

#[tokio::test]
async fn a_pod_reaches_a_replica_and_the_api_server() {
    let ctx = cluster().await.context("pod-reach").await.unwrap();
    let mut replica = Replica::spawn(ctx.replica_options("kuberhealthy-0")).unwrap();
    // Its /healthz answers before its caches sync.
    wait_until("the replica's /healthz", TIMEOUT, || async {
        let answer = kuberhealthy_e2e::http::get(replica.addr(), "/healthz").await?;
        Ok((answer.status == 200).then_some(()))
    })
    .await
    .unwrap();
    assert!(replica.try_exit().unwrap().is_none());
    let ca = ctx.log_dir().join("ca.pem");
    std::fs::write(&ca, &ctx.endpoint().ca_pem).unwrap();
    // The API server's certificate must name the address the pod dials (no --insecure).
    let script = format!(
        "curl --fail --silent --show-error {}/healthz; echo; \
         curl --fail --silent --show-error --cacert {} {}/version",
        replica.url(""),
        ca.display(),
        ctx.endpoint().server
    );
    ctx.apply_yaml(&pod_yaml("dialer", false, &script))
        .await
        .unwrap();
    let pod = finished(&ctx, "dialer").await;
    let output = ctx.container_log("dialer", "main");
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded"),
        "{output}"
    );
    let mut lines = output.lines();
    assert_eq!(lines.next(), Some("ok"), "{output}");
    let version: serde_json::Value = serde_json::from_str(&lines.collect::<String>()).unwrap();
    assert!(version["gitVersion"].is_string(), "{output}");
    println!(
        "pod at {} reached replica {} and the API server {}",
        status_ip(&pod),
        replica.addr(),
        ctx.endpoint().server
    );
}

/// Every link and namespace of network `id`, unless another live harness claimed it since.
fn left_of(id: NetworkId, owner_before: Option<String>) -> Vec<String> {
    if network::last_owner(id) != owner_before {
        return Vec::new();
    }
    network::objects(id).unwrap()
}

#[tokio::test]
async fn nothing_of_a_pod_network_survives_its_cluster() {
    let own = TestCluster::start(Path::new(env!("CARGO_BIN_EXE_pod-runner")))
        .await
        .unwrap();
    let id = own.control_plane().network().id();
    let ctx = own.context("pod-network-gone").await.unwrap();
    ctx.apply_yaml(&pod_yaml("sleeper", false, "exec sleep 300"))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(ctx.client().await.unwrap(), ctx.namespace());
    let running =
        |p: Option<&Pod>| p.and_then(|p| p.status.as_ref()?.phase.as_deref()) == Some("Running");
    tokio::time::timeout(TIMEOUT, await_condition(pods, "sleeper", running))
        .await
        .unwrap()
        .unwrap();
    let present = network::objects(id).unwrap();
    assert!(
        present.contains(&id.bridge()) && present.len() == 3,
        "the bridge, the pod's veth and its namespace: {present:?}"
    );
    let owner = network::last_owner(id);
    drop(ctx);
    drop(own);
    assert_eq!(left_of(id, owner), Vec::<String>::new());
}

#[tokio::test]
async fn a_killed_owners_network_is_removed_by_the_next_claim() {
    // A stand-in for a harness killed by SIGKILL: a shell that claims network n as the
    // harness does (the lock, the bridge, a pod's namespace and veth) and is then killed.
    let dir = tempfile::tempdir().unwrap();
    let (id, mut holder) = loop {
        let id = PodNetwork::create().unwrap().id();
        let (bridge, netns, veth) = (id.bridge(), id.netns(250), id.veth(250));
        let script = format!(
            "exec 9>{lock} && flock -n 9 && ip link add {bridge} type bridge \
             && ip netns add {netns} && ip link add {veth} type veth peer name eth0 netns {netns} \
             && echo claimed && exec sleep 300",
            lock = Path::new(network::LOCK_DIR)
                .join(format!("{}.lock", id.0))
                .display()
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        let log = dir.path().join(format!("holder-{}.log", id.0));
        let mut holder = ProcessGroup::spawn("network holder", cmd, &log).unwrap();
        // Claimed, or exited because the lock was taken.
        let deadline = std::time::Instant::now() + TIMEOUT;
        let claimed = loop {
            if std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("claimed")
            {
                break true;
            }
            if holder.try_exit().unwrap().is_some() {
                break false;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the stand-in neither claimed network {} nor exited: {}",
                id.0,
                holder.log_tail(10)
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        if claimed {
            break (id, holder);
        }
        // Another harness claimed the network in between: try another one.
        holder.kill().await.ok();
    };
    let present = network::objects(id).unwrap();
    assert_eq!(present.len(), 3, "{present:?}");
    holder.kill().await.unwrap();
    let owner = network::last_owner(id);
    assert_eq!(
        network::objects(id).unwrap().len(),
        3,
        "a killed owner leaves its network behind"
    );

    let next = PodNetwork::create().unwrap();
    let left = if next.id() == id {
        // It took the freed network: only its own fresh bridge is there.
        network::objects(id)
            .unwrap()
            .into_iter()
            .filter(|name| *name != id.bridge())
            .collect()
    } else {
        left_of(id, owner)
    };
    assert_eq!(left, Vec::<String>::new(), "network {} was cleared", id.0);
    drop(next);
}
