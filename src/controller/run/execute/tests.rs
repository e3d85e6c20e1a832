//! The executor against a scripted API server: the exact requests each action makes, in
//! order, and what happens on a conflict, a refusal and an ended term.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock;

use super::*;
use crate::api::{KuberhealthyCheck, LeaderTerm};

const NS: &str = "ns";
const STATES: &str = "/apis/comcast.github.io/v1/namespaces/ns/khstates";
const JOBS: &str = "/apis/comcast.github.io/v1/namespaces/ns/khjobs";
const PODS: &str = "/api/v1/namespaces/ns/pods";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

/// How the scripted API server answers one request.
enum Reply {
    /// 200 (201 for POST) with the request's own object as a new version; a DELETE's
    /// Success status.
    Echo,
    /// As `Echo`, after this long: a write held up in the API server.
    EchoAfter(Duration),
    /// A refusal with this code and reason.
    Refuse(u16, &'static str),
    /// 200 with this plain text (a container's log).
    Text(&'static str),
}

/// One request the action must make, in order.
struct Expect {
    method: Method,
    path: String,
    reply: Reply,
}

fn expect(method: Method, path: impl Into<String>, reply: Reply) -> Expect {
    Expect {
        method,
        path: path.into(),
        reply,
    }
}

/// A request as it was seen: method, path and body.
type Seen = (Method, String, Value);

/// Serves the script, then asserts no request comes after it.
fn serve(
    mut handle: mock::Handle<Request<Body>, Response<Body>>,
    script: Vec<Expect>,
) -> JoinHandle<Vec<Seen>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        for step in script {
            let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                panic!("expected {} {}, got no request", step.method, step.path)
            });
            let method = request.method().clone();
            // A step that names a query is matched with it.
            let path = if step.path.contains('?') {
                request.uri().to_string()
            } else {
                request.uri().path().to_string()
            };
            assert_eq!(
                (&method, path.as_str()),
                (&step.method, step.path.as_str()),
                "request out of script"
            );
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if let Reply::EchoAfter(delay) = step.reply {
                tokio::time::sleep(delay).await;
            }
            let response = match step.reply {
                Reply::Echo | Reply::EchoAfter(_) => {
                    let object = if method == Method::DELETE {
                        json!({"apiVersion": "v1", "kind": "Status", "metadata": {},
                               "status": "Success", "code": 200})
                    } else {
                        let mut object = body.clone();
                        object["metadata"]["resourceVersion"] = json!("11");
                        object
                    };
                    let code = if method == Method::POST { 201 } else { 200 };
                    Response::builder()
                        .status(code)
                        .body(Body::from(serde_json::to_vec(&object).unwrap()))
                        .unwrap()
                }
                Reply::Text(text) => Response::builder()
                    .status(200)
                    .body(Body::from(text.as_bytes().to_vec()))
                    .unwrap(),
                Reply::Refuse(code, reason) => {
                    let status = json!({"apiVersion": "v1", "kind": "Status", "metadata": {},
                        "status": "Failure", "message": format!("refused: {reason}"),
                        "reason": reason, "code": code});
                    Response::builder()
                        .status(code)
                        .body(Body::from(serde_json::to_vec(&status).unwrap()))
                        .unwrap()
                }
            };
            send.send_response(response);
            seen.push((method, path, body));
        }
        if let Some((request, _)) = handle.next_request().await {
            panic!(
                "unexpected request after the script: {} {}",
                request.method(),
                request.uri().path()
            );
        }
        seen
    })
}

fn term(valid_for: Duration) -> Term {
    Term::new(
        LeaderTerm {
            holder: "kh-0".into(),
            transitions: 4,
        },
        tokio::time::Instant::now() + valid_for,
    )
}

fn executor(service: mock::Mock<Request<Body>, Response<Body>>, term: Term) -> Executor {
    Executor::new(
        Client::new(service, "default"),
        term,
        ExecutorSettings {
            identity: "kh-0".into(),
            reporting_url: "http://kh.example/externalCheckStatus".into(),
            healthcheck_reporting_url: "http://kh.example/check".into(),
            metrics: ControllerMetrics::noop(),
        },
    )
}

