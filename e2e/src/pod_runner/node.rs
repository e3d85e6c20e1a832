//! The Node the runner plays the kubelet for.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};

use std::net::Ipv4Addr;

use super::status::now;

const FIELD_MANAGER: &str = "e2e-pod-runner";

/// Creates (or takes over) the Node, whose address is `host_ip`, and marks it Ready. With
/// `kubelet_port`, the API server reaches its kubelet endpoint (container logs) there.
pub async fn register(
    client: &Client,
    name: &str,
    host_ip: Ipv4Addr,
    kubelet_port: Option<u16>,
) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                [
                    ("kubernetes.io/hostname".to_string(), name.to_string()),
                    ("kubernetes.io/os".to_string(), "linux".to_string()),
                    (
                        "kuberhealthy.github.io/e2e-pod-runner".to_string(),
                        "true".to_string(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    nodes
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&node),
        )
        .await
        .with_context(|| format!("registering node {name}"))?;
    write_status(&nodes, name, Some((host_ip, kubelet_port))).await
}

/// Refreshes the Ready condition's heartbeat (a strategic merge keeps the rest of it).
pub async fn heartbeat(client: &Client, name: &str) -> Result<()> {
    write_status(&Api::all(client.clone()), name, None).await
}

/// The Ready condition; with `address`, the whole status (capacity, addresses, kubelet port,
/// info).
async fn write_status(
    nodes: &Api<Node>,
    name: &str,
    address: Option<(Ipv4Addr, Option<u16>)>,
) -> Result<()> {
    let ready = NodeCondition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: Some("KubeletReady".into()),
        message: Some("e2e pod runner is posting ready status".into()),
        last_heartbeat_time: Some(now()),
        last_transition_time: None,
    };
    let mut status = NodeStatus {
        conditions: Some(vec![ready]),
        ..Default::default()
    };
    if let Some((address, kubelet_port)) = address {
        status.daemon_endpoints = kubelet_port.map(|port| NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(port),
            }),
        });
        let quantity = |q: &str| Quantity(q.to_string());
        let resources = [
            ("cpu".to_string(), quantity("8")),
            ("memory".to_string(), quantity("32Gi")),
            ("pods".to_string(), quantity("500")),
        ];
        status.capacity = Some(resources.clone().into());
        status.allocatable = Some(resources.into());
        status.addresses = Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: address.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name.into(),
            },
        ]);
        status.node_info = Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH.into(),
            operating_system: "linux".into(),
            os_image: "e2e pod runner (local processes)".into(),
            kubelet_version: "e2e-pod-runner".into(),
            container_runtime_version: "pod-runner://local-processes".into(),
            kernel_version: String::new(),
            kube_proxy_version: String::new(),
            boot_id: String::new(),
            machine_id: String::new(),
            system_uuid: String::new(),
            ..Default::default()
        });
        status
            .conditions
            .as_mut()
            .into_iter()
            .flatten()
            .for_each(|c| c.last_transition_time = Some(now()));
    }
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Strategic(serde_json::json!({ "status": status })),
        )
        .await
        .with_context(|| format!("writing the status of node {name}"))?;
    Ok(())
}
