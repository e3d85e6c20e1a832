//! Where the v2 gauges and v3's families read from: the status pages computed from the watch
//! cache (v2's, and v3's of the HealthChecks), rendered once per collection rather than once
//! per instrument.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::controller::cache::Cache;
use crate::controller::leader::{Holder, Leadership};
use crate::controller::status::{self, NextTurn, Snapshot, StatusPage, v3};

/// Produces the current, unfiltered status page, and when it next changes by the clock alone.
/// Reads memory only.
pub type PageSource = Arc<dyn Fn() -> (StatusPage, NextTurn) + Send + Sync>;

/// Produces v3's current, unfiltered status page (the HealthChecks), and its next turn.
pub type V3PageSource = Arc<dyn Fn() -> (v3::StatusPage, NextTurn) + Send + Sync>;

/// What moves when the metrics may have changed: the cache's change counter and the Lease
/// holder (the `current_master` label).
pub type ChangeSource = Arc<dyn Fn() -> (u64, Option<String>) + Send + Sync>;

/// Tells whether this replica leads right now.
pub type LeaderSource = Arc<dyn Fn() -> bool + Send + Sync>;

/// How long a rendered page is reused by the instrument callbacks of one collection.
const MAX_AGE: Duration = Duration::from_millis(500);

/// Renders `page` from a snapshot of the replica's cache, unfiltered.
fn rendered<P>(cache: &Cache, holder: &Holder, page: impl Fn(&Snapshot<'_>) -> P) -> P {
    let metadata = BTreeMap::new();
    let checks = cache.checks.state();
    let jobs = cache.jobs.state();
    let states = cache.states.state();
    let healthchecks = cache.healthchecks();
    let holder = holder.borrow().clone();
    page(&Snapshot {
        checks: &checks,
        jobs: &jobs,
        states: &states,
        healthchecks: &healthchecks,
        current_master: holder.as_deref(),
        metadata: &metadata,
        now: Timestamp::now(),
    })
}

/// The page of the replica's cache, as `GET /` shows it without a namespace filter.
pub fn from_cache(cache: Cache, holder: Holder) -> PageSource {
    Arc::new(move || {
        rendered(&cache, &holder, |s| {
            status::render_until(s, &BTreeSet::new())
        })
    })
}

/// The cache's change counter and the Lease holder.
pub fn changes_of(cache: Cache, holder: Holder) -> ChangeSource {
    Arc::new(move || (cache.version(), holder.borrow().clone()))
}

/// v3's page of the replica's cache, as `GET /v3/json` shows it without a namespace filter.
pub fn v3_from_cache(cache: Cache, holder: Holder) -> V3PageSource {
    Arc::new(move || rendered(&cache, &holder, |s| v3::render_until(s, &BTreeSet::new())))
}

/// Leading means holding a term that is still valid by this replica's clock.
pub fn from_leadership(leadership: Leadership) -> LeaderSource {
    Arc::new(move || {
        leadership
            .borrow()
            .as_ref()
            .is_some_and(|term| term.is_valid())
    })
}

/// The last rendered page, shared by the callbacks of all gauges of a family so that one
/// collection sees one consistent page (a check cannot be failing in one series and passing
/// in another).
pub(crate) struct PageMemo<P = StatusPage> {
    source: Arc<dyn Fn() -> (P, NextTurn) + Send + Sync>,
    last: Mutex<Option<(Instant, Arc<P>, NextTurn)>>,
}

impl<P> PageMemo<P> {
    pub(crate) fn new(source: Arc<dyn Fn() -> (P, NextTurn) + Send + Sync>) -> PageMemo<P> {
        PageMemo {
            source,
            last: Mutex::new(None),
        }
    }

    /// Renders now; a scrape calls this first so it never sees an older page. Returns the
    /// page's next turn by the clock.
    pub(crate) fn refresh(&self) -> NextTurn {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (page, turn) = (self.source)();
        *last = Some((Instant::now(), Arc::new(page), turn));
        turn
    }

    /// The page rendered within [`MAX_AGE`], or a new one.
    pub(crate) fn current(&self) -> Arc<P> {
        {
            let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, page, _)) = last.as_ref()
                && at.elapsed() < MAX_AGE
            {
                return page.clone();
            }
        }
        self.refresh();
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref().expect("just rendered").1.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn counting_source() -> (PageSource, Arc<AtomicUsize>) {
        let renders = Arc::new(AtomicUsize::new(0));
        let count = renders.clone();
        let source: PageSource = Arc::new(move || {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let page = StatusPage {
                ok: true,
                errors: vec![],
                check_details: BTreeMap::new(),
                job_details: BTreeMap::new(),
                current_master: format!("render-{n}"),
                metadata: BTreeMap::new(),
            };
            (page, NextTurn::default())
        });
        (source, renders)
    }

    #[test]
    fn callbacks_of_one_collection_share_one_render() {
        let (source, renders) = counting_source();
        let memo = PageMemo::new(source);
        assert_eq!(memo.current().current_master, "render-1");
        assert_eq!(memo.current().current_master, "render-1");
        assert_eq!(renders.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn refresh_always_renders() {
        let (source, renders) = counting_source();
        let memo = PageMemo::new(source);
        memo.current();
        memo.refresh();
        assert_eq!(memo.current().current_master, "render-2");
        assert_eq!(memo.current().current_master, "render-2");
        assert_eq!(renders.load(Ordering::SeqCst), 2);
    }
}
