//! The backlog: the files a scan found to need processing, as gzip-compressed JSON Lines,
//! written once and then read (and resumed) by the process phase. Memory stays flat on
//! both sides: entries stream through.
//!
//! The format (documented in `docs/backlog.md`): line 1 is a [`BacklogHeader`]
//! (`{"format":"ikkatsu-backlog","version":1,"created":…,"source":…}`), then one
//! [`FileInfo`] per line, then the trailer `{"end":true,"count":N}`. A backlog without its
//! trailer is incomplete and is refused.
//!
//! ```
//! # fn main() -> ikkatsu_core::Result<()> {
//! use ikkatsu_overwrite::backlog::{BacklogReader, BacklogWriter};
//! use ikkatsu_storage::FileInfo;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("backlog.jsonl.gz");
//! let mut writer = BacklogWriter::create(&path, Some("file:///data"))?;
//! writer.write(&FileInfo::new("a.txt", 1))?;
//! writer.write(&FileInfo::new("b/c.txt", 2))?;
//! assert_eq!(writer.finish()?, 2);
//!
//! assert_eq!(BacklogReader::count(&path)?, 2);
//! let mut reader = BacklogReader::open(&path)?;
//! reader.skip(1)?;
//! let rest: Vec<FileInfo> = reader.into_iter().collect::<Result<_, _>>()?;
//! assert_eq!(rest, vec![FileInfo::new("b/c.txt", 2)]);
//! # Ok(())
//! # }
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures::Stream;
use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::FileInfo;
use serde::{Deserialize, Serialize};

/// The `format` value of a backlog header.
pub const BACKLOG_FORMAT: &str = "ikkatsu-backlog";

/// The format version this crate writes and reads.
pub const BACKLOG_VERSION: u32 = 1;

/// The first line of a backlog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacklogHeader {
    /// Always [`BACKLOG_FORMAT`].
    pub format: String,
    /// The format version ([`BACKLOG_VERSION`]).
    pub version: u32,
    /// When the backlog was started.
    pub created: DateTime<Utc>,
    /// Where the files are (a storage URL, secrets masked), if the writer said.
    #[serde(default)]
    pub source: Option<String>,
}

/// The last line of a complete backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Trailer {
    end: bool,
    count: u64,
}

/// The start of a trailer line; [`FileInfo`] lines start with `{"path":`.
const TRAILER_START: &[u8] = b"{\"end\"";

fn parse_error(path: &Path, line: u64, what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Parse,
        format!("backlog {}: line {line}: {what}", path.display()),
    )
}

fn io_error(path: &Path, what: &str, err: std::io::Error) -> Error {
    Error::io(format!("backlog {}: {what}", path.display()), err)
}

/// The temporary name a backlog is written under: `<path>.tmp`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes a backlog to `<path>.tmp`, renamed to `<path>` by [`BacklogWriter::finish`].
/// Dropping an unfinished writer removes the temporary file.
///
/// Writing is blocking I/O plus compression: from async code, run it on a blocking thread
/// or use [`write_backlog`].
pub struct BacklogWriter {
    path: PathBuf,
    temp: PathBuf,
    /// Lines are gathered before compression: the encoder (and its checksum) work on large
    /// buffers, not on one short line at a time.
    encoder: Option<BufWriter<GzEncoder<BufWriter<File>>>>,
    count: u64,
    line: Vec<u8>,
}

impl std::fmt::Debug for BacklogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BacklogWriter")
            .field("path", &self.path)
            .field("count", &self.count)
            .finish()
    }
}

impl BacklogWriter {
    /// Starts a backlog at `path` (written to `<path>.tmp` until finished, replacing any
    /// leftover temporary file); `source` goes into the header.
    pub fn create(path: impl AsRef<Path>, source: Option<&str>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let temp = temp_path(&path);
        let file = File::create(&temp)
            .map_err(|err| io_error(&temp, "creating the temporary file", err))?;
        let mut writer = BacklogWriter {
            path,
            temp,
            encoder: Some(BufWriter::with_capacity(
                64 * 1024,
                GzEncoder::new(
                    BufWriter::with_capacity(256 * 1024, file),
                    Compression::fast(),
                ),
            )),
            count: 0,
            line: Vec::with_capacity(256),
        };
        let header = BacklogHeader {
            format: BACKLOG_FORMAT.to_string(),
            version: BACKLOG_VERSION,
            created: Utc::now(),
            source: source.map(str::to_string),
        };
        writer.write_line(&header)?;
        Ok(writer)
    }

