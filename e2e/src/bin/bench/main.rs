//! `make bench`: scenarios on a local control plane (etcd + kube-apiserver, the pod runner
//! playing the kubelet, pods and replicas on a pod network), each on a control plane of its
//! own. Prints one
//! table per scenario and writes every raw figure to `target/bench/bench.json`.
//!
//! Scenarios (`--only` takes their keys, comma-separated):
//! - `footprint`: memory and idle CPU of a leader and a follower with 0, 1,000 and 10,000 checks;
//! - `serving`: `GET /json` and `GET /metrics` throughput and latency under wrk, follower and
//!   leader, against nginx serving the same bytes; 10,000 checks and the leader's first pass;
//! - `intake`: persisted reports per second against the API server's raw write rate;
//! - `apicost`: API requests per completed run, by verb, and the idle request rate;
//! - `failover`: SIGTERM and SIGKILL handovers with default and short Lease settings;
//! - `precision`: lateness of run starts against their due times, steady and after a failover.
//!
//! The peer (Kuberhealthy v3, else v2) is built by `e2e/tools/build-peer.sh` at run time; when
//! it cannot be built or run, the reason is printed in its place.

mod apicost;
mod apimetrics;
mod baseline;
mod failover;
mod footprint;
mod intake;
mod load;
mod peer;
mod precision;
mod procfs;
mod report;
mod serving;
mod stats;
mod world;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use kuberhealthy_e2e::session::workspace_root;
use serde_json::json;

use crate::report::Section;

const SCENARIOS: &[&str] = &[
    "footprint",
    "serving",
    "apicost",
    "failover",
    "intake",
    "precision",
];

#[derive(Parser, Debug)]
#[command(about = "Benchmarks kuberhealthy on a local control plane (see README, Performance)")]
struct Args {
    /// Fewer trials and smaller counts, for development.
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios (comma-separated): footprint, serving, apicost, failover,
    /// intake, precision.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Skip the peer (Kuberhealthy v3/v2) even where it could run.
    #[arg(long)]
    no_peer: bool,
    /// Where the raw figures go (default: <workspace>/target/bench/bench.json).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// Sizes and durations of every scenario, full or `--quick`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub footprint_counts: Vec<usize>,
    pub idle_windows: usize,
    pub idle_window: Duration,
    pub serving_checks: usize,
    /// The large stage of serving: many more checks, the follower only.
    pub serving_large_checks: usize,
    /// Checks created as `kubectl apply` does, for the footprint.
    pub footprint_applied: usize,
    pub serving_trials: usize,
    pub serving_max_requests: usize,
    pub serving_cap: Duration,
    pub apicost_checks: usize,
    pub apicost_window: Duration,
    pub apicost_idle_checks: usize,
    pub apicost_idle_window: Duration,
    pub failover_trials: usize,
    pub intake_checks: usize,
    pub intake_trials: usize,
    pub intake_concurrency: usize,
    pub precision_checks: usize,
    pub precision_steady: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                footprint_counts: vec![0, 200, 1000],
                footprint_applied: 200,
                idle_windows: 2,
                idle_window: Duration::from_secs(4),
                serving_checks: 200,
                serving_large_checks: 2000,
                serving_trials: 2,
                serving_max_requests: 400,
                serving_cap: Duration::from_secs(3),
                apicost_checks: 10,
                apicost_window: Duration::from_secs(25),
                apicost_idle_checks: 200,
                apicost_idle_window: Duration::from_secs(10),
                failover_trials: 3,
                intake_checks: 50,
                intake_trials: 2,
                intake_concurrency: 16,
                precision_checks: 60,
                precision_steady: Duration::from_secs(70),
            }
        } else {
            Plan {
                quick,
                footprint_counts: vec![0, 1000, 10_000],
                footprint_applied: 1000,
                idle_windows: 3,
                idle_window: Duration::from_secs(10),
                serving_checks: 1000,
                serving_large_checks: 10_000,
                serving_trials: 3,
                serving_max_requests: 1500,
                serving_cap: Duration::from_secs(4),
                apicost_checks: 20,
                apicost_window: Duration::from_secs(45),
                apicost_idle_checks: 1000,
                apicost_idle_window: Duration::from_secs(30),
                failover_trials: 10,
                intake_checks: 200,
                intake_trials: 3,
                intake_concurrency: 16,
                precision_checks: 300,
                precision_steady: Duration::from_secs(90),
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube=off,kube_client=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    for name in &args.only {
        if !SCENARIOS.contains(&name.as_str()) {
            bail!(
                "unknown scenario {name:?}; choose from {}",
                SCENARIOS.join(", ")
            );
        }
    }
    let selected: Vec<&str> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s))
        .collect();
    let plan = Plan::new(args.quick);
    let began = Instant::now();
    let machine = machine();
    println!(
        "kuberhealthy bench{}: {} on {} cores; load average at start {}",
        if plan.quick { " (--quick)" } else { "" },
        selected.join(", "),
        machine["cores"],
        machine["load_average_start"].as_str().unwrap_or("?")
    );
    println!(
        "binary: {}\n",
        kuberhealthy_e2e::binaries::kuberhealthy()?.display()
    );

    let peer = if args.no_peer {
        peer::Peer::skipped("skipped (--no-peer)")
    } else {
        peer::Peer::build()
    };
    println!("peer: {}\n", peer.describe());

    let mut sections: Vec<Section> = Vec::new();
    let mut failures = Vec::new();
    for scenario in &selected {
        let started = Instant::now();
        eprintln!("bench: {scenario} ...");
        let result = match *scenario {
            "footprint" => footprint::run(&plan, &peer).await,
            "serving" => serving::run(&plan, &peer).await,
            "apicost" => apicost::run(&plan, &peer).await,
            "failover" => failover::run(&plan, &peer).await,
            "intake" => intake::run(&plan).await,
            "precision" => precision::run(&plan).await,
            _ => unreachable!("checked above"),
        };
        match result {
            Ok(mut section) => {
                section
                    .setup
                    .push(format!("took {:.0} s", started.elapsed().as_secs_f64()));
                println!("{}", section.render(peer.column()));
                sections.push(section);
            }
            Err(err) => {
                let text = format!("{scenario} failed: {err:#}");
                println!("### {scenario}\n\nFAILED: {err:#}\n");
                failures.push(text);
            }
        }
    }

    let mut machine = machine;
    machine["load_average_end"] = json!(load_average());
    let out = args
        .out
        .unwrap_or_else(|| workspace_root().join("target/bench/bench.json"));
    let document = json!({
        "quick": plan.quick,
        "machine": machine,
        "duration_s": began.elapsed().as_secs_f64(),
        "peer": peer.to_json(),
        "scenarios": sections.iter().map(|s| (s.key.to_string(), s.to_json())).collect::<serde_json::Map<_, _>>(),
        "failures": failures,
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&document)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "raw figures: {}\nran {:.1} min; load average at end {}",
        out.display(),
        began.elapsed().as_secs_f64() / 60.0,
        load_average()
    );
    if !failures.is_empty() {
        bail!(
            "{} scenario(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine() -> serde_json::Value {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    json!({
        "cores": cores,
        "cpu": cpu,
        "load_average_start": load_average(),
    })
}
