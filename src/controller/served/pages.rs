//! The status pages as served documents: v2's (`GET /`, `GET /json`) and v3's (`GET /v3/json`),
//! one per `?namespace=` view, rendered again only when the cache or the Lease holder changed,
//! or when a result turned stale.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;

use super::{Document, Rendered, Views};
use crate::controller::cache::Cache;
use crate::controller::leader::Holder;
use crate::controller::status::{self, NextTurn, Snapshot};

/// Which shape a status page request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    V2,
    V3,
}

/// The rendered views of both status pages.
pub struct StatusPages {
    v2: Views<Option<String>>,
    v3: Views<Option<String>>,
}

impl Default for StatusPages {
    fn default() -> StatusPages {
        StatusPages {
            v2: Views::new("application/json"),
            v3: Views::new("application/json"),
        }
    }
}

impl StatusPages {
    /// The page of `shape` for the namespaces in `filter` (empty: all).
    pub async fn get(
        &self,
        shape: Shape,
        filter: &BTreeSet<String>,
        cache: &Cache,
        holder: &Holder,
        metadata: &BTreeMap<String, String>,
    ) -> Arc<Document> {
        // The filter's canonical form: `?namespace=b,a` and `?namespace=a,b` share a view.
        let key = filter.iter().cloned().collect::<Vec<_>>().join(",");
        let views = match shape {
            Shape::V2 => &self.v2,
            Shape::V3 => &self.v3,
        };
        let master = holder.borrow().clone();
        let churn = cache.version();
        let now = Timestamp::now();
        views
            .view(&key)
            .get(master.clone(), churn, now, || {
                render(shape, filter, cache, master.as_deref(), metadata, now)
            })
            .await
    }
}

/// Renders a page from the cache as it is now: v2's exact JSON (pretty, as v2 prints it).
pub fn render(
    shape: Shape,
    filter: &BTreeSet<String>,
    cache: &Cache,
    current_master: Option<&str>,
    metadata: &BTreeMap<String, String>,
    now: Timestamp,
) -> Rendered {
    let checks = cache.checks.state();
    let jobs = cache.jobs.state();
    let states = cache.states.state();
    let healthchecks = cache.healthchecks();
    let snapshot = Snapshot {
        checks: &checks,
        jobs: &jobs,
        states: &states,
        healthchecks: &healthchecks,
        current_master,
        metadata,
        now,
    };
    let (ok, body, NextTurn(valid_until)) = match shape {
        Shape::V2 => {
            let (page, turn) = status::render_until(&snapshot, filter);
            (page.ok, serde_json::to_vec_pretty(&page), turn)
        }
        Shape::V3 => {
            let (page, turn) = status::v3::render_until(&snapshot, filter);
            (page.ok, serde_json::to_vec_pretty(&page), turn)
        }
    };
    Rendered {
        body: body.expect("the status page always serializes"),
        ok,
        valid_until,
    }
}
