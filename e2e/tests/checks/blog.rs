//! The blog post's shell check, `examples/blog/run.sh` with `examples/blog/check.yaml`,
//! scheduled as is (its `command: ["/bin/bash", "run.sh"]` runs in `examples/blog/`) with a
//! stand-in for the openbayes CLI on its `PATH`: a `bayes` script that records each call and
//! fails the step it is told to. It reports through `kuberhealthy report --ok`, or
//! `kuberhealthy report --error "..."` from its ERR trap; both show on the status page.

use std::os::unix::fs::PermissionsExt;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::PostParams;
use kuberhealthy_e2e::session::workspace_root;
use serde_json::{Value, json};

use crate::support::{CheckTest, summary};

/// The stand-in for the openbayes CLI.
const BAYES: &str = r#"#!/bin/sh
# Records each call; fails the step that starts with $BAYES_FAIL_ON, as the real CLI would
# when the platform is down.
printf '%s\n' "bayes $*" >> "$BAYES_CALLS"
if [ -n "$BAYES_FAIL_ON" ]; then
  case "bayes $*" in
    "$BAYES_FAIL_ON"*) echo "bayes: resource $RESOURCE is not available" >&2; exit 3 ;;
  esac
fi
"#;

const TOKEN: &str = "e2e-openbayes-token";

/// `examples/blog/check.yaml`, checked against the post's check.
fn blog_check() -> Value {
    let path = workspace_root().join("examples/blog/check.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let check: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(check["kind"], json!("KuberhealthyCheck"));
    assert_eq!(check["spec"]["runInterval"], json!("6h"));
    assert_eq!(check["spec"]["timeout"], json!("5m"));
    let container = &check["spec"]["podSpec"]["containers"][0];
    assert_eq!(container["command"], json!(["/bin/bash", "run.sh"]));
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        ["OPENBAYES_TOKEN", "ENTRYPOINT", "RUNTIME", "RESOURCE"]
    );
    check
}

#[tokio::test]
async fn blog_post_check_reports_ok_and_the_failing_step() {
    let t = CheckTest::start("blog").await;
    let client = t.client();

    // The image's contents, locally: `bayes` and `kuberhealthy` on the PATH.
    let bin = t.ctx.log_dir().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let bayes = bin.join("bayes");
    std::fs::write(&bayes, BAYES).unwrap();
    std::fs::set_permissions(&bayes, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(t.kuberhealthy(), bin.join("kuberhealthy")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), t.ns());
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "openbayes" },
        "stringData": { "token": TOKEN },
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let example = blog_check();
    let script_dir = workspace_root().join("examples/blog");
    let calls = |name: &str| t.ctx.log_dir().join(format!("{name}.calls"));
    for (name, fail_on) in [
        ("openbayes-gear-check", ""),
        ("openbayes-gear-check-down", "bayes gear run"),
    ] {
        let mut check = t.localize(
            example.clone(),
            name,
            &[
                ("PATH", &path),
                ("BAYES_CALLS", &calls(name).display().to_string()),
                ("BAYES_FAIL_ON", fail_on),
            ],
        );
        check["spec"]["podSpec"]["containers"][0]["workingDir"] =
            json!(script_dir.display().to_string());
        t.apply(&check).await;
    }

    let ok = t.result("openbayes-gear-check").await;
    ok.assert_passed();
    let down = t.result("openbayes-gear-check-down").await;
    down.assert_failed_with(&["openbayes gear check failed with exit code 3 at: \
         bayes gear run task --env \"$RUNTIME\" --resource \"$RESOURCE\" -f -- echo 123"
        .to_string()]);

    // Every step ran, with the check's environment (the token from the Secret).
    let steps = [
        "bayes upgrade".to_string(),
        "bayes switch test -e https://openbayes.com".to_string(),
        format!("bayes login {TOKEN}"),
        "bayes gear init healthcheck -m 自动测试项目".to_string(),
        "bayes gear run task --env pytorch-1.7.0 --resource titan_rtx -f -- echo 123".to_string(),
    ];
    for name in ["openbayes-gear-check", "openbayes-gear-check-down"] {
        let recorded = std::fs::read_to_string(calls(name)).unwrap_or_default();
        assert_eq!(recorded.lines().collect::<Vec<_>>(), steps, "{name}");
    }
    assert!(
        down.log
            .contains("bayes: resource titan_rtx is not available"),
        "{}",
        down.log
    );

    // The failing script exits with the step's code after reporting; the OK one exits 0.
    let pods: Api<Pod> = Api::namespaced(client, t.ns());
    for (outcome, phase, code) in [(&ok, "Succeeded", 0), (&down, "Failed", 3)] {
        outcome.assert_exit_code(code);
        let pod = pods.get(&outcome.pod).await.unwrap();
        let seen = pod.status.and_then(|s| s.phase);
        assert_eq!(seen.as_deref(), Some(phase), "{}", outcome.key);
    }

    t.assert_page(&[&ok, &down]).await;
    println!("{:#}", json!(summary(&[&ok, &down])));
}
