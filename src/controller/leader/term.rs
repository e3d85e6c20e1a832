//! A leader term: the period during which this replica holds the Lease. Leader-only work runs
//! under the term's cancellation token and checks `is_valid` before every write, so nothing
//! is done with a term that has ended, even in the instant before the token is cancelled.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::LeaderTerm;

/// How long the end of a term waits for leader tasks to stop.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Term {
    /// Holder and `leaseTransitions`, recorded in every run this term starts (`runTerm`).
    pub id: LeaderTerm,
    cancel: CancellationToken,
    valid_until: Arc<Mutex<Instant>>,
    tasks: TaskTracker,
}

impl Term {
    pub(crate) fn new(id: LeaderTerm, valid_until: Instant) -> Term {
        Term {
            id,
            cancel: CancellationToken::new(),
            valid_until: Arc::new(Mutex::new(valid_until)),
            tasks: TaskTracker::new(),
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

    /// Runs leader-only work for this term. The task must stop soon after `token()` is
    /// cancelled; the elector waits for it (up to [`STOP_GRACE`]) before releasing the Lease.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    pub(crate) fn extend(&self, valid_until: Instant) {
        *self.valid_until.lock().expect("term clock lock") = valid_until;
    }

    /// Ends the term and waits for its tasks to stop.
    pub(crate) async fn end(&self) {
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(STOP_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tasks.len(),
                "leader tasks did not stop within {STOP_GRACE:?} of the end of the term"
            );
        }
    }
}
