//! The schema of a Parquet writer: field types as written in YAML, inference from records,
//! and record values converted to column values.

use std::fmt;
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use indexmap::IndexMap;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The type of a Parquet column, as named in a writer's `schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ParquetFieldType {
    /// UTF-8 text (`string`). Numbers and booleans are written as their text, objects and
    /// arrays as JSON.
    String,
    /// 32-bit signed integer (`int32`).
    Int32,
    /// 64-bit signed integer (`int64`).
    Int64,
    /// 32-bit float (`float32`).
    Float32,
    /// 64-bit float (`float64`).
    Float64,
    /// `true` / `false` (`boolean`, alias `bool`).
    Boolean,
    /// A calendar date from `YYYY-MM-DD` text (`date`; Parquet DATE).
    Date,
    /// An instant from RFC 3339 text (`2024-05-01T12:00:00Z`; without an offset, UTC),
    /// stored in microseconds, UTC (`timestamp`).
    Timestamp,
}

impl ParquetFieldType {
    const NAMES: &'static str = "string, int32, int64, float32, float64, boolean, date, timestamp";

    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            ParquetFieldType::String => "string",
            ParquetFieldType::Int32 => "int32",
            ParquetFieldType::Int64 => "int64",
            ParquetFieldType::Float32 => "float32",
            ParquetFieldType::Float64 => "float64",
            ParquetFieldType::Boolean => "boolean",
            ParquetFieldType::Date => "date",
            ParquetFieldType::Timestamp => "timestamp",
        }
    }

    /// The type named `name` (or an alias).
    pub fn parse(name: &str) -> Option<ParquetFieldType> {
        Some(match name {
            "string" => ParquetFieldType::String,
            "int32" => ParquetFieldType::Int32,
            "int64" => ParquetFieldType::Int64,
            "float32" => ParquetFieldType::Float32,
            "float64" => ParquetFieldType::Float64,
            "boolean" | "bool" => ParquetFieldType::Boolean,
            "date" => ParquetFieldType::Date,
            "timestamp" => ParquetFieldType::Timestamp,
            _ => return None,
        })
    }

    fn data_type(self) -> DataType {
        match self {
            ParquetFieldType::String => DataType::Utf8,
            ParquetFieldType::Int32 => DataType::Int32,
            ParquetFieldType::Int64 => DataType::Int64,
            ParquetFieldType::Float32 => DataType::Float32,
            ParquetFieldType::Float64 => DataType::Float64,
            ParquetFieldType::Boolean => DataType::Boolean,
            ParquetFieldType::Date => DataType::Date32,
            ParquetFieldType::Timestamp => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
            }
        }
    }
}

impl fmt::Display for ParquetFieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ParquetFieldType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        ParquetFieldType::parse(&name).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown Parquet type `{name}`, expected one of: {}",
                ParquetFieldType::NAMES
            ))
        })
    }
}

const UTC: &str = "UTC";

/// One field of a Parquet writer's `schema`: written in YAML as a type name
/// (`amount: float64`, nullable) or as `{ type: float64, nullable: false }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParquetField {
    /// The column type.
    #[serde(rename = "type")]
    pub field_type: ParquetFieldType,
    /// Whether the value may be null or missing (default `true`).
    pub nullable: bool,
}

impl ParquetField {
    /// A nullable field of `field_type`.
    pub fn new(field_type: ParquetFieldType) -> Self {
        ParquetField {
            field_type,
            nullable: true,
        }
    }
}

impl<'de> Deserialize<'de> for ParquetField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;

        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = ParquetField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a Parquet type ({}) or {{ type: TYPE, nullable: BOOL }}",
                    ParquetFieldType::NAMES
                )
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<ParquetField, E> {
                ParquetFieldType::parse(name)
                    .map(ParquetField::new)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "unknown Parquet type `{name}`, expected one of: {}",
                            ParquetFieldType::NAMES
                        ))
                    })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ParquetField, A::Error> {
                let mut field_type = None;
                let mut nullable = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "type" => field_type = Some(map.next_value::<ParquetFieldType>()?),
                        "nullable" => nullable = Some(map.next_value::<bool>()?),
                        other => {
                            return Err(de::Error::unknown_field(other, &["type", "nullable"]));
                        }
                    }
                }
                Ok(ParquetField {
                    field_type: field_type.ok_or_else(|| de::Error::missing_field("type"))?,
                    nullable: nullable.unwrap_or(true),
                })
            }
        }

        deserializer.deserialize_any(FieldVisitor)
    }
}

