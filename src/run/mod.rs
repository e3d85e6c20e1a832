//! The run lifecycle: building checker pods, judging runs in flight, state transitions,
//! reaping finished pods (all pure), and the leader's supervisor that does the I/O.

pub mod pod;
pub mod reap;
pub mod store;
pub mod supervisor;
pub mod transition;
pub mod verdict;
