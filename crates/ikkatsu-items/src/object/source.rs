//! [`ByteSource`]: a streamed object read through a buffer, for the push parsers of the
//! text formats.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use ikkatsu_core::{Error, ErrorKind, Result};

use super::format::Object;
use crate::compress::decompress_stream;
use crate::text::TextEncoding;
use crate::text::decode::StreamDecoder;

/// The bytes of one object, a chunk at a time, with what has been consumed.
pub(crate) struct ByteSource {
    stream: BoxStream<'static, Result<Bytes>>,
    chunk: Bytes,
    pos: usize,
    done: bool,
}

impl ByteSource {
    /// Opens `object` from byte `offset` on, refusing to resume past the end of an object
    /// that has shrunk since the offset was saved.
    pub(crate) async fn open(object: &Object<'_>, offset: u64) -> Result<Self> {
        if let Some(codec) = object.codec {
            // Compressed: decompressed from the start, up to the offset.
            let stream = object.storage.reader_from(&object.file.path, 0).await?;
            let mut source = ByteSource::new(decompress_stream(stream, codec, object.name.clone()));
            let mut left = offset;
            while left > 0 {
                if !source.fill().await? {
                    return Err(Error::new(
                        ErrorKind::InvalidState,
                        format!(
                            "cannot resume `{}` at byte {offset} of its decompressed text: it \
                             has only {} bytes; it was replaced or truncated since the last \
                             run (restore it, or start a new job instance)",
                            object.name,
                            offset - left
                        ),
                    ));
                }
                let n = source
                    .available()
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                source.consume(n);
                left -= n as u64;
            }
            return Ok(source);
        }
        if offset > object.file.size {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "cannot resume `{}` at byte {offset}: the object has only {} bytes; it was \
                     replaced or truncated since the last run (restore it, or start a new job \
                     instance)",
                    object.name, object.file.size
                ),
            ));
        }
        let stream = object
            .storage
            .reader_from(&object.file.path, offset)
            .await?;
        Ok(ByteSource::new(stream))
    }

    pub(crate) fn new(stream: BoxStream<'static, Result<Bytes>>) -> Self {
        ByteSource {
            stream,
            chunk: Bytes::new(),
            pos: 0,
            done: false,
        }
    }

    /// Makes sure some unconsumed bytes are buffered; `false` at the end of the object.
    pub(crate) async fn fill(&mut self) -> Result<bool> {
        while self.pos >= self.chunk.len() {
            if self.done {
                return Ok(false);
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Some(Err(err)) => return Err(err),
                None => {
                    self.done = true;
                    self.chunk = Bytes::new();
                    self.pos = 0;
                }
            }
        }
        Ok(true)
    }

    /// The buffered, unconsumed bytes (empty at the end of the object or before `fill`).
    pub(crate) fn available(&self) -> &[u8] {
        &self.chunk[self.pos..]
    }

    /// Marks `n` buffered bytes as consumed.
    pub(crate) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.chunk.len());
    }

    /// The first `n` unconsumed bytes (fewer at the end of the object), joining chunks
    /// when the current one is shorter.
    pub(crate) async fn head(&mut self, n: usize) -> Result<&[u8]> {
        while self.available().len() < n && !self.done {
            match self.stream.next().await {
                Some(Ok(next)) => {
                    let mut joined = Vec::with_capacity(self.available().len() + next.len());
                    joined.extend_from_slice(self.available());
                    joined.extend_from_slice(&next);
                    self.chunk = Bytes::from(joined);
                    self.pos = 0;
                }
                Some(Err(err)) => return Err(err),
                None => self.done = true,
            }
        }
        let available = self.available();
        Ok(&available[..n.min(available.len())])
    }

    /// The next byte, not consumed; `None` at the end of the object.
    pub(crate) async fn peek(&mut self) -> Result<Option<u8>> {
        if self.fill().await? {
            Ok(self.available().first().copied())
        } else {
            Ok(None)
        }
    }
}

/// The text of one object a parser reads: its bytes (UTF-8 and the encodings parsed in
/// their raw bytes), or its bytes decoded to UTF-8 as they stream in (see
/// [`TextEncoding::parses_raw`]).
pub(crate) enum TextSource {
    Raw(ByteSource),
    Decoded {
        source: ByteSource,
        decoder: Box<StreamDecoder>,
        /// Decoded text not consumed yet (from `pos`).
        text: Vec<u8>,
        pos: usize,
        /// The object as named in messages.
        name: String,
    },
}

impl TextSource {
    /// The text of `source` (whose byte order mark is consumed) in `encoding`.
    pub(crate) fn new(source: ByteSource, encoding: TextEncoding, raw: bool, name: &str) -> Self {
        if raw {
            return TextSource::Raw(source);
        }
        TextSource::Decoded {
            source,
            decoder: Box::new(StreamDecoder::new(encoding)),
            text: Vec::new(),
            pos: 0,
            name: name.to_string(),
        }
    }

    /// Whether the text is decoded before it is parsed.
    pub(crate) fn is_decoded(&self) -> bool {
        matches!(self, TextSource::Decoded { .. })
    }

    /// Makes sure some unconsumed text is buffered; `false` at the end of the object. An
    /// undecodable byte is a Parse error naming the object, line and column.
    pub(crate) async fn fill(&mut self) -> Result<bool> {
        let (source, decoder, text, pos, name) = match self {
            TextSource::Raw(source) => return source.fill().await,
            TextSource::Decoded {
                source,
                decoder,
                text,
                pos,
                name,
            } => (source, decoder, text, pos, name),
        };
        if *pos < text.len() {
            return Ok(true);
        }
        text.clear();
        *pos = 0;
        while text.is_empty() {
            let more = source.fill().await?;
            let input = source.available();
            let read = decoder
                .decode(input, text, !more)
                .map_err(|err| err.error(name, None))?;
            source.consume(read);
            if !more {
                break;
            }
        }
        Ok(!text.is_empty())
    }

    /// The buffered, unconsumed text.
    pub(crate) fn available(&self) -> &[u8] {
        match self {
            TextSource::Raw(source) => source.available(),
            TextSource::Decoded { text, pos, .. } => &text[*pos..],
        }
    }

    /// Marks `n` buffered bytes of text as consumed.
    pub(crate) fn consume(&mut self, n: usize) {
        match self {
            TextSource::Raw(source) => source.consume(n),
            TextSource::Decoded { text, pos, .. } => *pos = (*pos + n).min(text.len()),
        }
    }
}