/// A writer's schema: fields in column order.
pub(crate) type Fields = IndexMap<String, ParquetField>;

/// The Arrow schema of `fields`.
pub(crate) fn arrow_schema(fields: &Fields) -> Schema {
    Schema::new(
        fields
            .iter()
            .map(|(name, field)| Field::new(name, field.field_type.data_type(), field.nullable))
            .collect::<Vec<_>>(),
    )
}

/// The kind of a JSON value for inference; `None` for null.
fn kind(value: &Value) -> Option<ParquetFieldType> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some(ParquetFieldType::Boolean),
        Value::Number(n) if n.is_i64() => Some(ParquetFieldType::Int64),
        Value::Number(_) => Some(ParquetFieldType::Float64),
        _ => Some(ParquetFieldType::String),
    }
}

/// A schema for `records`: every key in order of first appearance, nullable, typed by its
/// values (integers and floats together are `float64`, any other mix is `string`, only
/// nulls is `string`).
pub(crate) fn infer(records: &[ikkatsu_core::Record]) -> Fields {
    let mut kinds: IndexMap<String, Option<ParquetFieldType>> = IndexMap::new();
    for record in records {
        for (key, value) in record {
            let found = kind(value);
            let entry = kinds.entry(key.clone()).or_insert(None);
            *entry = match (*entry, found) {
                (None, found) => found,
                (known, None) => known,
                (Some(a), Some(b)) if a == b => Some(a),
                (Some(ParquetFieldType::Int64), Some(ParquetFieldType::Float64))
                | (Some(ParquetFieldType::Float64), Some(ParquetFieldType::Int64)) => {
                    Some(ParquetFieldType::Float64)
                }
                _ => Some(ParquetFieldType::String),
            };
        }
    }
    kinds
        .into_iter()
        .map(|(name, kind)| {
            (
                name,
                ParquetField::new(kind.unwrap_or(ParquetFieldType::String)),
            )
        })
        .collect()
}

/// One value converted for its column.
#[derive(Debug)]
pub(crate) enum Cell<'a> {
    Null,
    Text(std::borrow::Cow<'a, str>),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Boolean(bool),
    Date(i32),
    Timestamp(i64),
}

impl Cell<'_> {
    /// About how many bytes the value takes.
    pub(crate) fn size(&self) -> u64 {
        match self {
            Cell::Null | Cell::Boolean(_) => 1,
            Cell::Text(text) => text.len() as u64 + 4,
            Cell::Int32(_) | Cell::Float32(_) | Cell::Date(_) => 4,
            Cell::Int64(_) | Cell::Float64(_) | Cell::Timestamp(_) => 8,
        }
    }
}

