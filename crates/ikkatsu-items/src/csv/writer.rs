//! Local CSV files written restart-safe: [`CsvWriter`] (items made rows by a
//! [`CsvItemEncoder`]) and [`TypedCsvItemWriter`] (serde types).

use std::fs::File;
use std::io::{Seek, Write};
use std::marker::PhantomData;
use std::path::Path;

use async_trait::async_trait;
use serde::Serialize;

use ikkatsu_core::{Error, ErrorKind, ExecutionContext, ItemStream, ItemWriter, Result};

use super::encode::CsvItemEncoder;
use super::error::{ascii_byte, field_name};
use super::reader::IO_BUFFER;
use super::{CsvWriterConfig, reader_columns};
use crate::compress::{Codec, OutputFile};
use crate::file::{ContextKeys, cut_back, open_output, write_error};
use crate::text::TextEncoding;
use crate::text::encode::{EncodingWriter, unencodable};

/// Where the CSV writer's UTF-8 text goes: the file itself (UTF-8), or an encoder into it;
/// the file compresses what it is given when `compression` says so.
enum CsvOutput {
    File(OutputFile),
    Encoded(EncodingWriter<OutputFile>),
}

impl CsvOutput {
    fn file(&self) -> std::io::Result<&File> {
        let file = match self {
            CsvOutput::File(file) => file.file(),
            CsvOutput::Encoded(encoded) => encoded.get_ref().file(),
        };
        file.ok_or_else(|| std::io::Error::other("an earlier write to this file failed"))
    }
}

impl Write for CsvOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            CsvOutput::File(file) => file.write(buf),
            CsvOutput::Encoded(encoded) => encoded.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            CsvOutput::File(file) => file.flush(),
            CsvOutput::Encoded(encoded) => encoded.flush(),
        }
    }
}

/// A local CSV file being written, restart-safe: the writing machinery shared by
/// [`CsvWriter`] and [`TypedCsvItemWriter`].
struct CsvSink {
    config: CsvWriterConfig,
    delimiter: u8,
    quote: u8,
    encoding: TextEncoding,
    /// How the file is compressed, if it is.
    codec: Option<Codec>,
    keys: ContextKeys,
    writer: Option<csv::Writer<CsvOutput>>,
    /// Whether the header row still has to be written.
    header_pending: bool,
    /// Rows written to the file by this step (for messages), restored on restart.
    rows: u64,
    /// Whether the csv writer writes the header of serialized structs itself.
    auto_header: bool,
    /// Where the last chunk commit (or `open`) left the file: what a failed write or update
    /// goes back to.
    committed: Committed,
}

/// The state of a [`CsvSink`] at the last chunk commit.
#[derive(Debug, Clone, Copy, Default)]
struct Committed {
    offset: u64,
    rows: u64,
    header_pending: bool,
}

