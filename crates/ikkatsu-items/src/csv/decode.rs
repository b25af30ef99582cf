//! [`CsvItemDecoder`]: what a CSV row becomes. One decoder per kind of item, used by the
//! local [`CsvReader`](super::CsvReader) and (for records) by the CSV reader on a storage.

use std::marker::PhantomData;

use ikkatsu_core::{Record, Result};
use serde::de::DeserializeOwned;

use super::error::{csv_error, utf8_error};
use super::layout::RecordLayout;

/// Turns the rows of a CSV file (or object) into items.
///
/// A reader calls [`start`](CsvItemDecoder::start) when it opens a file and
/// [`decode`](CsvItemDecoder::decode) for every row after the header row. The row comes
/// in the `csv` crate's reusable [`csv::ByteRecord`], with its position set.
pub trait CsvItemDecoder: Send {
    /// The item a row becomes.
    type Item: Send + 'static;

    /// A new file (or object) starts, with the column names in effect: the `headers`
    /// property's, else the header row's, else none.
    fn start(&mut self, names: Option<&[String]>);

    /// The item of `row`. `name` names the file or object in messages, `names` are the
    /// column names given to [`start`](CsvItemDecoder::start).
    fn decode(
        &mut self,
        row: &csv::ByteRecord,
        name: &str,
        names: Option<&[String]>,
    ) -> Result<Self::Item>;
}

/// Rows as [`Record`]s: string values keyed by column name (`column1`, `column2`, ... for
/// columns without a name), in column order. The records of a file share their fields,
/// and the row's text stays in one string (see [`Record::from_text`]).
#[derive(Default)]
pub struct CsvRecordDecoder {
    layout: RecordLayout,
}

impl CsvItemDecoder for CsvRecordDecoder {
    type Item = Record;

    fn start(&mut self, _names: Option<&[String]>) {
        self.layout.clear();
    }

    fn decode(
        &mut self,
        row: &csv::ByteRecord,
        name: &str,
        names: Option<&[String]>,
    ) -> Result<Record> {
        self.layout.ensure(names, row.len());
        let Ok(text) = std::str::from_utf8(row.as_slice()) else {
            return Err(utf8_error(name, row, names));
        };
        let ranges = (0..row.len()).map_while(|index| row.range(index));
        // `None`: a field boundary splits a character, so a field is not UTF-8 on its own.
        self.layout
            .record_from_text(text.to_owned(), ranges)
            .ok_or_else(|| utf8_error(name, row, names))
    }
}

/// Rows as values of `T`, deserialized with serde (by column name when there are column
/// names, else by position).
pub struct CsvTypedDecoder<T> {
    header: Option<csv::ByteRecord>,
    _item: PhantomData<fn() -> T>,
}

impl<T> Default for CsvTypedDecoder<T> {
    fn default() -> Self {
        CsvTypedDecoder {
            header: None,
            _item: PhantomData,
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> CsvItemDecoder for CsvTypedDecoder<T> {
    type Item = T;

    fn start(&mut self, names: Option<&[String]>) {
        self.header = names.map(|names| csv::ByteRecord::from(names.to_vec()));
    }

    fn decode(&mut self, row: &csv::ByteRecord, name: &str, names: Option<&[String]>) -> Result<T> {
        row.deserialize::<T>(self.header.as_ref())
            .map_err(|err| csv_error(name, err, names))
    }
}
