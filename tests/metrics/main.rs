//! The metrics as their consumers see them: the `/metrics` text (golden, and clean under
//! `promtool check metrics`), a real Prometheus scraping it and running the v2 dashboard's
//! queries, and an OTLP receiver getting the same metrics pushed.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package: run
//! `bash e2e/tools/install-prometheus.sh` (`make unit` does) before `cargo test`.

mod exposition;
mod fixture;
mod otlp;
mod prometheus_server;
mod route;
mod scrape;
mod tools;
