//! The page's documents served as bytes rendered once per change (see
//! [`crate::controller::served`]): the overview (per filter, and its live part), each check's
//! page and its badges. A document is rendered again only when the cache or the Lease holder
//! changed, or when the clock turns a verdict (a result going stale, a new UTC day).

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::{Filter, RowState, badge, check_view, html, overview};
use crate::controller::cache::Cache;
use crate::controller::leader::Holder;
use crate::controller::served::{Document, Rendered, Views};
use crate::controller::status::Snapshot;

/// A badge of a check, by its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Badge {
    Status,
    /// Uptime over one of [`crate::api::uptime::WINDOWS`] (index 0: 24h, 1: 7d, 2: 30d).
    Uptime(usize),
}

impl Badge {
    pub const FILES: [&'static str; 4] = [
        "status.svg",
        "uptime-24h.svg",
        "uptime-7d.svg",
        "uptime-30d.svg",
    ];

    pub fn from_file(file: &str) -> Option<Badge> {
        match Badge::FILES.iter().position(|f| *f == file)? {
            0 => Some(Badge::Status),
            n => Some(Badge::Uptime(n - 1)),
        }
    }

    fn file(self) -> &'static str {
        match self {
            Badge::Status => Badge::FILES[0],
            Badge::Uptime(n) => Badge::FILES[n + 1],
        }
    }
}

/// One document of the page.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// The overview; `live` is the part live updates swap in (the same for every filter).
    Overview { filter: Filter, live: bool },
    Check {
        namespace: String,
        name: String,
        live: bool,
    },
    Badge {
        namespace: String,
        name: String,
        badge: Badge,
    },
}

impl Doc {
    /// The check a document is about.
    pub fn subject(&self) -> Option<(String, String)> {
        match self {
            Doc::Overview { .. } => None,
            Doc::Check {
                namespace, name, ..
            }
            | Doc::Badge {
                namespace, name, ..
            } => Some((namespace.clone(), name.clone())),
        }
    }

    /// The name of its view: one rendering is kept per name.
    fn key(&self) -> String {
        let live = |live: &bool| if *live { "#live" } else { "" };
        match self {
            Doc::Overview { filter, live: l } => {
                let namespaces: Vec<&str> = filter.namespaces.iter().map(String::as_str).collect();
                format!(
                    "/?namespace={}&q={}{}",
                    namespaces.join(","),
                    filter.search,
                    live(l)
                )
            }
            Doc::Check {
                namespace,
                name,
                live: l,
            } => format!("/checks/{namespace}/{name}{}", live(l)),
            Doc::Badge {
                namespace,
                name,
                badge,
            } => format!("/badges/{namespace}/{name}/{}", badge.file()),
        }
    }
}

/// The rendered documents of the page.
pub struct PageDocs {
    html: Views<Option<String>>,
    svg: Views<Option<String>>,
}

impl Default for PageDocs {
    fn default() -> PageDocs {
        PageDocs {
            html: Views::new("text/html; charset=utf-8"),
            svg: Views::new("image/svg+xml"),
        }
    }
}

impl PageDocs {
    /// The document, or `None` when it is about a check the cache does not hold.
    pub async fn get(
        &self,
        doc: &Doc,
        cache: &Cache,
        holder: &Holder,
        metadata: &BTreeMap<String, String>,
        serving: &str,
    ) -> Option<Arc<Document>> {
        let views = match doc {
            Doc::Badge { .. } => &self.svg,
            _ => &self.html,
        };
        let master = holder.borrow().clone();
        let now = Timestamp::now();
        views
            .view(&doc.key())
            .try_get(master.clone(), cache.version(), now, || {
                let checks = cache.checks.state();
                let jobs = cache.jobs.state();
                let states = cache.states.state();
                let healthchecks = cache.healthchecks();
                let snapshot = Snapshot {
                    checks: &checks,
                    jobs: &jobs,
                    states: &states,
                    healthchecks: &healthchecks,
                    current_master: master.as_deref(),
                    metadata,
                    now,
                };
                render(doc, &snapshot, serving).ok_or(())
            })
            .await
            .ok()
    }
}

/// Renders a document of the page from a snapshot (pure).
pub fn render(doc: &Doc, snapshot: &Snapshot<'_>, serving: &str) -> Option<Rendered> {
    let (body, ok, valid_until) = match doc {
        Doc::Overview { filter, live } => {
            let overview = overview(snapshot, serving);
            let ok = !overview.rows.iter().any(|r| r.state.is_bad());
            let body = if *live {
                html::overview_live(&overview)
            } else {
                html::overview_page(&overview, filter)
            };
            (body, ok, overview.valid_until)
        }
        Doc::Check {
            namespace,
            name,
            live,
        } => {
            let view = check_view(snapshot, serving, namespace, name)?;
            let body = if *live {
                html::check_live(&view)
            } else {
                html::check_page(&view)
            };
            (body, !view.row.state.is_bad(), view.valid_until)
        }
        Doc::Badge {
            namespace,
            name,
            badge,
        } => {
            let view = check_view(snapshot, serving, namespace, name)?;
            let svg = match badge {
                Badge::Status => badge::status(&view.row.name, view.row.state),
                Badge::Uptime(window) => {
                    let (label, _) = crate::api::uptime::WINDOWS[*window];
                    let percent = view.row.uptime.and_then(|u| match window {
                        0 => u.day,
                        1 => u.week,
                        _ => u.month,
                    });
                    badge::uptime(label, percent)
                }
            };
            (svg, view.row.state != RowState::Failing, view.valid_until)
        }
    };
    Some(Rendered {
        body: body.into_bytes(),
        ok,
        valid_until,
    })
}
