//! Configuration of `kuberhealthy run`: flags, environment (v2's and ours) and v2's config
//! file, resolved into one validated [`Settings`].
//!
//! Precedence, highest first: a command-line flag, its environment variable, the config
//! file, the built-in default. A bad value anywhere stops start-up with an error that names
//! the key, the value and what is allowed.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::api::duration::{self, GoDuration};
use crate::api::names;
use crate::controller::bounded::HttpLimits;

/// v2's config file path (the chart mounts the ConfigMap there).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/config/kuberhealthy.yaml";
/// Where Kubernetes mounts the pod's namespace; used when `POD_NAMESPACE` is unset.
pub const SERVICE_ACCOUNT_NAMESPACE_PATH: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// v2's minimums, which v2 enforced silently; here they are enforced with a warning.
const MIN_KHJOB_AGE: Duration = Duration::from_secs(5 * 60);
const MIN_CHECK_POD_AGE: Duration = Duration::from_secs(30);

/// Flags of `kuberhealthy run`; each can also be set by the environment variable named.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// v2's YAML config file. Missing is fine at the default path, an error elsewhere.
    #[arg(short = 'c', long, env = "KH_CONFIG_FILE", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address the HTTP server listens on, such as `:8080` or `127.0.0.1:8080`.
    #[arg(long, env = "KH_LISTEN_ADDRESS")]
    pub listen_address: Option<String>,
    /// trace, debug, info, warn, error (v2's logrus names fatal and panic mean error).
    #[arg(long, env = "KH_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Shorthand for `--log-level debug` (v2's `-d`).
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// `json` (one object per line) or `text`.
    #[arg(long, env = "KH_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// This replica's name: its identity in the Lease and in `AuthoritativePod`.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// This replica's namespace, where the Lease lives.
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,
    /// Watch and schedule only this namespace (empty: all namespaces).
    #[arg(long, env = "TARGET_NAMESPACE")]
    pub target_namespace: Option<String>,
    /// The URL checker pods report to (`KH_REPORTING_URL` in the checker).
    #[arg(long, env = "KH_EXTERNAL_REPORTING_URL")]
    pub reporting_url: Option<String>,
    /// Name of the Lease the replicas elect a leader with.
    #[arg(long, env = "KH_LEADER_ELECTION_NAME")]
    pub lease_name: Option<String>,
    /// How long a leader's Lease is valid without renewal.
    #[arg(long, env = "KH_LEADER_ELECTION_LEASE_DURATION")]
    pub lease_duration: Option<String>,
    /// How long the leader keeps trying to renew before it steps down.
    #[arg(long, env = "KH_LEADER_ELECTION_RENEW_DEADLINE")]
    pub renew_deadline: Option<String>,
    /// How often replicas try to acquire or renew the Lease.
    #[arg(long, env = "KH_LEADER_ELECTION_RETRY_PERIOD")]
    pub retry_period: Option<String>,
    /// At most this many runs start per second; overdue checks catch up at this rate.
    #[arg(long, env = "KH_MAX_STARTS_PER_SECOND")]
    pub max_starts_per_second: Option<String>,
    /// Serve Kuberhealthy v3's HealthChecks too: `true` (the default) or `false`.
    #[arg(long, env = "KH_HEALTHCHECKS")]
    pub healthchecks: Option<String>,
    /// The base URL HealthChecks' checker pods report to (v3's variable); `/check` is appended.
    #[arg(long, env = "KH_CHECK_REPORT_URL")]
    pub check_report_url: Option<String>,
    /// `true` or `false`: whether a report without a `kh-run-uuid` header is tied to the run
    /// of the checker pod whose address it came from, as v2 did.
    #[arg(long, env = "KH_IDENTIFY_REPORTS_BY_SOURCE_IP", value_name = "BOOL")]
    pub identify_reports_by_source_ip: Option<String>,
    /// How long a client may take to send a request's headers; also how long an idle
    /// keep-alive connection is kept (a Go duration).
    #[arg(long, env = "KH_HTTP_HEADER_READ_TIMEOUT")]
    pub http_header_read_timeout: Option<String>,
    /// How long a client may take to send a request's whole body (a Go duration).
    #[arg(long, env = "KH_HTTP_BODY_READ_TIMEOUT")]
    pub http_body_read_timeout: Option<String>,
    /// At most this many HTTP connections are served at once; more wait to be accepted.
    #[arg(long, env = "KH_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<String>,
    /// At most this many requests are handled at once; more are answered 503 with Retry-After.
    #[arg(long, env = "KH_HTTP_MAX_REQUESTS_IN_FLIGHT")]
    pub http_max_requests_in_flight: Option<String>,
    /// Print the resolved configuration as JSON and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// v2's `promMetricsConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromMetricsConfig {
    /// Leave the `error` label off `kuberhealthy_check` and `kuberhealthy_job`.
    pub suppress_error_label: bool,
    /// Truncate the `error` label to this many bytes (0: no limit).
    pub error_label_max_length: usize,
}

