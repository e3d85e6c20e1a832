//! The environment knobs of the built-in checks, read in one place: each knob has v2's name and
//! default, and a bad value becomes a failure message naming the variable and what was wrong
//! with it (`MAX_FAILURES_ALLOWED is "ten", expected a whole number`), never a crash.

use std::collections::HashMap;
use std::time::Duration;

use crate::api::duration;

/// Reads one environment variable.
type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The environment a check reads, and the problems found while reading it.
pub struct Knobs {
    lookup: Lookup,
    errors: Vec<String>,
}

impl Knobs {
    /// The process environment.
    pub fn from_env() -> Knobs {
        Knobs::with(|name| std::env::var(name).ok())
    }

    /// A fixed environment (tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Knobs {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Knobs::with(move |name| map.get(name).cloned())
    }

    fn with(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Knobs {
        Knobs {
            lookup: Box::new(lookup),
            errors: Vec::new(),
        }
    }

    /// The trimmed value, `None` when unset or blank (v2 treats both as "use the default").
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn bad(&mut self, name: &str, value: &str, expected: &str) {
        self.errors.push(format!("{name} is {value:?}, {expected}"));
    }

    /// A free-form string with a default.
    pub fn string(&mut self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_string())
    }

    /// A string that must be set.
    pub fn required(&mut self, name: &str, what: &str) -> String {
        match self.raw(name) {
            Some(v) => v,
            None => {
                self.errors
                    .push(format!("{name} is not set, expected {what}"));
                String::new()
            }
        }
    }

    /// A whole number (no sign).
    pub fn whole(&mut self, name: &str, default: u64) -> u64 {
        let Some(v) = self.raw(name) else {
            return default;
        };
        v.parse().unwrap_or_else(|_| {
            self.bad(name, &v, "expected a whole number");
            default
        })
    }

    /// A number within `range` (inclusive), such as a percentage or a ratio.
    pub fn number(&mut self, name: &str, default: f64, min: f64, max: f64) -> f64 {
        let Some(v) = self.raw(name) else {
            return default;
        };
        match v.parse::<f64>() {
            Ok(n) if n.is_finite() && (min..=max).contains(&n) => n,
            _ => {
                self.bad(name, &v, &format!("expected a number from {min} to {max}"));
                default
            }
        }
    }

    /// `true` or `false` (as Go's `strconv.ParseBool`: 1, t, T, TRUE, true, True, 0, f, ...).
    pub fn flag(&mut self, name: &str, default: bool) -> bool {
        let Some(v) = self.raw(name) else {
            return default;
        };
        match v.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => {
                self.bad(name, &v, "expected true or false");
                default
            }
        }
    }

    /// A Go duration such as `10m` or `1h30m`.
    pub fn duration(&mut self, name: &str, default: Duration) -> Duration {
        let Some(v) = self.raw(name) else {
            return default;
        };
        duration::parse(&v).unwrap_or_else(|_| {
            self.bad(name, &v, "expected a duration such as 30s, 10m or 1h");
            default
        })
    }

    /// An http:// or https:// URL that must be set.
    pub fn http_url(&mut self, name: &str) -> String {
        let v = self.required(name, "an http:// or https:// URL");
        if !v.is_empty()
            && reqwest::Url::parse(&v).map_or(true, |u| !u.scheme().starts_with("http"))
        {
            self.bad(name, &v, "expected an http:// or https:// URL");
        }
        v
    }

    /// One of `choices` (compared case-insensitively; the choice is returned as listed).
    pub fn choice(
        &mut self,
        name: &str,
        default: &'static str,
        choices: &[&'static str],
    ) -> &'static str {
        let Some(v) = self.raw(name) else {
            return default;
        };
        match choices.iter().find(|c| c.eq_ignore_ascii_case(&v)) {
            Some(c) => c,
            None => {
                self.bad(name, &v, &format!("expected one of {}", choices.join(", ")));
                default
            }
        }
    }

    /// A comma-separated list (blank entries dropped).
    pub fn list(&mut self, name: &str, default: &[&str]) -> Vec<String> {
        match self.raw(name) {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            None => default.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Records a problem found while interpreting knobs together.
    pub fn invalid(&mut self, message: String) {
        self.errors.push(message);
    }

    /// Every problem found, or `Ok` when all knobs were good.
    pub fn finish(self) -> Result<(), Vec<String>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one<T>(pairs: &[(&str, &str)], read: impl FnOnce(&mut Knobs) -> T) -> (T, Vec<String>) {
        let mut k = Knobs::from_pairs(pairs);
        let v = read(&mut k);
        (v, k.finish().err().unwrap_or_default())
    }

    #[test]
    fn defaults_apply_when_unset_or_blank() {
        let (v, e) = one(&[("COUNT", "  ")], |k| k.whole("COUNT", 3));
        assert_eq!((v, e), (3, vec![]));
        let (v, _) = one(&[], |k| {
            k.duration("SKIP_DURATION", Duration::from_secs(600))
        });
        assert_eq!(v, Duration::from_secs(600));
        let (v, _) = one(&[], |k| {
            k.list("WHITELIST", &["kube-system", "kuberhealthy"])
        });
        assert_eq!(v, ["kube-system", "kuberhealthy"]);
    }

    #[test]
    fn every_kind_of_bad_value_names_the_variable() {
        let cases: Vec<(Vec<String>, &str)> = vec![
            (
                one(&[("MAX_FAILURES_ALLOWED", "ten")], |k| {
                    k.whole("MAX_FAILURES_ALLOWED", 10)
                })
                .1,
                r#"MAX_FAILURES_ALLOWED is "ten", expected a whole number"#,
            ),
            (
                one(&[("COUNT", "-1")], |k| k.whole("COUNT", 0)).1,
                r#"COUNT is "-1", expected a whole number"#,
            ),
            (
                one(&[("PASSING_PERCENT", "101")], |k| {
                    k.number("PASSING_PERCENT", 100.0, 0.0, 100.0)
                })
                .1,
                r#"PASSING_PERCENT is "101", expected a number from 0 to 100"#,
            ),
            (
                one(&[("INSECURE", "yes")], |k| k.flag("INSECURE", false)).1,
                r#"INSECURE is "yes", expected true or false"#,
            ),
            (
                one(&[("SKIP_DURATION", "10 minutes")], |k| {
                    k.duration("SKIP_DURATION", Duration::ZERO)
                })
                .1,
                r#"SKIP_DURATION is "10 minutes", expected a duration such as 30s, 10m or 1h"#,
            ),
            (
                one(&[], |k| k.http_url("CHECK_URL")).1,
                "CHECK_URL is not set, expected an http:// or https:// URL",
            ),
            (
                one(&[("CHECK_URL", "ftp://x")], |k| k.http_url("CHECK_URL")).1,
                r#"CHECK_URL is "ftp://x", expected an http:// or https:// URL"#,
            ),
            (
                one(&[("REQUEST_TYPE", "FETCH")], |k| {
                    k.choice("REQUEST_TYPE", "GET", &["GET", "POST"])
                })
                .1,
                r#"REQUEST_TYPE is "FETCH", expected one of GET, POST"#,
            ),
        ];
        for (errors, expected) in cases {
            assert_eq!(errors, vec![expected.to_string()]);
        }
    }

    #[test]
    fn good_values_parse() {
        assert_eq!(
            one(&[("F", "True")], |k| k.flag("F", false)),
            (true, vec![])
        );
        assert_eq!(one(&[("F", "0")], |k| k.flag("F", true)), (false, vec![]));
        assert_eq!(
            one(&[("M", "post")], |k| k.choice("M", "GET", &["GET", "POST"])),
            ("POST", vec![])
        );
        assert_eq!(
            one(&[("D", "1m30s")], |k| k.duration("D", Duration::ZERO)),
            (Duration::from_secs(90), vec![])
        );
        assert_eq!(
            one(&[("L", "a, ,b")], |k| k.list("L", &[])),
            (vec!["a".to_string(), "b".to_string()], vec![])
        );
        assert_eq!(
            one(&[("U", "https://example.com/x")], |k| k.http_url("U")),
            ("https://example.com/x".to_string(), vec![])
        );
    }

    #[test]
    fn all_problems_are_reported_together() {
        let mut k = Knobs::from_pairs(&[("A", "x"), ("B", "y")]);
        k.whole("A", 1);
        k.flag("B", false);
        assert_eq!(k.finish().unwrap_err().len(), 2);
    }
}
