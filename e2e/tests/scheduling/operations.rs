//! Operating checks day to day on the local control plane: suspend and resume, a run now by
//! annotation, by `kuberhealthy run-now` and by an authenticated `POST /api/run`, cron
//! schedules, and dependencies that name the root cause.

use k8s_openapi::jiff::Timestamp;
use kuberhealthy_e2e::{binaries, http, wait_until};
use serde_json::{Value, json};

use crate::support::checks::{self, REPORT_OK};
use crate::support::record::{Recorder, RunSeen};
use crate::support::{Scenario, ScenarioOptions, TIMEOUT, plus, secs, sleep_until};

/// How soon after a request (annotation, command, `/api/run`) its run must start.
const REQUESTED_RUN_WITHIN: f64 = 5.0;

/// The starts of `check` so far, in order.
fn starts(recorder: &Recorder, check: &str) -> Vec<Timestamp> {
    recorder
        .snapshot()
        .runs_of(check)
        .into_iter()
        .filter_map(|r| r.started_at)
        .collect()
}

/// Waits for the `n`th start (0-based) of `check`.
async fn nth_start(recorder: &Recorder, check: &str, n: usize) -> RunSeen {
    recorder
        .wait_for(&format!("run #{n} of {check} to start"), TIMEOUT, |r| {
            r.runs_of(check)
                .into_iter()
                .filter(|run| run.started_at.is_some())
                .nth(n)
        })
        .await
        .unwrap()
}

/// Waits until run `uuid` of `check` has finished.
async fn finished(recorder: &Recorder, check: &str, uuid: &str) {
    recorder
        .wait_for(&format!("run {uuid} of {check} to finish"), TIMEOUT, |r| {
            r.runs_of(check)
                .into_iter()
                .find(|run| run.uuid == uuid && run.finished_at.is_some())
        })
        .await
        .unwrap();
}

/// A check as JSON with extra spec fields (a `null` removes one).
fn check_with_spec(name: &str, interval: &str, script: &str, extra: Value) -> Value {
    let mut check = checks::check(name, interval, "30s", script);
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            check["spec"].as_object_mut().unwrap().remove(k);
        } else {
            check["spec"][k] = v.clone();
        }
    }
    check
}

/// What the leader's page says of `check`.
async fn details(scenario: &Scenario, check: &str) -> Value {
    let (leader, _) = scenario.wait_for_leader(None).await.unwrap();
    let page = scenario.status_page(leader).await.unwrap();
    page["CheckDetails"][format!("{}/{check}", scenario.ns())].clone()
}

#[tokio::test]
async fn a_suspended_check_does_not_run_and_resumes_on_time() {
    let scenario = Scenario::start(ScenarioOptions::new("suspend"))
        .await
        .expect("starting the scenario");
    let recorder = Recorder::start(scenario.client(), scenario.ns())
        .await
        .unwrap();
    const INTERVAL: f64 = 6.0;
    scenario
        .apply(&check_with_spec("paused", "6s", REPORT_OK, json!({})))
        .await
        .unwrap();
    let first = nth_start(&recorder, "paused", 0).await;
    finished(&recorder, "paused", &first.uuid).await;

    scenario
        .apply(&check_with_spec(
            "paused",
            "6s",
            REPORT_OK,
            json!({"suspend": true}),
        ))
        .await
        .unwrap();
    wait_until("the page to show the check suspended", TIMEOUT, || async {
        Ok((details(&scenario, "paused").await["suspended"] == json!(true)).then_some(()))
    })
    .await
    .unwrap();
    // A whole interval past the next due time: still one run.
    let due = plus(first.started_at.unwrap(), INTERVAL);
    sleep_until(plus(due, INTERVAL)).await;
    let seen = starts(&recorder, "paused");
    assert_eq!(seen.len(), 1, "a suspended check started runs: {seen:?}");
    let shown = details(&scenario, "paused").await;
    assert_eq!(
        shown["OK"],
        json!(true),
        "suspended is not failing: {shown}"
    );
    assert!(
        shown.get("stale").is_none(),
        "suspended is not stale: {shown}"
    );

    // Resumed: overdue, so one run at once, then one interval later, not a burst.
    let resumed = Timestamp::now();
    scenario
        .apply(&check_with_spec(
            "paused",
            "6s",
            REPORT_OK,
            json!({"suspend": false}),
        ))
        .await
        .unwrap();
    let second = nth_start(&recorder, "paused", 1).await.started_at.unwrap();
    let third = nth_start(&recorder, "paused", 2).await.started_at.unwrap();
    println!(
        "suspend: resumed at {resumed}; runs at {:+.3} s and {:+.3} s after it",
        secs(resumed, second),
        secs(resumed, third)
    );
    assert!(
        second >= resumed,
        "a run started before the check was resumed"
    );
    assert!(
        secs(resumed, second) < REQUESTED_RUN_WITHIN,
        "an overdue check resumed at {resumed} first ran at {second}"
    );
    assert!(
        secs(second, third) >= INTERVAL,
        "resuming made a burst: {second} then {third}"
    );
}

