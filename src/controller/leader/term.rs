//! A leader term: the period during which this replica holds the Lease. Leader-only work runs
//! under the term's cancellation token and checks `is_valid` before every write, so nothing
//! is done with a term that has ended, even in the instant before the token is cancelled.
//! At the end of the term its tasks are aborted, not awaited: a task stuck in an API call
//! (an etcd stall) must not outlive the term, nor delay the next one.

use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::LeaderTerm;

/// How long the end of a term waits for its aborted tasks to be gone: they stop at their
/// next await, so only a task blocking a thread takes that long.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Term {
    /// Holder and `leaseTransitions`, recorded in every run this term starts (`runTerm`).
    pub id: LeaderTerm,
    cancel: CancellationToken,
    valid_until: Arc<Mutex<Instant>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Term {
    pub(crate) fn new(id: LeaderTerm, valid_until: Instant) -> Term {
        Term {
            id,
            cancel: CancellationToken::new(),
            valid_until: Arc::new(Mutex::new(valid_until)),
            tasks: Arc::default(),
        }
    }

    /// Whether the term is still running by this replica's clock: not ended, and renewed
    /// recently enough that no other replica can have taken the Lease.
    pub fn is_valid(&self) -> bool {
        !self.cancel.is_cancelled()
            && Instant::now() < *self.valid_until.lock().expect("term clock lock")
    }

    /// Resolves when the term ends.
    pub async fn ended(&self) {
        self.cancel.cancelled().await
    }

    /// A token cancelled when the term ends, for leader-only tasks.
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Runs leader-only work for this term; it is aborted when the term ends. Work spawned
    /// after the end is aborted at once.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.tasks.lock().expect("term tasks lock");
        tasks.spawn(task);
        if self.cancel.is_cancelled() {
            tasks.abort_all();
        }
    }

    pub(crate) fn extend(&self, valid_until: Instant) {
        *self.valid_until.lock().expect("term clock lock") = valid_until;
    }

    /// Ends the term: cancels its token and aborts its tasks, then waits only until they
    /// are gone (each stops at its next await point).
    pub(crate) async fn end(&self) {
        self.cancel.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().expect("term tasks lock"));
        tasks.abort_all();
        let gone = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_GRACE, gone).await.is_err() {
            tracing::warn!(
                tasks = tasks.len(),
                "leader tasks were aborted but did not stop within {STOP_GRACE:?} of the end of the term"
            );
        }
    }
}
