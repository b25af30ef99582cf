//! CSV files: [`CsvItemReader`] / [`CsvItemWriter`] for [`Record`]s (YAML jobs),
//! [`CsvRowItemReader`] / [`CsvRowItemWriter`] for [`CsvRow`]s (a row's fields as text by
//! column name, the cheapest item to read and write), and [`TypedCsvItemReader`] /
//! [`TypedCsvItemWriter`] for Rust types implementing serde's `Deserialize` / `Serialize`.
//!
//! All readers save their position (byte offset, line and record number) in the step's
//! execution context after every chunk and resume exactly at the next row on restart. All
//! writers save the number of bytes written and durable so far; on restart the file is
//! truncated to that size and writing continues from there, so the output has neither
//! duplicates nor gaps.
//!
//! The readers read a chunk's rows in one [`ItemReader::read_chunk`] call, into one reused
//! row buffer; the writers build every row in one reused buffer. A [`CsvRow`] costs one
//! allocation (two beyond 16 fields), a typed item what `T` itself owns, a [`Record`] two
//! (the row's text and its value slots; all records of a file share their field names, and
//! a field becomes a JSON value only when it is read by reference or changed).

use std::fs::File;
use std::io::Seek;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use ikkatsu_core::record::Fields;
use ikkatsu_core::{
    Error, ErrorKind, ExecutionContext, ItemReader, ItemStream, ItemWriter, Record, Result,
};

use crate::file::{ContextKeys, check_resume_offset, open_input, open_output, write_error};

fn default_delimiter() -> char {
    ','
}

fn default_quote() -> char {
    '"'
}

fn default_true() -> bool {
    true
}

/// Properties of a CSV reader (`csv-reader` in job YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CsvReaderConfig {
    /// The file to read.
    pub path: PathBuf,
    /// The field delimiter, a single ASCII character (default `,`; `"\t"` for TSV).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// The quote character, a single ASCII character (default `"`).
    #[serde(default = "default_quote")]
    pub quote: char,
    /// Whether the first row holds the column names (default `true`). Without a header
    /// row and without `headers`, fields are named `column1`, `column2`, ...
    #[serde(default = "default_true")]
    pub has_header: bool,
    /// Explicit column names, used instead of the header row (which is still skipped when
    /// `has-header` is true). Every row must then have exactly this many fields.
    #[serde(default)]
    pub headers: Option<Vec<String>>,
    /// Trim leading and trailing whitespace of every field and header (default `false`).
    #[serde(default)]
    pub trim: bool,
}

impl CsvReaderConfig {
    /// A configuration reading `path` with the defaults: `,` delimiter, `"` quote, header row.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvReaderConfig {
            path: path.into(),
            delimiter: default_delimiter(),
            quote: default_quote(),
            has_header: true,
            headers: None,
            trim: false,
        }
    }
}

/// Properties of a CSV writer (`csv-writer` in job YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CsvWriterConfig {
    /// The file to write. It is written in place (not through a temporary file) so that a
    /// restart can continue it.
    pub path: PathBuf,
    /// The field delimiter, a single ASCII character (default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// The quote character, a single ASCII character (default `"`).
    #[serde(default = "default_quote")]
    pub quote: char,
    /// Whether to write a header row with the column names (default `true`). With `append`,
    /// the header is only written when the file is empty.
    #[serde(default = "default_true")]
    pub header: bool,
    /// The columns and their order. Without it, the keys of the first record written are
    /// used. Record fields not listed are not written; listed fields missing from a record
    /// are written empty. (Record writer only: the typed writer follows `T`'s fields.)
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Append to an existing file instead of replacing it (default `false`).
    #[serde(default)]
    pub append: bool,
    /// Also `fsync` the file at every chunk commit, so committed output survives a power
    /// loss, not only a crash of the process (default `false`).
    #[serde(default)]
    pub sync: bool,
}

impl CsvWriterConfig {
    /// A configuration writing `path` with the defaults: `,` delimiter, header row, no append.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvWriterConfig {
            path: path.into(),
            delimiter: default_delimiter(),
            quote: default_quote(),
            header: true,
            columns: None,
            append: false,
            sync: false,
        }
    }
}

fn ascii_byte(c: char, property: &str, path: &Path) -> Result<u8> {
    if c.is_ascii() {
        Ok(c as u8)
    } else {
        Err(Error::config(format!(
            "CSV `{}`: `{property}` must be a single ASCII character, got `{c}`",
            path.display()
        )))
    }
}

/// `field 3 (`name`)`: a field by its 0-based index, with its column name when known.
fn field_name(index: u64, names: Option<&[String]>) -> String {
    let name = names
        .and_then(|names| names.get(index as usize))
        .map(|name| format!(" (`{name}`)"))
        .unwrap_or_default();
    format!("field {}{name}", index + 1)
}

/// `path:line`, or the path alone without a position.
fn file_line(path: &Path, pos: Option<&csv::Position>) -> String {
    match pos {
        Some(pos) => format!("{}:{}", path.display(), pos.line()),
        None => path.display().to_string(),
    }
}

