use crate::controller::status::NextTurn;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::controller::status::{StatusPage, WorkloadDetails};

fn details(namespace: &str, ok: bool, errors: &[&str], run_duration: &str) -> WorkloadDetails {
    WorkloadDetails {
        ok,
        errors: errors.iter().map(|e| e.to_string()).collect(),
        run_duration: run_duration.to_string(),
        namespace: namespace.to_string(),
        ..Default::default()
    }
}

fn page(checks: &[(&str, WorkloadDetails)]) -> StatusPage {
    let check_details: BTreeMap<String, WorkloadDetails> = checks
        .iter()
        .map(|(k, d)| (k.to_string(), d.clone()))
        .collect();
    StatusPage {
        ok: check_details.values().all(|d| d.ok),
        errors: vec![],
        check_details,
        job_details: BTreeMap::new(),
        current_master: "kuberhealthy-0".into(),
        metadata: BTreeMap::new(),
    }
}

/// Metrics over a page the test can change, and a leadership flag it can flip.
struct Fixture {
    metrics: Metrics,
    page: Arc<Mutex<StatusPage>>,
    leader: Arc<AtomicBool>,
}

fn fixture(prom: PromMetricsConfig, initial: StatusPage) -> Fixture {
    let page = Arc::new(Mutex::new(initial));
    let leader = Arc::new(AtomicBool::new(false));
    let (p, l) = (page.clone(), leader.clone());
    let metrics = Metrics::new(
        MetricsSettings {
            prom,
            otlp: None,
            instance: "kuberhealthy-0".into(),
        },
        MetricsSources {
            page: Arc::new(move || (p.lock().unwrap().clone(), NextTurn::default())),
            v3_page: Arc::new(|| {
                (
                    crate::controller::status::v3::StatusPage::default(),
                    NextTurn::default(),
                )
            }),
            is_leader: Arc::new(move || l.load(Ordering::SeqCst)),
            changes: None,
        },
    )
    .unwrap();
    Fixture {
        metrics,
        page,
        leader,
    }
}

fn lines_of<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

