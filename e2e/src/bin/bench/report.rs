//! What a scenario hands back: its setup in words, rows for the table, raw figures for JSON.

use serde_json::{Value, json};

/// One line of a scenario's table.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub ours: String,
    /// Ours against a baseline measured in the same run (machine-independent), if any.
    pub baseline: String,
    pub peer: String,
    /// Ours divided by the peer's figure.
    pub vs_peer: String,
}

impl Row {
    pub fn new(figure: impl Into<String>, ours: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            ours: ours.into(),
            baseline: String::new(),
            peer: String::new(),
            vs_peer: String::new(),
        }
    }

    pub fn baseline(mut self, text: impl Into<String>) -> Row {
        self.baseline = text.into();
        self
    }

    /// The peer's figure, and ours / theirs when both are numbers.
    pub fn peer(mut self, peer: impl Into<String>, ours: f64, theirs: f64) -> Row {
        self.peer = peer.into();
        if ours.is_finite() && theirs.is_finite() && theirs != 0.0 {
            self.vs_peer = format!("{:.2}x", ours / theirs);
        }
        self
    }

    /// Text in the peer's cell (cut to its first 60 characters; the raw figures keep it whole).
    pub fn peer_text(mut self, peer: impl Into<String>) -> Row {
        let text: String = peer.into();
        self.peer = if text.chars().count() > 60 {
            format!("{}...", text.chars().take(60).collect::<String>())
        } else {
            text
        };
        self
    }
}

/// A scenario's result.
#[derive(Debug, Clone)]
pub struct Section {
    pub key: &'static str,
    pub title: String,
    pub setup: Vec<String>,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub raw: Value,
}

impl Section {
    pub fn new(key: &'static str, title: impl Into<String>) -> Section {
        Section {
            key,
            title: title.into(),
            setup: Vec::new(),
            rows: Vec::new(),
            notes: Vec::new(),
            raw: json!({}),
        }
    }

    /// The table in Markdown (it reads as plain text too).
    pub fn render(&self, peer_name: &str) -> String {
        let mut out = format!("### {}\n\n", self.title);
        for line in &self.setup {
            out.push_str(&format!("Setup: {line}\n"));
        }
        out.push('\n');
        let with_peer = self.rows.iter().any(|r| !r.peer.is_empty());
        let with_baseline = self.rows.iter().any(|r| !r.baseline.is_empty());
        let mut header = vec!["figure".to_string(), "kuberhealthy-rs".to_string()];
        if with_baseline {
            header.push("vs baseline (same run)".into());
        }
        if with_peer {
            header.push(peer_name.to_string());
            header.push("rs / peer".into());
        }
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let mut cells = vec![r.figure.clone(), r.ours.clone()];
                if with_baseline {
                    cells.push(r.baseline.clone());
                }
                if with_peer {
                    cells.push(r.peer.clone());
                    cells.push(r.vs_peer.clone());
                }
                cells
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].chars().count())
                    .chain([header[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| -> String {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        out.push_str(&line(&header));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&line(&rule));
        for r in &rows {
            out.push_str(&line(r));
        }
        for note in &self.notes {
            out.push_str(&format!("\nNote: {note}\n"));
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "title": self.title,
            "setup": self.setup,
            "notes": self.notes,
            "rows": self.rows.iter().map(|r| json!({
                "figure": r.figure,
                "kuberhealthy_rs": r.ours,
                "vs_baseline": r.baseline,
                "peer": r.peer,
                "rs_over_peer": r.vs_peer,
            })).collect::<Vec<_>>(),
            "raw": self.raw,
        })
    }
}

/// `12.3` with one decimal, or `n/a`.
pub fn f1(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "n/a".into()
    }
}

pub fn f2(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "n/a".into()
    }
}

pub fn f0(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "n/a".into()
    }
}

/// `a / b` as a ratio cell, or `n/a` when either is missing or `b` is zero.
pub fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "n/a".into()
    }
}