impl CsvSink {
    fn new(config: CsvWriterConfig) -> Result<Self> {
        let name = config.path.display().to_string();
        let delimiter = ascii_byte(config.delimiter, "delimiter", &name)?;
        let quote = ascii_byte(config.quote, "quote", &name)?;
        let encoding = TextEncoding::from_label(config.encoding.as_deref(), &name)?;
        let codec = config.compression.codec_for(&name);
        Ok(CsvSink {
            config,
            delimiter,
            quote,
            encoding,
            codec,
            keys: ContextKeys::new("csv.writer"),
            writer: None,
            header_pending: false,
            rows: 0,
            auto_header: false,
            committed: Committed::default(),
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
        self.rows = match saved {
            Some(_) => self.keys.get_u64(context, "rows")?.unwrap_or(0),
            None => 0,
        };
        let mut offset = opened.offset;
        let mut file = OutputFile::new(opened.file, self.codec);
        // UTF-16 output starts with its byte order mark (a member of its own, compressed).
        if opened.offset == 0 && !self.encoding.bom().is_empty() {
            let error = |err| write_error(&self.config.path, "CSV", err);
            file.write_all(self.encoding.bom()).map_err(error)?;
            file.flush().map_err(error)?;
            if let Some(mut written) = file.file() {
                offset = written.stream_position().map_err(error)?;
            }
        }
        self.header_pending = match saved {
            Some(offset) => {
                let written = context
                    .get::<bool>(&self.keys.key("header-written"))?
                    .unwrap_or(offset > 0);
                self.config.header && !written
            }
            None => self.config.header && opened.empty,
        };
        self.auto_header = auto_header;
        self.committed = Committed {
            offset,
            rows: self.rows,
            header_pending: self.header_pending,
        };
        self.writer = Some(self.csv_writer(file));
        Ok(())
    }

    /// The csv writer writing to `file` from its current position.
    fn csv_writer(&self, file: OutputFile) -> csv::Writer<CsvOutput> {
        let output = if self.encoding.is_utf8() {
            CsvOutput::File(file)
        } else {
            CsvOutput::Encoded(EncodingWriter::new(file, self.encoding))
        };
        csv::WriterBuilder::new()
            .buffer_capacity(IO_BUFFER)
            .delimiter(self.delimiter)
            .quote(self.quote)
            .has_headers(self.auto_header && self.header_pending)
            .flexible(true)
            .from_writer(output)
    }

    /// After a failed write or update: drops what was written since the last commit (the
    /// chunk in progress) and goes on from there; returns `err`.
    fn discard_uncommitted(&mut self, err: Error) -> Error {
        let Some(writer) = self.writer.take() else {
            return err;
        };
        let file = writer.get_ref().file().and_then(File::try_clone);
        // Dropping the csv writer flushes what it still buffers (or fails to, on a full
        // disk); the cut removes it either way.
        drop(writer);
        let committed = self.committed;
        if let Some(file) = cut_back(file, committed.offset, self.path(), "CSV") {
            self.rows = committed.rows;
            self.header_pending = committed.header_pending;
            self.writer = Some(self.csv_writer(OutputFile::new(file, self.codec)));
        }
        err
    }

    fn writer(&mut self) -> Result<&mut csv::Writer<CsvOutput>> {
        let path = &self.config.path;
        self.writer.as_mut().ok_or_else(|| not_open(path))
    }

    fn not_open(&self) -> Error {
        not_open(self.path())
    }

    fn error(&self, err: csv::Error) -> Error {
        let path = self.path();
        match err.into_kind() {
            // A character the encoding cannot represent (rows of serialized structs).
            csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => Error::new(
                ErrorKind::Parse,
                format!("cannot write a row to CSV `{}`: {io}", path.display()),
            ),
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
        let mut file: &File = writer
            .get_ref()
            .file()
            .map_err(|err| write_error(&path, "CSV", err))?;
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
        let flushed = self.flush().map_err(|err| self.discard_uncommitted(err))?;
        if let Some(offset) = flushed {
            context.put(self.keys.key("offset"), offset);
            context.put(self.keys.key("header-written"), !self.header_pending);
            context.put(self.keys.key("rows"), self.rows);
            self.committed = Committed {
                offset,
                rows: self.rows,
                header_pending: self.header_pending,
            };
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        let result = self.flush();
        self.writer = None;
        result.map(|_| ())
    }
}

/// The error of a `row` (`row 3`, `the header row`) of the CSV file `path` whose field
/// `field` holds the character `c` that `encoding` cannot represent.
fn unencodable_error(
    path: &Path,
    encoding: TextEncoding,
    (row, field, c): (&str, usize, char),
    columns: Option<&[String]>,
) -> Error {
    Error::new(
        ErrorKind::Parse,
        format!(
            "cannot write {row} to CSV `{}`: {} holds `{c}` (U+{:04X}), which {} cannot \
             represent; choose an `encoding` that can (UTF-8 represents every character), or \
             replace the character in a processor",
            path.display(),
            field_name(field as u64, columns),
            c as u32,
            encoding.name(),
        ),
    )
}

fn not_open(path: &Path) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!("CSV writer `{}` written before open", path.display()),
    )
}

/// Writes items as the rows of a local CSV file, each made a row by the encoder `E`
/// ([`CsvItemWriter`](super::CsvItemWriter) and
/// [`CsvRowItemWriter`](super::CsvRowItemWriter) are this writer with the record and row
/// encoders).
///
/// The header row holds the `columns` property, else the columns of the first item
/// written, else (a commit before any item) the columns the reader saved under
/// [`READER_COLUMNS_KEY`](super::READER_COLUMNS_KEY).
///
/// Restart-safe: at every chunk commit the output is flushed and its size saved under
/// `csv.writer.offset` (with `csv.writer.columns` and `csv.writer.header-written`); a
/// restarted step truncates the file to that size and continues. A failed write or update
/// drops what was written since the last commit, so a failed run leaves the committed rows
/// only.
pub struct CsvWriter<E> {
    sink: CsvSink,
    /// The header row's names (from `columns`, the saved context, or the first item).
    columns: Option<Vec<String>>,
    /// The row being written, reused.
    row: csv::ByteRecord,
    encoder: E,
}

impl<E: CsvItemEncoder + Default> CsvWriter<E> {
    /// A writer for `config`; the file is created (or truncated) in [`ItemStream::open`].
    pub fn new(config: CsvWriterConfig) -> Result<Self> {
        CsvWriter::with_encoder(config, E::default())
    }
}

impl<E: CsvItemEncoder> CsvWriter<E> {
    /// A writer for `config` whose items become rows through `encoder`.
    pub fn with_encoder(config: CsvWriterConfig, encoder: E) -> Result<Self> {
        Ok(CsvWriter {
            columns: config.columns.clone(),
            sink: CsvSink::new(config)?,
            row: csv::ByteRecord::new(),
            encoder,
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
        let header = csv::ByteRecord::from(columns.clone());
        if let Some((field, c)) = unencodable(self.sink.encoding, &header) {
            let at = ("the header row", field, c);
            return Err(unencodable_error(
                self.sink.path(),
                self.sink.encoding,
                at,
                None,
            ));
        }
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
impl<E: CsvItemEncoder> ItemStream for CsvWriter<E> {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        self.sink.open(context, false)?;
        self.encoder.start();
        if self.sink.config.columns.is_none()
            && let Some(columns) = context.get::<Vec<String>>(&self.sink.keys.key("columns"))?
        {
            self.columns = Some(columns);
        }
        self.write_header_if_pending()
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        // No item written yet: the header is the reader's columns.
        if self.sink.header_pending && self.columns.is_none() && self.sink.writer.is_some() {
            self.columns = reader_columns(context)?;
            self.write_header_if_pending()
                .map_err(|err| self.sink.discard_uncommitted(err))?;
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
impl<E: CsvItemEncoder> ItemWriter<E::Item> for CsvWriter<E> {
    /// Writes the rows of `items`; on an error, none of the rows written since the last
    /// commit stay (a retry writes the chunk once, a failed run leaves committed rows only).
    async fn write(&mut self, items: &[E::Item]) -> Result<()> {
        self.write_rows(items)
            .map_err(|err| self.sink.discard_uncommitted(err))
    }
}

impl<E: CsvItemEncoder> CsvWriter<E> {
    fn write_rows(&mut self, items: &[E::Item]) -> Result<()> {
        if self.columns.is_none()
            && let Some(first) = items.first()
        {
            self.columns = Some(E::columns_of(first));
        }
        self.write_header_if_pending()?;
        let Some(columns) = self.columns.as_ref() else {
            return Ok(());
        };
        let Some(writer) = self.sink.writer.as_mut() else {
            return Err(self.sink.not_open());
        };
        let configured = self.sink.config.columns.is_some();
        let encoding = self.sink.encoding;
        let mut result = Ok(());
        for item in items {
            self.encoder
                .encode(item, columns, configured, &mut self.row)?;
            if let Some((field, c)) = unencodable(encoding, &self.row) {
                let row = format!("row {}", self.sink.rows + 1);
                let path = &self.sink.config.path;
                return Err(unencodable_error(
                    path,
                    encoding,
                    (&row, field, c),
                    Some(columns),
                ));
            }
            if let Err(err) = writer.write_byte_record(&self.row) {
                result = Err(err);
                break;
            }
            self.sink.rows += 1;
        }
        result.map_err(|err| self.sink.error(err))
    }
}

/// Writes values of `T` as CSV rows with serde (the header row comes from `T`'s field
/// names). Restart-safe like [`CsvItemWriter`](super::CsvItemWriter).
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
        // On an error, none of the rows written since the last commit stay.
        result.map_err(|err| {
            let err = self.sink.error(err);
            self.sink.discard_uncommitted(err)
        })
    }
}
