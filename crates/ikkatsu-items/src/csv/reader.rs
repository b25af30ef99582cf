//! [`CsvReader`]: a CSV file read row by row from the local file system (the `csv` crate on
//! a `std::fs::File`, the fast path), each row made an item by a [`CsvItemDecoder`].

use std::fs::File;
use std::path::Path;

use async_trait::async_trait;
use ikkatsu_core::item::fill_chunk;
use ikkatsu_core::{Error, ErrorKind, ExecutionContext, ItemReader, ItemStream, Result};

use super::decode::CsvItemDecoder;
use super::error::{ascii_byte, csv_error, field_count_error};
use super::{CsvReaderConfig, READER_COLUMNS_KEY};
use crate::file::{ContextKeys, check_resume_offset, open_input};

/// Bytes the CSV reader reads and the writer writes per system call (the csv crate's
/// default is 8 KiB): a chunk of ~100-byte rows then costs one or two calls, not dozens.
pub(super) const IO_BUFFER: usize = 128 * 1024;

/// Reads a local CSV file: one item per row, made by the decoder `D`
/// ([`CsvItemReader`](super::CsvItemReader), [`CsvRowItemReader`](super::CsvRowItemReader)
/// and [`TypedCsvItemReader`](super::TypedCsvItemReader) are this reader with the record,
/// row and typed decoders).
///
/// Restartable: the position is saved under `csv.reader.offset`, `csv.reader.line` and
/// `csv.reader.record` (see [`CsvReader::with_context_prefix`]) after every chunk, and a
/// restart resumes exactly at the next row. The column names in effect are saved under
/// [`READER_COLUMNS_KEY`].
pub struct CsvReader<D> {
    config: CsvReaderConfig,
    /// The file as named in messages.
    name: String,
    delimiter: u8,
    quote: u8,
    keys: ContextKeys,
    reader: Option<csv::Reader<File>>,
    /// The column names in effect (explicit, from the header row, or none).
    names: Option<Vec<String>>,
    /// The row being read, reused.
    row: csv::ByteRecord,
    decoder: D,
}

impl<D: CsvItemDecoder + Default> CsvReader<D> {
    /// A reader for `config`; the file is opened in [`ItemStream::open`].
    pub fn new(config: CsvReaderConfig) -> Result<Self> {
        CsvReader::with_decoder(config, D::default())
    }
}

impl<D: CsvItemDecoder> CsvReader<D> {
    /// A reader for `config` whose rows become items through `decoder`.
    pub fn with_decoder(config: CsvReaderConfig, decoder: D) -> Result<Self> {
        let name = config.path.display().to_string();
        let delimiter = ascii_byte(config.delimiter, "delimiter", &name)?;
        let quote = ascii_byte(config.quote, "quote", &name)?;
        Ok(CsvReader {
            config,
            name,
            delimiter,
            quote,
            keys: ContextKeys::new("csv.reader"),
            reader: None,
            names: None,
            row: csv::ByteRecord::new(),
            decoder,
        })
    }

    /// Sets the prefix of the keys saved in the step's execution context (default
    /// `csv.reader`); needed when one step has two CSV readers.
    pub fn with_context_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.keys = ContextKeys::new(prefix);
        self
    }

    fn path(&self) -> &Path {
        &self.config.path
    }

    fn open_file(&mut self, context: &ExecutionContext) -> Result<()> {
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
                .map_err(|err| csv_error(&self.name, err, None))?;
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
                .map_err(|err| csv_error(&self.name, err, names.as_deref()))?;
            tracing::debug!(path = %self.name, offset, line, "CSV reader resumed");
        }
        self.decoder.start(names.as_deref());
        self.names = names;
        self.reader = Some(reader);
        Ok(())
    }

    /// Reads the next row into `self.row`: `false` at the end of the input. Read errors
    /// name the file and line; the field count is checked against explicit column names
    /// (the csv crate only checks rows against each other).
    fn read_row(&mut self) -> Result<bool> {
        let Some(reader) = self.reader.as_mut() else {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("CSV reader `{}` read before open", self.name),
            ));
        };
        match reader.read_byte_record(&mut self.row) {
            Ok(false) => return Ok(false),
            Ok(true) => {}
            Err(err) => return Err(csv_error(&self.name, err, self.names.as_deref())),
        }
        if let (Some(headers), Some(position)) = (&self.config.headers, self.row.position())
            && headers.len() != self.row.len()
        {
            let at = format!("{}:{}", self.name, position.line());
            return Err(field_count_error(&at, headers.len(), self.row.len(), true));
        }
        Ok(true)
    }

    fn next_item(&mut self) -> Result<Option<D::Item>> {
        if !self.read_row()? {
            return Ok(None);
        }
        let item = self
            .decoder
            .decode(&self.row, &self.name, self.names.as_deref())?;
        Ok(Some(item))
    }
}

#[async_trait]
impl<D: CsvItemDecoder> ItemStream for CsvReader<D> {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        self.open_file(context)
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        if let Some(reader) = &self.reader {
            let position = reader.position();
            context.put(self.keys.key("offset"), position.byte());
            context.put(self.keys.key("line"), position.line());
            context.put(self.keys.key("record"), position.record());
        }
        if let Some(names) = &self.names {
            context.put(READER_COLUMNS_KEY, names);
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.reader = None;
        Ok(())
    }
}

#[async_trait]
impl<D: CsvItemDecoder> ItemReader<D::Item> for CsvReader<D> {
    async fn read(&mut self) -> Result<Option<D::Item>> {
        self.next_item()
    }

    async fn read_chunk(&mut self, max: usize, items: &mut Vec<D::Item>) -> Result<bool> {
        fill_chunk(max, items, || self.next_item())
    }

    fn supports_read_ahead(&self) -> bool {
        true
    }
}
