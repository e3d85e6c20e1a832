//! Parsing and validating a checker's report and its run UUID (pure). Keys match
//! case-insensitively, as Go's `encoding/json` does for v2 (`OK`/`ok`, `Errors`/`errors`);
//! unknown keys are ignored. Keys differing only in case are refused when their values
//! differ: which one wins is where decoders disagree, so the report is ambiguous.

use axum::http::{HeaderValue, StatusCode};
use serde_json::Value;

/// The largest report body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The most error text a report may carry, so its khstate stays far below etcd's limit.
pub const MAX_ERROR_BYTES: usize = 256 * 1024;
/// The longest run UUID: a run's UUID is a label value of its checker pod, which Kubernetes
/// limits to 63 characters (the UUIDs handed out are 36).
pub const MAX_RUN_UUID_BYTES: usize = 63;

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
    #[error(
        "{first} and {second} differ only in case and carry different values, so which one counts is ambiguous; send the key once"
    )]
    AmbiguousKeys { first: String, second: String },
}

impl ParseError {
    /// The HTTP status a report refused for this reason is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ParseError::ErrorsTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Why a `kh-run-uuid` header was refused (400); the message is sent back to the checker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunUuidError {
    #[error(
        "the kh-run-uuid header is not printable ASCII; send the value of the checker's KH_RUN_UUID variable"
    )]
    NotAscii,
    #[error(
        "the kh-run-uuid header is {0} bytes long; a run UUID is at most {MAX_RUN_UUID_BYTES}: send the value of the checker's KH_RUN_UUID variable"
    )]
    TooLong(usize),
    #[error(
        "the kh-run-uuid header {shown} has {found:?} at position {position}; a run UUID has only letters, digits, '-', '_' and '.', and starts and ends with a letter or digit: send the value of the checker's KH_RUN_UUID variable"
    )]
    BadCharacter {
        shown: String,
        found: char,
        position: usize,
    },
}

/// The run UUID a `kh-run-uuid` header names: `None` when it is blank (the run is then found
/// by the report's source address); checked before it is used anywhere, as a label value.
pub fn run_uuid(header: &HeaderValue) -> Result<Option<String>, RunUuidError> {
    let text = header.to_str().map_err(|_| RunUuidError::NotAscii)?.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > MAX_RUN_UUID_BYTES {
        return Err(RunUuidError::TooLong(text.len()));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let bad = text.char_indices().find(|&(i, c)| {
        let edge = i == 0 || i == text.len() - 1;
        !allowed(c) || (edge && !c.is_ascii_alphanumeric())
    });
    if let Some((position, found)) = bad {
        return Err(RunUuidError::BadCharacter {
            shown: format!("{text:?}"),
            found,
            position,
        });
    }
    Ok(Some(text.to_string()))
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

/// A report refused before its run is looked up: the status and the reason sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
}

/// What a report says before anything is looked up: the run UUID its `kh-run-uuid` header
/// names (`None`: absent or blank) and the report; or why it is refused. The header is
/// checked first, so a malformed one never reaches a lookup.
pub fn intake(
    header: Option<&HeaderValue>,
    body: &[u8],
) -> Result<(Option<String>, Report), Refusal> {
    let uuid = match header.map(run_uuid).transpose() {
        Ok(uuid) => uuid.flatten(),
        Err(e) => {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                reason: e.to_string(),
            });
        }
    };
    let report = parse(body).map_err(|e| Refusal {
        status: e.status(),
        reason: e.to_string(),
    })?;
    Ok((uuid, report))
}