/// Leader election timings, validated so that retry < renew deadline < lease duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSettings {
    pub name: String,
    pub lease_duration: GoDuration,
    pub renew_deadline: GoDuration,
    pub retry_period: GoDuration,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub listen_address: SocketAddr,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub pod_name: String,
    pub pod_namespace: String,
    pub target_namespace: Option<String>,
    pub reporting_url: String,
    /// Whether v3 HealthChecks are served.
    pub healthchecks: bool,
    /// `KH_REPORTING_URL` of HealthChecks' checker pods: v3's `/check`.
    pub healthcheck_reporting_url: String,
    pub lease: LeaseSettings,
    pub max_starts_per_second: u32,
    #[serde(rename = "maxKHJobAge")]
    pub max_khjob_age: GoDuration,
    pub max_check_pod_age: GoDuration,
    pub max_completed_pod_count: u32,
    pub max_error_pod_count: u32,
    pub state_metadata: BTreeMap<String, String>,
    pub prom_metrics_config: PromMetricsConfig,
    #[serde(rename = "identifyReportsBySourceIP")]
    pub identify_reports_by_source_ip: bool,
    pub http: HttpLimits,
    /// Things worth logging once logging is up: ignored v2 keys, raised minimums.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {key}: {message}")]
pub struct ConfigError {
    /// Where the value came from: a flag and its variable, or the config file's path.
    pub origin: String,
    pub key: String,
    pub message: String,
}

/// The keys of v2's config file, and the ones v2 had that this project ignores.
const FILE_KEYS: &[&str] = &[
    "listenAddress",
    "logLevel",
    "maxKHJobAge",
    "maxCheckPodAge",
    "maxCompletedPodCount",
    "maxErrorPodCount",
    "stateMetadata",
    "promMetricsConfig",
    "namespace",
    "identifyReportsBySourceIP",
    "httpHeaderReadTimeout",
    "httpBodyReadTimeout",
    "httpMaxConnections",
    "httpMaxRequestsInFlight",
];
const IGNORED_V2_KEYS: &[&str] = &[
    "enableForceMaster",
    "influxUsername",
    "influxPassword",
    "influxURL",
    "influxDB",
    "enableInflux",
    "externalCheckReportingURL",
];

/// v2's config file, read into a map of key to value so that every error names its key.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub path: String,
    pub values: BTreeMap<String, Value>,
}

impl ConfigFile {
    /// Reads the file at `path`. A missing file at v2's default path is an empty config.
    pub fn load(path: Option<&Path>) -> Result<ConfigFile, ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ConfigFile {
                    path: shown,
                    values: BTreeMap::new(),
                });
            }
            Err(e) => {
                return Err(ConfigError {
                    origin: "--config / KH_CONFIG_FILE".into(),
                    key: "config".into(),
                    message: format!("cannot read {shown}: {e}"),
                });
            }
        };
        ConfigFile::parse(&shown, &text)
    }

    /// Parses the YAML text of a config file named `path` (used in messages).
    pub fn parse(path: &str, text: &str) -> Result<ConfigFile, ConfigError> {
        let error = |key: &str, message: String| ConfigError {
            origin: format!("config file {path}"),
            key: key.into(),
            message,
        };
        if text.trim().is_empty() {
            return Ok(ConfigFile {
                path: path.into(),
                values: BTreeMap::new(),
            });
        }
        let value: Value = serde_saphyr::from_str(text)
            .map_err(|e| error("(file)", format!("is not valid YAML: {e}")))?;
        let values = match value {
            Value::Object(map) => map.into_iter().collect::<BTreeMap<_, _>>(),
            Value::Null => BTreeMap::new(),
            other => {
                return Err(error(
                    "(file)",
                    format!("must be a mapping of keys to values, found {other}"),
                ));
            }
        };
        for key in values.keys() {
            if !FILE_KEYS.contains(&key.as_str()) && !IGNORED_V2_KEYS.contains(&key.as_str()) {
                return Err(error(
                    key,
                    format!("is not a known key; the keys are {}", FILE_KEYS.join(", ")),
                ));
            }
        }
        Ok(ConfigFile {
            path: path.into(),
            values,
        })
    }

    fn origin(&self) -> String {
        format!("config file {}", self.path)
    }

    fn error(&self, key: &str, message: String) -> ConfigError {
        ConfigError {
            origin: self.origin(),
            key: key.into(),
            message,
        }
    }

    /// A scalar value as text (YAML reads `15` as a number; the message should still say
    /// what is wrong with it as a duration or address); `null` counts as absent.
    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(other) => Err(self.error(key, format!("{other} is not a string"))),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => parse_bool(s).map(Some).map_err(|m| self.error(key, m)),
            Some(other) => Err(self.error(key, format!("{other} is not true or false"))),
        }
    }

    fn count(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    self.error(
                        key,
                        format!("{v} is not a whole number from 0 to {}", u32::MAX),
                    )
                }),
        }
    }

    fn prom_metrics_config(&self) -> Result<PromMetricsConfig, ConfigError> {
        let key = "promMetricsConfig";
        let map = match self.values.get(key) {
            None | Some(Value::Null) => return Ok(PromMetricsConfig::default()),
            Some(Value::Object(map)) => map,
            Some(other) => return Err(self.error(key, format!("{other} is not a mapping"))),
        };
        let mut config = PromMetricsConfig::default();
        for (sub, v) in map {
            let full = format!("{key}.{sub}");
            match sub.as_str() {
                "suppressErrorLabel" => {
                    config.suppress_error_label = v
                        .as_bool()
                        .ok_or_else(|| self.error(&full, format!("{v} is not true or false")))?;
                }
                "errorLabelMaxLength" => {
                    config.error_label_max_length = v
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            self.error(
                                &full,
                                format!("{v} is not a whole number of bytes (0: no limit)"),
                            )
                        })?;
                }
                _ => {
                    return Err(self.error(
                        &full,
                        "is not a known key; the keys are suppressErrorLabel, errorLabelMaxLength"
                            .into(),
                    ));
                }
            }
        }
        Ok(config)
    }

    fn state_metadata(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        let key = "stateMetadata";
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                    other => {
                        Err(self.error(&format!("{key}.{k}"), format!("{other} is not a string")))
                    }
                })
                .collect(),
            Some(other) => Err(self.error(key, format!("{other} is not a mapping of strings"))),
        }
    }
}

