//! `kuberhealthy convert`: Kuberhealthy v2's `KuberhealthyCheck` and `KuberhealthyJob`
//! manifests into v3 `HealthCheck`s, and back (pure). Every field keeps its meaning:
//!
//! - v2 → v3: `podSpec` moves under `podSpec.spec`; a job becomes `singleRunOnly: true`; an
//!   empty `timeout` is written as v2's default `5m` (v3's default is 30s).
//! - v3 → v2: `podSpec.spec` becomes `podSpec`, `podSpec.metadata`'s labels and annotations
//!   join `extraLabels` and `extraAnnotations` (which win, as they do on v3's pod);
//!   `singleRunOnly: true` makes a job; absent durations are written as v3's defaults (`10m`,
//!   `30s`).
//!
//! What has no equivalent is refused with the reason: an unknown spec field, a khstate (a
//! result, not a check), a HealthCheck without a pod spec. Other kinds (ServiceAccounts,
//! Roles, ...) pass through unchanged, and so do manifests already in the target form.
//! `metadata` keeps `name`, `generateName`, `namespace`, `labels` and `annotations` (without
//! kubectl's last-applied configuration); `status` and server-set fields are dropped.

use serde_json::{Map, Value, json};

const V1: &str = "comcast.github.io/v1";
const V3: &str = "kuberhealthy.github.io/v2";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Which way to convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// To v3's HealthCheck.
    V3,
    /// To v2's KuberhealthyCheck and KuberhealthyJob.
    V2,
}

/// Why a document cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {document} ({what}): {reason}")]
pub struct Refusal {
    /// 1-based, in its input.
    pub document: usize,
    /// `Kind namespace/name`.
    pub what: String,
    pub reason: String,
}

/// Converts every document of a (multi-document) YAML text; all or nothing.
pub fn convert_yaml(text: &str, target: Target) -> Result<Vec<Value>, Vec<Refusal>> {
    let documents: Vec<Value> = match serde_saphyr::from_multiple(text) {
        Ok(d) => d,
        Err(e) => {
            return Err(vec![Refusal {
                document: 0,
                what: "input".into(),
                reason: format!("is not valid YAML: {e}"),
            }]);
        }
    };
    let mut out = Vec::new();
    let mut refusals = Vec::new();
    for (i, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue;
        }
        match convert(&document, target) {
            Ok(converted) => out.push(converted),
            Err(reason) => refusals.push(Refusal {
                document: i + 1,
                what: describe(&document),
                reason,
            }),
        }
    }
    if refusals.is_empty() {
        Ok(out)
    } else {
        Err(refusals)
    }
}

/// Documents as one YAML stream.
pub fn to_yaml(documents: &[Value]) -> String {
    documents
        .iter()
        .map(|d| serde_saphyr::to_string(d).expect("a JSON value serializes to YAML"))
        .map(|d| format!("---\n{d}"))
        .collect()
}

