//! Building the checker pod of a run (pure). The pod follows v2's contract: the injected
//! environment replaces user values of the same names, v2's labels and annotation, the
//! spec's extra labels and annotations, `restartPolicy: Never`, the check's namespace.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;

use crate::api::names;

/// Everything a checker pod is built from.
pub struct PodRequest<'a> {
    /// The check or job name (`kuberhealthy-check-name`).
    pub check_name: &'a str,
    pub namespace: &'a str,
    pub pod_name: &'a str,
    pub run_uuid: &'a str,
    pub deadline: Timestamp,
    pub reporting_url: &'a str,
    pub pod_spec: &'a PodSpec,
    pub extra_labels: Option<&'a BTreeMap<String, String>>,
    pub extra_annotations: Option<&'a BTreeMap<String, String>>,
    /// The check or job that owns the pod, so the cluster's garbage collector removes its
    /// pods when it is deleted (the controller deletes them too).
    pub owner: Option<OwnerReference>,
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

pub fn build(req: &PodRequest<'_>) -> Pod {
    let mut spec = req.pod_spec.clone();
    spec.restart_policy = Some("Never".into());
    for container in &mut spec.containers {
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

    let mut labels = req.extra_labels.cloned().unwrap_or_default();
    labels.insert(names::LABEL_RUN_ID.into(), req.run_uuid.into());
    labels.insert(names::LABEL_CHECK_NAME.into(), req.check_name.into());
    labels.insert(names::LABEL_APP.into(), names::LABEL_APP_VALUE.into());

    let mut annotations = req.extra_annotations.cloned().unwrap_or_default();
    annotations.insert(names::ANNOTATION_CHECK_NAME.into(), req.check_name.into());

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
    use k8s_openapi::api::core::v1::Container;

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
            pod_spec: &spec,
            extra_labels: Some(&extra_labels),
            extra_annotations: Some(&extra_annotations),
            owner: None,
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