/// Runs one action against the script with a valid term; returns what it did and the
/// requests seen.
async fn run(action: Action, script: Vec<Expect>) -> (Done, Vec<Seen>) {
    run_in(term(Duration::from_secs(60)), action, script).await
}

async fn run_in(term: Term, action: Action, script: Vec<Expect>) -> (Done, Vec<Seen>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let server = serve(handle, script);
    let executor = executor(service, term);
    let done = executor.execute(action).await;
    drop(executor);
    (done, server.await.expect("the scripted API server"))
}

fn check() -> Owner {
    Owner::Check(Arc::new(
        serde_json::from_value::<KuberhealthyCheck>(json!({
            "apiVersion": "comcast.github.io/v1",
            "kind": "KuberhealthyCheck",
            "metadata": {"name": "c", "namespace": NS, "uid": "uid-c", "resourceVersion": "3"},
            "spec": {"runInterval": "1h", "timeout": "1m",
                     "podSpec": {"containers": [{"name": "main", "image": "checker:v1",
                                                 "env": [{"name": "KH_RUN_UUID", "value": "mine"}]}]}},
        }))
        .unwrap(),
    ))
}

fn job(phase: &str) -> Arc<KuberhealthyJob> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "comcast.github.io/v1",
            "kind": "KuberhealthyJob",
            "metadata": {"name": "j", "namespace": NS, "uid": "uid-j", "resourceVersion": "5"},
            "spec": {"phase": phase, "timeout": "1m",
                     "podSpec": {"containers": [{"name": "main", "image": "checker:v1"}]}},
        }))
        .unwrap(),
    )
}

fn state(name: &str, spec: Value) -> Arc<KuberhealthyState> {
    let mut s = KuberhealthyState::new(name, serde_json::from_value(spec).unwrap());
    s.metadata.namespace = Some(NS.into());
    s.metadata.resource_version = Some("10".into());
    Arc::new(s)
}

fn in_flight() -> Arc<KuberhealthyState> {
    state(
        "c",
        json!({"OK": true, "Errors": [], "uuid": "run-1", "runStartedAt": "2026-01-01T00:00:00Z",
               "runDeadline": "2026-01-01T00:01:00Z", "runPod": "c-run1"}),
    )
}

fn start(previous: Option<Arc<KuberhealthyState>>) -> Action {
    Action::StartRun {
        owner: check(),
        previous: previous.map(Record::State),
        timeout: Duration::from_secs(60),
        due_at: Some(Timestamp::now()),
        scheduled: true,
        honours: None,
    }
}

