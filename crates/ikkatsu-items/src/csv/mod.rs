//! CSV files: [`CsvItemReader`] / [`CsvItemWriter`] for [`Record`](ikkatsu_core::Record)s
//! (YAML jobs), [`CsvRowItemReader`] / [`CsvRowItemWriter`] for [`CsvRow`]s (a row's fields
//! as text by column name, the cheapest item to read and write), and [`TypedCsvItemReader`] /
//! [`TypedCsvItemWriter`] for Rust types implementing serde's `Deserialize` / `Serialize`.
//!
//! The three readers are one [`CsvReader`] with a different [`CsvItemDecoder`] (what a row
//! becomes); the record and row writers are one [`CsvWriter`] with a different
//! [`CsvItemEncoder`]. The record decoder and encoder are also what the CSV reader and
//! writer on a storage ([`ObjectItemReader::csv`](crate::object::ObjectItemReader::csv),
//! [`ObjectItemWriter::csv`](crate::object::ObjectItemWriter::csv)) use: a local file is
//! only read and written through a faster source and sink (the `csv` crate on a
//! `std::fs::File`).
//!
//! All readers save their position (byte offset, line and record number) in the step's
//! execution context after every chunk and resume exactly at the next row on restart. All
//! writers save the number of bytes written and durable so far; on restart the file is
//! truncated to that size and writing continues from there, so the output has neither
//! duplicates nor gaps. A write or commit that fails drops what was written since the last
//! commit: a retry writes the chunk once, a failed run leaves the committed rows only.
//!
//! The readers read a chunk's rows in one [`ItemReader::read_chunk`](ikkatsu_core::ItemReader::read_chunk)
//! call, into one reused row buffer; the writers build every row in one reused buffer. A
//! [`CsvRow`] costs one allocation (two beyond 16 fields), a typed item what `T` itself owns,
//! a [`Record`](ikkatsu_core::Record) two (the row's text and its value slots; all records
//! of a file share their field names, and a field becomes a JSON value only when it is read
//! by reference or changed).

pub(crate) mod config;
mod decode;
mod encode;
mod error;
mod layout;
mod reader;
mod row;
mod writer;

use std::path::PathBuf;

use ikkatsu_core::{ExecutionContext, Result};

pub use decode::{CsvItemDecoder, CsvRecordDecoder, CsvTypedDecoder};
pub use encode::{CsvItemEncoder, CsvRecordEncoder};
pub use reader::CsvReader;
pub use row::{CsvRow, CsvRowDecoder, CsvRowEncoder};
pub use writer::{CsvWriter, TypedCsvItemWriter};

use config::csv_config;
pub(crate) use error::{ascii_byte, field_count_error, field_name};

/// Reads a CSV file as [`Record`](ikkatsu_core::Record)s: one per row, keys from the header
/// row (or the `columns` property, or `column1`, `column2`, ...), all values strings, in
/// column order.
///
/// Restartable: the position is saved under `csv.reader.offset`, `csv.reader.line` and
/// `csv.reader.record` (see [`CsvReader::with_context_prefix`]).
pub type CsvItemReader = CsvReader<CsvRecordDecoder>;

/// Reads a CSV file as [`CsvRow`]s: one per row, with the column names of the header row
/// (or the `columns` property, or `column1`, `column2`, ...) shared by all rows.
///
/// Restartable like [`CsvItemReader`], with the same context keys and error messages.
pub type CsvRowItemReader = CsvReader<CsvRowDecoder>;

/// Reads a CSV file as values of `T`, deserialized with serde from each row (by column name
/// when there is a header row or `headers`, else by position), reusing one row buffer.
///
/// Restartable like [`CsvItemReader`].
///
/// ```
/// # use ikkatsu_items::csv::{CsvReaderConfig, TypedCsvItemReader};
/// #[derive(serde::Deserialize)]
/// struct City { name: String, population: u64 }
/// let reader = TypedCsvItemReader::<City>::new(CsvReaderConfig::new("cities.csv"))?;
/// # Ok::<(), ikkatsu_core::Error>(())
/// ```
pub type TypedCsvItemReader<T> = CsvReader<CsvTypedDecoder<T>>;

/// Writes [`Record`](ikkatsu_core::Record)s as CSV rows. Strings are written as they are,
/// `null` as an empty field, numbers and booleans as JSON text, arrays and objects as JSON.
///
/// Restart-safe: at every chunk commit the output is flushed and its size saved under
/// `csv.writer.offset` (with `csv.writer.columns` and `csv.writer.header-written`); a
/// restarted step truncates the file to that size and continues. A failed write or update
/// drops what was written since the last commit.
pub type CsvItemWriter = CsvWriter<CsvRecordEncoder>;

/// Writes [`CsvRow`]s as CSV rows.
///
/// With the `columns` property, those columns are written, looked up by name in every row
/// (missing ones empty). Without it, every row is written as it is and the header row holds
/// the column names of the first row written.
///
/// Restart-safe like [`CsvItemWriter`] (same context keys).
pub type CsvRowItemWriter = CsvWriter<CsvRowEncoder>;

csv_config! {
    reader
    /// Properties of a CSV reader (`csv` in job YAML).
    CsvReaderConfig {
        /// The file to read.
        pub path: PathBuf,
    }
    /// A configuration reading `path` with the defaults: `,` delimiter, `"` quote, header row.
    fn new(path: impl Into<PathBuf>) {
        path: path.into(),
    }
}

csv_config! {
    writer
    /// Properties of a CSV writer (`csv` in job YAML).
    CsvWriterConfig {
        /// The file to write. It is written in place (not through a temporary file) so that a
        /// restart can continue it.
        pub path: PathBuf,
    } {
        /// Append to an existing file instead of replacing it (default `false`).
        #[serde(default)]
        pub append: bool,
        /// Also `fsync` the file at every chunk commit, so committed output survives a power
        /// loss, not only a crash of the process (default `false`).
        #[serde(default)]
        pub sync: bool,
    }
    /// A configuration writing `path` with the defaults: `,` delimiter, header row, no append.
    fn new(path: impl Into<PathBuf>) {
        path: path.into(),
        append: false,
        sync: false,
    }
}

/// The key under which a reader that knows its columns (the CSV readers, local or on a
/// storage: the header row or `headers`) saves their names in the step's execution context
/// at every commit. A CSV writer with a header that has neither `columns` nor a record yet
/// when a chunk commits takes its columns from there, so that an input with a header and
/// no rows gives an output with that header, not an empty file.
pub const READER_COLUMNS_KEY: &str = "reader.columns";

/// The columns a reader saved under [`READER_COLUMNS_KEY`].
pub(crate) fn reader_columns(context: &ExecutionContext) -> Result<Option<Vec<String>>> {
    context.get::<Vec<String>>(READER_COLUMNS_KEY)
}
