//! The ports between the object reader and writer and the formats: a [`RecordDecoder`]
//! opens a [`RecordCursor`] over one object, a [`PartEncoder`] encodes records into part
//! objects. [`ObjectItemReader`](super::ObjectItemReader) and
//! [`ObjectItemWriter`](super::ObjectItemWriter) drive them without knowing any format; each
//! format module implements them and adds its constructor to the reader and the writer.

use async_trait::async_trait;
use bytes::Bytes;
use ikkatsu_core::{Record, Result};
use ikkatsu_storage::{FileInfo, Storage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compress::Codec;

/// Where a reader is within one object: what a cursor reports after every record and what
/// a restart resumes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// Records (rows, lines, array elements) consumed, bad ones included.
    pub record: u64,
    /// Byte offset of the next record (text formats; 0 for Parquet).
    pub offset: u64,
    /// Lines consumed (text formats), for messages.
    pub line: u64,
}

/// One object being read.
pub(crate) struct Object<'a> {
    pub storage: &'a Storage,
    pub file: &'a FileInfo,
    /// The object as named in messages (storage URL and path).
    pub name: String,
    /// How the object is compressed, if it is.
    pub codec: Option<Codec>,
}

/// Reads the records of one object, from a position.
#[async_trait]
pub(crate) trait RecordCursor: Send {
    /// The next record; `None` at the end of the object. After an error about one record,
    /// the cursor is past it (the next call reads the record after it).
    async fn next(&mut self) -> Result<Option<Record>>;

    /// The position after the last record returned.
    fn position(&self) -> Position;

    /// The column names, when the format has them (a CSV header row or `headers`).
    fn columns(&self) -> Option<&[String]> {
        None
    }
}

/// A format: opens cursors over objects.
#[async_trait]
pub(crate) trait RecordDecoder: Send + Sync {
    /// The format's name in messages (`CSV`, `Parquet`, ...).
    fn format(&self) -> &'static str;

    /// Opens `object`, positioned at `resume` (the default position: the start).
    async fn open(&self, object: Object<'_>, resume: Position) -> Result<Box<dyn RecordCursor>>;
}

/// Encodes records into one part object at a time.
#[async_trait]
pub(crate) trait PartEncoder: Send {
    /// The format's name in messages (`CSV`, `Parquet`, ...).
    fn format(&self) -> &'static str;

    /// The extension of the part names, without the dot.
    fn extension(&self) -> &str;

    /// What the encoder settled on and a restart must keep (CSV columns, a Parquet
    /// schema), saved in the execution context.
    fn state(&self) -> Option<Value> {
        None
    }

    /// Restores what [`PartEncoder::state`] saved; `None` (a first run) forgets what an
    /// earlier run of this instance settled on.
    fn restore(&mut self, state: Option<&Value>) -> Result<()> {
        let _ = state;
        Ok(())
    }

    /// Called with the records of a `write` before any of them is appended (a Parquet
    /// writer without a schema infers it from the first ones).
    fn prepare(&mut self, records: &[Record]) -> Result<()> {
        let _ = records;
        Ok(())
    }

    /// Appends one record to the current part, entirely or (on error) not at all. The error
    /// says what does not fit; the writer adds where.
    fn append(&mut self, record: &Record) -> Result<()>;

    /// Records in the current part.
    fn records(&self) -> u64;

    /// About how many bytes the current part holds.
    fn bytes(&self) -> u64;

    /// Encodes the current part into a complete object and starts a new, empty part.
    async fn finish(&mut self) -> Result<Bytes>;

    /// Drops the current part.
    fn discard(&mut self);

    /// What an output without a single record holds, if anything: a CSV header (from the
    /// encoder's columns, else the reader's `reader_columns`).
    fn empty_output(&self, reader_columns: Option<&[String]>) -> Result<Option<Bytes>> {
        let _ = reader_columns;
        Ok(None)
    }
}
