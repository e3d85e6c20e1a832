//! The bodies of the fuzz targets: each takes arbitrary bytes, runs what a replica runs on
//! such input, and panics only when an invariant breaks. The coverage-guided fuzzer
//! (`fuzz/`, `make fuzz`) and the corpus replay (`tests/fuzz_corpus.rs`, in `make test`)
//! both call these, so a crash found once stays a regression test.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::HeaderValue;
use jiff::Timestamp;
use serde::Deserialize;

use crate::api::duration;
use crate::api::{HealthCheck, KuberhealthyCheck, KuberhealthyJob, KuberhealthyState};
use crate::controller::config::{ConfigFile, RunArgs, Settings};
use crate::controller::report::parse::{self, MAX_ERROR_BYTES, MAX_RUN_UUID_BYTES};
use crate::controller::status::{self, Snapshot};

/// A target: arbitrary bytes in, a panic only when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name, as `make fuzz` and the corpus replay know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("report", report),
    ("duration", duration),
    ("config", config),
    ("resources", resources),
    ("status_page", status_page),
];

/// A report: the first line is the `kh-run-uuid` header (absent when there is no line
/// break), the rest the body.
pub fn report(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (HeaderValue::from_bytes(&data[..at]).ok(), &data[at + 1..]),
        None => (None, data),
    };
    let Ok((uuid, report)) = parse::intake(header.as_ref(), body) else {
        return;
    };
    if let Some(uuid) = uuid {
        assert!(!uuid.is_empty() && uuid.len() <= MAX_RUN_UUID_BYTES);
        assert!(
            uuid.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
            "{uuid:?} would be a label selector's syntax"
        );
    }
    assert!(report.ok || !report.errors.is_empty(), "a failure says why");
    assert!(report.errors.iter().all(|e| !e.trim().is_empty()));
    assert!(report.errors.iter().map(String::len).sum::<usize>() <= MAX_ERROR_BYTES);
}

/// A Go duration: what parses prints as Go prints it, and that parses back to the same.
pub fn duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = duration::parse(text) else {
        return;
    };
    let printed = duration::format(parsed);
    assert_eq!(
        duration::parse(&printed),
        Ok(parsed),
        "{text:?} printed as {printed:?}"
    );
    // And any duration Go can hold, from the bytes as nanoseconds.
    if let Some(bytes) = data.get(..8) {
        let nanos = u64::from_le_bytes(bytes.try_into().expect("8 bytes")) >> 1;
        let d = std::time::Duration::from_nanos(nanos);
        assert_eq!(duration::parse(&duration::format(d)), Ok(d), "{nanos} ns");
    }
}

/// v2's config file, resolved as `kuberhealthy run` resolves it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = ConfigFile::parse("kuberhealthy.yaml", text) else {
        return;
    };
    let args = RunArgs {
        pod_name: Some("kuberhealthy-0".into()),
        pod_namespace: Some("kuberhealthy".into()),
        ..RunArgs::default()
    };
    if let Ok(settings) = Settings::resolve(&args, &file, None) {
        serde_json::to_string(&settings).expect("resolved settings print");
    }
}

/// A khcheck, khjob, khstate or HealthCheck as the API server hands it over (JSON, written
/// by v2, by v3 or by hand): read and validated as the cache and the planner do.
pub fn resources(data: &[u8]) {
    if let Ok(check) = serde_json::from_slice::<KuberhealthyCheck>(data) {
        let _ = check.validate();
        let _ = check.run_requested();
        round_trip(&check);
    }
    if let Ok(job) = serde_json::from_slice::<KuberhealthyJob>(data) {
        let _ = job.validate();
        let _ = job.phase();
        round_trip(&job);
    }
    if let Ok(state) = serde_json::from_slice::<KuberhealthyState>(data) {
        let _ = state.spec.run_in_flight();
        round_trip(&state);
    }
    if let Ok(healthcheck) = serde_json::from_slice::<HealthCheck>(data) {
        let _ = healthcheck.validate();
        let _ = healthcheck.pod_spec();
        let _ = healthcheck.status.as_ref().map(|s| s.has_run());
        round_trip(&healthcheck);
    }
}

/// What is read is written back (a replica replaces states it read) and read again.
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) {
    let written = serde_json::to_vec(value).expect("a resource that was read is written");
    serde_json::from_slice::<T>(&written).expect("a resource that was written is read");
}

/// Arbitrary cache contents, in JSON.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct CacheContents {
    checks: Vec<KuberhealthyCheck>,
    jobs: Vec<KuberhealthyJob>,
    states: Vec<KuberhealthyState>,
    healthchecks: Vec<HealthCheck>,
    current_master: Option<String>,
    metadata: BTreeMap<String, String>,
    /// Unix seconds.
    now: i64,
    /// `?namespace=`
    namespace: Option<String>,
}

fn arcs<T>(items: Vec<T>) -> Vec<Arc<T>> {
    items.into_iter().map(Arc::new).collect()
}

/// The status pages (v2's and v3's) rendered and serialized from arbitrary cache contents.
pub fn status_page(data: &[u8]) {
    let Ok(contents) = serde_json::from_slice::<CacheContents>(data) else {
        return;
    };
    let (checks, jobs, states, healthchecks) = (
        arcs(contents.checks),
        arcs(contents.jobs),
        arcs(contents.states),
        arcs(contents.healthchecks),
    );
    let now = Timestamp::from_second(contents.now).unwrap_or(Timestamp::UNIX_EPOCH);
    let snapshot = Snapshot {
        checks: &checks,
        jobs: &jobs,
        states: &states,
        healthchecks: &healthchecks,
        current_master: contents.current_master.as_deref(),
        metadata: &contents.metadata,
        now,
    };
    let filter = status::parse_namespace_filter(contents.namespace.as_deref());
    let page = status::render(&snapshot, &filter);
    serde_json::to_string_pretty(&page).expect("the status page serializes");
    let page = status::v3::render(&snapshot, &filter);
    serde_json::to_string_pretty(&page).expect("v3's status page serializes");
}