/// The message of a field that is not valid UTF-8 (`valid_up_to` counts from the field's
/// start).
fn utf8_message(
    path: &Path,
    pos: Option<&csv::Position>,
    names: Option<&[String]>,
    field: usize,
    valid_up_to: usize,
) -> String {
    format!(
        "{}: {} is not valid UTF-8 (valid up to byte {valid_up_to})",
        file_line(path, pos),
        field_name(field as u64, names),
    )
}

/// Converts a `csv::Error` into a core error naming the file and line.
fn csv_error(path: &Path, err: csv::Error, names: Option<&[String]>) -> Error {
    let field_name = |index: u64| field_name(index, names);
    let line = |pos: Option<&csv::Position>| file_line(path, pos);
    let message = match err.kind() {
        csv::ErrorKind::Io(io) => {
            let kind = io.kind();
            let message = format!("cannot read CSV input `{}`: {io}", path.display());
            let kind = match kind {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Io,
            };
            return Error::new(kind, message).with_source(err);
        }
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => format!(
            "{}: wrong number of fields: expected {expected_len}, found {len}",
            line(pos.as_ref())
        ),
        csv::ErrorKind::Utf8 { pos, err: utf8 } => {
            utf8_message(path, pos.as_ref(), names, utf8.field(), utf8.valid_up_to())
        }
        csv::ErrorKind::Deserialize { pos, err: de } => match de.field() {
            Some(index) => format!(
                "{}: {}: {}",
                line(pos.as_ref()),
                field_name(index),
                de.kind()
            ),
            None => format!("{}: {}", line(pos.as_ref()), de.kind()),
        },
        _ => format!("{}: {err}", path.display()),
    };
    Error::new(ErrorKind::Parse, message).with_source(err)
}

/// Bytes the CSV reader reads and the writer writes per system call (the csv crate's
/// default is 8 KiB): a chunk of ~100-byte rows then costs one or two calls, not dozens.
const IO_BUFFER: usize = 128 * 1024;

/// A reusable row buffer the csv reader reads into.
trait RowBuffer {
    fn read_from(&mut self, reader: &mut csv::Reader<File>) -> csv::Result<bool>;
    fn field_count(&self) -> usize;
    fn row_position(&self) -> Option<&csv::Position>;
}

impl RowBuffer for csv::StringRecord {
    fn read_from(&mut self, reader: &mut csv::Reader<File>) -> csv::Result<bool> {
        reader.read_record(self)
    }

    fn field_count(&self) -> usize {
        self.len()
    }

    fn row_position(&self) -> Option<&csv::Position> {
        self.position()
    }
}

impl RowBuffer for csv::ByteRecord {
    fn read_from(&mut self, reader: &mut csv::Reader<File>) -> csv::Result<bool> {
        reader.read_byte_record(self)
    }

    fn field_count(&self) -> usize {
        self.len()
    }

    fn row_position(&self) -> Option<&csv::Position> {
        self.position()
    }
}

/// The reading machinery shared by [`CsvItemReader`], [`CsvRowItemReader`] and
/// [`TypedCsvItemReader`].
struct CsvSource {
    config: CsvReaderConfig,
    delimiter: u8,
    quote: u8,
    keys: ContextKeys,
    reader: Option<csv::Reader<File>>,
    /// The column names in effect (explicit, from the header row, or none).
    names: Option<Vec<String>>,
}

impl CsvSource {
    fn new(config: CsvReaderConfig) -> Result<Self> {
        let delimiter = ascii_byte(config.delimiter, "delimiter", &config.path)?;
        let quote = ascii_byte(config.quote, "quote", &config.path)?;
        Ok(CsvSource {
            config,
            delimiter,
            quote,
            keys: ContextKeys::new("csv.reader"),
            reader: None,
            names: None,
        })
    }

    fn path(&self) -> &Path {
        &self.config.path
    }

    fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        let file = open_input(self.path(), "CSV")?;
        let offset = self.keys.get_u64(context, "offset")?;
        if let Some(offset) = offset {
            check_resume_offset(&file, self.path(), offset)?;
        }
        let mut reader = csv::ReaderBuilder::new()
            .buffer_capacity(IO_BUFFER)
            .delimiter(self.delimiter)
            .quote(self.quote)
            .has_headers(self.config.has_header)
            .trim(if self.config.trim {
                csv::Trim::All
            } else {
                csv::Trim::None
            })
            .flexible(false)
            .from_reader(file);
        let mut names = self.config.headers.clone();
        if self.config.has_header {
            let header = reader
                .headers()
                .map_err(|err| csv_error(&self.config.path, err, None))?;
            if names.is_none() {
                names = Some(header.iter().map(str::to_owned).collect());
            }
        }
        if let Some(offset) = offset {
            let line = self.keys.get_u64(context, "line")?.unwrap_or(1);
            let record = self.keys.get_u64(context, "record")?.unwrap_or(0);
            let mut position = csv::Position::new();
            position.set_byte(offset).set_line(line).set_record(record);
            reader
                .seek(position)
                .map_err(|err| csv_error(&self.config.path, err, names.as_deref()))?;
            tracing::debug!(path = %self.path().display(), offset, line, "CSV reader resumed");
        }
        self.names = names;
        self.reader = Some(reader);
        Ok(())
    }

    fn update(&self, context: &mut ExecutionContext) {
        if let Some(reader) = &self.reader {
            let position = reader.position();
            context.put(self.keys.key("offset"), position.byte());
            context.put(self.keys.key("line"), position.line());
            context.put(self.keys.key("record"), position.record());
        }
        if let Some(names) = &self.names {
            context.put(READER_COLUMNS_KEY, names);
        }
    }

    /// Reads the next row into `row`: `false` at the end of the input. Read errors name the
    /// file and line; the field count is checked against explicit column names.
    fn read_row(&mut self, row: &mut impl RowBuffer) -> Result<bool> {
        let Some(reader) = self.reader.as_mut() else {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("CSV reader `{}` read before open", self.path().display()),
            ));
        };
        match row.read_from(reader) {
            Ok(false) => return Ok(false),
            Ok(true) => {}
            Err(err) => return Err(csv_error(&self.config.path, err, self.names.as_deref())),
        }
        self.check_len(row.field_count(), row.row_position())?;
        Ok(true)
    }

    /// Checks a row's field count against explicit column names (the csv crate only checks
    /// rows against each other).
    fn check_len(&self, len: usize, position: Option<&csv::Position>) -> Result<()> {
        if let (Some(headers), Some(position)) = (&self.config.headers, position)
            && headers.len() != len
        {
            return Err(Error::new(
                ErrorKind::Parse,
                format!(
                    "{}:{}: wrong number of fields: expected {} (the `headers` property), found {len}",
                    self.path().display(),
                    position.line(),
                    headers.len()
                ),
            ));
        }
        Ok(())
    }
}

