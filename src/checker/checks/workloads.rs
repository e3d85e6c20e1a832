//! What the checks that create workloads (deployment, daemonset, storage) share: the split of
//! the time left between exercising the cluster and cleaning up after it, the knobs they have
//! in common (names, `k=v` lists, tolerations, resources), and waiting for objects to be gone.
//!
//! Cleaning up must not be cut short by the runner's own time-out, so each check bounds its
//! work to the time left less a clean-up reserve, and its clean-up to what remains.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Toleration};
use kube::api::{Api, DeleteParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::knobs::Knobs;
use super::pod_status::PodSeen;
use super::resource_quota::quantity;
use crate::api::duration;

/// Kept back from the time left so the check ends before the runner's time-out does.
pub const FINISH_MARGIN: Duration = Duration::from_secs(1);

/// How the time left is spent: each step waits until `steps` at most, the work ends by `work`
/// (the steps' last API calls, saying why a wait failed, fit in between), and cleaning up
/// ends by `cleanup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub steps: Instant,
    pub work: Instant,
    pub cleanup: Instant,
}

/// The part of `time_left` kept for cleaning up: the check's grace period, but never more than
/// half of the time left, so a long grace period cannot leave no time for the check itself.
pub fn cleanup_reserve(time_left: Duration, grace: Duration) -> Duration {
    grace.min(time_left / 2)
}

impl Budget {
    pub fn new(now: Instant, time_left: Duration, grace: Duration) -> Budget {
        let usable = time_left.saturating_sub(FINISH_MARGIN.min(time_left / 10));
        let work = usable.saturating_sub(cleanup_reserve(usable, grace));
        let explaining = Duration::from_secs(2).min(work / 10);
        Budget {
            steps: now + work.saturating_sub(explaining),
            work: now + work,
            cleanup: now + usable,
        }
    }
}

/// Time from now until `until` (zero when past).
pub fn left(until: Instant) -> Duration {
    until.saturating_duration_since(Instant::now())
}

/// The namespace a check creates its objects in: `knob` when set, else the pod's own
/// namespace (`POD_NAMESPACE`, then `KH_POD_NAMESPACE`, which the controller injects), else
/// v2's `kuberhealthy`.
pub fn namespace(knobs: &mut Knobs, knob: Option<&str>) -> String {
    knob.and_then(|k| knobs.raw(k))
        .or_else(|| knobs.raw("POD_NAMESPACE"))
        .or_else(|| knobs.raw("KH_POD_NAMESPACE"))
        .unwrap_or_else(|| "kuberhealthy".into())
}

/// Whether `name` is a valid Kubernetes object name (an RFC 1123 label: lower-case letters,
/// digits and `-`, starting and ending with a letter or digit, at most 63 characters).
pub fn is_object_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// An object name with a default, checked to be valid.
pub fn object_name(knobs: &mut Knobs, name: &str, default: &str) -> String {
    let value = knobs.string(name, default);
    if !is_object_name(&value) {
        knobs.invalid(format!(
            "{name} is {value:?}, expected a Kubernetes object name (lower-case letters, digits and -, at most 63 characters)"
        ));
    }
    value
}

/// `k=v,k2=v2` pairs, such as `NODE_SELECTOR` and `ADDITIONAL_ENV_VARS`.
pub fn pairs(knobs: &mut Knobs, name: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(text) = knobs.raw(name) else {
        return out;
    };
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
            _ => knobs.invalid(format!(
                "{name} is {text:?}, expected key=value pairs separated by commas, such as k=v,k2=v2 ({entry:?} is not one)"
            )),
        }
    }
    out
}

const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// One toleration written `key`, `key=value`, `key:effect` or `key=value:effect` (v2 took a
/// bare key, tolerating any value and effect of that taint).
pub fn parse_toleration(text: &str) -> Option<Toleration> {
    let (rest, effect) = match text.rsplit_once(':') {
        Some((rest, effect)) if EFFECTS.contains(&effect) => (rest, Some(effect.to_string())),
        Some(_) => return None,
        None => (text, None),
    };
    let (key, value) = match rest.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (rest, None),
    };
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    Some(Toleration {
        key: Some(key.to_string()),
        operator: Some(if value.is_some() { "Equal" } else { "Exists" }.into()),
        value,
        effect,
        ..Default::default()
    })
}

