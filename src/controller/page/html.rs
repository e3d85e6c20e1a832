//! The HTML of the overview and of a check's page, from compile-time-checked maud templates.
//! Everything the page needs is inline (no external assets): it works air-gapped behind
//! `kubectl port-forward`. `<main id="live">` is what live updates replace: the `*_live`
//! functions render it alone.

use jiff::Timestamp;
use maud::{DOCTYPE, Markup, PreEscaped, Render, html};

use super::{CheckView, Filter, Overview, Row, RowState};

const CSS: &str = include_str!("assets/page.css");
const JS: &str = include_str!("assets/page.js");

/// States in the order the summary lists them.
const STATES: [RowState; 7] = [
    RowState::Failing,
    RowState::Stale,
    RowState::Blocked,
    RowState::Running,
    RowState::NeverRun,
    RowState::Suspended,
    RowState::Passing,
];

/// A time as a `<time>`: the instant, which the page's script shows as "3m ago" or "in 2m".
/// The HTML holds no "now", so one rendering serves every viewer until the cache changes.
fn when(t: Option<Timestamp>, none: &str) -> Markup {
    match t {
        Some(t) => {
            html! { time datetime=(t) title=(t) { (t.strftime("%Y-%m-%d %H:%M:%S UTC")) } }
        }
        None => html! { span.meta { (none) } },
    }
}

fn state_badge(state: RowState) -> Markup {
    html! { span class={ "state " (state.class()) } { (state.label()) } }
}

fn document(title: &str, leader: Option<&str>, serving: &str, body: impl Render) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { a href="/" { "Kuberhealthy" } }
                    span.meta {
                        "leader: " b #leader { (leader.unwrap_or("none elected")) }
                        " · served by: " b #serving { (serving) }
                        " · " span #live-status { "static" }
                    }
                }
                (body)
                script { (PreEscaped(JS)) }
            }
        }
    }
}

/// The whole overview page; rows the filter does not admit are hidden, not left out, so
/// the filter can widen again without a request.
pub fn overview_page(overview: &Overview, filter: &Filter) -> String {
    let body = OverviewBody {
        overview,
        filter,
        whole_page: true,
    };
    document(
        "Kuberhealthy",
        overview.leader.as_deref(),
        &overview.serving,
        body,
    )
    .into_string()
}

/// What live updates swap in on the overview.
pub fn overview_live(overview: &Overview) -> String {
    let content = OverviewBody {
        overview,
        filter: &Filter::default(),
        whole_page: false,
    };
    let mut html = String::new();
    content.render_to(&mut html);
    html
}

/// The overview's body (the filters and `<main id="live">` around its content when
/// `whole_page`), written straight into the page's buffer. With thousands of checks the
/// rows are megabytes; a template nesting them would build them once per level and copy
/// them into the next, and the allocator would keep that peak.
struct OverviewBody<'a> {
    overview: &'a Overview,
    filter: &'a Filter,
    whole_page: bool,
}

impl Render for OverviewBody<'_> {
    fn render_to(&self, html: &mut String) {
        let (overview, filter) = (self.overview, self.filter);
        if self.whole_page {
            filters(overview, filter).render_to(html);
            html.push_str(r#"<main id="live">"#);
        }
        summary(overview, filter).render_to(html);
        if overview.rows.is_empty() {
            html! {
                p.empty { "No checks or jobs yet. Apply a KuberhealthyCheck and it shows up here." }
            }
            .render_to(html);
        } else {
            html.push_str(r#"<table id="checks">"#);
            html! {
                thead { tr {
                    th { "State" } th { "Check" } th { "Last run" } th.num { "Duration" }
                    th { "Next run" } th.num title="consecutive failures" { "Failures" }
                    th.num { "Uptime 24h · 7d · 30d" } th { "Last 30 days" }
                } }
            }
            .render_to(html);
            html.push_str("<tbody>");
            for row in &overview.rows {
                overview_row(row, filter).render_to(html);
            }
            html.push_str("</tbody></table>");
        }
        if self.whole_page {
            html.push_str("</main>");
        }
    }
}

fn filters(overview: &Overview, filter: &Filter) -> Markup {
    let selected = filter.namespaces.iter().next().map(String::as_str);
    html! {
        form.filters #filters method="get" action="/" {
            select #namespace name="namespace" aria-label="namespace" {
                option value="" selected[selected.is_none()] { "all namespaces" }
                @for ns in &overview.namespaces {
                    option value=(ns) selected[selected == Some(ns.as_str())] { (ns) }
                }
            }
            input #search type="search" name="q" value=(filter.search)
                placeholder="search by name" aria-label="search by name" autocomplete="off";
            noscript { button type="submit" { "filter" } }
        }
    }
}

