//! The leader's supervisor, one per leader term: it waits for the caches, then loops: plan
//! from the cache and this term's memory, carry the actions out, and sleep until the cache
//! changes or the plan's next moment comes. It never polls the API server.

use std::time::Duration;

use jiff::Timestamp;

use super::execute::Executor;
use super::plan::{self, Memory, PlanSettings, View};
use super::schedule::StartBudget;
use crate::api::time::add;
use crate::controller::cache::Cache;
use crate::controller::leader::Term;

/// How long the supervisor sleeps when nothing is due: a safety net, not a polling tick
/// (every change arrives by watch).
const IDLE_PASS: Duration = Duration::from_secs(300);
/// A burst of watch events settles into one pass.
const SETTLE: Duration = Duration::from_millis(20);

pub struct Supervisor {
    cache: Cache,
    executor: Executor,
    term: Term,
    settings: PlanSettings,
    budget: StartBudget,
    memory: Memory,
}

impl Supervisor {
    pub fn new(
        cache: Cache,
        executor: Executor,
        term: Term,
        settings: PlanSettings,
        starts_per_second: u32,
    ) -> Supervisor {
        Supervisor {
            cache,
            executor,
            term,
            settings,
            budget: StartBudget::new(starts_per_second),
            memory: Memory::default(),
        }
    }

    pub async fn run(mut self) {
        let mut changes = self.cache.changes();
        while !self.cache.unsynced().is_empty() {
            tokio::select! {
                _ = self.term.ended() => return,
                _ = changes.changed() => {}
            }
        }
        tracing::info!(
            transitions = self.term.id.transitions,
            "supervising checks for this leader term"
        );
        let first = std::time::Instant::now();
        let mut wake = self.pass().await;
        // What a new leader costs before it is at work: the bench reads this line.
        tracing::info!(
            checks = self.cache.checks.state().len(),
            took_ms = first.elapsed().as_secs_f64() * 1000.0,
            "first pass of this term done"
        );
        loop {
            let pause = wake
                .map(|w| Timestamp::now().duration_until(w).unsigned_abs())
                .unwrap_or(IDLE_PASS);
            tokio::select! {
                _ = self.term.ended() => return,
                _ = changes.changed() => tokio::time::sleep(SETTLE).await,
                _ = tokio::time::sleep(pause) => {}
            }
            wake = self.pass().await;
        }
    }

    /// Plans from what the cache shows now and carries the plan out; returns when to look
    /// again if nothing changes before.
    async fn pass(&mut self) -> Option<Timestamp> {
        let now = Timestamp::now();
        let mut view = View::new(
            self.cache.checks.state(),
            self.cache.jobs.state(),
            self.cache.states.state(),
            self.cache.pods.state(),
        );
        if let Some(healthchecks) = &self.cache.healthchecks {
            view = view.with_healthchecks(healthchecks.state());
        }
        self.memory.lay_over(&mut view);
        let plan = plan::plan(
            &view,
            &self.memory,
            &self.settings,
            now,
            self.budget.available(),
        );
        self.budget.take(plan.starts());
        let mut wake = plan.wake;
        if plan.deferred > 0 {
            let next = add(Timestamp::now(), self.budget.wait());
            wake = Some(wake.map_or(next, |w| w.min(next)));
        }
        for action in plan.actions {
            if !self.term.is_valid() {
                break;
            }
            let done = self.executor.execute(action).await;
            for change in done.changes {
                self.memory.record(change);
            }
        }
        wake
    }
}
