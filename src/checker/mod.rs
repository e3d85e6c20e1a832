//! What runs in checker pods: the built-in checks (`kuberhealthy check <name>`) and the
//! check client (`kuberhealthy report`, [`client::Reporter`]).

pub mod checks;
pub mod client;
