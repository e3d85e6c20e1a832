//! `resource-quota`: v2's resource-quota-check. Fails for every ResourceQuota whose CPU or
//! memory use has reached `THRESHOLD` of its hard limit, in the namespaces selected by
//! `WHITELIST` (v2 default `kube-system,kuberhealthy`; `*` means every namespace) less those
//! in `BLACKLIST` (v2 default `default`).

use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{Api, ListParams};

use super::Outcome;
use super::knobs::Knobs;
use crate::api::access::Rule;

pub const RULES: &[Rule] = &[Rule {
    group: "",
    resources: &["resourcequotas"],
    verbs: &["list"],
    why: "the used and hard amounts of ResourceQuotas",
}];

/// The quota resources compared: CPU and memory, however the quota names them.
pub const RESOURCES: &[&str] = &[
    "cpu",
    "requests.cpu",
    "limits.cpu",
    "memory",
    "requests.memory",
    "limits.memory",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `None`: every namespace.
    pub whitelist: Option<Vec<String>>,
    pub blacklist: Vec<String>,
    pub threshold: f64,
}

impl Config {
    pub fn read(knobs: &mut Knobs) -> Config {
        let whitelist = knobs.list("WHITELIST", &["kube-system", "kuberhealthy"]);
        let whitelist = (!whitelist.iter().any(|n| n == "*")).then_some(whitelist);
        Config {
            whitelist,
            blacklist: knobs.list("BLACKLIST", &["default"]),
            threshold: knobs.number("THRESHOLD", 0.9, 0.0, 1.0),
        }
    }

    pub fn includes(&self, namespace: &str) -> bool {
        self.whitelist
            .as_ref()
            .is_none_or(|w| w.iter().any(|n| n == namespace))
            && !self.blacklist.iter().any(|n| n == namespace)
    }
}

/// Parses a Kubernetes quantity (`500m`, `2`, `1.5Gi`, `1e3`, `128974848`) into a number.
pub fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let suffixes: &[(&str, f64)] = &[
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, factor) = suffixes
        .iter()
        .find_map(|(s, f)| text.strip_suffix(s).map(|n| (n, *f)))
        .unwrap_or((text, 1.0));
    if number.is_empty() {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    value.is_finite().then_some(value * factor)
}

/// What the check needs of a quota: its namespace and name, and per resource used and hard.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaSeen {
    pub namespace: String,
    pub name: String,
    /// (resource, used, hard) as written in the status.
    pub amounts: Vec<(String, String, String)>,
}

impl QuotaSeen {
    pub fn from_quota(q: &ResourceQuota) -> QuotaSeen {
        let status = q.status.clone().unwrap_or_default();
        let hard = status.hard.unwrap_or_default();
        let used = status.used.unwrap_or_default();
        let amounts = RESOURCES
            .iter()
            .filter_map(|r| {
                let hard = hard.get(*r)?;
                let used = used.get(*r).map(|u| u.0.clone()).unwrap_or("0".into());
                Some((r.to_string(), used, hard.0.clone()))
            })
            .collect();
        QuotaSeen {
            namespace: q.metadata.namespace.clone().unwrap_or_default(),
            name: q.metadata.name.clone().unwrap_or_default(),
            amounts,
        }
    }
}

