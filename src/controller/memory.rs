//! Handing freed memory back to the system. glibc's allocator keeps what a burst of work
//! freed (a list page parsed, a page rendered, objects replaced in the cache) resident in
//! its arenas for the life of the process; on a replica that holds a few MiB, those peaks
//! would be most of its footprint. After each burst, once it has been quiet for a moment,
//! the replica asks the allocator to return its free pages (`malloc_trim`).

use std::sync::LazyLock;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, timeout_at};

/// How long it must be quiet (no poke) before memory is returned: a burst (a watch's first
/// list, a scrape of several documents) is over before the allocator is walked, once.
pub const QUIET: Duration = Duration::from_secs(1);

/// Under steady churn (reports, watch events) it is never quiet: memory is returned at
/// most this long after the first poke of a burst.
pub const LONGEST: Duration = Duration::from_secs(30);

/// Pokes from anywhere in the process: the allocator is process-wide, so is this.
static FREED: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Says that a burst of work just freed memory (cheap: one atomic operation).
pub fn freed() {
    FREED.notify_one();
}

/// Returns freed memory to the system after each burst of [`freed`] pokes, for the life of
/// the process.
pub fn spawn_releaser() {
    tokio::spawn(release_after_bursts(&FREED, QUIET, LONGEST, || {
        tokio::task::spawn_blocking(release)
    }));
}

/// Waits for a poke, then for `quiet` without one (at most `longest` since the first),
/// then calls `release` once. Pokes while it releases are one more burst.
async fn release_after_bursts<F, R>(
    pokes: &Notify,
    quiet: Duration,
    longest: Duration,
    mut release: F,
) where
    F: FnMut() -> R,
    R: std::future::Future,
{
    loop {
        pokes.notified().await;
        let last = Instant::now() + longest;
        while let Ok(()) = timeout_at((Instant::now() + quiet).min(last), pokes.notified()).await {}
        release().await;
    }
}

/// The allocator's free pages back to the system: every arena, not only the main heap's top.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release() {
    let began = std::time::Instant::now();
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its locks.
    let returned = unsafe { libc::malloc_trim(0) } == 1;
    tracing::debug!(returned, took = ?began.elapsed(), "freed memory handed back to the system");
}

/// Other allocators return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A releaser whose releases are counted; the notify pokes it.
    async fn counted() -> (Arc<Notify>, Arc<AtomicU32>) {
        let notify = Arc::new(Notify::new());
        let count = Arc::new(AtomicU32::new(0));
        let (pokes, releases) = (notify.clone(), count.clone());
        tokio::spawn(async move {
            release_after_bursts(&pokes, QUIET, LONGEST, || {
                releases.fetch_add(1, Ordering::SeqCst);
                std::future::ready(())
            })
            .await
        });
        tokio::task::yield_now().await;
        (notify, count)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_pokes_is_one_release_after_the_quiet_wait() {
        let (notify, releases) = counted().await;
        for _ in 0..100 {
            notify.notify_one();
        }
        tokio::time::sleep(QUIET / 2).await;
        assert_eq!(releases.load(Ordering::SeqCst), 0);
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(releases.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_freed_nothing_released() {
        let (_notify, releases) = counted().await;
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(releases.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_after_a_release_is_one_more_release() {
        let (notify, releases) = counted().await;
        notify.notify_one();
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(releases.load(Ordering::SeqCst), 1);
        notify.notify_one();
        notify.notify_one();
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(releases.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn steady_churn_is_released_once_per_longest_wait() {
        let (notify, releases) = counted().await;
        let churn = LONGEST * 3 + QUIET * 2;
        let mut churned = Duration::ZERO;
        while churned < churn {
            notify.notify_one();
            tokio::time::sleep(QUIET / 4).await;
            churned += QUIET / 4;
        }
        assert_eq!(releases.load(Ordering::SeqCst), 3);
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(releases.load(Ordering::SeqCst), 4);
    }
}
