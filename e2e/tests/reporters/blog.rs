//! The blog post's check, whose run ends with a curl that sends no `kh-run-uuid` header: the
//! example `make run` installs, as committed, turns OK, and a failing variant is recorded
//! with its error.

use kuberhealthy_e2e::manifests;
use kuberhealthy_e2e::session::workspace_root;
use serde_json::{Value, json};

use crate::Scene;

/// The end of the post's `run.sh`, verbatim.
const BLOG_CURL: &str = "curl --location --request POST $KH_REPORTING_URL \\
--header 'Content-Type: application/json' \\
--data-raw '{ \"OK\": true }'";

/// `e2e/examples/blog-curl-check.yaml`, which `make run` installs, as JSON.
fn blog_example() -> Value {
    let path = workspace_root().join("e2e/examples/blog-curl-check.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let check = manifests::parse(&text).unwrap().remove(0);
    let value = serde_json::to_value(&check).unwrap();
    let script = value["spec"]["podSpec"]["containers"][0]["args"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        script.contains(BLOG_CURL),
        "{} runs the post's curl as the post writes it:\n{script}",
        path.display()
    );
    value
}

#[tokio::test]
async fn the_blog_posts_curl_without_the_header_is_recorded() {
    let scene = Scene::start("reporters-blog", &[]).await;
    let check = blog_example();
    let name = check["metadata"]["name"].as_str().unwrap().to_string();
    scene.apply(&check).await;

    let run = scene.recorded_by_address(&name).await;
    run.assert_result(true, &[]);
    assert!(
        run.output.contains("recorded the report of run"),
        "curl printed the replica's answer:\n{}",
        run.output
    );
    println!("blog curl from {}: recorded OK", run.pod_ip);
}

#[tokio::test]
async fn the_blog_posts_curl_reporting_a_failure_is_recorded_with_its_error() {
    let scene = Scene::start("reporters-blog-failing", &[]).await;
    let mut check = blog_example();
    let error = "bayes gear run task exited with code 1";
    check["metadata"]["name"] = json!("openbayes-gear-check-failing");
    let args = &mut check["spec"]["podSpec"]["containers"][0]["args"][0];
    let failing = args.as_str().unwrap().replace(
        "'{ \"OK\": true }'",
        &format!("'{{ \"OK\": false, \"Errors\": [\"{error}\"] }}'"),
    );
    *args = json!(failing);
    scene.apply(&check).await;

    let run = scene
        .recorded_by_address("openbayes-gear-check-failing")
        .await;
    run.assert_result(false, &[error]);
}
