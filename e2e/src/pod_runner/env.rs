//! Container environment, resolved as a kubelet would: `envFrom`, then `env` in order,
//! with `$(VAR)` references expanded against what was defined before.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{Api, Client};

/// Facts about the pod that `fieldRef`s read and that are not in the pod object yet.
pub struct PodFacts<'a> {
    pub pod: &'a Pod,
    pub node_name: &'a str,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
}

/// Secrets and ConfigMaps the containers reference, fetched up front; `None` marks one
/// that does not exist.
#[derive(Default)]
pub struct Sources {
    pub secrets: HashMap<String, Option<BTreeMap<String, String>>>,
    pub config_maps: HashMap<String, Option<BTreeMap<String, String>>>,
}

impl Sources {
    /// Reads every Secret and ConfigMap the `containers` refer to.
    pub async fn fetch(
        client: &Client,
        namespace: &str,
        containers: &[&Container],
    ) -> Result<Self> {
        let mut sources = Sources::default();
        let (secret_names, config_map_names) = referenced_names(containers);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        for name in secret_names {
            let data = secrets.get_opt(&name).await?.map(|secret| {
                let mut data: BTreeMap<String, String> = secret.string_data.unwrap_or_default();
                for (key, bytes) in secret.data.unwrap_or_default() {
                    data.insert(key, String::from_utf8_lossy(&bytes.0).into_owned());
                }
                data
            });
            sources.secrets.insert(name, data);
        }
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        for name in config_map_names {
            let data = config_maps
                .get_opt(&name)
                .await?
                .map(|cm| cm.data.unwrap_or_default());
            sources.config_maps.insert(name, data);
        }
        Ok(sources)
    }
}

fn referenced_names(containers: &[&Container]) -> (Vec<String>, Vec<String>) {
    let (mut secrets, mut config_maps) = (Vec::new(), Vec::new());
    for container in containers {
        for from in container.env_from.iter().flatten() {
            secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
            config_maps.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
        }
        for var in container.env.iter().flatten() {
            let Some(source) = &var.value_from else {
                continue;
            };
            secrets.extend(source.secret_key_ref.as_ref().map(|r| r.name.clone()));
            config_maps.extend(source.config_map_key_ref.as_ref().map(|r| r.name.clone()));
        }
    }
    for names in [&mut secrets, &mut config_maps] {
        names.sort();
        names.dedup();
    }
    (secrets, config_maps)
}

/// The container's environment in definition order (later entries win), or a message
/// saying why it cannot be built (the kubelet's `CreateContainerConfigError`).
pub fn resolve(
    container: &Container,
    facts: &PodFacts,
    sources: &Sources,
) -> Result<Vec<(String, String)>, String> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (kind, name, optional, data) = if let Some(r) = &from.secret_ref {
            ("secret", &r.name, r.optional, sources.secrets.get(&r.name))
        } else if let Some(r) = &from.config_map_ref {
            (
                "configmap",
                &r.name,
                r.optional,
                sources.config_maps.get(&r.name),
            )
        } else {
            continue;
        };
        match data.and_then(Option::as_ref) {
            Some(data) => vars.extend(
                data.iter()
                    .map(|(k, v)| (format!("{prefix}{k}"), v.clone())),
            ),
            None if optional == Some(true) => {}
            None => return Err(format!("{kind} \"{name}\" not found")),
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(source)) => {
                if let Some(field) = &source.field_ref {
                    field_ref(&field.field_path, facts)?
                } else if let Some(key) = &source.secret_key_ref {
                    match lookup(&sources.secrets, &key.name, &key.key) {
                        Some(value) => value,
                        None if key.optional == Some(true) => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in Secret {}",
                                key.key, key.name
                            ));
                        }
                    }
                } else if let Some(key) = &source.config_map_key_ref {
                    match lookup(&sources.config_maps, &key.name, &key.key) {
                        Some(value) => value,
                        None if key.optional == Some(true) => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {}",
                                key.key, key.name
                            ));
                        }
                    }
                } else {
                    return Err(format!(
                        "env {}: the e2e pod runner supports only fieldRef, secretKeyRef and configMapKeyRef",
                        var.name
                    ));
                }
            }
            (Some(value), None) => expand(value, |name| last_value(&vars, name)),
            (None, None) => String::new(),
        };
        vars.push((var.name.clone(), value));
    }
    Ok(vars)
}

/// `None` when the object does not exist or lacks the key; the caller decides with
/// `optional`.
fn lookup(
    sources: &HashMap<String, Option<BTreeMap<String, String>>>,
    name: &str,
    key: &str,
) -> Option<String> {
    sources
        .get(name)
        .and_then(Option::as_ref)
        .and_then(|data| data.get(key).cloned())
}

fn last_value(vars: &[(String, String)], name: &str) -> Option<String> {
    vars.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The value of a `fieldRef.fieldPath`.
pub fn field_ref(path: &str, facts: &PodFacts) -> Result<String, String> {
    let meta = &facts.pod.metadata;
    let spec = facts.pod.spec.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => Some(facts.node_name.to_string()),
        "spec.serviceAccountName" => Some(
            spec.and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".to_string()),
        ),
        "status.podIP" | "status.podIPs" => Some(facts.pod_ip.to_string()),
        "status.hostIP" | "status.hostIPs" => Some(facts.host_ip.to_string()),
        _ => {
            let map_key = |prefix: &str| {
                path.strip_prefix(prefix)?
                    .strip_suffix("']")
                    .map(str::to_string)
            };
            if let Some(key) = map_key("metadata.labels['") {
                Some(
                    meta.labels
                        .as_ref()
                        .and_then(|l| l.get(&key).cloned())
                        .unwrap_or_default(),
                )
            } else if let Some(key) = map_key("metadata.annotations['") {
                Some(
                    meta.annotations
                        .as_ref()
                        .and_then(|a| a.get(&key).cloned())
                        .unwrap_or_default(),
                )
            } else {
                return Err(format!("unsupported fieldRef fieldPath {path:?}"));
            }
        }
    };
    Ok(value.unwrap_or_default())
}