#[tokio::test]
async fn run_now_by_annotation_and_by_the_command_start_one_run_each() {
    let scenario = Scenario::start(ScenarioOptions::new("run-now"))
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();
    let plain = check_with_spec("manual", "1h", REPORT_OK, json!({}));
    scenario.apply(&plain).await.unwrap();
    let first = nth_start(&recorder, "manual", 0).await;
    finished(&recorder, "manual", &first.uuid).await;

    // The annotation, set by hand.
    let value = Timestamp::now().to_string();
    let mut annotated = plain.clone();
    annotated["metadata"]["annotations"] =
        json!({ "kuberhealthy.github.io/run-requested-at": value });
    scenario.apply(&annotated).await.unwrap();
    let second = nth_start(&recorder, "manual", 1).await;
    let waited = secs(value.parse().unwrap(), second.started_at.unwrap());
    println!("run-now: the annotation's run started {waited:.3} s after it was set");
    assert!(
        waited < REQUESTED_RUN_WITHIN,
        "started {waited:.3} s after the request"
    );
    finished(&recorder, "manual", &second.uuid).await;
    let state = scenario.khstate("manual").await.unwrap().unwrap();
    assert_eq!(
        state.honoured_run_request.as_deref(),
        Some(value.as_str()),
        "the honoured value is persisted"
    );
    // The schedule did not move: the next run is still one hour after the first.
    let next = details(&scenario, "manual").await["nextRunAt"].clone();
    assert_eq!(
        next,
        json!(plus(first.started_at.unwrap(), 3600.0).to_string()),
        "a run now shifted the schedule"
    );

    // The command sets the annotation with the kubeconfig's credentials.
    let output = std::process::Command::new(binaries::kuberhealthy().unwrap())
        .args(["run-now", &format!("{ns}/manual")])
        .env("KUBECONFIG", &scenario.ctx.endpoint().admin_kubeconfig)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kuberhealthy run-now failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains(&format!("requested a run of {ns}/manual")),
        "{said}"
    );
    let third = nth_start(&recorder, "manual", 2).await;
    finished(&recorder, "manual", &third.uuid).await;
    assert_eq!(starts(&recorder, "manual").len(), 3, "one run per request");
}

#[tokio::test]
async fn api_run_needs_a_token_allowed_to_update_the_check() {
    let scenario = Scenario::start(ScenarioOptions::new("api-run"))
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    let recorder = Recorder::start(scenario.client(), &ns).await.unwrap();
    // Reports after 3 s, so a run is in flight long enough to be asked about.
    let slow = format!("sleep 3; {REPORT_OK}");
    scenario
        .apply(&check_with_spec("gated", "1h", &slow, json!({})))
        .await
        .unwrap();
    let first = nth_start(&recorder, "gated", 0).await;
    finished(&recorder, "gated", &first.uuid).await;
    let addr = scenario.addr(0);
    let path = format!("/api/run?namespace={ns}&healthcheck=gated");

    let anonymous = http::post(addr, &path, &[], b"").await.unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(
        anonymous.body.contains("Authorization: Bearer"),
        "{}",
        anonymous.body
    );

    let bogus = http::post(addr, &path, &[("Authorization", "Bearer not-a-token")], b"")
        .await
        .unwrap();
    assert_eq!(bogus.status, 401, "{}", bogus.body);

    let endpoint = scenario.ctx.endpoint();
    let viewer = endpoint.service_account_token(&ns, "viewer").await.unwrap();
    let bearer = format!("Bearer {viewer}");
    let refused = http::post(addr, &path, &[("Authorization", &bearer)], b"")
        .await
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains(&format!(
            "system:serviceaccount:{ns}:viewer may not update khcheck {ns}/gated"
        )),
        "{}",
        refused.body
    );

    scenario
        .ctx
        .apply_yaml(&format!(
            r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: check-operator}}
rules:
- apiGroups: [comcast.github.io]
  resources: [khchecks]
  verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: check-operator}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: check-operator}}
