//! Reading and writing the Lease. Every write carries the `resourceVersion` it read, so a
//! conflict means another replica wrote first.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::controller::api_error::{self, ApiErrorKind};

/// The Lease record and the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub record: LeaseSpec,
    pub resource_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer changed the Lease since it was read (HTTP 409), or created it first.
    #[error("the Lease was changed by another replica")]
    Conflict,
    /// Anything else: the API server is unreachable, slow, or refused the request.
    #[error("{0}")]
    Unavailable(String),
}

/// Where the Lease lives. The production store talks to the API server; unit tests use an
/// in-memory one with the same conflict rules.
pub trait LeaseStore: Send + Sync + 'static {
    fn get(&self) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;
    fn create(
        &self,
        record: LeaseSpec,
    ) -> impl Future<Output = Result<Versioned, StoreError>> + Send;
    fn replace(
        &self,
        record: LeaseSpec,
        resource_version: &str,
    ) -> impl Future<Output = Result<Versioned, StoreError>> + Send;
}

/// The Lease `name` in `namespace` on the API server.
pub struct KubeLeaseStore {
    api: Api<Lease>,
    name: String,
}

impl KubeLeaseStore {
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        KubeLeaseStore {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
        }
    }

    fn versioned(lease: Lease) -> Versioned {
        Versioned {
            resource_version: lease.metadata.resource_version.unwrap_or_default(),
            record: lease.spec.unwrap_or_default(),
        }
    }

    fn lease(&self, record: LeaseSpec, resource_version: Option<&str>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: resource_version.map(str::to_string),
                ..Default::default()
            },
            spec: Some(record),
        }
    }
}

fn classify(err: kube::Error) -> StoreError {
    match api_error::classify(&err) {
        ApiErrorKind::Conflict => StoreError::Conflict,
        _ => StoreError::Unavailable(err.to_string()),
    }
}

impl LeaseStore for KubeLeaseStore {
    async fn get(&self) -> Result<Option<Versioned>, StoreError> {
        self.api
            .get_opt(&self.name)
            .await
            .map(|l| l.map(Self::versioned))
            .map_err(classify)
    }

    async fn create(&self, record: LeaseSpec) -> Result<Versioned, StoreError> {
        self.api
            .create(&PostParams::default(), &self.lease(record, None))
            .await
            .map(Self::versioned)
            .map_err(classify)
    }

    async fn replace(
        &self,
        record: LeaseSpec,
        resource_version: &str,
    ) -> Result<Versioned, StoreError> {
        self.api
            .replace(
                &self.name,
                &PostParams::default(),
                &self.lease(record, Some(resource_version)),
            )
            .await
            .map(Self::versioned)
            .map_err(classify)
    }
}
