//! Applying YAML manifests with server-side apply and strict field validation, the way
//! `kubectl apply --server-side --validate=strict` does.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{self, Scope};
use kube::{Api, Client, ResourceExt};

use crate::wait_until;

/// The field manager of everything the harness applies.
pub const FIELD_MANAGER: &str = "kuberhealthy-e2e";

/// Splits a (multi-document) YAML text into objects; empty documents are skipped.
pub fn parse(yaml: &str) -> Result<Vec<DynamicObject>> {
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).context("parsing YAML")?;
    documents
        .into_iter()
        .filter(|doc| !doc.is_null())
        .enumerate()
        .map(|(i, doc)| {
            let object: DynamicObject = serde_json::from_value(doc)
                .with_context(|| format!("document {} is not a Kubernetes object", i + 1))?;
            if object.types.is_none() {
                bail!("document {} has no apiVersion/kind", i + 1);
            }
            Ok(object)
        })
        .collect()
}

/// Server-side applies `object` with `fieldValidation=Strict`. A namespaced object without
/// `metadata.namespace` goes to `default_namespace`. Returns the object as stored.
pub async fn apply(
    client: &Client,
    object: &DynamicObject,
    default_namespace: Option<&str>,
) -> Result<DynamicObject> {
    let types = object
        .types
        .as_ref()
        .context("the object has no apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(types)
        .map_err(|e| anyhow!("bad apiVersion {:?}: {e}", types.api_version))?;
    let name = object.metadata.name.clone().with_context(|| {
        format!(
            "a {} without metadata.name cannot be server-side applied",
            types.kind
        )
    })?;
    let (resource, capabilities) =
        discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| {
                format!(
                    "the API server does not serve {} {}",
                    types.api_version, types.kind
                )
            })?;
    let mut object = object.clone();
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Cluster => Api::all_with(client.clone(), &resource),
        Scope::Namespaced => {
            let namespace = object
                .metadata
                .namespace
                .clone()
                .or_else(|| default_namespace.map(str::to_string))
                .with_context(|| {
                    format!(
                        "{} {name} has no namespace and no default was given",
                        types.kind
                    )
                })?;
            object.metadata.namespace = Some(namespace.clone());
            Api::namespaced_with(client.clone(), &namespace, &resource)
        }
    };
    let params = PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict();
    api.patch(&name, &params, &Patch::Apply(&object))
        .await
        .with_context(|| {
            let place = object
                .metadata
                .namespace
                .as_deref()
                .map(|ns| format!("{ns}/"))
                .unwrap_or_default();
            format!("applying {} {place}{name}", types.kind)
        })
}

/// Applies every object of a YAML text, in order.
pub async fn apply_yaml(
    client: &Client,
    yaml: &str,
    default_namespace: Option<&str>,
) -> Result<Vec<DynamicObject>> {
    let mut applied = Vec::new();
    for object in parse(yaml)? {
        applied.push(apply(client, &object, default_namespace).await?);
    }
    Ok(applied)
}

/// Applies every object of a YAML file, in order.
pub async fn apply_file(
    client: &Client,
    path: &Path,
    default_namespace: Option<&str>,
) -> Result<Vec<DynamicObject>> {
    let yaml =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    apply_yaml(client, &yaml, default_namespace)
        .await
        .with_context(|| format!("applying {}", path.display()))
}

/// Applies CustomResourceDefinitions and waits until each is Established and its kinds
/// are served (discovery lags the Established condition by a moment).
pub async fn install_crds(
    client: &Client,
    yaml: &str,
    timeout: Duration,
) -> Result<Vec<CustomResourceDefinition>> {
    let applied = apply_yaml(client, yaml, None).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut established = Vec::new();
    for object in applied {
        if object
            .types
            .as_ref()
            .is_none_or(|t| t.kind != "CustomResourceDefinition")
        {
            continue;
        }
        let name = object.name_any();
        let crd = wait_until(
            &format!("CRD {name} to be Established"),
            timeout,
            || async {
                let crd = crds.get(&name).await?;
                Ok(is_established(&crd).then_some(crd))
            },
        )
        .await?;
        for version in crd.spec.versions.iter().filter(|v| v.served) {
            let gvk = GroupVersionKind::gvk(&crd.spec.group, &version.name, &crd.spec.names.kind);
            wait_until(
                &format!("{} {} to be served", crd.spec.names.kind, version.name),
                timeout,
                || async { Ok(discovery::pinned_kind(client, &gvk).await.ok().map(|_| ())) },
            )
            .await?;
        }
        established.push(crd);
    }
    Ok(established)
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multi_document_yaml() {
        let yaml = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n---\n# only a comment\n---\napiVersion: comcast.github.io/v1\nkind: KuberhealthyCheck\nmetadata:\n  name: b\n  namespace: x\nspec:\n  runInterval: 1m\n";
        let objects = parse(yaml).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].types.as_ref().unwrap().kind, "ConfigMap");
        assert_eq!(objects[0].data["data"]["k"], "v");
        assert_eq!(objects[1].metadata.namespace.as_deref(), Some("x"));
        assert_eq!(objects[1].data["spec"]["runInterval"], "1m");
    }

    #[test]
    fn rejects_documents_that_are_not_objects() {
        assert!(
            parse("metadata:\n  name: a\n")
                .unwrap_err()
                .to_string()
                .contains("apiVersion")
        );
        assert!(parse("- a\n- b\n").is_err());
    }
}
