//! A failover mid-run adopts the run: a HealthCheck's run in flight (its checker works for 5 s)
//! when its leader is killed (SIGKILL), then when its leader is stopped (SIGTERM), is finished
//! by its own report and supervised by the next leader: same UUID, same pod, no second run in
//! its slot. Over the whole test every run has exactly one pod and starts stay one interval
//! apart, from the status and from a watch of every pod.

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::support::checks::Term;
use crate::support::record::{Recorder, listed_pods_per_run};
use crate::support::{Scenario, ScenarioOptions, TIMEOUT, figures, ms, secs};
use crate::v3::{healthcheck, report_v3, wait_for_status};

const INTERVAL: f64 = 12.0;

fn checker() -> String {
    format!("sleep 5; {}", report_v3(true, &[]))
}

#[tokio::test]
async fn a_run_in_flight_through_a_failover_is_adopted_with_one_pod_per_slot() {
    let mut options = ScenarioOptions::new("v3-failover");
    options.config_file = Some("maxCompletedPodCount: 1000\nmaxErrorPodCount: 1000\n".into());
    let mut scenario = Scenario::start(options)
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();
    scenario
        .apply(&healthcheck("slow", "12s", "30s", &checker()))
        .await
        .unwrap();

    let mut adopted = Vec::new();
    for (signal, name) in [(libc::SIGKILL, "SIGKILL"), (libc::SIGTERM, "SIGTERM")] {
        let (leader, transitions) = scenario.wait_for_leader(None).await.unwrap();
        let from = scenario.name_of(leader).to_string();
        let term = Term {
            holder: from.clone(),
            transitions,
        };
        // A run this term started, whose pod exists and has not reported yet.
        let run = recorder
            .wait_for(
                &format!("a run started by {from} ({transitions}) with its pod, in flight"),
                TIMEOUT,
                |r| {
                    r.runs_of("slow").into_iter().find(|run| {
                        run.term.as_ref() == Some(&term)
                            && run.finished_at.is_none()
                            && r.pods_of("slow").iter().any(|p| p.run_id == run.uuid)
                    })
                },
            )
            .await
            .unwrap();
        let signalled_at = Timestamp::now();
        scenario.stop(leader, signal).await.unwrap();
        let (next, _) = scenario.wait_for_leader(Some(&from)).await.unwrap();
        let new_leader_at = Timestamp::now();
        let finished = recorder
            .wait_for(&format!("run {} to finish", run.uuid), TIMEOUT, |r| {
                r.runs
                    .get(&run.uuid)
                    .filter(|seen| seen.finished_at.is_some())
                    .cloned()
            })
            .await
            .unwrap();
        assert_eq!(
            finished.ok,
            Some(true),
            "run {} started by {from} was recorded OK after the {name}: {finished:?}",
            run.uuid
        );
        assert!(
            secs(signalled_at, finished.finished_at.unwrap()) > 0.0,
            "run {} was in flight across the {name}",
            run.uuid
        );
        adopted.push(json!({
            "signal": name,
            "run": run.uuid,
            "from": from,
            "to": scenario.name_of(next),
            "handover_s": ms(secs(signalled_at, new_leader_at)),
            "run_finished_after_signal_s": ms(secs(signalled_at, finished.finished_at.unwrap())),
        }));
        scenario.spawn(leader).unwrap();
        scenario.wait_ready(leader).await.unwrap();
    }

    // Stop scheduling and let the last run finish.
    scenario
        .apply(&healthcheck("slow", "1h", "30s", &checker()))
        .await
        .unwrap();
    wait_for_status(&scenario, "slow", "no run in flight", |s| !s.in_flight())
        .await
        .unwrap();
    let snapshot = recorder
        .wait_for("every recorded run to have finished", TIMEOUT, |r| {
            r.runs_of("slow")
                .iter()
                .all(|run| run.finished_at.is_some() && run.started_at.is_some())
                .then(|| r.clone())
        })
        .await
        .unwrap();
    let runs = snapshot.finished_runs_of("slow");
    assert!(runs.len() >= 2, "{runs:?}");

    // Exactly one pod per run, on the API server at the end and in the watch.
    let listed = scenario.checker_pods().await.unwrap();
    let listed_per_run = listed_pods_per_run(&listed, "slow");
    let watched_per_run = snapshot.pods_per_run("slow");
    for run in &runs {
        for (source, per_run) in [("listed", &listed_per_run), ("watched", &watched_per_run)] {
            let pods = per_run.get(&run.uuid).cloned().unwrap_or_default();
            assert_eq!(pods.len(), 1, "run {} has {pods:?} ({source})", run.uuid);
            assert_eq!(Some(&pods[0]), run.pod.as_ref(), "the run's own pod");
        }
    }
    for run_id in watched_per_run.keys() {
        assert!(
            runs.iter().any(|r| &r.uuid == run_id),
            "pod of unknown run {run_id}"
        );
    }
    // One run per slot: no overlap, and never sooner than one interval after the last start.
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let gap = secs(a.started_at.unwrap(), b.started_at.unwrap());
        assert!(
            gap >= INTERVAL,
            "runs {} and {} started {gap:.3}s apart",
            a.uuid,
            b.uuid
        );
        assert!(
            secs(a.finished_at.unwrap(), b.started_at.unwrap()) >= 0.0,
            "run {} started before run {} finished",
            b.uuid,
            a.uuid
        );
    }
    // No report was refused (one cut by a dying replica is retried by curl).
    let refused: Vec<_> = scenario
        .proxy
        .exchanges()
        .into_iter()
        .filter(|e| e.run_uuid.is_some() && e.status.is_some_and(|s| s != 200))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");

    figures::publish(
        "v3-failover",
        &json!({
            "interval_s": INTERVAL,
            "runs": runs.len(),
            "adopted": adopted,
            "measured_at": Timestamp::now().to_string(),
        }),
    );
}
