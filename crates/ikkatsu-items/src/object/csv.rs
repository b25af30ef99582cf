//! CSV on a storage: a streaming push parser (`csv-core`) fed by ranged reads, and an
//! encoder writing one complete CSV file (header included) per part.

use async_trait::async_trait;
use bytes::Bytes;
use ikkatsu_core::{Error, ErrorKind, Record, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::csv::RecordLayout;

use super::reader::{Object, Position, RecordCursor, RecordDecoder};
use super::source::ByteSource;
use super::writer::PartEncoder;
use super::{ObjectReaderConfig, default_prefix};

fn default_delimiter() -> char {
    ','
}

fn default_quote() -> char {
    '"'
}

fn default_true() -> bool {
    true
}

/// Properties of a CSV reader on a storage (`csv` with `storage` in job YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CsvObjectReaderConfig {
    /// The storage URL (or `@name` in job YAML). Without it, `path` is a local path.
    #[serde(default)]
    pub storage: Option<String>,
    /// The object, or a glob of objects read in sorted order (see [`ObjectReaderConfig`]).
    pub path: String,
    /// Globs of objects not to read.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The field delimiter, one ASCII character (default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// The quote character, one ASCII character (default `"`).
    #[serde(default = "default_quote")]
    pub quote: char,
    /// Whether the first row of every object holds the column names (default `true`).
    #[serde(default = "default_true")]
    pub has_header: bool,
    /// Column names to use instead of the header row (which is still skipped when
    /// `has-header` is true); every row must then have this many fields.
    #[serde(default)]
    pub headers: Option<Vec<String>>,
    /// Trim whitespace around fields and column names (default `false`).
    #[serde(default)]
    pub trim: bool,
}

impl CsvObjectReaderConfig {
    /// A configuration reading `path` (an object or a glob) on `storage`, with a header row.
    pub fn new(storage: impl Into<String>, path: impl Into<String>) -> Self {
        let ObjectReaderConfig {
            storage,
            path,
            exclude,
        } = ObjectReaderConfig::new(storage, path);
        CsvObjectReaderConfig {
            storage,
            path,
            exclude,
            delimiter: default_delimiter(),
            quote: default_quote(),
            has_header: true,
            headers: None,
            trim: false,
        }
    }
}

/// Properties of a CSV writer on a storage (`csv` with `storage` in job YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CsvObjectWriterConfig {
    /// The storage URL (or `@name` in job YAML). Without it, `path` is a local directory.
    #[serde(default)]
    pub storage: Option<String>,
    /// The directory the parts are written to (see
    /// [`ObjectWriterConfig`](super::ObjectWriterConfig)).
    pub path: String,
    /// The start of every part's name (default `part-`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Close a part after this many records (default: no limit).
    #[serde(default)]
    pub part_records: Option<u64>,
    /// Close a part once about this many bytes are encoded (default 128 MiB).
    #[serde(default)]
    pub part_bytes: Option<u64>,
    /// The field delimiter, one ASCII character (default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// The quote character, one ASCII character (default `"`).
    #[serde(default = "default_quote")]
    pub quote: char,
    /// Whether every part starts with a header row (default `true`).
    #[serde(default = "default_true")]
    pub header: bool,
    /// The columns and their order (default: the keys of the first record written, kept
    /// across restarts). Missing fields are written empty, others are not written.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

impl CsvObjectWriterConfig {
    /// A configuration writing parts into `path` on `storage`, with a header row.
    pub fn new(storage: impl Into<String>, path: impl Into<String>) -> Self {
        CsvObjectWriterConfig {
            storage: Some(storage.into()),
            path: path.into(),
            prefix: default_prefix(),
            part_records: None,
            part_bytes: None,
            delimiter: default_delimiter(),
            quote: default_quote(),
            header: true,
            columns: None,
        }
    }
}

fn ascii(c: char, property: &str, at: &str) -> Result<u8> {
    if c.is_ascii() {
        Ok(c as u8)
    } else {
        Err(Error::config(format!(
            "CSV `{at}`: `{property}` must be a single ASCII character, got `{c}`"
        )))
    }
}

/// The CSV format of a reader.
pub(crate) struct CsvDecoder {
    delimiter: u8,
    quote: u8,
    has_header: bool,
    headers: Option<Vec<String>>,
    trim: bool,
}

impl CsvDecoder {
    pub(crate) fn new(config: &CsvObjectReaderConfig) -> Result<Self> {
        Ok(CsvDecoder {
            delimiter: ascii(config.delimiter, "delimiter", &config.path)?,
            quote: ascii(config.quote, "quote", &config.path)?,
            has_header: config.has_header,
            headers: config.headers.clone(),
            trim: config.trim,
        })
    }

    fn core(&self) -> csv_core::Reader {
        csv_core::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .quote(self.quote)
            .build()
    }
}

