//! Reading compressed input: [`InputFile`] for local files (a `Read + Seek` over the
//! decompressed text), [`decompress_stream`] for objects streamed from a storage.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use ikkatsu_core::{Error, ErrorKind, Result};

use super::Codec;

/// Compressed bytes are fed to a stream decoder this many at a time, which bounds what one
/// step decompresses into memory (gzip expands at most ~1000 times).
const FEED: usize = 4 * 1024;

/// A local input file, compressed or not, read as its decompressed bytes. Seeking works
/// on the decompressed bytes: forward by decompressing and dropping, backward by starting
/// again from the beginning of the file. A plain file seeks as a file does.
pub(crate) struct InputFile {
    inner: Inner,
    path: PathBuf,
    /// Decompressed bytes read (compressed input only).
    position: u64,
}

enum Inner {
    Plain(File),
    Gzip(Box<flate2::read::MultiGzDecoder<BufReader<File>>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<File>>>),
    /// A rewind failed; every read says so.
    Failed,
}

impl InputFile {
    /// `file` (opened from `path`), decompressed with `codec`.
    pub(crate) fn new(file: File, path: &Path, codec: Option<Codec>) -> Result<Self> {
        Ok(InputFile {
            inner: Inner::new(file, codec).map_err(|err| decoder_error(path, err))?,
            path: path.to_path_buf(),
            position: 0,
        })
    }

    /// The file itself, when it is not compressed (its bytes are the text's bytes).
    pub(crate) fn plain(&self) -> Option<&File> {
        match &self.inner {
            Inner::Plain(file) => Some(file),
            _ => None,
        }
    }

    /// Positions the input at `offset` of the decompressed text, saved by an earlier run,
    /// checking that the text (the file) is still that long.
    pub(crate) fn resume_at(&mut self, offset: u64) -> Result<()> {
        if let Inner::Plain(file) = &self.inner {
            crate::file::check_resume_offset(file, &self.path, offset)?;
        }
        match self.seek(SeekFrom::Start(offset)) {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "cannot resume `{}` at byte {offset} of its decompressed text: it has only \
                     {} bytes; it was replaced or truncated since the last run (restore it, or \
                     start a new job instance)",
                    self.path.display(),
                    self.position
                ),
            )),
            Err(err) => Err(Error::io(
                format_args!("cannot read `{}`", self.path.display()),
                err,
            )),
        }
    }

    /// Decompresses and drops `n` bytes; `UnexpectedEof` when the text ends first.
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        let skipped = std::io::copy(&mut self.by_ref().take(n), &mut std::io::sink())?;
        if skipped < n {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Starts decompressing again from the beginning of the file.
    fn rewind_compressed(&mut self) -> std::io::Result<()> {
        let (mut file, codec) = match std::mem::replace(&mut self.inner, Inner::Failed) {
            Inner::Gzip(decoder) => (decoder.into_inner().into_inner(), Codec::Gzip),
            Inner::Zstd(decoder) => (decoder.finish().into_inner(), Codec::Zstd),
            other => {
                self.inner = other;
                return Ok(());
            }
        };
        file.rewind()?;
        self.inner = Inner::new(file, Some(codec))?;
        self.position = 0;
        Ok(())
    }
}

impl Inner {
    fn new(file: File, codec: Option<Codec>) -> std::io::Result<Self> {
        let Some(codec) = codec else {
            return Ok(Inner::Plain(file));
        };
        let buffered = BufReader::with_capacity(64 * 1024, file);
        Ok(match codec {
            Codec::Gzip => Inner::Gzip(Box::new(flate2::read::MultiGzDecoder::new(buffered))),
            Codec::Zstd => Inner::Zstd(Box::new(zstd::stream::read::Decoder::with_buffer(
                buffered,
            )?)),
        })
    }
}

impl Read for InputFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = match &mut self.inner {
            Inner::Plain(file) => return file.read(buf),
            Inner::Gzip(decoder) => decoder.read(buf),
            Inner::Zstd(decoder) => decoder.read(buf),
            Inner::Failed => Err(std::io::Error::other(
                "the input could not be read again from its start",
            )),
        }
        .map_err(|err| {
            std::io::Error::new(
                err.kind(),
                format!(
                    "cannot decompress (is the file compressed as its name or `compression` \
                     says?): {err}"
                ),
            )
        })?;
        self.position += read as u64;
        Ok(read)
    }
}

