//! [`HumanDuration`]: the one grammar of durations in configuration (`timeout`, `backoff`,
//! `max-backoff`, storage and status-store options, command-line flags).
//!
//! A duration is one or more `<number><unit>` parts: `250ms`, `30s`, `1.5s`, `5m`, `1h30m`,
//! `1h 30m`, `2d` (a day is 24 hours), also with long unit names (`5 minutes`) or in ISO 8601
//! (`PT1H30M`). The unit is required: a bare number such as `500` is refused with a message
//! suggesting `500ms` or `500s`, since the same number meant milliseconds under one key and
//! seconds under another in earlier versions. Parsing is done by `jiff`'s friendly format.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::{Span, SpanRelativeTo};
use serde::Deserialize;
use serde::de::{self, Visitor};

use crate::error::{Error, Result};

/// A duration read from configuration (see the [module documentation](self) for the
/// grammar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The duration.
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(duration: Duration) -> Self {
        HumanDuration(duration)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis.is_multiple_of(1000) {
            write!(f, "{}s", millis / 1000)
        } else {
            write!(f, "{millis}ms")
        }
    }
}

/// The message for a number written without a unit.
fn unit_missing(number: &str) -> Error {
    Error::config(format!(
        "the duration `{number}` has no unit: write `{number}ms` or `{number}s` (units ms, s, m, h, d; e.g. `1h30m`)"
    ))
}

impl FromStr for HumanDuration {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(unit_missing(trimmed));
        }
        let invalid = |reason: &dyn fmt::Display| {
            Error::config(format!(
                "invalid duration `{text}` ({reason}): write parts like `250ms`, `30s`, `1.5s`, `5m`, `1h30m` (units ms, s, m, h, d)"
            ))
        };
        let span: Span = trimmed.parse().map_err(|err| invalid(&err))?;
        if span.is_negative() {
            return Err(invalid(&"a duration cannot be negative"));
        }
        let duration = span
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|err| invalid(&err))?;
        Duration::try_from(duration)
            .map(HumanDuration)
            .map_err(|err| invalid(&err))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, like \"250ms\", \"30s\", \"5m\", \"1h30m\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Err(E::custom(unit_missing(&v.to_string()).message()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Err(E::custom(unit_missing(&v.to_string()).message()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(E::custom(unit_missing(&v.to_string()).message()))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse().map_err(|err: Error| E::custom(err.message()))
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Duration> {
        text.parse::<HumanDuration>().map(|d| d.0)
    }

    #[test]
    fn parses_units_and_compound_forms() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse("5 minutes").unwrap(), Duration::from_secs(300));
        assert_eq!(parse(" 10s ").unwrap(), Duration::from_secs(10));
        for bad in [
            "", "s", "5x", "-1s", "m5", "1 2", "fast", "1e400s", "1 month",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
        let from_json: HumanDuration = serde_json::from_str("\"2m\"").unwrap();
        assert_eq!(from_json.0, Duration::from_secs(120));
    }

    #[test]
    fn a_bare_number_needs_a_unit() {
        for bare in ["30", "500", "1.5"] {
            let err = parse(bare).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bare}ms`")), "{err}");
            assert!(err.contains(&format!("`{bare}s`")), "{err}");
        }
        let err = serde_json::from_str::<HumanDuration>("500")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`500ms`"), "{err}");
        assert!(serde_json::from_str::<HumanDuration>("-3").is_err());
    }

    #[test]
    fn displays_what_it_parses() {
        for text in ["30s", "250ms", "5400s"] {
            assert_eq!(
                parse(text).unwrap(),
                parse(&HumanDuration(parse(text).unwrap()).to_string()).unwrap()
            );
        }
    }
}
