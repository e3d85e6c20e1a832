//! `daemonset`: v2's daemonset-check. Creates a DaemonSet of pause containers, waits until
//! every node expected to run it has a Ready pod, deletes it and waits until its pods are gone.
//!
//! A node is expected when it matches `NODE_SELECTOR` and the DaemonSet tolerates each of its
//! NoSchedule and NoExecute taints (v2's #854): the tolerations are `TOLERATIONS` and
//! `ALLOWED_TAINTS`, plus those the DaemonSet controller gives every daemon pod. A cordoned
//! node is expected only when `node.kubernetes.io/unschedulable` is tolerated (it is by
//! default, as v2's `ALLOWED_TAINTS` default says). The failure names each expected node
//! without a Ready pod and why.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Container, Node, Pod, PodSecurityContext, PodSpec, PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::Instant;

use super::Outcome;
use super::knobs::Knobs;
use super::workloads::{self, Budget, left};
use crate::api::access::Rule;

pub const RULES: &[Rule] = &[
    Rule {
        group: "apps",
        resources: &["daemonsets"],
        verbs: &["get", "list", "watch", "create", "delete"],
        why: "creating, watching and deleting the check's DaemonSet",
    },
    Rule {
        group: "",
        resources: &["pods"],
        verbs: &["list", "watch"],
        why: "which nodes run a Ready pod of the DaemonSet, and that they are gone",
    },
    Rule {
        group: "",
        resources: &["nodes"],
        verbs: &["list"],
        why: "the nodes expected to run the DaemonSet (cluster-scoped: needs the ClusterRole)",
    },
];

pub const DEFAULT_IMAGE: &str = "gcr.io/google-containers/pause:3.1";
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Taints the DaemonSet controller tolerates on every daemon pod, whatever its spec says.
pub const AUTOMATIC_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    pub image: String,
    pub priority_class: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    /// `TOLERATIONS` and `ALLOWED_TAINTS` together.
    pub tolerations: Vec<Toleration>,
    /// Kept back from the time left for deleting the DaemonSet.
    pub grace: Duration,
}

impl Config {
    pub fn read(knobs: &mut Knobs) -> Config {
        let mut tolerations = workloads::tolerations(knobs, "TOLERATIONS", &[]);
        tolerations.extend(workloads::tolerations(
            knobs,
            "ALLOWED_TAINTS",
            &["node.kubernetes.io/unschedulable:NoSchedule"],
        ));
        Config {
            namespace: workloads::namespace(knobs, None),
            name: workloads::object_name(knobs, "CHECK_DAEMONSET_NAME", "daemonset"),
            image: knobs.string("PAUSE_CONTAINER_IMAGE", DEFAULT_IMAGE),
            priority_class: knobs.raw("DAEMONSET_PRIORITY_CLASS_NAME"),
            node_selector: workloads::pairs(knobs, "NODE_SELECTOR"),
            tolerations,
            grace: workloads::grace_period(knobs, Duration::from_secs(60)),
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app".to_string(), self.name.clone()),
            ("source".to_string(), "kuberhealthy".to_string()),
        ])
    }

    fn selector(&self) -> String {
        format!("app={},source=kuberhealthy", self.name)
    }

    fn what(&self) -> String {
        format!("DaemonSet {} in namespace {}", self.name, self.namespace)
    }
}

/// What the check needs of a node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSeen {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
}

impl NodeSeen {
    pub fn from_node(node: &Node) -> NodeSeen {
        let spec = node.spec.clone().unwrap_or_default();
        NodeSeen {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.taints.unwrap_or_default(),
            unschedulable: spec.unschedulable.unwrap_or(false),
        }
    }
}

/// Whether `toleration` tolerates `taint` (the scheduler's rule).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_matches = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = toleration.key.as_deref().unwrap_or("");
    let exists = toleration.operator.as_deref() == Some("Exists");
    let key_matches = if key.is_empty() {
        exists
    } else {
        key == taint.key
    };
    let value_matches =
        exists || toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("");
    effect_matches && key_matches && value_matches
}

