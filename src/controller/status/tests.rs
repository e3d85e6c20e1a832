use std::sync::Arc;

use super::*;
use crate::api::KuberhealthyStateSpec;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn check(
    namespace: &str,
    name: &str,
    interval: &str,
    timeout: &str,
    created: &str,
) -> Arc<KuberhealthyCheck> {
    let value = serde_json::json!({
        "apiVersion": "comcast.github.io/v1",
        "kind": "KuberhealthyCheck",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {
            "runInterval": interval,
            "timeout": timeout,
            "podSpec": {"containers": [{"name": "main", "image": "example/checker:v1"}]}
        }
    });
    Arc::new(serde_json::from_value(value).unwrap())
}

/// A state as v2 wrote it for the blog post's status page.
fn state(namespace: &str, name: &str, spec: serde_json::Value) -> Arc<KuberhealthyState> {
    let spec: KuberhealthyStateSpec = serde_json::from_value(spec).unwrap();
    let mut s = KuberhealthyState::new(name, spec);
    s.metadata.namespace = Some(namespace.into());
    Arc::new(s)
}

fn v2_state(name: &str, duration: &str, last_run: &str, uuid: &str) -> Arc<KuberhealthyState> {
    state(
        "kuberhealthy",
        name,
        serde_json::json!({
            "OK": true, "Errors": [], "RunDuration": duration, "Namespace": "kuberhealthy",
            "Node": "", "LastRun": last_run, "AuthoritativePod": "kuberhealthy-84bf9fd647-2x72f", "uuid": uuid
        }),
    )
}

const CREATED: &str = "2021-02-01T00:00:00Z";

/// The blog post's six checks and their states, at the moment its status page was taken.
fn blog_post() -> (Vec<Arc<KuberhealthyCheck>>, Vec<Arc<KuberhealthyState>>) {
    let checks = vec![
        check("kuberhealthy", "dns-status-internal", "2m", "15m", CREATED),
        check("kuberhealthy", "namespace-pod-check", "30m", "10m", CREATED),
        check("kuberhealthy", "openbayes-gear-check", "6h", "5m", CREATED),
        check(
            "kuberhealthy",
            "openbayes-random-image-serving-check",
            "5m",
            "5m",
            CREATED,
        ),
        check("kuberhealthy", "pod-restarts", "5m", "10m", CREATED),
        check("kuberhealthy", "pod-status", "5m", "15m", CREATED),
    ];
    let states = vec![
        v2_state(
            "dns-status-internal",
            "3.359431829s",
            "2021-03-01T06:08:09.35793049Z",
            "1d309ed7-4b7a-4fd5-9706-d04f53c9ed30",
        ),
        v2_state(
            "namespace-pod-check",
            "13.589526741s",
            "2021-03-01T05:50:19.584075218Z",
            "49f7bef3-f5d4-4e25-bf06-acd260d52e27",
        ),
        v2_state(
            "openbayes-gear-check",
            "1m8.486351014s",
            "2021-03-01T00:51:14.477191396Z",
            "c13aea0d-52ca-4777-a6e0-551d0c59962a",
        ),
        v2_state(
            "openbayes-random-image-serving-check",
            "9.008124976s",
            "2021-03-01T06:08:15.000563842Z",
            "eb1341d3-9bbf-44ab-9348-76715464df6b",
        ),
        v2_state(
            "pod-restarts",
            "2.903617967s",
            "2021-03-01T06:05:09.40445213Z",
            "4cf2c122-95ac-4902-8ecf-ee484a54c475",
        ),
        v2_state(
            "pod-status",
            "2.845955825s",
            "2021-03-01T06:05:08.84049994Z",
            "77af9108-720b-4ad4-b8cc-2fe81e751d8d",
        ),
    ];
    (checks, states)
}

fn page(
    checks: &[Arc<KuberhealthyCheck>],
    jobs: &[Arc<KuberhealthyJob>],
    states: &[Arc<KuberhealthyState>],
    now: &str,
    filter: &str,
) -> StatusPage {
    let metadata = BTreeMap::from([("cluster".to_string(), "openbayes".to_string())]);
    let snapshot = Snapshot {
        checks,
        jobs,
        states,
        healthchecks: &[],
        current_master: Some("kuberhealthy-84bf9fd647-2x72f"),
        metadata: &metadata,
        now: ts(now),
    };
    render(&snapshot, &parse_namespace_filter(Some(filter)))
}