#[async_trait]
impl RecordDecoder for CsvDecoder {
    fn format(&self) -> &'static str {
        "CSV"
    }

    async fn open(&self, object: Object<'_>, resume: Position) -> Result<Box<dyn RecordCursor>> {
        let size = object.file.size;
        if resume.offset > size {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "cannot resume `{}` at byte {}: the object has only {size} bytes; it was \
                     replaced or truncated since the last run (restore it, or start a new job \
                     instance)",
                    object.name, resume.offset
                ),
            ));
        }
        let path = &object.file.path;
        let mut names = self.headers.clone();
        let mut header_pending = self.has_header;
        let mut core = self.core();
        if resume.offset > 0 {
            // Resuming after the header: read it from the start, then continue at the offset.
            if self.has_header && names.is_none() {
                let mut header = CsvCursor::new(
                    ByteSource::new(object.storage.reader_from(path, 0).await?),
                    self.core(),
                    object.name.clone(),
                    self.trim,
                );
                names = header.read_row().await?.map(|row| row.fields);
            }
            header_pending = false;
            core.set_line(resume.line.max(1));
        }
        let mut cursor = CsvCursor::new(
            ByteSource::new(object.storage.reader_from(path, resume.offset).await?),
            core,
            object.name,
            self.trim,
        );
        cursor.offset = resume.offset;
        cursor.record = resume.record;
        cursor.expected = match (&self.headers, &names) {
            (Some(headers), _) => Some(headers.len()),
            // Resumed: the header row was read above.
            (None, Some(names)) if !header_pending => Some(names.len()),
            _ => None,
        };
        cursor.names = names.unwrap_or_default();
        cursor.header_pending = header_pending;
        cursor.explicit_names = self.headers.is_some();
        Ok(Box::new(cursor))
    }
}

/// One row: its fields and the line it starts on.
struct Row {
    fields: Vec<String>,
    line: u64,
}

struct CsvCursor {
    source: ByteSource,
    core: csv_core::Reader,
    name: String,
    trim: bool,
    output: Vec<u8>,
    ends: Vec<usize>,
    /// Byte offset of the next row.
    offset: u64,
    /// Rows consumed (the header not included).
    record: u64,
    /// The record keys by column: the column names, then `columnN`.
    names: Vec<String>,
    explicit_names: bool,
    header_pending: bool,
    /// The number of fields every row must have, once known.
    expected: Option<usize>,
    /// The fields shared by the records of this object.
    layout: RecordLayout,
}

impl CsvCursor {
    fn new(source: ByteSource, core: csv_core::Reader, name: String, trim: bool) -> Self {
        CsvCursor {
            source,
            core,
            name,
            trim,
            output: vec![0; 4096],
            ends: vec![0; 64],
            offset: 0,
            record: 0,
            names: Vec::new(),
            explicit_names: false,
            header_pending: false,
            expected: None,
            layout: RecordLayout::default(),
        }
    }

    /// Reads the next row: `None` at the end of the object.
    async fn read_row(&mut self) -> Result<Option<Row>> {
        let line = self.core.line();
        let mut out = 0;
        let mut ends = 0;
        loop {
            let more = self.source.fill().await?;
            let input = self.source.available();
            let (result, nin, nout, nend) =
                self.core
                    .read_record(input, &mut self.output[out..], &mut self.ends[ends..]);
            self.source.consume(nin);
            self.offset += nin as u64;
            out += nout;
            ends += nend;
            match result {
                csv_core::ReadRecordResult::InputEmpty if more => {}
                csv_core::ReadRecordResult::InputEmpty | csv_core::ReadRecordResult::End => {
                    return Ok(None);
                }
                csv_core::ReadRecordResult::OutputFull => {
                    let len = self.output.len();
                    self.output.resize(len * 2, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
                }
                csv_core::ReadRecordResult::Record => break,
            }
        }
        let data = &self.output[..out];
        let mut fields = Vec::with_capacity(ends);
        let mut start = 0;
        for (index, &end) in self.ends[..ends].iter().enumerate() {
            let bytes = &data[start..end];
            let text = std::str::from_utf8(bytes).map_err(|err| {
                Error::new(
                    ErrorKind::Parse,
                    format!(
                        "{}:{line}: {} is not valid UTF-8 (valid up to byte {})",
                        self.name,
                        self.field_name(index),
                        err.valid_up_to()
                    ),
                )
            })?;
            fields.push(if self.trim {
                text.trim().to_string()
            } else {
                text.to_string()
            });
            start = end;
        }
        Ok(Some(Row { fields, line }))
    }

    fn field_name(&self, index: usize) -> String {
        match self.names.get(index) {
            Some(name) => format!("field {} (`{name}`)", index + 1),
            None => format!("field {}", index + 1),
        }
    }
}

#[async_trait]
impl RecordCursor for CsvCursor {
    async fn next(&mut self) -> Result<Option<Record>> {
        if self.header_pending {
            self.header_pending = false;
            let Some(header) = self.read_row().await? else {
                return Ok(None);
            };
            if self.expected.is_none() {
                self.expected = Some(header.fields.len());
            }
            if !self.explicit_names {
                self.names = header.fields;
                self.layout.clear();
            }
        }
        let row = self.read_row().await;
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(None),
            Err(err) => {
                self.record += 1;
                return Err(err);
            }
        };
        self.record += 1;
        match self.expected {
            Some(expected) if expected != row.fields.len() => {
                let why = if self.explicit_names {
                    " (the `headers` property)"
                } else {
                    ""
                };
                return Err(Error::new(
                    ErrorKind::Parse,
                    format!(
                        "{}:{}: wrong number of fields: expected {expected}{why}, found {}",
                        self.name,
                        row.line,
                        row.fields.len()
                    ),
                ));
            }
            Some(_) => {}
            None => self.expected = Some(row.fields.len()),
        }
        while self.names.len() < row.fields.len() {
            let n = self.names.len() + 1;
            self.names.push(format!("column{n}"));
        }
        self.layout.ensure(Some(&self.names), row.fields.len());
        Ok(Some(
            self.layout.record(row.fields.len(), row.fields.into_iter()),
        ))
    }

