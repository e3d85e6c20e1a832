//! A khstate applied before its check (a restore from backup, a GitOps tool that applies
//! states first) keeps its timer: the leader does not delete it as an orphan in the moment
//! before the check arrives, the check then runs at `LastRun + runInterval` and not at once,
//! and every replica's page shows that next run.

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::support::checks::{self, REPORT_OK};
use crate::support::record::Recorder;
use crate::support::{Scenario, ScenarioOptions, TIMEOUT, plus, secs};

/// The restored check's interval, in seconds: long enough that "ran at once" and "ran on
/// time" are far apart, short enough for the suite.
const INTERVAL: f64 = 20.0;
/// How far in the past the restored state's `LastRun` is.
const LAST_RUN_AGO: f64 = 2.0;

#[tokio::test]
async fn a_state_applied_before_its_check_keeps_its_timer() {
    let scenario = Scenario::start(ScenarioOptions::new("orphans"))
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();
    let (leader, _) = scenario.wait_for_leader(None).await.unwrap();

    // The state as v2 wrote it, restored alone.
    let last_run = plus(Timestamp::now(), -LAST_RUN_AGO);
    scenario
        .apply(&json!({
            "apiVersion": "comcast.github.io/v1",
            "kind": "KuberhealthyState",
            "metadata": {"name": "restored"},
            "spec": {
                "OK": true, "Errors": [], "RunDuration": "3s", "Namespace": ns, "Node": "node-1",
                "LastRun": last_run.to_string(), "AuthoritativePod": "kuberhealthy-v2-0",
                "uuid": "2f1e3c5a-0000-4000-8000-000000000001"
            }
        }))
        .await
        .unwrap();

    // Applied after the state, a marker check runs to the end: the leader has planned with
    // the lone state in its cache since, and must have kept it.
    scenario
        .apply(&checks::check("marker", "1h", "30s", REPORT_OK))
        .await
        .unwrap();
    scenario
        .wait_for_state("marker", "its first result", |s| {
            s.run_finished_at.is_some()
        })
        .await
        .unwrap();
    assert!(
        scenario.khstate("restored").await.unwrap().is_some(),
        "the leader deleted a state whose check had not arrived yet"
    );

    // The check arrives: it is due at LastRun + runInterval.
    scenario
        .apply(&checks::check("restored", "20s", "30s", REPORT_OK))
        .await
        .unwrap();
    let due = plus(last_run, INTERVAL);
    let page = kuberhealthy_e2e::wait_until(
        "the page to show the restored check's next run",
        TIMEOUT,
        || async {
            let page = scenario.status_page(leader).await?;
            Ok(page["CheckDetails"][format!("{ns}/restored")]["nextRunAt"]
                .as_str()
                .map(str::to_string))
        },
    )
    .await
    .unwrap();
    let shown: Timestamp = page.parse().unwrap();
    assert_eq!(shown, due, "the page shows LastRun + runInterval");
    // Followers show it once their watches caught up; each agrees with the leader.
    for i in 0..scenario.replica_count() {
        let shown = kuberhealthy_e2e::wait_until(
            &format!("replica {i}'s page to show the restored check"),
            TIMEOUT,
            || async {
                let page = scenario.status_page(i).await?;
                let next = page["CheckDetails"][format!("{ns}/restored")]["nextRunAt"].clone();
                Ok((!next.is_null()).then_some(next))
            },
        )
        .await
        .unwrap();
        assert_eq!(
            shown,
            json!(due.to_string()),
            "replica {i} agrees on the next run"
        );
    }

    let timeout = TIMEOUT + std::time::Duration::from_secs_f64(INTERVAL);
    let first = recorder
        .wait_for("the restored check's first run", timeout, |r| {
            r.runs_of("restored").into_iter().find(|run| {
                run.started_at.is_some() && run.uuid != "2f1e3c5a-0000-4000-8000-000000000001"
            })
        })
        .await
        .unwrap();
    let started = first.started_at.unwrap();
    println!(
        "restored check: LastRun {last_run}, due {due}, first start {started} ({:+.3} s from due)",
        secs(due, started)
    );
    assert!(
        started >= due,
        "the restored check ran at {started}, before LastRun + runInterval = {due}"
    );
}
