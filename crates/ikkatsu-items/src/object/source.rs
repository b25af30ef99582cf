//! [`ByteSource`]: a streamed object read through a buffer, for the push parsers of the
//! text formats.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use ikkatsu_core::{Error, ErrorKind, Result};

use super::format::Object;

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

    /// The next byte, not consumed; `None` at the end of the object.
    pub(crate) async fn peek(&mut self) -> Result<Option<u8>> {
        if self.fill().await? {
            Ok(self.available().first().copied())
        } else {
            Ok(None)
        }
    }
}