fn summary(overview: &Overview, filter: &Filter) -> Markup {
    let shown = overview.rows.iter().filter(|r| filter.admits(r)).count();
    html! {
        div.summary #summary {
            @for state in STATES {
                @let n = overview.count(state);
                @if n > 0 || state == RowState::Failing || state == RowState::Passing {
                    span class={ "pill " (state.class()) } data-state=(state.class()) {
                        b { (n) } " " (state.label())
                    }
                }
            }
            span.pill { "showing " b #shown { (shown) } " of " (overview.rows.len()) }
        }
    }
}

fn overview_row(row: &Row, filter: &Filter) -> Markup {
    html! {
        tr data-key=(row.key().to_lowercase()) data-namespace=(row.namespace)
            data-state=(row.state.class()) hidden[!filter.admits(row)] {
            td { (state_badge(row.state)) }
            td.name {
                span.ns { (row.namespace) "/" }
                a href=(row.href()) { (row.name) }
                @if row.kind != super::Kind::Check { span.kind { (row.kind.label()) } }
                @if let Some(error) = row.errors.first() {
                    div.error title=(error) { (error) }
                }
            }
            td.when { (when(row.last_run, "never")) }
            td.num { (short_duration(&row.duration)) }
            td.when {
                @if row.state == RowState::Running { span.meta { "running now" } }
                @else if row.state == RowState::Suspended { span.meta { "suspended" } }
                @else { (when(row.next_run, "—")) }
            }
            td.num { @if row.consecutive_failures > 0 { (row.consecutive_failures) } }
            td.num.uptime { (uptime_cell(row.uptime)) }
            td { (day_bar(&row.bar)) }
        }
    }
}

/// `99.5%`, or a dash when nothing of the window was observed.
fn percent(p: Option<f64>) -> String {
    match p {
        Some(p) if p >= 99.995 => "100%".into(),
        Some(p) => format!("{p:.2}%"),
        None => "—".into(),
    }
}

fn uptime_cell(uptime: Option<crate::api::uptime::Uptime>) -> Markup {
    match uptime {
        Some(u) => html! {
            span title="24h" { (percent(u.day)) } " · "
            span title="7d" { (percent(u.week)) } " · "
            span title="30d" { (percent(u.month)) }
        },
        None => html! { span.meta { "—" } },
    }
}

/// The last 30 days, a cell per day: green all up, amber some down, red mostly down, grey
/// no data. Days in a row that read the same are one element as wide as their cells (the
/// stylesheet draws the cells), which keeps a row of the overview small.
pub(super) fn day_bar(bar: &[Option<f64>]) -> Markup {
    html! {
        span.bar {
            @for run in day_runs(bar) {
                i class=(run.class) style=[(run.days > 1).then(|| format!("--days:{}", run.days))]
                    title={ (run.when()) ": " (run.what) } {}
            }
        }
    }
}

/// Days in a row of the bar that read the same.
#[derive(Debug, PartialEq)]
pub(super) struct DayRun {
    pub class: &'static str,
    pub what: String,
    /// How many days ago the run's last day was (0: today).
    pub last_ago: usize,
    pub days: usize,
}

impl DayRun {
    fn when(&self) -> String {
        let ago = |n: usize| {
            if n == 0 {
                "today".to_string()
            } else {
                format!("{n}d ago")
            }
        };
        match self.days {
            1 => ago(self.last_ago),
            days => format!("{} – {}", ago(self.last_ago + days - 1), ago(self.last_ago)),
        }
    }
}