/// A comma-separated list of tolerations (see [`parse_toleration`]).
pub fn tolerations(knobs: &mut Knobs, name: &str, default: &[&str]) -> Vec<Toleration> {
    let entries = knobs.list(name, default);
    let mut out = Vec::new();
    for entry in entries {
        match parse_toleration(&entry) {
            Some(t) => out.push(t),
            None => knobs.invalid(format!(
                "{name} has {entry:?}, expected key, key=value, key:effect or key=value:effect with effect one of {}",
                EFFECTS.join(", ")
            )),
        }
    }
    out
}

/// A CPU amount: a Kubernetes quantity (`15m`, `0.5`), or a bare whole number of millicores
/// as v2's `CHECK_POD_CPU_*` took it.
pub fn cpu(knobs: &mut Knobs, name: &str, default_millicores: u64) -> String {
    amount(
        knobs,
        name,
        default_millicores,
        "m",
        "15 (millicores) or 100m",
    )
}

/// A memory amount: a Kubernetes quantity (`20Mi`), or a bare whole number of mebibytes as
/// v2's `CHECK_POD_MEM_*` took it.
pub fn memory(knobs: &mut Knobs, name: &str, default_mebibytes: u64) -> String {
    amount(
        knobs,
        name,
        default_mebibytes,
        "Mi",
        "20 (mebibytes) or 64Mi",
    )
}

fn amount(knobs: &mut Knobs, name: &str, default: u64, unit: &str, example: &str) -> String {
    let Some(text) = knobs.raw(name) else {
        return format!("{default}{unit}");
    };
    if text.parse::<u64>().is_ok() {
        return format!("{text}{unit}");
    }
    match quantity(&text) {
        Some(q) if q >= 0.0 => text,
        _ => {
            knobs.invalid(format!(
                "{name} is {text:?}, expected an amount such as {example}"
            ));
            format!("{default}{unit}")
        }
    }
}

/// Refuses a v2 knob this check does not implement, so a setting is never silently ignored.
pub fn unsupported(knobs: &mut Knobs, name: &str, instead: &str) {
    if let Some(value) = knobs.raw(name) {
        knobs.invalid(format!(
            "{name} is {value:?}, but this check does not support it: {instead}; unset it"
        ));
    }
}

/// The time kept for cleaning up, `SHUTDOWN_GRACE_PERIOD` (at least one second).
pub fn grace_period(knobs: &mut Knobs, default: Duration) -> Duration {
    let grace = knobs.duration("SHUTDOWN_GRACE_PERIOD", default);
    if grace < Duration::from_secs(1) {
        knobs.invalid(format!(
            "SHUTDOWN_GRACE_PERIOD is {:?}, expected at least 1s",
            duration::format(grace)
        ));
        return default;
    }
    grace
}

/// Deletes the object if it exists and waits until it is gone (its UID no longer found).
/// `what` names it in errors, e.g. `Deployment web in namespace shop`.
pub async fn delete_and_wait<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    until: Instant,
) -> Result<(), String>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    // Background propagation: the object goes at once and its dependents after it; the checks
    // wait for the dependents they care about (pods) themselves.
    let deleted = match api.delete(name, &DeleteParams::background()).await {
        Ok(deleted) => deleted,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(format!("cannot delete {what}: {}", super::describe(&e))),
    };
    let Some(uid) = deleted.left().and_then(|o| o.meta().uid.clone()) else {
        return Ok(());
    };
    let gone = await_condition(api.clone(), name, conditions::is_deleted(&uid));
    match tokio::time::timeout(left(until), gone).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot watch {what} being deleted: {e}")),
        Err(_) => Err(format!("{what} was deleted but is still there")),
    }
}

