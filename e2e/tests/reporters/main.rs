//! Checkers that report without the `kh-run-uuid` header, as v2 allowed: the blog post's
//! curl, a Python checker with urllib and a Node checker with the built-in fetch, each found
//! by its pod's address on the pod network; and the refusals (an address no running checker
//! has, two `hostNetwork` checkers sharing one, identification turned off), next to a report
//! with the header from another address, which is recorded.
//!
//! One cluster serves every test of this binary. Each test has its own namespace and its own
//! replica restricted to it (`TARGET_NAMESPACE`), so its cache holds only that test's checker
//! pods and no other test's pod can share an address with its reporters.

mod blog;
mod clients;
mod refusals;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::wait::await_condition;
use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::{Replica, TestCluster, TestContext, http, manifests, wait_until};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// Deadline for any condition: generous, for a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// The cluster shared by the tests of this binary, with the CRDs, started on first use.
pub async fn cluster() -> &'static TestCluster {
    static READY: OnceCell<&'static TestCluster> = OnceCell::const_new();
    READY
        .get_or_init(|| async {
            let cluster = TestCluster::shared(Path::new(env!("CARGO_BIN_EXE_pod-runner")))
                .await
                .expect("starting the shared test cluster (etcd, kube-apiserver, pod runner)");
            let crds = std::fs::read_to_string(
                workspace_root().join("charts/kuberhealthy/crds/crds.yaml"),
            )
            .expect("the committed CRDs");
            let admin = cluster.control_plane().client().await.unwrap();
            manifests::install_crds(&admin, &crds, TIMEOUT)
                .await
                .expect("installing the CRDs");
            cluster
        })
        .await
}

/// One test's namespace and its replica, which reports go to.
pub struct Scene {
    pub ctx: TestContext,
    pub replica: Replica,
}

impl Scene {
    /// A namespace and a ready replica leading it, with `env` added to the replica's.
    pub async fn start(name: &str, env: &[(&str, &str)]) -> Scene {
        let ctx = cluster().await.context(name).await.unwrap();
        let addr = ctx.free_address().unwrap();
        let mut options = ctx.replica_options("kuberhealthy-0");
        options.listen_port = Some(addr.port());
        options.target_namespace = Some(ctx.namespace().to_string());
        options.external_reporting_url = Some(format!("http://{addr}/externalCheckStatus"));
        options.env = [
            ("KH_LEADER_ELECTION_LEASE_DURATION", "3s"),
            ("KH_LEADER_ELECTION_RENEW_DEADLINE", "2s"),
            ("KH_LEADER_ELECTION_RETRY_PERIOD", "500ms"),
        ]
        .iter()
        .chain(env)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut replica = Replica::spawn(options).unwrap();
        replica.wait_ready(TIMEOUT).await.unwrap();
        Scene { ctx, replica }
    }

    /// Applies a check (as JSON, which is YAML) in this test's namespace.
    pub async fn apply(&self, check: &Value) {
        self.ctx
            .apply_yaml(&serde_json::to_string(check).unwrap())
            .await
            .unwrap();
    }

    /// The spec of check `name`'s khstate once `ready` holds for it.
    pub async fn state_when(
        &self,
        name: &str,
        what: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        self.ctx
            .khstate_spec_when(name, what, TIMEOUT, ready)
            .await
            .unwrap()
    }

    /// The spec of check `name`'s khstate once its first run has finished.
    pub async fn finished_run(&self, name: &str) -> Value {
        self.state_when(name, "a finished run", |spec| {
            spec.get("runFinishedAt").is_some() && spec.get("LastRun").is_some()
        })
        .await
    }

    /// The spec of check `name`'s khstate while its run is in flight.
    pub async fn run_in_flight(&self, name: &str) -> Value {
        self.state_when(name, "a run in flight", |spec| {
            spec["uuid"].as_str().is_some_and(|u| !u.is_empty())
                && spec.get("runStartedAt").is_some()
                && spec.get("runFinishedAt").is_none()
        })
        .await
    }

