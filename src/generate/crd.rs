//! The CustomResourceDefinitions, generated from the Rust types: v2's three, with the schema
//! rules that v2's CRDs had (required fields) and the ones v2 would have failed on at run time
//! anyway (a timeout that is not a duration, a pod without containers), and v3's HealthCheck,
//! with nothing required in its spec, as in v3, and its status subresource. Nothing that v2 or
//! v3 accepted is refused.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::api::{HealthCheck, KuberhealthyCheck, KuberhealthyJob, KuberhealthyState, duration};

/// Which CRDs `kuberhealthy crd` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// v2's three (`comcast.github.io/v1`): the chart's `crds/crds.yaml`.
    V2,
    /// v3's HealthCheck (`kuberhealthy.github.io/v2`): the chart's `files/healthcheck-crd.yaml`.
    V3,
}

/// v2's CRDs in the order they are printed: checks, jobs, states.
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

/// The HealthCheck CRD: v3's names, short names, printer columns and status subresource;
/// every spec field optional, as in v3.
pub fn healthcheck_crd() -> CustomResourceDefinition {
    let mut value =
        serde_json::to_value(HealthCheck::crd()).expect("a CRD always serializes to JSON");
    // v3 names it; the API server would only default it to the same.
    value["spec"]["names"]["listKind"] = json!("HealthCheckList");
    for version in value["spec"]["versions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let root = &mut version["schema"]["openAPIV3Schema"];
        // Serde defaults make reading tolerant; the server must not write them into objects.
        remove_defaults(&mut root["properties"]["spec"]);
        remove_defaults(&mut root["properties"]["status"]);
        strip_empty_descriptions(root);
    }
    serde_json::from_value(value).expect("the patched CRD is still a CRD")
}

/// The CRDs of `generations` as one multi-document YAML stream (what `kuberhealthy crd`
/// prints: all four without `--only`).
pub fn crds_yaml(generations: &[Generation]) -> String {
    let mut all = Vec::new();
    if generations.contains(&Generation::V2) {
        all.extend(crds());
    }
    if generations.contains(&Generation::V3) {
        all.push(healthcheck_crd());
    }
    all.iter()
        .map(|crd| serde_saphyr::to_string(crd).expect("a CRD always serializes to YAML"))
        .map(|doc| format!("---\n{doc}"))
        .collect()
}

/// Removes `default` from `schema` and every schema below it (the generated ones come from
/// serde defaults).
fn remove_defaults(schema: &mut Value) {
    let Some(node) = schema.as_object_mut() else {
        return;
    };
    node.remove("default");
    if let Some(properties) = node.get_mut("properties").and_then(Value::as_object_mut) {
        properties.values_mut().for_each(remove_defaults);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(below) = node.get_mut(key) {
            remove_defaults(below);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(schemas)) = node.get_mut(key) {
            schemas.iter_mut().for_each(remove_defaults);
        }
    }
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
    fn yaml_is_three_documents_and_the_healthcheck() {
        let yaml = crds_yaml(&[Generation::V2]);
        assert_eq!(yaml.lines().filter(|l| *l == "---").count(), 3);
        assert!(!yaml.contains("description: ''"));
        let all = crds_yaml(&[Generation::V2, Generation::V3]);
        assert_eq!(all.lines().filter(|l| *l == "---").count(), 4);
        assert!(all.starts_with(&yaml), "v2's CRDs first, unchanged");
        assert!(all.ends_with(&crds_yaml(&[Generation::V3])));
    }

    #[test]
    fn the_healthcheck_crd_is_v3s() {
        let crd = healthcheck_crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("healthchecks.kuberhealthy.github.io")
        );
        assert_eq!(crd.spec.group, "kuberhealthy.github.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        let n = &crd.spec.names;
        assert_eq!(
            (
                n.kind.as_str(),
                n.list_kind.as_deref(),
                n.plural.as_str(),
                n.singular.as_deref()
            ),
            (
                "HealthCheck",
                Some("HealthCheckList"),
                "healthchecks",
                Some("healthcheck")
            )
        );
        assert_eq!(
            n.short_names.clone().unwrap_or_default(),
            ["hc", "healthcheck", "healthchecks"]
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v2");
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "the status subresource"
        );
        let columns: Vec<(String, String, String)> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.clone(), c.type_.clone(), c.json_path.clone()))
            .collect();
        assert_eq!(
            columns,
            [
                ("OK", "boolean", ".status.ok"),
                ("RunInterval", "string", ".spec.runInterval"),
                ("ErrorMessage", "string", ".status.errors[0]"),
                ("Timeout", "string", ".spec.timeout"),
            ]
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        );
        let schema = serde_json::to_value(version.schema.as_ref().unwrap()).unwrap();
        let root = &schema["openAPIV3Schema"];
        let spec = &root["properties"]["spec"];
        assert!(
            spec.get("required").is_none(),
            "nothing is required in v3's spec"
        );
        for field in [
            "singleRunOnly",
            "runInterval",
            "timeout",
            "extraAnnotations",
            "extraLabels",
            "podSpec",
        ] {
            assert!(
                spec["properties"].get(field).is_some(),
                "spec lacks {field}"
            );
        }
        let pod = &spec["properties"]["podSpec"]["properties"];
        assert!(pod["metadata"]["properties"].get("labels").is_some());
        assert!(pod["spec"]["properties"].get("containers").is_some());
        let status = &root["properties"]["status"]["properties"];
        for (field, kind) in [
            ("ok", "boolean"),
            ("errors", "array"),
            ("consecutiveFailures", "integer"),
            ("runDuration", "integer"),
            ("namespace", "string"),
            ("currentUUID", "string"),
            ("lastRunUnix", "integer"),
            ("successCount", "integer"),
            ("failureCount", "integer"),
            ("lastOKUnix", "integer"),
            ("lastFailureUnix", "integer"),
            ("additionalMetadata", "string"),
        ] {
            assert_eq!(status[field]["type"], kind, "status.{field}");
        }
        assert!(
            !serde_json::to_string(&schema)
                .unwrap()
                .contains("\"default\""),
            "no server-side defaults"
        );
    }
}
