//! A passing and a failing HealthCheck, written as v3 documents them, run in pods that carry
//! v3's labels, annotations and environment, report to `/check` (as v3's clients do, with
//! `kh-run-uuid`) and are recorded in `.status` with v3's fields; both show on v2's page
//! (keyed `namespace/name`, `"kind": "HealthCheck"`), on v3's page (`/v3/json`), in v2's
//! gauges and in v3's metric families, on every replica.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kuberhealthy_e2e::metrics::{self, Sample};
use kuberhealthy_e2e::wait_until;
use serde_json::json;

use crate::support::{Scenario, ScenarioOptions, TIMEOUT, figures};
use crate::v3::{healthcheck, report_v3, wait_for_status};

const FAILURE: &str = "deployment rollout did not finish within 5m0s";

fn sample<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
    })
}

#[tokio::test]
async fn passing_and_failing_healthchecks_report_to_check_into_status_pages_and_metrics() {
    let mut options = ScenarioOptions::new("v3-reports");
    options.replicas = 2;
    let scenario = Scenario::start(options)
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    scenario
        .apply(&healthcheck("passing", "1h", "30s", &report_v3(true, &[])))
        .await
        .unwrap();
    scenario
        .apply(&healthcheck(
            "failing",
            "1h",
            "30s",
            &report_v3(false, &[FAILURE]),
        ))
        .await
        .unwrap();

    let passing = wait_for_status(&scenario, "passing", "its run passed", |s| {
        s.success_count == 1 && !s.in_flight()
    })
    .await
    .unwrap();
    let failing = wait_for_status(&scenario, "failing", "its run failed", |s| {
        s.failure_count == 1 && !s.in_flight()
    })
    .await
    .unwrap();

    // `.status`, as v3 writes it.
    assert!(passing.ok && passing.errors.is_empty(), "{passing:?}");
    assert_eq!(
        (passing.failure_count, passing.consecutive_failures),
        (0, 0)
    );
    assert!(passing.last_ok_unix >= passing.last_run_unix && passing.last_run_unix > 0);
    assert!(passing.run_duration > 0, "nanoseconds from start to report");
    assert_eq!(passing.current_uuid, "", "the run is over");
    assert!(!failing.ok);
    assert_eq!(failing.errors, [FAILURE]);
    assert_eq!(
        (failing.success_count, failing.consecutive_failures),
        (0, 1)
    );
    assert!(failing.last_failure_unix >= failing.last_run_unix);

    // The pods: v3's labels and annotations, the environment with v3's /check URL.
    let pods: Api<Pod> = Api::namespaced(scenario.client(), &ns);
    for (name, status) in [("passing", &passing), ("failing", &failing)] {
        let run = status.run_uuid.clone().expect("the run's UUID is kept");
        let listed = pods
            .list(&ListParams::default().labels(&format!("healthcheck={name}")))
            .await
            .unwrap()
            .items;
        assert_eq!(listed.len(), 1, "one run, one pod: {listed:?}");
        let pod = &listed[0];
        assert_eq!(Some(pod.name_any()), status.run_pod);
        let labels = pod.labels();
        assert_eq!(labels["kh-run-uuid"], run);
        assert_eq!(labels["healthcheck"], name);
        let annotations = pod.annotations();
        assert_eq!(annotations["createdBy"], "kuberhealthy");
        assert_eq!(annotations["kh-run-uuid"], run);
        assert_eq!(annotations["kuberhealthyCheckName"], name);
        let started = Timestamp::from_second(status.last_run_unix).unwrap();
        assert_eq!(
            annotations["createdTime"],
            format!("{} +0000 UTC", started.strftime("%Y-%m-%d %H:%M:%S")),
            "Go's time.Unix(lastRunUnix).String()"
        );
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("HealthCheck", name)
        );
        let env: Vec<(String, String)> = pod.spec.as_ref().unwrap().containers[0]
            .env
            .iter()
            .flatten()
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect();
        let url = &env.iter().find(|(k, _)| k == "KH_REPORTING_URL").unwrap().1;
        assert_eq!(url, &scenario.proxy.url("/check"));
        assert!(env.contains(&("KH_RUN_UUID".into(), run.clone())));
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded"),
            "the checker found v3's URL and reported: {:?}",
            scenario.ctx.container_log(&pod.name_any(), "main")
        );
    }
    // Both reports went to /check and were answered 200.
    let reports: Vec<_> = scenario
        .proxy
        .exchanges()
        .into_iter()
        .filter(|e| e.run_uuid.is_some())
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    for report in &reports {
        assert!(
            report.request_line.starts_with("POST /check "),
            "{report:?}"
        );
        assert_eq!(report.status, Some(200), "{report:?}");
    }

    // Every replica shows both, on both pages and in both metric families.
    for i in 0..scenario.replica_count() {
        let (v2, v3, text) = wait_until(
            &format!("replica {i} to show both results"),
            TIMEOUT,
            || async {
                let v2 = scenario.status_page(i).await?;
                let v3: serde_json::Value =
                    serde_json::from_str(&scenario.get(i, "/v3/json").await?)?;
                let text = scenario.get(i, "/metrics").await?;
                let shown = v2["CheckDetails"][format!("{ns}/failing")]["Errors"]
                    == json!([FAILURE])
                    && v3["CheckDetails"]["passing"]["successCount"] == 1;
                Ok(shown.then_some((v2, v3, text)))
            },
        )
        .await
        .unwrap();
        let entry = &v2["CheckDetails"][format!("{ns}/passing")];
        assert_eq!(entry["kind"], "HealthCheck", "{entry}");
        assert_eq!(entry["OK"], true);
        assert_eq!(entry["uuid"], json!(passing.run_uuid));
        let entry = &v2["CheckDetails"][format!("{ns}/failing")];
        assert_eq!(entry["OK"], false);
        assert_eq!(v2["OK"], false);
        assert_eq!(v2["Errors"], json!([FAILURE]));

        assert_eq!(v3["OK"], false);
        let p = &v3["CheckDetails"]["passing"];
        assert_eq!(p["ok"], true);
        assert_eq!(p["currentUUID"], "");
        assert_eq!(p["namespace"], ns);
        assert_eq!(p["lastRunUnix"], passing.last_run_unix);
        assert_eq!(p["runDuration"], passing.run_duration);
        assert_eq!(p["timeoutSeconds"], 30);
        assert_eq!(p["runIntervalSeconds"], 3600);
        assert_eq!(p["nextRunUnix"], passing.last_run_unix + 3600);
        let f = &v3["CheckDetails"]["failing"];
        assert_eq!(
            (f["ok"].clone(), f["errors"].clone()),
            (json!(false), json!([FAILURE]))
        );
        assert_eq!(f["failureCount"], 1);
        assert_eq!(f["consecutiveFailures"], 1);

        let samples = metrics::parse(&text).unwrap();
        let v2_check = |name: &str| {
            sample(
                &samples,
                "kuberhealthy_check",
                &[("check", &format!("{ns}/{name}")), ("namespace", &ns)],
            )
            .map(|s| (s.value, s.labels.get("status").cloned()))
        };
        assert_eq!(v2_check("passing"), Some((1.0, Some("1".into()))));
        assert_eq!(v2_check("failing"), Some((0.0, Some("0".into()))));
        let v3_value = |metric: &str, name: &str| {
            sample(&samples, metric, &[("check", name), ("namespace", &ns)]).map(|s| s.value)
        };
        assert_eq!(
            v3_value("kuberhealthy_check_success_total", "passing"),
            Some(1.0)
        );
        assert_eq!(
            v3_value("kuberhealthy_check_failure_total", "passing"),
            Some(0.0)
        );
        assert_eq!(
            v3_value("kuberhealthy_check_success_total", "failing"),
            Some(0.0)
        );
        assert_eq!(
            v3_value("kuberhealthy_check_failure_total", "failing"),
            Some(1.0)
        );
        assert_eq!(
            v3_value("kuberhealthy_check_consecutive_failures", "failing"),
            Some(1.0)
        );
        assert_eq!(
            v3_value("kuberhealthy_check_seconds_since_success", "failing"),
            Some(-1.0),
            "never passed"
        );
        let since = v3_value("kuberhealthy_check_seconds_since_success", "passing").unwrap();
        assert!((0.0..TIMEOUT.as_secs_f64()).contains(&since), "{since}");
        assert!(
            sample(&samples, "kuberhealthy_controller_leader", &[]).is_some(),
            "v3's leader gauge"
        );
    }
    // v3's run duration histogram: each report was recorded by the replica it reached.
    let mut counted = 0.0;
    for i in 0..scenario.replica_count() {
        let samples = metrics::parse(&scenario.get(i, "/metrics").await.unwrap()).unwrap();
        counted += metrics::sum(
            &samples,
            "kuberhealthy_check_run_duration_seconds_count",
            &[],
        );
    }
    assert_eq!(counted, 2.0, "two runs finished");

    figures::publish(
        "v3-reports",
        &json!({
            "passing": {"run_duration_ns": passing.run_duration, "uuid": passing.run_uuid},
            "failing": {"errors": failing.errors, "uuid": failing.run_uuid},
            "reports": reports.len(),
            "measured_at": Timestamp::now().to_string(),
        }),
    );
}