#[test]
fn a_deleted_check_loses_its_series_at_the_next_scrape() {
    let f = fixture(
        PromMetricsConfig::default(),
        page(&[
            ("ns/a", details("ns", true, &[], "1s")),
            ("ns/b", details("ns", true, &[], "2s")),
        ]),
    );
    let before = f.metrics.exposition().unwrap();
    assert_eq!(lines_of(&before, CHECK).len(), 2, "{before}");
    assert_eq!(lines_of(&before, CHECK_DURATION).len(), 2, "{before}");

    f.page.lock().unwrap().check_details.remove("ns/b");
    let after = f.metrics.exposition().unwrap();
    assert_eq!(
        lines_of(&after, CHECK),
        [r#"kuberhealthy_check{check="ns/a",error="",namespace="ns",status="1"} 1"#]
    );
    assert_eq!(
        lines_of(&after, CHECK_DURATION),
        [r#"kuberhealthy_check_duration_seconds{check="ns/a",namespace="ns"} 1"#]
    );
}

#[test]
fn a_check_that_starts_failing_changes_its_series_rather_than_adding_one() {
    let f = fixture(
        PromMetricsConfig::default(),
        page(&[("ns/a", details("ns", true, &[], "1s"))]),
    );
    f.metrics.exposition().unwrap();
    *f.page.lock().unwrap() = page(&[("ns/a", details("ns", false, &["down"], "1s"))]);
    let text = f.metrics.exposition().unwrap();
    assert_eq!(
        lines_of(&text, CHECK),
        [r#"kuberhealthy_check{check="ns/a",error="down",namespace="ns",status="0"} 0"#]
    );
    assert_eq!(
        lines_of(&text, CLUSTER_STATE),
        ["kuberhealthy_cluster_state 0"]
    );
}

#[test]
fn suppressing_the_error_label_removes_it_from_every_series() {
    let f = fixture(
        PromMetricsConfig {
            suppress_error_label: true,
            error_label_max_length: 0,
        },
        page(&[("ns/a", details("ns", false, &["boom"], "1s"))]),
    );
    let text = f.metrics.exposition().unwrap();
    assert_eq!(
        lines_of(&text, CHECK),
        [r#"kuberhealthy_check{check="ns/a",namespace="ns",status="0"} 0"#]
    );
    assert!(!text.contains("boom"), "{text}");
}

#[test]
fn the_leader_gauge_follows_leadership() {
    let f = fixture(PromMetricsConfig::default(), page(&[]));
    let text = f.metrics.exposition().unwrap();
    assert_eq!(
        lines_of(&text, LEADER),
        ["kuberhealthy_controller_leader 0"]
    );
    f.leader.store(true, Ordering::SeqCst);
    let text = f.metrics.exposition().unwrap();
    assert_eq!(
        lines_of(&text, LEADER),
        ["kuberhealthy_controller_leader 1"]
    );
}

#[test]
fn no_scope_labels_target_info_or_suffixes() {
    let f = fixture(
        PromMetricsConfig::default(),
        page(&[("ns/a", details("ns", true, &[], "1s"))]),
    );
    f.metrics.controller().run_started("ns", "a");
    f.metrics
        .controller()
        .report_handled(200, Duration::from_millis(20));
    let text = f.metrics.exposition().unwrap();
    assert!(!text.contains("otel_scope"), "{text}");
    assert!(!text.contains("target_info"), "{text}");
    assert!(!text.contains("_total_total"), "{text}");
    assert!(!text.contains("_seconds_seconds"), "{text}");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    assert_eq!(
        names,
        [
            "kuberhealthy_check gauge",
            "kuberhealthy_check_duration_seconds gauge",
            "kuberhealthy_cluster_state gauge",
            "kuberhealthy_controller_leader gauge",
            "kuberhealthy_report_duration_seconds histogram",
            "kuberhealthy_running gauge",
            "kuberhealthy_runs_started_total counter",
        ]
    );
}

#[test]
fn controller_counters_and_histograms() {
    let f = fixture(PromMetricsConfig::default(), page(&[]));
    let c = f.metrics.controller();
    c.run_started("team-a", "dns");
    c.run_started("team-a", "dns");
    c.run_finished("team-a", "dns", RunOutcome::Succeeded);
    c.run_finished("team-a", "dns", RunOutcome::TimedOut);
    c.run_finished("team-b", "pvc", RunOutcome::Failed);
    c.report_handled(200, Duration::from_millis(30));
    c.report_handled(409, Duration::from_millis(3));
    c.run_started_late(Duration::from_secs(7));
    let text = f.metrics.exposition().unwrap();

    let labels = r#"{check="team-a/dns",namespace="team-a"}"#;
    assert_eq!(
        lines_of(&text, RUNS_STARTED),
        [format!("{RUNS_STARTED}{labels} 2")]
    );
    assert_eq!(
        lines_of(&text, RUNS_SUCCEEDED),
        [format!("{RUNS_SUCCEEDED}{labels} 1")]
    );
    assert_eq!(
        lines_of(&text, RUNS_TIMED_OUT),
        [format!("{RUNS_TIMED_OUT}{labels} 1")]
    );
    assert_eq!(
        lines_of(&text, RUNS_FAILED),
        [format!(
            r#"{RUNS_FAILED}{{check="team-b/pvc",namespace="team-b"}} 1"#
        )]
    );
    assert!(
        text.contains(r#"kuberhealthy_report_duration_seconds_bucket{code="200",le="0.05"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"kuberhealthy_report_duration_seconds_bucket{code="200",le="0.025"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"kuberhealthy_report_duration_seconds_count{code="409"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"kuberhealthy_run_start_lateness_seconds_bucket{le="10"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"kuberhealthy_run_start_lateness_seconds_bucket{le="5"} 0"#),
        "{text}"
    );
    assert!(
        text.contains("kuberhealthy_run_start_lateness_seconds_sum 7"),
        "{text}"
    );
}

#[tokio::test]
async fn leading_means_holding_a_term_that_is_still_valid() {
    use tokio::sync::watch;
    use tokio::time::Instant;

    use crate::api::LeaderTerm;
    use crate::controller::leader::Term;

    let id = LeaderTerm {
        holder: "kuberhealthy-0".into(),
        transitions: 3,
    };
    let (tx, leadership) = watch::channel(None);
    let is_leader = from_leadership(leadership);
    assert!(!is_leader());
    tx.send_replace(Some(Term::new(
        id.clone(),
        Instant::now() + Duration::from_secs(10),
    )));
    assert!(is_leader());
    // A term not renewed in time no longer counts, even before the elector replaces it.
    tx.send_replace(Some(Term::new(id, Instant::now())));
    assert!(!is_leader());
    tx.send_replace(None);
    assert!(!is_leader());
}

#[test]
fn every_check_has_its_series_beyond_the_sdks_default_cardinality_limit() {
    // OpenTelemetry's SDK folds series past 2,000 per instrument into one overflow series by
    // default; a check's gauge must never disappear into it.
    let n = 2_500;
    let names: Vec<String> = (0..n).map(|i| format!("ns/c{i}")).collect();
    let checks: Vec<(&str, WorkloadDetails)> = names
        .iter()
        .map(|k| (k.as_str(), details("ns", true, &[], "1s")))
        .collect();
    let f = fixture(PromMetricsConfig::default(), page(&checks));
    let text = f.metrics.exposition().unwrap();
    assert!(!text.contains("otel_metric_overflow"), "overflow series");
    assert_eq!(lines_of(&text, CHECK).len(), n);
    assert_eq!(lines_of(&text, CHECK_DURATION).len(), n);
}