/// Why the DaemonSet is not expected on this node, or `None` when it is.
pub fn not_expected(config: &Config, node: &NodeSeen) -> Option<String> {
    for (k, v) in &config.node_selector {
        if node.labels.get(k) != Some(v) {
            return Some(format!("it does not match NODE_SELECTOR {k}={v}"));
        }
    }
    let automatic = AUTOMATIC_TOLERATIONS
        .iter()
        .map(|(key, effect)| Toleration {
            key: Some(key.to_string()),
            operator: Some("Exists".into()),
            effect: Some(effect.to_string()),
            ..Default::default()
        });
    let tolerations: Vec<Toleration> = config
        .tolerations
        .iter()
        .cloned()
        .chain(automatic)
        .collect();
    let tolerated = |taint: &Taint| tolerations.iter().any(|t| tolerates(t, taint));
    // A cordoned node may not carry its taint yet; judge it as if it did.
    let cordon = Taint {
        key: UNSCHEDULABLE_TAINT.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    if node.unschedulable
        && !node.taints.iter().any(|t| t.key == UNSCHEDULABLE_TAINT)
        && !tolerated(&cordon)
    {
        return Some(
            "it is cordoned (unschedulable) and ALLOWED_TAINTS does not tolerate it".into(),
        );
    }
    let blocking: Vec<String> = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .filter(|t| !tolerated(t))
        .map(|t| match &t.value {
            Some(v) if !v.is_empty() => format!("{}={v}:{}", t.key, t.effect),
            _ => format!("{}:{}", t.key, t.effect),
        })
        .collect();
    (!blocking.is_empty()).then(|| {
        format!(
            "its taint {} is not tolerated (TOLERATIONS, ALLOWED_TAINTS)",
            blocking.join(", ")
        )
    })
}

/// The nodes expected to run the DaemonSet, and the others with the reason.
pub fn expected_nodes(
    config: &Config,
    nodes: &[NodeSeen],
) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let mut expected = BTreeSet::new();
    let mut skipped = BTreeMap::new();
    for node in nodes {
        match not_expected(config, node) {
            None => {
                expected.insert(node.name.clone());
            }
            Some(why) => {
                skipped.insert(node.name.clone(), why);
            }
        }
    }
    (expected, skipped)
}

