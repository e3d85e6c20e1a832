//! Reading and writing run records on the API server (khstates, and HealthChecks through their
//! status subresource), for the leader's executor and for report intake. Every replace
//! carries the `resourceVersion` the new record was computed from: a conflict means someone
//! else wrote first, and the caller re-reads and decides again. This is the fencing of runs.

use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::api::{HealthCheck, HealthCheckStatus, KuberhealthyState, KuberhealthyStateSpec, names};
use crate::controller::api_error::{self, ApiErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the run record changed since it was read")]
    Conflict,
    #[error(transparent)]
    Api(#[from] kube::Error),
}

fn classify(e: kube::Error) -> WriteError {
    match api_error::classify(&e) {
        ApiErrorKind::Conflict => WriteError::Conflict,
        _ => WriteError::Api(e),
    }
}

#[derive(Clone)]
pub struct States {
    client: Client,
}

impl States {
    pub fn new(client: Client) -> States {
        States { client }
    }

    fn api(&self, namespace: &str) -> Api<KuberhealthyState> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<KuberhealthyState>, kube::Error> {
        self.api(namespace).get_opt(name).await
    }

    /// Replaces `current`'s spec, on the condition that it has not changed since it was read.
    pub async fn replace(
        &self,
        current: &KuberhealthyState,
        spec: KuberhealthyStateSpec,
    ) -> Result<KuberhealthyState, WriteError> {
        let namespace = current.namespace().unwrap_or_default();
        let mut next = KuberhealthyState::new(&current.name_any(), spec);
        next.metadata.namespace = Some(namespace.clone());
        next.metadata.resource_version = current.resource_version();
        next.metadata.labels = current.metadata.labels.clone();
        next.metadata.annotations = current.metadata.annotations.clone();
        next.metadata.owner_references = current.metadata.owner_references.clone();
        self.api(&namespace)
            .replace(&current.name_any(), &PostParams::default(), &next)
            .await
            .map_err(classify)
    }

    /// Creates the state; a conflict means another writer created it first.
    pub async fn create(
        &self,
        namespace: &str,
        name: &str,
        spec: KuberhealthyStateSpec,
    ) -> Result<KuberhealthyState, WriteError> {
        let mut state = KuberhealthyState::new(name, spec);
        state.metadata.namespace = Some(namespace.into());
        self.api(namespace)
            .create(&PostParams::default(), &state)
            .await
            .map_err(classify)
    }

    pub async fn delete(&self, namespace: &str, name: &str) -> Result<(), kube::Error> {
        match self
            .api(namespace)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if api_error::classify(&e) == ApiErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[derive(Clone)]
pub struct HealthChecks {
    client: Client,
}

impl HealthChecks {
    pub fn new(client: Client) -> HealthChecks {
        HealthChecks { client }
    }

    fn api(&self, namespace: &str) -> Api<HealthCheck> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<HealthCheck>, kube::Error> {
        self.api(namespace).get_opt(name).await
    }

    /// Replaces `current`'s status through the status subresource, on the condition that the
    /// HealthCheck has not changed since it was read.
    pub async fn replace_status(
        &self,
        current: &HealthCheck,
        status: HealthCheckStatus,
    ) -> Result<HealthCheck, WriteError> {
        let namespace = current.namespace().unwrap_or_default();
        let mut next = current.clone();
        next.metadata.managed_fields = None;
        next.status = Some(status);
        self.api(&namespace)
            .replace_status(&current.name_any(), &PostParams::default(), &next)
            .await
            .map_err(classify)
    }

    /// Removes Kuberhealthy v3's finalizer from a HealthCheck being deleted, on the condition
    /// that it has not changed since it was read.
    pub async fn release_finalizer(&self, current: &HealthCheck) -> Result<(), WriteError> {
        let namespace = current.namespace().unwrap_or_default();
        let mut next = current.clone();
        next.metadata.managed_fields = None;
        if let Some(finalizers) = &mut next.metadata.finalizers {
            finalizers.retain(|f| f != names::FINALIZER_V3);
        }
        match self
            .api(&namespace)
            .replace(&current.name_any(), &PostParams::default(), &next)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if api_error::classify(&e) == ApiErrorKind::NotFound => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}
