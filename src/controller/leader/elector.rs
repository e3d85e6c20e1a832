//! The elector loop, with client-go's semantics: contend every retry period (and at the
//! moment the holder's claim runs out by this replica's clock, so a dead leader is replaced
//! without waiting for the next retry tick); lead and renew every retry period; step down at
//! once (leader tasks cancelled first) when a renewal has not succeeded within the renew
//! deadline or another replica holds the Lease; contend again, forever. On shutdown, stop
//! leader tasks, then release the Lease.

use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

use super::decide::{Decision, Observation, Write, decide, next_record, released_record};
use super::store::{LeaseStore, StoreError, Versioned};
use super::term::Term;
use crate::api::LeaderTerm;

#[derive(Debug, Clone)]
pub struct ElectorConfig {
    /// This replica's identity (`POD_NAME`).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// Publishes `Some(term)` while this replica leads, `None` otherwise.
pub type Leadership = watch::Receiver<Option<Term>>;

pub struct Elector<S> {
    config: ElectorConfig,
    store: S,
    leadership: watch::Sender<Option<Term>>,
    /// The holder as the Lease watch sees it: a release seen there triggers an attempt at
    /// once rather than at the next retry.
    holder: Option<watch::Receiver<Option<String>>>,
}

/// Why a term ended.
enum Ending {
    Lost(String),
    Shutdown(Versioned),
}

impl<S: LeaseStore> Elector<S> {
    pub fn new(config: ElectorConfig, store: S) -> (Self, Leadership) {
        let (leadership, rx) = watch::channel(None);
        (
            Elector {
                config,
                store,
                leadership,
                holder: None,
            },
            rx,
        )
    }

    /// Lets the elector react at once when the watched holder changes.
    pub fn with_holder_watch(mut self, holder: watch::Receiver<Option<String>>) -> Self {
        self.holder = Some(holder);
        self
    }

