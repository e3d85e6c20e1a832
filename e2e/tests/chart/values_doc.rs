//! Every value of `values.yaml` has a row in the chart README's values table, with its
//! default as written there, and the table documents no value that does not exist.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::chart_dir;

/// Leaf paths of `values.yaml` (`image.tag`, `resources.requests.cpu`, ...) and their
/// defaults. Empty maps and lists are leaves.
fn leaves(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&path, child, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), value.clone());
        }
    }
}

/// How the README writes a default: `""`, `2`, `true`, `[]`, `{}`, `[ALL]`, `info`.
fn written(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(written).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) if map.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

/// The rows of the table in the README's `## Values` section: `| `path` | `default` | what |`.
fn documented(readme: &str) -> BTreeMap<String, String> {
    readme
        .lines()
        .skip_while(|line| line.trim() != "## Values")
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').collect();
            let path = cells.first()?.trim().strip_prefix('`')?.strip_suffix('`')?;
            let default = cells.get(1)?.trim();
            let default = default
                .strip_prefix('`')
                .and_then(|d| d.strip_suffix('`'))
                .unwrap_or(default);
            Some((path.to_string(), default.to_string()))
        })
        .collect()
}

#[test]
fn every_value_is_documented_with_its_default() {
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap())
            .unwrap();
    let mut defaults = BTreeMap::new();
    leaves("", &values, &mut defaults);
    let readme = std::fs::read_to_string(chart_dir().join("README.md"))
        .expect("charts/kuberhealthy/README.md");
    let table = documented(&readme);

    let missing: Vec<&String> = defaults
        .keys()
        .filter(|k| !table.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "values without a row in the README's values table: {missing:?}"
    );
    let stale: Vec<&String> = table
        .keys()
        .filter(|k| !defaults.contains_key(*k))
        .collect();
    assert!(
        stale.is_empty(),
        "the README documents values that values.yaml does not have: {stale:?}"
    );
    let wrong: Vec<String> = defaults
        .iter()
        .filter(|(path, value)| table[*path] != written(value))
        .map(|(path, value)| {
            format!(
                "{path}: README says {:?}, values.yaml has {:?}",
                table[path],
                written(value)
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "defaults that disagree:\n{}",
        wrong.join("\n")
    );
}
