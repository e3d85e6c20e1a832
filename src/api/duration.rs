//! Go `time.Duration` strings (`6h`, `5m`, `1m30s`, `1.5h`, `300ms`), parsed and printed
//! exactly as Go does, because v2 manifests, khstates and config files carry them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a usable Go duration. The messages follow Go's `time.ParseDuration`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}")]
    Invalid(String),
    #[error("missing unit in duration {0:?} (use one of ns, us, ms, s, m, h)")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {input:?} (use one of ns, us, ms, s, m, h)")]
    UnknownUnit { unit: String, input: String },
    #[error("duration {0:?} is too large")]
    Overflow(String),
    #[error("duration {0:?} is negative")]
    Negative(String),
}

const NANOS_PER_UNIT: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // U+00B5 micro sign
    ("\u{3bc}s", 1_000), // U+03BC Greek small letter mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

/// Parses a Go duration string into a signed number of nanoseconds, as Go's
/// `time.ParseDuration` does (same grammar, same rounding of fractions, same limits).
pub fn parse_signed_nanos(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        // The integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = s.split_at(int_len);
        s = rest;
        let mut whole: u64 = 0;
        for d in int_digits.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(|| DurationError::Overflow(input.to_string()))?;
        }
        // The fraction: digits past what fits in a u64 are dropped, as in Go.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut frac_len = 0;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflowed = false;
            for d in s[..frac_len].bytes() {
                if overflowed {
                    continue;
                }
                match fraction
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d - b'0')))
                {
                    Some(v) if v <= 1 << 63 => {
                        fraction = v;
                        scale *= 10.0;
                    }
                    _ => overflowed = true,
                }
            }
            s = &s[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        // The unit.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let per_unit = NANOS_PER_UNIT
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, n)| *n)
            .ok_or_else(|| DurationError::UnknownUnit {
                unit: unit.to_string(),
                input: input.to_string(),
            })?;
        let overflow = || DurationError::Overflow(input.to_string());
        let mut value = whole
            .checked_mul(per_unit)
            .filter(|v| *v <= 1 << 63)
            .ok_or_else(overflow)?;
        if fraction > 0 {
            // Go computes the fractional part in float64 and truncates.
            value = value
                .checked_add((fraction as f64 * (per_unit as f64 / scale)) as u64)
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(overflow)?;
        }
        total = total
            .checked_add(value)
            .filter(|v| *v <= 1 << 63)
            .ok_or_else(overflow)?;
    }
    if negative {
        Ok((total as i128).wrapping_neg() as i64)
    } else if total > i64::MAX as u64 {
        Err(DurationError::Overflow(input.to_string()))
    } else {
        Ok(total as i64)
    }
}

