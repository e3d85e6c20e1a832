//! Measured figures: summaries, a printed table and JSON under `target/e2e-figures/`.

use std::time::Duration;

use anyhow::{Context, Result};
use kuberhealthy_e2e::session::workspace_root;
use serde_json::{Value, json};

/// Median, maximum and minimum of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub median_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
}

pub fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e4).round() / 10.0
}

pub fn summarize(values_ms: &[f64]) -> Summary {
    let mut sorted = values_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    Summary {
        count: n,
        median_ms: median,
        max_ms: sorted.last().copied().unwrap_or(f64::NAN),
        min_ms: sorted.first().copied().unwrap_or(f64::NAN),
    }
}

impl Summary {
    pub fn to_json(self) -> Value {
        json!({
            "count": self.count,
            "median_ms": self.median_ms,
            "max_ms": self.max_ms,
            "min_ms": self.min_ms,
        })
    }
}

/// Writes `value` as pretty JSON to `<workspace>/target/e2e-figures/<name>.json` and
/// returns the path.
pub fn write(name: &str, value: &Value) -> Result<std::path::PathBuf> {
    let dir = workspace_root().join("target/e2e-figures");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes() {
        let s = summarize(&[300.0, 100.0, 200.0]);
        assert_eq!(
            (s.count, s.median_ms, s.max_ms, s.min_ms),
            (3, 200.0, 300.0, 100.0)
        );
        assert_eq!(summarize(&[1.0, 2.0, 3.0, 10.0]).median_ms, 2.5);
        assert_eq!(ms(Duration::from_micros(123_456)), 123.5);
    }
}
