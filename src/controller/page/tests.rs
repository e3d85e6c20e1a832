//! The overview's states and order, the filter, a check's page, and escaping.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::*;
use crate::api::history::DayCounts;
use crate::api::{KuberhealthyCheck, KuberhealthyJob, KuberhealthyState};

const NOW: &str = "2026-03-01T06:10:00Z";
const CREATED: &str = "2026-02-01T00:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn check(namespace: &str, name: &str, extra: serde_json::Value) -> Arc<KuberhealthyCheck> {
    check_created(namespace, name, extra, CREATED)
}

fn check_created(
    namespace: &str,
    name: &str,
    extra: serde_json::Value,
    created: &str,
) -> Arc<KuberhealthyCheck> {
    let mut spec = serde_json::json!({
        "runInterval": "5m", "timeout": "2m",
        "podSpec": {"containers": [{"name": "main", "image": "example/checker:v1"}]}
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "apiVersion": "comcast.github.io/v1", "kind": "KuberhealthyCheck",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
            "spec": spec
        }))
        .unwrap(),
    )
}

fn state(namespace: &str, name: &str, spec: serde_json::Value) -> Arc<KuberhealthyState> {
    let mut s = KuberhealthyState::new(name, serde_json::from_value(spec).unwrap());
    s.metadata.namespace = Some(namespace.into());
    Arc::new(s)
}

fn result(ok: bool, errors: &[&str], last_run: &str) -> serde_json::Value {
    serde_json::json!({
        "OK": ok, "Errors": errors, "RunDuration": "3.359431829s", "Namespace": "",
        "LastRun": last_run, "uuid": "run-1", "runStartedAt": last_run,
        "runFinishedAt": last_run, "runPod": "pod-1",
        "consecutiveFailures": if ok { 0 } else { 3 },
    })
}

struct World {
    checks: Vec<Arc<KuberhealthyCheck>>,
    jobs: Vec<Arc<KuberhealthyJob>>,
    states: Vec<Arc<KuberhealthyState>>,
    metadata: BTreeMap<String, String>,
}

impl World {
    fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            checks: &self.checks,
            jobs: &self.jobs,
            states: &self.states,
            healthchecks: &[],
            current_master: Some("kuberhealthy-0"),
            metadata: &self.metadata,
            now: ts(NOW),
        }
    }
}

/// One check of each state.
fn world() -> World {
    let recent = "2026-03-01T06:08:00Z";
    let mut in_flight = result(true, &[], recent);
    in_flight["uuid"] = "run-2".into();
    in_flight["runStartedAt"] = "2026-03-01T06:09:30Z".into();
    in_flight["runFinishedAt"] = serde_json::Value::Null;
    World {
        checks: vec![
            check("web", "passing", serde_json::json!({})),
            check("web", "failing", serde_json::json!({})),
            check("db", "stale", serde_json::json!({})),
            check("db", "running", serde_json::json!({})),
            check("db", "suspended", serde_json::json!({"suspend": true})),
            check(
                "db",
                "blocked",
                serde_json::json!({"dependsOn": ["web/failing"]}),
            ),
            // Created a moment ago: its first result is not due yet.
            check_created("web", "new", serde_json::json!({}), "2026-03-01T06:09:30Z"),
        ],
        jobs: vec![],
        states: vec![
            state("web", "passing", result(true, &[], recent)),
            state(
                "web",
                "failing",
                result(false, &["connection refused"], recent),
            ),
            state("db", "stale", result(true, &[], "2026-03-01T05:00:00Z")),
            state("db", "running", in_flight),
            state("db", "suspended", result(false, &["old failure"], recent)),
            state(
                "db",
                "blocked",
                result(false, &["cannot reach web"], recent),
            ),
        ],
        metadata: BTreeMap::new(),
    }
}

fn states_by_name(overview: &Overview) -> Vec<(String, RowState)> {
    overview
        .rows
        .iter()
        .map(|r| (r.name.clone(), r.state))
        .collect()
}

