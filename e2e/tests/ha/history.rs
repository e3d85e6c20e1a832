//! "One leader at a time", proven from what reached the API server.
//!
//! From the audit log: see `kuberhealthy_e2e::leadership` (shared with the soak).
//!
//! From the khstates: every run records the term that started it (`runTerm`: holder and
//! `leaseTransitions`). In the order the API server committed the runs, the terms never go
//! back: no older term starts a run once a newer one has.

pub use kuberhealthy_e2e::leadership::{is_leader_only_write, is_lease_write, replica_of, tenures};

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::SignedDuration;
use kuberhealthy_e2e::audit::AuditEvent;
use kuberhealthy_e2e::slots::{self, RunRecord};

use crate::observe::RunSeen;

/// Asserts from the audit log that leader-only writes all fall inside their writer's tenure,
/// and that the Lease went to exactly `holders`, in that order.
pub fn assert_one_leader_through(
    events: &[AuditEvent],
    namespace: &str,
    lease_name: &str,
    holders: &[&str],
) {
    let tenures = tenures(events, namespace, lease_name);
    assert!(
        tenures.violations.is_empty(),
        "leader-only writes outside the writer's tenure:\n{}",
        tenures.violations.join("\n")
    );
    assert_eq!(
        tenures
            .acquisitions
            .iter()
            .map(|a| a.0.as_str())
            .collect::<Vec<_>>(),
        holders,
        "the Lease went from kh-0 to the new leader and nowhere else"
    );
}

/// Asserts from the pod runner's record that no run had two pods and no check ran twice
/// within half its `interval`.
pub fn assert_each_slot_once(runs: &BTreeMap<String, Vec<RunRecord>>, interval: Duration) {
    let duplicates: Vec<String> = slots::duplicates(runs)
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    assert!(
        duplicates.is_empty(),
        "runs with more than one pod:\n{}",
        duplicates.join("\n")
    );
    let half_interval = SignedDuration::try_from(interval / 2).unwrap();
    let close: Vec<String> = slots::back_to_back(runs, half_interval)
        .iter()
        .map(|(a, b, gap)| format!("{} then {} of {} {gap:#} apart", a.run, b.run, a.check))
        .collect();
    assert!(close.is_empty(), "back-to-back runs:\n{}", close.join("\n"));
}

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