/// Reads a CSV file as [`Record`]s: one per row, keys from the header row (or the `headers`
/// property, or `column1`, `column2`, ...), all values strings, in column order.
///
/// Restartable: the position is saved under `csv.reader.offset`, `csv.reader.line` and
/// `csv.reader.record` (see [`CsvItemReader::with_context_prefix`]).
pub struct CsvItemReader {
    source: CsvSource,
    row: csv::StringRecord,
    /// The record fields shared by every row, made once per file.
    layout: RecordLayout,
}

impl CsvItemReader {
    /// A reader for `config`; the file is opened in [`ItemStream::open`].
    pub fn new(config: CsvReaderConfig) -> Result<Self> {
        Ok(CsvItemReader {
            source: CsvSource::new(config)?,
            row: csv::StringRecord::new(),
            layout: RecordLayout::default(),
        })
    }

    /// Sets the prefix of the keys saved in the step's execution context (default
    /// `csv.reader`); needed when one step has two CSV readers.
    pub fn with_context_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.source.keys = ContextKeys::new(prefix);
        self
    }

    fn next_record(&mut self) -> Result<Option<Record>> {
        if !self.source.read_row(&mut self.row)? {
            return Ok(None);
        }
        self.layout
            .ensure(self.source.names.as_deref(), self.row.len());
        let row = &self.row;
        let ranges = (0..row.len()).map_while(|index| row.range(index));
        match self
            .layout
            .record_from_text(row.as_slice().to_owned(), ranges)
        {
            Some(record) => Ok(Some(record)),
            None => Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{}:{}: the CSV row's fields are not where the parser put them",
                    self.source.path().display(),
                    row.position().map_or(0, csv::Position::line)
                ),
            )),
        }
    }
}

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
fn extend_keys(keys: &mut Vec<String>, names: Option<&[String]>, len: usize) {
    while keys.len() < len {
        let index = keys.len();
        keys.push(match names.and_then(|n| n.get(index)) {
            Some(name) => name.clone(),
            None => format!("column{}", index + 1),
        });
    }
}

#[async_trait]
impl ItemStream for CsvItemReader {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        self.layout.clear();
        self.source.open(context)
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        self.source.update(context);
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.source.reader = None;
        Ok(())
    }
}

#[async_trait]
impl ItemReader<Record> for CsvItemReader {
    async fn read(&mut self) -> Result<Option<Record>> {
        self.next_record()
    }

    async fn read_chunk(&mut self, max: usize, items: &mut Vec<Record>) -> Result<bool> {
        read_chunk_with(max, items, || self.next_record())
    }

    fn supports_read_ahead(&self) -> bool {
        true
    }
}

/// [`ItemReader::read_chunk`] for a reader whose items come from a synchronous `next`.
fn read_chunk_with<T>(
    max: usize,
    items: &mut Vec<T>,
    mut next: impl FnMut() -> Result<Option<T>>,
) -> Result<bool> {
    items.reserve(max);
    for _ in 0..max {
        match next()? {
            Some(item) => items.push(item),
            None => return Ok(true),
        }
    }
    Ok(false)
}

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
pub struct TypedCsvItemReader<T> {
    source: CsvSource,
    row: csv::ByteRecord,
    header: Option<csv::ByteRecord>,
    _item: PhantomData<fn() -> T>,
}

impl<T> TypedCsvItemReader<T> {
    /// A reader for `config`; the file is opened in [`ItemStream::open`].
    pub fn new(config: CsvReaderConfig) -> Result<Self> {
        Ok(TypedCsvItemReader {
            source: CsvSource::new(config)?,
            row: csv::ByteRecord::new(),
            header: None,
            _item: PhantomData,
        })
    }

    /// Sets the prefix of the keys saved in the step's execution context (default
    /// `csv.reader`).
    pub fn with_context_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.source.keys = ContextKeys::new(prefix);
        self
    }
}

