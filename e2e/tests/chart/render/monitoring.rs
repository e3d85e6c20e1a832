//! Monitoring renderings: the ServiceMonitor, the PrometheusRule and the Grafana dashboard.

use super::*;

/// The monitoring toggles.
pub(super) const TOGGLES: &[Toggle] = &[
    Toggle {
        name: "prometheus.serviceMonitor",
        values: &[
            "--set",
            "prometheus.serviceMonitor.enabled=true",
            "--set",
            "prometheus.serviceMonitor.interval=15s",
            "--set",
            "prometheus.serviceMonitor.additionalLabels.release=prometheus",
        ],
        namespaces: &[],
        check: |r, _| {
            let monitor = r.one("ServiceMonitor")?;
            let service = r.one("Service")?;
            let endpoint = &monitor["spec"]["endpoints"][0];
            ensure!(
                endpoint["port"] == service["spec"]["ports"][0]["name"],
                "the ServiceMonitor scrapes the Service's named port: {endpoint}"
            );
            ensure!(endpoint["path"] == "/metrics" && endpoint["interval"] == "15s");
            ensure!(
                endpoint["honorLabels"] == true,
                "the check's `namespace` label must win over the target's"
            );
            let labels = service["metadata"]["labels"].as_object().unwrap();
            ensure!(
                selects(&monitor["spec"]["selector"]["matchLabels"], labels),
                "the ServiceMonitor selects the Service"
            );
            ensure!(monitor["metadata"]["labels"]["release"] == "prometheus");
            Ok(())
        },
    },
    Toggle {
        name: "prometheus.prometheusRule",
        values: &[
            "--set",
            "prometheus.prometheusRule.enabled=true",
            "--set",
            "prometheus.prometheusRule.additionalLabels.release=prometheus",
        ],
        namespaces: &[],
        check: |r, ns| {
            let rule = r.one("PrometheusRule")?;
            ensure!(rule["metadata"]["labels"]["release"] == "prometheus");
            let alerts = crate::alerts::alerts(rule)?;
            let names: Vec<&str> = alerts.iter().map(|a| str(&a["alert"])).collect();
            ensure!(
                names
                    == [
                        "KuberhealthyCheckFailing",
                        "KuberhealthyCheckStale",
                        "KuberhealthyNoLeader",
                        "KuberhealthyReplicasDown"
                    ],
                "{names:?}"
            );
            for alert in &alerts {
                for field in [
                    "/labels/severity",
                    "/annotations/summary",
                    "/annotations/description",
                    "/for",
                ] {
                    ensure!(
                        alert
                            .pointer(field)
                            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty())),
                        "{} has no {field}",
                        alert["alert"]
                    );
                }
            }
            let selector = format!(r#"job="kh-kuberhealthy", namespace="{ns}""#);
            ensure!(
                str(&alerts[3]["expr"]).contains(&selector)
                    && str(&alerts[3]["expr"]).ends_with("< 2"),
                "{}",
                alerts[3]["expr"]
            );
            crate::alerts::promtool_check_rules(rule)?;
            Ok(())
        },
    },
    Toggle {
        name: "prometheus.prometheusRule with targetSelector and 3 replicas",
        values: &[
            "--set",
            "prometheus.prometheusRule.enabled=true",
            "--set",
            "replicas=3",
            "--set-string",
            "prometheus.prometheusRule.targetSelector=job=\"kuberhealthy\"",
            "--set",
            "prometheus.prometheusRule.failingFor=15m",
            "--set",
            "prometheus.prometheusRule.severity.checkFailing=critical",
        ],
        namespaces: &[],
        check: |r, _| {
            let alerts = crate::alerts::alerts(r.one("PrometheusRule")?)?;
            ensure!(alerts[0]["for"] == "15m" && alerts[0]["labels"]["severity"] == "critical");
            ensure!(
                str(&alerts[2]["expr"])
                    == r#"(max(kuberhealthy_controller_leader{job="kuberhealthy"}) or vector(0)) < 1"#,
                "{}",
                alerts[2]["expr"]
            );
            ensure!(
                str(&alerts[3]["expr"]) == r#"(sum(up{job="kuberhealthy"}) or vector(0)) < 3"#,
                "{}",
                alerts[3]["expr"]
            );
            crate::alerts::promtool_check_rules(r.one("PrometheusRule")?)
        },
    },
    Toggle {
        name: "prometheus.grafanaDashboard",
        values: &[
            "--set",
            "prometheus.grafanaDashboard.enabled=true",
            "--set",
            "prometheus.grafanaDashboard.namespace={ns}-grafana",
            "--set",
            "prometheus.grafanaDashboard.annotations.grafana_folder=Kuberhealthy",
        ],
        namespaces: &["grafana"],
        check: |r, ns| {
            let map = r.named("ConfigMap", "kh-kuberhealthy-dashboard")?;
            ensure!(map["metadata"]["namespace"] == format!("{ns}-grafana"));
            ensure!(
                map["metadata"]["labels"]["grafana_dashboard"] == "1",
                "{map}"
            );
            ensure!(map["metadata"]["annotations"]["grafana_folder"] == "Kuberhealthy");
            let shipped: Value = serde_json::from_str(str(&map["data"]["kuberhealthy.json"]))
                .context("the dashboard in the ConfigMap is not JSON")?;
            ensure!(
                shipped == crate::dashboard::dashboard()?,
                "the ConfigMap holds files/dashboard.json"
            );
            Ok(())
        },
    },
];
