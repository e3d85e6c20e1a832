//! Judging a run in flight from its checker pod (pure): keep waiting, fail it now with a
//! reason that names the pod and the cause, or time it out with what the pod was doing.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::api::time::add;

/// How long after a checker pod ends without a report the run is failed: a report sent just
/// before the exit may still be on its way.
pub const REPORT_GRACE: Duration = Duration::from_secs(2);

/// Waiting reasons that mean the container will not start without someone fixing the pod.
const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do before this time (the deadline, or the end of a grace period).
    WaitUntil(Timestamp),
    /// The pod of the run does not exist (yet): create it.
    PodMissing,
    /// Fail the run now.
    Fail(String),
    /// The deadline passed.
    TimedOut(String),
}

/// `key` is `namespace/name` of the check, for messages.
pub fn judge(
    key: &str,
    pod_name: &str,
    deadline: Timestamp,
    pod: Option<&Pod>,
    now: Timestamp,
) -> Verdict {
    if now >= deadline {
        let doing = pod.map_or_else(|| format!("pod {pod_name} does not exist"), describe);
        return Verdict::TimedOut(format!(
            "{key}: timed out waiting for checker pod to report in (deadline {deadline}; {doing})"
        ));
    }
    let Some(pod) = pod else {
        return Verdict::PodMissing;
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return Verdict::Fail(format!(
            "{key}: checker pod {pod_name} was deleted before it reported"
        ));
    }
    let statuses = container_statuses(pod);
    for status in statuses {
        if let Some(waiting) = status.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or("");
            if STUCK_REASONS.contains(&reason) {
                let message = waiting
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                return Verdict::Fail(format!(
                    "{key}: checker pod {pod_name} cannot start: container {} is waiting with {reason}{message}",
                    status.name
                ));
            }
        }
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    if phase == "Succeeded" || phase == "Failed" {
        let ended = statuses
            .iter()
            .filter_map(|s| s.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
            .map(|t| t.0)
            .max()
            .unwrap_or(now);
        let fail_at = add(ended, REPORT_GRACE);
        if now < fail_at {
            return Verdict::WaitUntil(fail_at.min(deadline));
        }
        return Verdict::Fail(format!(
            "{key}: checker pod {pod_name} {} without reporting",
            exits(statuses, phase)
        ));
    }
    Verdict::WaitUntil(deadline)
}

/// The container whose last lines say why a run failed: the first that exited with an error,
/// else the first that started. None while no container has started (nothing was printed).
pub fn log_container(pod: &Pod) -> Option<String> {
    let statuses = container_statuses(pod);
    let failed = statuses.iter().find(|s| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .is_some_and(|t| t.exit_code != 0)
    });
    let started = || {
        statuses.iter().find(|s| {
            s.state
                .as_ref()
                .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
        })
    };
    failed.or_else(started).map(|s| s.name.clone())
}

fn container_statuses(pod: &Pod) -> &[ContainerStatus] {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[])
}

/// "exited with code 3 (container main: Error)" or "ended Failed".
fn exits(statuses: &[ContainerStatus], phase: &str) -> String {
    let codes: Vec<String> = statuses
        .iter()
        .filter_map(|s| {
            let t = s.state.as_ref()?.terminated.as_ref()?;
            let reason = t.reason.as_deref().unwrap_or("terminated");
            Some(format!(
                "container {} exited with code {} ({reason})",
                s.name, t.exit_code
            ))
        })
        .collect();
    if codes.is_empty() {
        format!("ended {phase}")
    } else {
        codes.join(", ")
    }
}

