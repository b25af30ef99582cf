//! JSON arrays of objects on a storage (`[{...}, {...}]`), streamed element by element: a
//! small scanner finds where each element ends, serde_json decodes it.

use async_trait::async_trait;
use ikkatsu_core::record::SharedFields;
use ikkatsu_core::{Error, ErrorKind, Record, Result};

use super::format::{Object, Position, RecordCursor, RecordDecoder};
use super::jsonl::JsonEncoder;
use super::source::ByteSource;
use super::{ObjectItemReader, ObjectItemWriter, ObjectReaderConfig, ObjectWriterConfig};
use crate::jsonl::decode_record;

/// The JSON array format of a reader.
pub(crate) struct JsonArrayDecoder;

#[async_trait]
impl RecordDecoder for JsonArrayDecoder {
    fn format(&self) -> &'static str {
        "JSON"
    }

    async fn open(&self, object: Object<'_>, resume: Position) -> Result<Box<dyn RecordCursor>> {
        let source = ByteSource::open(&object, resume.offset).await?;
        // Positions are saved right after an element: a resumed scan expects `,` or `]`.
        let state = if resume.offset == 0 {
            State::Start
        } else {
            State::AfterElement
        };
        Ok(Box::new(JsonArrayCursor {
            source,
            name: object.name,
            state,
            element: Vec::with_capacity(1024),
            position: Position {
                line: resume.line.max(1),
                ..resume
            },
            failed: None,
            fields: SharedFields::new(),
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the `[`.
    Start,
    /// After the `[`: an element or `]`.
    First,
    /// After a `,`: an element.
    Element,
    /// After an element: `,` or `]`.
    AfterElement,
    /// After the `]`: only whitespace.
    End,
}

struct JsonArrayCursor {
    source: ByteSource,
    name: String,
    state: State,
    element: Vec<u8>,
    /// `line` is the current line (1-based) here, not lines consumed.
    position: Position,
    /// The structural error that stopped the scan: repeated on every later call.
    failed: Option<String>,
    /// The fields shared by the records of this object.
    fields: SharedFields,
}

impl JsonArrayCursor {
    fn structure_error(&mut self, message: String) -> Error {
        let message = format!("{}:{}: {message}", self.name, self.position.line);
        self.failed = Some(message.clone());
        Error::new(ErrorKind::Parse, message)
    }

    fn consume(&mut self, byte: u8) {
        self.source.consume(1);
        self.position.offset += 1;
        if byte == b'\n' {
            self.position.line += 1;
        }
    }

    /// Scans one element into `self.element`; its first byte is `first`, not consumed yet.
    async fn scan_element(&mut self, first: u8) -> Result<()> {
        self.element.clear();
        // Numbers, `true`, `false` and `null` end before a delimiter; strings, objects and
        // arrays at their closing character.
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        let mut depth = 0u32;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            if !self.source.fill().await? {
                if scalar {
                    return Ok(());
                }
                return Err(self.structure_error(format!(
                    "unexpected end of the object inside element {} of the array",
                    self.position.record + 1
                )));
            }
            let available = self.source.available();
            let mut taken = 0;
            let mut newlines = 0;
            let mut done = false;
            for &byte in available {
                if scalar {
                    if matches!(byte, b',' | b']') || byte.is_ascii_whitespace() {
                        done = true;
                        break;
                    }
                    taken += 1;
                    continue;
                }
                taken += 1;
                if byte == b'\n' {
                    newlines += 1;
                }
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if byte == b'\\' {
                        escaped = true;
                    } else if byte == b'"' {
                        in_string = false;
                        if depth == 0 {
                            done = true;
                            break;
                        }
                    }
                    continue;
                }
                match byte {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            done = true;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            self.element.extend_from_slice(&available[..taken]);
            self.source.consume(taken);
            self.position.offset += taken as u64;
            self.position.line += newlines;
            if done {
                return Ok(());
            }
        }
    }
}

#[async_trait]
impl RecordCursor for JsonArrayCursor {
    async fn next(&mut self) -> Result<Option<Record>> {
        if let Some(message) = &self.failed {
            return Err(Error::new(ErrorKind::Parse, message.clone()));
        }
        loop {
            let Some(byte) = self.source.peek().await? else {
                return match self.state {
                    State::End => Ok(None),
                    State::Start if self.position.offset == 0 => Err(self.structure_error(
                        "the object is empty; expected a JSON array of objects".to_string(),
                    )),
                    _ => Err(self.structure_error(
                        "unexpected end of the object: the JSON array is not closed with `]`"
                            .to_string(),
                    )),
                };
            };
            if byte.is_ascii_whitespace() {
                self.consume(byte);
                continue;
            }
            match self.state {
                State::Start if byte == 0xEF && self.position.offset == 0 => {
                    // A UTF-8 byte order mark.
                    for expected in [0xEF, 0xBB, 0xBF] {
                        if self.source.peek().await? == Some(expected) {
                            self.source.consume(1);
                            self.position.offset += 1;
                        }
                    }
                }
                State::Start if byte == b'[' => {
                    self.consume(byte);
                    self.state = State::First;
                }
                State::Start => {
                    return Err(self.structure_error(format!(
                        "expected a JSON array of objects (`[`), found `{}`",
                        char::from(byte)
                    )));
                }
                State::First if byte == b']' => {
                    self.consume(byte);
                    self.state = State::End;
                }
                State::First | State::Element => {
                    if byte == b']' || byte == b',' {
                        return Err(self.structure_error(format!(
                            "expected element {} of the array, found `{}`",
                            self.position.record + 1,
                            char::from(byte)
                        )));
                    }
                    let line = self.position.line;
                    self.scan_element(byte).await?;
                    self.state = State::AfterElement;
                    self.position.record += 1;
                    let at = || {
                        format!(
                            "{}:{line}: element {} of the array",
                            self.name, self.position.record
                        )
                    };
                    return decode_record(&mut self.fields, &self.element, at).map(Some);
                }
                State::AfterElement if byte == b',' => {
                    self.consume(byte);
                    self.state = State::Element;
                }
                State::AfterElement if byte == b']' => {
                    self.consume(byte);
                    self.state = State::End;
                }
                State::AfterElement => {
                    return Err(self.structure_error(format!(
                        "expected `,` or `]` after element {} of the array, found `{}`",
                        self.position.record,
                        char::from(byte)
                    )));
                }
                State::End => {
                    return Err(self.structure_error(format!(
                        "unexpected `{}` after the end of the JSON array",
                        char::from(byte)
                    )));
                }
            }
        }
    }

    fn position(&self) -> Position {
        self.position
    }
}

impl ObjectItemReader {
    /// A JSON reader: each object holds one JSON array of objects, streamed element by
    /// element.
    pub fn json(config: ObjectReaderConfig) -> Result<Self> {
        ObjectItemReader::new(
            config.storage.as_deref(),
            &config.path,
            config.exclude,
            config.compression,
            Box::new(JsonArrayDecoder),
        )
    }
}

impl ObjectItemWriter {
    /// A JSON writer: every part is one JSON array of objects.
    pub fn json(config: ObjectWriterConfig) -> Result<Self> {
        ObjectItemWriter::new((&config).into(), Box::new(JsonEncoder::array()))
    }
}