#[test]
fn golden_blog_post_status_page() {
    let (checks, states) = blog_post();
    let page = page(&checks, &[], &states, "2021-03-01T06:09:00Z", "");
    assert!(page.ok);
    insta::assert_json_snapshot!(page);
}

#[test]
fn v2_keys_and_shape() {
    let (checks, states) = blog_post();
    let value =
        serde_json::to_value(page(&checks, &[], &states, "2021-03-01T06:09:00Z", "")).unwrap();
    let top: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        top,
        [
            "CheckDetails",
            "CurrentMaster",
            "Errors",
            "JobDetails",
            "Metadata",
            "OK"
        ]
    );
    let entry = &value["CheckDetails"]["kuberhealthy/dns-status-internal"];
    for k in [
        "OK",
        "Errors",
        "RunDuration",
        "Namespace",
        "Node",
        "LastRun",
        "AuthoritativePod",
        "uuid",
    ] {
        assert!(entry.get(k).is_some(), "missing {k}");
    }
    assert_eq!(entry["LastRun"], "2021-03-01T06:08:09.35793049Z");
    assert_eq!(value["CurrentMaster"], "kuberhealthy-84bf9fd647-2x72f");
    assert_eq!(value["Metadata"]["cluster"], "openbayes");
}

#[test]
fn a_stopped_scheduler_never_looks_green() {
    let (checks, states) = blog_post();
    // At 06:30 nothing has run again since the page was taken (06:09): the checks whose
    // interval + timeout + 1m has passed are stale; the 30m check (05:50 + 41m) and the 6h
    // check (00:51 + 6h6m) are not yet.
    let page = page(&checks, &[], &states, "2021-03-01T06:30:00Z", "");
    assert!(!page.ok);
    let stale: Vec<&str> = page
        .check_details
        .iter()
        .filter(|(_, d)| d.stale)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        stale,
        [
            "kuberhealthy/dns-status-internal",
            "kuberhealthy/openbayes-random-image-serving-check",
            "kuberhealthy/pod-restarts",
            "kuberhealthy/pod-status"
        ]
    );
    let dns = &page.check_details["kuberhealthy/dns-status-internal"];
    assert!(!dns.ok);
    assert_eq!(
        dns.errors,
        [
            "kuberhealthy/dns-status-internal: stale: the last result is from 2021-03-01T06:08:09.35793049Z, older than runInterval (2m0s) + timeout (15m0s) + 1m0s (is a leader elected and scheduling?)"
        ]
    );
    assert!(page.check_details["kuberhealthy/openbayes-gear-check"].ok);
    assert!(page.check_details["kuberhealthy/namespace-pod-check"].ok);
    assert_eq!(page.errors.len(), 4);
}

#[test]
fn staleness_boundary_is_interval_plus_timeout_plus_tolerance() {
    let checks = vec![check("ns", "c", "10m", "5m", CREATED)];
    let states = vec![v2_state("c", "1s", "2021-03-01T00:00:00Z", "u")];
    let mut states = states;
    Arc::make_mut(&mut states[0]).metadata.namespace = Some("ns".into());
    // 10m + 5m + 1m = 16m after the last result.
    assert!(page(&checks, &[], &states, "2021-03-01T00:16:00Z", "").ok);
    assert!(!page(&checks, &[], &states, "2021-03-01T00:16:01Z", "").ok);
}

#[test]
fn a_new_check_is_hidden_until_its_first_result_is_overdue() {
    let checks = vec![check("ns", "new", "10m", "5m", "2021-03-01T00:00:00Z")];
    assert!(
        page(&checks, &[], &[], "2021-03-01T00:06:00Z", "")
            .check_details
            .is_empty()
    );
    let late = page(&checks, &[], &[], "2021-03-01T00:06:01Z", "");
    assert!(!late.ok);
    assert_eq!(
        late.check_details["ns/new"].errors,
        [
            "ns/new: stale: no result since the check was created at 2021-03-01T00:00:00Z; a first result was due within timeout (5m0s) + 1m0s (is a leader elected and scheduling?)"
        ]
    );
}

