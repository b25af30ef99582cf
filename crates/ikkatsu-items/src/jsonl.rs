//! JSON Lines files (one JSON object per line): [`JsonLinesItemReader`] /
//! [`JsonLinesItemWriter`] for [`Record`]s, and the generic [`TypedJsonLinesItemReader`] /
//! [`TypedJsonLinesItemWriter`] they are aliases of, for any serde type.
//!
//! Restart works like the CSV components: readers save the byte offset (in the decompressed
//! text) and line number of the next line, writers save the number of bytes written and
//! flushed; a restarted writer truncates the file to that size and continues. A failed write
//! or update drops what was written since the last commit, so a failed run leaves the
//! committed lines only. Both take `compression` (see [`crate::compress`]).

use std::any::{Any, TypeId};
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::marker::PhantomData;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use ikkatsu_core::item::fill_chunk;
use ikkatsu_core::record::SharedFields;
use ikkatsu_core::{
    Error, ErrorKind, ExecutionContext, ItemReader, ItemStream, ItemWriter, Record, Result,
};

use crate::compress::{Compression, InputFile, OutputFile};
use crate::file::{ContextKeys, cut_back, open_input, open_output, write_error};

/// Properties of a JSON Lines reader (`jsonl-reader` in job YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JsonLinesReaderConfig {
    /// The file to read: one JSON object per line; blank lines are skipped.
    pub path: PathBuf,
    /// How the file is compressed (default `auto`: by the name's extension, `.gz` gzip,
    /// `.zst` Zstandard; or `none`, `gzip`, `zstd`).
    #[serde(default)]
    pub compression: Compression,
}

impl JsonLinesReaderConfig {
    /// A configuration reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonLinesReaderConfig {
            path: path.into(),
            compression: Compression::Auto,
        }
    }
}

/// Properties of a JSON Lines writer (`jsonl-writer` in job YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JsonLinesWriterConfig {
    /// The file to write, in place (not through a temporary file) so a restart can continue it.
    pub path: PathBuf,
    /// Append to an existing file instead of replacing it (default `false`).
    #[serde(default)]
    pub append: bool,
    /// Also `fsync` the file at every chunk commit (default `false`).
    #[serde(default)]
    pub sync: bool,
    /// How to compress the file (default `auto`: by the name's extension, `.gz` gzip,
    /// `.zst` Zstandard; or `none`, `gzip`, `zstd`). Every committed chunk is one gzip
    /// member or Zstandard frame.
    #[serde(default)]
    pub compression: Compression,
}

impl JsonLinesWriterConfig {
    /// A configuration writing `path`, replacing it.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonLinesWriterConfig {
            path: path.into(),
            append: false,
            sync: false,
            compression: Compression::Auto,
        }
    }
}

/// Reads [`Record`]s from a JSON Lines file; a line that is not a JSON object is a
/// [`ErrorKind::Parse`] error naming `file:line`.
pub type JsonLinesItemReader = TypedJsonLinesItemReader<Record>;

/// Writes [`Record`]s as JSON Lines, keys in record order.
pub type JsonLinesItemWriter = TypedJsonLinesItemWriter<Record>;

/// Reads values of `T` from a JSON Lines file, one per non-blank line, reusing one line
/// buffer. Restartable: the position is saved under `jsonl.reader.offset` and
/// `jsonl.reader.line`.
pub struct TypedJsonLinesItemReader<T> {
    config: JsonLinesReaderConfig,
    keys: ContextKeys,
    reader: Option<BufReader<InputFile>>,
    buffer: Vec<u8>,
    /// Byte offset of the next line.
    offset: u64,
    /// Number of lines consumed.
    line: u64,
    /// The fields of the records read so far (when `T` is [`Record`]).
    fields: SharedFields,
    _item: PhantomData<fn() -> T>,
}

impl<T> TypedJsonLinesItemReader<T> {
    /// A reader for `config`; the file is opened in [`ItemStream::open`].
    pub fn new(config: JsonLinesReaderConfig) -> Result<Self> {
        Ok(TypedJsonLinesItemReader {
            config,
            keys: ContextKeys::new("jsonl.reader"),
            reader: None,
            buffer: Vec::with_capacity(1024),
            offset: 0,
            line: 0,
            fields: SharedFields::new(),
            _item: PhantomData,
        })
    }

