//! [`CsvItemEncoder`]: what an item becomes as a CSV row. The record encoder is used by the
//! local [`CsvWriter`](super::CsvWriter) and by the CSV writer on a storage.

use std::sync::Arc;

use ikkatsu_core::record::Fields;
use ikkatsu_core::{Error, ErrorKind, Record, Result};
use serde_json::Value;

/// Turns items into CSV rows.
pub trait CsvItemEncoder: Send {
    /// The item written as a row.
    type Item: Sync;

    /// A new file (or part) starts: forget what was cached about earlier items.
    fn start(&mut self);

    /// The columns of the header row when no `columns` are configured: those of the first
    /// item written.
    fn columns_of(item: &Self::Item) -> Vec<String>;

    /// Encodes `item` into `row` (cleared first). `columns` are the configured columns, or
    /// those of the first item written; `configured` says which.
    fn encode(
        &mut self,
        item: &Self::Item,
        columns: &[String],
        configured: bool,
        row: &mut csv::ByteRecord,
    ) -> Result<()>;
}

/// [`Record`]s as CSV rows, one field per column (a missing field empty, fields outside
/// the columns not written). Strings are written as they are, `null` as an empty field,
/// numbers and booleans as JSON text, arrays and objects as JSON.
#[derive(Default)]
pub struct CsvRecordEncoder {
    /// The JSON text of a non-string value, reused.
    text: Vec<u8>,
    /// The fields of the last record written and the slot of every column in them (`None`:
    /// not a field), reused while records share those fields.
    slots: Option<(Arc<Fields>, Vec<Option<usize>>)>,
}

impl CsvItemEncoder for CsvRecordEncoder {
    type Item = Record;

    fn start(&mut self) {
        self.slots = None;
    }

    fn columns_of(item: &Record) -> Vec<String> {
        item.keys().cloned().collect()
    }

    fn encode(
        &mut self,
        item: &Record,
        columns: &[String],
        _configured: bool,
        row: &mut csv::ByteRecord,
    ) -> Result<()> {
        row.clear();
        // Records of one file share their fields: the column → slot mapping is made once
        // per distinct fields, not once per record.
        let slots = match &self.slots {
            Some((fields, slots)) if Arc::ptr_eq(fields, item.fields()) => slots,
            _ => {
                let fields = item.fields();
                let slots = columns.iter().map(|column| fields.position(column));
                &self.slots.insert((Arc::clone(fields), slots.collect())).1
            }
        };
        for slot in slots {
            // A string still in the record's text is written from there.
            if let Some(text) = slot.and_then(|slot| item.str_at(slot)) {
                row.push_field(text.as_bytes());
                continue;
            }
            match slot.and_then(|slot| item.get_at(slot)) {
                None | Some(Value::Null) => row.push_field(b""),
                Some(Value::String(text)) => row.push_field(text.as_bytes()),
                Some(other) => {
                    self.text.clear();
                    // Writing JSON into a Vec cannot fail.
                    if let Err(err) = serde_json::to_writer(&mut self.text, other) {
                        return Err(Error::new(
                            ErrorKind::Unexpected,
                            format!("cannot render a CSV field as JSON: {err}"),
                        ));
                    }
                    row.push_field(&self.text);
                }
            }
        }
        Ok(())
    }
}
