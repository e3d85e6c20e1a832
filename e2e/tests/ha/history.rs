//! "One leader at a time", proven from what reached the API server.
//!
//! From the audit log: see `kuberhealthy_e2e::leadership` (shared with the soak).
//!
//! From the khstates: every run records the term that started it (`runTerm`: holder and
//! `leaseTransitions`). In the order the API server committed the runs, the terms never go
//! back: no older term starts a run once a newer one has.

pub use kuberhealthy_e2e::leadership::{is_leader_only_write, is_lease_write, replica_of, tenures};

use crate::observe::RunSeen;

/// Run starts whose term is older than a term that started an earlier run.
pub fn terms_going_back(runs: &[RunSeen]) -> Vec<String> {
    let mut newest: Option<&RunSeen> = None;
    let mut problems = Vec::new();
    for run in runs {
        if let Some(prev) = newest {
            let older = run.transitions < prev.transitions
                || (run.transitions == prev.transitions && run.holder != prev.holder);
            if older {
                problems.push(format!(
                    "run {} of {} by term ({}, {}) was committed after run {} of {} by term ({}, {})",
                    run.uuid,
                    run.check,
                    run.holder,
                    run.transitions,
                    prev.uuid,
                    prev.check,
                    prev.holder,
                    prev.transitions
                ));
                continue;
            }
        }
        newest = Some(run);
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn run(holder: &str, transitions: i64) -> RunSeen {
        RunSeen {
            at: Instant::now(),
            check: "c".into(),
            uuid: format!("{holder}-{transitions}"),
            holder: holder.into(),
            transitions,
        }
    }

    #[test]
    fn terms_may_only_move_forward() {
        assert!(terms_going_back(&[run("a", 0), run("a", 0), run("b", 1), run("c", 2)]).is_empty());
        assert_eq!(
            terms_going_back(&[run("a", 0), run("b", 1), run("a", 0)]).len(),
            1
        );
        assert_eq!(terms_going_back(&[run("a", 1), run("b", 1)]).len(), 1);
    }
}
