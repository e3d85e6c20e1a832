//! Retention: after 50 runs of one check (about a quarter of them failing with a pod that
//! exits 1), no more pods remain than `maxCompletedPodCount` succeeded and
//! `maxErrorPodCount` failed ones, and those kept are the newest.

use serde_json::json;

use crate::support::checks::{self, REPORT_OK};
use crate::support::record::{PodSeen, Recorder};
use crate::support::{Scenario, ScenarioOptions, TIMEOUT, figures};

const RUNS: usize = 50;
const MAX_COMPLETED: usize = 3;
const MAX_ERROR: usize = 2;
/// While runs go on, a check may also have the pod of its run in flight and one pod that
/// has just finished and is not reaped yet.
const TRANSIENT_EXTRA: usize = 2;

/// Runs whose UUID starts with 0-3 report a planned failure and exit 1 (a Failed pod);
/// the others report OK and exit 0 (a Succeeded pod).
fn churn_script() -> String {
    let fail = checks::report_errors(&["planned failure"]);
    format!("case \"$KH_RUN_UUID\" in [0-3]*) {fail}; exit 1;; *) {REPORT_OK};; esac")
}

fn newest_kept(all: &[PodSeen], phase: &str, keep: usize) -> Result<usize, String> {
    let of_phase: Vec<&PodSeen> = all.iter().filter(|p| p.phase == phase).collect();
    let kept: Vec<&&PodSeen> = of_phase.iter().filter(|p| !p.deleted).collect();
    let gone: Vec<&&PodSeen> = of_phase.iter().filter(|p| p.deleted).collect();
    let expected = of_phase.len().min(keep);
    if kept.len() != expected {
        return Err(format!(
            "{} {phase} pods remain, expected {expected} (of {} in all)",
            kept.len(),
            of_phase.len()
        ));
    }
    // Finish times have whole seconds: a kept pod is never older than a reaped one.
    for k in &kept {
        if let Some(newer) = gone.iter().find(|g| g.finished_at > k.finished_at) {
            return Err(format!(
                "{phase} pod {} (finished {:?}) was kept while the newer {} (finished {:?}) was reaped",
                k.name, k.finished_at, newer.name, newer.finished_at
            ));
        }
    }
    Ok(kept.len())
}

#[tokio::test]
async fn after_50_runs_no_more_pods_remain_than_retention_allows() {
    let mut options = ScenarioOptions::new("retention");
    options.config_file = Some(format!(
        "maxCompletedPodCount: {MAX_COMPLETED}\nmaxErrorPodCount: {MAX_ERROR}\n"
    ));
    let scenario = Scenario::start(options)
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();
    let script = churn_script();
    scenario
        .apply(&checks::check("churn", "1s", "30s", &script))
        .await
        .unwrap();
    let deadline = TIMEOUT * 3;
    recorder
        .wait_for(&format!("{RUNS} finished runs of churn"), deadline, |r| {
            (r.finished_runs_of("churn").len() >= RUNS).then_some(())
        })
        .await
        .unwrap();
    // Stop scheduling and let the last run finish and be reaped.
    scenario
        .apply(&checks::check("churn", "1h", "30s", &script))
        .await
        .unwrap();
    scenario
        .wait_for_state("churn", "no run in flight", |s| !s.in_flight())
        .await
        .unwrap();
    let outcome = recorder
        .wait_for(
            "the pods of churn to be within the retention settings",
            TIMEOUT,
            |r| {
                let all = r.pods_of("churn");
                let finished = all
                    .iter()
                    .all(|p| p.deleted || p.phase == "Succeeded" || p.phase == "Failed");
                let succeeded = newest_kept(&all, "Succeeded", MAX_COMPLETED).ok()?;
                let failed = newest_kept(&all, "Failed", MAX_ERROR).ok()?;
                finished.then(|| (succeeded, failed, r.clone()))
            },
        )
        .await;
    let (succeeded, failed, snapshot) = outcome.unwrap_or_else(|e| {
        let all = recorder.snapshot().pods_of("churn");
        panic!(
            "{e:#}: succeeded {:?}; failed {:?}",
            newest_kept(&all, "Succeeded", MAX_COMPLETED),
            newest_kept(&all, "Failed", MAX_ERROR)
        )
    });
    let runs = snapshot.runs_of("churn");
    let all = snapshot.pods_of("churn");
    assert!(runs.len() >= RUNS, "{} runs", runs.len());
    assert_eq!(all.len(), runs.len(), "one pod per run");
    let failed_runs = runs.iter().filter(|r| r.ok == Some(false)).count();
    assert!(
        failed_runs >= MAX_ERROR && runs.len() - failed_runs >= MAX_COMPLETED,
        "both kinds of pods must exceed their limits: {failed_runs} failed of {}",
        runs.len()
    );
    let listed = scenario.checker_pods().await.unwrap();
    assert_eq!(
        listed.len(),
        succeeded + failed,
        "the API server holds exactly the kept pods"
    );
    let max_alive = snapshot.max_alive.get("churn").copied().unwrap_or(0);
    assert!(
        max_alive <= MAX_COMPLETED + MAX_ERROR + TRANSIENT_EXTRA,
        "{max_alive} pods of churn existed at once during the runs (bound {})",
        MAX_COMPLETED + MAX_ERROR + TRANSIENT_EXTRA
    );

    figures::publish(
        "retention",
        &json!({
            "maxCompletedPodCount": MAX_COMPLETED,
            "maxErrorPodCount": MAX_ERROR,
            "runs": runs.len(),
            "failed_runs": failed_runs,
            "pods_created": all.len(),
            "pods_remaining": { "succeeded": succeeded, "failed": failed, "total": listed.len() },
            "max_pods_at_once_during_runs": max_alive,
            "bound_at_once": MAX_COMPLETED + MAX_ERROR + TRANSIENT_EXTRA,
        }),
    );
}