/// Where a value came from, for messages.
struct Origin {
    flag: &'static str,
    env: &'static str,
}

impl Origin {
    fn describe(&self) -> String {
        format!("--{} / {}", self.flag, self.env)
    }
}

fn flag_error(origin: &Origin, message: String) -> ConfigError {
    ConfigError {
        origin: origin.describe(),
        key: origin.flag.into(),
        message,
    }
}

impl Settings {
    /// Resolves flags and environment (`args`), the config file and the defaults.
    /// `service_account_namespace` is the pod's namespace as Kubernetes mounted it, if any.
    pub fn resolve(
        args: &RunArgs,
        file: &ConfigFile,
        service_account_namespace: Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut warnings = Vec::new();

        // listenAddress
        let listen_origin = Origin {
            flag: "listen-address",
            env: "KH_LISTEN_ADDRESS",
        };
        let listen_address = match (&args.listen_address, file.string("listenAddress")?) {
            (Some(v), _) => parse_listen_address(v).map_err(|m| flag_error(&listen_origin, m))?,
            (None, Some(v)) => {
                parse_listen_address(&v).map_err(|m| file.error("listenAddress", m))?
            }
            (None, None) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080),
        };

        // logLevel
        let level_origin = Origin {
            flag: "log-level",
            env: "KH_LOG_LEVEL",
        };
        let log_level = if args.debug {
            LogLevel::Debug
        } else {
            match (&args.log_level, file.string("logLevel")?) {
                (Some(v), _) => parse_log_level(v).map_err(|m| flag_error(&level_origin, m))?,
                (None, Some(v)) => parse_log_level(&v).map_err(|m| file.error("logLevel", m))?,
                (None, None) => LogLevel::Info,
            }
        };

