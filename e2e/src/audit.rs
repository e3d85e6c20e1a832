//! The API server's audit log (opt-in, see [`crate::ControlPlane::start_audited`]): what
//! actually reached the API server, by whom, when, and with what answer.

use std::path::Path;

use anyhow::{Context, Result};
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

/// Logs, at `Metadata` level (who, what, when, answer; no bodies), every write to the
/// objects a kuberhealthy replica writes: pods, khstates, khjobs, khchecks, Leases and
/// events (core and `events.k8s.io`). Reads and everything else are not logged.
pub const WRITES_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
  resources:
  - group: ""
    resources: ["pods", "events"]
  - group: "comcast.github.io"
    resources: ["khchecks", "khjobs", "khstates"]
  - group: "coordination.k8s.io"
    resources: ["leases"]
  - group: "events.k8s.io"
    resources: ["events"]
- level: None
"#;

/// One audit event (`audit.k8s.io/v1` `Event`), the fields tests look at.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub stage: String,
    pub verb: String,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub user: AuditUser,
    #[serde(default)]
    pub user_agent: String,
    pub object_ref: Option<AuditObjectRef>,
    pub response_status: Option<AuditResponseStatus>,
    pub request_received_timestamp: Timestamp,
    pub stage_timestamp: Timestamp,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditUser {
    #[serde(default)]
    pub username: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditObjectRef {
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub api_group: String,
    #[serde(default)]
    pub subresource: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditResponseStatus {
    #[serde(default)]
    pub code: u16,
}

impl AuditEvent {
    /// The HTTP status the API server answered (0 if none was recorded).
    pub fn code(&self) -> u16 {
        self.response_status.as_ref().map_or(0, |s| s.code)
    }

    /// Whether the API server carried the request out (2xx).
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.code())
    }

    /// The resource written, e.g. `pods` or `khstates` (`pods/status` for a subresource).
    pub fn resource(&self) -> String {
        match &self.object_ref {
            Some(r) if r.subresource.is_empty() => r.resource.clone(),
            Some(r) => format!("{}/{}", r.resource, r.subresource),
            None => String::new(),
        }
    }

    /// `namespace/name` of the object written (either part may be empty).
    pub fn object(&self) -> String {
        self.object_ref
            .as_ref()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .unwrap_or_default()
    }

    /// One line for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {} {} -> {} by {:?} ({}), received {}, done {}",
            self.stage,
            self.verb,
            self.resource(),
            self.object(),
            self.code(),
            self.user_agent,
            self.user.username,
            self.request_received_timestamp,
            self.stage_timestamp
        )
    }
}

/// Every event of an audit log, in file order. A missing file reads as no events (the API
/// server creates it with the first event); a torn last line (being written) is skipped.
pub fn read(path: &Path) -> Result<Vec<AuditEvent>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    parse(&text).with_context(|| format!("parsing the audit log {}", path.display()))
}

/// Parses JSON-lines audit events; an incomplete last line is skipped.
pub fn parse(text: &str) -> Result<Vec<AuditEvent>> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| format!("line {}: {line}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"b0f6","stage":"ResponseComplete","requestURI":"/apis/coordination.k8s.io/v1/namespaces/ha-1/leases/kuberhealthy","verb":"update","user":{"username":"system:serviceaccount:ha-1:kuberhealthy","uid":"u","groups":["system:serviceaccounts"]},"sourceIPs":["127.0.0.1"],"userAgent":"kuberhealthy/0.1.0 (kh-0)","objectRef":{"resource":"leases","namespace":"ha-1","name":"kuberhealthy","apiGroup":"coordination.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"status":"Failure","reason":"Conflict","code":409},"requestReceivedTimestamp":"2026-01-02T03:04:05.123456Z","stageTimestamp":"2026-01-02T03:04:05.130000Z"}"#;

    #[test]
    fn parses_events_and_skips_a_torn_last_line() {
        let text = format!("{LINE}\n{LINE}\n{{\"kind\":\"Ev");
        let events = parse(&text).unwrap();
        assert_eq!(events.len(), 2);
        let event = &events[0];
        assert_eq!(event.verb, "update");
        assert_eq!(event.resource(), "leases");
        assert_eq!(event.object(), "ha-1/kuberhealthy");
        assert_eq!(event.code(), 409);
        assert!(!event.succeeded());
        assert_eq!(event.user_agent, "kuberhealthy/0.1.0 (kh-0)");
        assert_eq!(
            event.user.username,
            "system:serviceaccount:ha-1:kuberhealthy"
        );
        assert_eq!(
            event.request_received_timestamp.to_string(),
            "2026-01-02T03:04:05.123456Z"
        );
        assert!(event.describe().contains("409"));
    }

    #[test]
    fn a_missing_log_has_no_events() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&dir.path().join("audit.log")).unwrap().is_empty());
    }
}