    /// Contends and leads until `shutdown` is cancelled; then releases the Lease if held.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let Some((term, lease, renewed_at)) = self.contend(&shutdown).await else {
                return;
            };
            tracing::info!(
                identity = %self.config.identity,
                transitions = term.id.transitions,
                "acquired the Lease: this replica is the leader"
            );
            self.leadership.send_replace(Some(term.clone()));
            let ending = self.lead(&term, lease, renewed_at, &shutdown).await;
            // Leader tasks stop before anyone else can be told the Lease is free.
            self.leadership.send_replace(None);
            term.end().await;
            match ending {
                Ending::Lost(why) => {
                    tracing::warn!(identity = %self.config.identity, reason = %why, "lost the Lease; stepping down and contending again");
                }
                Ending::Shutdown(lease) => {
                    self.release(lease).await;
                    return;
                }
            }
        }
    }

    fn retry_with_jitter(&self) -> Duration {
        // Spreads replicas' attempts so they do not collide on every try.
        let jitter = rand::rng().random_range(0.0..0.2);
        self.config.retry_period.mul_f64(1.0 + jitter)
    }

    /// How long a follower waits before its next try: one retry period, or less when the
    /// holder's claim, as this replica observed it, runs out sooner. A leader that died is
    /// then replaced as soon as its Lease expires rather than up to a retry period later; a
    /// leader that renews resets the observation, so a live one is never woken for.
    fn pause_before_next_try(&self, observed: Option<&Observation>, now: Instant) -> Duration {
        let pause = self.retry_with_jitter();
        match observed {
            Some(seen)
                if seen.holder().is_some_and(|h| h != self.config.identity)
                    && seen.expires_at() > now =>
            {
                pause.min(seen.expires_at() - now)
            }
            // Already expired (another replica won the race, or the API server is down):
            // the full retry period, never a busy loop.
            _ => pause,
        }
    }

    /// Tries every retry period until this replica holds the Lease (or shutdown).
    async fn contend(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Option<(Term, Versioned, Instant)> {
        let mut observed: Option<Observation> = None;
        let mut last_holder: Option<String> = None;
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            let sent = Instant::now();
            match self.try_acquire(&mut observed, sent).await {
                Ok(Some(lease)) => {
                    let term = Term::new(
                        LeaderTerm {
                            holder: self.config.identity.clone(),
                            transitions: lease.record.lease_transitions.unwrap_or(0),
                        },
                        sent + self.config.renew_deadline,
                    );
                    return Some((term, lease, sent));
                }
                Ok(None) => {}
                Err(StoreError::Conflict) => {
                    tracing::debug!("another replica wrote the Lease first");
                }
                Err(StoreError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "cannot read or write the Lease; will retry");
                }
            }
            let holder = observed
                .as_ref()
                .and_then(|o| o.holder().map(str::to_string));
            if holder != last_holder {
                if let Some(h) = &holder {
                    tracing::info!(holder = %h, "observed a new leader");
                }
                last_holder = holder;
            }
            let pause = self.pause_before_next_try(observed.as_ref(), Instant::now());
            let released = wait_for_release(self.holder.as_mut());
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = sleep(pause) => {}
                _ = released => {}
            }
        }
    }

    /// One attempt: read, decide, write. `Ok(Some)` means this replica now holds the Lease.
    async fn try_acquire(
        &self,
        observed: &mut Option<Observation>,
        now: Instant,
    ) -> Result<Option<Versioned>, StoreError> {
        let me = &self.config.identity;
        let Some(current) = self.store.get().await? else {
            let record = next_record(
                me,
                None,
                Write::NewTerm,
                self.config.lease_duration,
                Timestamp::now(),
            );
            return self.store.create(record).await.map(Some);
        };
        let seen = Observation::update(observed.take(), current.record.clone(), now);
        let decision = decide(me, &seen, now);
        *observed = Some(seen);
        match decision {
            Decision::Follow { .. } => Ok(None),
            // Contending, this replica holds no term: even a Lease that still names it is
            // taken for a new term.
            Decision::Acquire | Decision::Renew => {
                let record = next_record(
                    me,
                    Some(&current.record),
                    Write::NewTerm,
                    self.config.lease_duration,
                    Timestamp::now(),
                );
                self.store
                    .replace(record, &current.resource_version)
                    .await
                    .map(Some)
            }
        }
    }

    /// Renews every retry period until the term ends.
    async fn lead(
        &self,
        term: &Term,
        mut lease: Versioned,
        mut renewed_at: Instant,
        shutdown: &CancellationToken,
    ) -> Ending {
        let me = &self.config.identity;
        loop {
            let deadline = renewed_at + self.config.renew_deadline;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ending::Shutdown(lease),
                _ = sleep_until(deadline) => {
                    return Ending::Lost(format!(
                        "could not renew within the renew deadline of {}",
                        crate::api::duration::format(self.config.renew_deadline)
                    ));
                }
                _ = sleep(self.config.retry_period) => {}
            }
            let sent = Instant::now();
            let record = next_record(
                me,
                Some(&lease.record),
                Write::Renewal,
                self.config.lease_duration,
                Timestamp::now(),
            );
            match timeout_at(
                deadline,
                self.store.replace(record, &lease.resource_version),
            )
            .await
            {
                Err(_) => {
                    return Ending::Lost(format!(
                        "the renewal did not finish within the renew deadline of {}",
                        crate::api::duration::format(self.config.renew_deadline)
                    ));
                }
                Ok(Ok(renewed)) => {
                    let gap = sent - renewed_at;
                    if gap > self.config.retry_period * 2 {
                        tracing::warn!(since_last_renewal = ?gap, "renewed the Lease late");
                    } else {
                        tracing::debug!("renewed the Lease");
                    }
                    lease = renewed;
                    renewed_at = sent;
                    term.extend(sent + self.config.renew_deadline);
                }
                Ok(Err(StoreError::Conflict)) => {
                    // Our previous write may have landed with its answer lost: read and see.
                    match timeout_at(deadline, self.store.get()).await {
                        Ok(Ok(Some(now)))
                            if now.record.holder_identity.as_deref() == Some(me.as_str()) =>
                        {
                            lease = now;
                        }
                        Ok(Ok(Some(now))) => {
                            let holder = now.record.holder_identity.unwrap_or_default();
                            return Ending::Lost(format!(
                                "another replica holds the Lease: {holder:?}"
                            ));
                        }
                        Ok(Ok(None)) => return Ending::Lost("the Lease was deleted".into()),
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "cannot read the Lease after a conflict; will retry")
                        }
                        Err(_) => {}
                    }
                }
                Ok(Err(StoreError::Unavailable(e))) => {
                    tracing::warn!(error = %e, "cannot renew the Lease; will retry until the renew deadline");
                }
            }
        }
    }

    async fn release(&self, lease: Versioned) {
        let record = released_record(&lease.record, Timestamp::now());
        let give_up = Instant::now() + self.config.retry_period;
        match timeout_at(give_up, self.store.replace(record, &lease.resource_version)).await {
            Ok(Ok(_)) => tracing::info!(identity = %self.config.identity, "released the Lease"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not release the Lease; it will expire instead")
            }
            Err(_) => tracing::warn!("releasing the Lease timed out; it will expire instead"),
        }
    }
}

