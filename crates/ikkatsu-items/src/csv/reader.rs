//! [`CsvReader`]: a CSV file read row by row from the local file system (the `csv` crate on
//! a `std::fs::File`, the fast path), each row made an item by a [`CsvItemDecoder`].

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use async_trait::async_trait;
use ikkatsu_core::item::fill_chunk;
use ikkatsu_core::{Error, ErrorKind, ExecutionContext, ItemReader, ItemStream, Result};

use super::decode::CsvItemDecoder;
use super::error::{ascii_byte, csv_error, field_count_error, field_name};
use super::{CsvReaderConfig, READER_COLUMNS_KEY};
use crate::compress::InputFile;
use crate::file::{ContextKeys, check_resume_offset, check_resume_position, open_input};
use crate::text::TextEncoding;
use crate::text::decode::{DecodingReader, RowDecoder, decode_row, locate, skip_lines};

/// Bytes the CSV reader reads and the writer writes per system call (the csv crate's
/// default is 8 KiB): a chunk of ~100-byte rows then costs one or two calls, not dozens.
pub(super) const IO_BUFFER: usize = 128 * 1024;

/// What the CSV parser reads: the file's (decompressed) bytes (UTF-8 and the encodings
/// parsed in their raw bytes), or its text decoded to UTF-8 (see
/// [`TextEncoding::parses_raw`]).
enum CsvInput {
    File(InputFile),
    Decoded(DecodingReader<InputFile>),
}

impl Read for CsvInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            CsvInput::File(file) => file.read(buf),
            CsvInput::Decoded(text) => text.read(buf),
        }
    }
}

impl Seek for CsvInput {
    /// Decoded text is only read forward: it stays where it is (`SeekFrom::Current(0)`).
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        match (self, pos) {
            (CsvInput::File(file), pos) => file.seek(pos),
            (CsvInput::Decoded(_), SeekFrom::Current(0)) => Ok(0),
            (CsvInput::Decoded(_), _) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "decoded CSV text is read forward only",
            )),
        }
    }
}

