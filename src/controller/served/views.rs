//! One [`Served`] document per view (`?namespace=` filter), a bounded number of them: the
//! least recently asked view makes room for a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Served;

/// How many views are kept rendered; dashboards ask for a handful.
pub const MAX_VIEWS: usize = 64;

/// A view's document, with when it was last asked for.
type View<I> = (u64, Arc<Served<I>>);

pub struct Views<I> {
    content_type: &'static str,
    settle: Duration,
    views: Mutex<HashMap<String, View<I>>>,
    /// Increases with every lookup: the age of a view's last use.
    clock: std::sync::atomic::AtomicU64,
}

impl<I: PartialEq + Clone> Views<I> {
    pub fn new(content_type: &'static str) -> Views<I> {
        Views::settling(content_type, Duration::ZERO)
    }

    pub fn settling(content_type: &'static str, settle: Duration) -> Views<I> {
        Views {
            content_type,
            settle,
            views: Mutex::new(HashMap::new()),
            clock: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The document of the view named `key`.
    pub fn view(&self, key: &str) -> Arc<Served<I>> {
        let used = self
            .clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((last, served)) = views.get_mut(key) {
            *last = used;
            return served.clone();
        }
        if views.len() >= MAX_VIEWS
            && let Some(oldest) = views
                .iter()
                .min_by_key(|(_, (last, _))| *last)
                .map(|(k, _)| k.clone())
        {
            views.remove(&oldest);
        }
        let served = Arc::new(Served::settling(self.content_type, self.settle));
        views.insert(key.to_string(), (used, served.clone()));
        served
    }

    pub fn len(&self) -> usize {
        self.views.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