#[test]
fn an_invalid_check_shows_its_field_errors() {
    let checks = vec![check("ns", "bad", "10 minutes", "5m", CREATED)];
    let page = page(&checks, &[], &[], "2021-03-01T00:00:00Z", "");
    assert!(!page.ok);
    assert_eq!(
        page.check_details["ns/bad"].errors,
        [
            "ns/bad: invalid check: spec.runInterval: \"10 minutes\" is not a valid duration (unknown unit \" minutes\" in duration \"10 minutes\" (use one of ns, us, ms, s, m, h)); write a Go duration such as \"6h\", \"5m\" or \"1m30s\""
        ]
    );
}

#[test]
fn failing_checks_make_the_page_fail_with_their_errors() {
    let checks = vec![
        check("a", "x", "10m", "5m", CREATED),
        check("b", "y", "10m", "5m", CREATED),
    ];
    let states = vec![
        state(
            "a",
            "x",
            serde_json::json!({"OK": false, "Errors": ["Error 1 here", "Error 2 here"], "AuthoritativePod": "kh-0", "Namespace": "a", "LastRun": "2021-03-01T00:00:00Z"}),
        ),
        state(
            "b",
            "y",
            serde_json::json!({"OK": true, "Errors": [], "AuthoritativePod": "kh-0", "Namespace": "b", "LastRun": "2021-03-01T00:00:00Z"}),
        ),
    ];
    let all = page(&checks, &[], &states, "2021-03-01T00:01:00Z", "");
    assert!(!all.ok);
    assert_eq!(all.errors, ["Error 1 here", "Error 2 here"]);
    // The namespace filter recomputes OK and Errors for the namespaces asked for.
    let only_b = page(&checks, &[], &states, "2021-03-01T00:01:00Z", " b, ,");
    assert!(only_b.ok);
    assert_eq!(only_b.check_details.keys().collect::<Vec<_>>(), ["b/y"]);
    let both = page(&checks, &[], &states, "2021-03-01T00:01:00Z", "a,b");
    assert_eq!(both.check_details.len(), 2);
}

#[test]
fn jobs_go_under_job_details_and_unwritten_states_are_hidden() {
    let job: KuberhealthyJob = serde_json::from_value(serde_json::json!({
        "apiVersion": "comcast.github.io/v1", "kind": "KuberhealthyJob",
        "metadata": {"name": "once", "namespace": "ns"},
        "spec": {"timeout": "2m", "podSpec": {"containers": [{"name": "main", "image": "x"}]}}
    }))
    .unwrap();
    let states = vec![
        state(
            "ns",
            "once",
            serde_json::json!({"OK": true, "Errors": [], "AuthoritativePod": "kh-1", "Namespace": "ns",
                "LastRun": "2021-02-28T23:59:00Z"}),
        ),
        state(
            "ns",
            "orphan",
            serde_json::json!({"OK": true, "Errors": [], "AuthoritativePod": "", "Namespace": "ns"}),
        ),
    ];
    let page = page(&[], &[Arc::new(job)], &states, "2021-03-01T00:00:00Z", "");
    assert_eq!(page.job_details.keys().collect::<Vec<_>>(), ["ns/once"]);
    assert!(page.check_details.is_empty());
    assert!(page.ok);
}

#[test]
fn next_run_is_shown_when_no_run_is_in_flight() {
    let checks = vec![check("ns", "c", "10m", "5m", CREATED)];
    let mut states = vec![state(
        "ns",
        "c",
        serde_json::json!({"OK": true, "Errors": [], "AuthoritativePod": "kh-0", "Namespace": "ns", "uuid": "u",
            "LastRun": "2021-03-01T00:00:30Z", "runStartedAt": "2021-03-01T00:00:00Z", "runFinishedAt": "2021-03-01T00:00:30Z"}),
    )];
    let p = page(&checks, &[], &states, "2021-03-01T00:01:00Z", "");
    assert_eq!(
        p.check_details["ns/c"].next_run_at,
        Some(ts("2021-03-01T00:10:00Z"))
    );
    Arc::make_mut(&mut states[0]).spec.run_finished_at = None;
    let p = page(&checks, &[], &states, "2021-03-01T00:01:00Z", "");
    assert_eq!(
        p.check_details["ns/c"].next_run_at, None,
        "a run is in flight"
    );
}

