//! The footprint the chart's resources are sized from: two replicas as the chart runs them
//! (cluster-wide, default Lease timings), 100 checks that each ran once, then idle. Prints
//! the leader's and the follower's RSS (`VmRSS`, peak `VmHWM`) and CPU, writes them to
//! `target/e2e-figures/chart-footprint.json`, and fails if they do not fit the chart's
//! requests and limits. `KH_BIN=<release binary>` measures what the image runs;
//! `KH_FOOTPRINT_CHECKS=<n>` measures with another number of checks.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kube::Api;
use kube::api::DynamicObject;
use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::{Replica, TestCluster, binaries, metrics, wait_until};
use serde_json::json;

use crate::support::{
    self, Installed, args, chart_dir, helm, replica_logs, sibling_namespace, spawn_replicas, str,
};
use crate::{OWN_CLUSTER, TIMEOUT, pod_runner_bin};

/// How many checks, unless `KH_FOOTPRINT_CHECKS` says otherwise.
fn checks() -> usize {
    std::env::var("KH_FOOTPRINT_CHECKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
}
const IDLE_WINDOW: Duration = Duration::from_secs(30);

/// Resident memory now and at its peak, in bytes (`/proc/<pid>/status`).
fn memory(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kb: u64 = line
            .split_whitespace()
            .nth(1)
            .context("malformed line")?
            .parse()?;
        Ok(kb * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU seconds used so far, user + system (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("malformed stat")?
        .1
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of proc(5); the slice starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / per_second)
}

/// A Kubernetes memory quantity in bytes (`64Mi`, `1Gi`, `500M`, `1000`).
fn bytes(quantity: &str) -> Result<u64> {
    let units = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return Ok(number.parse::<u64>()? * factor);
        }
    }
    Ok(quantity.parse()?)
}

