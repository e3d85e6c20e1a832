//! The blog post's scenario: a check whose command is a shell script POSTing `{"OK": true}`
//! to `$KH_REPORTING_URL` runs on its interval and shows OK on the status page of every
//! replica; a variant reporting two errors shows both.

use serde_json::{Value, json};

use crate::support::checks::{self, REPORT_OK};
use crate::support::record::Recorder;
use crate::support::{Scenario, ScenarioOptions, TIMEOUT, figures, ms, secs};

/// The interval of both checks.
const INTERVAL: f64 = 3.0;
/// How late a start may be after its due time (last start + interval), or after the
/// previous run finished if that was later, on a quiet cluster.
const LATE_TOLERANCE: f64 = 2.0;
/// Runs of the OK check to observe.
const RUNS: usize = 4;

const ERRORS: [&str; 2] = [
    "the front page answered 503",
    "the login page took 12s to load",
];

#[tokio::test]
async fn blog_post_check_runs_on_its_interval_and_shows_ok_then_errors() {
    let scenario = Scenario::start(ScenarioOptions::new("blog"))
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();

    scenario
        .apply(&checks::check("blog-ok", "3s", "30s", REPORT_OK))
        .await
        .unwrap();
    scenario
        .apply(&checks::check(
            "blog-errors",
            "3s",
            "30s",
            &checks::report_errors(&ERRORS),
        ))
        .await
        .unwrap();

    let runs = recorder
        .wait_for(
            &format!("{RUNS} finished runs of blog-ok and 2 of blog-errors"),
            TIMEOUT,
            |r| {
                let ok = r.finished_runs_of("blog-ok");
                (ok.len() >= RUNS && r.finished_runs_of("blog-errors").len() >= 2).then_some(ok)
            },
        )
        .await
        .unwrap();

    // On its interval: each start one interval after the previous one, never earlier.
    let mut gaps = Vec::new();
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let gap = secs(a.started_at.unwrap(), b.started_at.unwrap());
        let ready = INTERVAL.max(secs(a.started_at.unwrap(), a.finished_at.unwrap()));
        assert!(
            gap >= INTERVAL,
            "run {} started {gap:.3}s after run {}: earlier than the {INTERVAL}s interval",
            b.uuid,
            a.uuid
        );
        assert!(
            gap - ready <= LATE_TOLERANCE,
            "run {} started {:.3}s after it was due (tolerance {LATE_TOLERANCE}s)",
            b.uuid,
            gap - ready
        );
        gaps.push(ms(gap));
    }
    for run in &runs {
        assert_eq!(
            run.ok,
            Some(true),
            "run {} of blog-ok failed: {:?}",
            run.uuid,
            run.errors
        );
    }

    // The checker really ran as a pod with the injected environment, and reported.
    let snapshot = recorder.snapshot();
    let pod = snapshot
        .pods_of("blog-ok")
        .into_iter()
        .find(|p| p.run_id == runs[0].uuid)
        .expect("the pod of the first run");
    assert_eq!(pod.env["KH_RUN_UUID"], runs[0].uuid);
    assert_eq!(
        pod.env["KH_REPORTING_URL"],
        scenario.proxy.url("/externalCheckStatus")
    );
    assert!(
        pod.env.contains_key("KH_CHECK_RUN_DEADLINE"),
        "{:?}",
        pod.env
    );
    let reports = scenario.proxy.exchanges();
    let report = reports
        .iter()
        .find(|e| e.run_uuid.as_deref() == Some(runs[0].uuid.as_str()))
        .expect("the first run's report went through the reporting URL");
    assert_eq!(report.status, Some(200), "{report:?}");
    assert!(
        report
            .request_line
            .starts_with("POST /externalCheckStatus "),
        "{report:?}"
    );

    // Every replica's status page shows both: the OK one and the two errors.
    let mut pages = Vec::new();
    for i in 0..scenario.replica_count() {
        let page = kuberhealthy_e2e::wait_until(
            "the status page to show both checks' results",
            TIMEOUT,
            || async {
                let page = scenario.status_page(i).await?;
                let ok = &page["CheckDetails"][format!("{ns}/blog-ok")];
                let failing = &page["CheckDetails"][format!("{ns}/blog-errors")];
                Ok((ok["OK"] == json!(true) && failing["Errors"] == json!(ERRORS)).then_some(page))
            },
        )
        .await
        .unwrap();
        let ok = &page["CheckDetails"][format!("{ns}/blog-ok")];
        assert_eq!(ok["Errors"], json!([]), "{ok}");
        assert!(
            ok["RunDuration"].as_str().is_some_and(|d| d.ends_with('s')),
            "{ok}"
        );
        assert!(ok["LastRun"].is_string() && ok["uuid"].is_string(), "{ok}");
        let failing = &page["CheckDetails"][format!("{ns}/blog-errors")];
        assert_eq!(failing["OK"], json!(false), "{failing}");
        assert_eq!(
            page["OK"],
            json!(false),
            "one check fails, so the page does"
        );
        let top: Vec<&str> = page["Errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(top, ERRORS, "the page's Errors are the failing check's");
        pages
            .push(json!({ "replica": scenario.name_of(i), "blog-ok": ok, "blog-errors": failing }));
    }

    figures::publish(
        "blog",
        &json!({
            "interval_s": INTERVAL,
            "late_tolerance_s": LATE_TOLERANCE,
            "blog_ok_runs": runs.len(),
            "blog_ok_start_gaps_s": gaps,
            "status_pages": pages,
        }),
    );
}
