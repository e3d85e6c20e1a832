//! Structured logs through `tracing`: one JSON object per line, or text for people.

use tracing_subscriber::EnvFilter;

use crate::controller::config::{LogFormat, LogLevel};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the level for debugging
/// (for example `RUST_LOG=kuberhealthy=trace,kube=debug`).
pub fn init(level: LogLevel, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Directives match target prefixes: `kube` would also silence `kuberhealthy`.
        EnvFilter::new(format!(
            "{level},kube_client=warn,kube_runtime=warn,hyper=warn,tower=warn",
            level = level.as_str()
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}
