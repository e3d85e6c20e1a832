//! End-to-end harness for kuberhealthy.
//!
//! - [`ControlPlane`] runs a real etcd and kube-apiserver (RBAC on), the API server on the
//!   host-side address of a [`network::PodNetwork`] it creates first.
//! - [`pod_runner`] plays the kubelet: it binds pending pods to one Node and runs each
//!   container's `command` + `args` as a local process, in a network namespace of the pod's
//!   own on that pod network.
//! - [`TestCluster`] and [`TestContext`] give each test a namespace, a log directory and a
//!   dump of every relevant log when the test fails.
//! - [`Replica`] runs `kuberhealthy run` processes.
//! - [`audit`] reads the API server's audit log, for tests that start a control plane
//!   with [`ControlPlane::start_audited`].
//!
//! Every process the harness starts runs in its own process group, dies with the process
//! that started it (`PR_SET_PDEATHSIG`) and carries the session marker
//! [`session::SESSION_ENV`], so `make e2e` can prove that nothing outlived the suite.

pub mod accounts;
pub mod audit;
pub mod binaries;
mod cleanup;
pub mod cluster;
pub mod control_plane;
pub mod http;
pub mod install;
pub mod kubeconfig;
pub mod leadership;
pub mod lease_watch;
pub mod logs;
pub mod manifests;
pub mod metrics;
pub mod network;
pub mod pki;
pub mod pod_runner;
pub mod ports;
pub mod process;
pub mod replica;
pub mod resources;
pub mod session;
pub mod slots;
pub mod wait;

pub use accounts::ApiEndpoint;
pub use cluster::{TestCluster, TestContext};
pub use control_plane::{ControlPlane, ControlPlaneOptions};
pub use replica::{Replica, ReplicaOptions};
pub use wait::wait_until;
