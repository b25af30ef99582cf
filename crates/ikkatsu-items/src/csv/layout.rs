//! [`RecordLayout`]: the [`Fields`] that the records of one CSV file (or object) share.

use std::sync::Arc;

use ikkatsu_core::Record;
use ikkatsu_core::record::Fields;
use serde_json::Value;

/// The [`Fields`] of the records made from a file's rows, shared by all of them, and the
/// slot of every column (columns of the same name share the slot of the first one: the last
/// of them wins, as when inserting the fields one by one).
#[derive(Default)]
pub(crate) struct RecordLayout {
    /// The record key of every column (the column names, then `columnN`).
    keys: Vec<String>,
    fields: Option<Arc<Fields>>,
    /// The slot of every column in `fields`.
    slots: Vec<usize>,
    /// Whether column `i` is slot `i` for every column (no repeated names).
    identity: bool,
}

impl RecordLayout {
    /// Makes the layout cover rows of `len` fields, with the column names `names`.
    pub(crate) fn ensure(&mut self, names: Option<&[String]>, len: usize) {
        if self.fields.is_some() && self.keys.len() >= len {
            return;
        }
        extend_keys(&mut self.keys, names, len);
        let mut unique: Vec<&str> = Vec::with_capacity(self.keys.len());
        self.slots.clear();
        for key in &self.keys {
            let slot = match unique.iter().position(|name| *name == key.as_str()) {
                Some(slot) => slot,
                None => {
                    unique.push(key);
                    unique.len() - 1
                }
            };
            self.slots.push(slot);
        }
        self.identity = unique.len() == self.keys.len();
        self.fields = Some(Fields::new(unique));
    }

    /// Forgets the layout (a new file may have other columns).
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.fields = None;
        self.slots.clear();
    }

    /// The record of a row of `row_len` fields (at most as many as
    /// [`ensure`](Self::ensure) was given).
    pub(crate) fn record(&self, row_len: usize, row: impl Iterator<Item = String>) -> Record {
        let fields = match &self.fields {
            Some(fields) => Arc::clone(fields),
            None => Fields::empty(),
        };
        let len = fields.len();
        let values: Vec<Option<Value>> = if self.identity && row_len == len {
            row.map(|field| Some(Value::String(field))).collect()
        } else {
            let mut values = vec![None; len];
            for (slot, field) in self.slots.iter().zip(row) {
                values[*slot] = Some(Value::String(field));
            }
            values
        };
        // `values` has one slot per field by construction.
        Record::from_values(fields, values).unwrap_or_default()
    }

    /// The record of a row whose fields are `text[range]` for each range (at most as many
    /// as [`ensure`](Self::ensure) was given): the strings stay in `text` (see
    /// [`Record::from_text`]). `None` when a range is not within `text` on character
    /// boundaries.
    pub(crate) fn record_from_text(
        &self,
        text: String,
        ranges: impl Iterator<Item = std::ops::Range<usize>>,
    ) -> Option<Record> {
        let fields = match &self.fields {
            Some(fields) => Arc::clone(fields),
            None => Fields::empty(),
        };
        Record::from_text(fields, text, self.slots.iter().copied().zip(ranges))
    }
}

/// Extends `keys` to `len` column names: `names` where given, else `column1`, `column2`, ...
pub(crate) fn extend_keys(keys: &mut Vec<String>, names: Option<&[String]>, len: usize) {
    while keys.len() < len {
        let index = keys.len();
        keys.push(match names.and_then(|n| n.get(index)) {
            Some(name) => name.clone(),
            None => format!("column{}", index + 1),
        });
    }
}