/// What the pod was doing, for a time-out message.
pub fn describe(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    let mut parts = vec![format!("pod {name} is {phase}")];
    if node.is_none() && phase == "Pending" {
        parts.push("not scheduled to a node".into());
    }
    for s in container_statuses(pod) {
        let Some(state) = &s.state else { continue };
        if let Some(w) = &state.waiting {
            parts.push(format!(
                "container {} waiting: {}",
                s.name,
                w.reason.as_deref().unwrap_or("unknown")
            ));
        } else if let Some(r) = &state.running {
            let since = r
                .started_at
                .as_ref()
                .map(|t| format!(" since {}", t.0))
                .unwrap_or_default();
            parts.push(format!("container {} running{since}", s.name));
        } else if let Some(t) = &state.terminated {
            parts.push(format!(
                "container {} exited with code {}",
                s.name, t.exit_code
            ));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStateWaiting, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pod(phase: &str, state: Option<ContainerState>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("c-1234".into());
        pod.status = Some(PodStatus {
            phase: Some(phase.into()),
            container_statuses: state.map(|state| {
                vec![ContainerStatus {
                    name: "main".into(),
                    state: Some(state),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        pod
    }

    fn exited(code: i32, at: &str) -> Option<ContainerState> {
        Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                finished_at: Some(Time(ts(at))),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    const DEADLINE: &str = "2026-01-01T00:05:00Z";

    #[test]
    fn the_log_is_read_from_the_container_that_failed_else_one_that_started() {
        let waiting = ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ImagePullBackOff".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(log_container(&pod("Pending", Some(waiting.clone()))), None);
        assert_eq!(log_container(&pod("Pending", None)), None);
        let running = ContainerState {
            running: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(
            log_container(&pod("Running", Some(running.clone()))).as_deref(),
            Some("main")
        );
        let mut two = pod("Failed", Some(running));
        let statuses = two
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap();
        statuses.push(ContainerStatus {
            name: "sidecar".into(),
            state: exited(2, "2026-01-01T00:01:00Z"),
            ..Default::default()
        });
        assert_eq!(log_container(&two).as_deref(), Some("sidecar"));
    }

    #[test]
    fn a_running_pod_waits_for_its_deadline() {
        let p = pod("Running", None);
        assert_eq!(
            judge(
                "ns/c",
                "c-1234",
                ts(DEADLINE),
                Some(&p),
                ts("2026-01-01T00:01:00Z")
            ),
            Verdict::WaitUntil(ts(DEADLINE))
        );
    }

    #[test]
    fn a_failed_pod_fails_the_run_after_the_report_grace() {
        let p = pod("Failed", exited(1, "2026-01-01T00:01:00Z"));
        assert_eq!(
            judge(
                "ns/c",
                "c-1234",
                ts(DEADLINE),
                Some(&p),
                ts("2026-01-01T00:01:01Z")
            ),
            Verdict::WaitUntil(ts("2026-01-01T00:01:02Z"))
        );
        assert_eq!(
            judge("ns/c", "c-1234", ts(DEADLINE), Some(&p), ts("2026-01-01T00:01:02Z")),
            Verdict::Fail("ns/c: checker pod c-1234 container main exited with code 1 (Error) without reporting".into())
        );
    }

    #[test]
    fn a_pod_that_exits_zero_without_reporting_fails_too() {
        let p = pod("Succeeded", exited(0, "2026-01-01T00:01:00Z"));
        assert_eq!(
            judge("ns/c", "c-1234", ts(DEADLINE), Some(&p), ts("2026-01-01T00:01:10Z")),
            Verdict::Fail("ns/c: checker pod c-1234 container main exited with code 0 (Completed) without reporting".into())
        );
    }

    #[test]
    fn an_image_pull_error_fails_at_once() {
        let waiting = ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ErrImagePull".into()),
                message: Some("image example.invalid/checker:missing not found".into()),
            }),
            ..Default::default()
        };
        let p = pod("Pending", Some(waiting));
        assert_eq!(
            judge("ns/c", "c-1234", ts(DEADLINE), Some(&p), ts("2026-01-01T00:00:03Z")),
            Verdict::Fail("ns/c: checker pod c-1234 cannot start: container main is waiting with ErrImagePull: image example.invalid/checker:missing not found".into())
        );
    }

    #[test]
    fn the_deadline_times_out_with_what_the_pod_was_doing() {
        let mut p = pod("Pending", None);
        p.spec = Some(Default::default());
        assert_eq!(
            judge("ns/c", "c-1234", ts(DEADLINE), Some(&p), ts(DEADLINE)),
            Verdict::TimedOut("ns/c: timed out waiting for checker pod to report in (deadline 2026-01-01T00:05:00Z; pod c-1234 is Pending, not scheduled to a node)".into())
        );
        assert_eq!(
            judge("ns/c", "c-1234", ts(DEADLINE), None, ts(DEADLINE)),
            Verdict::TimedOut(
                "ns/c: timed out waiting for checker pod to report in (deadline 2026-01-01T00:05:00Z; pod c-1234 does not exist)"
                    .into()
            )
        );
    }

    #[test]
    fn a_missing_or_deleted_pod() {
        assert_eq!(
            judge(
                "ns/c",
                "c-1234",
                ts(DEADLINE),
                None,
                ts("2026-01-01T00:00:01Z")
            ),
            Verdict::PodMissing
        );
        let mut p = pod("Running", None);
        p.metadata.deletion_timestamp = Some(Time(ts("2026-01-01T00:00:01Z")));
        assert_eq!(
            judge(
                "ns/c",
                "c-1234",
                ts(DEADLINE),
                Some(&p),
                ts("2026-01-01T00:00:02Z")
            ),
            Verdict::Fail("ns/c: checker pod c-1234 was deleted before it reported".into())
        );
    }
}
