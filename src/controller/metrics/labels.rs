//! Label values of v2's per-check and per-job series, built from a status page entry.

use opentelemetry::KeyValue;

use crate::api::duration;
use crate::controller::config::PromMetricsConfig;
use crate::controller::status::WorkloadDetails;

/// v2's `error` label: the errors joined by `|`, with `"` made `'` (as v2 did) and line breaks
/// made spaces (v2 let them break the scrape), cut to `errorLabelMaxLength` bytes when that is
/// above zero. `None` when `suppressErrorLabel` is set: the label is then left off entirely.
pub fn error_label(errors: &[String], config: &PromMetricsConfig) -> Option<String> {
    if config.suppress_error_label {
        return None;
    }
    let mut label = errors
        .join("|")
        .replace('"', "'")
        .replace(['\n', '\r'], " ");
    if config.error_label_max_length > 0 {
        truncate_on_char_boundary(&mut label, config.error_label_max_length);
    }
    Some(label)
}

/// Cuts `s` to at most `max_bytes`, backing off to a character boundary so the value stays UTF-8.
pub fn truncate_on_char_boundary(s: &mut String, max_bytes: usize) {
    if s.len() <= max_bytes {
        return;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

/// The namespace label: the entry's own, or the one in its `namespace/name` key.
fn namespace_of<'a>(key: &'a str, details: &'a WorkloadDetails) -> &'a str {
    if details.namespace.is_empty() {
        key.split_once('/').map_or("", |(ns, _)| ns)
    } else {
        &details.namespace
    }
}

/// Labels of `kuberhealthy_check` and `kuberhealthy_job`: `check`, `error` unless suppressed,
/// `namespace`, `status`. Every series' labels are given sorted by name: the SDK keeps a
/// second, sorted copy of any other order, per series.
pub fn status_attributes(
    key: &str,
    details: &WorkloadDetails,
    config: &PromMetricsConfig,
) -> Vec<KeyValue> {
    let mut attributes = vec![KeyValue::new("check", key.to_string())];
    if let Some(error) = error_label(&details.errors, config) {
        attributes.push(KeyValue::new("error", error));
    }
    attributes.push(KeyValue::new(
        "namespace",
        namespace_of(key, details).to_string(),
    ));
    attributes.push(KeyValue::new("status", if details.ok { "1" } else { "0" }));
    attributes
}

/// Labels of `kuberhealthy_check_duration_seconds` and `kuberhealthy_job_duration_seconds`.
pub fn duration_attributes(key: &str, details: &WorkloadDetails) -> Vec<KeyValue> {
    vec![
        KeyValue::new("check", key.to_string()),
        KeyValue::new("namespace", namespace_of(key, details).to_string()),
    ]
}

/// `RunDuration` in seconds. Blank (no run finished yet) and unreadable values are 0, as in v2,
/// so the series exists for every check the page lists.
pub fn duration_seconds(key: &str, run_duration: &str) -> f64 {
    if run_duration.is_empty() {
        return 0.0;
    }
    match duration::parse(run_duration) {
        Ok(d) => d.as_secs_f64(),
        Err(error) => {
            // Debug only: this runs on every scrape, and v2's error log here flooded users.
            tracing::debug!(check = key, run_duration, %error, "unreadable RunDuration; exported as 0");
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(suppress: bool, max: usize) -> PromMetricsConfig {
        PromMetricsConfig {
            suppress_error_label: suppress,
            error_label_max_length: max,
        }
    }

    fn errors(list: &[&str]) -> Vec<String> {
        list.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn errors_are_joined_with_a_pipe() {
        let label = error_label(&errors(&["first", "second", "third"]), &config(false, 0));
        assert_eq!(label.as_deref(), Some("first|second|third"));
    }

    #[test]
    fn no_errors_give_an_empty_label_as_in_v2() {
        assert_eq!(error_label(&[], &config(false, 0)).as_deref(), Some(""));
    }

    #[test]
    fn quotes_become_apostrophes_and_line_breaks_spaces() {
        let label = error_label(
            &errors(&["pod \"x\" failed", "line one\nline two\r\nend"]),
            &config(false, 0),
        );
        assert_eq!(
            label.as_deref(),
            Some("pod 'x' failed|line one line two  end")
        );
    }

    #[test]
    fn backslashes_are_kept_for_the_encoder_to_escape() {
        let label = error_label(&errors(&[r"C:\path"]), &config(false, 0));
        assert_eq!(label.as_deref(), Some(r"C:\path"));
    }

    #[test]
    fn suppression_leaves_the_label_off_whatever_the_errors() {
        assert_eq!(error_label(&errors(&["boom"]), &config(true, 0)), None);
        assert_eq!(error_label(&[], &config(true, 5)), None);
    }

    #[test]
    fn zero_max_length_means_no_limit() {
        let long = "x".repeat(10_000);
        let label = error_label(&errors(&[&long]), &config(false, 0)).unwrap();
        assert_eq!(label.len(), 10_000);
    }

    #[test]
    fn truncation_boundaries() {
        let e = errors(&["abcde"]);
        // At the limit and one above: untouched; one below: cut.
        assert_eq!(error_label(&e, &config(false, 5)).as_deref(), Some("abcde"));
        assert_eq!(error_label(&e, &config(false, 6)).as_deref(), Some("abcde"));
        assert_eq!(error_label(&e, &config(false, 4)).as_deref(), Some("abcd"));
        assert_eq!(error_label(&e, &config(false, 1)).as_deref(), Some("a"));
    }

    #[test]
    fn truncation_counts_the_joined_and_sanitised_value() {
        let label = error_label(&errors(&["ab", "\"cd"]), &config(false, 4)).unwrap();
        assert_eq!(label, "ab|'");
    }

    #[test]
    fn truncation_backs_off_to_a_char_boundary() {
        // "é" is two bytes (1..3), "€" three (3..6).
        let e = errors(&["aé€"]);
        assert_eq!(error_label(&e, &config(false, 6)).as_deref(), Some("aé€"));
        assert_eq!(error_label(&e, &config(false, 5)).as_deref(), Some("aé"));
        assert_eq!(error_label(&e, &config(false, 4)).as_deref(), Some("aé"));
        assert_eq!(error_label(&e, &config(false, 3)).as_deref(), Some("aé"));
        assert_eq!(error_label(&e, &config(false, 2)).as_deref(), Some("a"));
        // No whole character fits: empty, never a broken one.
        let mut s = "€".to_string();
        truncate_on_char_boundary(&mut s, 2);
        assert_eq!(s, "");
    }

    fn details(namespace: &str, ok: bool, errors: &[&str], run_duration: &str) -> WorkloadDetails {
        WorkloadDetails {
            ok,
            errors: errors.iter().map(|e| e.to_string()).collect(),
            run_duration: run_duration.to_string(),
            namespace: namespace.to_string(),
            ..Default::default()
        }
    }

    fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
        attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect()
    }

    #[test]
    fn status_attributes_follow_v2() {
        let d = details("team-a", false, &["one", "two"], "1s");
        assert_eq!(
            pairs(&status_attributes("team-a/dns", &d, &config(false, 0))),
            // Sorted by name: the SDK would keep a sorted copy of any other order.
            [
                ("check", "team-a/dns"),
                ("error", "one|two"),
                ("namespace", "team-a"),
                ("status", "0"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let ok = details("team-a", true, &[], "1s");
        let suppressed = pairs(&status_attributes("team-a/dns", &ok, &config(true, 0)));
        assert_eq!(suppressed.len(), 3);
        assert_eq!(suppressed[2], ("status".to_string(), "1".to_string()));
    }

    #[test]
    fn a_blank_namespace_comes_from_the_key() {
        let d = details("", true, &[], "");
        assert_eq!(
            pairs(&duration_attributes("team-b/pvc", &d)),
            [("check", "team-b/pvc"), ("namespace", "team-b")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn durations_in_seconds() {
        assert_eq!(duration_seconds("k", "3.359431829s"), 3.359431829);
        assert_eq!(duration_seconds("k", "1m30s"), 90.0);
        assert_eq!(duration_seconds("k", "250ms"), 0.25);
        assert_eq!(duration_seconds("k", ""), 0.0);
        assert_eq!(duration_seconds("k", "soon"), 0.0);
        assert_eq!(duration_seconds("k", "-1s"), 0.0);
    }
}
