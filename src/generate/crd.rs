//! The three CustomResourceDefinitions, generated from the Rust types, with the schema rules
//! that v2's CRDs had (required fields) and the ones v2 would have failed on at run time
//! anyway (a timeout that is not a duration, a pod without containers). Nothing that v2
//! accepted and ran is refused.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::api::{KuberhealthyCheck, KuberhealthyJob, KuberhealthyState, duration};

/// The CRDs in the order they are printed: checks, jobs, states.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        with_cadence_rule(with_rules(
            KuberhealthyCheck::crd(),
            &["podSpec", "timeout"],
        )),
        with_rules(KuberhealthyJob::crd(), &["podSpec", "timeout"]),
        with_rules(
            KuberhealthyState::crd(),
            &[
                "AuthoritativePod",
                "Errors",
                "Namespace",
                "Node",
                "OK",
                "RunDuration",
                "uuid",
            ],
        ),
    ]
}

/// All three CRDs as one multi-document YAML stream (what `kuberhealthy crd` prints).
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_saphyr::to_string(crd).expect("a CRD always serializes to YAML"))
        .map(|doc| format!("---\n{doc}"))
        .collect()
}

/// Marks the spec's required fields (v2's lists), requires a timeout that is empty (v2's
/// default) or a non-negative Go duration, and at least one container in a pod spec.
fn with_rules(crd: CustomResourceDefinition, required: &[&str]) -> CustomResourceDefinition {
    let mut value = serde_json::to_value(&crd).expect("a CRD always serializes to JSON");
    for version in value["spec"]["versions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let spec = &mut version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        spec["required"] = json!(required);
        let props = &mut spec["properties"];
        // Serde defaults make reading tolerant; they must not become schema defaults that
        // would satisfy `required` on the server.
        for field in props
            .as_object_mut()
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            if let Some(field) = field.as_object_mut() {
                field.remove("default");
            }
        }
        if let Some(timeout) = props.get_mut("timeout") {
            timeout["pattern"] = json!(format!("^$|{}", duration::SCHEMA_PATTERN));
        }
        if let Some(pod_spec) = props.get_mut("podSpec") {
            pod_spec["x-kubernetes-validations"] = json!([{
                "rule": "size(self.containers) > 0",
                "message": "spec.podSpec.containers must list at least one container",
                "reason": "FieldValueInvalid",
                "fieldPath": ".containers",
            }]);
        }
        strip_empty_descriptions(spec);
    }
    serde_json::from_value(value).expect("the patched CRD is still a CRD")
}

/// A check runs every `runInterval` or on a cron `schedule`: exactly one of them (v2
/// required `runInterval`; a v2 manifest always has it).
fn with_cadence_rule(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let mut value = serde_json::to_value(&crd).expect("a CRD always serializes to JSON");
    for version in value["spec"]["versions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let spec = &mut version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        spec["x-kubernetes-validations"] = json!([{
            "rule": "(has(self.runInterval) && self.runInterval != '') != (has(self.schedule) && self.schedule != '')",
            "message": "set exactly one of spec.runInterval (such as 10m) and spec.schedule (a cron expression such as \"0 1 * * *\")",
            "reason": "FieldValueInvalid",
        }]);
    }
    serde_json::from_value(value).expect("the patched CRD is still a CRD")
}