/// The node a daemon pod is for: where it runs, or, before it is scheduled, the node its
/// affinity pins it to (the DaemonSet controller pins each pod to one node by name).
pub fn pod_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(node.clone());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|term| term.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// One message per expected node without a Ready pod of the DaemonSet, saying why.
pub fn missing(expected: &BTreeSet<String>, pods: &[Pod]) -> Vec<String> {
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in pods {
        if let Some(node) = pod_node(pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    let mut out = Vec::new();
    for node in expected {
        let pods = by_node.get(node).map(Vec::as_slice).unwrap_or_default();
        if pods.iter().any(|p| workloads::is_ready(p)) {
            continue;
        }
        match pods.first() {
            None => out.push(format!("node {node}: no pod of the DaemonSet")),
            Some(pod) => out.push(format!(
                "node {node}: pod {} is not Ready: {}",
                pod.metadata.name.as_deref().unwrap_or_default(),
                workloads::describe_pod(pod)
            )),
        }
    }
    out
}

/// The DaemonSet: one pause container per node, with no resource requests so it fits anywhere.
pub fn daemonset(config: &Config) -> DaemonSet {
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            namespace: Some(config.namespace.clone()),
            labels: Some(config.labels()),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(config.labels()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(config.labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "pause".into(),
                        image: Some(config.image.clone()),
                        ..Default::default()
                    }],
                    node_selector: (!config.node_selector.is_empty())
                        .then(|| config.node_selector.clone()),
                    tolerations: (!config.tolerations.is_empty())
                        .then(|| config.tolerations.clone()),
                    priority_class_name: config.priority_class.clone(),
                    // v2 ran the pause container as user 1000.
                    security_context: Some(PodSecurityContext {
                        run_as_user: Some(1000),
                        run_as_non_root: Some(true),
                        ..Default::default()
                    }),
                    termination_grace_period_seconds: Some(1),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub async fn run(mut knobs: Knobs, time_left: Duration) -> Outcome {
    let config = Config::read(&mut knobs);
    knobs.finish()?;
    check(super::kube_client().await?, &config, time_left).await
}

/// Exercises the cluster within `time_left`, then cleans up within what is left of it.
pub async fn check(client: kube::Client, config: &Config, time_left: Duration) -> Outcome {
    let budget = Budget::new(Instant::now(), time_left, config.grace);
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), &config.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &config.namespace);
    let nodes: Api<Node> = Api::all(client);
    let work = exercise(&daemonsets, &pods, &nodes, config, budget.steps);
    let cleanup = async {
        remove(&daemonsets, &pods, config, budget.cleanup)
            .await
            .err()
            .into_iter()
            .collect()
    };
    workloads::run_then_clean_up(
        "daemonset",
        &budget,
        time_left,
        config.grace,
        work,
        cleanup,
        config.what(),
    )
    .await
}

/// Deletes the DaemonSet and waits until it and its pods are gone.
async fn remove(
    daemonsets: &Api<DaemonSet>,
    pods: &Api<Pod>,
    config: &Config,
    until: Instant,
) -> Result<(), String> {
    workloads::delete_and_wait(daemonsets, &config.name, &config.what(), until).await?;
    workloads::wait_pods_gone(pods, &config.selector(), &config.what(), until).await
}

async fn exercise(
    daemonsets: &Api<DaemonSet>,
    pods: &Api<Pod>,
    nodes: &Api<Node>,
    config: &Config,
    until: Instant,
) -> Outcome {
    let one = |e: String| vec![e];
    // A previous run cut short may have left it behind.
    remove(daemonsets, pods, config, until).await.map_err(one)?;
    let listed = nodes
        .list(&ListParams::default())
        .await
        .map_err(|e| one(format!("cannot list nodes: {}", super::describe(&e))))?;
    let seen: Vec<NodeSeen> = listed.items.iter().map(NodeSeen::from_node).collect();
    let (expected, skipped) = expected_nodes(config, &seen);
    for (node, why) in &skipped {
        tracing::info!(node, why, "node not expected to run the DaemonSet");
    }
    if expected.is_empty() {
        return Err(one(format!(
            "no node is expected to run {} ({} nodes, none eligible)",
            config.what(),
            seen.len()
        )));
    }
    daemonsets
        .create(&PostParams::default(), &daemonset(config))
        .await
        .map_err(|e| {
            one(format!(
                "cannot create {}: {}",
                config.what(),
                super::describe(&e)
            ))
        })?;
    wait_ready(pods, config, &expected, until).await
}

/// Watches the DaemonSet's pods until every expected node has a Ready one, or time runs out.
async fn wait_ready(
    pods: &Api<Pod>,
    config: &Config,
    expected: &BTreeSet<String>,
    until: Instant,
) -> Outcome {
    let stream = watcher(
        pods.clone(),
        watcher::Config::default().labels(&config.selector()),
    )
    .default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut present: BTreeMap<String, Pod> = BTreeMap::new();
    let mut listing: BTreeMap<String, Pod> = BTreeMap::new();
    let mut listed = false;
    let mut watch_error = None;
    let wait = async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listing.clear(),
                Ok(watcher::Event::InitApply(p)) => {
                    listing.insert(p.metadata.name.clone().unwrap_or_default(), p);
                }
                Ok(watcher::Event::InitDone) => {
                    present = std::mem::take(&mut listing);
                    listed = true;
                }
                Ok(watcher::Event::Apply(p)) => {
                    present.insert(p.metadata.name.clone().unwrap_or_default(), p);
                }
                Ok(watcher::Event::Delete(p)) => {
                    present.remove(p.metadata.name.as_deref().unwrap_or_default());
                }
                Err(e) => {
                    watch_error = Some(e.to_string());
                    continue;
                }
            }
            let pods: Vec<Pod> = present.values().cloned().collect();
            if listed && missing(expected, &pods).is_empty() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(left(until), wait).await;
    let pods: Vec<Pod> = present.values().cloned().collect();
    let lacking = missing(expected, &pods);
    if lacking.is_empty() {
        return Ok(());
    }
    let mut errors = vec![workloads::with_watch_error(
        format!(
            "{} did not have a Ready pod on {} of {} expected nodes in time",
            config.what(),
            lacking.len(),
            expected.len()
        ),
        &watch_error,
    )];
    errors.extend(lacking);
    Err(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
        PodCondition, PodStatus,
    };

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut k = Knobs::from_pairs(pairs);
        let c = Config::read(&mut k);
        k.finish().unwrap();
        c
    }

    fn node(name: &str, taints: &[(&str, Option<&str>, &str)]) -> NodeSeen {
        NodeSeen {
            name: name.into(),
            labels: BTreeMap::from([("pool".into(), "web".into())]),
            taints: taints
                .iter()
                .map(|(k, v, e)| Taint {
                    key: k.to_string(),
                    value: v.map(str::to_string),
                    effect: e.to_string(),
                    ..Default::default()
                })
                .collect(),
            unschedulable: false,
        }
    }

    #[test]
    fn v2_defaults() {
        let c = config(&[("POD_NAMESPACE", "kh")]);
        assert_eq!(c.namespace, "kh");
        assert_eq!(c.name, "daemonset");
        assert_eq!(c.image, DEFAULT_IMAGE);
        assert_eq!(c.grace, Duration::from_secs(60));
        assert_eq!(c.priority_class, None);
        assert_eq!(c.tolerations.len(), 1);
        assert_eq!(c.tolerations[0].key.as_deref(), Some(UNSCHEDULABLE_TAINT));
    }

    #[test]
    fn every_bad_knob_is_named() {
        let errors = |pairs: &[(&str, &str)]| {
            let mut k = Knobs::from_pairs(pairs);
            Config::read(&mut k);
            k.finish().unwrap_err()
        };
        assert_eq!(
            errors(&[("ALLOWED_TAINTS", "gpu:Always")]),
            [
                "ALLOWED_TAINTS has \"gpu:Always\", expected key, key=value, key:effect or key=value:effect with effect one of NoSchedule, PreferNoSchedule, NoExecute"
            ]
        );
        assert_eq!(
            errors(&[("NODE_SELECTOR", "pool")]),
            [
                "NODE_SELECTOR is \"pool\", expected key=value pairs separated by commas, such as k=v,k2=v2 (\"pool\" is not one)"
            ]
        );
        assert_eq!(
            errors(&[("CHECK_DAEMONSET_NAME", "DS")]),
            [
                "CHECK_DAEMONSET_NAME is \"DS\", expected a Kubernetes object name (lower-case letters, digits and -, at most 63 characters)"
            ]
        );
        assert_eq!(
            errors(&[("SHUTDOWN_GRACE_PERIOD", "1 minute")]),
            ["SHUTDOWN_GRACE_PERIOD is \"1 minute\", expected a duration such as 30s, 10m or 1h"]
        );
        assert_eq!(errors(&[("TOLERATIONS", ":NoSchedule")]).len(), 1);
    }

    #[test]
    fn toleration_matching_follows_the_scheduler() {
        let taint = |k: &str, v: Option<&str>, e: &str| Taint {
            key: k.into(),
            value: v.map(str::to_string),
            effect: e.into(),
            ..Default::default()
        };
        let t = workloads::parse_toleration;
        let gpu = taint("gpu", Some("a100"), "NoSchedule");
        assert!(tolerates(&t("gpu").unwrap(), &gpu));
        assert!(tolerates(&t("gpu=a100").unwrap(), &gpu));
        assert!(tolerates(&t("gpu=a100:NoSchedule").unwrap(), &gpu));
        assert!(!tolerates(&t("gpu=h100").unwrap(), &gpu));
        assert!(!tolerates(&t("gpu:NoExecute").unwrap(), &gpu));
        assert!(!tolerates(&t("tpu").unwrap(), &gpu));
        let everything = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert!(tolerates(&everything, &gpu));
    }

    #[test]
    fn a_node_with_an_untolerated_taint_is_not_expected() {
        let c = config(&[("TOLERATIONS", "dedicated")]);
        let nodes = [
            node("plain", &[]),
            node("dedicated", &[("dedicated", Some("db"), "NoSchedule")]),
            node("gpu", &[("gpu", None, "NoSchedule")]),
            node("gpu-prefer", &[("gpu", None, "PreferNoSchedule")]),
            node("evicting", &[("spot", Some("true"), "NoExecute")]),
            node(
                "not-ready",
                &[("node.kubernetes.io/not-ready", None, "NoExecute")],
            ),
        ];
        let (expected, skipped) = expected_nodes(&c, &nodes);
        assert_eq!(
            expected.into_iter().collect::<Vec<_>>(),
            ["dedicated", "gpu-prefer", "not-ready", "plain"]
        );
        assert_eq!(
            skipped["gpu"],
            "its taint gpu:NoSchedule is not tolerated (TOLERATIONS, ALLOWED_TAINTS)"
        );
        assert_eq!(
            skipped["evicting"],
            "its taint spot=true:NoExecute is not tolerated (TOLERATIONS, ALLOWED_TAINTS)"
        );
    }

    #[test]
    fn node_selector_and_cordons() {
        let c = config(&[("NODE_SELECTOR", "pool=db")]);
        assert_eq!(
            not_expected(&c, &node("web-1", &[])).as_deref(),
            Some("it does not match NODE_SELECTOR pool=db")
        );
        let mut cordoned = node("web-2", &[]);
        cordoned.unschedulable = true;
        // Tolerated by ALLOWED_TAINTS' default.
        assert_eq!(not_expected(&config(&[]), &cordoned), None);
        let strict = config(&[("ALLOWED_TAINTS", "other")]);
        assert_eq!(
            not_expected(&strict, &cordoned).as_deref(),
            Some("it is cordoned (unschedulable) and ALLOWED_TAINTS does not tolerate it")
        );
        let tainted = node("web-3", &[(UNSCHEDULABLE_TAINT, None, "NoSchedule")]);
        assert!(
            not_expected(&strict, &tainted)
                .unwrap()
                .contains(UNSCHEDULABLE_TAINT)
        );
    }

    fn pod(name: &str, node: Option<&str>, pinned: Option<&str>, phase: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                affinity: pinned.map(|n| Affinity {
                    node_affinity: Some(NodeAffinity {
                        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                            node_selector_terms: vec![NodeSelectorTerm {
                                match_fields: Some(vec![NodeSelectorRequirement {
                                    key: "metadata.name".into(),
                                    operator: "In".into(),
                                    values: Some(vec![n.into()]),
                                }]),
                                ..Default::default()
                            }],
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![
                    PodCondition {
                        type_: "Ready".into(),
                        status: if ready { "True" } else { "False" }.into(),
                        ..Default::default()
                    },
                    PodCondition {
                        type_: "PodScheduled".into(),
                        status: if node.is_some() { "True" } else { "False" }.into(),
                        message: node.is_none().then(|| "0/3 nodes are available".into()),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn each_node_without_a_ready_pod_is_named_with_the_reason() {
        let expected: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
        let pods = [
            pod("ds-a", Some("a"), None, "Running", true),
            pod("ds-b", None, Some("b"), "Pending", false),
            pod("ds-c", Some("c"), Some("c"), "Running", false),
            pod("ds-x", Some("x"), None, "Running", true),
        ];
        assert_eq!(
            missing(&expected, &pods),
            [
                "node b: pod ds-b is not Ready: Pending: 0/3 nodes are available",
                "node c: pod ds-c is not Ready: Running",
                "node d: no pod of the DaemonSet",
            ]
        );
        assert_eq!(pod_node(&pods[1]).as_deref(), Some("b"));
        let all: BTreeSet<String> = ["a"].map(String::from).into();
        assert!(missing(&all, &pods).is_empty());
    }

    #[test]
    fn the_daemonset_carries_the_knobs() {
        let c = config(&[
            ("PAUSE_CONTAINER_IMAGE", "registry.local/pause:3.9"),
            ("DAEMONSET_PRIORITY_CLASS_NAME", "system-node-critical"),
            ("NODE_SELECTOR", "pool=web"),
            ("TOLERATIONS", "gpu"),
        ]);
        let ds = daemonset(&c);
        let spec = ds.spec.unwrap();
        let pod = spec.template.spec.unwrap();
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("registry.local/pause:3.9")
        );
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
        assert_eq!(pod.node_selector.unwrap()["pool"], "web");
        let keys: Vec<_> = pod
            .tolerations
            .unwrap()
            .into_iter()
            .map(|t| t.key.unwrap())
            .collect();
        assert_eq!(keys, ["gpu", UNSCHEDULABLE_TAINT]);
        assert_eq!(
            spec.selector.match_labels,
            spec.template.metadata.unwrap().labels
        );
    }
}
