//! `make run`: a local control plane, the pod runner, the CRDs, example checks and three
//! `kuberhealthy run` replicas, until Ctrl-C.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use kube::Client;
use kuberhealthy_e2e::cluster::{spawn_pod_runner, wait_for_node};
use kuberhealthy_e2e::process::ProcessGroup;
use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::{
    ControlPlane, ControlPlaneOptions, Replica, ReplicaOptions, accounts, binaries, http, manifests,
};
use tokio::signal::unix::{SignalKind, signal};

const NAMESPACE: &str = "kuberhealthy";
/// The RBAC a cluster-wide install uses (ServiceAccount `kuberhealthy/kuberhealthy`).
const RBAC_FILE: &str = "rbac/kuberhealthy.yaml";

#[derive(Parser)]
#[command(
    about = "Runs kuberhealthy against a local control plane, with example checks, until Ctrl-C"
)]
struct Args {
    /// Where the kubeconfig, logs and container output go (default: <workspace>/.run).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// How many `kuberhealthy run` replicas to start.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    // kube's request logger reports every refused connection while the API server starts;
    // failures that matter come back as errors and are printed by this program.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,kube_client::client::builder=off".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let state = args
        .state_dir
        .unwrap_or_else(|| workspace_root().join(".run"));
    let _lock = lock_state_dir(&state)?;
    for dir in ["logs", "pods"] {
        let _ = std::fs::remove_dir_all(state.join(dir));
    }
    let logs = state.join("logs");

    println!("Starting etcd and kube-apiserver ...");
    let control_plane = ControlPlane::start_with(ControlPlaneOptions {
        log_dir: Some(logs.clone()),
    })
    .await?;
    let kubeconfig = state.join("kubeconfig");
    std::fs::copy(control_plane.kubeconfig_path(), &kubeconfig)
        .context("copying the admin kubeconfig")?;
    println!(
        "API server {} ready in {:.1?}",
        control_plane.server_url(),
        control_plane.started_in()
    );

    let client = control_plane.client().await?;
    let mut pod_runner = spawn_pod_runner(
        &binaries::sibling("pod-runner")?,
        &kubeconfig,
        &state.join("pods"),
        &logs.join("pod-runner.log"),
        control_plane.network().id(),
        &control_plane.kubelet_tls(),
    )?;
    wait_for_node(&client, &mut pod_runner, Duration::from_secs(60)).await?;
    println!(
        "Pod runner ready: it runs pod containers as local processes, each pod in a network \
         namespace of its own on {} (bridge {}, host side {}); `kubectl logs` of a pod reads \
         its container's output from it",
        control_plane.network().id().subnet(),
        control_plane.network().id().bridge(),
        control_plane.host_ip()
    );

    accounts::create_namespace(&client, NAMESPACE).await?;
    match install_crds_and_examples(&client).await {
        Ok(checks) => println!(
            "Installed the CRDs and the example checks: {}",
            checks.join(", ")
        ),
        Err(err) => {
            println!("NOT THERE YET: the CRDs or example checks could not be installed: {err:#}")
        }
    }

    let replica_kubeconfig = match service_account_kubeconfig(&control_plane, &client, &state).await
    {
        Ok(path) => {
            println!(
                "Replicas run as ServiceAccount {NAMESPACE}/kuberhealthy with the RBAC of {RBAC_FILE}"
            );
            path
        }
        Err(err) => {
            println!(
                "NOT THERE YET: replicas run as admin, because {RBAC_FILE} could not be used: {err:#}"
            );
            kubeconfig.clone()
        }
    };

    let mut replicas = start_replicas(
        args.replicas,
        &replica_kubeconfig,
        control_plane.host_ip(),
        &logs,
    )?;
    println!();
    for replica in &mut replicas {
        report_replica(replica).await?;
    }
    print_summary(&state, &kubeconfig);

    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    println!("\nStopping the replicas, the pod runner and the control plane ...");
    drop(replicas);
    drop(pod_runner);
    drop(control_plane);
    println!("Stopped.");
    Ok(())
}

/// One `make run` at a time per state directory.
fn lock_state_dir(state: &Path) -> Result<File> {
    std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    let file = File::create(state.join("lock"))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!(
            "another `make run` is using {}; stop it first (Ctrl-C in its terminal)",
            state.display()
        );
    }
    Ok(file)
}

/// Applies the project's RBAC and writes a kubeconfig for its ServiceAccount, so the
/// replicas run with the permissions a real install gives them.
async fn service_account_kubeconfig(
    control_plane: &ControlPlane,
    client: &Client,
    state: &Path,
) -> Result<PathBuf> {
    manifests::apply_file(client, &workspace_root().join(RBAC_FILE), Some(NAMESPACE)).await?;
    let path = state.join("kuberhealthy.kubeconfig");
    control_plane
        .endpoint()
        .service_account_kubeconfig(NAMESPACE, "kuberhealthy", &path)
        .await?;
    Ok(path)
}

