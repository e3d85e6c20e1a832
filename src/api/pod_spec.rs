//! A checker pod's spec as the cache holds it: its JSON text and the little the replica
//! reads without building a pod (each container's name and image). k8s-openapi's `PodSpec`
//! takes about 4 KiB of memory for one container whatever it sets, several times the text
//! of a typical spec, and every check, job and HealthCheck carries one in the cache; it is
//! parsed back only when the leader builds a checker pod.
//!
//! On the wire it is exactly a `PodSpec`: it deserializes as one (a malformed spec fails as
//! before), serializes as one, and has its schema.

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::api::core::v1::PodSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A pod spec kept as text; clones share it.
#[derive(Clone)]
pub struct PodSpecText {
    json: Arc<str>,
    containers: Arc<[ContainerImage]>,
}

/// A container of the spec: what validation and the status page read.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerImage {
    pub name: String,
    pub image: Option<String>,
}

impl PodSpecText {
    /// The spec, parsed: what a checker pod is built from.
    pub fn spec(&self) -> PodSpec {
        // The text was written from a PodSpec by this type, so it parses.
        serde_json::from_str(&self.json).expect("a serialized PodSpec parses back")
    }

    /// Changes the spec: parsed, changed by `change`, kept as text again.
    pub fn modify(&mut self, change: impl FnOnce(&mut PodSpec)) {
        let mut spec = self.spec();
        change(&mut spec);
        *self = PodSpecText::from(spec);
    }

    /// The containers' names and images.
    pub fn containers(&self) -> &[ContainerImage] {
        &self.containers
    }
}

impl From<PodSpec> for PodSpecText {
    fn from(spec: PodSpec) -> PodSpecText {
        PodSpecText::from(&spec)
    }
}

impl From<&PodSpec> for PodSpecText {
    fn from(spec: &PodSpec) -> PodSpecText {
        let containers = spec
            .containers
            .iter()
            .map(|c| ContainerImage {
                name: c.name.clone(),
                image: c.image.clone(),
            })
            .collect();
        let json = serde_json::to_string(spec).expect("a PodSpec always serializes");
        PodSpecText {
            json: json.into(),
            containers,
        }
    }
}

impl Default for PodSpecText {
    fn default() -> PodSpecText {
        PodSpecText::from(PodSpec::default())
    }
}

impl PartialEq for PodSpecText {
    fn eq(&self, other: &PodSpecText) -> bool {
        self.json == other.json
    }
}

impl std::fmt::Debug for PodSpecText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PodSpecText").field(&self.json).finish()
    }
}

impl Serialize for PodSpecText {
    // Through PodSpec, so that YAML and every other format get the same fields as before.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PodSpecText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PodSpecText, D::Error> {
        PodSpec::deserialize(deserializer).map(PodSpecText::from)
    }
}

impl JsonSchema for PodSpecText {
    fn inline_schema() -> bool {
        PodSpec::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        PodSpec::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        PodSpec::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        PodSpec::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;
    use serde_json::json;

    use super::*;

    fn spec() -> PodSpec {
        serde_json::from_value(json!({
            "containers": [
                {"name": "main", "image": "example/checker:1", "command": ["/check", "--fast"]},
                {"name": "side"}
            ],
            "serviceAccountName": "checker",
            "restartPolicy": "Never"
        }))
        .unwrap()
    }

    #[test]
    fn round_trips_as_the_pod_spec_it_was_made_from() {
        let text = PodSpecText::from(spec());
        assert_eq!(text.spec(), spec());
        let through_json: PodSpecText =
            serde_json::from_value(serde_json::to_value(&text).unwrap()).unwrap();
        assert_eq!(through_json, text);
        assert_eq!(
            serde_json::to_value(&text).unwrap(),
            serde_json::to_value(spec()).unwrap()
        );
    }

    #[test]
    fn keeps_each_containers_name_and_image() {
        let text = PodSpecText::from(spec());
        assert_eq!(
            text.containers(),
            [
                ContainerImage {
                    name: "main".into(),
                    image: Some("example/checker:1".into())
                },
                ContainerImage {
                    name: "side".into(),
                    image: None
                },
            ]
        );
    }

    #[test]
    fn a_malformed_spec_fails_to_deserialize_as_a_pod_spec_does() {
        let bad = json!({"containers": "not a list"});
        let ours = serde_json::from_value::<PodSpecText>(bad.clone()).unwrap_err();
        let theirs = serde_json::from_value::<PodSpec>(bad).unwrap_err();
        assert_eq!(ours.to_string(), theirs.to_string());
    }

    #[test]
    fn serializes_to_yaml_as_a_pod_spec() {
        let text = PodSpecText::from(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            ..Default::default()
        });
        let yaml = serde_saphyr::to_string(&text).unwrap();
        assert!(yaml.contains("image: busybox"), "{yaml}");
        assert!(!yaml.contains('{'), "{yaml}");
    }

    #[test]
    fn has_the_schema_of_a_pod_spec() {
        let ours = schemars::schema_for!(PodSpecText);
        let theirs = schemars::schema_for!(PodSpec);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_modified_spec_is_kept_with_its_new_containers() {
        let mut text = PodSpecText::from(spec());
        text.modify(|s| s.containers.truncate(1));
        assert_eq!(text.containers().len(), 1);
        assert_eq!(text.spec().containers.len(), 1);
        assert_eq!(text.spec().service_account_name.as_deref(), Some("checker"));
    }

    #[test]
    fn the_default_is_the_empty_pod_spec() {
        assert_eq!(PodSpecText::default().spec(), PodSpec::default());
        assert!(PodSpecText::default().containers().is_empty());
    }
}
