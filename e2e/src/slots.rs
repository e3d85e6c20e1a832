//! Runs as the pod runner recorded them (its [`record`]), not as the controller reports
//! them: which pods each run had, when each check's runs started and how they ended. What
//! the HA tests and the soak assert and print about duplicate and back-to-back runs.
//!
//! [`record`]: crate::pod_runner::record

use std::collections::BTreeMap;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::audit::AuditEvent;
use crate::pod_runner::record::{Entry, Event};

/// The pod label naming the run (`kuberhealthy-run-id`).
pub const LABEL_RUN_ID: &str = "kuberhealthy-run-id";
/// The pod label naming the check (`kuberhealthy-check-name`).
pub const LABEL_CHECK_NAME: &str = "kuberhealthy-check-name";

/// One run of a check: every pod the runner started for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    pub namespace: String,
    pub check: String,
    pub run: String,
    /// The name of its first pod (its container logs are under it).
    pub pod: String,
    /// Pods (by UID) started for this run, in the order they started.
    pub pods: Vec<String>,
    /// When its first container started.
    pub started: Timestamp,
    /// When its first pod's last container exited, and the highest exit code; `None`
    /// while still running.
    pub exited: Option<(Timestamp, i32)>,
}

impl RunRecord {
    /// `namespace/check`
    pub fn check_key(&self) -> String {
        format!("{}/{}", self.namespace, self.check)
    }
}

/// The runs in `entries`, by `namespace/check`, each check's in order of start. Pods without
/// the run and check labels (not checker pods) are left out.
pub fn runs_by_check(entries: &[Entry]) -> BTreeMap<String, Vec<RunRecord>> {
    let mut runs: BTreeMap<(String, String, String), RunRecord> = BTreeMap::new();
    let mut first_pod: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for entry in entries {
        let (Some(run), Some(check)) = (entry.label(LABEL_RUN_ID), entry.label(LABEL_CHECK_NAME))
        else {
            continue;
        };
        let key = (entry.namespace.clone(), check.to_string(), run.to_string());
        let record = runs.entry(key.clone()).or_insert_with(|| RunRecord {
            namespace: entry.namespace.clone(),
            check: check.to_string(),
            run: run.to_string(),
            pod: entry.pod.clone(),
            pods: Vec::new(),
            started: entry.at.0,
            exited: None,
        });
        match entry.event {
            Event::Started => {
                if !record.pods.contains(&entry.uid) {
                    record.pods.push(entry.uid.clone());
                }
                record.started = record.started.min(entry.at.0);
                first_pod.entry(key).or_insert_with(|| entry.uid.clone());
            }
            Event::Exited => {
                if first_pod.get(&key) == Some(&entry.uid) {
                    let code = entry.code.unwrap_or(0);
                    record.exited = Some(match record.exited {
                        Some((at, worst)) => (at.max(entry.at.0), worst.max(code)),
                        None => (entry.at.0, code),
                    });
                }
            }
        }
    }
    let mut by_check: BTreeMap<String, Vec<RunRecord>> = BTreeMap::new();
    for record in runs.into_values() {
        by_check.entry(record.check_key()).or_default().push(record);
    }
    for runs in by_check.values_mut() {
        runs.sort_by_key(|r| r.started);
    }
    by_check
}

/// Runs that had more than one pod: two starts of one slot.
pub fn duplicates(runs: &BTreeMap<String, Vec<RunRecord>>) -> Vec<&RunRecord> {
    runs.values()
        .flatten()
        .filter(|r| r.pods.len() > 1)
        .collect()
}

/// Consecutive runs of one check that started less than `min_gap` apart (the second run
/// was not due yet: a slot run twice, or a run due at once after a late start), as
/// `(earlier, later, gap)`.
pub fn back_to_back(
    runs: &BTreeMap<String, Vec<RunRecord>>,
    min_gap: SignedDuration,
) -> Vec<(&RunRecord, &RunRecord, SignedDuration)> {
    runs.values()
        .flat_map(|runs| runs.windows(2))
        .map(|pair| {
            (
                &pair[0],
                &pair[1],
                pair[1].started.duration_since(pair[0].started),
            )
        })
        .filter(|(_, _, gap)| *gap < min_gap)
        .collect()
}

/// When the API server created each pod (`namespace/pod`), from its audit log: when the
/// controller started each run, to the microsecond, whenever its node began running it.
pub fn pods_created(events: &[AuditEvent]) -> BTreeMap<String, Timestamp> {
    events
        .iter()
        .filter(|e| e.verb == "create" && e.resource() == "pods" && e.succeeded())
        .map(|e| (e.object(), e.stage_timestamp))
        .collect()
}