/// A short description of a value for messages.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    let shown = if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    };
    match value {
        Value::String(_) => format!("the string {shown}"),
        Value::Number(_) => format!("the number {shown}"),
        Value::Bool(_) => format!("the boolean {shown}"),
        Value::Array(_) => format!("an array {shown}"),
        Value::Object(_) => format!("an object {shown}"),
        Value::Null => "null".to_string(),
    }
}

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Converts `value` for a column of `field`; the error says what was expected and found.
pub(crate) fn convert<'a>(
    value: Option<&'a Value>,
    field: &ParquetField,
) -> Result<Cell<'a>, String> {
    let value = match value {
        None | Some(Value::Null) => {
            return if field.nullable {
                Ok(Cell::Null)
            } else {
                Err(format!(
                    "the field is {} but not nullable (type {})",
                    if value.is_none() { "missing" } else { "null" },
                    field.field_type
                ))
            };
        }
        Some(value) => value,
    };
    let mismatch = || {
        format!(
            "expected {}, found {}",
            match field.field_type {
                ParquetFieldType::Date => "a date (`YYYY-MM-DD`)",
                ParquetFieldType::Timestamp => "a timestamp (RFC 3339, `2024-05-01T12:00:00Z`)",
                other => other.as_str(),
            },
            describe(value)
        )
    };
    // Text that is empty stands for null in typed (non-string) columns: CSV has no null.
    if let Value::String(text) = value
        && field.field_type != ParquetFieldType::String
        && text.trim().is_empty()
    {
        return convert(None, field).map_err(|_| mismatch());
    }
    let cell = match field.field_type {
        ParquetFieldType::String => match value {
            Value::String(text) => Cell::Text(text.as_str().into()),
            other => Cell::Text(other.to_string().into()),
        },
        ParquetFieldType::Int64 => Cell::Int64(match value {
            Value::Number(n) => n.as_i64().ok_or_else(mismatch)?,
            Value::String(text) => text.trim().parse().map_err(|_| mismatch())?,
            _ => return Err(mismatch()),
        }),
        ParquetFieldType::Int32 => {
            let wide: i64 = match value {
                Value::Number(n) => n.as_i64().ok_or_else(mismatch)?,
                Value::String(text) => text.trim().parse().map_err(|_| mismatch())?,
                _ => return Err(mismatch()),
            };
            Cell::Int32(
                i32::try_from(wide)
                    .map_err(|_| format!("{} does not fit in int32", describe(value)))?,
            )
        }
        ParquetFieldType::Float64 | ParquetFieldType::Float32 => {
            let float: f64 = match value {
                Value::Number(n) => n.as_f64().ok_or_else(mismatch)?,
                Value::String(text) => text.trim().parse().map_err(|_| mismatch())?,
                _ => return Err(mismatch()),
            };
            if field.field_type == ParquetFieldType::Float32 {
                Cell::Float32(float as f32)
            } else {
                Cell::Float64(float)
            }
        }
        ParquetFieldType::Boolean => Cell::Boolean(match value {
            Value::Bool(b) => *b,
            Value::String(text) if text.trim().eq_ignore_ascii_case("true") => true,
            Value::String(text) if text.trim().eq_ignore_ascii_case("false") => false,
            _ => return Err(mismatch()),
        }),
        ParquetFieldType::Date => {
            let Value::String(text) = value else {
                return Err(mismatch());
            };
            let date =
                NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| mismatch())?;
            Cell::Date(chrono::Datelike::num_days_from_ce(&date) - EPOCH_DAYS_FROM_CE)
        }
        ParquetFieldType::Timestamp => {
            let Value::String(text) = value else {
                return Err(mismatch());
            };
            let text = text.trim();
            let micros = match DateTime::parse_from_rfc3339(text) {
                Ok(instant) => instant.timestamp_micros(),
                Err(_) => ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                    .iter()
                    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
                    .ok_or_else(mismatch)?
                    .and_utc()
                    .timestamp_micros(),
            };
            Cell::Timestamp(micros)
        }
    };
    Ok(cell)
}