/// The updates of one object, by name: `Some` when it is seen or changes, `None` when it is
/// gone (or not there when listed). Unlike kube's `watch_object`, a failing watch is retried
/// with kube's backoff instead of at once; its errors are passed on and the stream goes on.
pub fn object_updates<K>(
    api: Api<K>,
    name: &str,
) -> impl Stream<Item = Result<Option<K>, watcher::Error>> + Send
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher(api, config)
        .default_backoff()
        .scan(false, |seen, event| {
            let update = match event {
                Ok(watcher::Event::Init) => {
                    *seen = false;
                    None
                }
                Ok(watcher::Event::InitApply(o)) => {
                    *seen = true;
                    Some(Ok(Some(o)))
                }
                Ok(watcher::Event::InitDone) => (!*seen).then_some(Ok(None)),
                Ok(watcher::Event::Apply(o)) => Some(Ok(Some(o))),
                Ok(watcher::Event::Delete(_)) => Some(Ok(None)),
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(Some(update))
        })
        .filter_map(futures::future::ready)
}

/// `text`, and the last watch error when there was one (a missing permission shows here).
pub fn with_watch_error(text: String, error: &Option<String>) -> String {
    match error {
        Some(e) => format!("{text} (the last watch error: {e})"),
        None => text,
    }
}

/// Waits until no pod matches `selector`; on time-out names the pods still there.
pub async fn wait_pods_gone(
    pods: &Api<Pod>,
    selector: &str,
    what: &str,
    until: Instant,
) -> Result<(), String> {
    let mut stream = std::pin::pin!(
        watcher(pods.clone(), watcher::Config::default().labels(selector)).default_backoff()
    );
    let mut present: BTreeMap<String, Pod> = BTreeMap::new();
    let mut listing: BTreeMap<String, Pod> = BTreeMap::new();
    let mut listed = false;
    let wait = async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listing.clear(),
                Ok(watcher::Event::InitApply(p)) => {
                    listing.insert(p.name_any(), p);
                }
                Ok(watcher::Event::InitDone) => {
                    present = std::mem::take(&mut listing);
                    listed = true;
                }
                Ok(watcher::Event::Apply(p)) => {
                    present.insert(p.name_any(), p);
                }
                Ok(watcher::Event::Delete(p)) => {
                    present.remove(&p.name_any());
                }
                // The backoff retries; the deadline bounds it.
                Err(_) => continue,
            }
            if listed && present.is_empty() {
                return true;
            }
        }
        false
    };
    match tokio::time::timeout(left(until), wait).await {
        Ok(true) => Ok(()),
        _ => {
            let names: Vec<String> = present.keys().cloned().collect();
            Err(if names.is_empty() {
                format!("could not confirm the pods of {what} were gone")
            } else {
                format!(
                    "pods of {what} still there after deleting it: {}",
                    names.join(", ")
                )
            })
        }
    }
}

/// A pod's phase and, when the pod says, why: `Pending: ImagePullBackOff: ...`.
pub fn describe_pod(pod: &Pod) -> String {
    let seen = PodSeen::from_pod(pod);
    match seen.why {
        Some(why) => format!("{}: {why}", seen.phase),
        None => seen.phase,
    }
}

/// Whether the pod's `Ready` condition is true.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The outcome of the check's work followed by the problems of its clean-up, if any.
/// The shape of every workload check: `work` until the budget's work deadline, then `cleanup`
/// until the clean-up deadline whatever the work's outcome, so what the check created is
/// always deleted. `what` names the objects in the error when the clean-up runs out of time.
pub async fn run_then_clean_up(
    check: &str,
    budget: &Budget,
    time_left: Duration,
    grace: Duration,
    work: impl Future<Output = super::Outcome>,
    cleanup: impl Future<Output = Vec<String>>,
    what: String,
) -> super::Outcome {
    let outcome = match tokio::time::timeout(left(budget.work), work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(vec![format!(
            "the {check} check did not finish within {}, the time left less SHUTDOWN_GRACE_PERIOD {} kept for cleaning up",
            duration::format(time_left),
            duration::format(grace)
        )]),
    };
    let cleanup = tokio::time::timeout(left(budget.cleanup), cleanup)
        .await
        .unwrap_or_else(|_| vec![format!("could not delete {what} in time")]);
    with_cleanup(outcome, cleanup)
}

