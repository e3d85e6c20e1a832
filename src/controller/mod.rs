//! What runs in every replica: the watch-fed cache, leader election, the leader's run
//! supervisor, report intake, the status page (JSON and HTML), badges, metrics, and the HTTP server that wires them.

pub mod api_error;
pub mod bounded;
pub mod cache;
pub mod config;
pub mod leader;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod page;
pub mod replica;
pub mod reply;
pub mod report;
pub mod run;
pub mod run_now;
pub mod served;
pub mod server;
pub mod status;
pub mod store;