        let format_origin = Origin {
            flag: "log-format",
            env: "KH_LOG_FORMAT",
        };
        let log_format = match args.log_format.as_deref().map(str::trim) {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(flag_error(
                    &format_origin,
                    format!("{other:?} is not a log format; use json or text"),
                ));
            }
        };

        // Identity. v2 required POD_NAME; the namespace may come from the service account.
        let name_origin = Origin {
            flag: "pod-name",
            env: "POD_NAME",
        };
        let pod_name = non_empty(&args.pod_name).ok_or_else(|| {
            flag_error(
                &name_origin,
                "is not set; set it to this replica's pod name (the chart sets it from the downward API)".into(),
            )
        })?;
        let ns_origin = Origin {
            flag: "pod-namespace",
            env: "POD_NAMESPACE",
        };
        let pod_namespace = non_empty(&args.pod_namespace)
            .or_else(|| non_empty(&service_account_namespace))
            .ok_or_else(|| {
                flag_error(
                    &ns_origin,
                    "is not set and no service account namespace is mounted; set it to this replica's namespace".into(),
                )
            })?;

        // TARGET_NAMESPACE overrides the file's `namespace`, as in v2.
        let target_namespace = match (&args.target_namespace, file.string("namespace")?) {
            (Some(v), _) => non_empty(&Some(v.clone())),
            (None, v) => non_empty(&v),
        };
        if let Some(ns) = &target_namespace {
            validate_namespace_name(ns).map_err(|m| {
                if args.target_namespace.is_some() {
                    flag_error(
                        &Origin {
                            flag: "target-namespace",
                            env: "TARGET_NAMESPACE",
                        },
                        m,
                    )
                } else {
                    file.error("namespace", m)
                }
            })?;
        }

        let url_origin = Origin {
            flag: "reporting-url",
            env: "KH_EXTERNAL_REPORTING_URL",
        };
        let reporting_url = match non_empty(&args.reporting_url) {
            Some(url) => {
                validate_http_url(&url).map_err(|m| flag_error(&url_origin, m))?;
                url
            }
            None => {
                format!("http://kuberhealthy.{pod_namespace}.svc.cluster.local/externalCheckStatus")
            }
        };

        let healthchecks_origin = Origin {
            flag: "healthchecks",
            env: "KH_HEALTHCHECKS",
        };
        let healthchecks = match &args.healthchecks {
            Some(v) => parse_bool(v).map_err(|m| flag_error(&healthchecks_origin, m))?,
            None => true,
        };
        let check_url_origin = Origin {
            flag: "check-report-url",
            env: "KH_CHECK_REPORT_URL",
        };
        let healthcheck_reporting_url = match non_empty(&args.check_report_url) {
            Some(base) => {
                validate_http_url(&base).map_err(|m| flag_error(&check_url_origin, m))?;
                let base = base.trim_end_matches('/');
                if base.ends_with(names::REPORT_PATH_V3) {
                    return Err(flag_error(
                        &check_url_origin,
                        format!(
                            "{base:?} ends with /check; give the base URL, as for Kuberhealthy v3: /check is appended"
                        ),
                    ));
                }
                format!("{base}{}", names::REPORT_PATH_V3)
            }
            None => check_url_from(&reporting_url).unwrap_or_else(|origin| {
                warnings.push(format!(
                    "KH_EXTERNAL_REPORTING_URL {reporting_url:?} does not end with {}: HealthChecks' checker pods report to {origin}{} (set KH_CHECK_REPORT_URL to choose)",
                    names::REPORT_PATH_V2,
                    names::REPORT_PATH_V3
                ));
                format!("{origin}{}", names::REPORT_PATH_V3)
            }),
        };

        let lease = resolve_lease(args)?;
        let starts_origin = Origin {
            flag: "max-starts-per-second",
            env: "KH_MAX_STARTS_PER_SECOND",
        };
        let max_starts_per_second = match args.max_starts_per_second.as_deref().map(str::trim) {
            None => 10,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    flag_error(
                        &starts_origin,
                        format!("{v:?} is not a whole number from 1 to 1000"),
                    )
                })?,
        };

        let max_khjob_age = file_duration(
            file,
            "maxKHJobAge",
            Duration::from_secs(15 * 60),
            MIN_KHJOB_AGE,
            &mut warnings,
        )?;
        let max_check_pod_age = file_duration(
            file,
            "maxCheckPodAge",
            Duration::from_secs(72 * 3600),
            MIN_CHECK_POD_AGE,
            &mut warnings,
        )?;
        let max_completed_pod_count = file.count("maxCompletedPodCount")?.unwrap_or(4);
        let max_error_pod_count = file.count("maxErrorPodCount")?.unwrap_or(4);
        let state_metadata = file.state_metadata()?;
        let prom_metrics_config = file.prom_metrics_config()?;
        let source_ip_origin = Origin {
            flag: "identify-reports-by-source-ip",
            env: "KH_IDENTIFY_REPORTS_BY_SOURCE_IP",
        };
        // On by default: v2 found header-less reporters this way.
        let identify_reports_by_source_ip = match &args.identify_reports_by_source_ip {
            Some(v) => parse_bool(v).map_err(|m| flag_error(&source_ip_origin, m))?,
            None => file.boolean("identifyReportsBySourceIP")?.unwrap_or(true),
        };

        let http = resolve_http_limits(args, file)?;

        let in_use =
            |v: &Value| !matches!(v, Value::Null | Value::Bool(false)) && v.as_str() != Some("");
        for key in IGNORED_V2_KEYS {
            if file.values.get(*key).is_some_and(in_use) {
                let why = match *key {
                    "enableForceMaster" => "the leader is elected through a Lease",
                    "externalCheckReportingURL" => "set KH_EXTERNAL_REPORTING_URL, as in v2",
                    _ => "InfluxDB forwarding is not supported",
                };
                warnings.push(format!(
                    "config file {}: {key} is a v2 setting this project does not implement; it is ignored ({why})",
                    file.path
                ));
            }
        }

        Ok(Settings {
            listen_address,
            log_level,
            log_format,
            pod_name,
            pod_namespace,
            target_namespace,
            reporting_url,
            healthchecks,
            healthcheck_reporting_url,
            lease,
            max_starts_per_second,
            max_khjob_age: max_khjob_age.into(),
            max_check_pod_age: max_check_pod_age.into(),
            max_completed_pod_count,
            max_error_pod_count,
            state_metadata,
            prom_metrics_config,
            identify_reports_by_source_ip,
            http,
            warnings,
        })
    }
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn resolve_lease(args: &RunArgs) -> Result<LeaseSettings, ConfigError> {
    let duration_arg = |value: &Option<String>,
                        default: u64,
                        origin: Origin|
     -> Result<GoDuration, ConfigError> {
        match value {
            None => Ok(Duration::from_secs(default).into()),
            Some(v) => match duration::parse(v.trim()) {
                Ok(d) if !d.is_zero() => Ok(d.into()),
                Ok(_) => Err(flag_error(
                    &origin,
                    format!("{v:?} must be greater than zero"),
                )),
                Err(e) => Err(flag_error(
                    &origin,
                    format!(
                        "{v:?} is not a valid duration ({e}); write a Go duration such as \"15s\""
                    ),
                )),
            },
        }
    };
    let lease_duration = duration_arg(
        &args.lease_duration,
        15,
        Origin {
            flag: "lease-duration",
            env: "KH_LEADER_ELECTION_LEASE_DURATION",
        },
    )?;
    let renew_deadline = duration_arg(
        &args.renew_deadline,
        10,
        Origin {
            flag: "renew-deadline",
            env: "KH_LEADER_ELECTION_RENEW_DEADLINE",
        },
    )?;
    let retry_period = duration_arg(
        &args.retry_period,
        2,
        Origin {
            flag: "retry-period",
            env: "KH_LEADER_ELECTION_RETRY_PERIOD",
        },
    )?;
    if renew_deadline >= lease_duration {
        return Err(flag_error(
            &Origin {
                flag: "renew-deadline",
                env: "KH_LEADER_ELECTION_RENEW_DEADLINE",
            },
            format!("{renew_deadline} must be shorter than the lease duration {lease_duration}"),
        ));
    }
    if retry_period >= renew_deadline {
        return Err(flag_error(
            &Origin {
                flag: "retry-period",
                env: "KH_LEADER_ELECTION_RETRY_PERIOD",
            },
            format!("{retry_period} must be shorter than the renew deadline {renew_deadline}"),
        ));
    }
    let name = non_empty(&args.lease_name).unwrap_or_else(|| "kuberhealthy".into());
    validate_namespace_name(&name).map_err(|m| {
        flag_error(
            &Origin {
                flag: "lease-name",
                env: "KH_LEADER_ELECTION_NAME",
            },
            m,
        )
    })?;
    Ok(LeaseSettings {
        name,
        lease_duration,
        renew_deadline,
        retry_period,
    })
}

