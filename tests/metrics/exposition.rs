//! The `/metrics` text: golden, and accepted by `promtool check metrics`.

use kuberhealthy::controller::status::NextTurn;
use std::io::Write;
use std::process::{Command, Stdio};

use kuberhealthy::controller::config::PromMetricsConfig;

use crate::{fixture, tools};

/// Runs `promtool check metrics` on `text`; returns its complaints, empty when clean.
fn promtool_findings(text: &str) -> String {
    let mut child = Command::new(tools::require("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("run promtool");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        findings
    } else {
        format!("promtool exited with {}: {findings}", out.status)
    }
}

#[test]
fn golden_exposition() {
    let metrics = fixture::metrics(PromMetricsConfig::default(), None);
    insta::assert_snapshot!(metrics.exposition().unwrap());
}

/// v2's gauges list HealthChecks among the checks (`check="namespace/name"`, and
/// `namespace/name (HealthCheck)` beside a KuberhealthyCheck of that name); v3's families list
/// them as v3 does (`check` the bare name, `severity` and `category` from the HealthCheck's
/// labels), with v3's run duration histogram.
#[test]
fn golden_exposition_with_healthchecks() {
    let text = fixture::healthcheck_metrics().exposition().unwrap();
    let findings = promtool_findings(&text);
    assert!(findings.is_empty(), "{findings}\n--- text ---\n{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn golden_exposition_with_a_truncated_error_label() {
    let prom = PromMetricsConfig {
        suppress_error_label: false,
        error_label_max_length: 24,
    };
    let text = fixture::metrics(prom, None).exposition().unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("kuberhealthy_check{"))
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn promtool_finds_nothing_to_complain_about() {
    for prom in [
        PromMetricsConfig::default(),
        PromMetricsConfig {
            suppress_error_label: true,
            error_label_max_length: 0,
        },
        PromMetricsConfig {
            suppress_error_label: false,
            error_label_max_length: 7,
        },
    ] {
        let text = fixture::metrics(prom.clone(), None).exposition().unwrap();
        let findings = promtool_findings(&text);
        assert!(
            findings.is_empty(),
            "promtool check metrics with {prom:?}:\n{findings}\n--- text ---\n{text}"
        );
    }
}

#[test]
fn any_error_string_still_gives_valid_exposition() {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kuberhealthy::controller::metrics::{Metrics, MetricsSettings, MetricsSources};

    let nasty = [
        r#"quote " backslash \ brace } equals = comma , pipe |"#,
        "line feed\ncarriage return\r\ntab\tnul\0end",
        "unicode: é € 😀 \u{202e}right-to-left",
        "trailing backslash \\",
        "",
    ];
    let mut page = fixture::page();
    let details = page
        .check_details
        .get_mut("kuberhealthy/deployment")
        .unwrap();
    details.errors = nasty.iter().map(|e| e.to_string()).collect();
    page.metadata = BTreeMap::new();
    let metrics = Metrics::new(
        MetricsSettings {
            prom: PromMetricsConfig::default(),
            otlp: None,
            instance: "test".into(),
        },
        MetricsSources {
            page: Arc::new(move || (page.clone(), NextTurn::default())),
            v3_page: Arc::new(|| {
                (
                    kuberhealthy::controller::status::v3::StatusPage::default(),
                    NextTurn::default(),
                )
            }),
            is_leader: Arc::new(|| false),
            changes: None,
        },
    )
    .unwrap();
    let text = metrics.exposition().unwrap();
    let findings = promtool_findings(&text);
    assert!(findings.is_empty(), "{findings}\n--- text ---\n{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with(r#"kuberhealthy_check{check="kuberhealthy/deployment""#))
        .expect("the failing check's series");
    // Quotes were made apostrophes and line breaks spaces; the backslash is escaped.
    assert!(
        line.contains(r#"error="quote ' backslash \\ brace } equals = comma , pipe ||line feed carriage return  tab"#),
        "{line}"
    );
}
