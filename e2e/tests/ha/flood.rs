//! The leader under a flood (issue 18): for [`FLOOD`], hundreds of slow clients (half a
//! request line, then nothing, again whenever they are cut), bodies that never end, and a
//! steady load of `GET /json` and of reports, all at the leader.
//!
//! Proven from the API server's audit log, not from the replica: the leader's successful
//! Lease writes never lie further apart than the retry period plus [`RENEWAL_SLACK`], and no
//! other replica takes the Lease. And a probe of the leader's status page, apart from the
//! flood, gets 200 within [`PAGE_BOUND`] every time. The slow clients must have been cut by
//! the header read time-out and the endless bodies by the body read time-out (408), or the
//! flood proved nothing. Figures in `target/e2e-figures/flood.json`.
//!
//! Every loop is bounded by the flood's end; every connection goes to the replica's address
//! on the harness's bridge, on this machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kuberhealthy_e2e::audit::AuditEvent;
use kuberhealthy_e2e::http;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::figures::{self, ms};
use crate::history::{is_lease_write, replica_of};
use crate::setup::{Ha, LEASE_NAME, Reporting, go_duration, replica_name};
use crate::{RETRY_PERIOD, serial};

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(20);
/// Clients that send half a request line and stop.
const SLOW_CLIENTS: usize = 300;
/// Clients whose chunked report body never ends.
const ENDLESS_BODIES: usize = 50;
/// Clients asking `GET /json` as fast as they are answered.
const PAGE_CLIENTS: usize = 24;
/// Clients posting reports as fast as they are answered.
const REPORT_CLIENTS: usize = 16;
/// The replicas' time-outs, short so that the slow clients are cut and come back during
/// the flood.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How much later than its retry period a renewal may come (the renewal's own request
/// time on a loaded 2-core machine).
const RENEWAL_SLACK: Duration = Duration::from_millis(1000);
/// How long the probe may wait for the status page.
const PAGE_BOUND: Duration = Duration::from_secs(3);
/// How often the probe asks.
const PROBE_EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Counts {
    slow_cut: AtomicUsize,
    bodies_cut_408: AtomicUsize,
    bodies_other: AtomicUsize,
    pages_200: AtomicUsize,
    pages_503: AtomicUsize,
    pages_other: AtomicUsize,
    reports_4xx: AtomicUsize,
    reports_503: AtomicUsize,
    reports_other: AtomicUsize,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Counts {
    fn add(counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn fail(&self, what: String) {
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 20 {
            failures.push(what);
        }
    }
}

/// Half a request line, then nothing, until the server closes the connection; again.
async fn slow_client(addr: SocketAddr, until: Instant, counts: Arc<Counts>) {
    while Instant::now() < until {
        let Ok(Ok(mut stream)) =
            tokio::time::timeout_at(until.into(), TcpStream::connect(addr)).await
        else {
            continue;
        };
        if stream
            .write_all(b"GET /json HTTP/1.1\r\nHost: fl")
            .await
            .is_err()
        {
            continue;
        }
        let mut buf = [0u8; 256];
        let closed = async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        if tokio::time::timeout_at(until.into(), closed).await.is_ok() {
            Counts::add(&counts.slow_cut);
        }
    }
}

/// A report whose chunked body trickles forever, until the server answers and closes.
async fn endless_body(addr: SocketAddr, until: Instant, counts: Arc<Counts>) {
    let head = "POST /externalCheckStatus HTTP/1.1\r\nHost: flood\r\nkh-run-uuid: 00000000-0000-4000-8000-00000000f100\r\nTransfer-Encoding: chunked\r\n\r\n";
    while Instant::now() < until {
        let Ok(Ok(stream)) = tokio::time::timeout_at(until.into(), TcpStream::connect(addr)).await
        else {
            continue;
        };
        let (mut read, mut write) = stream.into_split();
        if write.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let finished = loop {
            tokio::select! {
                read = read.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break true,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                _ = tick.tick() => {
                    // Writes fail once the server has cut the connection; the read says how.
                    let _ = write.write_all(b"1\r\n \r\n").await;
                }
                () = tokio::time::sleep_until(until.into()) => break false,
            }
        };
        if !finished {
            break;
        }
        let answer = String::from_utf8_lossy(&answer);
        if answer.starts_with("HTTP/1.1 408") {
            Counts::add(&counts.bodies_cut_408);
        } else {
            Counts::add(&counts.bodies_other);
            counts.fail(format!(
                "an endless body was answered {:?}",
                answer.lines().next()
            ));
        }
    }
}

async fn page_client(addr: SocketAddr, until: Instant, counts: Arc<Counts>) {
    while Instant::now() < until {
        match http::get(addr, "/json").await {
            Ok(r) if r.status == 200 => Counts::add(&counts.pages_200),
            Ok(r) if r.status == 503 => Counts::add(&counts.pages_503),
            other => {
                Counts::add(&counts.pages_other);
                counts.fail(format!("GET /json: {other:?}"));
            }
        }
    }
}

/// Reports for runs nobody has (each costs the replica a lookup on the API server) and
/// with a malformed run UUID (refused before any lookup), in turns.
async fn report_client(addr: SocketAddr, until: Instant, counts: Arc<Counts>, client: usize) {
    let mut sent = 0usize;
    while Instant::now() < until {
        sent += 1;
        let uuid = if sent.is_multiple_of(2) {
            format!("00000000-0000-4000-8000-{client:06}{sent:06}")
        } else {
            "not a uuid".to_string()
        };
        let body = br#"{"OK": false, "Errors": ["flood"]}"#;
        match http::post(
            addr,
            "/externalCheckStatus",
            &[("kh-run-uuid", &uuid)],
            body,
        )
        .await
        {
            Ok(r) if r.status == 400 => Counts::add(&counts.reports_4xx),
            Ok(r) if r.status == 503 => Counts::add(&counts.reports_503),
            other => {
                Counts::add(&counts.reports_other);
                counts.fail(format!("report for {uuid:?}: {other:?}"));
            }
        }
    }
}

/// The status page as a user sees it during the flood: every answer's latency.
async fn probe(addr: SocketAddr, until: Instant) -> Vec<(Duration, Result<u16, String>)> {
    let mut seen = Vec::new();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    while Instant::now() < until {
        tick.tick().await;
        let asked = Instant::now();
        let answer = match tokio::time::timeout(PAGE_BOUND * 5, http::get(addr, "/json")).await {
            Ok(Ok(r)) => Ok(r.status),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err("no answer".into()),
        };
        seen.push((asked.elapsed(), answer));
    }
    seen
}

/// The gaps between the leader's successful Lease writes received from `from` to `to`.
fn renewal_gaps(
    events: &[AuditEvent],
    leader: &str,
    namespace: &str,
    from: Timestamp,
    to: Timestamp,
) -> Vec<Duration> {
    let mut renewals: Vec<Timestamp> = events
        .iter()
        .filter(|e| e.stage == "ResponseComplete" && e.succeeded())
        .filter(|e| replica_of(e) == Some(leader) && is_lease_write(e, namespace, LEASE_NAME))
        .map(|e| e.request_received_timestamp)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    renewals.sort();
    renewals
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unsigned_abs())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_leader_renews_on_time_and_its_page_answers() {
    let _serial = serial().await;
    let mut ha = Ha::start("ha-flood", Reporting::OwnReplica)
        .await
        .expect("starting the control plane, RBAC and checks");
    ha.set_env(
        "KH_HTTP_HEADER_READ_TIMEOUT",
        &go_duration(HEADER_READ_TIMEOUT),
    );
    ha.set_env("KH_HTTP_BODY_READ_TIMEOUT", &go_duration(BODY_READ_TIMEOUT));
    // kh-0 starts alone, so it is the leader that gets flooded; kh-1 would take over.
    ha.spawn(0).await.expect("starting kh-0");
    assert_eq!(ha.settle().await.expect("kh-0 leading"), 0);
    ha.spawn(1).await.expect("starting kh-1");
    assert_eq!(ha.settle().await.expect("two replicas, kh-0 leading"), 0);
    let leader = replica_name(0);
    let addr = ha.addr(0);

    let counts = Arc::new(Counts::default());
    let started_wall = Timestamp::now();
    let started = Instant::now();
    let until = started + FLOOD;
    let mut flood = JoinSet::new();
    for _ in 0..SLOW_CLIENTS {
        flood.spawn(slow_client(addr, until, counts.clone()));
    }
    for _ in 0..ENDLESS_BODIES {
        flood.spawn(endless_body(addr, until, counts.clone()));
    }
    for _ in 0..PAGE_CLIENTS {
        flood.spawn(page_client(addr, until, counts.clone()));
    }
    for client in 0..REPORT_CLIENTS {
        flood.spawn(report_client(addr, until, counts.clone(), client));
    }
    let probed = probe(addr, until).await;
    // Every client stops at `until`; the last exchange may take its own time-out.
    tokio::time::timeout(Duration::from_secs(30), async {
        while flood.join_next().await.is_some() {}
    })
    .await
    .expect("the flood's clients stop");
    let ended_wall = Timestamp::now();
    let flooded_for = started.elapsed();

    let events = ha.audit().expect("reading the audit log");
    let gaps = renewal_gaps(&events, &leader, ha.namespace(), started_wall, ended_wall);
    // For comparison: the same leader's renewals in the quiet seconds before the flood.
    let quiet_from = started_wall - k8s_openapi::jiff::SignedDuration::from_secs(10);
    let quiet = renewal_gaps(&events, &leader, ha.namespace(), quiet_from, started_wall);
    let tenures = crate::history::tenures(&events, ha.namespace(), LEASE_NAME);
    assert!(
        tenures.violations.is_empty(),
        "leader-only writes outside their tenure: {:?}",
        tenures.violations
    );
    let takeovers: Vec<String> = ha
        .lease
        .snapshot()
        .iter()
        .filter(|seen| seen.at >= started && seen.holder.as_deref() != Some(leader.as_str()))
        .map(|seen| format!("{:?} at +{:?}", seen.holder, seen.at - started))
        .collect();

    let load = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    let gap_ms: Vec<f64> = gaps.iter().map(|g| ms(*g)).collect();
    let quiet_ms: Vec<f64> = quiet.iter().map(|g| ms(*g)).collect();
    let probe_ms: Vec<f64> = probed.iter().map(|(d, _)| ms(*d)).collect();
    let figures = json!({
        "flood_s": flooded_for.as_secs_f64(),
        "clients": {
            "slow": SLOW_CLIENTS, "endless_bodies": ENDLESS_BODIES,
            "pages": PAGE_CLIENTS, "reports": REPORT_CLIENTS,
        },
        "slow_connections_cut": load(&counts.slow_cut),
        "endless_bodies_cut_408": load(&counts.bodies_cut_408),
        "pages": { "200": load(&counts.pages_200), "503": load(&counts.pages_503), "other": load(&counts.pages_other) },
        "reports": { "400": load(&counts.reports_4xx), "503": load(&counts.reports_503), "other": load(&counts.reports_other) },
        "renewal_gaps": figures::summarize(&gap_ms).to_json(),
        "renewal_gaps_before_the_flood": figures::summarize(&quiet_ms).to_json(),
        "probe_latency": figures::summarize(&probe_ms).to_json(),
    });
    let path = figures::write("flood", &figures).expect("writing the figures");
    println!(
        "flood figures ({}):\n{}",
        path.display(),
        serde_json::to_string_pretty(&figures).unwrap()
    );

    let failures = counts.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "answers outside the bounds:\n{}",
        failures.join("\n")
    );
    assert!(
        takeovers.is_empty(),
        "the Lease changed hands during the flood: {takeovers:?}\n{}",
        ha.describe_replicas()
    );
    // Renewals on time fill the flood: one at least every retry period plus the slack.
    let expected = (FLOOD.as_millis() / (RETRY_PERIOD + RENEWAL_SLACK).as_millis()) as usize;
    assert!(
        gaps.len() >= expected,
        "only {} renewals by {leader} in the audit log during the flood",
        gaps.len() + 1
    );
    let late: Vec<String> = gaps
        .iter()
        .filter(|g| **g > RETRY_PERIOD + RENEWAL_SLACK)
        .map(|g| format!("{g:?}"))
        .collect();
    assert!(
        late.is_empty(),
        "renewals later than the retry period {RETRY_PERIOD:?} + {RENEWAL_SLACK:?}: {late:?}"
    );
    let slow_probes: Vec<String> = probed
        .iter()
        .filter(|(took, answer)| *took > PAGE_BOUND || *answer != Ok(200))
        .map(|(took, answer)| format!("{answer:?} after {took:?}"))
        .collect();
    assert!(
        slow_probes.is_empty(),
        "the status page did not answer 200 within {PAGE_BOUND:?}: {slow_probes:?}"
    );
    assert!(
        probed.len() as u128 >= FLOOD.as_millis() / PROBE_EVERY.as_millis() / 2,
        "the probe asked only {} times",
        probed.len()
    );
    // The flood really held connections and was really cut.
    assert!(
        load(&counts.slow_cut) >= SLOW_CLIENTS,
        "only {} slow connections were cut by the header read time-out",
        load(&counts.slow_cut)
    );
    assert!(
        load(&counts.bodies_cut_408) >= ENDLESS_BODIES,
        "only {} endless bodies were cut with 408",
        load(&counts.bodies_cut_408)
    );
    assert!(load(&counts.pages_200) > 0 && load(&counts.reports_4xx) > 0);
}
