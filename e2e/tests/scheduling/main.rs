//! End-to-end proof of check scheduling and the run lifecycle (issue 5), on a real local
//! control plane with the pod runner really running every checker command.
//!
//! Every test is a *scenario* with its own control plane, pod runner and three
//! `kuberhealthy run` replicas (see [`support::Scenario`]): the controller's own RBAC
//! (`kuberhealthy rbac --namespace <ns>`, applied as is), a ServiceAccount token from the
//! TokenRequest API, short Lease timings (3 s / 2 s / 500 ms) and a reporting URL that
//! reaches any live replica, like a Service would ([`support::proxy`]). Checkers are shell
//! scripts that POST their result with `curl`, exactly as the blog post's example does.
//!
//! Each test prints what it measured and writes it as JSON under `target/e2e-figures/`.
//! Run it with `cargo test -p kuberhealthy-e2e --test scheduling -- --nocapture`, or as
//! part of `make e2e`.

mod blog;
mod exactly_once;
mod failures;
mod idle;
mod lifecycle;
mod operations;
mod orphans;
mod retention;
mod support;
mod target_namespace;
mod timers;
