//! [`JobParameters`]: typed, identifying or not, parsed from `key=value[,type[,identifying]]`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The value of one job parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum ParameterValue {
    /// Text.
    String(String),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    /// A point in time (UTC).
    DateTime(DateTime<Utc>),
    /// A calendar date.
    Date(NaiveDate),
    /// A boolean.
    Bool(bool),
}

impl ParameterValue {
    /// The type name used on the command line and in JSON (`string`, `integer`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            ParameterValue::String(_) => "string",
            ParameterValue::Integer(_) => "integer",
            ParameterValue::Float(_) => "float",
            ParameterValue::DateTime(_) => "datetime",
            ParameterValue::Date(_) => "date",
            ParameterValue::Bool(_) => "bool",
        }
    }

    /// Parses `raw` as a value of the type named `type_name`.
    pub fn parse_typed(raw: &str, type_name: &str) -> Result<Self> {
        let bad = |what: &str| {
            Error::config(format!("job parameter value `{raw}` is not a valid {what}"))
        };
        Ok(match normalize_type(type_name) {
            Some("string") => ParameterValue::String(raw.to_string()),
            Some("integer") => {
                ParameterValue::Integer(raw.trim().parse().map_err(|_| bad("integer"))?)
            }
            // A finite number only: `1e999` parses as infinity, which JSON (the repository's
            // format) cannot hold, so the execution could not be read back.
            Some("float") => ParameterValue::Float(
                raw.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| bad("float (a finite number; not inf, NaN or beyond ±1.8e308)"))?,
            ),
            Some("bool") => ParameterValue::Bool(match raw.trim() {
                "true" | "yes" | "1" => true,
                "false" | "no" | "0" => false,
                _ => return Err(bad("bool (true/false)")),
            }),
            // Years 0000 to 9999, as YYYY and RFC 3339 write them: the value's text (what
            // `${params.x}` gives, what `ikkatsu executions` shows) parses back.
            Some("date") => ParameterValue::Date(
                NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                    .ok()
                    .filter(|date| (0..=9999).contains(&date.year()))
                    .ok_or_else(|| bad("date (YYYY-MM-DD)"))?,
            ),
            Some("datetime") => ParameterValue::DateTime(
                parse_datetime(raw.trim())
                    .filter(|time| (0..=9999).contains(&time.year()))
                    .ok_or_else(|| {
                        bad("date-time (RFC 3339, e.g. 2026-01-31T12:00:00Z; without an offset: UTC)")
                    })?,
            ),
            _ => {
                return Err(Error::config(format!(
                    "unknown job parameter type `{type_name}`: use string, integer, float, bool, date or datetime"
                )));
            }
        })
    }

    /// The value as text (what `${params.x}` expands to).
    pub fn to_text(&self) -> String {
        match self {
            ParameterValue::String(s) => s.clone(),
            ParameterValue::Integer(i) => i.to_string(),
            ParameterValue::Float(f) => f.to_string(),
            ParameterValue::DateTime(d) => d.to_rfc3339(),
            ParameterValue::Date(d) => d.format("%Y-%m-%d").to_string(),
            ParameterValue::Bool(b) => b.to_string(),
        }
    }
}

/// The type a name stands for: ikkatsu's names, their usual aliases, and the Java class names
/// Spring Batch 5 writes (`java.lang.Long`, `java.time.LocalDate`, ...).
/// The canonical name (`string`, `integer`, `float`, `bool`, `date`, `datetime`) of a type
/// name as written (`int`, `java.lang.Long`, `LocalDate`, ...), if it is one.
pub fn canonical_type_name(name: &str) -> Option<&'static str> {
    normalize_type(name)
}

