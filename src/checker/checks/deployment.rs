//! `deployment`: v2's deployment-check. Creates a Deployment of `CHECK_DEPLOYMENT_REPLICAS`
//! web servers and a ClusterIP Service in front of them, waits until every replica is
//! available, and GETs the Service expecting HTTP 200; with `CHECK_DEPLOYMENT_ROLLING_UPDATE`
//! it then rolls the Deployment to `CHECK_IMAGE_ROLL_TO` and tests again. Both objects are
//! deleted at the end, also when a step failed or ran out of time, and the check waits until
//! they are gone.
//!
//! Like v2, the request goes to the Service's cluster IP (what its DNS name resolves to), so a
//! DNS failure does not fail this check; `dns-status` covers DNS.

use std::collections::BTreeMap;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, LocalObjectReference, Pod, PodSpec, PodTemplateSpec,
    ResourceRequirements, Service, ServicePort, ServiceSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use tokio::time::Instant;

use super::Outcome;
use super::knobs::Knobs;
use super::workloads::{self, Budget, left};
use crate::api::access::Rule;

pub const RULES: &[Rule] = &[
    Rule {
        group: "apps",
        resources: &["deployments"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        why: "creating, rolling, watching and deleting the check's Deployment",
    },
    Rule {
        group: "",
        resources: &["services"],
        verbs: &["get", "list", "watch", "create", "delete"],
        why: "creating and deleting the check's Service",
    },
    Rule {
        group: "",
        resources: &["pods"],
        verbs: &["list"],
        why: "saying why the Deployment's pods are not available",
    },
];

pub const DEFAULT_IMAGE: &str = "nginxinc/nginx-unprivileged:1.17.8";
pub const DEFAULT_IMAGE_ROLL_TO: &str = "nginxinc/nginx-unprivileged:1.17.9";
const CONTAINER: &str = "web";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub namespace: String,
    pub deployment: String,
    pub service: String,
    pub image: String,
    pub roll_to: String,
    pub rolling_update: bool,
    pub pull_secret: Option<String>,
    pub replicas: i32,
    pub container_port: i32,
    /// The Service's port (v2's name, from when the Service could be a load balancer).
    pub service_port: i32,
    pub cpu_request: String,
    pub cpu_limit: String,
    pub memory_request: String,
    pub memory_limit: String,
    pub service_account: String,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub env: BTreeMap<String, String>,
    /// Kept back from the time left for deleting what the check created.
    pub grace: Duration,
}

impl Config {
    pub fn read(knobs: &mut Knobs) -> Config {
        let namespace = workloads::namespace(knobs, Some("CHECK_NAMESPACE"));
        let deployment =
            workloads::object_name(knobs, "CHECK_DEPLOYMENT_NAME", "deployment-deployment");
        let service = workloads::object_name(knobs, "CHECK_SERVICE_NAME", "deployment-svc");
        let image = knobs.string("CHECK_IMAGE", DEFAULT_IMAGE);
        let roll_to = knobs.string("CHECK_IMAGE_ROLL_TO", DEFAULT_IMAGE_ROLL_TO);
        let rolling_update = knobs.flag("CHECK_DEPLOYMENT_ROLLING_UPDATE", false);
        if rolling_update && image == roll_to {
            knobs.invalid(format!(
                "CHECK_IMAGE_ROLL_TO is {roll_to:?}, the same as CHECK_IMAGE; a rolling update needs a different image"
            ));
        }
        let replicas = knobs.whole("CHECK_DEPLOYMENT_REPLICAS", 2);
        if !(1..=1000).contains(&replicas) {
            knobs.invalid(format!(
                "CHECK_DEPLOYMENT_REPLICAS is \"{replicas}\", expected a number of replicas from 1 to 1000"
            ));
        }
        let container_port = port(knobs, "CHECK_CONTAINER_PORT", 8080);
        let service_port = port(knobs, "CHECK_LOAD_BALANCER_PORT", 80);
        Config {
            namespace,
            deployment,
            service,
            image,
            roll_to,
            rolling_update,
            pull_secret: knobs.raw("CHECK_IMAGE_PULL_SECRET"),
            replicas: replicas.clamp(1, 1000) as i32,
            container_port,
            service_port,
            cpu_request: workloads::cpu(knobs, "CHECK_POD_CPU_REQUEST", 15),
            cpu_limit: workloads::cpu(knobs, "CHECK_POD_CPU_LIMIT", 75),
            memory_request: workloads::memory(knobs, "CHECK_POD_MEM_REQUEST", 20),
            memory_limit: workloads::memory(knobs, "CHECK_POD_MEM_LIMIT", 75),
            service_account: knobs.string("CHECK_SERVICE_ACCOUNT", "default"),
            node_selector: workloads::pairs(knobs, "NODE_SELECTOR"),
            tolerations: workloads::tolerations(knobs, "TOLERATIONS", &[]),
            env: workloads::pairs(knobs, "ADDITIONAL_ENV_VARS"),
            grace: workloads::grace_period(knobs, Duration::from_secs(30)),
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app".to_string(), self.deployment.clone()),
            ("source".to_string(), "kuberhealthy".to_string()),
        ])
    }
}