/// A CPU quantity in millicores (`50m`, `0.5`, `1`).
fn millicores(quantity: &str) -> Result<f64> {
    match quantity.strip_suffix('m') {
        Some(m) => Ok(m.parse()?),
        None => Ok(quantity.parse::<f64>()? * 1000.0),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// Who leads, by `kuberhealthy_controller_leader`.
async fn leader_index(replicas: &[Replica]) -> Result<usize> {
    for (i, replica) in replicas.iter().enumerate() {
        let body = kuberhealthy_e2e::http::get(replica.addr(), "/metrics")
            .await?
            .body;
        if metrics::sum(
            &metrics::parse(&body)?,
            "kuberhealthy_controller_leader",
            &[],
        ) == 1.0
        {
            return Ok(i);
        }
    }
    bail!("no replica leads")
}

#[tokio::test]
async fn idle_leader_and_follower_with_100_checks_fit_the_charts_resources() {
    let checks = checks();
    let _turn = OWN_CLUSTER.lock().await;
    let cluster = TestCluster::start(pod_runner_bin()).await.unwrap();
    let ctx = cluster.context("chart-footprint").await.unwrap();
    let ns = ctx.namespace().to_string();
    let admin = ctx.client().await.unwrap();
    let first = ctx.free_address().unwrap();
    let mut install = args(&["install", "khfoot"]);
    install.push(chart_dir().display().to_string());
    install.extend(args(&[
        "--namespace",
        &ns,
        "--set",
        &format!("reportingURL=http://{first}/externalCheckStatus"),
    ]));
    // The chart's built-in checks run `/kuberhealthy check <name>` from the controller's
    // image; the pod runner here runs container commands as local processes, where
    // `/kuberhealthy` does not exist, so their pods would only fail. Idle here means the
    // 100 checks below and nothing else: they are off (render.rs and drift.rs cover them).
    install.extend(crate::render::every_check_off().unwrap());
    helm(&install, Some(&ctx.endpoint().admin_kubeconfig))
        .await
        .unwrap();
    let rendered = support::template("khfoot", &ns, &[]).await.unwrap();
    let resources = rendered.container().unwrap()["resources"].clone();
    let request_memory = bytes(str(&resources["requests"]["memory"])).unwrap();
    let limit_memory = bytes(str(&resources["limits"]["memory"])).unwrap();
    let request_cpu = millicores(str(&resources["requests"]["cpu"])).unwrap();
    let replica_count = rendered.one("Deployment").unwrap()["spec"]["replicas"]
        .as_u64()
        .unwrap() as usize;

    let checks_ns = sibling_namespace(&ctx, "checks").await.unwrap();
    let yaml: String = (0..checks)
        .map(|i| support::passing_check(&format!("check-{i:03}"), &checks_ns, "1h"))
        .collect::<Vec<_>>()
        .join("---\n");
    ctx.apply_yaml(&yaml).await.unwrap();

    let installed = Installed::read(&admin, &ns, "khfoot-kuberhealthy", ctx.log_dir())
        .await
        .unwrap();
    let kubeconfig = ctx.service_account_kubeconfig_path("khfoot-kuberhealthy");
    ctx.endpoint()
        .service_account_kubeconfig(&ns, "khfoot-kuberhealthy", &kubeconfig)
        .await
        .unwrap();
    let started = Instant::now();
    let replicas =
        spawn_replicas(&installed, &kubeconfig, ctx.log_dir(), first, replica_count).unwrap();

    let outcome = async {
        let states: Api<DynamicObject> =
            Api::namespaced_with(admin.clone(), &checks_ns, &support::khstates());
        wait_until(
            &format!("{checks} khstates to record an OK result"),
            // At most 10 starts a second, then the pod runner runs each checker.
            TIMEOUT * 4 + Duration::from_millis(200) * checks as u32,
            || async {
                let list = states.list(&Default::default()).await?;
                let ok = list
                    .items
                    .iter()
                    .filter(|s| s.data["spec"]["OK"] == true)
                    .count();
                Ok((ok == checks).then_some(()))
            },
        )
        .await?;
        let busy = started.elapsed();
        let leader = leader_index(&replicas).await?;
        let busy_cpu: Vec<f64> = replicas
            .iter()
            .map(|r| cpu_seconds(r.pid()))
            .collect::<Result<_>>()?;

        // Idle: every check ran; the next runs are an hour away.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let cpu_before: Vec<f64> = replicas
            .iter()
            .map(|r| cpu_seconds(r.pid()))
            .collect::<Result<_>>()?;
        let window = Instant::now();
        let mut rss_max = vec![0u64; replicas.len()];
        while window.elapsed() < IDLE_WINDOW {
            for (i, replica) in replicas.iter().enumerate() {
                rss_max[i] = rss_max[i].max(memory(replica.pid())?.0);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let seconds = window.elapsed().as_secs_f64();
        let mut figures = Vec::new();
        for (i, replica) in replicas.iter().enumerate() {
            let (rss, peak) = memory(replica.pid())?;
            let idle_cpu = (cpu_seconds(replica.pid())? - cpu_before[i]) / seconds * 1000.0;
            let busy_millicores = busy_cpu[i] / busy.as_secs_f64() * 1000.0;
            figures.push(json!({
                "replica": replica.name(),
                "role": if i == leader { "leader" } else { "follower" },
                "idle_rss_mib": (mib(rss_max[i].max(rss)) * 10.0).round() / 10.0,
                "peak_rss_mib": (mib(peak) * 10.0).round() / 10.0,
                "idle_cpu_millicores": (idle_cpu * 10.0).round() / 10.0,
                "start_and_100_runs_cpu_millicores": busy_millicores.round(),
            }));
        }
        let binary = binaries::kuberhealthy()?;
        let report = json!({
            "binary": binary.display().to_string(),
            "checks": checks,
            "idle_window_seconds": seconds.round(),
            "start_to_all_reported_seconds": busy.as_secs_f64().round(),
            "replicas": figures,
            "chart": {"requests": resources["requests"], "limits": resources["limits"]},
        });
        println!("footprint: {}", serde_json::to_string_pretty(&report)?);
        let dir = workspace_root().join("target/e2e-figures");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("chart-footprint.json"),
            serde_json::to_string_pretty(&report)?,
        )?;

        for figure in report["replicas"].as_array().unwrap() {
            let who = format!("{} ({})", figure["replica"], figure["role"]);
            let idle = figure["idle_rss_mib"].as_f64().unwrap();
            let peak = figure["peak_rss_mib"].as_f64().unwrap();
            let cpu = figure["idle_cpu_millicores"].as_f64().unwrap();
            ensure!(
                idle < mib(request_memory),
                "{who}: idle RSS {idle} MiB is over the chart's memory request {} MiB",
                mib(request_memory)
            );
            ensure!(
                peak < mib(limit_memory) / 2.0,
                "{who}: peak RSS {peak} MiB leaves less than 2x headroom under the limit {} MiB",
                mib(limit_memory)
            );
            ensure!(
                cpu < request_cpu,
                "{who}: idle CPU {cpu}m is over the chart's CPU request {request_cpu}m"
            );
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(err) = outcome {
        panic!("{err:#}\n{}", replica_logs(&replicas));
    }
}

#[test]
fn quantities_parse() {
    assert_eq!(bytes("64Mi").unwrap(), 64 << 20);
    assert_eq!(bytes("1Gi").unwrap(), 1 << 30);
    assert_eq!(bytes("500M").unwrap(), 500_000_000);
    assert_eq!(bytes("1024").unwrap(), 1024);
    assert_eq!(millicores("50m").unwrap(), 50.0);
    assert_eq!(millicores("0.5").unwrap(), 500.0);
    assert!(bytes("lots").is_err());
}
