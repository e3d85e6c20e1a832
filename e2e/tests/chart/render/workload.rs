//! The controller's workload: replicas, disruption budget, image, scheduling, pod metadata, Service, settings, resources; the pod passes restricted admission and the controller accepts its rendered config.

use super::*;

/// The pod the Deployment's template makes is admitted in a namespace that enforces the
/// restricted Pod Security Standard (the API server's PodSecurity admission, dry run); a
/// pod without `runAsNonRoot` is refused there, so the admission is really on.
#[tokio::test]
pub(super) async fn the_pod_passes_the_restricted_pod_security_admission() {
    let ctx = cluster().await.context("chart-psa").await.unwrap();
    let client = ctx.client().await.unwrap();
    let restricted = format!("{}-restricted", ctx.namespace());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(restricted.clone()),
            labels: Some(
                [
                    ("pod-security.kubernetes.io/enforce", "restricted"),
                    ("pod-security.kubernetes.io/enforce-version", "latest"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let rendered = template("kh", &restricted, &every_check_on().unwrap())
        .await
        .unwrap();
    let template = &rendered.one("Deployment").unwrap()["spec"]["template"];
    let pod = |template: &Value| -> Pod {
        let mut pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "restricted-check", "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        }))
        .unwrap();
        pod.metadata.namespace = Some(restricted.clone());
        pod
    };
    let pods: Api<Pod> = Api::namespaced(client, &restricted);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    if let Err(err) = pods.create(&dry_run, &pod(template)).await {
        panic!("the chart's pod is refused under the restricted profile: {err}");
    }
    // So is the pod of every built-in check (the controller adds env, labels and
    // `restartPolicy: Never` to it, nothing that touches the profile).
    let checks = rendered.of_kind("KuberhealthyCheck");
    assert_eq!(checks.len(), chart_checks().unwrap().len());
    for check in checks {
        let name = str(&check["metadata"]["name"]);
        let spec = json!({"metadata": {"labels": {}}, "spec": check["spec"]["podSpec"]});
        if let Err(err) = pods.create(&dry_run, &pod(&spec)).await {
            panic!("the {name} check's pod is refused under the restricted profile: {err}");
        }
    }
    let mut weakened = template.clone();
    weakened["spec"]["securityContext"]
        .as_object_mut()
        .unwrap()
        .remove("runAsNonRoot");
    match pods.create(&dry_run, &pod(&weakened)).await {
        Err(kube::Error::Api(status)) => assert!(
            status.message.contains("restricted") && status.message.contains("runAsNonRoot"),
            "{}",
            status.message
        ),
        other => panic!("a pod without runAsNonRoot should be refused: {other:?}"),
    }
}

/// The ConfigMap's config file and the Deployment's env are accepted by `kuberhealthy run`
/// as it resolves its configuration (`--print-config`), with what the values say.
#[tokio::test]
pub(super) async fn the_rendered_config_and_env_are_accepted_by_the_controller() {
    let rendered = template(
        "kh",
        "monitoring",
        &args(&[
            "--set",
            "targetNamespace=checks",
            "--set",
            "config.maxCompletedPodCount=9",
            "--set",
            "config.stateMetadata.cluster=prod-1",
            "--set",
            "config.identifyReportsBySourceIP=false",
        ]),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kuberhealthy.yaml");
    std::fs::write(
        &config,
        str(&rendered.one("ConfigMap").unwrap()["data"]["kuberhealthy.yaml"]),
    )
    .unwrap();
    let binary = kuberhealthy_e2e::binaries::kuberhealthy().unwrap();
    let mut cmd = std::process::Command::new(&binary);
    cmd.args(["run", "--print-config", "--config"])
        .arg(&config)
        .env_clear()
        .env("POD_NAME", "kh-kuberhealthy-abc")
        .env("POD_NAMESPACE", "monitoring");
    for var in rendered.container().unwrap()["env"].as_array().unwrap() {
        if let Some(value) = var["value"].as_str() {
            cmd.env(str(&var["name"]), value);
        }
    }
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "kuberhealthy refused the chart's configuration: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let settings: Value = serde_json::from_slice(&output.stdout).unwrap();
    let expect = [
        ("/listenAddress", json!("0.0.0.0:8080")),
        ("/targetNamespace", json!("checks")),
        (
            "/reportingUrl",
            json!("http://kh-kuberhealthy.monitoring.svc.cluster.local/externalCheckStatus"),
        ),
        ("/healthchecks", json!(true)),
        (
            "/healthcheckReportingUrl",
            json!("http://kh-kuberhealthy.monitoring.svc.cluster.local/check"),
        ),
        ("/lease/name", json!("kuberhealthy")),
        ("/lease/leaseDuration", json!("15s")),
        ("/maxCompletedPodCount", json!(9)),
        ("/stateMetadata", json!({"cluster": "prod-1"})),
        ("/identifyReportsBySourceIP", json!(false)),
    ];
    for (pointer, value) in expect {
        assert_eq!(
            settings.pointer(pointer),
            Some(&value),
            "{pointer} in {settings:#}"
        );
    }
}

/// The workload toggles.
pub(super) const TOGGLES: &[Toggle] = &[
    Toggle {
        name: "podDisruptionBudget.enabled=false",
        values: &["--set", "podDisruptionBudget.enabled=false"],
        namespaces: &[],
        check: |r, _| {
            ensure!(
                r.of_kind("PodDisruptionBudget").is_empty(),
                "{:?}",
                r.kinds()
            );
            Ok(())
        },
    },
    Toggle {
        name: "replicas=1 (no PodDisruptionBudget)",
        values: &[
            "--set",
            "replicas=1",
            "--set",
            "podDisruptionBudget.minAvailable=1",
        ],
        namespaces: &[],
        check: |r, _| {
            ensure!(r.one("Deployment")?["spec"]["replicas"] == 1);
            ensure!(
                r.of_kind("PodDisruptionBudget").is_empty(),
                "a budget of 1 on one replica would block node drains"
            );
            Ok(())
        },
    },
    Toggle {
        name: "podAntiAffinity=hard",
        values: &["--set", "podAntiAffinity=hard"],
        namespaces: &[],
        check: |r, _| {
            let anti = &pod_spec(r)?["affinity"]["podAntiAffinity"];
            let required = &anti["requiredDuringSchedulingIgnoredDuringExecution"][0];
            ensure!(
                required["topologyKey"] == "kubernetes.io/hostname",
                "{anti}"
            );
            ensure!(selects(
                &required["labelSelector"]["matchLabels"],
                pod_labels(r)?
            ));
            ensure!(
                anti["preferredDuringSchedulingIgnoredDuringExecution"].is_null(),
                "{anti}"
            );
            Ok(())
        },
    },
    Toggle {
        name: "reportingURL",
        values: &[
            "--set",
            "reportingURL=http://kh.example:8080/externalCheckStatus",
        ],
        namespaces: &[],
        check: |r, _| {
            ensure!(
                r.env("KH_EXTERNAL_REPORTING_URL")? == "http://kh.example:8080/externalCheckStatus"
            );
            Ok(())
        },
    },
    Toggle {
        name: "image",
        values: &[
            "--set",
            "image.registry=registry.example.com",
            "--set",
            "image.repository=team/kuberhealthy",
            "--set",
            "image.tag=1.2.3",
            "--set",
            "image.pullPolicy=Always",
            "--set",
            "imagePullSecrets[0].name=regcred",
        ],
        namespaces: &[],
        check: |r, ns| {
            let c = r.container()?;
            ensure!(
                c["image"] == "registry.example.com/team/kuberhealthy:1.2.3",
                "{}",
                c["image"]
            );
            ensure!(c["imagePullPolicy"] == "Always");
            ensure!(pod_spec(r)?["imagePullSecrets"] == json!([{"name": "regcred"}]));
            // The built-in checks run the same image, with the same pull secrets.
            check_builtin(r, ns, &DEFAULT_CHECKS, None)
        },
    },
    Toggle {
        name: "image defaults to the appVersion",
        values: &[],
        namespaces: &[],
        check: |r, _| {
            let chart: Value = serde_saphyr::from_str(&std::fs::read_to_string(
                support::chart_dir().join("Chart.yaml"),
            )?)?;
            let expected = format!("kuberhealthy:{}", str(&chart["appVersion"]));
            ensure!(
                r.container()?["image"] == expected.as_str(),
                "{}",
                r.container()?["image"]
            );
            Ok(())
        },
    },
    Toggle {
        name: "scheduling",
        values: &[
            "--set",
            "nodeSelector.kubernetes\\.io/os=linux",
            "--set",
            "tolerations[0].key=dedicated",
            "--set",
            "tolerations[0].operator=Exists",
            "--set",
            "priorityClassName=system-cluster-critical",
            "--set",
            "terminationGracePeriodSeconds=45",
        ],
        namespaces: &[],
        check: |r, _| {
            let pod = pod_spec(r)?;
            ensure!(pod["nodeSelector"] == json!({"kubernetes.io/os": "linux"}));
            ensure!(pod["tolerations"] == json!([{"key": "dedicated", "operator": "Exists"}]));
            ensure!(pod["priorityClassName"] == "system-cluster-critical");
            ensure!(pod["terminationGracePeriodSeconds"] == 45);
            Ok(())
        },
    },
    Toggle {
        name: "pod metadata",
        values: &[
            "--set",
            "podAnnotations.example\\.com/owner=sre",
            "--set",
            "podLabels.team=sre",
        ],
        namespaces: &[],
        check: |r, _| {
            let meta = &r.one("Deployment")?["spec"]["template"]["metadata"];
            ensure!(meta["annotations"]["example.com/owner"] == "sre", "{meta}");
            ensure!(meta["labels"]["team"] == "sre", "{meta}");
            ensure!(
                r.one("Deployment")?["spec"]["selector"]["matchLabels"]["team"].is_null(),
                "extra pod labels stay out of the immutable selector"
            );
            Ok(())
        },
    },
    Toggle {
        name: "service",
        values: &[
            "--set",
            "service.type=NodePort",
            "--set",
            "service.port=8081",
            "--set-string",
            "service.annotations.example\\.com/scrape=true",
        ],
        namespaces: &[],
        check: |r, ns| {
            let service = r.one("Service")?;
            ensure!(service["spec"]["type"] == "NodePort");
            ensure!(service["spec"]["ports"][0]["port"] == 8081);
            ensure!(service["spec"]["ports"][0]["targetPort"] == "http");
            ensure!(service["metadata"]["annotations"]["example.com/scrape"] == "true");
            ensure!(
                r.env("KH_EXTERNAL_REPORTING_URL")?
                    == format!(
                        "http://kh-kuberhealthy.{ns}.svc.cluster.local:8081/externalCheckStatus"
                    ),
                "the default reporting URL follows the Service port: {}",
                r.env("KH_EXTERNAL_REPORTING_URL")?
            );
            Ok(())
        },
    },
    Toggle {
        name: "controller settings",
        values: &[
            "--set",
            "logFormat=text",
            "--set",
            "maxStartsPerSecond=25",
            "--set",
            "leaderElection.leaseName=kh-lease",
            "--set",
            "leaderElection.leaseDuration=30s",
            "--set",
            "leaderElection.renewDeadline=20s",
            "--set",
            "leaderElection.retryPeriod=4s",
            "--set",
            "extraEnv[0].name=OTEL_EXPORTER_OTLP_ENDPOINT",
            "--set",
            "extraEnv[0].value=http://otel-collector:4318",
            "--set",
            "config.logLevel=debug",
            "--set",
            "config.maxCompletedPodCount=9",
            "--set",
            "config.stateMetadata.cluster=prod-1",
            "--set",
            "config.promMetricsConfig.suppressErrorLabel=true",
        ],
        namespaces: &[],
        check: |r, _| {
            for (var, value) in [
                ("KH_LOG_FORMAT", "text"),
                ("KH_MAX_STARTS_PER_SECOND", "25"),
                ("KH_LEADER_ELECTION_NAME", "kh-lease"),
                ("KH_LEADER_ELECTION_LEASE_DURATION", "30s"),
                ("KH_LEADER_ELECTION_RENEW_DEADLINE", "20s"),
                ("KH_LEADER_ELECTION_RETRY_PERIOD", "4s"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector:4318"),
            ] {
                ensure!(r.env(var)? == value, "{var}: {}", r.env(var)?);
            }
            let config: Value =
                serde_saphyr::from_str(str(&r.one("ConfigMap")?["data"]["kuberhealthy.yaml"]))?;
            ensure!(
                config["logLevel"] == "debug" && config["maxCompletedPodCount"] == 9,
                "{config}"
            );
            ensure!(
                config["stateMetadata"] == json!({"cluster": "prod-1"}),
                "{config}"
            );
            ensure!(
                config["promMetricsConfig"]["suppressErrorLabel"] == true,
                "{config}"
            );
            Ok(())
        },
    },
    Toggle {
        name: "resources",
        values: &[
            "--set",
            "resources.requests.cpu=200m",
            "--set",
            "resources.requests.memory=128Mi",
            "--set",
            "resources.limits.memory=512Mi",
        ],
        namespaces: &[],
        check: |r, _| {
            ensure!(
                r.container()?["resources"]
                    == json!({"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}),
                "{}",
                r.container()?["resources"]
            );
            Ok(())
        },
    },
];
