//! End-to-end proof of the built-in checks and the check client (issue 8), on a real local
//! control plane with the pod runner running every checker command.
//!
//! Every built-in check is scheduled as a real `KuberhealthyCheck` built from its example
//! manifest `examples/checks/<name>.yaml`, with the local `kuberhealthy` binary as the
//! container command and local targets in its knobs. A real replica starts the checker pod,
//! the checker runs as a local process and reports through the replica's
//! `/externalCheckStatus`, and the test reads the result from the khstate and the status page.
//! The checks that read the cluster run with a kubeconfig for their own ServiceAccount, whose
//! RBAC is exactly the output of `kuberhealthy rbac --check NAME`. The blog post's shell check
//! (`examples/blog/`) runs the same way and reports with `kuberhealthy report`.
//!
//! One cluster and one replica serve every test of this binary ([`support::World`]); each
//! test has its own namespace. Run with
//! `cargo test -p kuberhealthy-e2e --test checks -- --nocapture`, or as part of `make e2e`.

mod blog;
mod cluster_state;
mod endpoints;
mod examples;
mod support;
mod tls;
