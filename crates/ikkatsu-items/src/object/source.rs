//! [`ByteSource`]: a streamed object read through a buffer, for the push parsers of the
//! text formats.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use ikkatsu_core::Result;

/// The bytes of one object, a chunk at a time, with what has been consumed.
pub(crate) struct ByteSource {
    stream: BoxStream<'static, Result<Bytes>>,
    chunk: Bytes,
    pos: usize,
    done: bool,
}

impl ByteSource {
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
