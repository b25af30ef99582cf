//! Arrow values read from Parquet, as JSON values of a [`Record`].

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type,
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use chrono::{NaiveDateTime, SecondsFormat};
use ikkatsu_core::Record;
use ikkatsu_core::record::Fields as RecordFields;
use serde_json::{Map, Number, Value};

/// Whether values of `data_type` can be turned into JSON (checked when an object is
/// opened, so that an unsupported column is reported once, by name).
pub(crate) fn supported(data_type: &DataType) -> bool {
    match data_type {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_)
        | DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(_, _)
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => true,
        DataType::Time32(unit) => matches!(unit, TimeUnit::Second | TimeUnit::Millisecond),
        DataType::Time64(unit) => matches!(unit, TimeUnit::Microsecond | TimeUnit::Nanosecond),
        DataType::List(field) | DataType::LargeList(field) | DataType::FixedSizeList(field, _) => {
            supported(field.data_type())
        }
        DataType::Struct(fields) => fields.iter().all(|field| supported(field.data_type())),
        DataType::Map(entries, _) => supported(entries.data_type()),
        DataType::Dictionary(keys, values) => keys.is_integer() && supported(values),
        _ => false,
    }
}

/// The rows of `batch` as records (keys in column order); a row whose value cannot be
/// represented is an `Err` naming the column.
///
/// The records of a batch share one [`RecordFields`], and so do those of the next batches
/// while their schema has the same column names (`shared` holds the fields of the last
/// batch).
pub(crate) fn batch_to_records(
    batch: &RecordBatch,
    shared: &mut Option<Arc<RecordFields>>,
) -> Vec<Result<Record, String>> {
    let schema = batch.schema();
    let fields = schema.fields();
    let record_fields = match shared {
        Some(known)
            if known.len() == fields.len()
                && known
                    .names()
                    .iter()
                    .zip(fields.iter())
                    .all(|(a, b)| a == b.name()) =>
        {
            Arc::clone(known)
        }
        _ => {
            let made = RecordFields::new(fields.iter().map(|field| field.name().as_str()));
            *shared = Some(Arc::clone(&made));
            made
        }
    };
    // Columns of the same name share the slot of the first one; the last one's value wins.
    let slots: Vec<usize> = fields
        .iter()
        .map(|field| record_fields.position(field.name()).unwrap_or_default())
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            let mut values = vec![None; record_fields.len()];
            for ((field, column), slot) in fields.iter().zip(batch.columns()).zip(&slots) {
                let value = cell(column.as_ref(), row)
                    .map_err(|err| format!("column `{}`: {err}", field.name()))?;
                values[*slot] = Some(value);
            }
            Record::from_values(Arc::clone(&record_fields), values)
                .ok_or_else(|| "the row has more values than columns".to_string())
        })
        .collect()
}

fn float(value: f64) -> Value {
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

fn timestamp(value: Option<NaiveDateTime>, zoned: bool) -> Result<Value, String> {
    let value = value.ok_or_else(|| "the timestamp is out of range".to_string())?;
    Ok(Value::String(if zoned {
        value.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true)
    } else {
        value.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
    }))
}

fn text(bytes: &[u8]) -> Result<Value, String> {
    std::str::from_utf8(bytes)
        .map(|text| Value::String(text.to_string()))
        .map_err(|_| "the binary value is not UTF-8 text".to_string())
}

/// The value at `row` of `array`.
fn cell(array: &dyn Array, row: usize) -> Result<Value, String> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    let value = match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Value::from(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => Value::from(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::from(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => Value::from(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => Value::from(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => Value::from(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => float(array.as_primitive::<Float16Type>().value(row).to_f64()),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_string()),
        DataType::Binary => text(array.as_binary::<i32>().value(row))?,
        DataType::LargeBinary => text(array.as_binary::<i64>().value(row))?,
        DataType::BinaryView => text(array.as_binary_view().value(row))?,
        DataType::FixedSizeBinary(_) => text(array.as_fixed_size_binary().value(row))?,
        DataType::Date32 => date(array.as_primitive::<Date32Type>().value_as_date(row))?,
        DataType::Date64 => date(array.as_primitive::<Date64Type>().value_as_date(row))?,
        DataType::Timestamp(unit, zone) => {
            let zoned = zone.is_some();
            let value = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value_as_datetime(row),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value_as_datetime(row),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .value_as_datetime(row),
                TimeUnit::Nanosecond => array
                    .as_primitive::<TimestampNanosecondType>()
                    .value_as_datetime(row),
            };
            timestamp(value, zoned)?
        }
        DataType::Time32(TimeUnit::Second) => {
            time(array.as_primitive::<Time32SecondType>().value_as_time(row))?
        }
        DataType::Time32(_) => time(
            array
                .as_primitive::<Time32MillisecondType>()
                .value_as_time(row),
        )?,
        DataType::Time64(TimeUnit::Microsecond) => time(
            array
                .as_primitive::<Time64MicrosecondType>()
                .value_as_time(row),
        )?,
        DataType::Time64(_) => time(
            array
                .as_primitive::<Time64NanosecondType>()
                .value_as_time(row),
        )?,
        DataType::Decimal32(_, _) => {
            Value::String(array.as_primitive::<Decimal32Type>().value_as_string(row))
        }
        DataType::Decimal64(_, _) => {
            Value::String(array.as_primitive::<Decimal64Type>().value_as_string(row))
        }
        DataType::Decimal128(_, _) => {
            Value::String(array.as_primitive::<Decimal128Type>().value_as_string(row))
        }
        DataType::Decimal256(_, _) => {
            Value::String(array.as_primitive::<Decimal256Type>().value_as_string(row))
        }
        DataType::List(_) => list(array.as_list::<i32>().value(row).as_ref())?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(row).as_ref())?,
        DataType::FixedSizeList(_, _) => list(array.as_fixed_size_list().value(row).as_ref())?,
        DataType::Struct(fields) => {
            let array = array.as_struct();
            let mut object = Map::with_capacity(fields.len());
            for (field, column) in fields.iter().zip(array.columns()) {
                object.insert(field.name().clone(), cell(column.as_ref(), row)?);
            }
            Value::Object(object)
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut object = Map::with_capacity(entries.len());
            for index in 0..entries.len() {
                let key = match cell(keys.as_ref(), index)? {
                    Value::String(key) => key,
                    other => other.to_string(),
                };
                object.insert(key, cell(values.as_ref(), index)?);
            }
            Value::Object(object)
        }
        DataType::Dictionary(_, _) => {
            let dictionary = array.as_any_dictionary();
            let key = cell(dictionary.keys(), row)?
                .as_u64()
                .ok_or_else(|| "a dictionary key is negative".to_string())?;
            let key = usize::try_from(key).map_err(|_| "a dictionary key is too large")?;
            cell(dictionary.values().as_ref(), key)?
        }
        other => return Err(format!("values of type {other} are not supported")),
    };
    Ok(value)
}

fn date(value: Option<chrono::NaiveDate>) -> Result<Value, String> {
    value
        .map(|date| Value::String(date.format("%Y-%m-%d").to_string()))
        .ok_or_else(|| "the date is out of range".to_string())
}

fn time(value: Option<chrono::NaiveTime>) -> Result<Value, String> {
    value
        .map(|time| Value::String(time.format("%H:%M:%S%.f").to_string()))
        .ok_or_else(|| "the time is out of range".to_string())
}

fn list(values: &dyn Array) -> Result<Value, String> {
    (0..values.len())
        .map(|index| cell(values, index))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}
