//! Size and age limits of a walk in rclone's notation: sizes such as `100k`, `1.5M`, `1G`
//! (binary units: `k` is 1024 bytes; a bare number is KiB, `b` bytes), ages as durations
//! (`90s`, `1h`, `2d`, `1w`, the grammar of [`HumanDuration`]) or as dates (`2006-01-02`,
//! `2006-01-02 15:04:05`, `2006-01-02T15:04:05`, RFC 3339), local time unless an offset is
//! given.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use ikkatsu_core::duration::HumanDuration;
use ikkatsu_core::{Error, Result};
use serde::Deserialize;
use serde::de::{self, Visitor};

/// A number of bytes written as rclone writes sizes (`--min-size`, `--max-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

fn unit_multiplier(unit: char) -> Option<f64> {
    let power = match unit.to_ascii_lowercase() {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    Some(1024f64.powi(power))
}

impl FromStr for ByteSize {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = |why: &str| {
            Error::config(format!(
                "invalid size `{text}` ({why}): write a number with a unit B, K, M, G, T or P (binary: 1K = 1024 bytes; no unit means K), e.g. `100k`, `1.5M`, `10B`"
            ))
        };
        let trimmed = text.trim();
        let mut chars = trimmed.chars();
        let (number, multiplier) = match chars.next_back() {
            None => return Err(invalid("empty")),
            Some(c) if c.is_ascii_digit() || c == '.' => (trimmed, 1024.0),
            Some('b' | 'B') => {
                let rest = chars.as_str();
                match rest.strip_suffix('i') {
                    Some(rest) => {
                        let mut inner = rest.chars();
                        let unit = inner.next_back().ok_or_else(|| invalid("no number"))?;
                        let m = unit_multiplier(unit).ok_or_else(|| invalid("unknown unit"))?;
                        (inner.as_str(), m)
                    }
                    None => (rest, 1.0),
                }
            }
            Some('i' | 'I') => {
                let mut inner = chars.clone();
                let unit = inner.next_back().ok_or_else(|| invalid("no number"))?;
                let m = unit_multiplier(unit).ok_or_else(|| invalid("unknown unit"))?;
                (inner.as_str(), m)
            }
            Some(unit) => {
                let m = unit_multiplier(unit).ok_or_else(|| invalid("unknown unit"))?;
                (chars.as_str(), m)
            }
        };
        let value: f64 = number.parse().map_err(|_| invalid("not a number"))?;
        if !value.is_finite() {
            return Err(invalid("not a finite number"));
        }
        if value < 0.0 {
            return Err(invalid("a size cannot be negative"));
        }
        let bytes = value * multiplier;
        if bytes >= u64::MAX as f64 {
            return Err(invalid("too large"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like \"100k\", \"1.5M\", \"10B\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse().map_err(|err: Error| E::custom(err.message()))
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

/// An age limit (`--min-age`, `--max-age`): a duration before the walk starts, or a point
/// in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileAge {
    /// This long before the walk starts.
    Ago(HumanDuration),
    /// This moment.
    At(DateTime<Utc>),
}

impl FileAge {
    /// The moment the limit stands for, for a walk starting at `now`.
    pub fn cutoff(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            FileAge::Ago(duration) => chrono::Duration::from_std(duration.as_duration())
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            FileAge::At(at) => at,
        }
    }
}

impl fmt::Display for FileAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileAge::Ago(duration) => fmt::Display::fmt(duration, f),
            FileAge::At(at) => f.write_str(&at.to_rfc3339()),
        }
    }
}

fn local_date_time(naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return local_date_time(naive);
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .and_then(local_date_time)
}

impl FromStr for FileAge {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        if let Some(at) = parse_date(trimmed) {
            return Ok(FileAge::At(at));
        }
        trimmed.parse::<HumanDuration>().map(FileAge::Ago).map_err(|err| {
            Error::config(format!(
                "invalid age `{text}`: write a duration (`90s`, `1h`, `2d`, `1w`) or a date (`2006-01-02`, `2006-01-02 15:04:05`); {}",
                err.message()
            ))
        })
    }
}

impl<'de> Deserialize<'de> for FileAge {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|err: Error| de::Error::custom(err.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn size(text: &str) -> u64 {
        text.parse::<ByteSize>().unwrap().bytes()
    }

    #[test]
    fn sizes_are_rclones() {
        assert_eq!(size("100"), 102_400);
        assert_eq!(size("10b"), 10);
        assert_eq!(size("10B"), 10);
        assert_eq!(size("1k"), 1024);
        assert_eq!(size("1K"), 1024);
        assert_eq!(size("1Ki"), 1024);
        assert_eq!(size("1KiB"), 1024);
        assert_eq!(size("1.5M"), 1_572_864);
        assert_eq!(size("2G"), 2 << 30);
        assert_eq!(size("1T"), 1 << 40);
        assert_eq!(size("1P"), 1 << 50);
        assert_eq!(size("0.5"), 512);
        for bad in [
            "", "k", "1x", "-1k", "1KB", "ab", "1iB", "NaN", "infk", "1e400",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad} should be refused");
        }
        let from_yaml: ByteSize = serde_json::from_str("\"2k\"").unwrap();
        assert_eq!(from_yaml.bytes(), 2048);
        let number: ByteSize = serde_json::from_str("3").unwrap();
        assert_eq!(number.bytes(), 3072);
    }

    #[test]
    fn ages_are_durations_or_dates() {
        let now = Utc::now();
        let age = |text: &str| text.parse::<FileAge>().unwrap();
        assert_eq!(age("1h"), FileAge::Ago(Duration::from_secs(3600).into()));
        assert_eq!(age("2d"), FileAge::Ago(Duration::from_secs(172_800).into()));
        assert_eq!(age("1w"), FileAge::Ago(Duration::from_secs(604_800).into()));
        assert_eq!(age("1h").cutoff(now), now - chrono::Duration::seconds(3600));
        let local = |y, m, d, h, min, s| {
            Local
                .with_ymd_and_hms(y, m, d, h, min, s)
                .earliest()
                .unwrap()
                .with_timezone(&Utc)
        };
        assert_eq!(age("2006-01-02"), FileAge::At(local(2006, 1, 2, 0, 0, 0)));
        assert_eq!(
            age("2006-01-02 15:04:05"),
            FileAge::At(local(2006, 1, 2, 15, 4, 5))
        );
        assert_eq!(
            age("2006-01-02T15:04:05"),
            FileAge::At(local(2006, 1, 2, 15, 4, 5))
        );
        assert_eq!(
            age("2006-01-02T15:04:05Z").cutoff(now),
            Utc.with_ymd_and_hms(2006, 1, 2, 15, 4, 5).unwrap()
        );
        for bad in ["", "yesterday", "2006-13-01", "-1h", "10"] {
            let err = bad.parse::<FileAge>().unwrap_err();
            assert!(err.message().contains("invalid age"), "{bad}: {err}");
        }
    }
}