/// The HTTP server's bounds: each from its flag (or variable), else the config file, else
/// the default.
fn resolve_http_limits(args: &RunArgs, file: &ConfigFile) -> Result<HttpLimits, ConfigError> {
    let defaults = HttpLimits::default();
    let timeout = |arg: &Option<String>,
                   origin: Origin,
                   key: &str,
                   default: GoDuration|
     -> Result<GoDuration, ConfigError> {
        let parse = |v: &str| -> Result<GoDuration, String> {
            match duration::parse(v.trim()) {
                Ok(d) if !d.is_zero() => Ok(d.into()),
                Ok(_) => Err(format!("{v:?} must be greater than zero")),
                Err(e) => Err(format!(
                    "{v:?} is not a valid duration ({e}); write a Go duration such as \"10s\""
                )),
            }
        };
        match (arg, file.string(key)?) {
            (Some(v), _) => parse(v).map_err(|m| flag_error(&origin, m)),
            (None, Some(v)) => parse(&v).map_err(|m| file.error(key, m)),
            (None, None) => Ok(default),
        }
    };
    let cap = |arg: &Option<String>,
               origin: Origin,
               key: &str,
               default: u32|
     -> Result<u32, ConfigError> {
        let range = 1..=1_000_000u64;
        let message = |v: &dyn std::fmt::Display| {
            format!("{v} is not a whole number from 1 to {}", range.end())
        };
        match arg {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| flag_error(&origin, message(&format!("{v:?}")))),
            None => match file.values.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|n| range.contains(n))
                    .map(|n| n as u32)
                    .ok_or_else(|| file.error(key, message(v))),
            },
        }
    };
    Ok(HttpLimits {
        header_read_timeout: timeout(
            &args.http_header_read_timeout,
            Origin {
                flag: "http-header-read-timeout",
                env: "KH_HTTP_HEADER_READ_TIMEOUT",
            },
            "httpHeaderReadTimeout",
            defaults.header_read_timeout,
        )?,
        body_read_timeout: timeout(
            &args.http_body_read_timeout,
            Origin {
                flag: "http-body-read-timeout",
                env: "KH_HTTP_BODY_READ_TIMEOUT",
            },
            "httpBodyReadTimeout",
            defaults.body_read_timeout,
        )?,
        max_connections: cap(
            &args.http_max_connections,
            Origin {
                flag: "http-max-connections",
                env: "KH_HTTP_MAX_CONNECTIONS",
            },
            "httpMaxConnections",
            defaults.max_connections,
        )?,
        max_requests_in_flight: cap(
            &args.http_max_requests_in_flight,
            Origin {
                flag: "http-max-requests-in-flight",
                env: "KH_HTTP_MAX_REQUESTS_IN_FLIGHT",
            },
            "httpMaxRequestsInFlight",
            defaults.max_requests_in_flight,
        )?,
    })
}

fn file_duration(
    file: &ConfigFile,
    key: &str,
    default: Duration,
    minimum: Duration,
    warnings: &mut Vec<String>,
) -> Result<Duration, ConfigError> {
    let Some(text) = file.string(key)? else {
        return Ok(default);
    };
    let d = duration::parse(text.trim()).map_err(|e| {
        file.error(key, format!("{text:?} is not a valid duration ({e}); write a Go duration such as \"72h\" or \"15m\""))
    })?;
    if d < minimum {
        warnings.push(format!(
            "config file {}: {key} {text:?} is below the minimum of {}; using {}",
            file.path,
            duration::format(minimum),
            duration::format(minimum)
        ));
        return Ok(minimum);
    }
    Ok(d)
}

/// Parses Go-style listen addresses: `:8080`, `0.0.0.0:8080`, `[::]:8080`, `localhost:8080`.
fn parse_listen_address(value: &str) -> Result<SocketAddr, String> {
    let v = value.trim();
    let invalid = || {
        format!(
            "{value:?} is not a listen address; write host:port such as \":8080\" or \"127.0.0.1:8080\""
        )
    };
    let (host, port) = v.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    let ip = match host.trim_start_matches('[').trim_end_matches(']') {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().map_err(|_| invalid())?,
    };
    Ok(SocketAddr::new(ip, port))
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{value:?} is not true or false")),
    }
}

fn parse_log_level(value: &str) -> Result<LogLevel, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok(LogLevel::Trace),
        "debug" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "error" | "fatal" | "panic" => Ok(LogLevel::Error),
        _ => Err(format!(
            "{value:?} is not a log level; use trace, debug, info, warn or error"
        )),
    }
}

/// A DNS-1123 label, as namespaces and Lease names must be.
fn validate_namespace_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name; use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
        ))
    }
}

/// v3's reporting URL from v2's: its `/externalCheckStatus` becomes `/check`. A URL with
/// another path gives its scheme and authority as the error, for the caller to build on.
fn check_url_from(v2_url: &str) -> Result<String, String> {
    if let Some(base) = v2_url.strip_suffix(names::REPORT_PATH_V2) {
        return Ok(format!("{base}{}", names::REPORT_PATH_V3));
    }
    let after_scheme = v2_url.find("://").map_or(0, |i| i + 3);
    let end = v2_url[after_scheme..]
        .find('/')
        .map_or(v2_url.len(), |i| after_scheme + i);
    Err(v2_url[..end].to_string())
}