fn normalize_type(name: &str) -> Option<&'static str> {
    let name = name.trim().to_ascii_lowercase();
    let short = name
        .strip_prefix("java.lang.")
        .or_else(|| name.strip_prefix("java.time."))
        .or_else(|| name.strip_prefix("java.util."))
        .unwrap_or(&name);
    Some(match short {
        "string" | "str" => "string",
        "integer" | "int" | "long" | "short" | "byte" | "i64" => "integer",
        "float" | "double" | "f64" => "float",
        "bool" | "boolean" => "bool",
        "date" if name.starts_with("java.util.") => "datetime",
        "date" | "localdate" => "date",
        "datetime" | "timestamp" | "localdatetime" | "instant" | "offsetdatetime"
        | "zoneddatetime" => "datetime",
        _ => return None,
    })
}

/// A date-time in RFC 3339 (`2026-01-31T12:00:00Z`, `...+09:00`), or without an offset
/// (`2026-01-31T12:00:00`, Java's `LocalDateTime`), which is taken as UTC.
fn parse_datetime(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
        return Some(time.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|time| time.and_utc())
}

/// Splits the text after `key=` into the value (unquoted), the type and the identifying
/// flag. The value may be in double quotes (`""` inside them is one `"`); the other fields
/// are the text between the commas.
fn split_spec<'a>(name: &str, rest: &'a str) -> Result<(String, Option<&'a str>, Option<&'a str>)> {
    let (value, after) = match rest.strip_prefix('"') {
        Some(quoted) => {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => {
                        if quoted[i + 1..].starts_with('"') {
                            value.push('"');
                            chars.next();
                        } else {
                            break i + 1;
                        }
                    }
                    Some((_, c)) => value.push(c),
                    None => {
                        return Err(Error::config(format!(
                            "job parameter `{name}`: the value's opening double quote is never \
                             closed (write {name}=\"value\" with `\"\"` for a quote inside it)"
                        )));
                    }
                }
            };
            let after = &quoted[end..];
            if !after.is_empty() && !after.starts_with(',') {
                return Err(Error::config(format!(
                    "job parameter `{name}`: unexpected `{after}` after the quoted value \
                     (write {name}=\"value\"[,type[,identifying]])"
                )));
            }
            (value, after.strip_prefix(','))
        }
        None => match rest.split_once(',') {
            Some((value, after)) => (value.to_string(), Some(after)),
            None => (rest.to_string(), None),
        },
    };
    let Some(after) = after else {
        return Ok((value, None, None));
    };
    let mut fields = after.splitn(3, ',');
    let type_name = fields.next();
    let identifying = fields.next();
    if fields.next().is_some() {
        return Err(Error::config(format!(
            "job parameter `{name}` has more fields than value,type,identifying{}",
            quote_hint(name, rest)
        )));
    }
    Ok((value, type_name, identifying))
}

/// How `rest` (the text after `name=`) is written as one quoted value, when it is not quoted.
fn quote_hint(name: &str, rest: &str) -> String {
    if rest.starts_with('"') {
        format!(" (write {name}=\"value\"[,type[,identifying]])")
    } else {
        format!(
            "; a value containing a comma is written in double quotes, e.g. {name}=\"{}\"",
            rest.replace('"', "\"\"")
        )
    }
}

impl fmt::Display for ParameterValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// Whether a parameter's value may be shown and stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sensitivity {
    /// Shown and stored as it is. A value holding a `${ENV}` or `${file:…}` reference is
    /// plain: the reference is what is shown and stored, and it is read each time the job is
    /// built (so a restart reads it again).
    #[default]
    Plain,
    /// A secret given in clear (a string under a secret-looking name, see
    /// [`crate::secret::is_secret_name`], or a resolved reference): usable by this process,
    /// shown and stored as `***`. It does not take part in the job instance key as itself:
    /// `***` does.
    Secret,
    /// A secret read back from a job repository: its value was never stored and reads `***`;
    /// a job that needs it must be given it again.
    Withheld,
}

/// One job parameter: a value, whether it identifies the job instance, and whether it is a
/// secret. `Debug` and serialization show a secret as `***` (serialized with
/// `"secret": true`), so a secret never reaches a log, a `--json` output or a repository.
#[derive(Clone, PartialEq)]
pub struct JobParameter {
    /// The value.
    pub value: ParameterValue,
    /// Identifying parameters make up the job instance's key; others do not.
    pub identifying: bool,
    /// Whether the value may be shown and stored.
    pub sensitivity: Sensitivity,
}