pub fn with_cleanup(outcome: super::Outcome, cleanup: Vec<String>) -> super::Outcome {
    match (outcome, cleanup.is_empty()) {
        (Ok(()), true) => Ok(()),
        (Ok(()), false) => Err(cleanup),
        (Err(mut errors), _) => {
            errors.extend(cleanup);
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T>(pairs: &[(&str, &str)], f: impl FnOnce(&mut Knobs) -> T) -> (T, Vec<String>) {
        let mut k = Knobs::from_pairs(pairs);
        let v = f(&mut k);
        (v, k.finish().err().unwrap_or_default())
    }

    #[test]
    fn the_budget_keeps_the_grace_period_for_cleaning_up() {
        let now = Instant::now();
        let b = Budget::new(now, Duration::from_secs(600), Duration::from_secs(30));
        assert_eq!(b.cleanup, now + Duration::from_secs(599));
        assert_eq!(b.work, now + Duration::from_secs(569));
        assert_eq!(b.steps, now + Duration::from_secs(567));
        // A grace period longer than half the time left is cut to half.
        let b = Budget::new(now, Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(b.cleanup - now, Duration::from_secs(59));
        assert_eq!(b.work - now, Duration::from_millis(29_500));
        // Very little time: a tenth is the margin.
        let b = Budget::new(now, Duration::from_secs(2), Duration::from_secs(30));
        assert_eq!(b.cleanup - now, Duration::from_millis(1_800));
        assert_eq!(b.work - now, Duration::from_millis(900));
        assert_eq!(b.steps - now, Duration::from_millis(810));
    }

    #[test]
    fn namespace_falls_back_to_the_pods_own() {
        let ns = |pairs: &[(&str, &str)]| read(pairs, |k| namespace(k, Some("CHECK_NAMESPACE"))).0;
        assert_eq!(ns(&[]), "kuberhealthy");
        assert_eq!(ns(&[("KH_POD_NAMESPACE", "kh")]), "kh");
        assert_eq!(
            ns(&[("KH_POD_NAMESPACE", "kh"), ("POD_NAMESPACE", "pod")]),
            "pod"
        );
        assert_eq!(
            ns(&[("POD_NAMESPACE", "pod"), ("CHECK_NAMESPACE", "chk")]),
            "chk"
        );
    }

    #[test]
    fn object_names_at_their_limits() {
        assert!(is_object_name("a"));
        assert!(is_object_name(&"a".repeat(63)));
        assert!(!is_object_name(&"a".repeat(64)));
        assert!(!is_object_name("-a"));
        assert!(!is_object_name("a-"));
        assert!(!is_object_name("Web"));
        assert!(!is_object_name(""));
        let (_, e) = read(&[("CHECK_DEPLOYMENT_NAME", "Web_1")], |k| {
            object_name(k, "CHECK_DEPLOYMENT_NAME", "deployment-deployment")
        });
        assert_eq!(
            e,
            [
                r#"CHECK_DEPLOYMENT_NAME is "Web_1", expected a Kubernetes object name (lower-case letters, digits and -, at most 63 characters)"#
            ]
        );
    }

    #[test]
    fn pairs_parse_and_a_bad_entry_is_named() {
        let (v, e) = read(&[("NODE_SELECTOR", "a=1, b = 2,")], |k| {
            pairs(k, "NODE_SELECTOR")
        });
        assert_eq!(e, Vec::<String>::new());
        assert_eq!(
            v,
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())])
        );
        let (_, e) = read(&[("ADDITIONAL_ENV_VARS", "X=foo,Y")], |k| {
            pairs(k, "ADDITIONAL_ENV_VARS")
        });
        assert_eq!(
            e,
            [
                r#"ADDITIONAL_ENV_VARS is "X=foo,Y", expected key=value pairs separated by commas, such as k=v,k2=v2 ("Y" is not one)"#
            ]
        );
        let (_, e) = read(&[("NODE_SELECTOR", "=v")], |k| pairs(k, "NODE_SELECTOR"));
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn tolerations_in_every_form() {
        let t = parse_toleration("dedicated").unwrap();
        assert_eq!(
            (t.key.as_deref(), t.operator.as_deref(), t.value, t.effect),
            (Some("dedicated"), Some("Exists"), None, None)
        );
        let t = parse_toleration("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (
                t.operator.as_deref(),
                t.value.as_deref(),
                t.effect.as_deref()
            ),
            (Some("Equal"), Some("gpu"), Some("NoSchedule"))
        );
        let t = parse_toleration("node.kubernetes.io/unschedulable:NoSchedule").unwrap();
        assert_eq!(t.key.as_deref(), Some("node.kubernetes.io/unschedulable"));
        assert_eq!(t.operator.as_deref(), Some("Exists"));
        assert!(parse_toleration("a:Sometimes").is_none());
        assert!(parse_toleration("=v").is_none());
        let (_, e) = read(&[("TOLERATIONS", "ok,x:Never")], |k| {
            tolerations(k, "TOLERATIONS", &[])
        });
        assert_eq!(
            e,
            [
                r#"TOLERATIONS has "x:Never", expected key, key=value, key:effect or key=value:effect with effect one of NoSchedule, PreferNoSchedule, NoExecute"#
            ]
        );
    }

    #[test]
    fn amounts_take_v2_numbers_and_quantities() {
        assert_eq!(read(&[], |k| cpu(k, "CHECK_POD_CPU_REQUEST", 15)).0, "15m");
        assert_eq!(read(&[("C", "250")], |k| cpu(k, "C", 15)).0, "250m");
        assert_eq!(read(&[("C", "0.5")], |k| cpu(k, "C", 15)).0, "0.5");
        assert_eq!(read(&[("M", "64")], |k| memory(k, "M", 20)).0, "64Mi");
        assert_eq!(read(&[("M", "1Gi")], |k| memory(k, "M", 20)).0, "1Gi");
        let (_, e) = read(&[("CHECK_POD_MEM_LIMIT", "lots")], |k| {
            memory(k, "CHECK_POD_MEM_LIMIT", 75)
        });
        assert_eq!(
            e,
            [r#"CHECK_POD_MEM_LIMIT is "lots", expected an amount such as 20 (mebibytes) or 64Mi"#]
        );
        let (_, e) = read(&[("CHECK_POD_CPU_LIMIT", "-1")], |k| {
            cpu(k, "CHECK_POD_CPU_LIMIT", 75)
        });
        assert_eq!(
            e,
            [r#"CHECK_POD_CPU_LIMIT is "-1", expected an amount such as 15 (millicores) or 100m"#]
        );
    }

    #[test]
    fn the_grace_period_is_at_least_a_second() {
        let d = Duration::from_secs(30);
        assert_eq!(
            read(&[("SHUTDOWN_GRACE_PERIOD", "1s")], |k| grace_period(k, d)).0,
            Duration::from_secs(1)
        );
        let (v, e) = read(&[("SHUTDOWN_GRACE_PERIOD", "500ms")], |k| {
            grace_period(k, d)
        });
        assert_eq!(v, d);
        assert_eq!(
            e,
            [r#"SHUTDOWN_GRACE_PERIOD is "500ms", expected at least 1s"#]
        );
        let (_, e) = read(&[("SHUTDOWN_GRACE_PERIOD", "soon")], |k| grace_period(k, d));
        assert_eq!(
            e,
            [r#"SHUTDOWN_GRACE_PERIOD is "soon", expected a duration such as 30s, 10m or 1h"#]
        );
    }

    #[test]
    fn an_unsupported_knob_is_refused_only_when_set() {
        assert_eq!(
            read(&[], |k| unsupported(k, "X", "use Y")).1,
            Vec::<String>::new()
        );
        assert_eq!(
            read(&[("X", "1")], |k| unsupported(k, "X", "use Y")).1,
            [r#"X is "1", but this check does not support it: use Y; unset it"#]
        );
    }

    #[test]
    fn the_last_watch_error_is_appended_when_there_was_one() {
        assert_eq!(with_watch_error("late".into(), &None), "late");
        assert_eq!(
            with_watch_error("late".into(), &Some("403 Forbidden".into())),
            "late (the last watch error: 403 Forbidden)"
        );
    }

    #[test]
    fn cleanup_problems_follow_the_outcome() {
        assert_eq!(with_cleanup(Ok(()), vec![]), Ok(()));
        assert_eq!(
            with_cleanup(Ok(()), vec!["c".into()]),
            Err(vec!["c".into()])
        );
        assert_eq!(
            with_cleanup(Err(vec!["w".into()]), vec!["c".into()]),
            Err(vec!["w".into(), "c".into()])
        );
    }
}
