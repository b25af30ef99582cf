//! JSON Lines on a storage: one JSON object per line, streamed.

use async_trait::async_trait;
use bytes::Bytes;
use ikkatsu_core::record::SharedFields;
use ikkatsu_core::{Error, ErrorKind, Record, Result};

use super::reader::{Object, Position, RecordCursor, RecordDecoder};
use super::source::ByteSource;
use super::writer::PartEncoder;

/// The error for a JSON text that does not decode as an object; `at` is `object:line` or
/// a description of the element.
pub(crate) fn json_error(at: &str, err: &serde_json::Error, text: &[u8]) -> Error {
    let first = text.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let message = match err.classify() {
        serde_json::error::Category::Data if first != Some(b'{') => {
            let found = match first {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                Some(b'n') => "null",
                _ => "a number",
            };
            format!("{at}: expected a JSON object, found {found}")
        }
        serde_json::error::Category::Data => format!("{at}: cannot decode the object: {err}"),
        _ => format!("{at}: malformed JSON at column {}: {err}", err.column()),
    };
    Error::new(ErrorKind::Parse, message)
}

/// The JSON Lines format of a reader.
pub(crate) struct JsonLinesDecoder;

#[async_trait]
impl RecordDecoder for JsonLinesDecoder {
    fn format(&self) -> &'static str {
        "JSON Lines"
    }

    async fn open(&self, object: Object<'_>, resume: Position) -> Result<Box<dyn RecordCursor>> {
        check_offset(&object, resume)?;
        let stream = object
            .storage
            .reader_from(&object.file.path, resume.offset)
            .await?;
        Ok(Box::new(JsonLinesCursor {
            source: ByteSource::new(stream),
            name: object.name,
            line: Vec::with_capacity(1024),
            position: resume,
            fields: SharedFields::new(),
        }))
    }
}

/// Refuses to resume past the end of an object that has shrunk since.
pub(crate) fn check_offset(object: &Object<'_>, resume: Position) -> Result<()> {
    if resume.offset > object.file.size {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!(
                "cannot resume `{}` at byte {}: the object has only {} bytes; it was replaced \
                 or truncated since the last run (restore it, or start a new job instance)",
                object.name, resume.offset, object.file.size
            ),
        ));
    }
    Ok(())
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
            return match self.fields.from_slice(text) {
                Ok(record) => Ok(Some(record)),
                Err(err) => {
                    let at = format!("{}:{}", self.name, self.position.line);
                    Err(json_error(&at, &err, text).with_source(err))
                }
            };
        }
    }

    fn position(&self) -> Position {
        self.position
    }
}

/// The JSON Lines format of a writer.
#[derive(Default)]
pub(crate) struct JsonLinesEncoder {
    buffer: Vec<u8>,
    records: u64,
}

#[async_trait]
impl PartEncoder for JsonLinesEncoder {
    fn format(&self) -> &'static str {
        "JSON Lines"
    }

    fn extension(&self) -> &str {
        "jsonl"
    }

    fn append(&mut self, record: &Record) -> Result<()> {
        serde_json::to_writer(&mut self.buffer, record)?;
        self.buffer.push(b'\n');
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
        self.records = 0;
        Ok(Bytes::from(std::mem::take(&mut self.buffer)))
    }

    fn discard(&mut self) {
        self.buffer.clear();
        self.records = 0;
    }
}