fn validate_http_url(url: &str) -> Result<(), String> {
    let parsed: axum::http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e}); write one such as http://kuberhealthy.kuberhealthy.svc/externalCheckStatus"))?;
    match (parsed.scheme_str(), parsed.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(format!(
            "{url:?} must be an http:// or https:// URL with a host"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RunArgs {
        RunArgs {
            pod_name: Some("kh-0".into()),
            pod_namespace: Some("kuberhealthy".into()),
            ..Default::default()
        }
    }

    fn file(text: &str) -> ConfigFile {
        ConfigFile::parse("/etc/config/kuberhealthy.yaml", text).unwrap()
    }

    fn resolve(args: &RunArgs, text: &str) -> Result<Settings, ConfigError> {
        Settings::resolve(args, &file(text), None)
    }

    fn err(args: &RunArgs, text: &str) -> String {
        resolve(args, text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_v2s() {
        let s = resolve(&args(), "").unwrap();
        assert_eq!(s.listen_address, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(s.log_level, LogLevel::Info);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(
            s.reporting_url,
            "http://kuberhealthy.kuberhealthy.svc.cluster.local/externalCheckStatus"
        );
        assert_eq!(s.target_namespace, None);
        assert!(s.healthchecks);
        assert_eq!(
            s.healthcheck_reporting_url,
            "http://kuberhealthy.kuberhealthy.svc.cluster.local/check"
        );
        assert_eq!(s.max_khjob_age.to_string(), "15m0s");
        assert_eq!(s.max_check_pod_age.to_string(), "72h0m0s");
        assert_eq!((s.max_completed_pod_count, s.max_error_pod_count), (4, 4));
        assert_eq!(s.max_starts_per_second, 10);
        assert_eq!(s.lease.name, "kuberhealthy");
        assert_eq!(
            (
                s.lease.lease_duration.to_string(),
                s.lease.renew_deadline.to_string(),
                s.lease.retry_period.to_string()
            ),
            ("15s".into(), "10s".into(), "2s".into())
        );
        assert!(
            s.identify_reports_by_source_ip,
            "v2 found header-less reporters"
        );
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn http_limits_come_from_flag_file_or_default() {
        let d = resolve(&args(), "").unwrap().http;
        assert_eq!(d, HttpLimits::default());
        assert_eq!(
            (
                d.header_read_timeout.to_string(),
                d.body_read_timeout.to_string(),
                d.max_connections,
                d.max_requests_in_flight
            ),
            ("10s".into(), "10s".into(), 1024, 256)
        );
        let file = "httpHeaderReadTimeout: 2s\nhttpBodyReadTimeout: 1m\nhttpMaxConnections: 50\nhttpMaxRequestsInFlight: 8";
        let f = resolve(&args(), file).unwrap().http;
        assert_eq!(
            (
                f.header_read_timeout.to_string(),
                f.body_read_timeout.to_string(),
                f.max_connections,
                f.max_requests_in_flight
            ),
            ("2s".into(), "1m0s".into(), 50, 8)
        );
        let mut a = args();
        a.http_header_read_timeout = Some("500ms".into());
        a.http_max_requests_in_flight = Some("3".into());
        let flags = resolve(&a, file).unwrap().http;
        assert_eq!(flags.header_read_timeout.to_string(), "500ms");
        assert_eq!(flags.max_requests_in_flight, 3);
        assert_eq!(flags.max_connections, 50, "the file still counts");

        let mut a = args();
        a.http_max_connections = Some("0".into());
        assert_eq!(
            err(&a, ""),
            "--http-max-connections / KH_HTTP_MAX_CONNECTIONS: http-max-connections: \"0\" is not a whole number from 1 to 1000000"
        );
        assert_eq!(
            err(&args(), "httpBodyReadTimeout: soon"),
            "config file /etc/config/kuberhealthy.yaml: httpBodyReadTimeout: \"soon\" is not a valid duration (invalid duration \"soon\"); write a Go duration such as \"10s\""
        );
        assert_eq!(
            err(&args(), "httpHeaderReadTimeout: 0s"),
            "config file /etc/config/kuberhealthy.yaml: httpHeaderReadTimeout: \"0s\" must be greater than zero"
        );
        assert_eq!(
            err(&args(), "httpMaxRequestsInFlight: -1"),
            "config file /etc/config/kuberhealthy.yaml: httpMaxRequestsInFlight: -1 is not a whole number from 1 to 1000000"
        );
    }

    #[test]
    fn identification_by_source_ip_is_turned_off_by_flag_env_or_file() {
        let off = resolve(&args(), "identifyReportsBySourceIP: false").unwrap();
        assert!(!off.identify_reports_by_source_ip);
        let quoted = resolve(&args(), "identifyReportsBySourceIP: \"False\"").unwrap();
        assert!(!quoted.identify_reports_by_source_ip);
        let mut a = args();
        a.identify_reports_by_source_ip = Some("true".into());
        let flag_wins = resolve(&a, "identifyReportsBySourceIP: false").unwrap();
        assert!(flag_wins.identify_reports_by_source_ip);
        a.identify_reports_by_source_ip = Some("no".into());
        assert_eq!(
            err(&a, ""),
            "--identify-reports-by-source-ip / KH_IDENTIFY_REPORTS_BY_SOURCE_IP: identify-reports-by-source-ip: \"no\" is not true or false"
        );
        assert_eq!(
            err(&args(), "identifyReportsBySourceIP: 1"),
            "config file /etc/config/kuberhealthy.yaml: identifyReportsBySourceIP: 1 is not true or false"
        );
    }

    #[test]
    fn reads_every_v2_key() {
        let s = resolve(
            &args(),
            r#"
listenAddress: ":9090"
logLevel: debug
maxKHJobAge: 30m
maxCheckPodAge: 24h
maxCompletedPodCount: 2
maxErrorPodCount: 0
stateMetadata:
  cluster: prod-eu
  tier: 1
promMetricsConfig:
  suppressErrorLabel: true
  errorLabelMaxLength: 64
namespace: checks
enableInflux: false
"#,
        )
        .unwrap();
        assert_eq!(s.listen_address.port(), 9090);
        assert_eq!(s.log_level, LogLevel::Debug);
        assert_eq!(s.max_khjob_age.to_string(), "30m0s");
        assert_eq!(s.max_check_pod_age.to_string(), "24h0m0s");
        assert_eq!((s.max_completed_pod_count, s.max_error_pod_count), (2, 0));
        assert_eq!(
            s.state_metadata.get("cluster").map(String::as_str),
            Some("prod-eu")
        );
        assert_eq!(s.state_metadata.get("tier").map(String::as_str), Some("1"));
        assert_eq!(
            s.prom_metrics_config,
            PromMetricsConfig {
                suppress_error_label: true,
                error_label_max_length: 64
            }
        );
        assert_eq!(s.target_namespace.as_deref(), Some("checks"));
        assert!(
            s.warnings.is_empty(),
            "enableInflux: false is not worth a warning"
        );
    }

    #[test]
    fn flags_and_environment_win_over_the_file() {
        let mut a = args();
        a.listen_address = Some("127.0.0.1:8081".into());
        a.log_level = Some("warn".into());
        a.target_namespace = Some("team-a".into());
        let s = resolve(
            &a,
            "listenAddress: \":9090\"\nlogLevel: debug\nnamespace: checks\n",
        )
        .unwrap();
        assert_eq!(s.listen_address, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(s.log_level, LogLevel::Warn);
        assert_eq!(s.target_namespace.as_deref(), Some("team-a"));
    }

    #[test]
    fn debug_flag_beats_every_level() {
        let mut a = args();
        a.debug = true;
        a.log_level = Some("error".into());
        assert_eq!(
            resolve(&a, "logLevel: warn").unwrap().log_level,
            LogLevel::Debug
        );
    }

    #[test]
    fn empty_target_namespace_means_all_namespaces() {
        let mut a = args();
        a.target_namespace = Some("".into());
        assert_eq!(
            resolve(&a, "namespace: checks").unwrap().target_namespace,
            None
        );
    }

    #[test]
    fn namespace_falls_back_to_the_service_account() {
        let mut a = args();
        a.pod_namespace = None;
        let s = Settings::resolve(&a, &file(""), Some("monitoring\n".into())).unwrap();
        assert_eq!(s.pod_namespace, "monitoring");
    }

    #[test]
    fn v2_minimums_are_raised_with_a_warning() {
        let s = resolve(&args(), "maxKHJobAge: 1m\nmaxCheckPodAge: 5s").unwrap();
        assert_eq!(s.max_khjob_age.to_string(), "5m0s");
        assert_eq!(s.max_check_pod_age.to_string(), "30s");
        assert_eq!(s.warnings.len(), 2);
        assert!(
            s.warnings[0].contains("maxKHJobAge \"1m\" is below the minimum of 5m0s"),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn ignored_v2_keys_warn_when_used() {
        let s = resolve(&args(), "enableInflux: true\nenableForceMaster: true").unwrap();
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("enableForceMaster") && w.contains("Lease"))
        );
        assert!(
            s.warnings.iter().any(|w| w.contains("enableInflux")
                && w.contains("InfluxDB forwarding is not supported"))
        );
    }

    #[test]
    fn each_rejected_value_names_key_value_and_fix() {
        let path = "config file /etc/config/kuberhealthy.yaml";
        let cases: &[(&str, String)] = &[
            (
                "maxCheckPodAge: 3 days",
                format!(
                    "{path}: maxCheckPodAge: \"3 days\" is not a valid duration (unknown unit \" days\" in duration \"3 days\" (use one of ns, us, ms, s, m, h)); write a Go duration such as \"72h\" or \"15m\""
                ),
            ),
            (
                "maxKHJobAge: 15",
                format!(
                    "{path}: maxKHJobAge: \"15\" is not a valid duration (missing unit in duration \"15\" (use one of ns, us, ms, s, m, h)); write a Go duration such as \"72h\" or \"15m\""
                ),
            ),
            (
                "maxCompletedPodCount: -1",
                format!(
                    "{path}: maxCompletedPodCount: -1 is not a whole number from 0 to 4294967295"
                ),
            ),
            (
                "maxErrorPodCount: four",
                format!("{path}: maxErrorPodCount: 4 is not a whole number from 0 to 4294967295")
                    .replace("4 is", "\"four\" is"),
            ),
            (
                "logLevel: loud",
                format!(
                    "{path}: logLevel: \"loud\" is not a log level; use trace, debug, info, warn or error"
                ),
            ),
            (
                "listenAddress: 8080",
                format!(
                    "{path}: listenAddress: \"8080\" is not a listen address; write host:port such as \":8080\" or \"127.0.0.1:8080\""
                ),
            ),
            (
                "namespace: Team_A",
                format!(
                    "{path}: namespace: \"Team_A\" is not a valid name; use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
                ),
            ),
            (
                "stateMetadata: [a, b]",
                format!("{path}: stateMetadata: [\"a\",\"b\"] is not a mapping of strings"),
            ),
            (
                "promMetricsConfig:\n  suppressErrorLabel: maybe",
                format!(
                    "{path}: promMetricsConfig.suppressErrorLabel: \"maybe\" is not true or false"
                ),
            ),
            (
                "promMetricsConfig:\n  errorLabelMaxLen: 3",
                format!(
                    "{path}: promMetricsConfig.errorLabelMaxLen: is not a known key; the keys are suppressErrorLabel, errorLabelMaxLength"
                ),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(&err(&args(), text), expected, "for {text:?}");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let e = ConfigFile::parse("/c.yaml", "maxCheckPodAg: 1h")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config file /c.yaml: maxCheckPodAg: is not a known key; the keys are listenAddress, logLevel"), "{e}");
        let e = ConfigFile::parse("/c.yaml", "- a\n- b")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "config file /c.yaml: (file): must be a mapping of keys to values, found [\"a\",\"b\"]"
        );
        let e = ConfigFile::parse("/c.yaml", "a: [")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config file /c.yaml: (file): is not valid YAML"),
            "{e}"
        );
    }

    #[test]
    fn flag_errors_name_flag_and_variable() {
        let mut a = args();
        a.pod_name = None;
        assert_eq!(
            err(&a, ""),
            "--pod-name / POD_NAME: pod-name: is not set; set it to this replica's pod name (the chart sets it from the downward API)"
        );
        let mut a = args();
        a.log_format = Some("xml".into());
        assert_eq!(
            err(&a, ""),
            "--log-format / KH_LOG_FORMAT: log-format: \"xml\" is not a log format; use json or text"
        );
        let mut a = args();
        a.reporting_url = Some("ftp://kuberhealthy/externalCheckStatus".into());
        assert_eq!(
            err(&a, ""),
            "--reporting-url / KH_EXTERNAL_REPORTING_URL: reporting-url: \"ftp://kuberhealthy/externalCheckStatus\" must be an http:// or https:// URL with a host"
        );
        a.reporting_url = Some("kuberhealthy externalCheckStatus".into());
        assert!(err(&a, "").contains("is not a URL"));
        let mut a = args();
        a.pod_namespace = None;
        assert!(
            err(&a, "").starts_with("--pod-namespace / POD_NAMESPACE: pod-namespace: is not set")
        );
    }

    #[test]
    fn healthchecks_report_to_v3s_path() {
        let mut a = args();
        a.reporting_url = Some("http://kh.example:8080/proxy/externalCheckStatus".into());
        let s = resolve(&a, "").unwrap();
        assert_eq!(
            s.healthcheck_reporting_url,
            "http://kh.example:8080/proxy/check"
        );
        a.reporting_url = Some("https://kh.example/report".into());
        let s = resolve(&a, "").unwrap();
        assert_eq!(s.healthcheck_reporting_url, "https://kh.example/check");
        assert!(
            s.warnings[0].contains("set KH_CHECK_REPORT_URL"),
            "{:?}",
            s.warnings
        );
        a.check_report_url = Some("http://kh.example:9000/".into());
        let s = resolve(&a, "").unwrap();
        assert_eq!(s.healthcheck_reporting_url, "http://kh.example:9000/check");
        a.check_report_url = Some("http://kh.example/check".into());
        assert_eq!(
            err(&a, ""),
            "--check-report-url / KH_CHECK_REPORT_URL: check-report-url: \"http://kh.example/check\" ends with /check; give the base URL, as for Kuberhealthy v3: /check is appended"
        );
        let mut a = args();
        a.healthchecks = Some("false".into());
        assert!(!resolve(&a, "").unwrap().healthchecks);
        a.healthchecks = Some("no".into());
        assert_eq!(
            err(&a, ""),
            "--healthchecks / KH_HEALTHCHECKS: healthchecks: \"no\" is not true or false"
        );
    }

    #[test]
    fn lease_timings_must_nest() {
        let mut a = args();
        a.renew_deadline = Some("15s".into());
        assert_eq!(
            err(&a, ""),
            "--renew-deadline / KH_LEADER_ELECTION_RENEW_DEADLINE: renew-deadline: 15s must be shorter than the lease duration 15s"
        );
        let mut a = args();
        a.retry_period = Some("10s".into());
        assert_eq!(
            err(&a, ""),
            "--retry-period / KH_LEADER_ELECTION_RETRY_PERIOD: retry-period: 10s must be shorter than the renew deadline 10s"
        );
        let mut a = args();
        a.lease_duration = Some("0s".into());
        assert!(err(&a, "").contains("\"0s\" must be greater than zero"));
        let mut a = args();
        (a.lease_duration, a.renew_deadline, a.retry_period) =
            (Some("3s".into()), Some("2s".into()), Some("500ms".into()));
        let s = resolve(&a, "").unwrap();
        assert_eq!(s.lease.retry_period.to_string(), "500ms");
    }

    #[test]
    fn listen_addresses_in_go_style() {
        assert_eq!(
            parse_listen_address(":8080").unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            parse_listen_address("[::]:80").unwrap(),
            "[::]:80".parse().unwrap()
        );
        assert_eq!(
            parse_listen_address("localhost:1").unwrap(),
            "127.0.0.1:1".parse().unwrap()
        );
        assert!(parse_listen_address("host.example:80").is_err());
        assert!(parse_listen_address(":http").is_err());
    }
}
