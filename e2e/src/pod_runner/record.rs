//! The pod runner's own record of what it ran: one JSON line per container started and per
//! container exited, in `<log dir>/pod-runner-record.jsonl`. Tests and the soak count runs
//! from it, not from what the controller says it did.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use super::status::now;

/// The record's file name inside the pod runner's log directory (not a valid namespace
/// name, so it never meets a pod's directory).
pub const FILE_NAME: &str = "pod-runner-record.jsonl";

/// The record of the pod runner writing into `log_dir`.
pub fn path(log_dir: &Path) -> PathBuf {
    log_dir.join(FILE_NAME)
}

/// What happened to a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Event {
    Started,
    Exited,
}

/// One line of the record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub at: Time,
    pub event: Event,
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
    pub labels: BTreeMap<String, String>,
    /// The exit code, for `Exited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

impl Entry {
    pub fn new(pod: &Pod, container: &str, event: Event, code: Option<i32>) -> Entry {
        Entry {
            at: now(),
            event,
            namespace: pod.namespace().unwrap_or_default(),
            pod: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            container: container.to_string(),
            labels: pod.labels().clone(),
            code,
        }
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// Appends `entry` to the record in `log_dir`; a failure is logged, never fatal (the pod
/// runs whatever its record says).
pub fn append(log_dir: &Path, entry: &Entry) {
    let result = (|| -> Result<()> {
        let mut line = serde_json::to_string(entry)?;
        line.push('\n');
        // One write of one line with O_APPEND: lines of concurrent pods never interleave.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path(log_dir))?
            .write_all(line.as_bytes())?;
        Ok(())
    })();
    if let Err(err) = result {
        tracing::warn!(pod = %entry.pod, "writing the pod runner's record: {err:#}");
    }
}

/// Every entry of the record in `log_dir` so far (none when nothing ran yet).
pub fn read(log_dir: &Path) -> Result<Vec<Entry>> {
    let file = path(log_dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .with_context(|| format!("a line of {}: {line}", file.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut pod = Pod::default();
        pod.metadata.name = Some("check-abc".into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.uid = Some("u-1".into());
        pod.metadata.labels = Some(BTreeMap::from([(
            "kuberhealthy-run-id".to_string(),
            "r-1".to_string(),
        )]));
        append(dir.path(), &Entry::new(&pod, "main", Event::Started, None));
        append(
            dir.path(),
            &Entry::new(&pod, "main", Event::Exited, Some(3)),
        );
        let entries = read(dir.path()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].event, Event::Started);
        assert_eq!(entries[0].label("kuberhealthy-run-id"), Some("r-1"));
        assert_eq!(
            (entries[1].event, entries[1].code),
            (Event::Exited, Some(3))
        );
        assert_eq!(entries[1].pod, "check-abc");
    }
}
