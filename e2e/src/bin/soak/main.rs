//! `make soak DURATION=30m` (not in CI): three replicas in network namespaces of their own
//! and a few dozen checks at short intervals, while about every minute the leader is killed
//! (SIGKILL, then restarted), terminated (SIGTERM, then restarted), paused (SIGSTOP past
//! the lease, then SIGCONT) or cut off from the API server (then healed), at random.
//!
//! At the end it prints a table from the pod runner's own record, the checkers' own logs and
//! the audit log (not from the controller): starts per check, duplicate starts in one slot,
//! runs that never got a verdict, reports refused, and slots missed outside leaderless
//! windows; then one leader at a time from the audit log. It exits non-zero on any
//! duplicate, any lost result (a run without a verdict) or any leader-only write outside
//! its writer's tenure. The table and the figures go to `target/soak/`.

mod tally;
mod world;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kuberhealthy_e2e::process::process_state;
use kuberhealthy_e2e::{leadership, slots, wait_until};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use tally::Window;
use world::{LEASE, LEASE_NAME, REPLICAS, TIMEOUT, World, replica_name};

#[derive(Parser, Debug)]
#[command(about = "A long failover soak on a local control plane")]
struct Args {
    /// How long faults go on (`30m`, `90s`, `1h`).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    duration: Duration,
    /// How many checks (intervals 5 s, 10 s and 15 s in turn).
    #[arg(long, default_value_t = 24)]
    checks: usize,
    /// The mean time between faults; each wait is drawn from half to one and a half of it.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    fault_every: Duration,
    /// Seed of the fault sequence (printed, so a run can be repeated).
    #[arg(long)]
    seed: Option<u64>,
    /// Where the table and the figures go.
    #[arg(long, default_value = "target/soak")]
    out: PathBuf,
}

/// `30m`, `90s`, `1h`, `500ms`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: write e.g. 30m, 90s or 1h"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{text:?}: unit {unit:?} is not one of ms, s, m, h")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Kill,
    Terminate,
    Pause,
    Partition,
}

const FAULTS: [Fault; 4] = [
    Fault::Kill,
    Fault::Terminate,
    Fault::Pause,
    Fault::Partition,
];
/// How long a pause or a partition lasts: past the lease, as in the HA tests.
const HOLD: Duration = Duration::from_secs(8);
/// How late a run may start after its due time while a leader is in place (a loaded
/// 2-core machine, debug builds).
const TOLERANCE: SignedDuration = SignedDuration::from_secs(3);
/// Time after a new leader's acquisition still counted as leaderless (its first planning).
const SETTLE_GRACE: SignedDuration = SignedDuration::from_secs(2);

/// One fault on the leader and the leaderless window it opened.
#[derive(Debug)]
struct FaultRecord {
    fault: Fault,
    replica: String,
    at: Timestamp,
    /// When a replica acquired the Lease after the fault (the audit log's time).
    new_leader: Option<(String, Timestamp)>,
}