#[test]
fn a_first_run_in_flight_is_not_shown_as_ok() {
    // The leader wrote the run's UUID, start and term (and itself as AuthoritativePod), but no
    // result yet: the check stays off the page, as a check that never ran, until its first
    // result is overdue; then it is stale, never OK.
    let checks = vec![check("ns", "c", "10m", "5m", "2021-03-01T00:00:00Z")];
    let states = vec![state(
        "ns",
        "c",
        serde_json::json!({"OK": true, "Errors": [], "AuthoritativePod": "kh-0", "Namespace": "ns", "uuid": "u",
            "runStartedAt": "2021-03-01T00:00:01Z", "runDeadline": "2021-03-01T00:05:01Z"}),
    )];
    let p = page(&checks, &[], &states, "2021-03-01T00:00:02Z", "");
    assert!(p.check_details.is_empty(), "{:?}", p.check_details);
    let p = page(&checks, &[], &states, "2021-03-01T00:07:00Z", "");
    let c = &p.check_details["ns/c"];
    assert!(!c.ok && c.stale, "{c:?}");
    assert!(!p.ok);
}

/// A check of namespace `ns` with extra spec fields.
fn check_with(name: &str, extra: serde_json::Value) -> Arc<KuberhealthyCheck> {
    let mut c = (*check("ns", name, "10m", "5m", CREATED)).clone();
    let mut spec = serde_json::to_value(&c.spec).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    c.spec = serde_json::from_value(spec).unwrap();
    Arc::new(c)
}

fn failing_state(name: &str, since: &str, errors: &[&str]) -> Arc<KuberhealthyState> {
    state(
        "ns",
        name,
        serde_json::json!({"OK": false, "Errors": errors, "uuid": "u", "LastRun": since,
                           "runStartedAt": since, "runFinishedAt": since, "failingSince": since}),
    )
}

#[test]
fn a_suspended_check_is_neither_failing_nor_stale() {
    let checks = vec![check_with("paused", serde_json::json!({"suspend": true}))];
    // Failing and a year old: suspended all the same.
    let states = vec![failing_state("paused", "2020-03-01T00:00:00Z", &["boom"])];
    let page = page(&checks, &[], &states, "2021-03-01T00:00:00Z", "");
    let d = &page.check_details["ns/paused"];
    assert!(page.ok, "{page:?}");
    assert!(
        d.ok && d.errors.is_empty() && d.suspended && !d.stale,
        "{d:?}"
    );
    assert_eq!(d.failing_since, None);
    let json = serde_json::to_value(d).unwrap();
    assert_eq!(json["suspended"], true);
}

#[test]
fn a_failing_check_with_a_failing_dependency_is_blocked_by_it() {
    let checks = vec![
        check_with("storage", serde_json::json!({})),
        check_with("app", serde_json::json!({"dependsOn": ["storage"]})),
        check_with("web", serde_json::json!({"dependsOn": ["ns/storage"]})),
    ];
    let states = vec![
        failing_state("storage", "2021-03-01T00:00:00Z", &["claim did not bind"]),
        failing_state("app", "2021-03-01T00:01:00Z", &["cannot write"]),
        state(
            "ns",
            "web",
            serde_json::json!({"OK": true, "Errors": [], "uuid": "w", "LastRun": "2021-03-01T00:01:00Z"}),
        ),
    ];
    let page = page(&checks, &[], &states, "2021-03-01T00:02:00Z", "");
    let app = &page.check_details["ns/app"];
    assert_eq!(app.blocked_by.as_deref(), Some("ns/storage"));
    assert_eq!(
        app.errors,
        [
            "ns/app: blocked by ns/storage, failing since 2021-03-01T00:00:00Z",
            "cannot write"
        ]
    );
    assert_eq!(
        page.check_details["ns/storage"].blocked_by, None,
        "the root cause"
    );
    assert_eq!(
        page.check_details["ns/web"].blocked_by, None,
        "a passing dependent is not blocked"
    );

    // The dependency recovers: the dependent's failure is its own again.
    let mut recovered = states.clone();
    recovered[0] = state(
        "ns",
        "storage",
        serde_json::json!({"OK": true, "Errors": [], "uuid": "s", "LastRun": "2021-03-01T00:01:30Z"}),
    );
    let page = super::tests::page(&checks, &[], &recovered, "2021-03-01T00:02:00Z", "");
    assert_eq!(page.check_details["ns/app"].blocked_by, None);
    assert_eq!(page.check_details["ns/app"].errors, ["cannot write"]);
}