    fn columns(&self) -> Option<&[String]> {
        (!self.names.is_empty() && !self.header_pending).then_some(self.names.as_slice())
    }

    fn position(&self) -> Position {
        Position {
            record: self.record,
            offset: self.offset,
            line: self.core.line(),
        }
    }
}

/// The CSV format of a writer.
pub(crate) struct CsvEncoder {
    delimiter: u8,
    quote: u8,
    header: bool,
    columns: Option<Vec<String>>,
    configured_columns: bool,
    writer: Option<csv::Writer<Vec<u8>>>,
    row: Vec<String>,
    records: u64,
}

impl CsvEncoder {
    pub(crate) fn new(config: &CsvObjectWriterConfig) -> Result<Self> {
        Ok(CsvEncoder {
            delimiter: ascii(config.delimiter, "delimiter", &config.path)?,
            quote: ascii(config.quote, "quote", &config.path)?,
            header: config.header,
            columns: config.columns.clone(),
            configured_columns: config.columns.is_some(),
            writer: None,
            row: Vec::new(),
            records: 0,
        })
    }

    fn csv_error(err: csv::Error) -> Error {
        Error::new(ErrorKind::Io, format!("cannot encode CSV: {err}")).with_source(err)
    }
}

/// A value as CSV text: strings as they are, null empty, others as JSON.
fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

#[async_trait]
impl PartEncoder for CsvEncoder {
    fn format(&self) -> &'static str {
        "CSV"
    }

    fn extension(&self) -> &str {
        "csv"
    }

    fn state(&self) -> Option<Value> {
        match (&self.columns, self.configured_columns) {
            (Some(columns), false) => Some(Value::from(columns.clone())),
            _ => None,
        }
    }

    fn restore(&mut self, state: Option<&Value>) -> Result<()> {
        if self.configured_columns {
            return Ok(());
        }
        let Some(state) = state else {
            self.columns = None;
            return Ok(());
        };
        let columns: Vec<String> = serde_json::from_value(state.clone()).map_err(|err| {
            Error::new(
                ErrorKind::Repository,
                format!("the saved CSV columns are not a list of names: {err}"),
            )
        })?;
        self.columns = Some(columns);
        Ok(())
    }

    fn append(&mut self, record: &Record) -> Result<()> {
        let columns = self
            .columns
            .get_or_insert_with(|| record.keys().cloned().collect());
        if self.writer.is_none() {
            let mut writer = csv::WriterBuilder::new()
                .delimiter(self.delimiter)
                .quote(self.quote)
                .from_writer(Vec::with_capacity(64 * 1024));
            if self.header {
                writer
                    .write_record(columns.iter())
                    .map_err(Self::csv_error)?;
            }
            self.writer = Some(writer);
        }
        self.row.clear();
        self.row
            .extend(columns.iter().map(|column| text(record.get(column))));
        if let Some(writer) = self.writer.as_mut() {
            writer.write_record(&self.row).map_err(Self::csv_error)?;
        }
        self.records += 1;
        Ok(())
    }

    fn records(&self) -> u64 {
        self.records
    }

    fn bytes(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(0, |writer| writer.get_ref().len() as u64)
    }

    async fn finish(&mut self) -> Result<Bytes> {
        self.records = 0;
        match self.writer.take() {
            Some(writer) => {
                let bytes = writer.into_inner().map_err(|err| {
                    Error::new(ErrorKind::Io, format!("cannot encode CSV: {}", err.error()))
                })?;
                Ok(Bytes::from(bytes))
            }
            None => Ok(Bytes::new()),
        }
    }

    fn discard(&mut self) {
        self.writer = None;
        self.records = 0;
    }

    fn empty_output(&self, reader_columns: Option<&[String]>) -> Result<Option<Bytes>> {
        let columns = match (&self.columns, reader_columns) {
            _ if !self.header => return Ok(None),
            (Some(columns), _) => columns.as_slice(),
            (None, Some(columns)) => columns,
            (None, None) => return Ok(None),
        };
        let mut writer = csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .quote(self.quote)
            .from_writer(Vec::new());
        writer.write_record(columns).map_err(Self::csv_error)?;
        let bytes = writer.into_inner().map_err(|err| {
            Error::new(ErrorKind::Io, format!("cannot encode CSV: {}", err.error()))
        })?;
        Ok(Some(Bytes::from(bytes)))
    }
}
