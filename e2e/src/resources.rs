//! Kuberhealthy's custom resources (v2's, and v3's HealthCheck) for dynamic clients. The
//! harness does not depend on the controller's crate (the bench and the pod runner are plain
//! binaries), so it names them here.

use kube::api::ApiResource;
use kube::core::GroupVersionKind;

/// A `comcast.github.io/v1` resource.
pub fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("comcast.github.io", "v1", kind),
        plural,
    )
}

pub fn khchecks() -> ApiResource {
    resource("KuberhealthyCheck", "khchecks")
}

pub fn khstates() -> ApiResource {
    resource("KuberhealthyState", "khstates")
}

pub fn khjobs() -> ApiResource {
    resource("KuberhealthyJob", "khjobs")
}

/// Kuberhealthy v3's `HealthCheck` (`kuberhealthy.github.io/v2`).
pub fn healthchecks() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kuberhealthy.github.io", "v2", "HealthCheck"),
        "healthchecks",
    )
}