/// Re-dates each run to when the API server created its pod (`namespace/pod` → time, see
/// [`pods_created`]), where known: the leader's act, free of the pod runner's start latency
/// (a node that cannot reach the API server starts its containers late). Returns how many
/// runs were re-dated.
pub fn date_by_pod_creation(
    runs: &mut BTreeMap<String, Vec<RunRecord>>,
    created: &BTreeMap<String, Timestamp>,
) -> usize {
    let mut dated = 0;
    for list in runs.values_mut() {
        for run in list.iter_mut() {
            if let Some(at) = created.get(&format!("{}/{}", run.namespace, run.pod)) {
                run.started = *at;
                dated += 1;
            }
        }
        list.sort_by_key(|r| r.started);
    }
    dated
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn entry(at: i64, event: Event, check: &str, run: &str, uid: &str) -> Entry {
        Entry {
            at: Time(Timestamp::from_second(at).unwrap()),
            event,
            namespace: "ns".into(),
            pod: format!("{check}-{run}"),
            uid: uid.into(),
            container: "main".into(),
            labels: BTreeMap::from([
                (LABEL_RUN_ID.to_string(), run.to_string()),
                (LABEL_CHECK_NAME.to_string(), check.to_string()),
            ]),
            code: (event == Event::Exited).then_some(0),
        }
    }

    #[test]
    fn runs_group_pods_and_order_by_start() {
        let entries = vec![
            entry(20, Event::Started, "a", "r2", "p2"),
            entry(10, Event::Started, "a", "r1", "p1"),
            entry(11, Event::Exited, "a", "r1", "p1"),
            entry(30, Event::Started, "b", "r3", "p3"),
        ];
        let runs = runs_by_check(&entries);
        let a = &runs["ns/a"];
        assert_eq!(
            a.iter().map(|r| r.run.as_str()).collect::<Vec<_>>(),
            ["r1", "r2"]
        );
        assert_eq!(a[0].exited.map(|(_, code)| code), Some(0));
        assert_eq!(a[1].exited, None, "still running");
        assert_eq!(runs["ns/b"].len(), 1);
        assert!(duplicates(&runs).is_empty());
    }

    #[test]
    fn a_run_with_two_pods_is_a_duplicate() {
        let entries = vec![
            entry(10, Event::Started, "a", "r1", "p1"),
            entry(10, Event::Started, "a", "r1", "p1"),
            entry(12, Event::Started, "a", "r1", "p9"),
        ];
        let runs = runs_by_check(&entries);
        let dups = duplicates(&runs);
        assert_eq!(dups.len(), 1);
        assert_eq!(dups[0].pods, ["p1", "p9"], "the same pod twice is one pod");
    }

    #[test]
    fn runs_closer_than_the_gap_are_back_to_back() {
        let entries = vec![
            entry(10, Event::Started, "a", "r1", "p1"),
            entry(20, Event::Started, "a", "r2", "p2"),
            entry(21, Event::Started, "a", "r3", "p3"),
            entry(10, Event::Started, "b", "r4", "p4"),
            entry(11, Event::Started, "b", "r5", "p5"),
        ];
        let runs = runs_by_check(&entries);
        let close = back_to_back(&runs, SignedDuration::from_secs(5));
        let pairs: Vec<(&str, &str)> = close
            .iter()
            .map(|(a, b, _)| (a.run.as_str(), b.run.as_str()))
            .collect();
        assert_eq!(pairs, [("r2", "r3"), ("r4", "r5")]);
        assert_eq!(close[0].2, SignedDuration::from_secs(1));
    }

    #[test]
    fn runs_are_dated_by_their_pods_creation_from_the_audit_log() {
        // r2's container started late (its node stalled); its pod was created on time.
        let entries = vec![
            entry(10, Event::Started, "a", "r1", "p1"),
            entry(22, Event::Started, "a", "r2", "p2"),
            entry(23, Event::Started, "a", "r3", "p3"),
            entry(30, Event::Started, "a", "r4", "p4"),
        ];
        let mut runs = runs_by_check(&entries);
        let line = |name: &str, at: &str, code: u16| {
            format!(
                r#"{{"stage":"ResponseComplete","verb":"create","requestURI":"/api/v1/namespaces/ns/pods","user":{{"username":"kh"}},"userAgent":"kuberhealthy/0","objectRef":{{"resource":"pods","namespace":"ns","name":"{name}"}},"responseStatus":{{"code":{code}}},"requestReceivedTimestamp":"{at}","stageTimestamp":"{at}"}}"#
            )
        };
        let log = [
            line("a-r1", "1970-01-01T00:00:10.1Z", 201),
            line("a-r2", "1970-01-01T00:00:15.2Z", 201),
            line("a-r3", "1970-01-01T00:00:22.9Z", 201),
            line("a-r3", "1970-01-01T00:00:23Z", 409),
        ]
        .join("\n");
        let created = pods_created(&crate::audit::parse(&log).unwrap());
        assert_eq!(created.len(), 3, "{created:?}");
        assert_eq!(
            back_to_back(&runs, SignedDuration::from_secs(5)).len(),
            1,
            "by container start, r2 and r3 look back to back"
        );
        assert_eq!(
            date_by_pod_creation(&mut runs, &created),
            3,
            "r4's creation is unknown"
        );
        assert!(back_to_back(&runs, SignedDuration::from_secs(5)).is_empty());
        let starts: Vec<(&str, Timestamp)> = runs["ns/a"]
            .iter()
            .map(|r| (r.run.as_str(), r.started))
            .collect();
        assert_eq!(starts[2], ("r3", "1970-01-01T00:00:22.9Z".parse().unwrap()));
        assert_eq!(starts[3], ("r4", Timestamp::from_second(30).unwrap()));
    }
}
