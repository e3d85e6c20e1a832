//! Reading Prometheus text exposition (the API server's and the replicas' `/metrics`).

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses every sample line, skipping comments and blank lines.
pub fn parse(text: &str) -> Result<Vec<Sample>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_line(line).ok_or_else(|| anyhow!("malformed metrics line: {line:?}")))
        .collect()
}

/// Sum of the samples named `name` whose labels include every `(label, value)` pair,
/// e.g. `sum(&samples, "apiserver_request_total", &[("verb", "WATCH"), ("resource", "pods")])`.
pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .map(|s| s.value)
        .sum()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let (labels, rest) = parse_labels(&line[open + 1..])?;
            (&line[..open], labels, rest)
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, BTreeMap::new(), rest)
        }
    };
    // A timestamp may follow the value.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

/// Parses `k="v",k2="v2"}` and returns the labels and what follows the closing brace.
fn parse_labels(input: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = input;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after_key) = rest.split_once('=')?;
        let mut chars = after_key.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim().to_string(), value);
        rest = &after_key[1 + end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 4
apiserver_request_total{code="0",component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 1
weird{msg="a \"quoted\", comma\\ and\nnewline"} 1.5e3 1700000000
plain_gauge 7
inf_bucket{le="+Inf"} +Inf
"#;

    #[test]
    fn sums_by_labels() {
        let samples = parse(TEXT).unwrap();
        assert_eq!(
            sum(
                &samples,
                "apiserver_request_total",
                &[("verb", "LIST"), ("resource", "pods")]
            ),
            7.0
        );
        assert_eq!(
            sum(&samples, "apiserver_request_total", &[("resource", "pods")]),
            9.0
        );
        assert_eq!(
            sum(&samples, "apiserver_request_total", &[("verb", "DELETE")]),
            0.0
        );
        assert_eq!(sum(&samples, "plain_gauge", &[]), 7.0);
    }

    #[test]
    fn handles_escapes_timestamps_and_infinity() {
        let samples = parse(TEXT).unwrap();
        let weird = samples.iter().find(|s| s.name == "weird").unwrap();
        assert_eq!(weird.labels["msg"], "a \"quoted\", comma\\ and\nnewline");
        assert_eq!(weird.value, 1500.0);
        let inf = samples.iter().find(|s| s.name == "inf_bucket").unwrap();
        assert_eq!(inf.labels["le"], "+Inf");
        assert!(inf.value.is_infinite());
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(parse("metric_without_value").is_err());
        assert!(parse("m{a=\"unterminated} 1").is_err());
    }
}