fn describe(document: &Value) -> String {
    let kind = document["kind"].as_str().unwrap_or("object without kind");
    let name = document["metadata"]["name"].as_str().unwrap_or("(no name)");
    match document["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Converts one document, or says why it cannot be.
pub fn convert(document: &Value, target: Target) -> Result<Value, String> {
    let api_version = document["apiVersion"].as_str().unwrap_or_default();
    let kind = document["kind"].as_str().unwrap_or_default();
    match (target, api_version, kind) {
        (Target::V3, V1, "KuberhealthyCheck") => to_healthcheck(document, false),
        (Target::V3, V1, "KuberhealthyJob") => to_healthcheck(document, true),
        (Target::V3, V1, "KuberhealthyState") => Err(
            "a KuberhealthyState holds a result, not a check; a HealthCheck keeps its result in \
             its status, and a HealthCheck created while the khstate of its name exists starts \
             from that khstate (see the README's migration steps)"
                .into(),
        ),
        (Target::V2, V3, "HealthCheck") => to_v2(document),
        _ => Ok(document.clone()),
    }
}

/// The metadata worth keeping in a manifest.
fn metadata(document: &Value) -> Value {
    let mut out = Map::new();
    for key in ["name", "generateName", "namespace", "labels"] {
        if let Some(v) = document["metadata"].get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(Value::Object(annotations)) = document["metadata"].get("annotations") {
        let kept: Map<String, Value> = annotations
            .iter()
            .filter(|(k, _)| k.as_str() != LAST_APPLIED)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !kept.is_empty() {
            out.insert("annotations".into(), Value::Object(kept));
        }
    }
    Value::Object(out)
}

/// The spec fields each conversion carries over: any other field in use is refused.
const CHECK_FIELDS: &[&str] = &[
    "runInterval",
    "timeout",
    "podSpec",
    "extraAnnotations",
    "extraLabels",
];
/// A job's `phase` is v2's progress of the job, which a HealthCheck records in its status.
const JOB_FIELDS: &[&str] = &[
    "phase",
    "timeout",
    "podSpec",
    "extraAnnotations",
    "extraLabels",
];
const HEALTHCHECK_FIELDS: &[&str] = &[
    "singleRunOnly",
    "runInterval",
    "timeout",
    "extraAnnotations",
    "extraLabels",
    "podSpec",
];

/// Whether a field's value does anything: `null`, `false` and empty values do not.
fn in_use(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) | Value::Bool(true) => true,
    }
}

/// The spec as a map, refusing a field in use outside `known`.
fn spec_of(document: &Value, known: &[&str], into: &str) -> Result<Map<String, Value>, String> {
    let spec = match document.get("spec") {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(spec)) => spec,
        Some(other) => return Err(format!("spec must be a mapping, not {other}")),
    };
    for (field, value) in spec {
        if !known.contains(&field.as_str()) && in_use(value) {
            return Err(format!("spec.{field} has no {into} equivalent"));
        }
    }
    Ok(spec.clone())
}

fn non_empty_string(value: Option<&Value>) -> Option<Value> {
    value
        .filter(|v| v.as_str().is_none_or(|s| !s.trim().is_empty()))
        .cloned()
}