#[test]
fn a_dependency_in_a_namespace_the_filter_leaves_out_still_blocks() {
    let mut infra = (*check("infra", "dns", "10m", "5m", CREATED)).clone();
    infra.metadata.namespace = Some("infra".into());
    let checks = vec![
        Arc::new(infra),
        check_with("app", serde_json::json!({"dependsOn": ["infra/dns"]})),
    ];
    let states = vec![
        state(
            "infra",
            "dns",
            serde_json::json!({"OK": false, "Errors": ["no such host"], "uuid": "d",
                               "LastRun": "2021-03-01T00:00:00Z"}),
        ),
        failing_state("app", "2021-03-01T00:01:00Z", &["cannot resolve"]),
    ];
    let page = page(&checks, &[], &states, "2021-03-01T00:02:00Z", "ns");
    assert_eq!(page.check_details.len(), 1);
    assert_eq!(
        page.check_details["ns/app"].blocked_by.as_deref(),
        Some("infra/dns")
    );
}

#[test]
fn unknown_dependencies_and_cycles_show_as_invalid() {
    let checks = vec![
        check_with("a", serde_json::json!({"dependsOn": ["b"]})),
        check_with("b", serde_json::json!({"dependsOn": ["a"]})),
        check_with("c", serde_json::json!({"dependsOn": ["ghost"]})),
    ];
    let page = page(&checks, &[], &[], "2021-03-01T00:00:00Z", "");
    assert_eq!(
        page.check_details["ns/a"].errors,
        [
            "ns/a: invalid check: spec.dependsOn: forms a cycle: ns/a -> ns/b -> ns/a; a check cannot depend on itself"
        ]
    );
    assert_eq!(
        page.check_details["ns/c"].errors,
        ["ns/c: invalid check: spec.dependsOn[0]: names check ns/ghost, which does not exist"]
    );
}

#[test]
fn a_scheduled_check_shows_its_schedule_and_is_stale_after_its_next_slot() {
    let checks = vec![check_with(
        "nightly",
        serde_json::json!({"runInterval": "", "schedule": "0 1 * * *", "timeZone": "UTC"}),
    )];
    let states = vec![state(
        "ns",
        "nightly",
        serde_json::json!({"OK": true, "Errors": [], "uuid": "n", "LastRun": "2021-03-01T01:00:05Z",
                           "runStartedAt": "2021-03-01T01:00:00Z", "runFinishedAt": "2021-03-01T01:00:05Z"}),
    )];
    // Next slot 2021-03-02T01:00:00Z; stale once it has not reported within 5m + 1m.
    let fresh = page(&checks, &[], &states, "2021-03-02T01:06:00Z", "");
    let d = &fresh.check_details["ns/nightly"];
    assert!(d.ok, "{d:?}");
    assert_eq!(d.schedule.as_deref(), Some("0 1 * * *"));
    assert_eq!(d.time_zone.as_deref(), Some("UTC"));
    assert_eq!(d.run_interval, None);
    assert_eq!(d.next_run_at, Some(ts("2021-03-02T01:00:00Z")));
    let stale = page(&checks, &[], &states, "2021-03-02T01:06:01Z", "");
    let d = &stale.check_details["ns/nightly"];
    assert!(d.stale && !d.ok);
    assert_eq!(
        d.errors,
        [
            "ns/nightly: stale: the last result is from 2021-03-01T01:00:05Z; the run of the next slot (2021-03-02T01:00:00Z) should have reported within timeout (5m0s) + 1m0s (is a leader elected and scheduling?)"
        ]
    );
    assert_eq!(d.failing_since, Some(ts("2021-03-02T01:06:00Z")));
}
mod healthchecks;