fn env(pod: &Value, name: &str) -> Value {
    pod["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn kinds(done: &Done) -> Vec<&'static str> {
    done.changes
        .iter()
        .map(|c| match c {
            Change::StateWritten { .. } => "state written",
            Change::HealthCheckWritten { .. } => "healthcheck written",
            Change::JobWritten { .. } => "job written",
            Change::PodCreated { .. } => "pod created",
            Change::PodDeleted { .. } => "pod deleted",
            Change::StateDeleted { .. } => "state deleted",
        })
        .collect()
}

#[tokio::test]
async fn a_start_persists_the_run_then_creates_its_pod() {
    let (done, seen) = run(
        start(Some(state("c", json!({"OK": true, "uuid": "old"})))),
        vec![
            expect(Method::PUT, format!("{STATES}/c"), Reply::Echo),
            expect(Method::POST, PODS, Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none(), "{:?}", done.failure);
    assert_eq!(kinds(&done), ["state written", "pod created"]);

    let written = &seen[0].2;
    assert_eq!(
        written["metadata"]["resourceVersion"], "10",
        "conditioned on the version read"
    );
    let uuid = written["spec"]["uuid"].as_str().unwrap();
    assert_ne!(uuid, "old");
    assert_eq!(
        written["spec"]["runTerm"],
        json!({"holder": "kh-0", "transitions": 4})
    );
    let pod_name = written["spec"]["runPod"].as_str().unwrap();

    let pod = &seen[1].2;
    assert_eq!(pod["metadata"]["name"], pod_name);
    assert_eq!(pod["metadata"]["labels"]["kuberhealthy-run-id"], uuid);
    assert_eq!(
        env(pod, "KH_RUN_UUID")["value"],
        uuid,
        "the injected UUID replaces the user's"
    );
    assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "uid-c");
}

#[tokio::test]
async fn a_first_start_creates_the_state() {
    let (done, seen) = run(
        start(None),
        vec![
            expect(Method::POST, STATES, Reply::Echo),
            expect(Method::POST, PODS, Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none());
    assert_eq!(seen[0].2["metadata"]["name"], "c");
    assert_eq!(seen[0].2["spec"]["OK"], true);
}

#[tokio::test]
async fn a_start_that_loses_the_write_creates_no_pod() {
    let (done, _) = run(
        start(Some(state("c", json!({"OK": true})))),
        vec![expect(
            Method::PUT,
            format!("{STATES}/c"),
            Reply::Refuse(409, "Conflict"),
        )],
    )
    .await;
    assert!(done.changes.is_empty());
    assert_eq!(done.failure.as_ref().unwrap().label(), "conflict");
}

#[tokio::test]
async fn a_pod_the_api_server_refuses_fails_the_run_with_its_reason() {
    let (done, seen) = run(
        start(Some(state("c", json!({"OK": true})))),
        vec![
            expect(Method::PUT, format!("{STATES}/c"), Reply::Echo),
            expect(Method::POST, PODS, Reply::Refuse(403, "Forbidden")),
            expect(Method::PUT, format!("{STATES}/c"), Reply::Echo),
            expect(Method::POST, EVENTS, Reply::Echo),
        ],
    )
    .await;
    assert_eq!(done.failure.as_ref().unwrap().label(), "forbidden");
    assert_eq!(kinds(&done), ["state written", "state written"]);
    let failed = &seen[2].2["spec"];
    assert_eq!(failed["OK"], false);
    assert_eq!(
        failed["Errors"],
        json!(["ns/c: failed to create pod for checker: refused: Forbidden"])
    );
    assert_eq!(
        seen[2].2["metadata"]["resourceVersion"], "11",
        "on top of the start it wrote"
    );
    assert_eq!(seen[3].2["reason"], "PodCreateFailed");
    assert_eq!(seen[3].2["type"], "Warning");
}

/// A run persisted just now by an earlier term, its pod not yet created.
fn in_flight_since_now() -> Arc<KuberhealthyState> {
    let now = Timestamp::now();
    state(
        "c",
        json!({"OK": true, "Errors": [], "uuid": "run-1", "runStartedAt": now,
               "scheduledStartedAt": now, "runDeadline": add(now, Duration::from_secs(60)),
               "runPod": "c-run1"}),
    )
}

#[tokio::test]
async fn a_pod_that_already_exists_is_the_same_run() {
    let (done, _) = run(
        Action::AdoptRun {
            owner: check(),
            record: Record::State(in_flight_since_now()),
        },
        vec![expect(
            Method::POST,
            PODS,
            Reply::Refuse(409, "AlreadyExists"),
        )],
    )
    .await;
    assert!(done.failure.is_none());
    assert_eq!(kinds(&done), ["pod created"]);
}

#[tokio::test]
async fn an_adopted_run_persisted_long_before_is_dated_when_its_pod_is_created() {
    let asked = Timestamp::now();
    let (done, seen) = run(
        Action::AdoptRun {
            owner: check(),
            record: Record::State(in_flight()),
        },
        vec![
            expect(Method::PUT, format!("{STATES}/c"), Reply::Echo),
            expect(Method::POST, PODS, Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none(), "{:?}", done.failure);
    assert_eq!(kinds(&done), ["state written", "pod created"]);
    let spec = &seen[0].2["spec"];
    assert_eq!(spec["uuid"], "run-1", "the same run");
    let dated: Timestamp = spec["runStartedAt"].as_str().unwrap().parse().unwrap();
    let deadline: Timestamp = spec["runDeadline"].as_str().unwrap().parse().unwrap();
    assert!(dated >= asked, "dated {dated}, adopted at {asked}");
    assert_eq!(
        deadline.duration_since(dated),
        jiff::SignedDuration::from_secs(60),
        "the run keeps its timeout"
    );
    assert_eq!(
        seen[0].2["metadata"]["resourceVersion"], "10",
        "conditioned on the version read"
    );
    assert_eq!(
        env(&seen[1].2, "KH_CHECK_RUN_DEADLINE")["value"],
        json!(deadline.as_second().to_string()),
        "the pod carries the new deadline"
    );
}

#[tokio::test]
async fn a_timed_out_run_is_failed_announced_and_its_pod_deleted() {
    let (done, seen) = run(
        Action::FinishRun {
            owner: check(),
            record: Record::State(in_flight()),
            ending: Ending::TimedOut,
            message: "ns/c: timed out waiting for checker pod to report in".into(),
            node: Some("node-1".into()),
            log: None,
            delete_pod: Some("c-run1".into()),
        },
        vec![
            expect(Method::PUT, format!("{STATES}/c"), Reply::Echo),
            expect(Method::POST, EVENTS, Reply::Echo),
            expect(Method::DELETE, format!("{PODS}/c-run1"), Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none());
    assert_eq!(kinds(&done), ["state written", "pod deleted"]);
    let spec = &seen[0].2["spec"];
    assert_eq!(spec["OK"], false);
    assert_eq!(spec["Node"], "node-1");
    assert!(spec["runFinishedAt"].is_string());
    assert_eq!(seen[1].2["reason"], "RunTimedOut");
}

fn exited() -> Action {
    Action::FinishRun {
        owner: check(),
        record: Record::State(in_flight()),
        ending: Ending::PodFailed,
        message:
            "ns/c: checker pod c-run1 container main exited with code 1 (Error) without reporting"
                .into(),
        node: Some("node-1".into()),
        log: Some(LogSource {
            pod: "c-run1".into(),
            container: "main".into(),
        }),
        delete_pod: None,
    }
}

const LOG_OF_RUN: &str =
    "/api/v1/namespaces/ns/pods/c-run1/log?&container=main&limitBytes=16384&tailLines=20";

#[tokio::test]
async fn a_run_that_failed_without_reporting_keeps_the_last_lines_its_checker_printed() {
    let (done, seen) = run(
        exited(),
        vec![
            expect(
                Method::GET,
                LOG_OF_RUN,
                Reply::Text("connecting to db.example:5432\nerror: connection refused\n"),
            ),
            expect(Method::PUT, format!("{STATES}/c"), Reply::Echo),
            expect(Method::POST, EVENTS, Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none());
    let spec = &seen[1].2["spec"];
    assert_eq!(
        spec["Errors"],
        json!([
            "ns/c: checker pod c-run1 container main exited with code 1 (Error) without reporting",
            "last output of the checker: connecting to db.example:5432\nerror: connection refused\n"
        ])
    );
    assert_eq!(
        spec["history"][0]["logExcerpt"],
        "connecting to db.example:5432\nerror: connection refused\n"
    );
    assert_eq!(spec["history"][0]["errors"].as_array().unwrap().len(), 1);
    assert_eq!(spec["daily"][0]["failures"], 1);
}

#[tokio::test]
async fn a_log_that_cannot_be_read_leaves_the_run_without_an_excerpt() {
    let (done, seen) = run(
        exited(),
        vec![
            expect(Method::GET, LOG_OF_RUN, Reply::Refuse(400, "BadRequest")),
            expect(Method::PUT, format!("{STATES}/c"), Reply::Echo),
            expect(Method::POST, EVENTS, Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none());
    let spec = &seen[1].2["spec"];
    assert_eq!(spec["Errors"].as_array().unwrap().len(), 1);
    assert!(spec["history"][0].get("logExcerpt").is_none());
}

#[tokio::test]
async fn a_finish_that_loses_the_write_announces_nothing() {
    let (done, _) = run(
        Action::FinishRun {
            owner: check(),
            record: Record::State(in_flight()),
            ending: Ending::PodFailed,
            message: "ns/c: checker pod c-run1 exited".into(),
            node: None,
            log: None,
            delete_pod: None,
        },
        vec![expect(
            Method::PUT,
            format!("{STATES}/c"),
            Reply::Refuse(409, "Conflict"),
        )],
    )
    .await;
    assert_eq!(done.failure.as_ref().unwrap().label(), "conflict");
    assert!(done.changes.is_empty());
}

#[tokio::test]
async fn nothing_is_written_once_the_term_has_ended() {
    let ended = term(Duration::ZERO);
    let (done, seen) = run_in(ended, start(None), vec![]).await;
    assert_eq!(done.failure.as_ref().unwrap().label(), "term_ended");
    assert!(seen.is_empty());
}

#[tokio::test]
async fn an_invalid_check_is_recorded_and_announced() {
    let (done, seen) = run(
        Action::MarkInvalid {
            owner: check(),
            previous: None,
            errors: vec!["ns/c: invalid check: spec.runInterval: is empty".into()],
        },
        vec![
            expect(Method::POST, STATES, Reply::Echo),
            expect(Method::POST, EVENTS, Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none());
    assert_eq!(seen[0].2["spec"]["OK"], false);
    assert_eq!(seen[0].2["spec"]["khWorkload"], "KHCheck");
    assert_eq!(seen[1].2["reason"], "InvalidSpec");
}

#[tokio::test]
async fn a_new_job_starts_its_run_then_is_marked_running() {
    let (done, seen) = run(
        Action::StartJob {
            job: job(""),
            previous: None,
            timeout: Duration::from_secs(60),
        },
        vec![
            expect(Method::POST, STATES, Reply::Echo),
            expect(Method::POST, PODS, Reply::Echo),
            expect(Method::PUT, format!("{JOBS}/j"), Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none());
    assert_eq!(
        kinds(&done),
        ["state written", "pod created", "job written"]
    );
    assert_eq!(seen[0].2["spec"]["khWorkload"], "KHJob");
    assert_eq!(seen[2].2["spec"]["phase"], "Running");
    assert_eq!(seen[2].2["metadata"]["resourceVersion"], "5");
}

#[tokio::test]
async fn a_completed_job_is_deleted_and_one_already_gone_is_fine() {
    let (done, _) = run(
        Action::ExpireJob {
            job: job("Completed"),
        },
        vec![expect(
            Method::DELETE,
            format!("{JOBS}/j"),
            Reply::Refuse(404, "NotFound"),
        )],
    )
    .await;
    assert!(done.failure.is_none());
}

#[tokio::test]
async fn deleting_a_state_and_a_pod() {
    let (done, _) = run(
        Action::DeleteState {
            namespace: NS.into(),
            name: "c".into(),
            why: "its check or job was deleted",
        },
        vec![expect(Method::DELETE, format!("{STATES}/c"), Reply::Echo)],
    )
    .await;
    assert_eq!(kinds(&done), ["state deleted"]);

    let (done, _) = run(
        Action::DeletePod {
            namespace: NS.into(),
            name: "c-1".into(),
            why: "retention",
        },
        vec![expect(
            Method::DELETE,
            format!("{PODS}/c-1"),
            Reply::Refuse(403, "Forbidden"),
        )],
    )
    .await;
    assert_eq!(done.failure.as_ref().unwrap().label(), "forbidden");
    assert!(
        done.changes.is_empty(),
        "a refused delete is not remembered as done"
    );
}

#[tokio::test]
async fn a_start_persisted_late_is_dated_when_it_landed_before_its_pod_is_created() {
    let asked = Timestamp::now();
    let (done, seen) = run(
        start(Some(state("c", json!({"OK": true})))),
        vec![
            expect(
                Method::PUT,
                format!("{STATES}/c"),
                Reply::EchoAfter(transition::LATE_START + Duration::from_millis(200)),
            ),
            expect(Method::PUT, format!("{STATES}/c"), Reply::Echo),
            expect(Method::POST, PODS, Reply::Echo),
        ],
    )
    .await;
    assert!(done.failure.is_none(), "{:?}", done.failure);
    let planned: Timestamp = seen[0].2["spec"]["runStartedAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let dated: Timestamp = seen[1].2["spec"]["runStartedAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(planned >= asked);
    assert!(
        dated.duration_since(planned)
            > jiff::SignedDuration::try_from(transition::LATE_START).unwrap(),
        "planned {planned}, dated {dated}"
    );
    assert_eq!(
        seen[1].2["spec"]["scheduledStartedAt"],
        seen[1].2["spec"]["runStartedAt"]
    );
    assert_eq!(
        seen[1].2["metadata"]["resourceVersion"], "11",
        "on top of the late write"
    );
    // The pod's deadline is the redated one.
    let deadline: Timestamp = seen[1].2["spec"]["runDeadline"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        env(&seen[2].2, "KH_CHECK_RUN_DEADLINE")["value"],
        json!(deadline.as_second().to_string())
    );
}
mod healthchecks;
