//! Free TCP ports.

use std::net::{Ipv4Addr, TcpListener};

use anyhow::{Context, Result};

/// A port of `ip` that was free a moment ago: bound to port 0, read back, released. Another
/// process could take it in between; callers that start servers retry on a clash.
pub fn free_port(ip: Ipv4Addr) -> Result<u16> {
    let listener = TcpListener::bind((ip, 0))
        .with_context(|| format!("binding {ip}:0 to find a free port"))?;
    Ok(listener.local_addr()?.port())
}