/// Reads a local CSV file: one item per row, made by the decoder `D`
/// ([`CsvItemReader`](super::CsvItemReader), [`CsvRowItemReader`](super::CsvRowItemReader)
/// and [`TypedCsvItemReader`](super::TypedCsvItemReader) are this reader with the record,
/// row and typed decoders).
///
/// Restartable: the position is saved under `csv.reader.offset`, `csv.reader.line` and
/// `csv.reader.record` (see [`CsvReader::with_context_prefix`]) after every chunk, and a
/// restart resumes exactly at the next row: at the saved byte offset of the file, or, for
/// input decoded before it is parsed (UTF-16, see the `encoding` property), by reading the
/// file again up to the saved record (no offset is saved then). The column names in effect
/// are saved under [`READER_COLUMNS_KEY`].
pub struct CsvReader<D> {
    config: CsvReaderConfig,
    /// The file as named in messages.
    name: String,
    delimiter: u8,
    quote: u8,
    /// The configured encoding (a byte order mark in the file wins over it).
    encoding: TextEncoding,
    keys: ContextKeys,
    reader: Option<csv::Reader<CsvInput>>,
    /// Decodes the fields of rows parsed in the file's bytes (nothing for UTF-8).
    fields: RowDecoder,
    /// The encoding the file's bytes are parsed in, when they are (not decoded first).
    raw: Option<TextEncoding>,
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
        let encoding = TextEncoding::from_label(config.encoding.as_deref(), &name)?;
        Ok(CsvReader {
            config,
            name,
            delimiter,
            quote,
            encoding,
            keys: ContextKeys::new("csv.reader"),
            reader: None,
            fields: RowDecoder::new(TextEncoding::default()),
            raw: None,
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

    fn io_error(&self, err: std::io::Error) -> Error {
        Error::io(format_args!("cannot read CSV input `{}`", self.name), err)
    }

    fn open_file(&mut self, context: &ExecutionContext) -> Result<()> {
        let file = open_input(self.path(), "CSV")?;
        let codec = self.config.compression.codec_for(&self.name);
        let mut file = InputFile::new(file, self.path(), codec)?;
        let offset = self.keys.get_u64(context, "offset")?;
        let line = self.keys.get_u64(context, "line")?;
        let record = self.keys.get_u64(context, "record")?;
        // The byte order mark, if any, decides the encoding.
        let mut head = [0u8; 3];
        let mut len = 0;
        while len < head.len() {
            match file.read(&mut head[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.io_error(err)),
            }
        }
        let (encoding, bom) = self.encoding.sniff(&head[..len]);
        let raw = encoding.parses_raw(self.delimiter, self.quote);
        file.seek(SeekFrom::Start(bom as u64))
            .map_err(|err| self.io_error(err))?;
        let (input, start, skipped) = if raw {
            if let Some(offset) = offset {
                if let Some(plain) = file.plain() {
                    check_resume_offset(plain, self.path(), offset)?;
                }
                check_resume_position(&self.name, offset, line.unwrap_or(1), record.unwrap_or(0))?;
            }
            let (bytes, lines) =
                skip_lines(&mut BufReader::new(&mut file), self.config.lines_to_skip)
                    .map_err(|err| self.io_error(err))?;
            (CsvInput::File(file), bom as u64 + bytes, lines)
        } else {
            let mut text = DecodingReader::new(file, encoding);
            let (_, lines) = skip_lines(&mut text, self.config.lines_to_skip)
                .map_err(|err| csv_error(&self.name, csv::Error::from(err), None))?;
            (CsvInput::Decoded(text), 0, lines)
        };
        let mut reader = csv::ReaderBuilder::new()
            .buffer_capacity(IO_BUFFER)
            .delimiter(self.delimiter)
            .quote(self.quote)
            // The header row is read below, as a row.
            .has_headers(false)
            .trim(if self.config.trim {
                csv::Trim::All
            } else {
                csv::Trim::None
            })
            .flexible(false)
            .from_reader(input);
        // No header row of the csv crate's own (it would read the first row to find one).
        reader.set_byte_headers(csv::ByteRecord::new());
        let seek_from = if raw {
            SeekFrom::Start(start)
        } else {
            SeekFrom::Current(0)
        };
        let mut position = csv::Position::new();
        position.set_byte(start).set_line(skipped + 1);
        reader
            .seek_raw(seek_from, position)
            .map_err(|err| csv_error(&self.name, err, None))?;
        self.fields = RowDecoder::new(if raw {
            encoding
        } else {
            TextEncoding::default()
        });
        self.raw = raw.then_some(encoding);
        self.reader = Some(reader);

        let mut names = self.config.headers.clone();
        if self.config.has_header {
            let header = match self.read_row()? {
                true => match self.fields.strings(&self.row) {
                    Ok(header) => header,
                    Err(field) => return Err(self.undecodable(field)),
                },
                false => Vec::new(),
            };
            if names.is_none() {
                names = Some(header);
            }
        }
        self.names = names;
        match (offset, record) {
            (Some(offset), _) if raw => {
                // Lines are numbered from 1 (the csv crate asserts it); a saved 0 was not
                // saved by this reader, and line numbers only serve messages: it counts as 1.
                let (byte, line) = self.resume_point(offset, line.unwrap_or(1).max(1));
                let mut position = csv::Position::new();
                position
                    .set_byte(byte)
                    .set_line(line)
                    .set_record(record.unwrap_or(0));
                if let Some(reader) = self.reader.as_mut() {
                    reader
                        .seek(position)
                        .map_err(|err| csv_error(&self.name, err, self.names.as_deref()))?;
                }
                tracing::debug!(path = %self.name, offset, "CSV reader resumed");
            }
            (_, Some(record)) => {
                // Decoded text: read again up to the saved record.
                while self.reader.as_ref().map_or(0, |r| r.position().record()) < record
                    && self.read_row()?
                {}
                tracing::debug!(path = %self.name, record, "CSV reader resumed");
            }
            _ => {}
        }
        self.decoder.start(self.names.as_deref());
        Ok(())
    }

    /// Where the parser resumes for the saved `offset` and `line`. The csv crate drops a
    /// UTF-8 byte order mark at the start of what it parses after a seek, taking it for the
    /// file's; a row at `offset` may begin with those bytes (files joined with `cat`). Then
    /// the parser starts at the line break before it, an empty line that makes no row.
    fn resume_point(&self, offset: u64, line: u64) -> (u64, u64) {
        let mut bytes = [0u8; 4];
        let Some(CsvInput::File(input)) = self.reader.as_ref().map(csv::Reader::get_ref) else {
            return (offset, line);
        };
        // Compressed input cannot be read at a position without decompressing to it.
        let Some(file) = input.plain() else {
            return (offset, line);
        };
        if offset == 0
            || read_exact_at(file, &mut bytes, offset - 1).is_err()
            || bytes[1..] != *b"\xef\xbb\xbf"
        {
            return (offset, line);
        }
        match bytes[0] {
            b'\n' => (offset - 1, line.saturating_sub(1).max(1)),
            b'\r' => (offset - 1, line),
            _ => (offset, line),
        }
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

    /// The error of the row just read, whose field `field` does not decode: where in the
    /// file (line and column) and which bytes, found in the row's raw bytes.
    fn undecodable(&self, field: usize) -> Error {
        let names = self.names.as_deref();
        let field_name = field_name(field as u64, names);
        let line = self.row.position().map_or(1, csv::Position::line);
        let found = match (&self.reader, self.raw, self.row.position()) {
            (Some(reader), Some(encoding), Some(start)) => {
                let (start, end) = (start.byte(), reader.position().byte());
                let mut raw = vec![0; end.saturating_sub(start) as usize];
                let read = match reader.get_ref() {
                    CsvInput::File(file) => file
                        .plain()
                        .is_some_and(|file| read_exact_at(file, &mut raw, start).is_ok()),
                    CsvInput::Decoded(_) => false,
                };
                read.then(|| locate(encoding, &raw, line)).flatten()
            }
            _ => None,
        };
        match found {
            Some(found) => found.error(&self.name, Some(field_name)),
            None => Error::new(
                ErrorKind::Parse,
                format!(
                    "{}:{line}: {field_name} cannot be decoded as {}; check the `encoding` property",
                    self.name,
                    self.raw.unwrap_or_default().name()
                ),
            ),
        }
    }

    fn next_item(&mut self) -> Result<Option<D::Item>> {
        if !self.read_row()? {
            return Ok(None);
        }
        let (decoder, name, names) = (&mut self.decoder, &self.name, self.names.as_deref());
        match decode_row(&mut self.fields, self.raw, &self.row, |row| {
            decoder.decode(row, name, names)
        })? {
            Ok(item) => Ok(Some(item)),
            Err(field) => Err(self.undecodable(field)),
        }
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
            // Offsets in decoded text are no place in the file: not saved.
            if self.raw.is_some() {
                context.put(self.keys.key("offset"), position.byte());
            }
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

/// Reads `buf.len()` bytes of `file` at `offset` without moving its position (the CSV
/// parser's): the raw bytes of a row, for the place of an undecodable byte in a message.
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Without positioned reads the place is not looked up (the message names the line).
#[cfg(not(unix))]
fn read_exact_at(_file: &File, _buf: &mut [u8], _offset: u64) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}
