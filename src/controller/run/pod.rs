//! Building the checker pod of a run (pure). The pod follows v2's contract: the injected
//! environment replaces user values of the same names, v2's labels and annotation, the
//! spec's extra labels and annotations, `restartPolicy: Never`, the check's namespace. A
//! HealthCheck's pod follows v3's instead: `podSpec.metadata` and the extras, v3's labels
//! (`healthcheck`, `kh-run-uuid`) and annotations, the environment in init containers too; it
//! also carries `app=kuberhealthy-check`, which the replicas' pod watch selects, and
//! `restartPolicy: Never` (v3 leaves it to the spec), so a checker that exits is not restarted
//! into a run that is over.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;

use crate::api::{PodSpecText, names};

/// Everything a checker pod is built from.
pub struct PodRequest<'a> {
    /// The check or job name (`kuberhealthy-check-name`).
    pub check_name: &'a str,
    pub namespace: &'a str,
    pub pod_name: &'a str,
    pub run_uuid: &'a str,
    pub deadline: Timestamp,
    pub reporting_url: &'a str,
    pub pod_spec: &'a PodSpecText,
    pub extra_labels: Option<&'a BTreeMap<String, String>>,
    pub extra_annotations: Option<&'a BTreeMap<String, String>>,
    /// The check or job that owns the pod, so the cluster's garbage collector removes its
    /// pods when it is deleted (the controller deletes them too).
    pub owner: Option<OwnerReference>,
    /// Whose conventions the pod follows.
    pub generation: Generation<'a>,
}

/// Whose labels, annotations and environment a checker pod gets.
pub enum Generation<'a> {
    /// Kuberhealthy v2's, for KuberhealthyChecks and KuberhealthyJobs.
    V2,
    /// Kuberhealthy v3's, for HealthChecks: `podSpec.metadata` and the run's start
    /// (v3's `createdTime` annotation).
    V3 {
        labels: Option<&'a BTreeMap<String, String>>,
        annotations: Option<&'a BTreeMap<String, String>>,
        started_at: Timestamp,
    },
}

/// Which check a checker pod belongs to, from its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodOwner<'a> {
    /// A KuberhealthyCheck or KuberhealthyJob (`kuberhealthy-check-name`).
    Check(&'a str),
    /// A HealthCheck (`healthcheck`).
    HealthCheck(&'a str),
}

pub fn owner_of(pod: &Pod) -> Option<PodOwner<'_>> {
    let labels = pod.metadata.labels.as_ref()?;
    if let Some(name) = labels.get(names::LABEL_CHECK_NAME) {
        return Some(PodOwner::Check(name));
    }
    labels
        .get(names::LABEL_HEALTHCHECK)
        .map(|name| PodOwner::HealthCheck(name))
}

/// The run a checker pod belongs to (`kuberhealthy-run-id`, or v3's `kh-run-uuid`).
pub fn run_of(pod: &Pod) -> Option<&str> {
    let labels = pod.metadata.labels.as_ref()?;
    labels
        .get(names::LABEL_RUN_ID)
        .or_else(|| labels.get(names::LABEL_RUN_UUID))
        .map(String::as_str)
}

/// Go's `time.Unix(s, 0).String()` in UTC, as v3 writes `createdTime`.
fn go_time_string(t: Timestamp) -> String {
    format!("{} +0000 UTC", t.strftime("%Y-%m-%d %H:%M:%S"))
}

/// The pod name of a run: the check name and the start of the run UUID, so a new leader
/// finds the same pod for the same run. Kept within the 63 characters of a label value.
pub fn pod_name(check_name: &str, run_uuid: &str) -> String {
    let suffix: String = run_uuid
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(8)
        .collect();
    let room = 63 - 1 - suffix.len();
    let mut base: String = check_name.chars().take(room).collect();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{}-{suffix}", base.to_ascii_lowercase())
}

