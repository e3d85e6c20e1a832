//! Requests the API server served, from its own `apiserver_request_total`, by verb and
//! resource; a delta of two snapshots says what a window cost.

use std::collections::BTreeMap;

use anyhow::Result;
use kuberhealthy_e2e::{ControlPlane, metrics};
use serde_json::{Value, json};

/// Request counts keyed by (verb, resource[/subresource]); non-resource requests (the
/// bench's own reads of `/metrics`, health probes) are left out.
#[derive(Debug, Clone, Default)]
pub struct Requests(pub BTreeMap<(String, String), f64>);

pub async fn snapshot(plane: &ControlPlane) -> Result<Requests> {
    let text = plane.apiserver_metrics().await?;
    let mut counts = BTreeMap::new();
    for sample in metrics::parse(&text)? {
        if sample.name != "apiserver_request_total" {
            continue;
        }
        let resource = sample.labels.get("resource").cloned().unwrap_or_default();
        if resource.is_empty() {
            continue;
        }
        let resource = match sample.labels.get("subresource").map(String::as_str) {
            Some(sub) if !sub.is_empty() => format!("{resource}/{sub}"),
            _ => resource,
        };
        let verb = sample.labels.get("verb").cloned().unwrap_or_default();
        *counts.entry((verb, resource)).or_insert(0.0) += sample.value;
    }
    Ok(Requests(counts))
}

impl Requests {
    /// `self - before`, keeping the non-zero entries.
    pub fn since(&self, before: &Requests) -> Requests {
        Requests(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v - before.0.get(k).copied().unwrap_or(0.0)))
                .filter(|(_, v)| *v > 0.0)
                .collect(),
        )
    }

    pub fn total(&self) -> f64 {
        self.0.values().sum()
    }

    /// Sum by verb.
    pub fn by_verb(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for ((verb, _), v) in &self.0 {
            *out.entry(verb.clone()).or_insert(0.0) += v;
        }
        out
    }

    /// Only the entries `keep` accepts.
    pub fn filter(&self, keep: impl Fn(&str, &str) -> bool) -> Requests {
        Requests(
            self.0
                .iter()
                .filter(|((verb, resource), _)| keep(verb, resource))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        )
    }

    pub fn to_json(&self) -> Value {
        let entries: serde_json::Map<String, Value> = self
            .0
            .iter()
            .map(|((verb, resource), v)| (format!("{verb} {resource}"), json!(v)))
            .collect();
        Value::Object(entries)
    }
}
