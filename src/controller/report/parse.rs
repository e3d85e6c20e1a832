//! Parsing and validating a checker's report (pure). Keys match case-insensitively, as Go's
//! `encoding/json` does for v2 (`OK`/`ok`, `Errors`/`errors`); unknown keys are ignored; the
//! last of several keys differing only in case wins, as in Go.

use serde_json::Value;

/// The largest report body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The most error text a report may carry, so its khstate stays far below etcd's limit.
pub const MAX_ERROR_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub ok: bool,
    pub errors: Vec<String>,
}

/// Why a report body was refused; the message is sent back to the checker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "the report is not valid JSON ({0}); send {{\"OK\": true}} or {{\"OK\": false, \"Errors\": [\"what failed\"]}}"
    )]
    NotJson(String),
    #[error("the report must be a JSON object such as {{\"OK\": true}}, not {0}")]
    NotAnObject(&'static str),
    #[error("\"OK\" must be true or false, not {0}")]
    OkNotBool(String),
    #[error("\"Errors\" must be a list of strings, not {0}")]
    ErrorsNotList(String),
    #[error("\"Errors\"[{index}] must be a string, not {found}")]
    ErrorNotString { index: usize, found: String },
    #[error("\"Errors\"[{0}] is blank; every error must say what failed")]
    BlankError(usize),
    #[error(
        "a report with \"OK\": false needs at least one error in \"Errors\" saying what failed"
    )]
    FailureWithoutErrors,
    #[error("the errors of the report total {0} bytes; at most {MAX_ERROR_BYTES} are accepted")]
    ErrorsTooLarge(usize),
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 40 {
        kind(v).to_string()
    } else {
        text
    }
}

/// A JSON object's entries in document order (serde_json's map sorts its keys).
struct Entries(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(Visit)
    }
}

pub fn parse(body: &[u8]) -> Result<Report, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::NotAnObject(kind(&value)));
    }
    let Entries(entries) =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let mut ok = None;
    let mut errors = None;
    for (k, v) in entries {
        if k.eq_ignore_ascii_case("ok") {
            ok = Some(v);
        } else if k.eq_ignore_ascii_case("errors") {
            errors = Some(v);
        }
    }
    // Go decodes a missing or null field as its zero value.
    let ok = match ok {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(other) => return Err(ParseError::OkNotBool(shown(&other))),
    };
    let errors = match errors {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(s) => Ok(s),
                other => Err(ParseError::ErrorNotString {
                    index,
                    found: shown(&other),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(ParseError::ErrorsNotList(shown(&other))),
    };
    if let Some(index) = errors.iter().position(|e| e.trim().is_empty()) {
        return Err(ParseError::BlankError(index));
    }
    if !ok && errors.is_empty() {
        return Err(ParseError::FailureWithoutErrors);
    }
    let total: usize = errors.iter().map(String::len).sum();
    if total > MAX_ERROR_BYTES {
        return Err(ParseError::ErrorsTooLarge(total));
    }
    Ok(Report { ok, errors })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ok(body: &str) -> Report {
        parse(body.as_bytes()).unwrap()
    }

    fn err(body: &str) -> String {
        parse(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn accepts_v2_and_v3_shapes() {
        assert_eq!(
            ok(r#"{"OK": true}"#),
            Report {
                ok: true,
                errors: vec![]
            }
        );
        assert_eq!(
            ok(r#"{"OK": true, "Errors": []}"#),
            Report {
                ok: true,
                errors: vec![]
            }
        );
        assert_eq!(
            ok(r#"{"ok": true, "errors": [], "currentUUID": ""}"#),
            Report {
                ok: true,
                errors: vec![]
            }
        );
        assert_eq!(
            ok(r#"{"Errors": ["Error 1 here", "Error 2 here"], "OK": false}"#),
            Report {
                ok: false,
                errors: vec!["Error 1 here".into(), "Error 2 here".into()]
            }
        );
        assert_eq!(
            ok(r#"{"Ok": true, "Errors": null}"#),
            Report {
                ok: true,
                errors: vec![]
            }
        );
        // v2 accepted OK:true with errors; so does this.
        assert_eq!(ok(r#"{"OK": true, "Errors": ["warn"]}"#).errors, ["warn"]);
        // Missing OK decodes as false, as in Go.
        assert!(!ok(r#"{"Errors": ["e"]}"#).ok);
        // The last of keys differing in case wins, as in Go.
        assert!(ok(r#"{"ok": false, "OK": true}"#).ok);
    }

    #[test]
    fn every_rejection_says_why() {
        assert!(
            err("not json").starts_with(
                "the report is not valid JSON (expected ident at line 1 column 2); send"
            )
        );
        assert_eq!(
            err("[1]"),
            "the report must be a JSON object such as {\"OK\": true}, not a list"
        );
        assert_eq!(
            err(r#"{"OK": "true"}"#),
            "\"OK\" must be true or false, not \"true\""
        );
        assert_eq!(
            err(r#"{"OK": false, "Errors": "boom"}"#),
            "\"Errors\" must be a list of strings, not \"boom\""
        );
        assert_eq!(
            err(r#"{"OK": false, "Errors": ["a", 3]}"#),
            "\"Errors\"[1] must be a string, not 3"
        );
        assert_eq!(
            err(r#"{"OK": false, "Errors": ["a", "  "]}"#),
            "\"Errors\"[1] is blank; every error must say what failed"
        );
        assert_eq!(
            err(r#"{"OK": false}"#),
            "a report with \"OK\": false needs at least one error in \"Errors\" saying what failed"
        );
        assert_eq!(err(r#"{}"#), err(r#"{"OK": false, "Errors": []}"#));
        let big = format!(
            r#"{{"OK": false, "Errors": ["{}"]}}"#,
            "x".repeat(MAX_ERROR_BYTES + 1)
        );
        assert_eq!(
            err(&big),
            format!(
                "the errors of the report total {} bytes; at most 262144 are accepted",
                MAX_ERROR_BYTES + 1
            )
        );
    }

    proptest! {
        #[test]
        fn no_byte_sequence_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body);
        }

        #[test]
        fn no_json_shaped_input_panics(body in r#"\{("[oOkKeErRsS]{2,6}": ?(true|false|null|"[^"]{0,8}"|\[("[^"]{0,8}",?){0,3}\]|[0-9]{1,3}),?){0,4}\}"#) {
            let _ = parse(body.as_bytes());
        }
    }
}