    fn write_line<T: Serialize>(&mut self, value: &T) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, value).map_err(|err| {
            Error::new(
                ErrorKind::Unexpected,
                format!("encoding a backlog line: {err}"),
            )
            .with_source(err)
        })?;
        self.line.push(b'\n');
        let Some(encoder) = self.encoder.as_mut() else {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("backlog {}: already finished", self.path.display()),
            ));
        };
        encoder
            .write_all(&self.line)
            .map_err(|err| io_error(&self.temp, "writing", err))
    }

    /// Appends one file.
    pub fn write(&mut self, file: &FileInfo) -> Result<()> {
        self.write_line(file)?;
        self.count += 1;
        Ok(())
    }

    /// The number of files written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the trailer, syncs the file and renames it to its final name; returns the
    /// number of files.
    pub fn finish(mut self) -> Result<u64> {
        let trailer = Trailer {
            end: true,
            count: self.count,
        };
        self.write_line(&trailer)?;
        let Some(encoder) = self.encoder.take() else {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("backlog {}: already finished", self.path.display()),
            ));
        };
        let encoder = encoder
            .into_inner()
            .map_err(|err| io_error(&self.temp, "writing", err.into_error()))?;
        let buffered = encoder
            .finish()
            .map_err(|err| io_error(&self.temp, "finishing the gzip stream", err))?;
        let file = buffered
            .into_inner()
            .map_err(|err| io_error(&self.temp, "writing", err.into_error()))?;
        file.sync_all()
            .map_err(|err| io_error(&self.temp, "syncing", err))?;
        drop(file);
        std::fs::rename(&self.temp, &self.path)
            .map_err(|err| io_error(&self.path, "renaming the temporary file into place", err))?;
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(dir) = File::open(parent)
        {
            // Makes the rename durable; not all platforms allow syncing a directory.
            let _ = dir.sync_all();
        }
        Ok(self.count)
    }
}

