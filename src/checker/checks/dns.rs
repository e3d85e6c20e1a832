//! `dns-status`: v2's dns-resolution-check, resolving `HOSTNAME` with the pod's resolver
//! (getaddrinfo, as the pod's own programs do). `NODE_NAME` (set from `spec.nodeName`) only
//! names the node in the error.

use std::net::IpAddr;
use std::time::Duration;

use super::Outcome;
use super::knobs::Knobs;
use crate::api::duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub hostname: String,
    pub node: Option<String>,
}

impl Config {
    pub fn read(knobs: &mut Knobs) -> Config {
        Config {
            hostname: knobs.string("HOSTNAME", "kubernetes.default"),
            node: knobs.raw("NODE_NAME"),
        }
    }

    fn on_node(&self) -> String {
        match &self.node {
            Some(n) => format!(" on node {n}"),
            None => String::new(),
        }
    }
}

/// Passes when the lookup found at least one address.
pub fn evaluate(config: &Config, lookup: Result<Vec<IpAddr>, String>) -> Outcome {
    match lookup {
        Ok(addresses) if !addresses.is_empty() => Ok(()),
        Ok(_) => Err(vec![format!(
            "DNS lookup of {}{} returned no address",
            config.hostname,
            config.on_node()
        )]),
        Err(e) => Err(vec![format!(
            "DNS lookup of {}{} failed: {e}",
            config.hostname,
            config.on_node()
        )]),
    }
}

pub async fn resolve(hostname: &str, limit: Duration) -> Result<Vec<IpAddr>, String> {
    match tokio::time::timeout(limit, tokio::net::lookup_host((hostname, 0))).await {
        Ok(Ok(addresses)) => Ok(addresses.map(|a| a.ip()).collect()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}", duration::format(limit))),
    }
}

pub async fn run(mut knobs: Knobs, time_left: Duration) -> Outcome {
    let config = Config::read(&mut knobs);
    knobs.finish()?;
    let lookup = resolve(&config.hostname, time_left).await;
    evaluate(&config, lookup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_messages() {
        let mut k = Knobs::from_pairs(&[]);
        let c = Config::read(&mut k);
        assert_eq!(c.hostname, "kubernetes.default");
        let c = Config {
            hostname: "svc.example".into(),
            node: Some("node-1".into()),
        };
        assert_eq!(evaluate(&c, Ok(vec!["10.0.0.1".parse().unwrap()])), Ok(()));
        assert_eq!(
            evaluate(&c, Ok(vec![])).unwrap_err(),
            ["DNS lookup of svc.example on node node-1 returned no address"]
        );
        assert_eq!(
            evaluate(&c, Err("no such host".into())).unwrap_err(),
            ["DNS lookup of svc.example on node node-1 failed: no such host"]
        );
    }

    #[tokio::test]
    async fn localhost_resolves() {
        let addresses = resolve("localhost", Duration::from_secs(10)).await.unwrap();
        assert!(addresses.iter().any(|a| a.is_loopback()), "{addresses:?}");
    }
}