/// The CRDs from `kuberhealthy crd`, else from the chart; then `e2e/examples/*.yaml`.
async fn install_crds_and_examples(client: &Client) -> Result<Vec<String>> {
    let (crds, source) = crd_yaml()?;
    manifests::install_crds(client, &crds, Duration::from_secs(60))
        .await
        .with_context(|| format!("installing the CRDs from {source}"))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("e2e/examples"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut names = Vec::new();
    for file in files {
        for object in manifests::apply_file(client, &file, Some(NAMESPACE)).await? {
            names.push(format!(
                "{}/{}",
                object.metadata.namespace.unwrap_or_default(),
                object.metadata.name.unwrap_or_default()
            ));
        }
    }
    Ok(names)
}

fn crd_yaml() -> Result<(String, String)> {
    if let Ok(binary) = binaries::kuberhealthy() {
        let output = Command::new(&binary)
            .arg("crd")
            .output()
            .with_context(|| format!("running {} crd", binary.display()))?;
        if output.status.success() && !output.stdout.is_empty() {
            return Ok((
                String::from_utf8(output.stdout)?,
                format!("`{} crd`", binary.display()),
            ));
        }
    }
    let chart = workspace_root().join("charts/kuberhealthy/crds/crds.yaml");
    let healthcheck = workspace_root().join("charts/kuberhealthy/files/healthcheck-crd.yaml");
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| {
            format!(
                "neither `kuberhealthy crd` nor {} provides the CRDs",
                path.display()
            )
        })
    };
    let yaml = format!("{}{}", read(&chart)?, read(&healthcheck)?);
    Ok((
        yaml,
        format!("{} and {}", chart.display(), healthcheck.display()),
    ))
}

/// Replicas listen on the pod network's host side (`host_ip`), where checker pods reach them.
fn start_replicas(
    count: usize,
    kubeconfig: &Path,
    host_ip: Ipv4Addr,
    logs: &Path,
) -> Result<Vec<Replica>> {
    let mut replicas: Vec<Replica> = Vec::new();
    for i in 0..count {
        let mut options = ReplicaOptions::new(
            &format!("kuberhealthy-{i}"),
            NAMESPACE,
            kubeconfig,
            host_ip,
            logs,
        );
        // Checker pods report to replica 0; any replica must accept the report.
        options.external_reporting_url = match replicas.first() {
            Some(first) => Some(first.url("/externalCheckStatus")),
            None => {
                let port = kuberhealthy_e2e::ports::free_port(host_ip)?;
                options.listen_port = Some(port);
                Some(format!("http://{host_ip}:{port}/externalCheckStatus"))
            }
        };
        replicas.push(Replica::spawn(options)?);
    }
    Ok(replicas)
}

/// Says plainly whether a replica is serving, exited, or silent.
async fn report_replica(replica: &mut Replica) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = replica.try_exit()? {
            println!(
                "{}: `kuberhealthy run` exited at once ({}): the controller is not there yet in this build, or it \
                 failed to start. Last lines of {}:\n{}\n",
                replica.name(),
                ProcessGroup::describe_exit(status),
                replica.log_path().display(),
                indent(&replica.log_tail(15))
            );
            return Ok(());
        }
        if let Ok(response) = http::get(replica.addr(), "/").await {
            println!(
                "{}: serving (GET / answered {})",
                replica.name(),
                response.status
            );
            println!(
                "    status page  {} (open it in a browser; curl gets v2's JSON)",
                replica.url("/")
            );
            println!("    v3's page    {}", replica.url("/v3/json"));
            println!("    metrics      {}", replica.url("/metrics"));
            println!("    log          {}", replica.log_path().display());
            return Ok(());
        }
        if Instant::now() > deadline {
            println!(
                "{}: running but not answering on {} after 20 s; the HTTP server is not there yet or not ready. \
                 Log: {}",
                replica.name(),
                replica.url("/"),
                replica.log_path().display()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_summary(state: &Path, kubeconfig: &Path) {
    println!("Kubeconfig   {}", kubeconfig.display());
    println!(
        "             kubectl --kubeconfig {} get khc,khs,hc,pods -n {NAMESPACE}",
        kubeconfig.display()
    );
    println!(
        "Logs         {}  (apiserver, etcd, pod-runner, one per replica)",
        state.join("logs").display()
    );
    println!(
        "Pod output   {}/<namespace>/<pod>/<container>.log",
        state.join("pods").display()
    );
    println!("\nPress Ctrl-C to stop everything.");
}
