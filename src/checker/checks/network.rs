//! `network-connection`: v2's network-connection-check. Dials `CONNECTION_TARGET`
//! (`tcp://host:port` or `udp://host:port`); with `CONNECTION_TARGET_UNREACHABLE=true` the
//! target must not be reachable (e.g. a cloud metadata address from a workload namespace).
//! As in v2 (Go's `net.Dial`), a UDP "dial" resolves the address and connects a socket;
//! it sends nothing.

use std::time::Duration;

use super::Outcome;
use super::knobs::Knobs;
use crate::api::duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub target: String,
    pub protocol: Protocol,
    /// `host:port`.
    pub address: String,
    pub unreachable: bool,
}

impl Config {
    pub fn read(knobs: &mut Knobs) -> Config {
        let target = knobs.required("CONNECTION_TARGET", "tcp://host:port or udp://host:port");
        let unreachable = knobs.flag("CONNECTION_TARGET_UNREACHABLE", false);
        let parsed = if let Some(rest) = target.strip_prefix("tcp://") {
            Some((Protocol::Tcp, rest))
        } else {
            target
                .strip_prefix("udp://")
                .map(|rest| (Protocol::Udp, rest))
        };
        let (protocol, address) = match parsed {
            Some((p, a)) if has_port(a) => (p, a.to_string()),
            _ => {
                if !target.is_empty() {
                    knobs.invalid(format!(
                        "CONNECTION_TARGET is {target:?}, expected tcp://host:port or udp://host:port"
                    ));
                }
                (Protocol::Tcp, String::new())
            }
        };
        Config {
            target,
            protocol,
            address,
            unreachable,
        }
    }
}

fn has_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// Passes when the dial's result is what the config expects.
pub fn evaluate(config: &Config, dial: Result<(), String>) -> Outcome {
    match (dial, config.unreachable) {
        (Ok(()), false) | (Err(_), true) => Ok(()),
        (Err(e), false) => Err(vec![format!("{} is unreachable: {e}", config.target)]),
        (Ok(()), true) => Err(vec![format!(
            "{} is reachable, but CONNECTION_TARGET_UNREACHABLE=true says it must not be",
            config.target
        )]),
    }
}

pub async fn dial(config: &Config, limit: Duration) -> Result<(), String> {
    let attempt = async {
        match config.protocol {
            Protocol::Tcp => tokio::net::TcpStream::connect(&config.address)
                .await
                .map(drop),
            Protocol::Udp => {
                let addr = tokio::net::lookup_host(&config.address)
                    .await?
                    .next()
                    .ok_or_else(|| std::io::Error::other("the name resolved to no address"))?;
                let local = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let socket = tokio::net::UdpSocket::bind(local).await?;
                socket.connect(addr).await
            }
        }
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no connection within {}", duration::format(limit))),
    }
}

pub async fn run(mut knobs: Knobs, time_left: Duration) -> Outcome {
    let config = Config::read(&mut knobs);
    knobs.finish()?;
    let result = dial(&config, time_left).await;
    evaluate(&config, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let mut k = Knobs::from_pairs(pairs);
        let c = Config::read(&mut k);
        k.finish().map(|()| c)
    }

    #[test]
    fn targets_are_tcp_or_udp_with_a_port() {
        let c = config(&[("CONNECTION_TARGET", "udp://10.0.0.1:53")]).unwrap();
        assert_eq!(
            (c.protocol, c.address.as_str()),
            (Protocol::Udp, "10.0.0.1:53")
        );
        let c = config(&[("CONNECTION_TARGET", "tcp://[::1]:443")]).unwrap();
        assert_eq!(
            (c.protocol, c.address.as_str()),
            (Protocol::Tcp, "[::1]:443")
        );
        for bad in [
            "http://x:80",
            "tcp://x",
            "tcp://:80",
            "tcp://x:99999",
            "x:80",
        ] {
            assert_eq!(
                config(&[("CONNECTION_TARGET", bad)]).unwrap_err(),
                [format!(
                    "CONNECTION_TARGET is {bad:?}, expected tcp://host:port or udp://host:port"
                )]
            );
        }
        assert_eq!(
            config(&[("CONNECTION_TARGET_UNREACHABLE", "maybe")]).unwrap_err(),
            [
                "CONNECTION_TARGET is not set, expected tcp://host:port or udp://host:port",
                "CONNECTION_TARGET_UNREACHABLE is \"maybe\", expected true or false",
            ]
        );
    }

    #[test]
    fn unreachable_inverts_the_verdict() {
        let reach = config(&[("CONNECTION_TARGET", "tcp://a:1")]).unwrap();
        let not = config(&[
            ("CONNECTION_TARGET", "tcp://a:1"),
            ("CONNECTION_TARGET_UNREACHABLE", "true"),
        ])
        .unwrap();
        assert_eq!(evaluate(&reach, Ok(())), Ok(()));
        assert_eq!(
            evaluate(&reach, Err("connection refused".into())).unwrap_err(),
            ["tcp://a:1 is unreachable: connection refused"]
        );
        assert_eq!(evaluate(&not, Err("timed out".into())), Ok(()));
        assert_eq!(
            evaluate(&not, Ok(())).unwrap_err(),
            ["tcp://a:1 is reachable, but CONNECTION_TARGET_UNREACHABLE=true says it must not be"]
        );
    }
}