/// Kubernetes' `$(VAR)` expansion: a defined `$(VAR)` is replaced, `$$` is a literal `$`,
/// anything else (undefined names, a lone `$`) stays as written.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(after_dollar) = after.strip_prefix('$') {
            out.push('$');
            rest = after_dollar;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(close) = inner.find(')')
        {
            let name = &inner[..close];
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => out.push_str(&rest[at..at + 2 + close + 1]),
            }
            rest = &inner[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
        SecretEnvSource, SecretKeySelector,
    };
    use kube::api::ObjectMeta;

    fn lookup_in(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn expands_like_kubernetes() {
        let vars = lookup_in(&[("A", "1"), ("B", "two")]);
        assert_eq!(expand("x$(A)y$(B)", &vars), "x1ytwo");
        assert_eq!(
            expand("$(MISSING) and $$(A) and $", &vars),
            "$(MISSING) and $(A) and $"
        );
        assert_eq!(expand("$(unterminated", &vars), "$(unterminated");
        assert_eq!(expand("cost: $5", &vars), "cost: $5");
    }

    fn env(name: &str, value: Option<&str>, from: Option<EnvVarSource>) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.map(Into::into),
            value_from: from,
        }
    }

    fn field(path: &str) -> Option<EnvVarSource> {
        Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("checker-abc".into()),
                namespace: Some("ns1".into()),
                uid: Some("uid-1".into()),
                labels: Some([("app".to_string(), "kh".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some("checker".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn resolves_values_field_refs_and_references() {
        let pod = pod();
        let facts = PodFacts {
            pod: &pod,
            node_name: "node-1",
            pod_ip: "127.0.0.1",
            host_ip: "127.0.0.1",
        };
        let mut sources = Sources::default();
        sources.secrets.insert(
            "creds".into(),
            Some([("token".to_string(), "s3cret".to_string())].into()),
        );
        sources.config_maps.insert(
            "settings".into(),
            Some([("mode".to_string(), "fast".to_string())].into()),
        );
        sources.secrets.insert("absent".into(), None);
        let container = Container {
            name: "main".into(),
            env_from: Some(vec![EnvFromSource {
                prefix: Some("S_".into()),
                secret_ref: Some(SecretEnvSource {
                    name: "creds".into(),
                    optional: None,
                }),
                ..Default::default()
            }]),
            env: Some(vec![
                env("NAME", None, field("metadata.name")),
                env("NS", None, field("metadata.namespace")),
                env("IP", None, field("status.podIP")),
                env("NODE", None, field("spec.nodeName")),
                env("SA", None, field("spec.serviceAccountName")),
                env("APP", None, field("metadata.labels['app']")),
                env("GREETING", Some("hello $(NAME) in $(NS)"), None),
                env(
                    "TOKEN",
                    None,
                    Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "creds".into(),
                            key: "token".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                ),
                env(
                    "MODE",
                    None,
                    Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "settings".into(),
                            key: "mode".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                ),
                env(
                    "OPTIONAL",
                    None,
                    Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "absent".into(),
                            key: "k".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                ),
            ]),
            ..Default::default()
        };
        let vars = resolve(&container, &facts, &sources).unwrap();
        let get = |k: &str| last_value(&vars, k);
        assert_eq!(get("S_token").as_deref(), Some("s3cret"));
        assert_eq!(get("NAME").as_deref(), Some("checker-abc"));
        assert_eq!(get("NS").as_deref(), Some("ns1"));
        assert_eq!(get("IP").as_deref(), Some("127.0.0.1"));
        assert_eq!(get("NODE").as_deref(), Some("node-1"));
        assert_eq!(get("SA").as_deref(), Some("checker"));
        assert_eq!(get("APP").as_deref(), Some("kh"));
        assert_eq!(get("GREETING").as_deref(), Some("hello checker-abc in ns1"));
        assert_eq!(get("TOKEN").as_deref(), Some("s3cret"));
        assert_eq!(get("MODE").as_deref(), Some("fast"));
        assert_eq!(get("OPTIONAL"), None);
    }

    #[test]
    fn missing_required_references_are_config_errors() {
        let pod = pod();
        let facts = PodFacts {
            pod: &pod,
            node_name: "n",
            pod_ip: "127.0.0.1",
            host_ip: "127.0.0.1",
        };
        let mut sources = Sources::default();
        sources.secrets.insert("absent".into(), None);
        let container = Container {
            name: "main".into(),
            env: Some(vec![env(
                "TOKEN",
                None,
                Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "absent".into(),
                        key: "token".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            )]),
            ..Default::default()
        };
        assert_eq!(
            resolve(&container, &facts, &sources).unwrap_err(),
            "couldn't find key token in Secret absent"
        );
        let unsupported = Container {
            name: "c".into(),
            env: Some(vec![env("X", None, field("spec.priority"))]),
            ..Default::default()
        };
        assert!(
            resolve(&unsupported, &facts, &sources)
                .unwrap_err()
                .contains("unsupported fieldRef")
        );
    }
}