    /// Sets the prefix of the keys saved in the step's execution context (default
    /// `jsonl.reader`); needed when one step has two JSON Lines readers.
    pub fn with_context_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.keys = ContextKeys::new(prefix);
        self
    }
}

/// The record of one JSON object (a line of JSON Lines, an element of a JSON array) laid on
/// the `fields` of the records before it; `at` says where it is (`file:line`, ...) for the
/// error.
pub(crate) fn decode_record(
    fields: &mut SharedFields,
    text: &[u8],
    at: impl FnOnce() -> String,
) -> Result<Record> {
    fields
        .from_slice(text)
        .map_err(|err| json_error(&at(), &err, text).with_source(err))
}

/// Appends `item` as one line of JSON Lines (its JSON and `\n`) to `buffer`; on error,
/// `buffer` is as it was.
pub(crate) fn encode_line<T: Serialize + ?Sized>(
    buffer: &mut Vec<u8>,
    item: &T,
) -> serde_json::Result<()> {
    let start = buffer.len();
    if let Err(err) = serde_json::to_writer(&mut *buffer, item) {
        buffer.truncate(start);
        return Err(err);
    }
    buffer.push(b'\n');
    Ok(())
}

/// The error for a JSON text that does not decode as an object; `at` is `file:line` (or
/// `object:line`, or a description of an array element).
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

#[async_trait]
impl<T> ItemStream for TypedJsonLinesItemReader<T> {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        let path = &self.config.path;
        let file = open_input(path, "JSON Lines")?;
        let codec = self.config.compression.codec_for(&path.to_string_lossy());
        let mut file = InputFile::new(file, path, codec)?;
        self.offset = 0;
        self.line = 0;
        if let Some(offset) = self.keys.get_u64(context, "offset")? {
            file.resume_at(offset)?;
            self.offset = offset;
            self.line = self.keys.get_u64(context, "line")?.unwrap_or(0);
        }
        self.reader = Some(BufReader::with_capacity(64 * 1024, file));
        Ok(())
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        if self.reader.is_some() {
            context.put(self.keys.key("offset"), self.offset);
            context.put(self.keys.key("line"), self.line);
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.reader = None;
        Ok(())
    }
}

impl<T: DeserializeOwned + 'static> TypedJsonLinesItemReader<T> {
    fn next_item(&mut self) -> Result<Option<T>> {
        loop {
            let Some(reader) = self.reader.as_mut() else {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "JSON Lines reader `{}` read before open",
                        self.config.path.display()
                    ),
                ));
            };
            self.buffer.clear();
            let read = reader.read_until(b'\n', &mut self.buffer).map_err(|err| {
                Error::io(
                    format_args!("cannot read `{}`", self.config.path.display()),
                    err,
                )
            })?;
            if read == 0 {
                return Ok(None);
            }
            self.offset += read as u64;
            self.line += 1;
            let line = self.buffer.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let at = || format!("{}:{}", self.config.path.display(), self.line);
            if TypeId::of::<T>() != TypeId::of::<Record>() {
                return serde_json::from_slice::<T>(line)
                    .map(Some)
                    .map_err(|err| json_error(&at(), &err, line).with_source(err));
            }
            // Records share the fields of the records before them.
            let record = decode_record(&mut self.fields, line, at)?;
            return match (&mut Some(record) as &mut dyn Any)
                .downcast_mut::<Option<T>>()
                .and_then(Option::take)
            {
                Some(item) => Ok(Some(item)),
                None => Err(Error::new(
                    ErrorKind::Unexpected,
                    format!("{}: record type mismatch", at()),
                )),
            };
        }
    }
}

#[async_trait]
impl<T: DeserializeOwned + Send + 'static> ItemReader<T> for TypedJsonLinesItemReader<T> {
    async fn read(&mut self) -> Result<Option<T>> {
        self.next_item()
    }

    async fn read_chunk(&mut self, max: usize, items: &mut Vec<T>) -> Result<bool> {
        fill_chunk(max, items, || self.next_item())
    }

    fn supports_read_ahead(&self) -> bool {
        true
    }
}