impl Drop for BacklogWriter {
    fn drop(&mut self) {
        if let Some(encoder) = self.encoder.take() {
            drop(encoder);
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes every file of `files` to a backlog at `path` on a blocking thread (through a
/// bounded channel, so memory stays flat); returns the count once the backlog is renamed
/// into place. An error of the stream aborts the backlog (no file is left behind).
pub async fn write_backlog<S>(path: impl AsRef<Path>, source: Option<&str>, files: S) -> Result<u64>
where
    S: Stream<Item = Result<FileInfo>>,
{
    use futures::StreamExt;

    let batches = files
        .ready_chunks(256)
        .map(|batch| batch.into_iter().collect());
    write_backlog_batches(path, source, batches).await
}

/// [`write_backlog`] for a stream of batches of files (as the walker and the status store
/// hand them over): one hand-off to the writing thread per batch.
pub async fn write_backlog_batches<S>(
    path: impl AsRef<Path>,
    source: Option<&str>,
    batches: S,
) -> Result<u64>
where
    S: Stream<Item = Result<Vec<FileInfo>>>,
{
    use futures::StreamExt;

    let path = path.as_ref().to_path_buf();
    let source = source.map(str::to_string);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<FileInfo>>(4);
    let writer = tokio::task::spawn_blocking(move || -> Result<u64> {
        let mut writer = BacklogWriter::create(&path, source.as_deref())?;
        let mut complete = false;
        while let Some(batch) = receiver.blocking_recv() {
            if batch.is_empty() {
                complete = true;
                break;
            }
            for file in &batch {
                writer.write(file)?;
            }
        }
        if !complete {
            return Err(Error::new(
                ErrorKind::Cancelled,
                format!("backlog {}: the input ended early", path.display()),
            ));
        }
        writer.finish()
    });
    let mut batches = std::pin::pin!(batches);
    let mut failure = None;
    while let Some(item) = batches.next().await {
        match item {
            Ok(batch) => {
                if !batch.is_empty() && sender.send(batch).await.is_err() {
                    break;
                }
            }
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    if failure.is_none() {
        // An empty batch marks the end of the input.
        let _ = sender.send(Vec::new()).await;
    }
    drop(sender);
    let written = writer.await.map_err(|err| {
        Error::new(
            ErrorKind::Unexpected,
            format!("the backlog writer thread: {err}"),
        )
    })?;
    match failure {
        Some(err) => Err(err),
        None => written,
    }
}

/// Reads a backlog back, one [`FileInfo`] at a time ([`BacklogReader::next_entry`], or
/// as an iterator through [`IntoIterator`]); checks the header,
/// every line, the trailer's count and the gzip checksum.
///
/// Reading is blocking I/O plus decompression: from async code use
/// [`BacklogReader::into_stream`].
pub struct BacklogReader {
    path: PathBuf,
    input: BufReader<GzDecoder<BufReader<File>>>,
    header: BacklogHeader,
    /// Lines read so far (the header included).
    line_no: u64,
    /// Entries read or skipped so far.
    position: u64,
    finished: bool,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for BacklogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BacklogReader")
            .field("path", &self.path)
            .field("position", &self.position)
            .finish()
    }
}

/// What one line of the body is.
enum Line {
    Entry,
    Trailer,
}

impl BacklogReader {
    /// Opens the backlog at `path` and checks its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|err| io_error(&path, "opening", err))?;
        let input = BufReader::with_capacity(
            256 * 1024,
            GzDecoder::new(BufReader::with_capacity(256 * 1024, file)),
        );
        let mut reader = BacklogReader {
            path,
            input,
            header: BacklogHeader {
                format: String::new(),
                version: 0,
                created: DateTime::<Utc>::UNIX_EPOCH,
                source: None,
            },
            line_no: 0,
            position: 0,
            finished: false,
            buffer: Vec::with_capacity(256),
        };
        if !reader.read_line()? {
            return Err(parse_error(
                &reader.path,
                1,
                "the file is empty: not a backlog (no header)",
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&reader.buffer).map_err(|err| {
            parse_error(&reader.path, 1, format!("the header is not JSON: {err}"))
        })?;
        if value.get("format").and_then(|f| f.as_str()) != Some(BACKLOG_FORMAT) {
            return Err(parse_error(
                &reader.path,
                1,
                format!("not an ikkatsu backlog (the header's format is not `{BACKLOG_FORMAT}`)"),
            ));
        }
        let version = value.get("version").and_then(|v| v.as_u64());
        if version != Some(u64::from(BACKLOG_VERSION)) {
            return Err(parse_error(
                &reader.path,
                1,
                format!(
                    "backlog format version {} is not supported (this build reads version {BACKLOG_VERSION}): write the backlog again with this version",
                    version.map_or_else(|| "(missing)".to_string(), |v| v.to_string())
                ),
            ));
        }
        reader.header = serde_json::from_value(value)
            .map_err(|err| parse_error(&reader.path, 1, format!("invalid header: {err}")))?;
        Ok(reader)
    }

    /// The header.
    pub fn header(&self) -> &BacklogHeader {
        &self.header
    }

    /// The path read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries read or skipped so far: the position to resume from with
    /// [`BacklogReader::skip`].
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Reads the next line (without its newline) into the buffer; false at the end of the
    /// data.
    fn read_line(&mut self) -> Result<bool> {
        self.buffer.clear();
        let line = self.line_no + 1;
        let read = self
            .input
            .read_until(b'\n', &mut self.buffer)
            .map_err(|err| {
                let what = match err.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        "the file is truncated (the gzip stream ends early)".to_string()
                    }
                    _ => format!("the file is corrupt (gzip): {err}"),
                };
                Error::new(
                    ErrorKind::Parse,
                    format!("backlog {}: line {line}: {what}", self.path.display()),
                )
                .with_source(err)
            })?;
        if read == 0 {
            return Ok(false);
        }
        self.line_no = line;
        if self.buffer.last() != Some(&b'\n') {
            return Err(parse_error(
                &self.path,
                line,
                "the line is cut off: the file is truncated",
            ));
        }
        self.buffer.pop();
        Ok(true)
    }

    /// Reads the next body line; checks the trailer and the end of the data when it comes.
    fn next_line(&mut self) -> Result<Option<Line>> {
        if self.finished {
            return Ok(None);
        }
        if !self.read_line()? {
            return Err(parse_error(
                &self.path,
                self.line_no + 1,
                format!(
                    "the backlog ends after {} entries without its trailer line: it is incomplete (an interrupted scan?); scan again",
                    self.position
                ),
            ));
        }
        if !self.buffer.starts_with(TRAILER_START) {
            return Ok(Some(Line::Entry));
        }
        let trailer: Trailer = serde_json::from_slice(&self.buffer).map_err(|err| {
            parse_error(&self.path, self.line_no, format!("invalid trailer: {err}"))
        })?;
        if !trailer.end || trailer.count != self.position {
            return Err(parse_error(
                &self.path,
                self.line_no,
                format!(
                    "the trailer counts {} entries but the backlog has {}",
                    trailer.count, self.position
                ),
            ));
        }
        let mut rest = [0u8; 1];
        let more = self.input.read(&mut rest).map_err(|err| {
            let what = match err.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    "the file is truncated (the gzip stream ends early)".to_string()
                }
                _ => format!("the file is corrupt (gzip): {err}"),
            };
            Error::new(
                ErrorKind::Parse,
                format!(
                    "backlog {}: after line {}: {what}",
                    self.path.display(),
                    self.line_no
                ),
            )
            .with_source(err)
        })?;
        if more != 0 {
            return Err(parse_error(
                &self.path,
                self.line_no + 1,
                "data after the trailer line",
            ));
        }
        self.finished = true;
        Ok(Some(Line::Trailer))
    }

    /// The next file, `None` after the last one (and a valid trailer).
    pub fn next_entry(&mut self) -> Result<Option<FileInfo>> {
        match self.next_line()? {
            Some(Line::Entry) => {
                let file: FileInfo = serde_json::from_slice(&self.buffer).map_err(|err| {
                    parse_error(&self.path, self.line_no, format!("invalid entry: {err}"))
                })?;
                self.position += 1;
                Ok(Some(file))
            }
            Some(Line::Trailer) | None => Ok(None),
        }
    }

    /// Skips up to `n` entries without decoding them (to resume at a position); returns
    /// how many were skipped (fewer when the backlog ends first).
    pub fn skip(&mut self, n: u64) -> Result<u64> {
        let mut skipped = 0;
        while skipped < n {
            match self.next_line()? {
                Some(Line::Entry) => {
                    self.position += 1;
                    skipped += 1;
                }
                Some(Line::Trailer) | None => break,
            }
        }
        Ok(skipped)
    }

    /// The number of files in the backlog at `path`, read through (and checked) to the
    /// trailer.
    pub fn count(path: impl AsRef<Path>) -> Result<u64> {
        let mut reader = BacklogReader::open(path)?;
        reader.skip(u64::MAX)
    }

    /// The remaining files as an async stream, read on a blocking thread and handed over
    /// through a bounded channel of `buffer` batches. The stream ends after the first error.
    pub fn into_stream(mut self) -> impl Stream<Item = Result<FileInfo>> + Send + 'static {
        const BATCH: usize = 256;
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<FileInfo>>>(4);
        tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                match self.next_entry() {
                    Ok(Some(file)) => {
                        batch.push(file);
                        if batch.len() == BATCH
                            && sender
                                .blocking_send(Ok(std::mem::take(&mut batch)))
                                .is_err()
                        {
                            return;
                        }
                    }
                    Ok(None) => {
                        if !batch.is_empty() {
                            let _ = sender.blocking_send(Ok(batch));
                        }
                        return;
                    }
                    Err(err) => {
                        if !batch.is_empty() && sender.blocking_send(Ok(batch)).is_err() {
                            return;
                        }
                        let _ = sender.blocking_send(Err(err));
                        return;
                    }
                }
            }
        });
        use futures::StreamExt;
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        })
        .flat_map(|item| {
            let items: Vec<Result<FileInfo>> = match item {
                Ok(batch) => batch.into_iter().map(Ok).collect(),
                Err(err) => vec![Err(err)],
            };
            futures::stream::iter(items)
        })
    }
}

impl IntoIterator for BacklogReader {
    type Item = Result<FileInfo>;
    type IntoIter = BacklogEntries;

    fn into_iter(self) -> BacklogEntries {
        BacklogEntries { reader: self }
    }
}

/// The remaining files of a [`BacklogReader`] as an [`Iterator`]; the iteration ends after
/// the first error.
#[derive(Debug)]
pub struct BacklogEntries {
    reader: BacklogReader,
}

impl BacklogEntries {
    /// The reader, for its position.
    pub fn reader(&self) -> &BacklogReader {
        &self.reader
    }
}

impl Iterator for BacklogEntries {
    type Item = Result<FileInfo>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.reader.next_entry() {
            Ok(Some(file)) => Some(Ok(file)),
            Ok(None) => None,
            Err(err) => {
                self.reader.finished = true;
                Some(Err(err))
            }
        }
    }
}
