//! The pod status the runner writes, shaped like a kubelet's.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub fn now() -> Time {
    Time(Timestamp::now())
}

/// One container as the runner sees it.
#[derive(Clone, Debug)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    /// Set once a process exists: `pod-runner://<pid>`.
    pub container_id: Option<String>,
}

impl ContainerRecord {
    pub fn waiting(name: &str, image: &str, reason: &str, message: Option<String>) -> Self {
        Self {
            name: name.to_string(),
            image: image.to_string(),
            state: ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.to_string()),
                    message,
                }),
                ..Default::default()
            },
            container_id: None,
        }
    }

    pub fn set_waiting(&mut self, reason: &str, message: Option<String>) {
        self.state = ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.to_string()),
                message,
            }),
            ..Default::default()
        };
    }

    pub fn set_running(&mut self, pid: u32, started_at: Time) {
        self.container_id = Some(format!("pod-runner://{pid}"));
        self.state = ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started_at),
            }),
            ..Default::default()
        };
    }

    /// Exit code 0 is `Completed`, anything else `Error`, as the kubelet reports it.
    pub fn set_terminated(
        &mut self,
        exit_code: i32,
        started_at: Option<Time>,
        message: Option<String>,
    ) {
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        self.set_terminated_with_reason(exit_code, reason, started_at, message);
    }

    pub fn set_terminated_with_reason(
        &mut self,
        exit_code: i32,
        reason: &str,
        started_at: Option<Time>,
        message: Option<String>,
    ) {
        let started_at = started_at.or_else(|| {
            self.state
                .running
                .as_ref()
                .and_then(|r| r.started_at.clone())
        });
        self.state = ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code,
                reason: Some(reason.to_string()),
                message,
                started_at,
                finished_at: Some(now()),
                container_id: self.container_id.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
    }

    pub fn is_running(&self) -> bool {
        self.state.running.is_some()
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.state.terminated.as_ref().map(|t| t.exit_code)
    }

    fn status(&self) -> ContainerStatus {
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: String::new(),
            container_id: self.container_id.clone(),
            ready: self.is_running(),
            started: Some(self.is_running()),
            restart_count: 0,
            state: Some(self.state.clone()),
            ..Default::default()
        }
    }
}

/// The pod-level summary of the containers.
#[derive(Clone, Debug)]
pub struct PodView {
    pub phase: &'static str,
    pub start_time: Time,
    pub init_containers: Vec<ContainerRecord>,
    pub containers: Vec<ContainerRecord>,
    /// Pod-level reason and message (set on failures the pod as a whole suffers).
    pub reason: Option<String>,
    pub message: Option<String>,
    /// The pod's address, once its network exists (the host's for `hostNetwork` pods).
    pub pod_ip: Option<String>,
    /// The node's address on the pod network.
    pub host_ip: String,
}

impl PodView {
    pub fn to_status(&self) -> PodStatus {
        let initialized = self
            .init_containers
            .iter()
            .all(|c| c.exit_code() == Some(0));
        let ready =
            self.phase == "Running" && self.containers.iter().all(ContainerRecord::is_running);
        let completed = matches!(self.phase, "Succeeded" | "Failed");
        let condition = |type_: &str, ok: bool| PodCondition {
            type_: type_.to_string(),
            status: if ok { "True" } else { "False" }.to_string(),
            reason: (!ok && completed).then(|| "PodCompleted".to_string()),
            last_transition_time: Some(now()),
            ..Default::default()
        };
        PodStatus {
            phase: Some(self.phase.to_string()),
            host_ip: Some(self.host_ip.clone()),
            host_ips: Some(vec![HostIP {
                ip: self.host_ip.clone(),
            }]),
            pod_ip: self.pod_ip.clone(),
            pod_ips: self
                .pod_ip
                .as_ref()
                .map(|ip| vec![PodIP { ip: ip.clone() }]),
            start_time: Some(self.start_time.clone()),
            reason: self.reason.clone(),
            message: self.message.clone(),
            conditions: Some(vec![
                condition("PodScheduled", true),
                condition("Initialized", initialized || completed),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ]),
            init_container_statuses: (!self.init_containers.is_empty()).then(|| {
                self.init_containers
                    .iter()
                    .map(ContainerRecord::status)
                    .collect()
            }),
            container_statuses: Some(
                self.containers
                    .iter()
                    .map(ContainerRecord::status)
                    .collect(),
            ),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminated_containers_say_completed_or_error() {
        let mut ok = ContainerRecord::waiting("a", "img", "ContainerCreating", None);
        ok.set_running(42, now());
        ok.set_terminated(0, None, None);
        let terminated = ok.state.terminated.as_ref().unwrap();
        assert_eq!(terminated.reason.as_deref(), Some("Completed"));
        assert!(terminated.started_at.is_some() && terminated.finished_at.is_some());
        assert_eq!(terminated.container_id.as_deref(), Some("pod-runner://42"));

        let mut failed = ContainerRecord::waiting("b", "img", "ContainerCreating", None);
        failed.set_terminated(3, Some(now()), None);
        assert_eq!(
            failed.state.terminated.as_ref().unwrap().reason.as_deref(),
            Some("Error")
        );
        assert_eq!(failed.exit_code(), Some(3));
    }

    #[test]
    fn running_pods_are_ready() {
        let mut main = ContainerRecord::waiting("main", "img", "ContainerCreating", None);
        main.set_running(7, now());
        let view = PodView {
            phase: "Running",
            start_time: now(),
            init_containers: vec![],
            containers: vec![main],
            reason: None,
            message: None,
            pod_ip: Some("10.213.7.2".into()),
            host_ip: "10.213.7.1".into(),
        };
        let status = view.to_status();
        assert_eq!(status.pod_ip.as_deref(), Some("10.213.7.2"));
        assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "10.213.7.2");
        assert_eq!(status.host_ip.as_deref(), Some("10.213.7.1"));
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert!(status.container_statuses.unwrap()[0].ready);
    }
}