impl JobParameter {
    /// Whether the value is a secret (shown and stored as `***`).
    pub fn is_secret(&self) -> bool {
        self.sensitivity != Sensitivity::Plain
    }

    /// The value as it may be shown: `***` for a secret.
    pub fn shown_text(&self) -> String {
        if self.is_secret() {
            crate::secret::MASK.to_string()
        } else {
            self.value.to_text()
        }
    }

    fn stored(&self) -> StoredParameter {
        StoredParameter {
            value: if self.is_secret() {
                ParameterValue::String(crate::secret::MASK.to_string())
            } else {
                self.value.clone()
            },
            identifying: self.identifying,
            secret: self.is_secret(),
        }
    }
}

impl fmt::Debug for JobParameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stored = self.stored();
        f.debug_struct("JobParameter")
            .field("value", &stored.value)
            .field("identifying", &self.identifying)
            .field("sensitivity", &self.sensitivity)
            .finish()
    }
}

/// How a parameter is serialized: a secret's value is `***`.
#[derive(Serialize, Deserialize)]
struct StoredParameter {
    #[serde(flatten)]
    value: ParameterValue,
    identifying: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    secret: bool,
}

impl Serialize for JobParameter {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.stored().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JobParameter {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let stored = StoredParameter::deserialize(deserializer)?;
        Ok(JobParameter {
            value: stored.value,
            identifying: stored.identifying,
            sensitivity: if stored.secret {
                Sensitivity::Withheld
            } else {
                Sensitivity::Plain
            },
        })
    }
}

/// Whether `text`, the value of the parameter `name`, is read when the job is built rather
/// than taken as it is: it holds a `${…}` reference (or a `$${` escape, unescaped at the same
/// time), or it is a `file://` URL under a secret-looking name.
pub fn is_reference(name: &str, text: &str) -> bool {
    text.contains("${") || (crate::secret::is_secret_name(name) && text.starts_with("file://"))
}

/// The parameters of a job execution. Identifying ones select the job instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobParameters {
    entries: BTreeMap<String, JobParameter>,
}

impl JobParameters {
    /// No parameters.
    pub fn new() -> Self {
        JobParameters::default()
    }

    /// Adds an identifying parameter.
    pub fn with(mut self, name: impl Into<String>, value: ParameterValue) -> Self {
        self.insert(name, value, true);
        self
    }

    /// Adds or replaces a parameter. A string under a secret-looking name (see
    /// [`crate::secret::is_secret_name`]) that is not a reference ([`is_reference`]) is a
    /// [`Sensitivity::Secret`].
    pub fn insert(&mut self, name: impl Into<String>, value: ParameterValue, identifying: bool) {
        let name = name.into();
        let sensitivity = match &value {
            ParameterValue::String(text)
                if crate::secret::is_secret_name(&name) && !is_reference(&name, text) =>
            {
                Sensitivity::Secret
            }
            _ => Sensitivity::Plain,
        };
        self.insert_with(name, value, identifying, sensitivity);
    }

    /// Adds or replaces a parameter holding a secret (shown and stored as `***`).
    pub fn insert_secret(&mut self, name: impl Into<String>, value: String, identifying: bool) {
        self.insert_with(
            name,
            ParameterValue::String(value),
            identifying,
            Sensitivity::Secret,
        );
    }

    fn insert_with(
        &mut self,
        name: impl Into<String>,
        value: ParameterValue,
        identifying: bool,
        sensitivity: Sensitivity,
    ) {
        if sensitivity == Sensitivity::Secret {
            crate::secret::register(&value.to_text());
        }
        self.entries.insert(
            name.into(),
            JobParameter {
                value,
                identifying,
                sensitivity,
            },
        );
    }