/// Writes values of `T` as JSON Lines with serde. Restart-safe: at every chunk commit the
/// output is flushed and its size saved under `jsonl.writer.offset`; a restarted step
/// truncates the file to that size and continues. A failed write or update drops what was
/// written since the last commit (a retry writes the chunk once).
pub struct TypedJsonLinesItemWriter<T> {
    config: JsonLinesWriterConfig,
    keys: ContextKeys,
    writer: Option<BufWriter<OutputFile>>,
    buffer: Vec<u8>,
    /// The file's size at the last chunk commit (or when it was opened).
    committed: u64,
    _item: PhantomData<fn(T)>,
}

impl<T> TypedJsonLinesItemWriter<T> {
    /// A writer for `config`; the file is created (or truncated) in [`ItemStream::open`].
    pub fn new(config: JsonLinesWriterConfig) -> Result<Self> {
        Ok(TypedJsonLinesItemWriter {
            config,
            keys: ContextKeys::new("jsonl.writer"),
            writer: None,
            buffer: Vec::with_capacity(1024),
            committed: 0,
            _item: PhantomData,
        })
    }

    /// Sets the prefix of the keys saved in the step's execution context (default
    /// `jsonl.writer`).
    pub fn with_context_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.keys = ContextKeys::new(prefix);
        self
    }

    /// Flushes (closing a compressed member; with `sync`, fsyncs) and returns the size of
    /// the file written so far.
    fn flush(&mut self) -> Result<Option<u64>> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(None);
        };
        let path = &self.config.path;
        let error = |err| write_error(path, "JSON Lines", err);
        writer.flush().map_err(error)?;
        let Some(mut file) = writer.get_ref().file() else {
            return Err(error(std::io::Error::other("the file was lost")));
        };
        if self.config.sync {
            file.sync_data().map_err(error)?;
        }
        file.stream_position().map(Some).map_err(error)
    }

    /// After a failed write or update: drops what was written since the last commit (the
    /// chunk in progress) and goes on from there; returns `err`.
    fn discard_uncommitted(&mut self, err: Error) -> Error {
        let Some(writer) = self.writer.take() else {
            return err;
        };
        // The buffered bytes are dropped unwritten, and so is an open compressed member.
        let (output, _buffered) = writer.into_parts();
        let path = &self.config.path;
        let codec = output.codec();
        if let Some(file) = cut_back(output.abandon(), self.committed, path, "JSON Lines") {
            let output = OutputFile::new(file, codec);
            self.writer = Some(BufWriter::with_capacity(WRITE_BUFFER, output));
        }
        err
    }
}

/// The JSON Lines writer's buffer.
const WRITE_BUFFER: usize = 64 * 1024;

#[async_trait]
impl<T> ItemStream for TypedJsonLinesItemWriter<T> {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        let saved = self.keys.get_u64(context, "offset")?;
        let path = &self.config.path;
        let opened = open_output(path, self.config.append, saved, "JSON Lines")?;
        self.committed = opened.offset;
        let codec = self.config.compression.codec_for(&path.to_string_lossy());
        let file = OutputFile::new(opened.file, codec);
        self.writer = Some(BufWriter::with_capacity(WRITE_BUFFER, file));
        Ok(())
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        if let Some(offset) = self.flush().map_err(|err| self.discard_uncommitted(err))? {
            context.put(self.keys.key("offset"), offset);
            self.committed = offset;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        let result = self.flush();
        self.writer = None;
        result.map(|_| ())
    }
}

#[async_trait]
impl<T: Serialize + Sync> ItemWriter<T> for TypedJsonLinesItemWriter<T> {
    /// Writes `items` one line each; on an error, none of the lines written since the last
    /// commit stay.
    async fn write(&mut self, items: &[T]) -> Result<()> {
        self.write_lines(items)
            .map_err(|err| self.discard_uncommitted(err))
    }
}

impl<T: Serialize> TypedJsonLinesItemWriter<T> {
    fn write_lines(&mut self, items: &[T]) -> Result<()> {
        let path = &self.config.path;
        let Some(writer) = self.writer.as_mut() else {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("JSON Lines writer `{}` written before open", path.display()),
            ));
        };
        for item in items {
            self.buffer.clear();
            encode_line(&mut self.buffer, item).map_err(|err| {
                Error::new(
                    ErrorKind::Parse,
                    format!(
                        "cannot encode an item for JSON Lines `{}`: {err}",
                        path.display()
                    ),
                )
                .with_source(err)
            })?;
            writer
                .write_all(&self.buffer)
                .map_err(|err| write_error(path, "JSON Lines", err))?;
        }
        Ok(())
    }
}