fn injected_env(req: &PodRequest<'_>) -> Vec<EnvVar> {
    vec![
        EnvVar {
            name: names::ENV_REPORTING_URL.into(),
            value: Some(req.reporting_url.into()),
            ..Default::default()
        },
        EnvVar {
            name: names::ENV_RUN_UUID.into(),
            value: Some(req.run_uuid.into()),
            ..Default::default()
        },
        EnvVar {
            name: names::ENV_CHECK_RUN_DEADLINE.into(),
            value: Some(req.deadline.as_second().to_string()),
            ..Default::default()
        },
        EnvVar {
            name: names::ENV_POD_NAMESPACE.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.namespace".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
}

fn inject_env(container: &mut k8s_openapi::api::core::v1::Container, req: &PodRequest<'_>) {
    let mut env: Vec<EnvVar> = container
        .env
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !names::INJECTED_ENV.contains(&e.name.as_str()))
        .collect();
    env.extend(injected_env(req));
    container.env = Some(env);
}

/// `first`, then `then` over it.
fn merged(
    first: Option<&BTreeMap<String, String>>,
    then: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = first.cloned().unwrap_or_default();
    out.extend(
        then.into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    out
}

pub fn build(req: &PodRequest<'_>) -> Pod {
    let mut spec = req.pod_spec.spec();
    spec.restart_policy = Some("Never".into());
    for container in &mut spec.containers {
        inject_env(container, req);
    }

    let (labels, annotations) = match &req.generation {
        Generation::V2 => {
            let mut labels = merged(None, req.extra_labels);
            labels.insert(names::LABEL_RUN_ID.into(), req.run_uuid.into());
            labels.insert(names::LABEL_CHECK_NAME.into(), req.check_name.into());
            labels.insert(names::LABEL_APP.into(), names::LABEL_APP_VALUE.into());
            let mut annotations = merged(None, req.extra_annotations);
            annotations.insert(names::ANNOTATION_CHECK_NAME.into(), req.check_name.into());
            (labels, annotations)
        }
        Generation::V3 {
            labels,
            annotations,
            started_at,
        } => {
            for container in spec.init_containers.iter_mut().flatten() {
                inject_env(container, req);
            }
            let mut labels = merged(*labels, req.extra_labels);
            labels.insert(names::LABEL_HEALTHCHECK.into(), req.check_name.into());
            labels.insert(names::LABEL_RUN_UUID.into(), req.run_uuid.into());
            labels.insert(names::LABEL_APP.into(), names::LABEL_APP_VALUE.into());
            let mut annotations = merged(*annotations, req.extra_annotations);
            annotations.insert(
                names::ANNOTATION_CREATED_BY.into(),
                names::ANNOTATION_CREATED_BY_VALUE.into(),
            );
            annotations.insert(names::ANNOTATION_RUN_UUID.into(), req.run_uuid.into());
            annotations.insert(
                names::ANNOTATION_CREATED_TIME.into(),
                go_time_string(*started_at),
            );
            annotations.insert(
                names::ANNOTATION_HEALTHCHECK_NAME.into(),
                req.check_name.into(),
            );
            (labels, annotations)
        }
    };

    Pod {
        metadata: ObjectMeta {
            name: Some(req.pod_name.into()),
            namespace: Some(req.namespace.into()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: req.owner.clone().map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    use super::*;

    fn spec() -> PodSpec {
        PodSpec {
            containers: vec![
                Container {
                    name: "main".into(),
                    image: Some("checker:v1".into()),
                    env: Some(vec![
                        EnvVar {
                            name: "KEEP".into(),
                            value: Some("1".into()),
                            ..Default::default()
                        },
                        EnvVar {
                            name: "KH_RUN_UUID".into(),
                            value: Some("user-value".into()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                },
                Container {
                    name: "sidecar".into(),
                    image: Some("s:v1".into()),
                    ..Default::default()
                },
            ],
            restart_policy: Some("Always".into()),
            ..Default::default()
        }
    }

    fn env_of(pod: &Pod, container: usize) -> BTreeMap<String, EnvVar> {
        pod.spec.as_ref().unwrap().containers[container]
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect()
    }

    #[test]
    fn the_pod_follows_v2s_contract() {
        let spec = spec();
        let extra_labels = BTreeMap::from([
            ("team".to_string(), "a".to_string()),
            ("app".to_string(), "mine".to_string()),
        ]);
        let extra_annotations = BTreeMap::from([("note".to_string(), "x".to_string())]);
        let pod = build(&PodRequest {
            check_name: "dns-status-internal",
            namespace: "checks",
            pod_name: "dns-status-internal-1d309ed7",
            run_uuid: "1d309ed7-4b7a-4fd5-9706-d04f53c9ed30",
            deadline: Timestamp::from_second(1_700_000_300).unwrap(),
            reporting_url: "http://kh.kuberhealthy.svc/externalCheckStatus",
            pod_spec: &PodSpecText::from(&spec),
            extra_labels: Some(&extra_labels),
            extra_annotations: Some(&extra_annotations),
            owner: None,
            generation: Generation::V2,
        });
        assert_eq!(pod.metadata.namespace.as_deref(), Some("checks"));
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(
            labels["kuberhealthy-run-id"],
            "1d309ed7-4b7a-4fd5-9706-d04f53c9ed30"
        );
        assert_eq!(labels["kuberhealthy-check-name"], "dns-status-internal");
        assert_eq!(
            labels["app"], "kuberhealthy-check",
            "v2 enforces app=kuberhealthy-check"
        );
        assert_eq!(labels["team"], "a");
        let annotations = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            annotations["comcast.github.io/check-name"],
            "dns-status-internal"
        );
        assert_eq!(annotations["note"], "x");
        assert_eq!(
            pod.spec.as_ref().unwrap().restart_policy.as_deref(),
            Some("Never")
        );
        for container in 0..2 {
            let env = env_of(&pod, container);
            assert_eq!(
                env["KH_REPORTING_URL"].value.as_deref(),
                Some("http://kh.kuberhealthy.svc/externalCheckStatus")
            );
            assert_eq!(
                env["KH_RUN_UUID"].value.as_deref(),
                Some("1d309ed7-4b7a-4fd5-9706-d04f53c9ed30")
            );
            assert_eq!(
                env["KH_CHECK_RUN_DEADLINE"].value.as_deref(),
                Some("1700000300")
            );
            let ns = env["KH_POD_NAMESPACE"]
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap();
            assert_eq!(ns.field_path, "metadata.namespace");
        }
        let main = pod.spec.as_ref().unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        assert_eq!(
            main.iter().filter(|e| e.name == "KH_RUN_UUID").count(),
            1,
            "the user's value is replaced"
        );
        assert_eq!(main[0].name, "KEEP", "other variables keep their place");
    }

    #[test]
    fn a_healthchecks_pod_follows_v3s_contract() {
        let mut spec = spec();
        spec.init_containers = Some(vec![Container {
            name: "init".into(),
            image: Some("init:v1".into()),
            ..Default::default()
        }]);
        spec.restart_policy = None;
        let pod_labels = BTreeMap::from([
            ("from-metadata".to_string(), "m".to_string()),
            ("shared".to_string(), "metadata".to_string()),
        ]);
        let pod_annotations = BTreeMap::from([("note".to_string(), "m".to_string())]);
        let extra_labels = BTreeMap::from([("shared".to_string(), "extra".to_string())]);
        let pod = build(&PodRequest {
            check_name: "deployment",
            namespace: "kuberhealthy",
            pod_name: "deployment-1d309ed7",
            run_uuid: "1d309ed7-4b7a-4fd5-9706-d04f53c9ed30",
            deadline: Timestamp::from_second(1_700_000_300).unwrap(),
            reporting_url: "http://kuberhealthy.kuberhealthy.svc.cluster.local/check",
            pod_spec: &PodSpecText::from(&spec),
            extra_labels: Some(&extra_labels),
            extra_annotations: None,
            owner: None,
            generation: Generation::V3 {
                labels: Some(&pod_labels),
                annotations: Some(&pod_annotations),
                started_at: Timestamp::from_second(1_700_000_000).unwrap(),
            },
        });
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["healthcheck"], "deployment");
        assert_eq!(
            labels["kh-run-uuid"],
            "1d309ed7-4b7a-4fd5-9706-d04f53c9ed30"
        );
        assert_eq!(labels["from-metadata"], "m");
        assert_eq!(
            labels["shared"], "extra",
            "extraLabels over podSpec.metadata, as v3"
        );
        assert_eq!(
            labels["app"], "kuberhealthy-check",
            "what the replicas watch"
        );
        assert!(!labels.contains_key("kuberhealthy-check-name"));
        assert!(!labels.contains_key("kuberhealthy-run-id"));
        let annotations = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            annotations,
            &BTreeMap::from(
                [
                    ("createdBy", "kuberhealthy"),
                    ("createdTime", "2023-11-14 22:13:20 +0000 UTC"),
                    ("kh-run-uuid", "1d309ed7-4b7a-4fd5-9706-d04f53c9ed30"),
                    ("kuberhealthyCheckName", "deployment"),
                    ("note", "m"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string()))
            )
        );
        let pod_spec = pod.spec.as_ref().unwrap();
        assert_eq!(pod_spec.restart_policy.as_deref(), Some("Never"));
        let init_env = pod_spec.init_containers.as_ref().unwrap()[0]
            .env
            .clone()
            .unwrap();
        assert_eq!(
            init_env
                .iter()
                .find(|e| e.name == "KH_REPORTING_URL")
                .and_then(|e| e.value.as_deref()),
            Some("http://kuberhealthy.kuberhealthy.svc.cluster.local/check"),
            "v3 injects into init containers too"
        );
        assert_eq!(owner_of(&pod), Some(PodOwner::HealthCheck("deployment")));
        assert_eq!(run_of(&pod), Some("1d309ed7-4b7a-4fd5-9706-d04f53c9ed30"));
    }

    #[test]
    fn pod_names_are_per_run_and_fit_a_label() {
        assert_eq!(
            pod_name("pod-status", "77af9108-720b-4ad4"),
            "pod-status-77af9108"
        );
        let long = "a".repeat(100);
        let name = pod_name(&long, "0123456789abcdef");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("-01234567"));
        assert_eq!(pod_name("x-----", "ab"), "x-ab", "no dangling separator");
    }
}