/// The bar's days (oldest first) as runs of days with the same class and reading.
pub(super) fn day_runs(bar: &[Option<f64>]) -> Vec<DayRun> {
    let mut runs: Vec<DayRun> = Vec::new();
    for (i, day) in bar.iter().enumerate() {
        let ago = bar.len() - 1 - i;
        let (class, what) = match day {
            None => ("none", "no data".to_string()),
            Some(share) if *share >= 0.999 => ("up", percent(Some(share * 100.0))),
            Some(share) if *share >= 0.9 => ("part", percent(Some(share * 100.0))),
            Some(share) => ("down", percent(Some(share * 100.0))),
        };
        match runs.last_mut() {
            Some(run) if run.class == class && run.what == what => {
                run.days += 1;
                run.last_ago = ago;
            }
            _ => runs.push(DayRun {
                class,
                what,
                last_ago: ago,
                days: 1,
            }),
        }
    }
    runs
}

/// A Go duration cut to milliseconds for reading: `3.359431829s` reads `3.359s`.
fn short_duration(go: &str) -> String {
    match crate::api::duration::parse(go) {
        Ok(d) if !go.is_empty() => {
            let millis = d.as_millis();
            crate::api::duration::format(std::time::Duration::from_millis(millis as u64))
        }
        _ => go.to_string(),
    }
}

/// A check's own page.
pub fn check_page(view: &CheckView) -> String {
    let title = format!("{} · Kuberhealthy", view.row.key());
    let body = html! { main #live { (check_content(view)) } };
    document(&title, view.leader.as_deref(), &view.serving, body).into_string()
}

/// What live updates swap in on a check's page.
pub fn check_live(view: &CheckView) -> String {
    check_content(view).into_string()
}

fn check_content(view: &CheckView) -> Markup {
    let row = &view.row;
    html! {
        p { a href="/" { "← all checks" } }
        h2 #title {
            (state_badge(row.state)) " "
            span.ns { (row.namespace) "/" } (row.name)
            span.kind { (row.kind.label()) }
        }
        @if !row.errors.is_empty() {
            ul.errors #errors { @for e in &row.errors { li { pre { (e) } } } }
        }
        dl {
            @if let Some(i) = &view.interval { dt { "Run interval" } dd { (i) } }
            @if let Some(s) = &view.schedule {
                dt { "Schedule" } dd { code { (s) } " " (view.time_zone.as_deref().unwrap_or("UTC")) }
            }
            @if let Some(t) = &view.timeout { dt { "Timeout" } dd { (t) } }
            dt { "Image" } dd {
                @if view.images.is_empty() { span.meta { "none" } }
                @for (i, image) in view.images.iter().enumerate() {
                    @if i > 0 { ", " } code { (image) }
                }
            }
            dt { "Last run" } dd { (when(row.last_run, "never")) " " @if !row.duration.is_empty() { "(" (short_duration(&row.duration)) ")" } }
            dt { "Next run" } dd {
                @if row.state == RowState::Running { "running now" }
                @else { (when(row.next_run, "—")) }
            }
            dt { "Consecutive failures" } dd { (row.consecutive_failures) }
            dt { "Uptime 24h · 7d · 30d" } dd #uptime { (uptime_cell(row.uptime)) }
            dt { "Last 30 days" } dd { (day_bar(&row.bar)) }
            @if let Some(pod) = &view.pod { dt { "Last pod" } dd { code { (pod) } } }
            @if !view.node.is_empty() { dt { "Node" } dd { (view.node) } }
        }
        h2 { "Recent runs" }
        @if view.history.is_empty() {
            p.empty { "No finished runs recorded yet." }
        } @else {
            table #history {
                thead { tr { th { "Result" } th { "Started" } th.num { "Took" } th { "Run" } th { "Errors" } } }
                tbody {
                    @for run in &view.history {
                        @let state = if run.ok { RowState::Passing } else { RowState::Failing };
                        @let took = run.finished_at.duration_since(run.started_at);
                        tr data-run=(run.uuid) {
                            td { (state_badge(state)) }
                            td.when { (when(Some(run.started_at), "")) }
                            td.num { (format!("{:.1}s", took.as_secs_f64())) }
                            td { code { (run.uuid.get(..8).unwrap_or(&run.uuid)) } }
                            td {
                                @for e in &run.errors { pre { (e) } }
                                @if let Some(log) = &run.log_excerpt {
                                    div.meta { "the checker's last output:" }
                                    pre.log { (log) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "See more with kubectl" }
        @for command in &view.commands { pre.command { (command) } }
    }
}