    /// Parses `key=value[,type[,identifying]]` (Spring Batch's notation) and adds it.
    ///
    /// The text after `=` is split at commas: the value, then optionally its type (see
    /// [`ParameterValue::parse_typed`]), then optionally `true`/`false` for identifying
    /// (default `true`). A value containing a comma is written in double quotes
    /// (`ids="1,2,3"`, `ids="1,2,3",string,false`); inside them `""` stands for one `"`.
    /// An unknown type, a flag other than `true`/`false` or a fourth field is an error.
    pub fn insert_parsed(&mut self, spec: &str) -> Result<()> {
        let (name, rest) = spec.split_once('=').ok_or_else(|| {
            Error::config(format!(
                "job parameter `{spec}` must be written key=value[,type[,identifying]]"
            ))
        })?;
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::config(format!(
                "job parameter `{spec}` has an empty name"
            )));
        }
        let (raw, type_name, identifying) = split_spec(name, rest)?;
        let type_name = type_name.unwrap_or("string");
        if normalize_type(type_name).is_none() {
            return Err(Error::config(format!(
                "job parameter `{name}`: unknown type `{}`: use string, integer, float, bool, \
                 date or datetime{}",
                type_name.trim(),
                quote_hint(name, rest)
            )));
        }
        let identifying = match identifying.map(str::trim) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(Error::config(format!(
                    "job parameter `{name}`: the identifying flag `{other}` is not true or false \
                     (write {name}=value,type,true or {name}=value,type,false)"
                )));
            }
        };
        let value = ParameterValue::parse_typed(&raw, type_name)
            .map_err(|err| err.context(format!("job parameter `{name}`")))?;
        self.insert(name, value, identifying);
        Ok(())
    }

    /// The parameter `name`.
    pub fn get(&self, name: &str) -> Option<&JobParameter> {
        self.entries.get(name)
    }

    /// The value of `name` as text (a secret in clear: do not show it; a withheld secret is
    /// `***`).
    pub fn get_text(&self, name: &str) -> Option<String> {
        self.entries.get(name).map(|p| p.value.to_text())
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over the parameters in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &JobParameter)> {
        self.entries.iter()
    }

    /// Adds the parameters of `defaults` that are not set here.
    pub fn merge_defaults(&mut self, defaults: &JobParameters) {
        for (name, param) in defaults.iter() {
            self.entries
                .entry(name.clone())
                .or_insert_with(|| param.clone());
        }
    }

    /// Only the identifying parameters.
    pub fn identifying(&self) -> JobParameters {
        JobParameters {
            entries: self
                .entries
                .iter()
                .filter(|(_, p)| p.identifying)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The canonical text of the identifying parameters (`name=type:value;...` in name
    /// order, a secret as `***`): what the log shows, and its hash is the job instance key.
    pub fn identifying_text(&self) -> String {
        let mut out = String::new();
        for (name, param) in self.entries.iter().filter(|(_, p)| p.identifying) {
            out.push_str(name);
            out.push('=');
            out.push_str(param.value.type_name());
            out.push(':');
            out.push_str(&param.shown_text());
            out.push(';');
        }
        out
    }

    /// The job instance key: a hex digest of [`JobParameters::identifying_text`].
    pub fn job_key(&self) -> String {
        // FNV-1a, 128 bits: stable across versions and platforms, collision-safe for keys.
        const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
        const PRIME: u128 = 0x0000000001000000000000000000013B;
        let mut hash = OFFSET;
        for byte in self.identifying_text().bytes() {
            hash ^= u128::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
        format!("{hash:032x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spring_notation() {
        let mut p = JobParameters::new();
        p.insert_parsed("input=data/in.csv").unwrap();
        p.insert_parsed("count=5,integer").unwrap();
        p.insert_parsed("rate=0.5,double,false").unwrap();
        p.insert_parsed("list=\"a,b,c\"").unwrap();
        p.insert_parsed("quoted=\"say \"\"hi\"\", ok\",string,false")
            .unwrap();
        p.insert_parsed("day=2026-01-31,date").unwrap();
        assert_eq!(p.get_text("input").unwrap(), "data/in.csv");
        assert_eq!(p.get("count").unwrap().value, ParameterValue::Integer(5));
        assert!(!p.get("rate").unwrap().identifying);
        assert_eq!(p.get_text("list").unwrap(), "a,b,c");
        assert_eq!(p.get_text("quoted").unwrap(), "say \"hi\", ok");
        assert!(!p.get("quoted").unwrap().identifying);
        assert_eq!(p.get_text("day").unwrap(), "2026-01-31");
        assert!(p.insert_parsed("noequals").is_err());
        assert!(p.insert_parsed("n=abc,integer").is_err());
    }

    /// Spring Batch 5 writes `name=value,type,identifying` with Java class names for the
    /// type: each is read as the typed value, never as part of a string.
    #[test]
    fn parses_spring_batch_java_type_names() {
        let mut p = JobParameters::new();
        p.insert_parsed("id=5,java.lang.Long,true").unwrap();
        p.insert_parsed("n=7,java.lang.Integer").unwrap();
        p.insert_parsed("name=orders,java.lang.String,false")
            .unwrap();
        p.insert_parsed("rate=0.25,java.lang.Double").unwrap();
        p.insert_parsed("dry=true,java.lang.Boolean,false").unwrap();
        p.insert_parsed("day=2026-01-31,java.time.LocalDate")
            .unwrap();
        p.insert_parsed("at=2026-01-31T12:30:00,java.time.LocalDateTime")
            .unwrap();
        p.insert_parsed("when=2026-01-31T12:30:00+09:00,java.util.Date")
            .unwrap();
        assert_eq!(p.get("id").unwrap().value, ParameterValue::Integer(5));
        assert!(p.get("id").unwrap().identifying);
        assert_eq!(p.get("n").unwrap().value, ParameterValue::Integer(7));
        assert_eq!(
            p.get("name").unwrap().value,
            ParameterValue::String("orders".into())
        );
        assert!(!p.get("name").unwrap().identifying);
        assert_eq!(p.get("rate").unwrap().value, ParameterValue::Float(0.25));
        assert_eq!(p.get("dry").unwrap().value, ParameterValue::Bool(true));
        assert_eq!(p.get_text("day").unwrap(), "2026-01-31");
        assert_eq!(p.get_text("at").unwrap(), "2026-01-31T12:30:00+00:00");
        assert_eq!(p.get_text("when").unwrap(), "2026-01-31T03:30:00+00:00");
        let err = parse_error("id=5,java.lang.Object");
        assert!(
            err.message().contains("unknown type `java.lang.Object`"),
            "{err}"
        );
        let err = parse_error("id=five,java.lang.Long");
        assert!(err.message().contains("not a valid integer"), "{err}");
    }

    fn parse_error(spec: &str) -> Error {
        let mut p = JobParameters::new();
        let err = p.insert_parsed(spec).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Config, "{spec}: {err}");
        assert!(p.is_empty(), "{spec}: nothing added");
        err
    }

    #[test]
    fn unknown_type_flag_or_extra_field_is_an_error() {
        let err = parse_error("n=1,weird");
        assert_eq!(
            err.message(),
            "job parameter `n`: unknown type `weird`: use string, integer, float, bool, date or \
             datetime; a value containing a comma is written in double quotes, e.g. n=\"1,weird\""
        );
        let err = parse_error("list=a,b,c");
        assert!(err.message().contains("unknown type `b`"), "{err}");
        assert!(err.message().ends_with("e.g. list=\"a,b,c\""), "{err}");
        let err = parse_error("q=\"a\",b");
        assert!(
            err.message()
                .ends_with("(write q=\"value\"[,type[,identifying]])"),
            "{err}"
        );
        let err = parse_error("n=1,integer,maybe");
        assert_eq!(
            err.message(),
            "job parameter `n`: the identifying flag `maybe` is not true or false \
             (write n=value,type,true or n=value,type,false)"
        );
        let err = parse_error("ids=1,2,3,4");
        assert!(
            err.message()
                .contains("more fields than value,type,identifying"),
            "{err}"
        );
        assert!(err.message().contains("ids=\"1,2,3,4\""), "{err}");
        let err = parse_error("s=\"open");
        assert!(err.message().contains("never closed"), "{err}");
        let err = parse_error("s=\"a\"b");
        assert!(
            err.message()
                .contains("unexpected `b` after the quoted value"),
            "{err}"
        );
        let err = parse_error("n=1,");
        assert!(err.message().contains("unknown type ``"), "{err}");
    }

    #[test]
    fn quoted_values_keep_commas_and_take_a_type() {
        let mut p = JobParameters::new();
        p.insert_parsed("ids=\"1,2,3\"").unwrap();
        p.insert_parsed("n=\"42\",integer").unwrap();
        p.insert_parsed("empty=\"\"").unwrap();
        p.insert_parsed("plain=a=b").unwrap();
        assert_eq!(
            p.get("ids").unwrap().value,
            ParameterValue::String("1,2,3".into())
        );
        assert!(p.get("ids").unwrap().identifying);
        assert_eq!(p.get("n").unwrap().value, ParameterValue::Integer(42));
        assert_eq!(p.get_text("empty").unwrap(), "");
        assert_eq!(p.get_text("plain").unwrap(), "a=b");
    }

    #[test]
    fn key_ignores_non_identifying() {
        let mut a = JobParameters::new();
        a.insert_parsed("x=1").unwrap();
        let mut b = a.clone();
        b.insert_parsed("y=2,string,false").unwrap();
        assert_eq!(a.job_key(), b.job_key());
        b.insert_parsed("z=3").unwrap();
        assert_ne!(a.job_key(), b.job_key());
    }

    #[test]
    fn secrets_are_masked_and_references_kept() {
        let mut p = JobParameters::new();
        p.insert_parsed("db-password=Hunter2-marker").unwrap();
        p.insert_parsed("token=${API_TOKEN}").unwrap();
        p.insert_parsed("api-key=file:///run/secrets/key").unwrap();
        p.insert_parsed("input=in.csv").unwrap();
        assert_eq!(p.get_text("db-password").unwrap(), "Hunter2-marker");
        assert!(p.get("db-password").unwrap().is_secret());
        assert!(!p.get("token").unwrap().is_secret());
        assert!(!p.get("api-key").unwrap().is_secret());
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("Hunter2"), "{json}");
        assert!(
            json.contains(
                r#""db-password":{"type":"string","value":"***","identifying":true,"secret":true}"#
            ),
            "{json}"
        );
        assert!(json.contains("${API_TOKEN}"), "{json}");
        let shown = format!("{p:?} {}", p.identifying_text());
        assert!(!shown.contains("Hunter2"), "{shown}");
        assert!(shown.contains("db-password=string:***;"), "{shown}");
        let back: JobParameters = serde_json::from_str(&json).unwrap();
        let withheld = back.get("db-password").unwrap();
        assert_eq!(withheld.sensitivity, Sensitivity::Withheld);
        assert_eq!(withheld.value.to_text(), "***");
        assert_eq!(back.job_key(), p.job_key());
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        // A secret identifies as `***`: another password is the same job instance.
        let mut other = p.clone();
        other.insert_parsed("db-password=other-password").unwrap();
        assert_eq!(other.job_key(), p.job_key());
        // Numbers under secret-looking names are not secrets.
        p.insert_parsed("max-tokens=5,integer").unwrap();
        assert!(!p.get("max-tokens").unwrap().is_secret());
    }

    #[test]
    fn references() {
        assert!(is_reference("x", "${DB_PASSWORD}"));
        assert!(is_reference("x", "postgres://u:${file:/run/pw}@h/db"));
        assert!(is_reference("password", "file:///run/pw"));
        assert!(!is_reference("input", "file:///data/in.csv"));
        assert!(is_reference("x", "$${HOME} costs $5"));
        assert!(!is_reference("x", "costs $5"));
    }
}