#[async_trait]
impl<T> ItemStream for TypedCsvItemReader<T> {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        self.source.open(context)?;
        self.header = self
            .source
            .names
            .as_ref()
            .map(|names| csv::ByteRecord::from(names.clone()));
        Ok(())
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        self.source.update(context);
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.source.reader = None;
        Ok(())
    }
}

impl<T: DeserializeOwned> TypedCsvItemReader<T> {
    fn next_item(&mut self) -> Result<Option<T>> {
        if !self.source.read_row(&mut self.row)? {
            return Ok(None);
        }
        self.row
            .deserialize::<T>(self.header.as_ref())
            .map(Some)
            .map_err(|err| csv_error(&self.source.config.path, err, self.source.names.as_deref()))
    }
}

#[async_trait]
impl<T: DeserializeOwned + Send + 'static> ItemReader<T> for TypedCsvItemReader<T> {
    async fn read(&mut self) -> Result<Option<T>> {
        self.next_item()
    }

    async fn read_chunk(&mut self, max: usize, items: &mut Vec<T>) -> Result<bool> {
        read_chunk_with(max, items, || self.next_item())
    }

    fn supports_read_ahead(&self) -> bool {
        true
    }
}

/// The writing machinery shared by [`CsvItemWriter`] and [`TypedCsvItemWriter`].
struct CsvSink {
    config: CsvWriterConfig,
    delimiter: u8,
    quote: u8,
    keys: ContextKeys,
    writer: Option<csv::Writer<File>>,
    /// Whether the header row still has to be written.
    header_pending: bool,
}

impl CsvSink {
    fn new(config: CsvWriterConfig) -> Result<Self> {
        let delimiter = ascii_byte(config.delimiter, "delimiter", &config.path)?;
        let quote = ascii_byte(config.quote, "quote", &config.path)?;
        Ok(CsvSink {
            config,
            delimiter,
            quote,
            keys: ContextKeys::new("csv.writer"),
            writer: None,
            header_pending: false,
        })
    }

    fn path(&self) -> &Path {
        &self.config.path
    }

    /// Opens the file; `auto_header` lets the csv writer write the header of serialized
    /// structs itself.
    fn open(&mut self, context: &ExecutionContext, auto_header: bool) -> Result<()> {
        let saved = self.keys.get_u64(context, "offset")?;
        let opened = open_output(self.path(), self.config.append, saved, "CSV")?;
        self.header_pending = match saved {
            Some(offset) => {
                let written = context
                    .get::<bool>(&self.keys.key("header-written"))?
                    .unwrap_or(offset > 0);
                self.config.header && !written
            }
            None => self.config.header && opened.empty,
        };
        self.writer = Some(
            csv::WriterBuilder::new()
                .buffer_capacity(IO_BUFFER)
                .delimiter(self.delimiter)
                .quote(self.quote)
                .has_headers(auto_header && self.header_pending)
                .flexible(true)
                .from_writer(opened.file),
        );
        Ok(())
    }

    fn writer(&mut self) -> Result<&mut csv::Writer<File>> {
        let path = &self.config.path;
        self.writer.as_mut().ok_or_else(|| not_open(path))
    }

    fn not_open(&self) -> Error {
        not_open(self.path())
    }

    fn error(&self, err: csv::Error) -> Error {
        let path = self.path();
        match err.into_kind() {
            csv::ErrorKind::Io(io) => write_error(path, "CSV", io),
            csv::ErrorKind::Serialize(message) => Error::new(
                ErrorKind::Parse,
                format!("cannot write a row to CSV `{}`: {message}", path.display()),
            ),
            other => Error::new(
                ErrorKind::Io,
                format!("cannot write CSV `{}`: {other:?}", path.display()),
            ),
        }
    }

    /// Flushes (and with `sync`, fsyncs) and returns the byte offset written so far.
    fn flush(&mut self) -> Result<Option<u64>> {
        let sync = self.config.sync;
        let path = self.config.path.clone();
        let Some(writer) = self.writer.as_mut() else {
            return Ok(None);
        };
        writer
            .flush()
            .map_err(|err| write_error(&path, "CSV", err))?;
        let mut file: &File = writer.get_ref();
        if sync {
            file.sync_data()
                .map_err(|err| write_error(&path, "CSV", err))?;
        }
        let offset = file
            .stream_position()
            .map_err(|err| write_error(&path, "CSV", err))?;
        Ok(Some(offset))
    }

    fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        if let Some(offset) = self.flush()? {
            context.put(self.keys.key("offset"), offset);
            context.put(self.keys.key("header-written"), !self.header_pending);
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        let result = self.flush();
        self.writer = None;
        result.map(|_| ())
    }
}

fn not_open(path: &Path) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!("CSV writer `{}` written before open", path.display()),
    )
}