subjects:
- {{kind: ServiceAccount, name: operator, namespace: {ns}}}
"#
        ))
        .await
        .unwrap();
    let operator = endpoint
        .service_account_token(&ns, "operator")
        .await
        .unwrap();
    let bearer = format!("Bearer {operator}");
    // The authorizer reads RBAC from its own watch cache: 403 until the grant applies.
    let asked = Timestamp::now();
    let accepted = wait_until("/api/run to accept the operator", TIMEOUT, || async {
        let r = http::post(addr, &path, &[("Authorization", &bearer)], b"").await?;
        Ok(match r.status {
            202 => Some(r),
            403 => None,
            other => anyhow::bail!("/api/run answered {other}: {}", r.body),
        })
    })
    .await
    .unwrap();
    assert!(accepted.body.contains("requestedAt"), "{}", accepted.body);
    let second = nth_start(&recorder, "gated", 1).await;
    println!(
        "/api/run: the run started {:.3} s after the first accepted request",
        secs(asked, second.started_at.unwrap())
    );
    scenario
        .wait_for_state("gated", "the requested run in flight", |s| s.in_flight())
        .await
        .unwrap();
    let busy = wait_until(
        "a replica's cache to show the run in flight",
        TIMEOUT,
        || async {
            let r = http::post(addr, &path, &[("Authorization", &bearer)], b"").await?;
            Ok((r.status == 409).then_some(r))
        },
    )
    .await
    .unwrap();
    assert!(busy.body.contains("has a run in flight"), "{}", busy.body);

    let missing = http::post(
        addr,
        &format!("/api/run?namespace={ns}&healthcheck=ghost"),
        &[("Authorization", &bearer)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(
        missing.body.contains(&format!("no khcheck {ns}/ghost")),
        "{}",
        missing.body
    );
}

#[tokio::test]
async fn a_cron_check_starts_within_a_second_of_its_slot() {
    let scenario = Scenario::start(ScenarioOptions::new("cron"))
        .await
        .expect("starting the scenario");
    let recorder = Recorder::start(scenario.client(), scenario.ns())
        .await
        .unwrap();
    scenario
        .apply(&check_with_spec(
            "cron",
            "",
            REPORT_OK,
            json!({"runInterval": null, "schedule": "*/10 * * * * *", "timeZone": "Europe/Berlin"}),
        ))
        .await
        .unwrap();
    for n in 0..2 {
        let started = nth_start(&recorder, "cron", n).await.started_at.unwrap();
        let second = started.as_millisecond().rem_euclid(10_000) as f64 / 1000.0;
        println!("cron: run #{n} started {second:.3} s after its slot");
        assert!(
            second < 1.0,
            "run #{n} started at {started}, {second:.3} s after its slot"
        );
    }
    // While a run is in flight the page shows no next run: wait for the one after run #1.
    let shown = wait_until(
        "the page to show the cron check's next run",
        TIMEOUT,
        || async {
            let shown = details(&scenario, "cron").await;
            Ok(shown.get("nextRunAt").is_some().then_some(shown))
        },
    )
    .await
    .unwrap();
    assert_eq!(shown["schedule"], json!("*/10 * * * * *"));
    assert_eq!(shown["timeZone"], json!("Europe/Berlin"));
    let next: Timestamp = shown["nextRunAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        next.as_millisecond().rem_euclid(10_000),
        0,
        "next run {next} is a slot"
    );
}

#[tokio::test]
async fn a_failing_dependency_turns_its_dependents_failure_into_blocked_by() {
    let scenario = Scenario::start(ScenarioOptions::new("depends"))
        .await
        .expect("starting the scenario");
    let ns = scenario.ns().to_string();
    scenario
        .apply(&check_with_spec(
            "storage",
            "1h",
            &checks::report_errors(&["claim did not bind"]),
            json!({}),
        ))
        .await
        .unwrap();
    scenario
        .apply(&check_with_spec(
            "app",
            "1h",
            &checks::report_errors(&["cannot write"]),
            json!({"dependsOn": ["storage"]}),
        ))
        .await
        .unwrap();
    for name in ["storage", "app"] {
        scenario
            .wait_for_state(name, "its first result", |s| s.run_finished_at.is_some())
            .await
            .unwrap();
    }
    let app = wait_until("the page to show app blocked", TIMEOUT, || async {
        let d = details(&scenario, "app").await;
        Ok((d["blockedBy"] == json!(format!("{ns}/storage"))).then_some(d))
    })
    .await
    .unwrap();
    let first_error = app["Errors"][0].as_str().unwrap();
    assert!(
        first_error.starts_with(&format!(
            "{ns}/app: blocked by {ns}/storage, failing since "
        )),
        "{app}"
    );
    assert_eq!(
        app["Errors"][1],
        json!("cannot write"),
        "its own error stays: {app}"
    );
    let storage = details(&scenario, "storage").await;
    assert!(
        storage.get("blockedBy").is_none(),
        "the root cause is not blocked: {storage}"
    );

    // Every replica serves it once its watches caught up.
    let blocked = format!(
        r#"kuberhealthy_check_blocked{{blocked_by="{ns}/storage",check="{ns}/app",namespace="{ns}"}} 1"#
    );
    let mut metrics = String::new();
    for i in 0..scenario.replica_count() {
        metrics = wait_until(
            &format!("replica {i}'s metrics to mark app blocked"),
            TIMEOUT,
            || async {
                let body = http::get(scenario.addr(i), "/metrics").await?.body;
                Ok(body.contains(&blocked).then_some(body))
            },
        )
        .await
        .unwrap();
    }
    assert!(
        !metrics.contains(&format!(
            r#"kuberhealthy_check_blocked{{blocked_by="{ns}/storage",check="{ns}/storage""#
        )),
        "the root cause is not marked blocked"
    );
}