fn turn_of(
    checks: &[Arc<KuberhealthyCheck>],
    states: &[Arc<KuberhealthyState>],
    now: &str,
) -> NextTurn {
    let metadata = BTreeMap::new();
    let snapshot = Snapshot {
        checks,
        jobs: &[],
        states,
        healthchecks: &[],
        current_master: None,
        metadata: &metadata,
        now: ts(now),
    };
    render_until(&snapshot, &BTreeSet::new()).1
}

#[test]
fn the_next_turn_is_when_the_first_result_turns_stale_or_overdue() {
    let checks = vec![
        check("ns", "c", "10m", "5m", CREATED),
        check("ns", "new", "10m", "5m", "2021-03-01T00:00:00Z"),
    ];
    let mut states = vec![v2_state("c", "1s", "2021-03-01T00:02:00Z", "u")];
    Arc::make_mut(&mut states[0]).metadata.namespace = Some("ns".into());
    // `new` turns overdue at 00:06, `c` stale at 00:18 (00:02 + 10m + 5m + 1m).
    assert_eq!(
        turn_of(&checks, &states, "2021-03-01T00:01:00Z"),
        NextTurn(Some(ts("2021-03-01T00:06:00Z")))
    );
    assert_eq!(
        turn_of(&checks, &states, "2021-03-01T00:07:00Z"),
        NextTurn(Some(ts("2021-03-01T00:18:00Z")))
    );
    // Until its turn the page is the same; just after it, it is not.
    let before = page(&checks, &[], &states, "2021-03-01T00:07:00Z", "");
    assert_eq!(
        before,
        page(&checks, &[], &states, "2021-03-01T00:18:00Z", "")
    );
    assert_ne!(
        before,
        page(&checks, &[], &states, "2021-03-01T00:18:00.000000001Z", "")
    );
    // Once everything is stale, nothing changes by the clock any more.
    assert_eq!(
        turn_of(&checks, &states, "2021-03-01T00:19:00Z"),
        NextTurn(None)
    );
    // A suspended check never turns.
    let suspended = [check_with("c", serde_json::json!({"suspend": true}))];
    assert_eq!(
        turn_of(&suspended, &states, "2021-03-01T00:01:00Z"),
        NextTurn(None)
    );
}

#[test]
fn uptime_comes_from_the_daily_counters_and_counts_stale_time_as_down() {
    let checks = vec![check("ns", "c", "10m", "5m", "2026-03-01T00:00:00Z")];
    // Passing since the first of the month, last result 06:00; it turned stale at 06:16
    // (next slot 06:10 + timeout 5m + 1m).
    let states = vec![state(
        "ns",
        "c",
        serde_json::json!({
            "OK": true, "Errors": [], "RunDuration": "1s", "Namespace": "ns",
            "LastRun": "2026-03-02T06:00:00Z", "uuid": "u",
            "daily": [
                {"day": "2026-03-01", "runs": 144, "failures": 0,
                 "observedSeconds": 86400, "failingSeconds": 0},
                {"day": "2026-03-02", "runs": 37, "failures": 0,
                 "observedSeconds": 21600, "failingSeconds": 0},
            ],
        }),
    )];
    let rendered = page(&checks, &[], &states, "2026-03-02T12:00:00Z", "");
    let details = &rendered.check_details["ns/c"];
    assert!(details.stale);
    let uptime = details.uptime.expect("uptime from daily");
    // Last 24h: 12h of 03-01 (in proportion), 6h of 03-02, then 16 min up and 5h44 stale.
    let down: f64 = 5.0 * 3600.0 + 44.0 * 60.0;
    let expected = (100.0 * (86_400.0 - down) / 86_400.0 * 1000.0).round() / 1000.0;
    assert_eq!(uptime.day, Some(expected));
    assert_eq!(
        serde_json::to_value(details).unwrap()["uptime"]["24h"],
        serde_json::json!(expected)
    );
    // A state v2 wrote (no daily counters) shows none: v2's entries keep their shape.
    let (checks, states) = blog_post();
    let rendered = page(&checks, &[], &states, "2021-03-01T06:10:00Z", "");
    assert!(rendered.check_details.values().all(|d| d.uptime.is_none()));
}