/// Parses a Go duration that must not be negative.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse_signed_nanos(input)?;
    if nanos < 0 {
        return Err(DurationError::Negative(input.to_string()));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Formats a duration as Go's `Duration.String()` does: `0s`, `300ms`, `1.5s`, `1m30s`,
/// `6h0m0s`.
pub fn format(duration: Duration) -> String {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    format_nanos(nanos)
}

fn format_nanos(nanos: u64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        // Below one second Go picks the largest unit that keeps a non-zero integer part.
        let (unit, per) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{}", with_fraction(nanos / per, nanos % per, per), unit);
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let seconds = with_fraction(
        (nanos / 1_000_000_000) % 60,
        nanos % 1_000_000_000,
        1_000_000_000,
    );
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `whole.fraction` with the fraction's trailing zeros dropped (`1.5`, `2`).
fn with_fraction(whole: u64, fraction: u64, per: u64) -> String {
    if fraction == 0 {
        return whole.to_string();
    }
    let width = per.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A non-negative duration written as a Go duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        GoDuration(d)
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map(GoDuration)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(self.0))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The JSON-schema pattern of a non-negative Go duration (`0`, or number+unit pairs).
pub const SCHEMA_PATTERN: &str = r"^\+?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_go_grammar() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("6h", Duration::from_secs(6 * 3600)),
            ("5m", Duration::from_secs(300)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("300ms", ms(300)),
            (
                "1h15m30.918273645s",
                Duration::from_nanos(4_530_918_273_645),
            ),
            ("2us", Duration::from_micros(2)),
            ("2µs", Duration::from_micros(2)),
            ("2μs", Duration::from_micros(2)),
            ("100ns", Duration::from_nanos(100)),
            (".5s", ms(500)),
            ("1.s", Duration::from_secs(1)),
            ("1.0000000000000000000001s", Duration::from_secs(1)),
            (
                "2562047h47m16.854775807s",
                Duration::from_nanos(i64::MAX as u64),
            ),
            ("10h0m0s", Duration::from_secs(36000)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input).as_ref(), Ok(expected), "parsing {input:?}");
        }
    }

    #[test]
    fn signed_values_follow_go() {
        assert_eq!(parse_signed_nanos("-1s"), Ok(-1_000_000_000));
        assert_eq!(parse_signed_nanos("-0"), Ok(0));
        assert_eq!(
            parse_signed_nanos("-2562047h47m16.854775808s"),
            Ok(i64::MIN)
        );
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert_eq!(parse(""), Err(DurationError::Invalid("".into())));
        assert_eq!(parse("5"), Err(DurationError::MissingUnit("5".into())));
        assert_eq!(
            parse("1x"),
            Err(DurationError::UnknownUnit {
                unit: "x".into(),
                input: "1x".into()
            })
        );
        assert_eq!(parse("."), Err(DurationError::Invalid(".".into())));
        assert_eq!(parse("s"), Err(DurationError::Invalid("s".into())));
        assert_eq!(
            parse("1h 30m"),
            Err(DurationError::UnknownUnit {
                unit: "h ".into(),
                input: "1h 30m".into()
            })
        );
        assert_eq!(parse("-1s"), Err(DurationError::Negative("-1s".into())));
        assert_eq!(
            parse("2562047h47m16.854775808s"),
            Err(DurationError::Overflow("2562047h47m16.854775808s".into()))
        );
        assert_eq!(
            parse("9999999999h"),
            Err(DurationError::Overflow("9999999999h".into()))
        );
    }

    #[test]
    fn error_messages_name_the_value_and_the_fix() {
        assert_eq!(
            parse("5").unwrap_err().to_string(),
            r#"missing unit in duration "5" (use one of ns, us, ms, s, m, h)"#
        );
        assert_eq!(
            parse("1x").unwrap_err().to_string(),
            r#"unknown unit "x" in duration "1x" (use one of ns, us, ms, s, m, h)"#
        );
        assert_eq!(
            parse("-1s").unwrap_err().to_string(),
            r#"duration "-1s" is negative"#
        );
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1_100), "1.1µs"),
            (ms(300), "300ms"),
            (Duration::from_nanos(2_200_000), "2.2ms"),
            (ms(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(6 * 3600), "6h0m0s"),
            (Duration::from_nanos(3_359_431_829), "3.359431829s"),
            (Duration::from_nanos(68_486_351_014), "1m8.486351014s"),
            (
                Duration::from_nanos(i64::MAX as u64),
                "2562047h47m16.854775807s",
            ),
        ];
        for (d, expected) in cases {
            assert_eq!(format(*d), *expected, "formatting {d:?}");
        }
    }

    #[test]
    fn schema_pattern_agrees_with_the_parser() {
        // The API server evaluates the CRD pattern; keep it in step with the parser.
        let pattern = regex::Regex::new(SCHEMA_PATTERN).unwrap();
        for ok in [
            "0", "+5m", "5m", "1m30s", "1.5h", "300ms", "2µs", "2μs", ".5s", "1.s",
        ] {
            assert!(parse(ok).is_ok(), "{ok} should parse");
            assert!(pattern.is_match(ok), "{ok} should match the pattern");
        }
        for bad in ["5", "1x", "-1s", "", "1h 30m", ".", "s", "5 m"] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
            assert!(!pattern.is_match(bad), "{bad} should not match the pattern");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(nanos in 0u64..=i64::MAX as u64) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse(&format(d)), Ok(d));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,24}") {
            let _ = parse_signed_nanos(&s);
        }

        #[test]
        fn unit_sums_parse_to_their_total(h in 0u64..1000, m in 0u64..1000, s in 0u64..1000, frac in 0u64..1000) {
            let text = format!("{h}h{m}m{s}.{frac:03}s");
            let expected = Duration::from_secs(h * 3600 + m * 60 + s) + Duration::from_millis(frac);
            prop_assert_eq!(parse(&text), Ok(expected));
        }
    }
}
