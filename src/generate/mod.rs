//! What `kuberhealthy crd` and `kuberhealthy rbac` print: the CRDs from the resource types,
//! and the RBAC of the controller and of each built-in check.

pub mod crd;
pub mod rbac;
