//! Leader election on a `coordination.k8s.io/v1` Lease, and the term that fences leader-only
//! work.

mod decide;
mod elector;
mod holder;
mod store;
mod term;

pub use elector::{Elector, ElectorConfig, Leadership};
pub use holder::{Holder, watch_holder};
pub use store::{KubeLeaseStore, LeaseStore, StoreError, Versioned};
pub use term::Term;