/// Writes [`Record`]s as CSV rows. Strings are written as they are, `null` as an empty
/// field, numbers and booleans as JSON text, arrays and objects as JSON.
///
/// Restart-safe: at every chunk commit the output is flushed and its size saved under
/// `csv.writer.offset` (with `csv.writer.columns` and `csv.writer.header-written`); a
/// restarted step truncates the file to that size and continues.
pub struct CsvItemWriter {
    sink: CsvSink,
    columns: Option<Vec<String>>,
    /// The row being written, reused for every record.
    row: csv::ByteRecord,
    /// The JSON text of a non-string value, reused.
    text: Vec<u8>,
    /// The fields of the last record written and the slot of every column in them (`None`:
    /// not a field), reused while records share those fields.
    slots: Option<(Arc<Fields>, Vec<Option<usize>>)>,
}

impl CsvItemWriter {
    /// A writer for `config`; the file is created (or truncated) in [`ItemStream::open`].
    pub fn new(config: CsvWriterConfig) -> Result<Self> {
        let columns = config.columns.clone();
        Ok(CsvItemWriter {
            sink: CsvSink::new(config)?,
            columns,
            row: csv::ByteRecord::new(),
            text: Vec::new(),
            slots: None,
        })
    }

    /// Sets the prefix of the keys saved in the step's execution context (default
    /// `csv.writer`).
    pub fn with_context_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.sink.keys = ContextKeys::new(prefix);
        self
    }

    fn write_header_if_pending(&mut self) -> Result<()> {
        if !self.sink.header_pending {
            return Ok(());
        }
        let Some(columns) = self.columns.as_ref() else {
            return Ok(());
        };
        let result = match self.sink.writer.as_mut() {
            Some(writer) => writer.write_record(columns),
            None => return Ok(()),
        };
        result.map_err(|err| self.sink.error(err))?;
        self.sink.header_pending = false;
        Ok(())
    }
}

#[async_trait]
impl ItemStream for CsvItemWriter {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        self.sink.open(context, false)?;
        if self.sink.config.columns.is_none()
            && let Some(columns) = context.get::<Vec<String>>(&self.sink.keys.key("columns"))?
        {
            self.columns = Some(columns);
        }
        self.write_header_if_pending()
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        // No record written yet: the header is the reader's columns.
        if self.sink.header_pending && self.columns.is_none() && self.sink.writer.is_some() {
            self.columns = reader_columns(context)?;
            self.write_header_if_pending()?;
        }
        self.sink.update(context)?;
        if let Some(columns) = &self.columns {
            context.put(self.sink.keys.key("columns"), columns);
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.sink.close()
    }
}

#[async_trait]
impl ItemWriter<Record> for CsvItemWriter {
    async fn write(&mut self, items: &[Record]) -> Result<()> {
        if self.columns.is_none()
            && let Some(first) = items.first()
        {
            self.columns = Some(first.keys().cloned().collect());
        }
        self.write_header_if_pending()?;
        let Some(columns) = self.columns.as_ref() else {
            return Ok(());
        };
        let Some(writer) = self.sink.writer.as_mut() else {
            return Err(self.sink.not_open());
        };
        let mut result = Ok(());
        for item in items {
            self.row.clear();
            // Records of one file share their fields: the column → slot mapping is made
            // once per distinct fields, not once per record.
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
                    self.row.push_field(text.as_bytes());
                    continue;
                }
                match slot.and_then(|slot| item.get_at(slot)) {
                    None | Some(Value::Null) => self.row.push_field(b""),
                    Some(Value::String(text)) => self.row.push_field(text.as_bytes()),
                    Some(other) => {
                        self.text.clear();
                        // Writing JSON into a Vec cannot fail.
                        if let Err(err) = serde_json::to_writer(&mut self.text, other) {
                            return Err(Error::new(
                                ErrorKind::Unexpected,
                                format!("cannot render a CSV field as JSON: {err}"),
                            ));
                        }
                        self.row.push_field(&self.text);
                    }
                }
            }
            if let Err(err) = writer.write_byte_record(&self.row) {
                result = Err(err);
                break;
            }
        }
        result.map_err(|err| self.sink.error(err))
    }
}

/// Writes values of `T` as CSV rows with serde (the header row comes from `T`'s field
/// names). Restart-safe like [`CsvItemWriter`].
pub struct TypedCsvItemWriter<T> {
    sink: CsvSink,
    _item: PhantomData<fn(T)>,
}

impl<T> TypedCsvItemWriter<T> {
    /// A writer for `config` (`columns` is ignored: the columns are `T`'s fields).
    pub fn new(config: CsvWriterConfig) -> Result<Self> {
        Ok(TypedCsvItemWriter {
            sink: CsvSink::new(config)?,
            _item: PhantomData,
        })
    }

    /// Sets the prefix of the keys saved in the step's execution context (default
    /// `csv.writer`).
    pub fn with_context_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.sink.keys = ContextKeys::new(prefix);
        self
    }
}

#[async_trait]
impl<T> ItemStream for TypedCsvItemWriter<T> {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        self.sink.open(context, true)
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        self.sink.update(context)
    }

    async fn close(&mut self) -> Result<()> {
        self.sink.close()
    }
}

#[async_trait]
impl<T: Serialize + Sync> ItemWriter<T> for TypedCsvItemWriter<T> {
    async fn write(&mut self, items: &[T]) -> Result<()> {
        let writer = self.sink.writer()?;
        let mut result = Ok(());
        for item in items {
            if let Err(err) = writer.serialize(item) {
                result = Err(err);
                break;
            }
        }
        if !items.is_empty() {
            // The csv writer writes the header with the first row.
            self.sink.header_pending = false;
        }
        result.map_err(|err| self.sink.error(err))
    }
}

