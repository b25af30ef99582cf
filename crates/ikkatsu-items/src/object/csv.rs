//! CSV on a storage: a streaming push parser (`csv-core`) fed by ranged reads, and an
//! encoder writing one complete CSV file (header included) per part. What a row becomes and
//! what a record is as a row are the local CSV components' own
//! ([`CsvRecordDecoder`], [`CsvRecordEncoder`]): only the bytes come from elsewhere.

use async_trait::async_trait;
use bytes::Bytes;
use ikkatsu_core::{Error, ErrorKind, Record, Result};
use serde_json::Value;

use crate::csv::config::csv_config;
use crate::csv::{
    CsvItemDecoder, CsvItemEncoder, CsvRecordDecoder, CsvRecordEncoder, ascii_byte,
    field_count_error, field_name,
};
use crate::file::check_resume_position;
use crate::text::TextEncoding;
use crate::text::decode::{RowDecoder, decode_row, locate};
use crate::text::encode::{encode_text, unencodable};

use super::format::{Object, PartEncoder, Position, RecordCursor, RecordDecoder};
use super::source::{ByteSource, TextSource};
use super::writer::PartOptions;
use super::{ObjectItemReader, ObjectItemWriter, default_prefix};

csv_config! {
    reader
    /// Properties of a CSV reader on a storage (`csv` with `storage` in job YAML).
    CsvObjectReaderConfig {
        /// The storage URL (or `@name` in job YAML). Without it, `path` is a local path.
        #[serde(default)]
        pub storage: Option<String>,
        /// The object, or a glob of objects read in sorted order (see
        /// [`ObjectReaderConfig`](super::ObjectReaderConfig)).
        pub path: String,
        /// Globs of objects not to read.
        #[serde(default)]
        pub exclude: Vec<String>,
    }
    /// A configuration reading `path` (an object or a glob) on `storage`, with a header row.
    fn new(storage: impl Into<String>, path: impl Into<String>) {
        storage: Some(storage.into()),
        path: path.into(),
        exclude: Vec::new(),
    }
}

csv_config! {
    writer
    /// Properties of a CSV writer on a storage (`csv` with `storage` in job YAML).
    CsvObjectWriterConfig {
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
    } {}
    /// A configuration writing parts into `path` on `storage`, with a header row.
    fn new(storage: impl Into<String>, path: impl Into<String>) {
        storage: Some(storage.into()),
        path: path.into(),
        prefix: default_prefix(),
        part_records: None,
        part_bytes: None,
    }
}

/// The CSV format of a reader.
pub(crate) struct CsvDecoder {
    delimiter: u8,
    quote: u8,
    encoding: TextEncoding,
    has_header: bool,
    headers: Option<Vec<String>>,
    lines_to_skip: u64,
    trim: bool,
}

impl CsvDecoder {
    pub(crate) fn new(config: &CsvObjectReaderConfig) -> Result<Self> {
        Ok(CsvDecoder {
            delimiter: ascii_byte(config.delimiter, "delimiter", &config.path)?,
            quote: ascii_byte(config.quote, "quote", &config.path)?,
            encoding: TextEncoding::from_label(config.encoding.as_deref(), &config.path)?,
            has_header: config.has_header,
            headers: config.headers.clone(),
            lines_to_skip: config.lines_to_skip,
            trim: config.trim,
        })
    }

    fn core(&self) -> csv_core::Reader {
        csv_core::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .quote(self.quote)
            .build()
    }

    /// A cursor at the start of `object`: past its byte order mark (which decides the
    /// encoding) and `lines-to-skip`, before the header row.
    async fn start(&self, object: &Object<'_>) -> Result<CsvCursor> {
        let mut source = ByteSource::open(object, 0).await?;
        let (encoding, bom) = self.encoding.sniff(source.head(3).await?);
        source.consume(bom);
        let raw = encoding.parses_raw(self.delimiter, self.quote);
        let text = TextSource::new(source, encoding, raw, &object.name);
        let mut cursor = CsvCursor::new(text, self.core(), object.name.clone(), self.trim);
        cursor.fields = RowDecoder::new(if raw {
            encoding
        } else {
            TextEncoding::default()
        });
        cursor.raw = raw.then_some(encoding);
        cursor.offset = bom as u64;
        cursor.skip_lines(self.lines_to_skip).await?;
        cursor.names = self.headers.clone().unwrap_or_default();
        cursor.explicit_names = self.headers.is_some();
        cursor.expected = self.headers.as_ref().map(Vec::len);
        cursor.header_pending = self.has_header;
        Ok(cursor)
    }
}