pub fn parse(body: &[u8]) -> Result<Report, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::NotAnObject(kind(&value)));
    }
    let Entries(entries) =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let mut ok: Option<(String, Value)> = None;
    let mut errors: Option<(String, Value)> = None;
    for (k, v) in entries {
        let slot = if k.eq_ignore_ascii_case("ok") {
            &mut ok
        } else if k.eq_ignore_ascii_case("errors") {
            &mut errors
        } else {
            continue;
        };
        if let Some((first, seen)) = slot
            && *seen != v
        {
            return Err(ParseError::AmbiguousKeys {
                first: format!("{first:?}"),
                second: format!("{k:?}"),
            });
        }
        *slot = Some((k, v));
    }
    let ok = ok.map(|(_, v)| v);
    let errors = errors.map(|(_, v)| v);
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
        // Keys differing only in case are one key when their values agree.
        assert!(ok(r#"{"ok": true, "OK": true}"#).ok);
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

    /// Every class of report refused before its run is looked up, with its exact answer.
    /// (Refusals that need the cluster, such as an unknown or finished run, are in the e2e
    /// suite's table; refusals of the HTTP layer, in `bounded`'s tests.)
    #[test]
    fn every_class_of_bad_report_has_its_status_and_reason() {
        let uuid = "0b5c1e0e-8f4e-4a57-9a43-3f0f3f0b6c11";
        let long = "a".repeat(MAX_RUN_UUID_BYTES + 1);
        let huge = "u".repeat(10 * 1024);
        let big_errors = format!(
            r#"{{"OK": false, "Errors": ["{}", "{}"]}}"#,
            "x".repeat(MAX_ERROR_BYTES / 2),
            "y".repeat(MAX_ERROR_BYTES / 2 + 1)
        );
        let header = |v: &[u8]| HeaderValue::from_bytes(v).unwrap();
        let send_uuid = "send the value of the checker's KH_RUN_UUID variable";
        // What, the kh-run-uuid header, the body, the status, the reason.
        type Row<'a> = (&'a str, Option<HeaderValue>, &'a [u8], u16, String);
        let rows: Vec<Row> = vec![
            (
                "run UUID over 63 bytes",
                Some(header(long.as_bytes())),
                br#"{"OK": true}"#,
                400,
                format!(
                    "the kh-run-uuid header is 64 bytes long; a run UUID is at most 63: {send_uuid}"
                ),
            ),
            (
                "a 10 KB run UUID",
                Some(header(huge.as_bytes())),
                br#"{"OK": true}"#,
                400,
                format!(
                    "the kh-run-uuid header is 10240 bytes long; a run UUID is at most 63: {send_uuid}"
                ),
            ),
            (
                "run UUID with a selector's characters",
                Some(header(b"x,kuberhealthy-run-id!=y")),
                br#"{"OK": true}"#,
                400,
                format!(
                    "the kh-run-uuid header \"x,kuberhealthy-run-id!=y\" has ',' at position 1; a run UUID has only letters, digits, '-', '_' and '.', and starts and ends with a letter or digit: {send_uuid}"
                ),
            ),
            (
                "run UUID starting with a dash",
                Some(header(b"-abc")),
                br#"{"OK": true}"#,
                400,
                format!(
                    "the kh-run-uuid header \"-abc\" has '-' at position 0; a run UUID has only letters, digits, '-', '_' and '.', and starts and ends with a letter or digit: {send_uuid}"
                ),
            ),
            (
                "run UUID not ASCII",
                Some(header("r\u{e9}sum\u{e9}".as_bytes())),
                br#"{"OK": true}"#,
                400,
                format!("the kh-run-uuid header is not printable ASCII; {send_uuid}"),
            ),
            (
                "body not JSON",
                Some(header(uuid.as_bytes())),
                b"{OK: true",
                400,
                "the report is not valid JSON (key must be a string at line 1 column 2); send {\"OK\": true} or {\"OK\": false, \"Errors\": [\"what failed\"]}".into(),
            ),
            (
                "body not an object",
                Some(header(uuid.as_bytes())),
                b"true",
                400,
                "the report must be a JSON object such as {\"OK\": true}, not a boolean".into(),
            ),
            (
                "OK not a boolean",
                Some(header(uuid.as_bytes())),
                br#"{"OK": "yes"}"#,
                400,
                "\"OK\" must be true or false, not \"yes\"".into(),
            ),
            (
                "Errors not a list",
                Some(header(uuid.as_bytes())),
                br#"{"OK": false, "Errors": {"a": 1}}"#,
                400,
                "\"Errors\" must be a list of strings, not {\"a\":1}".into(),
            ),
            (
                "an error not a string",
                Some(header(uuid.as_bytes())),
                br#"{"OK": false, "Errors": [null]}"#,
                400,
                "\"Errors\"[0] must be a string, not null".into(),
            ),
            (
                "a blank error",
                Some(header(uuid.as_bytes())),
                br#"{"OK": false, "Errors": ["a", "\t"]}"#,
                400,
                "\"Errors\"[1] is blank; every error must say what failed".into(),
            ),
            (
                "a failure without an error",
                Some(header(uuid.as_bytes())),
                br#"{"OK": false}"#,
                400,
                "a report with \"OK\": false needs at least one error in \"Errors\" saying what failed".into(),
            ),
            (
                "OK and ok disagreeing",
                Some(header(uuid.as_bytes())),
                br#"{"OK": true, "ok": false, "Errors": ["x"]}"#,
                400,
                "\"OK\" and \"ok\" differ only in case and carry different values, so which one counts is ambiguous; send the key once".into(),
            ),
            (
                "Errors and errors disagreeing",
                Some(header(uuid.as_bytes())),
                br#"{"OK": false, "Errors": ["a"], "errors": ["b"]}"#,
                400,
                "\"Errors\" and \"errors\" differ only in case and carry different values, so which one counts is ambiguous; send the key once".into(),
            ),
            (
                "errors over 256 KiB",
                Some(header(uuid.as_bytes())),
                big_errors.as_bytes(),
                413,
                "the errors of the report total 262145 bytes; at most 262144 are accepted".into(),
            ),
        ];
        for (what, header, body, status, reason) in rows {
            let refusal = intake(header.as_ref(), body).expect_err(what);
            assert_eq!(refusal.status.as_u16(), status, "{what}");
            assert_eq!(refusal.reason, reason, "{what}");
        }
    }

    #[test]
    fn a_valid_or_blank_run_uuid_passes() {
        let body = br#"{"OK": true}"#;
        let of = |v: &str| intake(Some(&HeaderValue::from_str(v).unwrap()), body).map(|(u, _)| u);
        assert_eq!(
            of(" 0b5c1e0e-8f4e-4a57-9a43-3f0f3f0b6c11 "),
            Ok(Some("0b5c1e0e-8f4e-4a57-9a43-3f0f3f0b6c11".into()))
        );
        assert_eq!(
            of(&"a".repeat(MAX_RUN_UUID_BYTES)),
            Ok(Some("a".repeat(63)))
        );
        assert_eq!(of("a_b.c"), Ok(Some("a_b.c".into())));
        assert_eq!(of("  "), Ok(None));
        assert_eq!(intake(None, body).map(|(u, _)| u), Ok(None));
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