/// One CSV row as a Rust item: its fields as text in one buffer, and the column names,
/// shared by all rows of a file (an [`Arc`]). What [`CsvRowItemReader`] reads and
/// [`CsvRowItemWriter`] writes.
///
/// A little cheaper than a [`Record`] (one allocation per row, two beyond 16 fields, instead
/// of two plus one per field read as a JSON value) and needs no type of its own like
/// [`TypedCsvItemReader`].
/// Fields are read by column name or index, and replaced in place.
///
/// ```
/// # use std::sync::Arc;
/// use ikkatsu_items::csv::CsvRow;
/// let headers: Arc<[String]> = Arc::from(vec!["id".to_string(), "city".to_string()]);
/// let mut row = CsvRow::new(headers, ["7", "lyon"]);
/// assert_eq!(row.get("city"), Some("lyon"));
/// let city = row.get("city").map(str::to_uppercase).unwrap_or_default();
/// assert!(row.set("city", &city));
/// assert_eq!(row.iter().collect::<Vec<_>>(), ["7", "LYON"]);
/// assert!(!row.set("country", "FR")); // no such column
/// ```
#[derive(Debug, Clone)]
pub struct CsvRow {
    headers: Arc<[String]>,
    /// All fields, concatenated.
    data: String,
    /// The end of every field in `data`.
    ends: FieldEnds,
}

impl PartialEq for CsvRow {
    fn eq(&self, other: &Self) -> bool {
        self.headers == other.headers
            && self.data == other.data
            && self.ends.iter().eq(other.ends.iter())
    }
}

impl Eq for CsvRow {}

/// Field ends kept in the row itself (no allocation) up to this many fields.
const INLINE_ENDS: usize = 16;

/// The end offsets of a row's fields: inline for up to [`INLINE_ENDS`] fields of a row
/// under 4 GiB, else on the heap.
#[derive(Debug, Clone)]
enum FieldEnds {
    Inline { len: u8, ends: [u32; INLINE_ENDS] },
    Heap(Vec<usize>),
}

impl FieldEnds {
    fn new() -> Self {
        FieldEnds::Inline {
            len: 0,
            ends: [0; INLINE_ENDS],
        }
    }

    fn len(&self) -> usize {
        match self {
            FieldEnds::Inline { len, .. } => usize::from(*len),
            FieldEnds::Heap(ends) => ends.len(),
        }
    }

    fn get(&self, index: usize) -> Option<usize> {
        match self {
            FieldEnds::Inline { len, ends } => ends[..usize::from(*len)]
                .get(index)
                .map(|&end| end as usize),
            FieldEnds::Heap(ends) => ends.get(index).copied(),
        }
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        (0..self.len()).map(|index| self.get(index).unwrap_or_default())
    }

    fn push(&mut self, end: usize) {
        match self {
            FieldEnds::Inline { len, ends } => {
                let count = usize::from(*len);
                match u32::try_from(end) {
                    Ok(end) if count < INLINE_ENDS => {
                        ends[count] = end;
                        *len += 1;
                    }
                    _ => {
                        let mut heap: Vec<usize> =
                            ends[..count].iter().map(|&end| end as usize).collect();
                        heap.push(end);
                        *self = FieldEnds::Heap(heap);
                    }
                }
            }
            FieldEnds::Heap(ends) => ends.push(end),
        }
    }

    /// Moves the ends of the fields from `index` on by `new_len - old_len` bytes.
    fn resize_field(&mut self, index: usize, old_len: usize, new_len: usize) {
        let shift = |end: usize| end + new_len - old_len;
        if let FieldEnds::Inline { len, ends } = self {
            let count = usize::from(*len);
            let last = ends[..count].last().map_or(0, |&end| end as usize);
            if index < count && u32::try_from(shift(last)).is_ok() {
                for end in &mut ends[index..count] {
                    // Fits: the last end is the largest.
                    *end = shift(*end as usize) as u32;
                }
                return;
            }
            *self = FieldEnds::Heap(ends[..count].iter().map(|&end| end as usize).collect());
        }
        if let FieldEnds::Heap(ends) = self {
            for end in ends.iter_mut().skip(index) {
                *end = shift(*end);
            }
        }
    }
}

impl CsvRow {
    /// A row of `fields` with the column names `headers`, in the same order. A row may
    /// have more fields than names (the extra ones are only reachable by index) or fewer.
    pub fn new<I, S>(headers: Arc<[String]>, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut data = String::new();
        let mut ends = FieldEnds::new();
        for field in fields {
            data.push_str(field.as_ref());
            ends.push(data.len());
        }
        CsvRow {
            headers,
            data,
            ends,
        }
    }

    /// The column names.
    pub fn headers(&self) -> &Arc<[String]> {
        &self.headers
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the row has no fields.
    pub fn is_empty(&self) -> bool {
        self.ends.len() == 0
    }

    /// The index of the column `name` (the first one, if names repeat).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|header| header == name)
    }

    fn range(&self, index: usize) -> Option<std::ops::Range<usize>> {
        let end = self.ends.get(index)?;
        let start = match index {
            0 => 0,
            _ => self.ends.get(index - 1)?,
        };
        Some(start..end)
    }

