//! An RBAC rule as this project declares it: the controller's rules and each built-in check's
//! rules are written with it, and `kuberhealthy rbac` turns them into manifests.

/// One rule: verbs on resources of an API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Why it is needed.
    pub why: &'static str,
}
