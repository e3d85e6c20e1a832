//! The run lifecycle. Pure: when checks are due ([`schedule`]), dependencies between checks
//! ([`depends`]), building checker pods ([`pod`]), judging runs in flight ([`verdict`]), state
//! transitions ([`transition`]), a HealthCheck's status as a run record ([`healthcheck`],
//! [`record`]), retention ([`reap`]), and the planner that decides the leader's [`action`]s
//! from them ([`plan`]). I/O: the [`execute`]or that carries actions out, and the [`supervisor`] that
//! loops the two for one leader term.

pub mod action;
pub mod depends;
pub mod execute;
pub mod healthcheck;
pub mod plan;
pub mod pod;
pub mod reap;
pub mod record;
pub mod schedule;
pub mod supervisor;
pub mod transition;
pub mod verdict;
