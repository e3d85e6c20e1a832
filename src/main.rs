//! The `kuberhealthy` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kuberhealthy::controller::config::{self, ConfigFile, RunArgs, Settings};

#[derive(Parser)]
#[command(
    name = "kuberhealthy",
    version,
    about = "A highly available, Kuberhealthy v2 compatible health-check operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a controller replica.
    Run(Box<RunArgs>),
    /// Print the CRDs as YAML: KuberhealthyCheck, KuberhealthyJob, KuberhealthyState and
    /// (Kuberhealthy v3's) HealthCheck.
    Crd {
        /// Print only v2's three (`v2`) or only the HealthCheck (`healthcheck`).
        #[arg(long, value_parser = ["v2", "healthcheck"])]
        only: Option<String>,
    },
    /// Convert Kuberhealthy v2 KuberhealthyCheck and KuberhealthyJob manifests into v3
    /// HealthChecks (`--to v3`, the default), or HealthChecks back (`--to v2`). Reads the
    /// files given, or stdin; prints YAML. Other kinds pass through; what has no equivalent
    /// is refused with the reason, and then nothing is printed.
    Convert {
        /// The form to write.
        #[arg(long, default_value = "v3", value_parser = ["v3", "v2"])]
        to: String,
        /// Manifest files (`-` or none: stdin).
        files: Vec<std::path::PathBuf>,
    },
    /// Report a checker's result (for shell checks): `--ok`, or one `--error` per problem.
    /// Reads KH_REPORTING_URL, KH_RUN_UUID and KH_CHECK_RUN_DEADLINE like every check client.
    #[command(group(clap::ArgGroup::new("result").required(true).args(["ok", "error"])))]
    Report {
        /// The check passed.
        #[arg(long)]
        ok: bool,
        /// The check failed with this error (repeat for several).
        #[arg(long, value_name = "MESSAGE")]
        error: Vec<String>,
    },
    /// Run a built-in check in a checker pod and report its result (see the README's
    /// "Built-in checks"). Its knobs are v2's environment variables.
    Check {
        /// The check to run.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(kuberhealthy::checker::checks::names()))]
        name: String,
    },
    /// Ask for a run of a check now: sets its `kuberhealthy.github.io/run-requested-at`
    /// annotation (with the kubeconfig's credentials); the leader starts one run for it.
    RunNow {
        /// The check, as `namespace/name`.
        #[arg(value_name = "NAMESPACE/NAME")]
        check: String,
    },
    /// Print the ServiceAccount and RBAC the controller needs, as YAML.
    Rbac {
        /// The namespace the replicas run in (their ServiceAccount and Lease).
        #[arg(long, default_value = "kuberhealthy")]
        namespace: String,
        /// Grant access to this namespace only (Roles, no ClusterRole), for TARGET_NAMESPACE.
        #[arg(long)]
        target_namespace: Option<String>,
        /// Print only the rules of `controller` (v2's resources), `healthchecks` (v3's),
        /// `auth` (POST /api/run's reviews, cluster-wide only), `lease`, or every built-in
        /// check as a map `check -> rules` (`checks`), for the Helm chart's files/.
        #[arg(long, value_parser = ["controller", "healthchecks", "auth", "lease", "checks"])]
        rules: Option<String>,
        /// Print the ServiceAccount and RBAC of this built-in check instead (its pods run in
        /// --namespace; --target-namespace limits it to one namespace).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(kuberhealthy::checker::checks::names()), conflicts_with = "rules")]
        check: Option<String>,
        /// Write every built-in check's RBAC to DIR/<check>.yaml instead of printing.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["rules", "check"])]
        checks_dir: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { only } => {
            use kuberhealthy::generate::crd::{Generation, crds_yaml};
            let generations: &[Generation] = match only.as_deref() {
                Some("v2") => &[Generation::V2],
                Some(_) => &[Generation::V3],
                None => &[Generation::V2, Generation::V3],
            };
            print!("{}", crds_yaml(generations));
            ExitCode::SUCCESS
        }
        Command::Convert { to, files } => convert(&to, &files),
        Command::Rbac {
            namespace,
            target_namespace,
            rules,
            check,
            checks_dir,
        } => {
            use kuberhealthy::generate::rbac;
            let check_yaml = |name: &str| {
                let check = kuberhealthy::checker::checks::find(name)
                    .expect("clap accepts only built-in checks");
                rbac::to_yaml(&rbac::check_manifests(
                    name,
                    rbac::check_rules(check),
                    &namespace,
                    target_namespace.as_deref(),
                ))
            };
            if let Some(dir) = checks_dir {
                for name in kuberhealthy::checker::checks::names() {
                    let path = dir.join(format!("{name}.yaml"));
                    if let Err(e) = std::fs::write(&path, check_yaml(name)) {
                        eprintln!("kuberhealthy rbac: cannot write {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
                return ExitCode::SUCCESS;
            }
            if let Some(name) = check {
                print!("{}", check_yaml(&name));
                return ExitCode::SUCCESS;
            }
            match rules.as_deref() {
                Some("controller") => print!("{}", rbac::rules_yaml(rbac::CONTROLLER_RULES)),
                Some("healthchecks") => print!("{}", rbac::rules_yaml(rbac::HEALTHCHECK_RULES)),
                Some("auth") => print!("{}", rbac::rules_yaml(rbac::AUTH_RULES)),
                Some("lease") => print!("{}", rbac::rules_yaml(rbac::LEASE_RULES)),
                Some(_) => print!("{}", rbac::check_rules_yaml()),
                None => {
                    let manifests =
                        rbac::controller_manifests(&namespace, target_namespace.as_deref());
                    print!("{}", rbac::to_yaml(&manifests));
                }
            }
            ExitCode::SUCCESS
        }
        Command::Check { name } => check(&name),
        Command::RunNow { check } => match run_now(&check) {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kuberhealthy run-now: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Report { ok, error } => match report(ok, error) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kuberhealthy report: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => match run(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kuberhealthy: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn convert(to: &str, files: &[std::path::PathBuf]) -> ExitCode {
    use kuberhealthy::convert::{Target, convert_yaml, to_yaml};
    use std::io::Read;
    let target = if to == "v2" { Target::V2 } else { Target::V3 };
    let stdin = [std::path::PathBuf::from("-")];
    let inputs = if files.is_empty() { &stdin[..] } else { files };
    let mut converted = Vec::new();
    let mut refused = false;
    for path in inputs {
        let (name, text) = if path.as_os_str() == "-" {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                eprintln!("kuberhealthy convert: cannot read stdin: {e}");
                return ExitCode::FAILURE;
            }
            ("stdin".to_string(), text)
        } else {
            match std::fs::read_to_string(path) {
                Ok(text) => (path.display().to_string(), text),
                Err(e) => {
                    eprintln!("kuberhealthy convert: cannot read {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
        };
        match convert_yaml(&text, target) {
            Ok(documents) => converted.extend(documents),
            Err(refusals) => {
                refused = true;
                for refusal in refusals {
                    eprintln!("kuberhealthy convert: {name}: {refusal}");
                }
            }
        }
    }
    if refused {
        eprintln!("kuberhealthy convert: nothing was printed");
        return ExitCode::FAILURE;
    }
    print!("{}", to_yaml(&converted));
    ExitCode::SUCCESS
}

fn report(ok: bool, errors: Vec<String>) -> Result<(), kuberhealthy::checker::client::ReportError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime");
    runtime.block_on(async {
        let reporter = kuberhealthy::checker::client::Reporter::from_env()?;
        if ok {
            reporter.report_success().await
        } else {
            reporter.report_failure(&errors).await
        }
    })
}

fn run_now(check: &str) -> anyhow::Result<String> {
    let Some((namespace, name)) = check
        .split_once('/')
        .filter(|(n, c)| !n.is_empty() && !c.is_empty())
    else {
        anyhow::bail!(
            "{check:?} is not NAMESPACE/NAME: name the check with its namespace, such as kuberhealthy/dns-status"
        );
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime");
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the cluster (KUBECONFIG or in-cluster): {e}"))?;
        let at = kuberhealthy::controller::run_now::request(client, namespace, name)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot set the run-now annotation of khcheck {check}: {}",
                    kuberhealthy::controller::api_error::reason(&e)
                )
            })?;
        Ok(format!(
            "requested a run of {check} at {at}; the leader starts it once any run in flight has finished"
        ))
    })
}

fn check(name: &str) -> ExitCode {
    let check =
        kuberhealthy::checker::checks::find(name).expect("clap accepts only built-in checks");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime");
    match runtime.block_on(kuberhealthy::checker::checks::run(check)) {
        Ok(Ok(())) => {
            eprintln!("kuberhealthy check {name}: OK, reported");
            ExitCode::SUCCESS
        }
        Ok(Err(errors)) => {
            for e in &errors {
                eprintln!("kuberhealthy check {name}: {e}");
            }
            eprintln!("kuberhealthy check {name}: failure reported");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kuberhealthy check {name}: the result could not be reported: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let file = ConfigFile::load(args.config.as_deref())?;
    let sa_namespace = std::fs::read_to_string(config::SERVICE_ACCOUNT_NAMESPACE_PATH).ok();
    let settings = Settings::resolve(&args, &file, sa_namespace)?;
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&settings)?);
        return Ok(());
    }
    kuberhealthy::controller::logging::init(settings.log_level, settings.log_format);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(pod = %settings.pod_name, namespace = %settings.pod_namespace, "configuration loaded");
    tokio::runtime::Runtime::new()?.block_on(kuberhealthy::controller::replica::run(settings))
}
