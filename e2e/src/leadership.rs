//! "One leader at a time", proven from what reached the API server (its audit log).
//!
//! The successful Lease writes of the replicas, in the order the API server finished them,
//! say who held the Lease when (a replica holds it from its first successful Lease write
//! after another replica's until the next one by another replica). Every leader-only write a
//! replica made (pods created or deleted, khstates created or deleted, khjobs written,
//! events written) must fall inside its own tenure. khstate *updates* are left out: any
//! replica writes those when it accepts a report.

use std::collections::BTreeMap;

use crate::audit::AuditEvent;

/// The replica that sent a request: the `(<POD_NAME>)` of the user agent
/// `kuberhealthy/<version> (<POD_NAME>)`.
pub fn replica_of(event: &AuditEvent) -> Option<&str> {
    let rest = event.user_agent.strip_prefix("kuberhealthy/")?;
    let open = rest.find('(')?;
    rest[open + 1..].strip_suffix(')')
}

/// Whether the event is a write of the election Lease `namespace/name`.
pub fn is_lease_write(event: &AuditEvent, namespace: &str, name: &str) -> bool {
    event.resource() == "leases" && event.object() == format!("{namespace}/{name}")
}

/// Writes only the leader makes.
pub fn is_leader_only_write(event: &AuditEvent) -> bool {
    match event.resource().as_str() {
        "pods" | "events" | "khjobs" => true,
        "khstates" => event.verb != "update" && event.verb != "patch",
        _ => false,
    }
}

/// What the audit log says about leadership.
#[derive(Debug, Default)]
pub struct Tenures {
    /// Who took the Lease, and when the API server finished that write, in order.
    pub acquisitions: Vec<(String, String)>,
    /// Successful leader-only writes per replica.
    pub leader_writes: BTreeMap<String, usize>,
    /// Leader-only writes made while another replica held the Lease.
    pub violations: Vec<String>,
}

pub fn tenures(events: &[AuditEvent], namespace: &str, lease_name: &str) -> Tenures {
    let mut ours: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.stage == "ResponseComplete" && e.succeeded() && replica_of(e).is_some())
        .collect();
    ours.sort_by_key(|e| e.stage_timestamp);
    let mut result = Tenures::default();
    let mut holder: Option<&str> = None;
    for event in ours {
        let replica = replica_of(event).unwrap_or_default();
        if is_lease_write(event, namespace, lease_name) {
            if holder != Some(replica) {
                result
                    .acquisitions
                    .push((replica.to_string(), event.stage_timestamp.to_string()));
                holder = Some(replica);
            }
        } else if is_leader_only_write(event) {
            *result.leader_writes.entry(replica.to_string()).or_default() += 1;
            if holder != Some(replica) {
                result.violations.push(format!(
                    "{} while the Lease was held by {holder:?}",
                    event.describe()
                ));
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use crate::audit;

    use super::*;

    fn event(agent: &str, verb: &str, resource: &str, name: &str, code: u16, at: u32) -> String {
        format!(
            r#"{{"stage":"ResponseComplete","verb":"{verb}","requestURI":"/x","user":{{"username":"u"}},"userAgent":"{agent}","objectRef":{{"resource":"{resource}","namespace":"ns","name":"{name}"}},"responseStatus":{{"code":{code}}},"requestReceivedTimestamp":"2026-01-01T00:00:{at:02}Z","stageTimestamp":"2026-01-01T00:00:{at:02}.5Z"}}"#
        )
    }

    fn log(lines: &[String]) -> Vec<AuditEvent> {
        audit::parse(&format!("{}\n", lines.join("\n"))).unwrap()
    }

    #[test]
    fn leader_writes_inside_their_tenure_pass() {
        let a = "kuberhealthy/0.1.0 (kh-0)";
        let b = "kuberhealthy/0.1.0 (kh-1)";
        let events = log(&[
            event(a, "create", "leases", "kuberhealthy", 201, 1),
            event(a, "create", "pods", "p1", 201, 2),
            event(b, "update", "leases", "kuberhealthy", 409, 3),
            event(a, "update", "khstates", "c", 200, 4),
            event(b, "update", "khstates", "c", 200, 4),
            event(b, "update", "leases", "kuberhealthy", 200, 5),
            event(b, "create", "pods", "p2", 201, 6),
            event(a, "create", "pods", "p3", 403, 7),
            event("kube-probe", "delete", "pods", "p2", 200, 8),
        ]);
        let t = tenures(&events, "ns", "kuberhealthy");
        assert!(t.violations.is_empty(), "{:?}", t.violations);
        assert_eq!(
            t.acquisitions
                .iter()
                .map(|a| a.0.as_str())
                .collect::<Vec<_>>(),
            ["kh-0", "kh-1"]
        );
        assert_eq!(t.leader_writes["kh-0"], 1);
        assert_eq!(t.leader_writes["kh-1"], 1);
    }

    #[test]
    fn a_leader_write_after_another_replica_took_the_lease_is_a_violation() {
        let a = "kuberhealthy/0.1.0 (kh-0)";
        let b = "kuberhealthy/0.1.0 (kh-1)";
        let events = log(&[
            event(a, "create", "leases", "kuberhealthy", 201, 1),
            event(b, "update", "leases", "kuberhealthy", 200, 5),
            event(a, "delete", "pods", "p1", 200, 6),
        ]);
        let t = tenures(&events, "ns", "kuberhealthy");
        assert_eq!(t.violations.len(), 1, "{:?}", t.violations);
        assert!(t.violations[0].contains("delete pods ns/p1"));
    }

    #[test]
    fn names_the_replica_from_the_user_agent() {
        let events = log(&[event(
            "kuberhealthy/0.1.0 (kh-2)",
            "create",
            "pods",
            "p",
            201,
            1,
        )]);
        assert_eq!(replica_of(&events[0]), Some("kh-2"));
        let other = log(&[event("pod-runner/v0", "create", "pods", "p", 201, 1)]);
        assert_eq!(replica_of(&other[0]), None);
    }
}