fn to_healthcheck(document: &Value, job: bool) -> Result<Value, String> {
    let known = if job { JOB_FIELDS } else { CHECK_FIELDS };
    let spec = spec_of(document, known, "HealthCheck")?;
    let mut out = Map::new();
    if job {
        // The phase is v2's progress of the job; a HealthCheck records its run in its status.
        out.insert("singleRunOnly".into(), json!(true));
    } else if let Some(interval) = non_empty_string(spec.get("runInterval")) {
        out.insert("runInterval".into(), interval);
    }
    out.insert(
        "timeout".into(),
        non_empty_string(spec.get("timeout")).unwrap_or_else(|| json!("5m")),
    );
    for key in ["extraAnnotations", "extraLabels"] {
        if let Some(v) = spec.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(pod) = spec.get("podSpec").filter(|v| !v.is_null()) {
        out.insert("podSpec".into(), json!({ "spec": pod }));
    }
    Ok(json!({
        "apiVersion": V3,
        "kind": "HealthCheck",
        "metadata": metadata(document),
        "spec": out,
    }))
}

/// `first`, with `then`'s entries over it.
fn merged(first: Option<&Value>, then: Option<&Value>) -> Result<Option<Value>, String> {
    let mut out = Map::new();
    for (which, value) in [("podSpec.metadata", first), ("extra", then)] {
        match value {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => out.extend(map.clone()),
            Some(other) => {
                return Err(format!(
                    "{which} labels and annotations must be mappings, not {other}"
                ));
            }
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

fn to_v2(document: &Value) -> Result<Value, String> {
    let spec = spec_of(
        document,
        HEALTHCHECK_FIELDS,
        "KuberhealthyCheck or KuberhealthyJob",
    )?;
    let pod = spec.get("podSpec").cloned().unwrap_or(Value::Null);
    if let Value::Object(wrapper) = &pod {
        for field in wrapper.keys() {
            if field != "metadata" && field != "spec" {
                return Err(format!(
                    "spec.podSpec.{field} has no KuberhealthyCheck equivalent"
                ));
            }
        }
        if let Some(Value::Object(meta)) = wrapper.get("metadata") {
            for field in meta.keys() {
                if field != "labels" && field != "annotations" {
                    return Err(format!(
                        "spec.podSpec.metadata.{field} has no KuberhealthyCheck equivalent (only labels and annotations reach the pod)"
                    ));
                }
            }
        }
    }
    let Some(pod_spec) = pod.get("spec").filter(|v| !v.is_null()) else {
        return Err(
            "spec.podSpec.spec is missing; a KuberhealthyCheck needs the checker pod's spec".into(),
        );
    };
    let job = spec
        .get("singleRunOnly")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut out = Map::new();
    if !job {
        out.insert(
            "runInterval".into(),
            non_empty_string(spec.get("runInterval")).unwrap_or_else(|| json!("10m")),
        );
    }
    out.insert(
        "timeout".into(),
        non_empty_string(spec.get("timeout")).unwrap_or_else(|| json!("30s")),
    );
    let pod_metadata = pod.get("metadata");
    for (key, from_metadata) in [
        ("extraLabels", "labels"),
        ("extraAnnotations", "annotations"),
    ] {
        let first = pod_metadata.and_then(|m| m.get(from_metadata));
        if let Some(v) = merged(first, spec.get(key))? {
            out.insert(key.into(), v);
        }
    }
    out.insert("podSpec".into(), pod_spec.clone());
    Ok(json!({
        "apiVersion": V1,
        "kind": if job { "KuberhealthyJob" } else { "KuberhealthyCheck" },
        "metadata": metadata(document),
        "spec": out,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(yaml: &str, target: Target) -> Result<Value, String> {
        match convert_yaml(yaml, target) {
            Ok(mut docs) => Ok(docs.remove(0)),
            Err(refusals) => Err(refusals[0].to_string()),
        }
    }

    const CHECK: &str = r#"
apiVersion: comcast.github.io/v1
kind: KuberhealthyCheck
metadata:
  name: dns
  namespace: kuberhealthy
  resourceVersion: "12"
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
    team: a
spec:
  runInterval: 2m
  timeout: 15m
  extraLabels: {tier: "1"}
  podSpec:
    containers:
    - name: main
      image: checker:v1
"#;

    #[test]
    fn a_check_becomes_a_healthcheck_and_back() {
        let hc = one(CHECK, Target::V3).unwrap();
        assert_eq!(
            hc,
            json!({
                "apiVersion": "kuberhealthy.github.io/v2",
                "kind": "HealthCheck",
                "metadata": {"name": "dns", "namespace": "kuberhealthy", "annotations": {"team": "a"}},
                "spec": {
                    "runInterval": "2m",
                    "timeout": "15m",
                    "extraLabels": {"tier": "1"},
                    "podSpec": {"spec": {"containers": [{"name": "main", "image": "checker:v1"}]}},
                }
            })
        );
        let back = convert(&hc, Target::V2).unwrap();
        let original: Value = serde_saphyr::from_str(CHECK).unwrap();
        assert_eq!(
            back["spec"], original["spec"],
            "the round trip keeps the spec"
        );
        assert_eq!(back["kind"], "KuberhealthyCheck");
    }

    #[test]
    fn defaults_are_written_out_where_the_generations_differ() {
        let empty_timeout = CHECK.replace("timeout: 15m", "timeout: \"\"");
        assert_eq!(
            one(&empty_timeout, Target::V3).unwrap()["spec"]["timeout"],
            "5m"
        );
        let bare = json!({"apiVersion": V3, "kind": "HealthCheck", "metadata": {"name": "x"},
                          "spec": {"podSpec": {"spec": {"containers": []}}}});
        let v2 = convert(&bare, Target::V2).unwrap();
        assert_eq!(
            (
                v2["spec"]["runInterval"].as_str(),
                v2["spec"]["timeout"].as_str()
            ),
            (Some("10m"), Some("30s"))
        );
    }

    #[test]
    fn a_job_is_a_single_run_healthcheck_and_back() {
        let job = r#"
apiVersion: comcast.github.io/v1
kind: KuberhealthyJob
metadata: {name: once}
spec:
  phase: Completed
  timeout: 2m
  podSpec: {containers: [{name: main, image: c:v1}]}
"#;
        let hc = one(job, Target::V3).unwrap();
        assert_eq!(hc["spec"]["singleRunOnly"], true);
        assert!(hc["spec"].get("phase").is_none());
        assert!(hc["spec"].get("runInterval").is_none());
        let back = convert(&hc, Target::V2).unwrap();
        assert_eq!(back["kind"], "KuberhealthyJob");
        assert!(back["spec"].get("runInterval").is_none());
        assert_eq!(back["spec"]["timeout"], "2m");
    }

    #[test]
    fn pod_metadata_joins_the_extras_which_win() {
        let hc = json!({"apiVersion": V3, "kind": "HealthCheck", "metadata": {"name": "x"},
            "spec": {"runInterval": "1m", "extraLabels": {"shared": "extra"},
                     "podSpec": {"metadata": {"labels": {"shared": "meta", "only": "meta"},
                                              "annotations": {"a": "1"}},
                                 "spec": {"containers": [{"name": "main", "image": "c"}]}}}});
        let v2 = convert(&hc, Target::V2).unwrap();
        assert_eq!(
            v2["spec"]["extraLabels"],
            json!({"shared": "extra", "only": "meta"})
        );
        assert_eq!(v2["spec"]["extraAnnotations"], json!({"a": "1"}));
    }

    #[test]
    fn what_has_no_equivalent_is_refused_with_the_reason() {
        let paused = CHECK.replace("runInterval: 2m", "runInterval: 2m\n  suspend: false");
        assert!(
            one(&paused, Target::V3).is_ok(),
            "a field that does nothing is no obstacle"
        );
        let suspended = CHECK.replace("runInterval: 2m", "runInterval: 2m\n  suspend: true");
        assert_eq!(
            one(&suspended, Target::V3).unwrap_err(),
            "document 1 (KuberhealthyCheck kuberhealthy/dns): spec.suspend has no HealthCheck equivalent"
        );
        let state = "apiVersion: comcast.github.io/v1\nkind: KuberhealthyState\nmetadata: {name: s}\nspec: {OK: true}\n";
        assert!(
            one(state, Target::V3)
                .unwrap_err()
                .contains("holds a result, not a check")
        );
        let no_pod = json!({"apiVersion": V3, "kind": "HealthCheck", "metadata": {"name": "x"},
                            "spec": {"runInterval": "1m"}});
        assert!(
            convert(&no_pod, Target::V2)
                .unwrap_err()
                .contains("spec.podSpec.spec is missing")
        );
        let pod_name = json!({"apiVersion": V3, "kind": "HealthCheck", "metadata": {"name": "x"},
            "spec": {"podSpec": {"metadata": {"name": "fixed"}, "spec": {"containers": []}}}});
        assert!(
            convert(&pod_name, Target::V2)
                .unwrap_err()
                .contains("spec.podSpec.metadata.name")
        );
    }

    #[test]
    fn other_kinds_and_converted_documents_pass_through_and_refusals_are_all_or_nothing() {
        let mixed = format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: sa}}\n---\n{CHECK}---\napiVersion: comcast.github.io/v1\nkind: KuberhealthyState\nmetadata: {{name: s}}\n"
        );
        let refusals = convert_yaml(&mixed, Target::V3).unwrap_err();
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].document, 3);
        let fine =
            format!("apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: sa}}\n---\n{CHECK}");
        let docs = convert_yaml(&fine, Target::V3).unwrap();
        assert_eq!(docs[0]["kind"], "ServiceAccount");
        assert_eq!(docs[1]["kind"], "HealthCheck");
        assert_eq!(
            convert(&docs[1], Target::V3).unwrap(),
            docs[1],
            "already v3"
        );
        let text = to_yaml(&docs);
        assert_eq!(
            convert_yaml(&text, Target::V3).unwrap(),
            docs,
            "the output reads back"
        );
    }
}