    /// The field at `index`.
    pub fn field(&self, index: usize) -> Option<&str> {
        self.range(index).map(|range| &self.data[range])
    }

    /// The field in column `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.field(self.index_of(name)?)
    }

    /// The field at `index`, to change in place without changing its length (for example
    /// with [`str::make_ascii_uppercase`]).
    pub fn field_mut(&mut self, index: usize) -> Option<&mut str> {
        let range = self.range(index)?;
        Some(&mut self.data[range])
    }

    /// The field in column `name`, to change in place (see [`CsvRow::field_mut`]).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut str> {
        let index = self.index_of(name)?;
        self.field_mut(index)
    }

    /// Replaces the field at `index` with `value`; `false` (and no change) when the row
    /// has no such field.
    pub fn set_field(&mut self, index: usize, value: &str) -> bool {
        let Some(range) = self.range(index) else {
            return false;
        };
        let old_len = range.len();
        self.data.replace_range(range, value);
        if value.len() != old_len {
            self.ends.resize_field(index, old_len, value.len());
        }
        true
    }

    /// Replaces the field in column `name` with `value`; `false` (and no change) when
    /// there is no such column or the row has no field for it.
    pub fn set(&mut self, name: &str, value: &str) -> bool {
        match self.index_of(name) {
            Some(index) => self.set_field(index, value),
            None => false,
        }
    }

    /// The fields, in column order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |end| {
            let field = &self.data[start..end];
            start = end;
            field
        })
    }

    /// The row as a [`Record`] (what [`CsvItemReader`] would have read): string values
    /// keyed by column name, fields without a name keyed `column1`, `column2`, ...
    ///
    /// Rows sharing their headers (all rows of a file) share the record's [`Fields`] too
    /// (the layout of the last headers seen is cached per thread).
    pub fn to_record(&self) -> Record {
        thread_local! {
            static LAST: std::cell::RefCell<Option<(std::sync::Weak<[String]>, RecordLayout)>> =
                const { std::cell::RefCell::new(None) };
        }
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            let cached = matches!(
                &*last,
                Some((headers, _)) if std::ptr::eq(headers.as_ptr(), Arc::as_ptr(&self.headers))
            );
            if !cached {
                *last = Some((Arc::downgrade(&self.headers), RecordLayout::default()));
            }
            match last.as_mut() {
                Some((_, layout)) => {
                    layout.ensure(Some(&self.headers), self.len());
                    let mut start = 0;
                    let ranges = self.ends.iter().map(|end| {
                        let range = start..end;
                        start = end;
                        range
                    });
                    // The ends are character boundaries of `data` (checked when the row was
                    // made); the fallback copies the fields one by one.
                    layout
                        .record_from_text(self.data.clone(), ranges)
                        .unwrap_or_else(|| {
                            layout.record(self.len(), self.iter().map(str::to_owned))
                        })
                }
                None => Record::new(),
            }
        })
    }
}

/// Reads a CSV file as [`CsvRow`]s: one per row, with the column names of the header row
/// (or the `headers` property, or `column1`, `column2`, ...) shared by all rows.
///
/// Restartable like [`CsvItemReader`], with the same context keys and error messages.
pub struct CsvRowItemReader {
    source: CsvSource,
    row: csv::ByteRecord,
    /// The column names given to rows (names, then `columnN` for unnamed columns).
    headers: Option<Arc<[String]>>,
}

impl CsvRowItemReader {
    /// A reader for `config`; the file is opened in [`ItemStream::open`].
    pub fn new(config: CsvReaderConfig) -> Result<Self> {
        Ok(CsvRowItemReader {
            source: CsvSource::new(config)?,
            row: csv::ByteRecord::new(),
            headers: None,
        })
    }

    /// Sets the prefix of the keys saved in the step's execution context (default
    /// `csv.reader`).
    pub fn with_context_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.source.keys = ContextKeys::new(prefix);
        self
    }

    /// The shared column names for a row of `len` fields.
    fn headers(&mut self, len: usize) -> Arc<[String]> {
        match &self.headers {
            Some(headers) if headers.len() >= len => headers.clone(),
            _ => {
                let mut names = Vec::new();
                extend_keys(&mut names, self.source.names.as_deref(), len);
                let headers: Arc<[String]> = names.into();
                self.headers = Some(headers.clone());
                headers
            }
        }
    }

    fn next_row(&mut self) -> Result<Option<CsvRow>> {
        if !self.source.read_row(&mut self.row)? {
            return Ok(None);
        }
        let mut ends = FieldEnds::new();
        let mut end = 0;
        for field in &self.row {
            end += field.len();
            ends.push(end);
        }
        // Every field must be valid UTF-8 on its own: the whole row, and no character
        // across a field boundary.
        let data = match std::str::from_utf8(self.row.as_slice()) {
            Ok(data) if ends.iter().all(|end| data.is_char_boundary(end)) => data.to_owned(),
            _ => return Err(self.utf8_error()),
        };
        let headers = self.headers(ends.len());
        Ok(Some(CsvRow {
            headers,
            data,
            ends,
        }))
    }

    /// The error for a row with a field that is not valid UTF-8, naming the first such
    /// field like the csv crate does for a `Record`.
    fn utf8_error(&self) -> Error {
        let (field, valid_up_to) = self
            .row
            .iter()
            .enumerate()
            .find_map(|(index, bytes)| {
                std::str::from_utf8(bytes)
                    .err()
                    .map(|err| (index, err.valid_up_to()))
            })
            .unwrap_or((0, 0));
        Error::new(
            ErrorKind::Parse,
            utf8_message(
                self.source.path(),
                self.row.position(),
                self.source.names.as_deref(),
                field,
                valid_up_to,
            ),
        )
    }
}

