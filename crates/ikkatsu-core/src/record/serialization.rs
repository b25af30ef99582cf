//! [`Record`] as serde data: serialization in field order, and deserialization onto given
//! [`Fields`] ([`RecordSeed`], [`SharedFields`]) so that records of one shape share them.

use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{Fields, Record};

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (position, name) in self.fields.names.iter().enumerate() {
            // A string still in the text is written as it is, without making a `Value`.
            match self.str_at(position) {
                Some(text) => map.serialize_entry(name, text)?,
                None => {
                    if let Some(value) = self.get_at(position) {
                        map.serialize_entry(name, value)?;
                    }
                }
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RecordSeed::new(&Fields::empty()).deserialize(deserializer)
    }
}

/// Deserializes a [`Record`] laid out on given [`Fields`] (a JSON object is read into their
/// slots): a reader passes the fields of the previous record, so objects of the same shape
/// share one [`Fields`] and their keys are neither allocated nor hashed.
///
/// ```
/// use ikkatsu_core::record::{Fields, RecordSeed};
/// use serde::de::DeserializeSeed;
///
/// let fields = Fields::new(["a", "b"]);
/// let mut json = serde_json::Deserializer::from_str(r#"{"a": 1, "b": 2}"#);
/// let record = RecordSeed::new(&fields).deserialize(&mut json).unwrap();
/// assert!(std::sync::Arc::ptr_eq(record.fields(), &fields));
/// ```
pub struct RecordSeed<'a> {
    fields: &'a Arc<Fields>,
}

impl<'a> RecordSeed<'a> {
    /// A seed that starts every record on `fields`.
    pub fn new(fields: &'a Arc<Fields>) -> Self {
        RecordSeed { fields }
    }
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Record;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Record, D::Error> {
        deserializer.deserialize_map(RecordVisitor {
            fields: self.fields,
        })
    }
}

struct RecordVisitor<'a> {
    fields: &'a Arc<Fields>,
}

impl<'de> Visitor<'de> for RecordVisitor<'_> {
    type Value = Record;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a map")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Record, E> {
        Ok(Record::with_fields(Arc::clone(self.fields)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut record = Record::with_fields(Arc::clone(self.fields));
        let mut hint = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value: Value = map.next_value()?;
            record.insert_at(Some(hint), &key, value);
            hint += 1;
        }
        Ok(record)
    }
}

/// The fields a reader lays the next record on: those of the records it read before, so
/// the records of a file (objects with the same keys) share one [`Fields`].
///
/// ```
/// use ikkatsu_core::record::SharedFields;
///
/// let mut shared = SharedFields::new();
/// let first = shared.from_slice(br#"{"a": 1, "b": 2}"#).unwrap();
/// let second = shared.from_slice(br#"{"a": 3, "b": 4}"#).unwrap();
/// assert!(std::sync::Arc::ptr_eq(first.fields(), second.fields()));
/// ```
#[derive(Debug, Clone)]
pub struct SharedFields {
    fields: Arc<Fields>,
}

impl SharedFields {
    /// Starts with no fields.
    pub fn new() -> Self {
        SharedFields {
            fields: Fields::empty(),
        }
    }

    /// The fields the next record starts from.
    pub fn fields(&self) -> &Arc<Fields> {
        &self.fields
    }

    /// A seed deserializing the next record on the current fields; pass the record to
    /// [`learn`](SharedFields::learn) afterwards.
    pub fn seed(&self) -> RecordSeed<'_> {
        RecordSeed::new(&self.fields)
    }

    /// Takes the fields of `record` for the next records. Fields with many more names than
    /// the record has keys (objects whose keys keep changing) are not kept: the next record
    /// starts afresh, so the fields do not grow with the input.
    pub fn learn(&mut self, record: &Record) {
        let fields = record.fields();
        if Arc::ptr_eq(fields, &self.fields) {
            return;
        }
        self.fields = if fields.len() <= 2 * record.len() + 8 {
            Arc::clone(fields)
        } else {
            Fields::empty()
        };
    }

    /// Parses a JSON object into a record on the current fields and learns its fields.
    pub fn from_slice(&mut self, json: &[u8]) -> serde_json::Result<Record> {
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let record = self.seed().deserialize(&mut deserializer)?;
        deserializer.end()?;
        self.learn(&record);
        Ok(record)
    }
}

impl Default for SharedFields {
    fn default() -> Self {
        SharedFields::new()
    }
}

/// A map key, borrowed from the input when possible.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(key))
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(key.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, key: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(key))
    }
}