impl Seek for InputFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        if let Inner::Plain(file) = &mut self.inner {
            return file.seek(pos);
        }
        let target = match pos {
            SeekFrom::Start(target) => target,
            SeekFrom::Current(delta) => {
                self.position.checked_add_signed(delta).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
                })?
            }
            SeekFrom::End(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "a compressed input cannot seek from its end",
                ));
            }
        };
        if target < self.position {
            self.rewind_compressed()?;
        }
        self.skip(target - self.position)?;
        Ok(self.position)
    }
}

fn decoder_error(path: &Path, err: std::io::Error) -> Error {
    Error::io(
        format_args!("cannot start decompressing `{}`", path.display()),
        err,
    )
}

/// The decompressed bytes of `stream` (an object's compressed bytes), as a stream of
/// chunks. A stream that ends inside a gzip member or a Zstandard frame is an error naming
/// `name` (a truncated object).
pub(crate) fn decompress_stream(
    stream: BoxStream<'static, Result<Bytes>>,
    codec: Codec,
    name: String,
) -> BoxStream<'static, Result<Bytes>> {
    let decoder = match StreamDecoder::new(codec) {
        Ok(decoder) => decoder,
        Err(err) => {
            let err = stream_error(&name, codec, err);
            return futures::stream::once(async move { Err(err) }).boxed();
        }
    };
    let state = Some((stream, decoder, Bytes::new()));
    futures::stream::unfold(state, move |state| {
        let name = name.clone();
        async move {
            let (mut stream, mut decoder, mut input) = state?;
            loop {
                if !input.is_empty() {
                    let feed = input.split_to(input.len().min(FEED));
                    match decoder.write(&feed) {
                        Ok(Some(output)) => {
                            return Some((Ok(output), Some((stream, decoder, input))));
                        }
                        Ok(None) => continue,
                        Err(err) => return Some((Err(stream_error(&name, codec, err)), None)),
                    }
                }
                match stream.next().await {
                    Some(Ok(next)) => input = next,
                    Some(Err(err)) => return Some((Err(err), None)),
                    None => {
                        return match decoder.finish() {
                            Ok(Some(output)) => Some((Ok(output), None)),
                            Ok(None) => None,
                            Err(err) => Some((Err(stream_error(&name, codec, err)), None)),
                        };
                    }
                }
            }
        }
    })
    .boxed()
}

fn stream_error(name: &str, codec: Codec, err: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Parse,
        format!(
            "cannot decompress `{name}` as {}: {err}; check that the object is compressed as \
             its name or the `compression` property says, and that it is complete",
            codec.name()
        ),
    )
    .with_source(err)
}

/// A push decoder: compressed bytes in, decompressed bytes out.
enum StreamDecoder {
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl StreamDecoder {
    fn new(codec: Codec) -> std::io::Result<Self> {
        Ok(match codec {
            Codec::Gzip => {
                StreamDecoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new())))
            }
            Codec::Zstd => StreamDecoder::Zstd(zstd::stream::write::Decoder::new(Vec::new())?),
        })
    }

    /// Decompresses all of `input`; what came out, if anything.
    fn write(&mut self, input: &[u8]) -> std::io::Result<Option<Bytes>> {
        use std::io::Write;
        let output = match self {
            StreamDecoder::Gzip(decoder) => {
                decoder.write_all(input)?;
                decoder.get_mut()
            }
            StreamDecoder::Zstd(decoder) => {
                decoder.write_all(input)?;
                decoder.flush()?;
                decoder.get_mut()
            }
        };
        Ok((!output.is_empty()).then(|| Bytes::from(std::mem::take(output))))
    }

    /// Checks that the input ended at the end of a member or frame; what came out last.
    fn finish(self) -> std::io::Result<Option<Bytes>> {
        let output = match self {
            StreamDecoder::Gzip(decoder) => decoder.finish()?,
            StreamDecoder::Zstd(decoder) => decoder.finish()?,
        };
        Ok((!output.is_empty()).then(|| Bytes::from(output)))
    }
}