#[test]
fn every_state_and_failing_first() {
    let w = world();
    let overview = overview(&w.snapshot(), "kuberhealthy-1");
    assert_eq!(
        states_by_name(&overview),
        vec![
            ("failing".to_string(), RowState::Failing),
            ("stale".to_string(), RowState::Stale),
            ("blocked".to_string(), RowState::Blocked),
            ("running".to_string(), RowState::Running),
            ("new".to_string(), RowState::NeverRun),
            ("suspended".to_string(), RowState::Suspended),
            ("passing".to_string(), RowState::Passing),
        ]
    );
    assert_eq!(overview.namespaces, vec!["db", "web"]);
    assert_eq!(overview.leader.as_deref(), Some("kuberhealthy-0"));
    assert_eq!(overview.serving, "kuberhealthy-1");
    let failing = &overview.rows[0];
    assert_eq!(failing.errors, vec!["connection refused"]);
    assert_eq!(failing.consecutive_failures, 3);
    assert_eq!(failing.next_run, Some(ts("2026-03-01T06:13:00Z")));
    assert!(overview.rows[2].errors[0].contains("blocked by web/failing"));
}

#[test]
fn the_filter_narrows_by_namespace_and_name() {
    let w = world();
    let keys = |filter: Filter| -> Vec<String> {
        let overview = overview(&w.snapshot(), "r");
        let mut keys: Vec<String> = overview
            .rows
            .iter()
            .filter(|r| filter.admits(r))
            .map(Row::key)
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(Filter::from_query(Some("web"), None)).len(), 3);
    assert_eq!(
        keys(Filter::from_query(None, Some("PASS"))),
        vec!["web/passing"]
    );
    assert_eq!(
        keys(Filter::from_query(Some("db"), Some("ing"))),
        vec!["db/running"]
    );
    assert_eq!(
        keys(Filter::from_query(None, Some("db/st"))),
        vec!["db/stale"]
    );
}

