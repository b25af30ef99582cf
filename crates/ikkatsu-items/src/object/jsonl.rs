//! JSON Lines on a storage: one JSON object per line, streamed.

use async_trait::async_trait;
use bytes::Bytes;
use ikkatsu_core::record::SharedFields;
use ikkatsu_core::{Record, Result};

use super::format::{Object, PartEncoder, Position, RecordCursor, RecordDecoder};
use super::source::ByteSource;
use super::{ObjectItemReader, ObjectItemWriter, ObjectReaderConfig, ObjectWriterConfig};
use crate::jsonl::{decode_record, encode_line};

/// The JSON Lines format of a reader.
pub(crate) struct JsonLinesDecoder;

#[async_trait]
impl RecordDecoder for JsonLinesDecoder {
    fn format(&self) -> &'static str {
        "JSON Lines"
    }

    async fn open(&self, object: Object<'_>, resume: Position) -> Result<Box<dyn RecordCursor>> {
        Ok(Box::new(JsonLinesCursor {
            source: ByteSource::open(&object, resume.offset).await?,
            name: object.name,
            line: Vec::with_capacity(1024),
            position: resume,
            fields: SharedFields::new(),
        }))
    }
}

struct JsonLinesCursor {
    source: ByteSource,
    name: String,
    line: Vec<u8>,
    position: Position,
    /// The fields shared by the records of this object.
    fields: SharedFields,
}

impl JsonLinesCursor {
    /// Reads the next line (with its `\n`) into `self.line`; empty at the end.
    async fn read_line(&mut self) -> Result<()> {
        self.line.clear();
        while self.source.fill().await? {
            let available = self.source.available();
            match available.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.line.extend_from_slice(&available[..=end]);
                    self.source.consume(end + 1);
                    break;
                }
                None => {
                    let n = available.len();
                    self.line.extend_from_slice(available);
                    self.source.consume(n);
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl RecordCursor for JsonLinesCursor {
    async fn next(&mut self) -> Result<Option<Record>> {
        loop {
            self.read_line().await?;
            if self.line.is_empty() {
                return Ok(None);
            }
            self.position.offset += self.line.len() as u64;
            self.position.line += 1;
            let text = self.line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            self.position.record += 1;
            let at = || format!("{}:{}", self.name, self.position.line);
            return decode_record(&mut self.fields, text, at).map(Some);
        }
    }

    fn position(&self) -> Position {
        self.position
    }
}

/// The JSON formats of a writer: JSON Lines (one object per line), or one JSON array of
/// objects per part (`[`, one object per line, `]`).
#[derive(Default)]
pub(crate) struct JsonEncoder {
    array: bool,
    buffer: Vec<u8>,
    records: u64,
}

impl JsonEncoder {
    /// The JSON array format.
    pub(crate) fn array() -> Self {
        JsonEncoder {
            array: true,
            ..JsonEncoder::default()
        }
    }
}

#[async_trait]
impl PartEncoder for JsonEncoder {
    fn format(&self) -> &'static str {
        if self.array { "JSON" } else { "JSON Lines" }
    }

    fn extension(&self) -> &str {
        if self.array { "json" } else { "jsonl" }
    }

    fn append(&mut self, record: &Record) -> Result<()> {
        if self.array {
            let start = self.buffer.len();
            self.buffer
                .extend_from_slice(if self.records == 0 { b"[\n" } else { b",\n" });
            if let Err(err) = serde_json::to_writer(&mut self.buffer, record) {
                self.buffer.truncate(start);
                return Err(err.into());
            }
        } else {
            encode_line(&mut self.buffer, record)?;
        }
        self.records += 1;
        Ok(())
    }

    fn records(&self) -> u64 {
        self.records
    }

    fn bytes(&self) -> u64 {
        self.buffer.len() as u64
    }

    async fn finish(&mut self) -> Result<Bytes> {
        if self.array {
            if self.records == 0 {
                self.buffer.extend_from_slice(b"[");
            }
            self.buffer.extend_from_slice(b"\n]\n");
        }
        self.records = 0;
        Ok(Bytes::from(std::mem::take(&mut self.buffer)))
    }

    fn discard(&mut self) {
        self.buffer.clear();
        self.records = 0;
    }
}

impl ObjectItemReader {
    /// A JSON Lines reader: one JSON object per line, blank lines skipped.
    pub fn json_lines(config: ObjectReaderConfig) -> Result<Self> {
        ObjectItemReader::new(
            config.storage.as_deref(),
            &config.path,
            config.exclude,
            config.compression,
            Box::new(JsonLinesDecoder),
        )
    }
}

impl ObjectItemWriter {
    /// A JSON Lines writer: one JSON object per line.
    pub fn json_lines(config: ObjectWriterConfig) -> Result<Self> {
        ObjectItemWriter::new((&config).into(), Box::new(JsonEncoder::default()))
    }
}
