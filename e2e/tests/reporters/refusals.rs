//! Header-less reports that cannot be tied to a run are refused with a reason that says what
//! to send; a report with the header is recorded whatever address it comes from.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::wait::await_condition;
use serde_json::json;

use crate::{Scene, TIMEOUT, check, reason};

/// A checker that never reports: its run stays in flight while the test reports for it.
fn sleeping(name: &str) -> serde_json::Value {
    check(name, &["sleep", "300"])
}

/// Waits until the pod of the run in flight of check `name` is Running with an address;
/// returns the pod's name and address.
async fn running_pod(scene: &Scene, name: &str) -> (String, String) {
    let spec = scene.run_in_flight(name).await;
    let pod = spec["runPod"].as_str().unwrap().to_string();
    let pods: Api<Pod> = Api::namespaced(scene.ctx.client().await.unwrap(), scene.ctx.namespace());
    let running = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .is_some_and(|s| s.phase.as_deref() == Some("Running") && s.pod_ip.is_some())
    };
    let found = tokio::time::timeout(TIMEOUT, await_condition(pods, &pod, running))
        .await
        .unwrap_or_else(|_| panic!("pod {pod} was not Running in time"))
        .unwrap()
        .unwrap();
    (pod, found.status.unwrap().pod_ip.unwrap())
}

#[tokio::test]
async fn a_report_from_an_address_no_checker_has_is_refused_naming_it() {
    let scene = Scene::start("reporters-unknown", &[]).await;
    scene.apply(&sleeping("waiting")).await;
    let (_, checker_ip) = running_pod(&scene, "waiting").await;
    let host = scene.ctx.host_ip().to_string();
    assert_ne!(checker_ip, host);

    // This process reports from the host side of the pod network: no checker's address.
    for (headers, missing) in [
        (vec![], "missing the kh-run-uuid header"),
        (
            vec![("kh-run-uuid", " ")],
            "the kh-run-uuid header is empty",
        ),
    ] {
        let refused = scene.post(&headers, r#"{"OK": true}"#).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        let why = reason(&refused);
        assert!(
            why.starts_with(missing)
                && why.contains(&format!(
                    "no running checker pod has the address {host} this report came from"
                ))
                && why.ends_with(
                    "send the value of the checker's KH_RUN_UUID variable as the kh-run-uuid header"
                ),
            "{why}"
        );
        println!("{why}");
    }
    let spec = scene.run_in_flight("waiting").await;
    assert!(
        spec.get("LastRun").is_none(),
        "nothing was recorded: {spec:#}"
    );
}

#[tokio::test]
async fn a_report_with_the_header_from_another_address_is_recorded() {
    let scene = Scene::start("reporters-header", &[]).await;
    scene.apply(&sleeping("waiting")).await;
    let (pod, checker_ip) = running_pod(&scene, "waiting").await;
    let uuid = scene.run_in_flight("waiting").await["uuid"]
        .as_str()
        .unwrap()
        .to_string();

    // From the host's address, not the checker pod's: the header names the run.
    let recorded = scene
        .post(
            &[("kh-run-uuid", &uuid)],
            r#"{"OK": false, "Errors": ["sent by the test"]}"#,
        )
        .await;
    assert_eq!(recorded.status, 200, "{}", recorded.body);
    let spec = scene.finished_run("waiting").await;
    assert_eq!(
        (&spec["uuid"], &spec["OK"], &spec["Errors"]),
        (&json!(uuid), &json!(false), &json!(["sent by the test"]))
    );
    assert_eq!(scene.identified_by(&uuid).await, "kh-run-uuid header");
    println!(
        "run {uuid} of pod {pod} ({checker_ip}) recorded from {}",
        scene.ctx.host_ip()
    );
}

#[tokio::test]
async fn two_host_network_checkers_running_at_once_are_refused_naming_both() {
    let scene = Scene::start("reporters-host-network", &[]).await;
    let host = scene.ctx.host_ip().to_string();
    let mut pods = Vec::new();
    for name in ["node-a", "node-b"] {
        let mut check = sleeping(name);
        check["spec"]["podSpec"]["hostNetwork"] = json!(true);
        scene.apply(&check).await;
    }
    for name in ["node-a", "node-b"] {
        let (pod, ip) = running_pod(&scene, name).await;
        assert_eq!(ip, host, "a hostNetwork pod has its node's address");
        pods.push(format!("{}/{pod}", scene.ctx.namespace()));
    }

    // This process has the host's address too: it could be either checker.
    let refused = scene.post(&[], r#"{"OK": true}"#).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let why = reason(&refused);
    assert!(
        why.starts_with("missing the kh-run-uuid header")
            && why.contains(&format!("2 running checker pods have the address {host}"))
            && pods.iter().all(|pod| why.contains(pod.as_str()))
            && why.contains("kh-run-uuid header"),
        "{why}"
    );
    println!("{why}");
    for name in ["node-a", "node-b"] {
        let spec = scene.run_in_flight(name).await;
        assert!(
            spec.get("LastRun").is_none(),
            "nothing was recorded: {spec:#}"
        );
    }
}

#[tokio::test]
async fn with_identification_off_a_report_without_the_header_is_refused() {
    let scene = Scene::start(
        "reporters-off",
        &[("KH_IDENTIFY_REPORTS_BY_SOURCE_IP", "false")],
    )
    .await;
    // The blog post's curl, which prints the answer and exits 0 whatever it is.
    scene
        .apply(&check(
            "curl",
            &[
                "sh",
                "-c",
                "curl --location --request POST $KH_REPORTING_URL --header 'Content-Type: application/json' --data-raw '{ \"OK\": true }'",
            ],
        ))
        .await;
    let spec = scene.finished_run("curl").await;
    let pod = spec["runPod"].as_str().unwrap();
    let output = scene.ctx.container_log(pod, "main");
    assert!(
        output.contains(
            "missing the kh-run-uuid header, and finding the run by the checker pod's address is turned off on this replica"
        ),
        "the checker was told why:\n{output}"
    );
    let error = spec["Errors"][0].as_str().unwrap_or_default();
    assert!(
        spec["OK"] == false && error.contains("without reporting"),
        "the run failed as unreported: {spec:#}"
    );
}