#[test]
fn hidden_rows_stay_in_the_html_for_the_filter_to_widen() {
    let w = world();
    let filter = Filter::from_query(Some("db"), None);
    let overview = overview(&w.snapshot(), "r");
    let page = html::overview_page(&overview, &filter);
    assert_eq!(page.matches("<tr data-key=").count(), 7);
    assert_eq!(page.matches(" hidden>").count(), 3, "{page}");
    assert!(page.contains(r#"<option value="db" selected>db</option>"#));
    assert!(
        page.contains(r#"showing <b id="shown">4</b> of 7"#),
        "{page}"
    );
}

#[test]
fn a_check_page_shows_its_runs_spec_and_commands() {
    let mut w = world();
    let mut failing = result(false, &["connection refused"], "2026-03-01T06:08:00Z");
    failing["history"] = serde_json::json!([
        {"uuid": "run-1", "startedAt": "2026-03-01T06:07:57Z", "finishedAt": "2026-03-01T06:08:00Z",
         "ok": false, "errors": ["connection refused"], "logExcerpt": "dialing db:5432\n<refused>"},
        {"uuid": "run-0", "startedAt": "2026-03-01T06:02:57Z", "finishedAt": "2026-03-01T06:03:00Z",
         "ok": true}
    ]);
    w.states[1] = state("web", "failing", failing);
    let view = check_view(&w.snapshot(), "r", "web", "failing").unwrap();
    assert_eq!(view.row.state, RowState::Failing);
    assert_eq!(view.interval.as_deref(), Some("5m"));
    assert_eq!(view.timeout.as_deref(), Some("2m"));
    assert_eq!(view.images, vec!["example/checker:v1"]);
    assert_eq!(view.history.len(), 2);
    assert_eq!(view.pod.as_deref(), Some("pod-1"));
    assert_eq!(
        view.commands,
        vec![
            "kubectl -n web get khcheck failing -o yaml",
            "kubectl -n web get khstate failing -o yaml",
            "kubectl -n web get pods -l kuberhealthy-check-name=failing",
            "kubectl -n web logs pod-1",
            "kubectl -n web describe pod pod-1",
            "kubectl -n web get events --field-selector involvedObject.name=failing",
        ]
    );
    let page = html::check_page(&view);
    assert!(page.contains(r#"<tr data-run="run-1">"#), "{page}");
    assert!(page.contains(r#"<tr data-run="run-0">"#));
    assert!(page.contains("<pre>connection refused</pre>"));
    assert!(page.contains("kubectl -n web logs pod-1"));
    assert!(
        page.contains("<pre class=\"log\">dialing db:5432\n&lt;refused&gt;</pre>"),
        "{page}"
    );
    assert!(check_view(&w.snapshot(), "r", "web", "absent").is_none());
}

#[test]
fn names_and_errors_are_escaped() {
    let mut w = world();
    let evil = r#"<img src=x onerror="alert(1)">"#;
    w.states[1] = state(
        "web",
        "failing",
        result(
            false,
            &[evil, "</script><script>alert(2)</script>"],
            "2026-03-01T06:08:00Z",
        ),
    );
    let filter = Filter::from_query(None, Some(r#""><script>alert(3)</script>"#));
    let overview = overview(&w.snapshot(), "<b>replica</b>");
    let page = html::overview_page(&overview, &filter);
    let view = check_view(&w.snapshot(), "<b>replica</b>", "web", "failing").unwrap();
    for html in [
        page,
        html::check_page(&view),
        html::overview_live(&overview),
    ] {
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>replica"), "{html}");
        assert_eq!(
            html.matches("<script>").count(),
            html.matches("</script>").count()
        );
    }
    let view_html = html::check_page(&view);
    assert!(view_html.contains("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"));
}

#[test]
fn a_job_without_a_result_is_never_run_and_with_one_is_judged() {
    let mut w = world();
    let job: Arc<KuberhealthyJob> = Arc::new(
        serde_json::from_value(serde_json::json!({
            "apiVersion": "comcast.github.io/v1", "kind": "KuberhealthyJob",
            "metadata": {"name": "once", "namespace": "web", "creationTimestamp": CREATED},
            "spec": {"timeout": "1m", "podSpec": {"containers": [{"name": "m", "image": "j:1"}]}}
        }))
        .unwrap(),
    );
    w.jobs.push(job);
    let row = |w: &World| {
        overview(&w.snapshot(), "r")
            .rows
            .into_iter()
            .find(|r| r.name == "once")
            .unwrap()
    };
    assert_eq!(row(&w).state, RowState::NeverRun);
    assert_eq!(row(&w).kind, Kind::Job);
    let mut done = result(false, &["job failed"], "2026-03-01T06:00:00Z");
    done["khWorkload"] = "KHJob".into();
    w.states.push(state("web", "once", done));
    assert_eq!(row(&w).state, RowState::Failing);
    let view = check_view(&w.snapshot(), "r", "web", "once").unwrap();
    assert_eq!(view.commands[0], "kubectl -n web get khjob once -o yaml");
}

#[test]
fn the_bar_shows_each_of_the_last_30_days_oldest_first() {
    let day = |d: &str, observed: u32, failing: u32| DayCounts {
        day: d.parse().unwrap(),
        runs: 1,
        failures: u32::from(failing > 0),
        observed_seconds: observed,
        failing_seconds: failing,
    };
    let daily = vec![
        day("2026-03-01", 22_200, 0),
        day("2026-02-28", 86_400, 8_640),
        day("2026-01-30", 86_400, 86_400),
        day("2026-02-27", 0, 0),
    ];
    let bar = daily_bar(&daily, None, ts(NOW));
    assert_eq!(bar.len(), BAR_DAYS);
    assert_eq!(bar[29], Some(1.0), "today");
    assert_eq!(bar[28], Some(0.9), "yesterday");
    assert_eq!(bar[27], None, "a day with nothing observed");
    assert_eq!(
        bar[0], None,
        "2026-01-31 has no counters; 2026-01-30 is out of the bar"
    );
    assert_eq!(bar.iter().flatten().count(), 2);
}

#[test]
fn today_counts_the_time_since_the_last_result_as_uptime_does() {
    use crate::api::history::{LastResult, start_of};
    // One result so far, today: the daily counters hold nothing observed yet.
    let today = crate::api::history::day_of(ts(NOW));
    let daily = vec![DayCounts {
        day: today,
        runs: 1,
        failures: 0,
        observed_seconds: 0,
        failing_seconds: 0,
    }];
    let midnight = start_of(today);
    let since = |secs: i64| {
        midnight
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap()
    };
    let passed = LastResult {
        at: since(600),
        ok: true,
        stale_at: None,
    };
    assert_eq!(
        daily_bar(&daily, None, ts(NOW))[29],
        None,
        "nothing observed"
    );
    assert_eq!(daily_bar(&daily, Some(passed), ts(NOW))[29], Some(1.0));
    // A failing result: down since it came.
    let failed = LastResult {
        ok: false,
        ..passed
    };
    assert_eq!(daily_bar(&daily, Some(failed), ts(NOW))[29], Some(0.0));
    // A passing result that turned stale half-way to now: half up.
    let now = ts(NOW);
    let half = since(600 + now.duration_since(since(600)).as_secs() / 2);
    let stale = LastResult {
        stale_at: Some(half),
        ..passed
    };
    let share = daily_bar(&daily, Some(stale), now)[29].unwrap();
    assert!((share - 0.5).abs() < 0.001, "{share}");
}

#[test]
fn served_documents_are_found_by_check_and_badge() {
    use serve::{Badge, Doc, render};
    let w = world();
    let snapshot = w.snapshot();
    assert_eq!(Badge::from_file("uptime-7d.svg"), Some(Badge::Uptime(1)));
    assert_eq!(Badge::from_file("uptime-1y.svg"), None);
    let badge = |name: &str, badge| Doc::Badge {
        namespace: "web".into(),
        name: name.into(),
        badge,
    };
    let svg = render(&badge("failing", Badge::Status), &snapshot, "r").unwrap();
    assert!(
        String::from_utf8(svg.body)
            .unwrap()
            .contains("failing: failing")
    );
    let svg = render(&badge("failing", Badge::Uptime(0)), &snapshot, "r").unwrap();
    assert!(
        String::from_utf8(svg.body)
            .unwrap()
            .contains("uptime 24h: no data")
    );
    assert!(render(&badge("absent", Badge::Status), &snapshot, "r").is_none());
    let live = Doc::Overview {
        filter: Filter::default(),
        live: true,
    };
    let rendered = render(&live, &snapshot, "r").unwrap();
    assert!(!rendered.ok, "failing checks make the overview not OK");
    assert!(rendered.valid_until.is_some_and(|t| t > ts(NOW)));
}

#[test]
fn the_overview_html_is_unchanged() {
    // A golden of the whole overview (its inline stylesheet and script left out): the page
    // is written into one buffer by hand-placed tags around templates, so this keeps it
    // well formed and as it was.
    let w = world();
    let overview = overview(&w.snapshot(), "kuberhealthy-1");
    let filter = Filter::from_query(Some("db"), None);
    let page = html::overview_page(&overview, &filter)
        .replace(include_str!("assets/page.css"), "/* assets/page.css */")
        .replace(include_str!("assets/page.js"), "/* assets/page.js */");
    insta::assert_snapshot!("overview_page", page);
    insta::assert_snapshot!("overview_live", html::overview_live(&overview));
}

#[test]
fn days_that_read_the_same_are_one_run_of_the_bar() {
    let mut bar = vec![None; BAR_DAYS];
    bar[26] = Some(1.0);
    bar[27] = Some(1.0);
    bar[28] = Some(0.95);
    bar[29] = Some(0.5);
    let runs = html::day_runs(&bar);
    let seen: Vec<_> = runs
        .iter()
        .map(|r| (r.class, r.what.as_str(), r.days, r.last_ago))
        .collect();
    assert_eq!(
        seen,
        [
            ("none", "no data", 26, 4),
            ("up", "100%", 2, 2),
            ("part", "95.00%", 1, 1),
            ("down", "50.00%", 1, 0),
        ]
    );
    assert_eq!(runs.iter().map(|r| r.days).sum::<usize>(), BAR_DAYS);
    // Different readings of one colour stay apart: each keeps its own title.
    let parts = html::day_runs(&[Some(0.95), Some(0.96)]);
    assert_eq!(parts.len(), 2);
}

#[test]
fn a_run_of_days_is_one_element_as_wide_as_its_days() {
    let mut bar = vec![None; BAR_DAYS];
    bar[29] = Some(1.0);
    let markup = html::day_bar(&bar).into_string();
    assert_eq!(
        markup,
        "<span class=\"bar\"><i class=\"none\" style=\"--days:29\" title=\"29d ago – 1d ago: no data\"></i>\
         <i class=\"up\" title=\"today: 100%\"></i></span>"
    );
}