fn port(knobs: &mut Knobs, name: &str, default: u64) -> i32 {
    let port = knobs.whole(name, default);
    if !(1..=65535).contains(&port) {
        knobs.invalid(format!(
            "{name} is \"{port}\", expected a port from 1 to 65535"
        ));
        return default as i32;
    }
    port as i32
}

/// The Deployment: `replicas` web servers on `container_port`, rolled half at a time (v2's
/// maxSurge and maxUnavailable of 50%).
pub fn deployment(config: &Config, image: &str) -> Deployment {
    let resources = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    let container = Container {
        name: CONTAINER.into(),
        image: Some(image.into()),
        ports: Some(vec![ContainerPort {
            container_port: config.container_port,
            name: Some("http".into()),
            ..Default::default()
        }]),
        env: (!config.env.is_empty()).then(|| {
            config
                .env
                .iter()
                .map(|(k, v)| EnvVar {
                    name: k.clone(),
                    value: Some(v.clone()),
                    ..Default::default()
                })
                .collect()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(resources(&config.cpu_request, &config.memory_request)),
            limits: Some(resources(&config.cpu_limit, &config.memory_limit)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let half = IntOrString::String("50%".into());
    Deployment {
        metadata: ObjectMeta {
            name: Some(config.deployment.clone()),
            namespace: Some(config.namespace.clone()),
            labels: Some(config.labels()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(config.replicas),
            selector: LabelSelector {
                match_labels: Some(config.labels()),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(half.clone()),
                    max_unavailable: Some(half),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(config.labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    service_account_name: Some(config.service_account.clone()),
                    node_selector: (!config.node_selector.is_empty())
                        .then(|| config.node_selector.clone()),
                    tolerations: (!config.tolerations.is_empty())
                        .then(|| config.tolerations.clone()),
                    image_pull_secrets: config
                        .pull_secret
                        .as_ref()
                        .map(|name| vec![LocalObjectReference { name: name.clone() }]),
                    termination_grace_period_seconds: Some(1),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ClusterIP Service on `service_port` in front of the Deployment's pods.
pub fn service(config: &Config) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(config.service.clone()),
            namespace: Some(config.namespace.clone()),
            labels: Some(config.labels()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(config.labels()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: config.service_port,
                target_port: Some(IntOrString::Int(config.container_port)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every replica runs the current template and is available.
    Complete,
    /// Still going: what is missing.
    Waiting(String),
    /// The controller gave up (progress deadline exceeded).
    Failed(String),
}

/// Where the rollout of `deployment` to `replicas` replicas stands, from its status alone.
pub fn rollout(deployment: &Deployment, replicas: i32) -> Rollout {
    let Some(status) = &deployment.status else {
        return Rollout::Waiting("the Deployment has no status yet".into());
    };
    let generation = deployment.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Rollout::Waiting(format!(
            "the Deployment controller has observed generation {observed} of {generation}"
        ));
    }
    if let Some(stalled) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Rollout::Failed(format!(
            "ProgressDeadlineExceeded: {}",
            stalled.message.clone().unwrap_or_default()
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < replicas {
        return Rollout::Waiting(format!("{updated} of {replicas} replicas updated"));
    }
    if total > updated {
        return Rollout::Waiting(format!("{} old replicas still running", total - updated));
    }
    if available < replicas {
        return Rollout::Waiting(format!("{available} of {replicas} replicas available"));
    }
    Rollout::Complete
}

/// The URL of the Service: its cluster IP and port.
pub fn service_url(service: &Service) -> Option<String> {
    let spec = service.spec.as_ref()?;
    let ip = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")?;
    let port = spec.ports.as_ref()?.first()?.port;
    // An IPv6 cluster IP needs brackets in a URL.
    Some(if ip.contains(':') {
        format!("http://[{ip}]:{port}/")
    } else {
        format!("http://{ip}:{port}/")
    })
}

pub async fn run(mut knobs: Knobs, time_left: Duration) -> Outcome {
    let config = Config::read(&mut knobs);
    knobs.finish()?;
    check(super::kube_client().await?, &config, time_left).await
}

/// Exercises the cluster within `time_left`, then cleans up within what is left of it.
pub async fn check(client: kube::Client, config: &Config, time_left: Duration) -> Outcome {
    let budget = Budget::new(Instant::now(), time_left, config.grace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &config.namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), &config.namespace);
    let pods: Api<Pod> = Api::namespaced(client, &config.namespace);
    let work = exercise(&deployments, &services, &pods, config, budget.steps);
    let (what_d, what_s) = (what_deployment(config), what_service(config));
    let cleanup = async {
        let (d, s) = tokio::join!(
            workloads::delete_and_wait(&deployments, &config.deployment, &what_d, budget.cleanup),
            workloads::delete_and_wait(&services, &config.service, &what_s, budget.cleanup),
        );
        d.err().into_iter().chain(s.err()).collect()
    };
    let what = format!("{what_d} and {what_s}");
    workloads::run_then_clean_up(
        "deployment",
        &budget,
        time_left,
        config.grace,
        work,
        cleanup,
        what,
    )
    .await
}

fn what_deployment(config: &Config) -> String {
    format!(
        "Deployment {} in namespace {}",
        config.deployment, config.namespace
    )
}

fn what_service(config: &Config) -> String {
    format!(
        "Service {} in namespace {}",
        config.service, config.namespace
    )
}

async fn exercise(
    deployments: &Api<Deployment>,
    services: &Api<Service>,
    pods: &Api<Pod>,
    config: &Config,
    until: Instant,
) -> Outcome {
    let one = |e: String| vec![e];
    // A previous run cut short may have left them behind.
    workloads::delete_and_wait(
        deployments,
        &config.deployment,
        &what_deployment(config),
        until,
    )
    .await
    .map_err(one)?;
    workloads::delete_and_wait(services, &config.service, &what_service(config), until)
        .await
        .map_err(one)?;
    let pp = PostParams::default();
    deployments
        .create(&pp, &deployment(config, &config.image))
        .await
        .map_err(|e| {
            one(format!(
                "cannot create {}: {}",
                what_deployment(config),
                super::describe(&e)
            ))
        })?;
    let created = services.create(&pp, &service(config)).await.map_err(|e| {
        one(format!(
            "cannot create {}: {}",
            what_service(config),
            super::describe(&e)
        ))
    })?;
    let url = service_url(&created).ok_or_else(|| {
        one(format!(
            "{} was created without a cluster IP and port",
            what_service(config)
        ))
    })?;
    wait_rollout(deployments, pods, config, &config.image, until).await?;
    request(&url, config, until).await.map_err(one)?;
    if config.rolling_update {
        let patch = serde_json::json!({"spec": deployment(config, &config.roll_to).spec});
        deployments
            .patch(
                &config.deployment,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| {
                one(format!(
                    "cannot roll {} to {}: {}",
                    what_deployment(config),
                    config.roll_to,
                    super::describe(&e)
                ))
            })?;
        wait_rollout(deployments, pods, config, &config.roll_to, until).await?;
        request(&url, config, until).await.map_err(one)?;
    }
    Ok(())
}

/// Watches the Deployment until its rollout completes, fails, or time runs out; the error says
/// what was missing and what its pods showed.
async fn wait_rollout(
    deployments: &Api<Deployment>,
    pods: &Api<Pod>,
    config: &Config,
    image: &str,
    until: Instant,
) -> Outcome {
    let mut last = Rollout::Waiting("the Deployment was not seen".into());
    let mut watch_error = None;
    let watch = workloads::object_updates(deployments.clone(), &config.deployment);
    let mut watch = std::pin::pin!(watch);
    let wait = async {
        while let Some(event) = watch.next().await {
            match event {
                Ok(Some(d)) => last = rollout(&d, config.replicas),
                Ok(None) => last = Rollout::Failed("the Deployment was deleted".into()),
                Err(e) => {
                    watch_error = Some(e.to_string());
                    continue;
                }
            }
            if last != Rollout::Complete && !matches!(last, Rollout::Failed(_)) {
                continue;
            }
            return;
        }
    };
    let _ = tokio::time::timeout(left(until), wait).await;
    let problem = match &last {
        Rollout::Complete => return Ok(()),
        Rollout::Failed(why) => why.clone(),
        Rollout::Waiting(why) => {
            workloads::with_watch_error(format!("not available in time: {why}"), &watch_error)
        }
    };
    let mut errors = vec![format!(
        "{} with image {image} and {} replicas: {problem}",
        what_deployment(config),
        config.replicas
    )];
    let selector = format!("app={},source=kuberhealthy", config.deployment);
    if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
        for pod in list.items.iter().filter(|p| !workloads::is_ready(p)) {
            errors.push(format!(
                "pod {} of the Deployment is {}",
                pod.metadata.name.as_deref().unwrap_or_default(),
                workloads::describe_pod(pod)
            ));
        }
    }
    Err(errors)
}

/// GETs the Service until it answers 200 or time runs out (a new Service can take a moment to
/// reach its endpoints), retrying with backoff.
async fn request(url: &str, config: &Config, until: Instant) -> Result<(), String> {
    crate::checker::client::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let attempt = || async {
        match client.get(url).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => Ok(()),
            Ok(r) => Err(format!("answered HTTP {}", r.status().as_u16())),
            Err(e) => Err(super::http::describe(e)),
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times();
    let retried = attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|_| left(until) > Duration::from_secs(1));
    let last = match tokio::time::timeout(left(until), retried).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e,
        Err(_) => "gave no answer in time".to_string(),
    };
    Err(format!(
        "GET {url} ({}, port {}) did not answer HTTP 200: {last}",
        what_service(config),
        config.service_port
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut k = Knobs::from_pairs(pairs);
        let c = Config::read(&mut k);
        k.finish().unwrap();
        c
    }

    fn errors(pairs: &[(&str, &str)]) -> Vec<String> {
        let mut k = Knobs::from_pairs(pairs);
        Config::read(&mut k);
        k.finish().unwrap_err()
    }

    #[test]
    fn v2_defaults() {
        let c = config(&[("KH_POD_NAMESPACE", "kh")]);
        assert_eq!(c.namespace, "kh");
        assert_eq!(c.deployment, "deployment-deployment");
        assert_eq!(c.service, "deployment-svc");
        assert_eq!(c.image, DEFAULT_IMAGE);
        assert_eq!(c.roll_to, DEFAULT_IMAGE_ROLL_TO);
        assert!(!c.rolling_update);
        assert_eq!(
            (c.replicas, c.container_port, c.service_port),
            (2, 8080, 80)
        );
        assert_eq!(
            (
                &*c.cpu_request,
                &*c.cpu_limit,
                &*c.memory_request,
                &*c.memory_limit
            ),
            ("15m", "75m", "20Mi", "75Mi")
        );
        assert_eq!(c.service_account, "default");
        assert_eq!(c.grace, Duration::from_secs(30));
        assert!(c.node_selector.is_empty() && c.tolerations.is_empty() && c.env.is_empty());
    }

    #[test]
    fn every_bad_knob_is_named() {
        assert_eq!(
            errors(&[("CHECK_DEPLOYMENT_REPLICAS", "0")]),
            ["CHECK_DEPLOYMENT_REPLICAS is \"0\", expected a number of replicas from 1 to 1000"]
        );
        assert_eq!(
            errors(&[("CHECK_DEPLOYMENT_REPLICAS", "two")]),
            ["CHECK_DEPLOYMENT_REPLICAS is \"two\", expected a whole number"]
        );
        assert_eq!(
            errors(&[("CHECK_CONTAINER_PORT", "70000")]),
            ["CHECK_CONTAINER_PORT is \"70000\", expected a port from 1 to 65535"]
        );
        assert_eq!(
            errors(&[("CHECK_LOAD_BALANCER_PORT", "0")]),
            ["CHECK_LOAD_BALANCER_PORT is \"0\", expected a port from 1 to 65535"]
        );
        assert_eq!(
            errors(&[("CHECK_DEPLOYMENT_ROLLING_UPDATE", "yes")]),
            ["CHECK_DEPLOYMENT_ROLLING_UPDATE is \"yes\", expected true or false"]
        );
        assert_eq!(
            errors(&[
                ("CHECK_DEPLOYMENT_ROLLING_UPDATE", "true"),
                ("CHECK_IMAGE", "web:1"),
                ("CHECK_IMAGE_ROLL_TO", "web:1")
            ]),
            [
                "CHECK_IMAGE_ROLL_TO is \"web:1\", the same as CHECK_IMAGE; a rolling update needs a different image"
            ]
        );
        assert_eq!(errors(&[("CHECK_SERVICE_NAME", "Svc")]).len(), 1);
        assert_eq!(errors(&[("CHECK_DEPLOYMENT_NAME", "a_b")]).len(), 1);
        assert_eq!(errors(&[("CHECK_POD_CPU_REQUEST", "x")]).len(), 1);
        assert_eq!(errors(&[("CHECK_POD_MEM_REQUEST", "x")]).len(), 1);
        assert_eq!(errors(&[("NODE_SELECTOR", "a")]).len(), 1);
        assert_eq!(errors(&[("TOLERATIONS", "a:b")]).len(), 1);
        assert_eq!(errors(&[("ADDITIONAL_ENV_VARS", "X")]).len(), 1);
        assert_eq!(errors(&[("SHUTDOWN_GRACE_PERIOD", "0s")]).len(), 1);
    }

    #[test]
    fn the_deployment_and_service_carry_the_knobs() {
        let c = config(&[
            ("CHECK_NAMESPACE", "shop"),
            ("CHECK_DEPLOYMENT_REPLICAS", "4"),
            ("CHECK_CONTAINER_PORT", "9090"),
            ("CHECK_LOAD_BALANCER_PORT", "8081"),
            ("CHECK_IMAGE_PULL_SECRET", "regcred"),
            ("NODE_SELECTOR", "pool=web"),
            ("TOLERATIONS", "dedicated=web:NoSchedule"),
            ("ADDITIONAL_ENV_VARS", "X=foo,Y=bar"),
            ("CHECK_SERVICE_ACCOUNT", "web"),
        ]);
        let d = deployment(&c, "web:2");
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(4));
        let pod = spec.template.spec.as_ref().unwrap();
        let container = &pod.containers[0];
        assert_eq!(container.image.as_deref(), Some("web:2"));
        assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 9090);
        let env: Vec<_> = container
            .env
            .iter()
            .flatten()
            .map(|e| format!("{}={}", e.name, e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(env, ["X=foo", "Y=bar"]);
        assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "web");
        assert_eq!(pod.tolerations.as_ref().unwrap().len(), 1);
        assert_eq!(pod.image_pull_secrets.as_ref().unwrap()[0].name, "regcred");
        assert_eq!(pod.service_account_name.as_deref(), Some("web"));
        assert_eq!(
            spec.selector.match_labels,
            spec.template.metadata.as_ref().unwrap().labels
        );
        let s = service(&c);
        let port = &s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.port, port.target_port.clone()),
            (8081, Some(IntOrString::Int(9090)))
        );
        assert_eq!(s.spec.as_ref().unwrap().selector, Some(c.labels()));
    }

    fn seen(
        generation: i64,
        observed: i64,
        replicas: i32,
        updated: i32,
        available: i32,
    ) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..Default::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(replicas),
                updated_replicas: Some(updated),
                available_replicas: Some(available),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_rollout_completes_only_when_every_replica_is_updated_and_available() {
        assert_eq!(rollout(&seen(1, 1, 2, 2, 2), 2), Rollout::Complete);
        assert_eq!(
            rollout(&seen(1, 1, 2, 2, 1), 2),
            Rollout::Waiting("1 of 2 replicas available".into())
        );
        assert_eq!(
            rollout(&seen(2, 1, 2, 2, 2), 2),
            Rollout::Waiting("the Deployment controller has observed generation 1 of 2".into())
        );
        assert_eq!(
            rollout(&seen(2, 2, 3, 2, 2), 2),
            Rollout::Waiting("1 old replicas still running".into())
        );
        assert_eq!(
            rollout(&seen(2, 2, 2, 1, 2), 2),
            Rollout::Waiting("1 of 2 replicas updated".into())
        );
        assert_eq!(
            rollout(&Deployment::default(), 2),
            Rollout::Waiting("the Deployment has no status yet".into())
        );
        let mut stalled = seen(1, 1, 2, 2, 0);
        stalled.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"web-1\" has timed out progressing.".into()),
            ..Default::default()
        }]);
        assert_eq!(
            rollout(&stalled, 2),
            Rollout::Failed(
                "ProgressDeadlineExceeded: ReplicaSet \"web-1\" has timed out progressing.".into()
            )
        );
    }

    #[test]
    fn the_service_url_is_its_cluster_ip_and_port() {
        let c = config(&[]);
        let mut s = service(&c);
        assert_eq!(service_url(&s), None);
        s.spec.as_mut().unwrap().cluster_ip = Some("10.0.0.7".into());
        assert_eq!(service_url(&s).as_deref(), Some("http://10.0.0.7:80/"));
        s.spec.as_mut().unwrap().cluster_ip = Some("fd00::7".into());
        assert_eq!(service_url(&s).as_deref(), Some("http://[fd00::7]:80/"));
        s.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        assert_eq!(service_url(&s), None);
    }
}