    /// A report to the replica's `/externalCheckStatus` from this process (whose source
    /// address is the pod network's host side).
    pub async fn post(&self, headers: &[(&str, &str)], body: &str) -> http::Response {
        http::post(
            self.replica.addr(),
            "/externalCheckStatus",
            headers,
            body.as_bytes(),
        )
        .await
        .unwrap()
    }

    /// How the replica identified the report it recorded for run `uuid` (its log line's
    /// `identified_by`), once it has logged it.
    pub async fn identified_by(&self, uuid: &str) -> String {
        let log = self.replica.log_path().to_path_buf();
        wait_until(
            &format!("the replica to log the report of run {uuid}"),
            TIMEOUT,
            || async {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                Ok(text
                    .lines()
                    .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                    .find(|line| line["message"] == "recorded a report" && line["run"] == uuid)
                    .map(|line| {
                        line["identified_by"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string()
                    }))
            },
        )
        .await
        .unwrap()
    }

    /// The first run of check `name`, once finished, which must have been recorded from its
    /// checker pod's address.
    pub async fn recorded_by_address(&self, name: &str) -> Recorded {
        let spec = self.finished_run(name).await;
        let pod = spec["runPod"].as_str().unwrap().to_string();
        let exited = self.exited_pod(&pod).await;
        let output = self.ctx.container_log(&pod, "main");
        let uuid = spec["uuid"].as_str().unwrap();
        assert_eq!(
            self.identified_by(uuid).await,
            "source address",
            "{spec:#}\nchecker output:\n{output}"
        );
        let pod_ip = exited
            .status
            .and_then(|s| s.pod_ip)
            .unwrap_or_else(|| panic!("pod {pod} has no podIP"));
        assert_ne!(
            pod_ip,
            self.ctx.host_ip().to_string(),
            "the checker ran in a network of its own"
        );
        Recorded {
            spec,
            output,
            pod_ip,
        }
    }

    /// Checker pod `pod` once its containers have exited, so that its output is complete.
    pub async fn exited_pod(&self, pod: &str) -> Pod {
        let pods: Api<Pod> =
            Api::namespaced(self.ctx.client().await.unwrap(), self.ctx.namespace());
        let exited = |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref()?.phase.as_deref())
                .is_some_and(|phase| phase == "Succeeded" || phase == "Failed")
        };
        tokio::time::timeout(TIMEOUT, await_condition(pods, pod, exited))
            .await
            .unwrap_or_else(|_| panic!("checker pod {pod} did not exit in time"))
            .unwrap()
            .unwrap_or_else(|| panic!("checker pod {pod} was deleted"))
    }
}

/// A run recorded from its checker pod's address.
pub struct Recorded {
    /// The khstate's spec.
    pub spec: Value,
    /// What the checker printed.
    pub output: String,
    pub pod_ip: String,
}

impl Recorded {
    /// The run's recorded result is `ok` with `errors`.
    pub fn assert_result(&self, ok: bool, errors: &[&str]) {
        assert_eq!(
            (&self.spec["OK"], &self.spec["Errors"]),
            (&json!(ok), &json!(errors)),
            "{:#}\nchecker output:\n{}",
            self.spec,
            self.output
        );
    }
}

/// A check whose one container runs `command` (the pod runner runs it as a local process).
pub fn check(name: &str, command: &[&str]) -> Value {
    json!({
        "apiVersion": "comcast.github.io/v1",
        "kind": "KuberhealthyCheck",
        "metadata": {"name": name},
        "spec": {
            "runInterval": "1h",
            "timeout": "2m",
            "podSpec": {"containers": [{
                "name": "main",
                "image": "example.test/checker:v1",
                "command": command,
            }]},
        },
    })
}

/// The `error` reason of a refusal.
pub fn reason(response: &http::Response) -> String {
    serde_json::from_str::<Value>(&response.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no JSON reason in {:?}", response.body))
}
