//! CSV files: [`CsvItemReader`] / [`CsvItemWriter`] for [`Record`]s (YAML jobs), and
//! [`TypedCsvItemReader`] / [`TypedCsvItemWriter`] for Rust types implementing serde's
//! `Deserialize` / `Serialize`.
//!
//! Both readers save their position (byte offset, line and record number) in the step's
//! execution context after every chunk and resume exactly at the next row on restart. Both
//! writers save the number of bytes written and durable so far; on restart the file is
//! truncated to that size and writing continues from there, so the output has neither
//! duplicates nor gaps.
//!
//! The typed variants reuse one `csv::ByteRecord` buffer for all rows (no allocation per row
//! beyond what `T` itself owns).

use std::fs::File;
use std::io::Seek;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

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

/// Converts a `csv::Error` into a core error naming the file and line.
fn csv_error(path: &Path, err: csv::Error, names: Option<&[String]>) -> Error {
    let field_name = |index: u64| -> String {
        let name = names
            .and_then(|names| names.get(index as usize))
            .map(|name| format!(" (`{name}`)"))
            .unwrap_or_default();
        format!("field {}{name}", index + 1)
    };
    let line = |pos: Option<&csv::Position>| match pos {
        Some(pos) => format!("{}:{}", path.display(), pos.line()),
        None => path.display().to_string(),
    };
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
        csv::ErrorKind::Utf8 { pos, err: utf8 } => format!(
            "{}: {} is not valid UTF-8 (valid up to byte {})",
            line(pos.as_ref()),
            field_name(utf8.field() as u64),
            utf8.valid_up_to()
        ),
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

/// The reading machinery shared by [`CsvItemReader`] and [`TypedCsvItemReader`].
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
    }

    fn reader(&mut self) -> Result<&mut csv::Reader<File>> {
        let path = &self.config.path;
        self.reader.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                format!("CSV reader `{}` read before open", path.display()),
            )
        })
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
}

impl CsvItemReader {
    /// A reader for `config`; the file is opened in [`ItemStream::open`].
    pub fn new(config: CsvReaderConfig) -> Result<Self> {
        Ok(CsvItemReader {
            source: CsvSource::new(config)?,
            row: csv::StringRecord::new(),
        })
    }

    /// Sets the prefix of the keys saved in the step's execution context (default
    /// `csv.reader`); needed when one step has two CSV readers.
    pub fn with_context_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.source.keys = ContextKeys::new(prefix);
        self
    }
}

#[async_trait]
impl ItemStream for CsvItemReader {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
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
        let reader = self.source.reader()?;
        match reader.read_record(&mut self.row) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(err) => {
                return Err(csv_error(
                    &self.source.config.path,
                    err,
                    self.source.names.as_deref(),
                ));
            }
        }
        self.source.check_len(self.row.len(), self.row.position())?;
        let mut record = Record::with_capacity(self.row.len());
        for (index, field) in self.row.iter().enumerate() {
            let key = match self.source.names.as_ref().and_then(|n| n.get(index)) {
                Some(name) => name.clone(),
                None => format!("column{}", index + 1),
            };
            record.insert(key, Value::String(field.to_owned()));
        }
        Ok(Some(record))
    }
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

#[async_trait]
impl<T: DeserializeOwned + Send + 'static> ItemReader<T> for TypedCsvItemReader<T> {
    async fn read(&mut self) -> Result<Option<T>> {
        let reader = self.source.reader()?;
        match reader.read_byte_record(&mut self.row) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(err) => {
                return Err(csv_error(
                    &self.source.config.path,
                    err,
                    self.source.names.as_deref(),
                ));
            }
        }
        self.source.check_len(self.row.len(), self.row.position())?;
        self.row
            .deserialize::<T>(self.header.as_ref())
            .map(Some)
            .map_err(|err| csv_error(&self.source.config.path, err, self.source.names.as_deref()))
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
        self.writer.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                format!("CSV writer `{}` written before open", path.display()),
            )
        })
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

/// Writes [`Record`]s as CSV rows. Strings are written as they are, `null` as an empty
/// field, numbers and booleans as JSON text, arrays and objects as JSON.
///
/// Restart-safe: at every chunk commit the output is flushed and its size saved under
/// `csv.writer.offset` (with `csv.writer.columns` and `csv.writer.header-written`); a
/// restarted step truncates the file to that size and continues.
pub struct CsvItemWriter {
    sink: CsvSink,
    columns: Option<Vec<String>>,
}

impl CsvItemWriter {
    /// A writer for `config`; the file is created (or truncated) in [`ItemStream::open`].
    pub fn new(config: CsvWriterConfig) -> Result<Self> {
        let columns = config.columns.clone();
        Ok(CsvItemWriter {
            sink: CsvSink::new(config)?,
            columns,
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
        let writer = self.sink.writer()?;
        let mut result = Ok(());
        'items: for item in items {
            for column in columns {
                let written = match item.get(column) {
                    None | Some(Value::Null) => writer.write_field(b""),
                    Some(Value::String(text)) => writer.write_field(text.as_bytes()),
                    Some(other) => writer.write_field(other.to_string().as_bytes()),
                };
                if let Err(err) = written {
                    result = Err(err);
                    break 'items;
                }
            }
            if let Err(err) = writer.write_record(None::<&[u8]>) {
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