/// Resolves when the watched holder becomes empty (the leader released the Lease).
async fn wait_for_release(holder: Option<&mut watch::Receiver<Option<String>>>) {
    let Some(rx) = holder else {
        return std::future::pending().await;
    };
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        if rx.borrow_and_update().is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex;

    use k8s_openapi::api::coordination::v1::LeaseSpec;

    use super::super::term::STOP_GRACE;
    use super::*;

    /// An in-memory Lease with the API server's optimistic-concurrency rule, and a switch
    /// that makes every call fail as if the API server were down.
    #[derive(Clone, Default)]
    struct MemoryStore {
        inner: Arc<Mutex<(Option<Versioned>, u64, bool)>>,
        reads: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl MemoryStore {
        /// How many times the Lease was read (successfully or not).
        fn reads(&self) -> usize {
            self.reads.load(std::sync::atomic::Ordering::SeqCst)
        }
        fn set_down(&self, down: bool) {
            self.inner.lock().unwrap().2 = down;
        }
        fn record(&self) -> Option<LeaseSpec> {
            self.inner
                .lock()
                .unwrap()
                .0
                .as_ref()
                .map(|v| v.record.clone())
        }
        fn holder(&self) -> Option<String> {
            self.record().and_then(|r| r.holder_identity)
        }
        /// Writes as another replica would, bypassing the elector.
        fn force(&self, record: LeaseSpec) {
            let mut g = self.inner.lock().unwrap();
            g.1 += 1;
            g.0 = Some(Versioned {
                record,
                resource_version: g.1.to_string(),
            });
        }
        fn write(
            &self,
            record: LeaseSpec,
            expected: Option<&str>,
        ) -> Result<Versioned, StoreError> {
            let mut g = self.inner.lock().unwrap();
            if g.2 {
                return Err(StoreError::Unavailable("connection refused".into()));
            }
            let current = g.0.as_ref().map(|v| v.resource_version.as_str());
            if current != expected {
                return Err(StoreError::Conflict);
            }
            g.1 += 1;
            let v = Versioned {
                record,
                resource_version: g.1.to_string(),
            };
            g.0 = Some(v.clone());
            Ok(v)
        }
    }

    impl LeaseStore for MemoryStore {
        async fn get(&self) -> Result<Option<Versioned>, StoreError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let g = self.inner.lock().unwrap();
            if g.2 {
                return Err(StoreError::Unavailable("connection refused".into()));
            }
            Ok(g.0.clone())
        }
        async fn create(&self, record: LeaseSpec) -> Result<Versioned, StoreError> {
            self.write(record, None)
        }
        async fn replace(&self, record: LeaseSpec, rv: &str) -> Result<Versioned, StoreError> {
            self.write(record, Some(rv))
        }
    }

    fn config(identity: &str) -> ElectorConfig {
        ElectorConfig {
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn start(
        identity: &str,
        store: &MemoryStore,
    ) -> (Leadership, CancellationToken, tokio::task::JoinHandle<()>) {
        let (elector, leadership) = Elector::new(config(identity), store.clone());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(elector.run(shutdown.clone()));
        (leadership, shutdown, handle)
    }

    async fn wait_leading(leadership: &mut Leadership, leading: bool) -> Option<Term> {
        leadership
            .wait_for(|t| t.is_some() == leading)
            .await
            .unwrap()
            .clone()
    }

    fn held_by(holder: &str, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn acquires_a_free_lease_at_once() {
        let store = MemoryStore::default();
        let started = Instant::now();
        let (mut leadership, _shutdown, _h) = start("a", &store);
        let term = wait_leading(&mut leadership, true).await.unwrap();
        assert_eq!(
            term.id,
            LeaderTerm {
                holder: "a".into(),
                transitions: 0
            }
        );
        assert!(term.is_valid());
        assert!(Instant::now() - started < Duration::from_millis(10));
        assert_eq!(store.holder().as_deref(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_a_held_lease_to_expire_by_its_own_clock_then_takes_it() {
        let store = MemoryStore::default();
        store.force(held_by("old", 3));
        let started = Instant::now();
        let (mut leadership, _shutdown, _h) = start("b", &store);
        let term = wait_leading(&mut leadership, true).await.unwrap();
        let waited = Instant::now() - started;
        // Seen at start, valid 15 s by our clock, taken on the first retry after that.
        assert!(
            waited >= Duration::from_secs(15),
            "took it after {waited:?}"
        );
        assert!(
            waited <= Duration::from_secs(15) + Duration::from_millis(2400),
            "took it after {waited:?}"
        );
        assert_eq!(term.id.transitions, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn takes_a_dead_leaders_lease_when_it_expires_not_at_the_next_retry() {
        let store = MemoryStore::default();
        let (_leading_old, shutdown_old, old_task) = start("old", &store);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (mut leading_b, _shutdown_b, _hb) = start("b", &store);
        // "old" renews for a while and b keeps seeing fresh records; then "old" dies
        // without releasing (its task is aborted, as a SIGKILL would).
        tokio::time::sleep(Duration::from_secs(7)).await;
        old_task.abort();
        drop(shutdown_old);
        let died = Instant::now();
        let term = wait_leading(&mut leading_b, true).await.unwrap();
        let waited = Instant::now() - died;
        // b saw the last renewal at most one retry period (+20 % jitter) after it was
        // written, and takes the Lease the moment that observation is 15 s old, not up to
        // another retry period later.
        assert!(
            waited <= Duration::from_secs(15) + Duration::from_millis(2400),
            "took it {waited:?} after the leader died"
        );
        assert_eq!(term.id.holder, "b");
        assert_eq!(term.id.transitions, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_wakes_exactly_at_the_observed_expiry() {
        let store = MemoryStore::default();
        store.force(held_by("old", 3));
        let started = Instant::now();
        let (mut leadership, _shutdown, _h) = start("b", &store);
        wait_leading(&mut leadership, true).await.unwrap();
        let waited = Instant::now() - started;
        assert!(
            waited >= Duration::from_secs(15),
            "took it after {waited:?}"
        );
        assert!(
            waited <= Duration::from_secs(15) + Duration::from_millis(5),
            "took it after {waited:?}, not at the expiry"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_api_server_is_not_hammered_once_the_lease_looks_expired() {
        let store = MemoryStore::default();
        store.force(held_by("old", 3));
        let (leadership, _shutdown, _h) = start("b", &store);
        tokio::time::sleep(Duration::from_millis(10)).await;
        store.set_down(true);
        let reads_before = store.reads();
        // 60 s of outage, past the observed expiry: one try per retry period (2 s, +20 %
        // jitter at most), not a busy loop.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let tries = store.reads() - reads_before;
        assert!(
            (25..=31).contains(&tries),
            "{tries} tries in 60 s with a 2 s retry period"
        );
        assert!(leadership.borrow().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn renews_every_retry_period_while_leading() {
        let store = MemoryStore::default();
        let (mut leadership, _shutdown, _h) = start("a", &store);
        let term = wait_leading(&mut leadership, true).await.unwrap();
        let first = store.record().unwrap().renew_time;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let later = store.record().unwrap();
        assert_ne!(later.renew_time, first, "the leader renewed");
        assert_eq!(
            later.lease_transitions,
            Some(0),
            "renewals are not transitions"
        );
        assert!(term.is_valid());
        assert!(leadership.borrow().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn steps_down_on_conflict_when_another_replica_holds_it() {
        let store = MemoryStore::default();
        let (mut leadership, _shutdown, _h) = start("a", &store);
        let term = wait_leading(&mut leadership, true).await.unwrap();
        store.force(held_by("intruder", 7));
        wait_leading(&mut leadership, false).await;
        assert!(!term.is_valid(), "the old term is over");
        assert!(term.token().is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn steps_down_past_the_renew_deadline_and_contends_again() {
        let store = MemoryStore::default();
        let (mut leadership, _shutdown, _h) = start("a", &store);
        let term = wait_leading(&mut leadership, true).await.unwrap();
        let down_at = Instant::now();
        store.set_down(true);
        wait_leading(&mut leadership, false).await;
        let stepped_down_after = Instant::now() - down_at;
        assert!(
            stepped_down_after <= Duration::from_secs(10),
            "stepped down after {stepped_down_after:?}"
        );
        assert!(!term.is_valid());
        // The API server comes back: the replica contends again and leads again.
        tokio::time::sleep(Duration::from_secs(30)).await;
        store.set_down(false);
        let again = wait_leading(&mut leadership, true).await.unwrap();
        assert_eq!(again.id.holder, "a");
        assert!(again.is_valid());
        assert!(
            again.id.transitions > term.id.transitions,
            "taking its own Lease back is a new term: {:?} after {:?}",
            again.id,
            term.id
        );
        assert_eq!(
            store.record().unwrap().lease_transitions,
            Some(again.id.transitions)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_term_is_invalid_once_its_renew_deadline_passes_even_before_cancellation() {
        let term = Term::new(
            LeaderTerm {
                holder: "a".into(),
                transitions: 1,
            },
            Instant::now() + Duration::from_secs(10),
        );
        assert!(term.is_valid());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!term.is_valid());
        assert!(!term.token().is_cancelled());
    }

    /// Records, when dropped, who held the Lease: when a leader task stopped.
    struct StopProbe {
        store: MemoryStore,
        stopped: Arc<Mutex<Option<Option<String>>>>,
    }

    impl Drop for StopProbe {
        fn drop(&mut self) {
            *self.stopped.lock().unwrap() = Some(self.store.holder());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_leader_tasks_then_releases() {
        let store = MemoryStore::default();
        let (mut leadership, shutdown, handle) = start("a", &store);
        let term = wait_leading(&mut leadership, true).await.unwrap();
        let stopped = Arc::new(Mutex::new(None::<Option<String>>));
        let probe = StopProbe {
            store: store.clone(),
            stopped: stopped.clone(),
        };
        // A leader task stuck in a call that never returns and ignores its token.
        term.spawn(async move {
            let _probe = probe;
            std::future::pending::<()>().await;
        });
        let asked = Instant::now();
        shutdown.cancel();
        handle.await.unwrap();
        assert!(
            Instant::now() - asked < STOP_GRACE,
            "the stuck task was aborted, not waited for"
        );
        assert_eq!(
            stopped.lock().unwrap().clone(),
            Some(Some("a".into())),
            "leader tasks stopped while the Lease was still held"
        );
        assert_eq!(
            store.holder().as_deref(),
            Some(""),
            "then the Lease was released"
        );
        assert!(leadership.borrow().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_lease_is_taken_by_the_next_try() {
        let store = MemoryStore::default();
        let (mut leading_a, shutdown_a, handle_a) = start("a", &store);
        wait_leading(&mut leading_a, true).await;
        let (mut leading_b, _shutdown_b, _hb) = start("b", &store);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(leading_b.borrow().is_none(), "b follows while a leads");
        shutdown_a.cancel();
        handle_a.await.unwrap();
        let released_at = Instant::now();
        let term = wait_leading(&mut leading_b, true).await.unwrap();
        assert!(
            Instant::now() - released_at <= Duration::from_millis(2400),
            "one retry period"
        );
        assert_eq!(
            term.id.transitions, 1,
            "a created it (0); b's take is one transition"
        );
    }
}