#[async_trait]
impl ItemStream for CsvRowItemReader {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        self.headers = None;
        self.source.open(context)
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        self.source.update(context);
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.source.reader = None;
        Ok(())
    }
}

#[async_trait]
impl ItemReader<CsvRow> for CsvRowItemReader {
    async fn read(&mut self) -> Result<Option<CsvRow>> {
        self.next_row()
    }

    async fn read_chunk(&mut self, max: usize, items: &mut Vec<CsvRow>) -> Result<bool> {
        read_chunk_with(max, items, || self.next_row())
    }

    fn supports_read_ahead(&self) -> bool {
        true
    }
}

/// The column names of some rows, and where each configured column is among them.
type Selection = (Arc<[String]>, Vec<Option<usize>>);

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

/// Writes [`CsvRow`]s as CSV rows.
///
/// With the `columns` property, those columns are written, looked up by name in every row
/// (missing ones empty). Without it, every row is written as it is and the header row holds
/// the column names of the first row written.
///
/// Restart-safe like [`CsvItemWriter`] (same context keys).
pub struct CsvRowItemWriter {
    sink: CsvSink,
    /// The header row's names (from `columns`, the saved context, or the first row).
    header: Option<Vec<String>>,
    /// For `columns`: the column names these indexes were computed for, and the index of
    /// each configured column in such rows.
    selection: Option<Selection>,
    /// The row being written, reused.
    row: csv::ByteRecord,
}

impl CsvRowItemWriter {
    /// A writer for `config`; the file is created (or truncated) in [`ItemStream::open`].
    pub fn new(config: CsvWriterConfig) -> Result<Self> {
        Ok(CsvRowItemWriter {
            header: config.columns.clone(),
            sink: CsvSink::new(config)?,
            selection: None,
            row: csv::ByteRecord::new(),
        })
    }

    /// Sets the prefix of the keys saved in the step's execution context (default
    /// `csv.writer`).
    pub fn with_context_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.sink.keys = ContextKeys::new(prefix);
        self
    }

    fn write_header_if_pending(&mut self) -> Result<()> {
        if !self.sink.header_pending {
            return Ok(());
        }
        let Some(header) = self.header.as_ref() else {
            return Ok(());
        };
        let result = match self.sink.writer.as_mut() {
            Some(writer) => writer.write_record(header),
            None => return Ok(()),
        };
        result.map_err(|err| self.sink.error(err))?;
        self.sink.header_pending = false;
        Ok(())
    }
}

#[async_trait]
impl ItemStream for CsvRowItemWriter {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        self.sink.open(context, false)?;
        self.selection = None;
        if self.sink.config.columns.is_none()
            && let Some(columns) = context.get::<Vec<String>>(&self.sink.keys.key("columns"))?
        {
            self.header = Some(columns);
        }
        self.write_header_if_pending()
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        // No row written yet: the header is the reader's columns.
        if self.sink.header_pending && self.header.is_none() && self.sink.writer.is_some() {
            self.header = reader_columns(context)?;
            self.write_header_if_pending()?;
        }
        self.sink.update(context)?;
        if let Some(header) = &self.header {
            context.put(self.sink.keys.key("columns"), header);
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.sink.close()
    }
}

#[async_trait]
impl ItemWriter<CsvRow> for CsvRowItemWriter {
    async fn write(&mut self, items: &[CsvRow]) -> Result<()> {
        if self.header.is_none()
            && let Some(first) = items.first()
        {
            self.header = Some(first.headers().iter().take(first.len()).cloned().collect());
        }
        self.write_header_if_pending()?;
        let Some(writer) = self.sink.writer.as_mut() else {
            return Err(self.sink.not_open());
        };
        let columns = self.sink.config.columns.as_deref();
        let mut result = Ok(());
        for item in items {
            let written = match columns {
                None => {
                    self.row.clear();
                    for field in item.iter() {
                        self.row.push_field(field.as_bytes());
                    }
                    writer.write_byte_record(&self.row)
                }
                Some(columns) => {
                    let indexes = match &self.selection {
                        Some((headers, indexes)) if Arc::ptr_eq(headers, item.headers()) => indexes,
                        _ => {
                            let indexes = columns.iter().map(|c| item.index_of(c)).collect();
                            &self.selection.insert((item.headers().clone(), indexes)).1
                        }
                    };
                    self.row.clear();
                    for index in indexes {
                        let field = index.and_then(|i| item.field(i)).unwrap_or("");
                        self.row.push_field(field.as_bytes());
                    }
                    writer.write_byte_record(&self.row)
                }
            };
            if let Err(err) = written {
                result = Err(err);
                break;
            }
        }
        result.map_err(|err| self.sink.error(err))
    }
}