#[async_trait]
impl RecordDecoder for CsvDecoder {
    fn format(&self) -> &'static str {
        "CSV"
    }

    async fn open(&self, object: Object<'_>, resume: Position) -> Result<Box<dyn RecordCursor>> {
        let mut cursor = self.start(&object).await?;
        if resume.offset == 0 && resume.record == 0 {
            return Ok(Box::new(cursor));
        }
        // Resuming after the header: read it from the start, then continue at the offset
        // (decoded text: read again up to the saved record).
        if cursor.header_pending {
            cursor.read_header().await?;
        }
        if cursor.raw.is_some() {
            check_resume_position(&cursor.name, resume.offset, resume.line, resume.record)?;
            cursor.source = TextSource::Raw(ByteSource::open(&object, resume.offset).await?);
            cursor.core = self.core();
            // csv-core drops a UTF-8 byte order mark at the start of the first input it
            // parses, taking it for the file's; the row at the saved offset may begin with
            // those bytes (files joined with `cat`). An empty line parsed first keeps them.
            let (mut field, mut ends) = ([0u8; 1], [0usize; 1]);
            cursor.core.read_record(b"\n", &mut field, &mut ends);
            cursor.core.set_line(resume.line.max(1));
            cursor.offset = resume.offset;
            cursor.record = resume.record;
        } else {
            while cursor.record < resume.record && cursor.read_row().await? {
                cursor.record += 1;
            }
        }
        if cursor.expected.is_none() && !cursor.names.is_empty() {
            cursor.expected = Some(cursor.names.len());
        }
        Ok(Box::new(cursor))
    }
}

struct CsvCursor {
    source: TextSource,
    core: csv_core::Reader,
    name: String,
    trim: bool,
    output: Vec<u8>,
    ends: Vec<usize>,
    /// The row read last, as the local reader's `csv` crate gives it to the decoder.
    row: csv::ByteRecord,
    /// The raw bytes of the row read last (for the place of an undecodable byte).
    raw_row: Vec<u8>,
    /// Decodes the fields of rows parsed in the object's bytes (nothing for UTF-8).
    fields: RowDecoder,
    /// The encoding the object's bytes are parsed in, when they are (not decoded first).
    raw: Option<TextEncoding>,
    /// Byte offset of the next row (of the object; not counted in decoded text).
    offset: u64,
    /// Rows consumed (the header not included).
    record: u64,
    /// The record keys by column: the column names, then `columnN`.
    names: Vec<String>,
    explicit_names: bool,
    header_pending: bool,
    /// The number of fields every row must have, once known.
    expected: Option<usize>,
    decoder: CsvRecordDecoder,
}

impl CsvCursor {
    fn new(source: TextSource, core: csv_core::Reader, name: String, trim: bool) -> Self {
        CsvCursor {
            source,
            core,
            name,
            trim,
            output: vec![0; 4096],
            ends: vec![0; 64],
            row: csv::ByteRecord::new(),
            raw_row: Vec::new(),
            fields: RowDecoder::new(TextEncoding::default()),
            raw: Some(TextEncoding::default()),
            offset: 0,
            record: 0,
            names: Vec::new(),
            explicit_names: false,
            header_pending: false,
            expected: None,
            decoder: CsvRecordDecoder::default(),
        }
    }

    /// Skips `lines` lines as they are (`lines-to-skip`).
    async fn skip_lines(&mut self, lines: u64) -> Result<()> {
        let mut skipped = 0;
        while skipped < lines && self.source.fill().await? {
            let input = self.source.available();
            let n = match input.iter().position(|&b| b == b'\n') {
                Some(at) => {
                    skipped += 1;
                    at + 1
                }
                None => input.len(),
            };
            self.source.consume(n);
            self.offset += n as u64;
        }
        self.core.set_line(skipped + 1);
        Ok(())
    }

