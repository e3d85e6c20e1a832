//! The e2e pod runner: plays the kubelet for one Node by running each pod's containers as
//! local processes. See `kuberhealthy_e2e::pod_runner` and `e2e/README.md`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use kuberhealthy_e2e::kubeconfig;
use kuberhealthy_e2e::network::NetworkId;
use kuberhealthy_e2e::pod_runner::logs::KubeletTls;
use kuberhealthy_e2e::pod_runner::{self, DEFAULT_NODE_NAME, PodRunnerConfig};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(
    about = "Binds pending pods to a Node and runs their containers' commands as local processes"
)]
struct Args {
    /// Kubeconfig of a user allowed to bind pods, write pod status and register nodes.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Container output goes to <log-dir>/<namespace>/<pod>/<container>.log.
    #[arg(long)]
    log_dir: PathBuf,
    #[arg(long, default_value = DEFAULT_NODE_NAME)]
    node_name: String,
    /// The pod network made by the harness: `n` of bridge `khe2e<n>` and subnet
    /// `10.213.<n>.0/24` (see `kuberhealthy_e2e::network`).
    #[arg(long)]
    pod_network: u8,
    /// The serving certificate of the container-log endpoint (PEM); with --kubelet-key and
    /// --client-ca, the runner serves `pods/log` for the API server.
    #[arg(long, requires_all = ["kubelet_key", "client_ca"])]
    kubelet_cert: Option<PathBuf>,
    #[arg(long, requires_all = ["kubelet_cert", "client_ca"])]
    kubelet_key: Option<PathBuf>,
    /// The CA that signs the API server's kubelet client certificate.
    #[arg(long, requires_all = ["kubelet_cert", "kubelet_key"])]
    client_ca: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let client = kubeconfig::client(&args.kubeconfig).await?;
    let config = PodRunnerConfig {
        node_name: args.node_name,
        log_dir: args.log_dir,
        network: NetworkId(args.pod_network),
        kubelet: match (args.kubelet_cert, args.kubelet_key, args.client_ca) {
            (Some(cert), Some(key), Some(client_ca)) => Some(KubeletTls {
                cert,
                key,
                client_ca,
            }),
            _ => None,
        },
    };
    let mut terminate = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: killing every container");
    };
    pod_runner::run(client, config, shutdown).await
}