fn check_list(count: usize) -> Vec<(String, Duration, Duration)> {
    (0..count)
        .map(|i| {
            let interval = Duration::from_secs([5, 10, 15][i % 3]);
            let work = Duration::from_millis(500 * (i % 4) as u64);
            (format!("soak-{i:02}"), interval, work)
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    println!(
        "soak: {} checks, faults on the leader about every {:?} for {:?}, seed {seed}",
        args.checks, args.fault_every, args.duration
    );
    let checks = check_list(args.checks);

    let mut world = World::start().await?;
    world.apply_checks(&checks).await?;
    for i in 0..REPLICAS {
        world.spawn(i).await?;
    }
    let began = Timestamp::now();
    let deadline = Instant::now() + args.duration;
    let mut faults: Vec<FaultRecord> = Vec::new();
    while Instant::now() < deadline {
        let wait = args.fault_every.mul_f64(rng.random_range(0.5..1.5));
        tokio::time::sleep(wait.min(deadline.saturating_duration_since(Instant::now()))).await;
        if Instant::now() >= deadline {
            break;
        }
        let Some(leader) = wait_until("a leader", TIMEOUT, || async {
            Ok(world.holder().await?.and_then(|h| world.index_of(&h)))
        })
        .await
        .ok() else {
            bail!("no leader for {TIMEOUT:?}:\n{}", world.describe_replicas());
        };
        let fault = FAULTS[rng.random_range(0..FAULTS.len())];
        let record = inject(&mut world, leader, fault)
            .await
            .with_context(|| format!("{fault:?} on {}", replica_name(leader)))?;
        println!(
            "{} {:?} on {}: {}",
            record.at,
            record.fault,
            record.replica,
            match &record.new_leader {
                Some((who, at)) => format!(
                    "{who} acquired the Lease {:.1} s later",
                    at.duration_since(record.at).as_secs_f64()
                ),
                None => "no acquisition seen".into(),
            }
        );
        faults.push(record);
    }

    // Let the runs in flight end, then judge.
    let end_mark = Timestamp::now();
    let check_keys: BTreeMap<String, Duration> = checks
        .iter()
        .map(|(name, interval, _)| (format!("{}/{name}", world.namespace()), *interval))
        .collect();
    let runs = wait_until("the runs in flight to end", TIMEOUT, || async {
        let mut runs = slots::runs_by_check(&world.pod_record()?);
        runs.retain(|key, _| check_keys.contains_key(key));
        for list in runs.values_mut() {
            list.retain(|r| r.started < end_mark);
        }
        Ok(runs
            .values()
            .flatten()
            .all(|r| r.exited.is_some())
            .then_some(runs))
    })
    .await
    .unwrap_or_else(|_| {
        // Judge what there is: runs still going count as without a verdict.
        let mut runs = slots::runs_by_check(&world.pod_record().unwrap_or_default());
        runs.retain(|key, _| check_keys.contains_key(key));
        for list in runs.values_mut() {
            list.retain(|r| r.started < end_mark);
        }
        runs
    });
    let events = world.audit()?;
    // When the API server created each pod: the slot times, free of the pod runner's latency.
    let created = slots::pods_created(&events);
    let mut runs = runs;
    let dated = slots::date_by_pod_creation(&mut runs, &created);
    let answers: tally::Answers = runs
        .values()
        .flatten()
        .map(|r| {
            (
                r.run.clone(),
                tally::answers_in_log(&world.checker_log(&r.pod)),
            )
        })
        .collect();
    let windows: Vec<Window> = faults
        .iter()
        .map(|f| Window {
            from: f.at,
            to: f
                .new_leader
                .as_ref()
                .map_or(end_mark, |(_, at)| *at + SETTLE_GRACE),
        })
        .collect();
    let lines = tally::tally(&runs, &check_keys, &answers, &windows, TOLERANCE);
    let total = tally::totals(&lines);
    for run in runs.values().flatten() {
        let codes = answers.get(&run.run).cloned().unwrap_or_default();
        if !codes.contains(&200) {
            println!(
                "no verdict: run {} of {} (pod {}, started {}, exit {:?}); its checker's log:\n{}",
                run.run,
                run.check,
                run.pod,
                run.started,
                run.exited,
                world.checker_log(&run.pod)
            );
        }
    }
    let tenures = leadership::tenures(&events, world.namespace(), LEASE_NAME);

    let table = tally::render(&lines);
    let mut by_fault: BTreeMap<String, usize> = BTreeMap::new();
    for f in &faults {
        *by_fault.entry(format!("{:?}", f.fault)).or_default() += 1;
    }
    let leaderless: Vec<f64> = windows
        .iter()
        .map(|w| w.to.duration_since(w.from).as_secs_f64())
        .collect();
    let leaderless_total: f64 = leaderless.iter().sum();
    let leaderless_max = leaderless.iter().cloned().fold(0.0, f64::max);
    let summary = format!(
        "soak: {:.0} min from {began}, seed {seed}, {} checks, {dated} of {} runs timed by their pod's \
         creation in the audit log, {} faults ({}), leaderless {:.0} s in all \
         (longest {:.1} s, each counted until {}s after the next acquisition); audit log: {} changes of \
         the Lease holder, {} leader-only writes outside the writer's tenure",
        end_mark.duration_since(began).as_secs_f64() / 60.0,
        checks.len(),
        total.starts,
        faults.len(),
        by_fault
            .iter()
            .map(|(k, v)| format!("{v} {}", k.to_lowercase()))
            .collect::<Vec<_>>()
            .join(", "),
        leaderless_total,
        leaderless_max,
        SETTLE_GRACE.as_secs(),
        tenures.acquisitions.len(),
        tenures.violations.len(),
    );
    println!("\n{table}\n{summary}");
    for v in &tenures.violations {
        println!("outside tenure: {v}");
    }

    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("soak.md"), format!("{table}\n{summary}\n"))?;
    let figures = json!({
        "seed": seed,
        "began": began.to_string(),
        "ended": end_mark.to_string(),
        "checks": checks.len(),
        "faults": faults.iter().map(|f| json!({
            "fault": format!("{:?}", f.fault),
            "replica": f.replica,
            "at": f.at.to_string(),
            "new_leader": f.new_leader.as_ref().map(|(w, at)| json!({"replica": w, "at": at.to_string()})),
        })).collect::<Vec<_>>(),
        "totals": {
            "starts": total.starts,
            "duplicates": total.duplicates,
            "no_verdict": total.no_verdict,
            "refused": total.refused,
            "missed": total.missed,
        },
        "lease_acquisitions": tenures.acquisitions.len(),
        "outside_tenure": tenures.violations,
        "leaderless_seconds": leaderless,
    });
    std::fs::write(
        args.out.join("soak.json"),
        serde_json::to_string_pretty(&figures)?,
    )?;
    println!("written to {}", args.out.display());

    if total.duplicates > 0 || total.no_verdict > 0 || !tenures.violations.is_empty() {
        bail!(
            "{} duplicate starts, {} runs without a verdict, {} leader-only writes outside tenure",
            total.duplicates,
            total.no_verdict,
            tenures.violations.len()
        );
    }
    Ok(())
}

/// Does `fault` to replica `leader`, restores it, and waits for the next acquisition of
/// the Lease after the fault (by any replica).
async fn inject(world: &mut World, leader: usize, fault: Fault) -> Result<FaultRecord> {
    let at = Timestamp::now();
    match fault {
        Fault::Kill | Fault::Terminate => {
            let signal = if fault == Fault::Kill {
                libc::SIGKILL
            } else {
                libc::SIGTERM
            };
            let replica = world.replica_mut(leader);
            if signal == libc::SIGKILL {
                replica.sigkill()?;
            } else {
                replica.sigterm()?;
            }
            replica.wait_exit(TIMEOUT).await?;
            world.spawn(leader).await?;
        }
        Fault::Pause => {
            let pid = world.replica(leader).pid();
            world.replica(leader).sigstop()?;
            wait_until("the leader to be stopped", TIMEOUT, || async {
                Ok((process_state(pid) == Some('T')).then_some(()))
            })
            .await?;
            tokio::time::sleep(HOLD).await;
            world.replica(leader).sigcont()?;
        }
        Fault::Partition => {
            world.network(leader).cut_api_server()?;
            tokio::time::sleep(HOLD).await;
            world.network(leader).heal_api_server()?;
        }
    }
    let new_leader = wait_until(
        "an acquisition of the Lease after the fault",
        TIMEOUT,
        || async {
            Ok(world
                .lease
                .snapshot()
                .into_iter()
                .filter(|s| s.acquire_time.is_some_and(|t| t > at))
                .find_map(|s| Some((s.holder?, s.acquire_time?))))
        },
    )
    .await
    .ok();
    // Past the lease: the old term's leftovers have had their time either way.
    tokio::time::sleep(LEASE).await;
    Ok(FaultRecord {
        fault,
        replica: replica_name(leader),
        at,
        new_leader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_units_of_the_makefile() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("3d").unwrap_err().contains("not one of"));
    }
}