/// Keeps the generated YAML free of `description: ""` noise.
fn strip_empty_descriptions(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("description").and_then(Value::as_str) == Some("") {
                map.remove("description");
            }
            map.values_mut().for_each(strip_empty_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_empty_descriptions),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(crd: &CustomResourceDefinition) -> (String, String, Vec<String>, String) {
        let n = &crd.spec.names;
        (
            n.plural.clone(),
            n.singular.clone().unwrap_or_default(),
            n.short_names.clone().unwrap_or_default(),
            n.kind.clone(),
        )
    }

    #[test]
    fn names_are_v2s() {
        let crds = crds();
        let expected = [
            ("khchecks", "khcheck", "khc", "KuberhealthyCheck"),
            ("khjobs", "khjob", "khj", "KuberhealthyJob"),
            ("khstates", "khstate", "khs", "KuberhealthyState"),
        ];
        for (crd, (plural, singular, short, kind)) in crds.iter().zip(expected) {
            assert_eq!(crd.spec.group, "comcast.github.io");
            assert_eq!(crd.spec.scope, "Namespaced");
            assert_eq!(crd.spec.versions.len(), 1);
            assert_eq!(crd.spec.versions[0].name, "v1");
            assert_eq!(
                names(crd),
                (
                    plural.into(),
                    singular.into(),
                    vec![short.to_string()],
                    kind.into()
                )
            );
            assert_eq!(
                crd.metadata.name.as_deref(),
                Some(format!("{plural}.comcast.github.io").as_str())
            );
        }
    }

    #[test]
    fn state_schema_keeps_v2_keys_required() {
        let state = serde_json::to_value(&crds()[2]).unwrap();
        let spec = &state["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            spec["required"],
            json!([
                "AuthoritativePod",
                "Errors",
                "Namespace",
                "Node",
                "OK",
                "RunDuration",
                "uuid"
            ])
        );
        for key in [
            "OK",
            "Errors",
            "RunDuration",
            "Namespace",
            "Node",
            "LastRun",
            "AuthoritativePod",
            "uuid",
            "khWorkload",
        ] {
            assert!(
                spec["properties"].get(key).is_some(),
                "khstate schema lacks {key}"
            );
        }
        assert_eq!(spec["properties"]["LastRun"]["format"], "date-time");
    }

    #[test]
    fn check_schema_guards_timeout_and_containers() {
        let check = serde_json::to_value(&crds()[0]).unwrap();
        let spec = &check["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["required"], json!(["podSpec", "timeout"]));
        assert_eq!(
            spec["x-kubernetes-validations"][0]["rule"],
            "(has(self.runInterval) && self.runInterval != '') != (has(self.schedule) && self.schedule != '')",
            "exactly one of runInterval and schedule, checked by the API server"
        );
        assert!(
            spec["properties"]["runInterval"].get("pattern").is_none(),
            "v2 ran checks with any runInterval"
        );
        for field in ["podSpec", "runInterval", "timeout"] {
            assert!(
                spec["properties"][field].get("default").is_none(),
                "{field} must not be defaulted by the server"
            );
        }
        let pattern = spec["properties"]["timeout"]["pattern"].as_str().unwrap();
        let re = regex::Regex::new(pattern).unwrap();
        assert!(re.is_match("") && re.is_match("5m") && !re.is_match("5") && !re.is_match("-1s"));
        assert_eq!(
            spec["properties"]["podSpec"]["x-kubernetes-validations"][0]["rule"],
            "size(self.containers) > 0"
        );
    }

    #[test]
    fn printer_columns_make_kubectl_get_useful() {
        let columns = |i: usize| -> Vec<String> {
            crds()[i].spec.versions[0]
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.json_path.clone())
                .collect()
        };
        assert_eq!(
            columns(0),
            [
                ".spec.runInterval",
                ".spec.schedule",
                ".spec.suspend",
                ".spec.timeout",
                ".metadata.creationTimestamp"
            ]
        );
        assert_eq!(
            columns(1),
            [
                ".spec.phase",
                ".spec.timeout",
                ".metadata.creationTimestamp"
            ]
        );
        assert_eq!(
            columns(2),
            [
                ".spec.OK",
                ".spec.LastRun",
                ".spec.RunDuration",
                ".spec.Errors[0]",
                ".metadata.creationTimestamp"
            ]
        );
    }

    #[test]
    fn yaml_is_three_documents() {
        let yaml = crds_yaml();
        assert_eq!(yaml.lines().filter(|l| *l == "---").count(), 3);
        assert!(!yaml.contains("description: ''"));
    }
}
