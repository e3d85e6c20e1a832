//! The same metrics pushed over OTLP (HTTP/protobuf) arrive at a local receiver with v2's
//! names and attributes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::post;
use kuberhealthy::controller::config::PromMetricsConfig;
use kuberhealthy::controller::metrics::OtlpSettings;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::fixture;

/// Accepts `POST /v1/metrics` and forwards each decoded request.
async fn receive(
    State(requests): State<mpsc::UnboundedSender<ExportMetricsServiceRequest>>,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>) {
    let protobuf = [(header::CONTENT_TYPE, "application/x-protobuf")];
    match ExportMetricsServiceRequest::decode(body) {
        Ok(request) => {
            let _ = requests.send(request);
            let response = ExportMetricsServiceResponse::default().encode_to_vec();
            (StatusCode::OK, protobuf, response)
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            protobuf,
            e.to_string().into_bytes(),
        ),
    }
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

/// Each gauge data point of `metric`: its attributes and value.
fn gauge_points(metric: &Metric) -> Vec<(BTreeMap<String, String>, f64)> {
    let Some(metric::Data::Gauge(gauge)) = &metric.data else {
        panic!("{} is not a gauge: {:?}", metric.name, metric.data);
    };
    gauge
        .data_points
        .iter()
        .map(|p| {
            let value = match p.value {
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                Some(number_data_point::Value::AsDouble(d)) => d,
                None => f64::NAN,
            };
            (attributes(&p.attributes), value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_pushed_to_an_otlp_receiver() {
    let (sender, mut requests) = mpsc::unbounded_channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = axum::Router::new()
        .route("/v1/metrics", post(receive))
        .with_state(sender);
    let server = tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });

    let settings = OtlpSettings {
        endpoint: format!("http://127.0.0.1:{port}/v1/metrics"),
        interval: Some(Duration::from_millis(200)),
    };
    let metrics = fixture::metrics(PromMetricsConfig::default(), Some(settings));
    assert!(metrics.otlp().is_some());

    // The periodic reader pushes on its own; wait for the first push.
    let request = tokio::time::timeout(Duration::from_secs(30), requests.recv())
        .await
        .expect("no OTLP push within 30 s")
        .expect("receiver closed");

    let [resource_metrics] = request.resource_metrics.as_slice() else {
        panic!("expected one resource, got {request:?}");
    };
    let resource = attributes(&resource_metrics.resource.as_ref().unwrap().attributes);
    assert_eq!(resource["service.name"], "kuberhealthy");
    assert_eq!(resource["service.instance.id"], fixture::MASTER);
    let [scope_metrics] = resource_metrics.scope_metrics.as_slice() else {
        panic!("expected one scope, got {resource_metrics:?}");
    };
    assert_eq!(scope_metrics.scope.as_ref().unwrap().name, "kuberhealthy");
    let by_name: BTreeMap<&str, &Metric> = scope_metrics
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m))
        .collect();
    let names: BTreeSet<&str> = by_name.keys().copied().collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "kuberhealthy_check",
            "kuberhealthy_check_duration_seconds",
            "kuberhealthy_check_last_run_timestamp_seconds",
            "kuberhealthy_check_run_interval_seconds",
            "kuberhealthy_cluster_state",
            "kuberhealthy_controller_leader",
            "kuberhealthy_job",
            "kuberhealthy_job_duration_seconds",
            "kuberhealthy_report_duration_seconds",
            "kuberhealthy_run_start_lateness_seconds",
            "kuberhealthy_running",
            "kuberhealthy_runs_failed_total",
            "kuberhealthy_runs_started_total",
            "kuberhealthy_runs_succeeded_total",
            "kuberhealthy_runs_timed_out_total",
        ])
    );

    let mut checks = gauge_points(by_name["kuberhealthy_check"]);
    checks.sort_by(|a, b| a.0["check"].cmp(&b.0["check"]));
    let failing = &checks[0];
    assert_eq!(
        failing.0,
        labels(&[
            ("check", "kuberhealthy/deployment"),
            ("namespace", "kuberhealthy"),
            ("status", "0"),
            (
                "error",
                "pod 'deployment-abc' failed: CrashLoopBackOff|rollout timed out after 5m0s"
            ),
        ])
    );
    assert_eq!(failing.1, 0.0);
    assert_eq!(checks.len(), 4, "{checks:?}");

    let durations = gauge_points(by_name["kuberhealthy_check_duration_seconds"]);
    assert!(
        durations.contains(&(
            labels(&[
                ("check", "kuberhealthy/dns-status-internal"),
                ("namespace", "kuberhealthy")
            ]),
            3.359431829
        )),
        "{durations:?}"
    );
    assert_eq!(by_name["kuberhealthy_check_duration_seconds"].unit, "s");
    assert_eq!(
        gauge_points(by_name["kuberhealthy_running"]),
        [(labels(&[("current_master", fixture::MASTER)]), 1.0)]
    );
    assert_eq!(
        gauge_points(by_name["kuberhealthy_controller_leader"]),
        [(BTreeMap::new(), 1.0)]
    );

    let Some(metric::Data::Sum(started)) = &by_name["kuberhealthy_runs_started_total"].data else {
        panic!("runs started is not a sum");
    };
    assert!(started.is_monotonic);
    let started: BTreeSet<String> = started
        .data_points
        .iter()
        .map(|p| attributes(&p.attributes)["check"].clone())
        .collect();
    assert_eq!(
        started,
        BTreeSet::from([
            "kuberhealthy/deployment".to_string(),
            "kuberhealthy/dns-status-internal".to_string()
        ])
    );

    let Some(metric::Data::Histogram(reports)) =
        &by_name["kuberhealthy_report_duration_seconds"].data
    else {
        panic!("report duration is not a histogram");
    };
    let codes: BTreeSet<String> = reports
        .data_points
        .iter()
        .map(|p| attributes(&p.attributes)["code"].clone())
        .collect();
    assert_eq!(
        codes,
        BTreeSet::from(["200".to_string(), "409".to_string()])
    );

    tokio::task::spawn_blocking(move || metrics.shutdown())
        .await
        .unwrap()
        .expect("shutdown pushes a last time");
    server.abort();
}