/// One message per resource of a quota at or over the threshold (quotas of excluded
/// namespaces and hard limits of zero are skipped).
pub fn evaluate(config: &Config, quotas: &[QuotaSeen]) -> Outcome {
    let mut errors = Vec::new();
    for q in quotas.iter().filter(|q| config.includes(&q.namespace)) {
        for (resource, used_text, hard_text) in &q.amounts {
            let (Some(used), Some(hard)) = (quantity(used_text), quantity(hard_text)) else {
                errors.push(format!(
                    "ResourceQuota {} in namespace {}: cannot read {resource} used {used_text:?} of hard {hard_text:?}",
                    q.name, q.namespace
                ));
                continue;
            };
            if hard <= 0.0 {
                continue;
            }
            let ratio = used / hard;
            if ratio >= config.threshold {
                errors.push(format!(
                    "ResourceQuota {} in namespace {}: {resource} is {:.1}% used ({used_text} of {hard_text}), at or over THRESHOLD {}",
                    q.name,
                    q.namespace,
                    ratio * 100.0,
                    config.threshold
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

pub async fn run(mut knobs: Knobs, _time_left: Duration) -> Outcome {
    let config = Config::read(&mut knobs);
    knobs.finish()?;
    let seen = observe(super::kube_client().await?, &config).await?;
    evaluate(&config, &seen)
}

/// Lists the quotas of each whitelisted namespace, or of all namespaces for `*`.
pub async fn observe(client: kube::Client, config: &Config) -> Result<Vec<QuotaSeen>, Vec<String>> {
    let lp = ListParams::default();
    let mut quotas = Vec::new();
    match &config.whitelist {
        Some(namespaces) => {
            for ns in namespaces.iter().filter(|ns| config.includes(ns)) {
                let api: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
                let list = api
                    .list(&lp)
                    .await
                    .map_err(|e| super::kube_error("list resourcequotas", &Some(ns.clone()), e))?;
                quotas.extend(list.items);
            }
        }
        None => {
            let api: Api<ResourceQuota> = Api::all(client);
            let list = api
                .list(&lp)
                .await
                .map_err(|e| super::kube_error("list resourcequotas", &None, e))?;
            quotas.extend(list.items);
        }
    }
    Ok(quotas.iter().map(QuotaSeen::from_quota).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut k = Knobs::from_pairs(pairs);
        let c = Config::read(&mut k);
        k.finish().unwrap();
        c
    }

    fn quota(ns: &str, resource: &str, used: &str, hard: &str) -> QuotaSeen {
        QuotaSeen {
            namespace: ns.into(),
            name: "compute".into(),
            amounts: vec![(resource.into(), used.into(), hard.into())],
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("2"), Some(2.0));
        assert_eq!(quantity("1Gi"), Some(1024f64.powi(3)));
        assert_eq!(quantity("1.5k"), Some(1500.0));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("128974848"), Some(128_974_848.0));
        assert_eq!(quantity("Gi"), None);
        assert_eq!(quantity("lots"), None);
    }

    #[test]
    fn usage_around_the_threshold() {
        let c = config(&[("WHITELIST", "*"), ("THRESHOLD", "0.9")]);
        assert_eq!(
            evaluate(&c, &[quota("a", "limits.cpu", "1790m", "2")]),
            Ok(())
        );
        assert_eq!(
            evaluate(&c, &[quota("a", "limits.cpu", "1800m", "2")]).unwrap_err(),
            [
                "ResourceQuota compute in namespace a: limits.cpu is 90.0% used (1800m of 2), at or over THRESHOLD 0.9"
            ]
        );
        assert_eq!(
            evaluate(&c, &[quota("a", "memory", "1Gi", "1Gi")]).unwrap_err(),
            [
                "ResourceQuota compute in namespace a: memory is 100.0% used (1Gi of 1Gi), at or over THRESHOLD 0.9"
            ]
        );
        assert_eq!(evaluate(&c, &[quota("a", "memory", "0", "0")]), Ok(()));
    }

    #[test]
    fn namespaces_are_whitelisted_then_blacklisted() {
        let c = config(&[]);
        assert_eq!(c.threshold, 0.9);
        assert!(c.includes("kube-system") && c.includes("kuberhealthy"));
        assert!(!c.includes("default") && !c.includes("shop"));
        let full = quota("shop", "cpu", "2", "2");
        assert_eq!(evaluate(&c, std::slice::from_ref(&full)), Ok(()));
        let all = config(&[("WHITELIST", "*")]);
        assert!(evaluate(&all, &[full]).is_err());
        assert!(!all.includes("default"));
        let c = config(&[("WHITELIST", "shop,default"), ("BLACKLIST", "default")]);
        assert!(c.includes("shop") && !c.includes("default"));
    }

    #[test]
    fn bad_knobs_name_the_variable() {
        let mut k = Knobs::from_pairs(&[("THRESHOLD", "90%")]);
        Config::read(&mut k);
        assert_eq!(
            k.finish().unwrap_err(),
            ["THRESHOLD is \"90%\", expected a number from 0 to 1"]
        );
    }
}