    /// Reads the next row into `self.row` (trimmed with `trim`, its line as its position):
    /// `false` at the end of the object.
    async fn read_row(&mut self) -> Result<bool> {
        let line = self.core.line();
        let mut out = 0;
        let mut ends = 0;
        self.raw_row.clear();
        loop {
            let more = self.source.fill().await?;
            let input = self.source.available();
            let (result, nin, nout, nend) =
                self.core
                    .read_record(input, &mut self.output[out..], &mut self.ends[ends..]);
            if self.raw.is_some() {
                self.raw_row.extend_from_slice(&input[..nin]);
            }
            self.source.consume(nin);
            self.offset += nin as u64;
            out += nout;
            ends += nend;
            match result {
                csv_core::ReadRecordResult::InputEmpty if more => {}
                csv_core::ReadRecordResult::InputEmpty | csv_core::ReadRecordResult::End => {
                    return Ok(false);
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
        self.row.clear();
        let mut start = 0;
        for &end in &self.ends[..ends] {
            self.row.push_field(&self.output[start..end]);
            start = end;
        }
        if self.trim {
            self.row.trim();
        }
        let mut position = csv::Position::new();
        position.set_line(line);
        self.row.set_position(Some(position));
        Ok(true)
    }

    /// The line the last row started on.
    fn line_of_row(&self) -> u64 {
        self.row.position().map_or(0, csv::Position::line)
    }

    /// Reads the header row: its fields are the column names unless they are explicit.
    async fn read_header(&mut self) -> Result<()> {
        self.header_pending = false;
        if !self.read_row().await? {
            return Ok(());
        }
        if self.expected.is_none() {
            self.expected = Some(self.row.len());
        }
        if !self.explicit_names {
            self.names = match self.fields.strings(&self.row) {
                Ok(names) => names,
                Err(field) => return Err(self.undecodable(field)),
            };
            self.decoder.start(Some(&self.names));
        }
        Ok(())
    }

    /// The error of the row just read, whose field `field` does not decode: where in the
    /// object (line and column) and which bytes.
    fn undecodable(&self, field: usize) -> Error {
        let field = field_name(field as u64, Some(&self.names));
        let line = self.line_of_row();
        match self
            .raw
            .and_then(|encoding| locate(encoding, &self.raw_row, line))
        {
            Some(found) => found.error(&self.name, Some(field)),
            None => Error::new(
                ErrorKind::Parse,
                format!(
                    "{}:{line}: {field} cannot be decoded; check the `encoding` property",
                    self.name
                ),
            ),
        }
    }
}

#[async_trait]
impl RecordCursor for CsvCursor {
    async fn next(&mut self) -> Result<Option<Record>> {
        if self.header_pending {
            self.read_header().await?;
        }
        match self.read_row().await {
            Ok(true) => self.record += 1,
            Ok(false) => return Ok(None),
            Err(err) => {
                self.record += 1;
                return Err(err);
            }
        }
        let len = self.row.len();
        match self.expected {
            Some(expected) if expected != len => {
                let at = format!("{}:{}", self.name, self.line_of_row());
                return Err(field_count_error(&at, expected, len, self.explicit_names));
            }
            Some(_) => {}
            None => self.expected = Some(len),
        }
        while self.names.len() < len {
            let n = self.names.len() + 1;
            self.names.push(format!("column{n}"));
        }
        let (decoder, name, names) = (&mut self.decoder, &self.name, &self.names);
        match decode_row(&mut self.fields, self.raw, &self.row, |row| {
            decoder.decode(row, name, Some(names))
        })? {
            Ok(record) => Ok(Some(record)),
            Err(field) => Err(self.undecodable(field)),
        }
    }

    fn columns(&self) -> Option<&[String]> {
        (!self.names.is_empty() && !self.header_pending).then_some(self.names.as_slice())
    }

    fn position(&self) -> Position {
        Position {
            record: self.record,
            // Offsets in decoded text are no place in the object: a restart reads again.
            offset: if self.source.is_decoded() {
                0
            } else {
                self.offset
            },
            line: self.core.line(),
        }
    }
}

/// The CSV format of a writer.
pub(crate) struct CsvEncoder {
    delimiter: u8,
    quote: u8,
    encoding: TextEncoding,
    header: bool,
    columns: Option<Vec<String>>,
    configured_columns: bool,
    writer: Option<csv::Writer<Vec<u8>>>,
    encoder: CsvRecordEncoder,
    row: csv::ByteRecord,
    records: u64,
}

impl CsvEncoder {
    pub(crate) fn new(config: &CsvObjectWriterConfig) -> Result<Self> {
        Ok(CsvEncoder {
            delimiter: ascii_byte(config.delimiter, "delimiter", &config.path)?,
            quote: ascii_byte(config.quote, "quote", &config.path)?,
            encoding: TextEncoding::from_label(config.encoding.as_deref(), &config.path)?,
            header: config.header,
            columns: config.columns.clone(),
            configured_columns: config.columns.is_some(),
            writer: None,
            encoder: CsvRecordEncoder::default(),
            row: csv::ByteRecord::new(),
            records: 0,
        })
    }

    fn csv_error(err: csv::Error) -> Error {
        Error::new(ErrorKind::Io, format!("cannot encode CSV: {err}")).with_source(err)
    }

    /// The error of a `row` (`the header row`, `a record`) whose field holds a character
    /// the encoding cannot represent.
    fn unencodable(&self, row: &str, (field, c): (usize, char), columns: &[String]) -> Error {
        Error::new(
            ErrorKind::Parse,
            format!(
                "{row}: {} holds `{c}` (U+{:04X}), which {} cannot represent; choose an \
                 `encoding` that can (UTF-8 represents every character), or replace the \
                 character in a processor",
                field_name(field as u64, Some(columns)),
                c as u32,
                self.encoding.name(),
            ),
        )
    }

    /// The part's bytes: the CSV text encoded (UTF-16 after a byte order mark).
    fn encoded(&self, text: Vec<u8>) -> Result<Bytes> {
        if self.encoding.is_utf8() {
            return Ok(Bytes::from(text));
        }
        let text = String::from_utf8(text).map_err(|err| {
            Error::new(
                ErrorKind::Unexpected,
                format!("CSV text is not UTF-8: {err}"),
            )
        })?;
        let mut out = self.encoding.bom().to_vec();
        encode_text(self.encoding, &text, &mut out).map_err(|c| {
            Error::new(
                ErrorKind::Parse,
                format!("`{c}` cannot be represented in {}", self.encoding.name()),
            )
        })?;
        Ok(Bytes::from(out))
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
        self.encoder.start();
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
            let header = csv::ByteRecord::from(columns.clone());
            if let Some(found) = unencodable(self.encoding, &header).filter(|_| self.header) {
                let columns = columns.clone();
                return Err(self.unencodable("the header row", found, &columns));
            }
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
        self.encoder
            .encode(record, columns, self.configured_columns, &mut self.row)?;
        if let Some(found) = unencodable(self.encoding, &self.row) {
            let columns = columns.clone();
            return Err(self.unencodable("the record", found, &columns));
        }
        if let Some(writer) = self.writer.as_mut() {
            writer
                .write_byte_record(&self.row)
                .map_err(Self::csv_error)?;
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
                self.encoded(bytes)
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
        self.encoded(bytes).map(Some)
    }
}

impl ObjectItemReader {
    /// A CSV reader: one record per row, string values by column name.
    pub fn csv(config: CsvObjectReaderConfig) -> Result<Self> {
        let decoder = CsvDecoder::new(&config)?;
        ObjectItemReader::new(
            config.storage.as_deref(),
            &config.path,
            config.exclude,
            config.compression,
            Box::new(decoder),
        )
    }
}

impl ObjectItemWriter {
    /// A CSV writer: a header row (unless `header: false`) and one row per record in every
    /// part.
    pub fn csv(config: CsvObjectWriterConfig) -> Result<Self> {
        let encoder = CsvEncoder::new(&config)?;
        ObjectItemWriter::new(
            PartOptions {
                storage: config.storage.as_deref(),
                path: &config.path,
                prefix: &config.prefix,
                part_records: config.part_records,
                part_bytes: config.part_bytes,
                compression: config.compression,
            },
            Box::new(encoder),
        )
    }
}