/// The builder of one column.
pub(crate) enum ColumnBuilder {
    String(StringBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl ColumnBuilder {
    pub(crate) fn new(field_type: ParquetFieldType) -> Self {
        match field_type {
            ParquetFieldType::String => ColumnBuilder::String(StringBuilder::new()),
            ParquetFieldType::Int32 => ColumnBuilder::Int32(Int32Builder::new()),
            ParquetFieldType::Int64 => ColumnBuilder::Int64(Int64Builder::new()),
            ParquetFieldType::Float32 => ColumnBuilder::Float32(Float32Builder::new()),
            ParquetFieldType::Float64 => ColumnBuilder::Float64(Float64Builder::new()),
            ParquetFieldType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::new()),
            ParquetFieldType::Date => ColumnBuilder::Date(Date32Builder::new()),
            ParquetFieldType::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone(UTC))
            }
        }
    }

    /// Appends a cell converted for this column's type (by [`convert`]).
    pub(crate) fn append(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (ColumnBuilder::String(b), Cell::Text(text)) => b.append_value(text),
            (ColumnBuilder::Int32(b), Cell::Int32(v)) => b.append_value(v),
            (ColumnBuilder::Int64(b), Cell::Int64(v)) => b.append_value(v),
            (ColumnBuilder::Float32(b), Cell::Float32(v)) => b.append_value(v),
            (ColumnBuilder::Float64(b), Cell::Float64(v)) => b.append_value(v),
            (ColumnBuilder::Boolean(b), Cell::Boolean(v)) => b.append_value(v),
            (ColumnBuilder::Date(b), Cell::Date(v)) => b.append_value(v),
            (ColumnBuilder::Timestamp(b), Cell::Timestamp(v)) => b.append_value(v),
            // Null, and (unreachable: `convert` follows the field type) a mismatch.
            (builder, _) => builder.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::String(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float32(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
        }
    }

    /// The column built so far; the builder starts over empty.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::String(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float32(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records(values: Value) -> Vec<ikkatsu_core::Record> {
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_object().unwrap().clone().into())
            .collect()
    }

    #[test]
    fn inference_widens() {
        let fields = infer(&records(json!([
            {"id": 1, "x": 1, "name": "a", "ok": true, "n": null, "mixed": 1, "nested": {"a": 1}},
            {"id": 2, "x": 1.5, "name": "b", "ok": false, "n": null, "mixed": "one"}
        ])));
        let types: Vec<(&str, ParquetFieldType)> = fields
            .iter()
            .map(|(k, f)| (k.as_str(), f.field_type))
            .collect();
        assert_eq!(
            types,
            [
                ("id", ParquetFieldType::Int64),
                ("x", ParquetFieldType::Float64),
                ("name", ParquetFieldType::String),
                ("ok", ParquetFieldType::Boolean),
                ("n", ParquetFieldType::String),
                ("mixed", ParquetFieldType::String),
                ("nested", ParquetFieldType::String),
            ]
        );
        assert!(fields.values().all(|f| f.nullable));
    }

    #[test]
    fn conversions() {
        let int = ParquetField::new(ParquetFieldType::Int64);
        assert!(matches!(
            convert(Some(&json!("42")), &int),
            Ok(Cell::Int64(42))
        ));
        assert!(matches!(convert(Some(&json!(" ")), &int), Ok(Cell::Null)));
        let err = convert(Some(&json!("4x")), &int).err().unwrap();
        assert_eq!(err, "expected int64, found the string \"4x\"");
        let strict = ParquetField {
            field_type: ParquetFieldType::Int32,
            nullable: false,
        };
        assert!(convert(None, &strict).unwrap_err().contains("missing"));
        assert!(
            convert(Some(&json!(5_000_000_000i64)), &strict)
                .unwrap_err()
                .contains("int32")
        );
        let date = ParquetField::new(ParquetFieldType::Date);
        assert!(matches!(
            convert(Some(&json!("1970-01-02")), &date),
            Ok(Cell::Date(1))
        ));
        let ts = ParquetField::new(ParquetFieldType::Timestamp);
        assert!(matches!(
            convert(Some(&json!("1970-01-01T00:00:01+01:00")), &ts),
            Ok(Cell::Timestamp(-3_599_000_000))
        ));
        assert!(matches!(
            convert(Some(&json!("1970-01-01 00:00:01")), &ts),
            Ok(Cell::Timestamp(1_000_000))
        ));
        let text = ParquetField::new(ParquetFieldType::String);
        assert!(matches!(convert(Some(&json!(12)), &text), Ok(Cell::Text(t)) if t == "12"));
        let boolean = ParquetField::new(ParquetFieldType::Boolean);
        assert!(matches!(
            convert(Some(&json!("TRUE")), &boolean),
            Ok(Cell::Boolean(true))
        ));
    }

    #[test]
    fn fields_deserialize_from_names_or_maps() {
        let fields: Fields = serde_json::from_value(json!({
            "id": "int64",
            "amount": {"type": "float64", "nullable": false},
            "ok": "bool"
        }))
        .unwrap();
        assert_eq!(fields["id"], ParquetField::new(ParquetFieldType::Int64));
        assert!(!fields["amount"].nullable);
        assert_eq!(fields["ok"].field_type, ParquetFieldType::Boolean);
        let err = serde_json::from_value::<Fields>(json!({"x": "decimal"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown Parquet type `decimal`"), "{err}");
        // Saved state round-trips.
        let back: Fields = serde_json::from_value(serde_json::to_value(&fields).unwrap()).unwrap();
        assert_eq!(back, fields);
    }
}
