//! Writing compressed output: [`OutputFile`] for local files (a member or frame per
//! commit), [`compress_part`] for part objects.

use std::fs::File;
use std::io::Write;

use bytes::Bytes;
use ikkatsu_core::{Error, ErrorKind, Result};

use super::Codec;

/// The zstd level the writers use (the `zstd` tool's default).
const ZSTD_LEVEL: i32 = 3;

/// A local output file, compressed or not. Written bytes go to the current gzip member or
/// Zstandard frame, started on the first write after a commit; [`Write::flush`] (what the
/// writers call at every chunk commit) closes it, so that the file then ends at a member
/// boundary and a restart may truncate it there. A plain file is written as it is.
pub(crate) struct OutputFile {
    state: State,
    codec: Option<Codec>,
}

enum State {
    /// The file, between members (or plain).
    Idle(File),
    Gzip(flate2::write::GzEncoder<File>),
    Zstd(zstd::stream::write::Encoder<'static, File>),
    /// Closing a member failed and lost the file; every write says so.
    Failed,
}

impl OutputFile {
    /// `file`, positioned where writing continues, written through `codec`.
    pub(crate) fn new(file: File, codec: Option<Codec>) -> Self {
        OutputFile {
            state: State::Idle(file),
            codec,
        }
    }

    /// The file (for its position and `fsync`); `None` after a failure.
    pub(crate) fn file(&self) -> Option<&File> {
        match &self.state {
            State::Idle(file) => Some(file),
            State::Gzip(encoder) => Some(encoder.get_ref()),
            State::Zstd(encoder) => Some(encoder.get_ref()),
            State::Failed => None,
        }
    }

    /// How the file is compressed, if it is.
    pub(crate) fn codec(&self) -> Option<Codec> {
        self.codec
    }

    /// The file, with an open member (what was written since the last flush) abandoned:
    /// the caller cuts the file back to its last flushed size.
    pub(crate) fn abandon(self) -> std::io::Result<File> {
        match self.state {
            State::Idle(file) => Ok(file),
            // Dropping an encoder may still write to the file (gzip finishes its member):
            // a handle of its own survives it, and the cut removes what was written.
            State::Gzip(encoder) => encoder.get_ref().try_clone(),
            State::Zstd(encoder) => encoder.get_ref().try_clone(),
            State::Failed => Err(failed()),
        }
    }

    /// The file, a member opened when compressed.
    fn writer(&mut self) -> std::io::Result<&mut dyn Write> {
        if let State::Idle(_) = self.state
            && let Some(codec) = self.codec
            && let State::Idle(file) = std::mem::replace(&mut self.state, State::Failed)
        {
            self.state = match codec {
                Codec::Gzip => State::Gzip(flate2::write::GzEncoder::new(
                    file,
                    flate2::Compression::default(),
                )),
                Codec::Zstd => State::Zstd(zstd::stream::write::Encoder::new(file, ZSTD_LEVEL)?),
            };
        }
        Ok(match &mut self.state {
            State::Idle(file) => file,
            State::Gzip(encoder) => encoder,
            State::Zstd(encoder) => encoder,
            State::Failed => return Err(failed()),
        })
    }

    /// Closes the open member, if any.
    fn close_member(&mut self) -> std::io::Result<()> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Gzip(mut encoder) => {
                if let Err(err) = encoder.try_finish() {
                    self.state = State::Gzip(encoder);
                    return Err(err);
                }
                self.state = State::Idle(encoder.finish()?);
            }
            State::Zstd(encoder) => match encoder.try_finish() {
                Ok(file) => self.state = State::Idle(file),
                Err((encoder, err)) => {
                    self.state = State::Zstd(encoder);
                    return Err(err);
                }
            },
            other => self.state = other,
        }
        Ok(())
    }
}

fn failed() -> std::io::Error {
    std::io::Error::other("an earlier write to this file failed")
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.writer()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.writer()?.write_all(buf)
    }

    /// Closes the open member (compressed) and flushes the file.
    fn flush(&mut self) -> std::io::Result<()> {
        self.close_member()?;
        match &mut self.state {
            State::Idle(file) => file.flush(),
            _ => Err(failed()),
        }
    }
}

/// `bytes` (one whole part object) compressed with `codec`, off the async runtime; `name`
/// is the part in messages.
pub(crate) async fn compress_part(codec: Codec, bytes: Bytes, name: String) -> Result<Bytes> {
    let compress = move || -> std::io::Result<Vec<u8>> {
        let capacity = bytes.len() / 4 + 64;
        match codec {
            Codec::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(capacity),
                    flate2::Compression::default(),
                );
                encoder.write_all(&bytes)?;
                encoder.finish()
            }
            Codec::Zstd => zstd::stream::encode_all(&bytes[..], ZSTD_LEVEL),
        }
    };
    let compressed = tokio::task::spawn_blocking(compress)
        .await
        .map_err(|err| {
            Error::new(
                ErrorKind::Unexpected,
                format!("compressing {name} stopped: {err}"),
            )
        })?
        .map_err(|err| Error::io(format_args!("cannot compress {name}"), err))?;
    Ok(Bytes::from(compressed))
}
