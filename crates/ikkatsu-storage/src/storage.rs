//! [`Storage`]: the port every flow uses to reach files, whatever the backend.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use ikkatsu_core::{Error, ErrorKind, Result};
use opendal::{Metadata, Operator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend;
use crate::connection::{Settings, StorageConnection};
use crate::error::parse_error;
use crate::file_info::FileInfo;
use crate::layers::{StorageOptions, layered};
use crate::path::validate_relative_path;
use crate::url::{StorageUrl, mask_secrets};

/// Size of the buffers used when streaming to and from local files.
const CHUNK: usize = 1024 * 1024;

/// How [`Storage::write_if_unchanged`] makes sure it does not clobber a changed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConditionalWrite {
    /// The backend checks the etag itself and refuses atomically (HTTP `If-Match`).
    IfMatch,
    /// The backend checks the object's version (GCS generation) itself and refuses
    /// atomically.
    IfVersionMatch,
    /// The new content is first written beside the object, then the object is compared
    /// (size, modification time, etag) and the new content renamed over it: the window for a
    /// concurrent change is the time between the comparison and the rename. Best effort.
    StatCompareRename,
    /// The object is compared (size, modification time, etag) immediately before the write.
    /// Best effort: a change between the comparison and the write is not detected.
    StatCompare,
}

impl ConditionalWrite {
    /// A stable name for logs and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionalWrite::IfMatch => "if-match",
            ConditionalWrite::IfVersionMatch => "if-version-match",
            ConditionalWrite::StatCompareRename => "stat-compare-rename",
            ConditionalWrite::StatCompare => "stat-compare",
        }
    }
}

/// What a storage can do, as far as ikkatsu's flows care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The backend scheme (`fs`, `memory`, `ftp`, `sftp`, `s3`, `webdav`, `gcs`, `azblob`).
    pub scheme: &'static str,
    /// How conditional writes are done.
    pub conditional_write: ConditionalWrite,
    /// Whether the backend reports modification times.
    pub modified: bool,
    /// Whether the backend reports etags.
    pub etag: bool,
    /// Whether the walker reads the local file system directly instead of listing through
    /// OpenDAL.
    pub local_walker: bool,
}

/// One storage: a local directory, an in-memory store, a server (FTP, FTPS, SFTP, WebDAV) or
/// a bucket (S3, GCS, Azure Blob).
///
/// Paths given to its methods are relative to the storage root, `/`-separated, and must pass
/// [`validate_relative_path`](crate::validate_relative_path).
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    op: Operator,
    url: String,
    local_root: Option<PathBuf>,
    capabilities: Capabilities,
    /// Modification times are cut to whole seconds, so that listings (often milliseconds)
    /// and stat (often HTTP dates) report the same time.
    whole_seconds: bool,
    /// How many times the retry layer retried a temporary error.
    retries: Arc<AtomicU64>,
    /// Streams multi-chunk writes for backends whose OpenDAL writer cannot.
    uploader: Option<Arc<dyn backend::StreamUploader>>,
    /// Writes empty files for backends whose OpenDAL writer cannot.
    empty_files: Option<Arc<dyn backend::EmptyFileWriter>>,
    /// Stat before reading, so that a missing file fails at once.
    stat_before_read: bool,
    /// Listings report what a stat would.
    listing_is_stat: bool,
    /// Reads can be conditional on an ETag, and that ETag is the one conditional writes use.
    read_if_match: bool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("url", &self.inner.url)
            .field("capabilities", &self.inner.capabilities)
            .finish()
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Storage {
    /// Opens the storage named by `url` with the default [`StorageOptions`].
    ///
    /// URL forms: `file:///absolute/path`, `file://localhost/absolute/path`,
    /// `file:relative/path`, a plain path (absolute or relative to the current directory),
    /// `memory:` (a private, empty store) and `memory:NAME` (shared by name within the
    /// process). A local directory must exist. Remote backends, each behind a cargo
    /// feature: `ftp://`, `ftps://`, `sftp://`, `s3://`, `webdav+http://`, `webdav+https://`,
    /// `gcs://`, `azblob://`, with options as query parameters (see `docs/storage.md`).
    pub fn open(url: &str) -> Result<Storage> {
        Storage::open_with(url, &StorageOptions::default())
    }

    /// Opens the storage named by `url` with explicit layer options (query parameters
    /// `timeout`, `io-timeout`, `retries` and `concurrency` override them).
    pub fn open_with(url: &str, options: &StorageOptions) -> Result<Storage> {
        Storage::open_connection(&StorageConnection::new(url), options)
    }

    /// Opens a storage given as a URL with options beside it (a named storage of the
    /// application config).
    pub fn open_connection(
        connection: &StorageConnection,
        options: &StorageOptions,
    ) -> Result<Storage> {
        let shown = mask_secrets(&connection.url);
        let parsed = StorageUrl::parse(&connection.url)?;
        let query = match &parsed {
            StorageUrl::Remote(remote) => remote.query.clone(),
            _ => Default::default(),
        };
        let mut settings = Settings::new(query, &connection.options, &shown)?;
        let layers = settings.take_layer_options(options)?;
        let opened = backend::open(&parsed, settings, &layers, &shown)?;
        let native = opened.operator.info().capability();
        let local = opened.local_root.is_some();
        let read_if_match = native.read_with_if_match && native.write_with_if_match;
        let capabilities = Capabilities {
            scheme: opened.operator.info().scheme(),
            conditional_write: if native.write_with_if_match {
                ConditionalWrite::IfMatch
            } else if native.write_with_if_version_match {
                ConditionalWrite::IfVersionMatch
            } else if native.rename {
                ConditionalWrite::StatCompareRename
            } else {
                ConditionalWrite::StatCompare
            },
            modified: opened.reports_modified,
            etag: native.write_with_if_match || native.write_with_if_version_match,
            local_walker: local,
        };
        tracing::debug!(
            storage = %shown,
            backend = capabilities.scheme,
            conditional_write = capabilities.conditional_write.as_str(),
            "storage opened"
        );
        let (op, retries) = layered(opened.operator, &layers, &shown);
        Ok(Storage {
            inner: Arc::new(Inner {
                op,
                url: shown,
                local_root: opened.local_root,
                capabilities,
                whole_seconds: !local,
                retries,
                uploader: opened.uploader,
                empty_files: opened.empty_files,
                stat_before_read: opened.stat_before_read,
                listing_is_stat: opened.listing_is_stat,
                read_if_match,
            }),
        })
    }

    /// The URL with secrets masked.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// What this storage can do.
    pub fn capabilities(&self) -> Capabilities {
        self.inner.capabilities
    }

    /// How many times this storage retried an operation after a temporary error since it was
    /// opened (each retry is also logged at warn level).
    pub fn retry_count(&self) -> u64 {
        self.inner.retries.load(Ordering::Relaxed)
    }

    /// The local root directory when the storage is the local file system.
    pub fn local_root(&self) -> Option<&Path> {
        self.inner.local_root.as_deref()
    }

    /// The layered OpenDAL operator, for operations this port does not cover.
    pub fn operator(&self) -> &Operator {
        &self.inner.op
    }

    fn err(&self, err: opendal::Error, op: &str, path: &str) -> Error {
        parse_error(err, op, path, &self.inner.url)
    }

    /// What is known about `path` from OpenDAL metadata, as this storage reports it.
    pub(crate) fn info(&self, path: &str, meta: &Metadata) -> FileInfo {
        let mut info = file_info(path, meta);
        if self.inner.whole_seconds
            && let Some(t) = info.modified
        {
            info.modified = DateTime::from_timestamp(t.timestamp(), 0);
        }
        info
    }

    /// Logs one finished operation with the fields metrics and log searches use.
    fn log_done(&self, op: &'static str, path: &str, bytes: Option<u64>, started: Instant) {
        tracing::debug!(
            backend = self.inner.capabilities.scheme,
            storage = %self.inner.url,
            operation = op,
            path,
            bytes,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "storage operation done"
        );
    }

    fn checked<'a>(&self, path: &'a str) -> Result<&'a str> {
        validate_relative_path(path)
            .map_err(|e| e.context(format!("storage {}", self.inner.url)))?;
        Ok(path)
    }

    /// What is known about the file at `path`. A directory is an
    /// [`ErrorKind::InvalidState`] error; a missing path is [`ErrorKind::NotFound`].
    pub async fn stat(&self, path: &str) -> Result<FileInfo> {
        let path = self.checked(path)?;
        let started = Instant::now();
        let meta = self
            .inner
            .op
            .stat(path)
            .await
            .map_err(|e| self.err(e, "stat", path))?;
        if meta.is_dir() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "storage {}: {path:?} is a directory, a file was expected",
                    self.inner.url
                ),
            ));
        }
        self.log_done("stat", path, None, started);
        Ok(self.info(path, &meta))
    }

    /// Whether a file or directory exists at `path`.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        let path = self.checked(path)?;
        self.inner
            .op
            .exists(path)
            .await
            .map_err(|e| self.err(e, "exists", path))
    }

    /// The whole content of the file at `path`, in memory. Use [`Storage::reader`] or
    /// [`Storage::download`] for large files.
    pub async fn read(&self, path: &str) -> Result<Bytes> {
        let path = self.checked(path)?;
        let started = Instant::now();
        if self.inner.stat_before_read {
            self.stat(path).await?;
        }
        let buffer = self
            .inner
            .op
            .read(path)
            .await
            .map_err(|e| self.err(e, "read", path))?;
        self.log_done("read", path, Some(buffer.len() as u64), started);
        Ok(buffer.to_bytes())
    }

    /// The content of the file at `path` as a stream of chunks.
    pub async fn reader(&self, path: &str) -> Result<BoxStream<'static, Result<Bytes>>> {
        let path = self.checked(path)?;
        if self.inner.stat_before_read {
            self.stat(path).await?;
        }
        self.open_reader(path, None, None).await
    }

    /// The stream of [`Storage::reader`], without the stat some backends need first. With
    /// the `size` known, the read asks for exactly that range: without it, the backend
    /// layer has to stat the file first to learn its end.
    async fn open_reader(
        &self,
        path: &str,
        size: Option<u64>,
        if_match: Option<&str>,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let path = path.to_string();
        let reader = self.inner.op.reader_with(&path);
        // Local files are read in chunks; a remote file is one streamed request (a ranged
        // request per chunk would cost a round trip each, and over FTP a data connection).
        let reader = if self.inner.local_root.is_some() {
            reader.chunk(CHUNK)
        } else {
            reader
        };
        let reader = match if_match {
            Some(etag) => reader.if_match(etag),
            None => reader,
        };
        let reader = reader.await.map_err(|e| self.err(e, "read", &path))?;
        let stream = match size {
            Some(size) => reader.into_bytes_stream(0..size).await,
            None => reader.into_bytes_stream(..).await,
        }
        .map_err(|e| self.err(e, "read", &path))?;
        let url = self.inner.url.clone();
        Ok(stream.map_err(move |e| read_error(e, &path, &url)).boxed())
    }

    /// Streams the file at `path` into the local file `local` (created or truncated), with
    /// memory bounded by one chunk. Returns what was known about the file when the download
    /// started, the value to give [`Storage::write_if_unchanged`] later.
    pub async fn download(&self, path: &str, local: &Path) -> Result<FileInfo> {
        let started = Instant::now();
        let info = self.stat(path).await?;
        // The content as of the stat: its size bounds the read (an empty file needs none).
        let stream = if info.size == 0 {
            futures::stream::empty().boxed()
        } else {
            self.open_reader(path, Some(info.size), None).await?
        };
        save(stream, local).await?;
        self.log_done("download", path, Some(info.size), started);
        Ok(info)
    }

    /// [`Storage::download`] of a file as a listing (a walk) reported it, with fewer
    /// requests where the backend allows:
    ///
    /// * Where reads can be conditional on an ETag (S3, Azure Blob, GCS) and `listed` has
    ///   one, one read on the condition that the file still has that ETag replaces the
    ///   stat.
    /// * Where a listing reports what a stat would (SFTP), the listed size bounds the read
    ///   and no stat is made. A change since the listing that the read does not reveal (a
    ///   longer file, the same size) is caught by [`Storage::write_if_unchanged`], which
    ///   compares the file with `listed` and refuses to overwrite it.
    ///
    /// A read that fails (a refused condition, a file shorter than listed, a deleted file)
    /// is followed by [`Storage::download`], whose result or error is returned.
    ///
    /// Elsewhere this is [`Storage::download`]. Returns the info to give
    /// [`Storage::write_if_unchanged`]: `listed`, unless the file was downloaded again.
    pub async fn download_listed(&self, listed: &FileInfo, local: &Path) -> Result<FileInfo> {
        let path = listed.path.as_str();
        let etag = listed.etag.as_deref().filter(|_| self.inner.read_if_match);
        let by_listing =
            etag.is_some() || (self.inner.listing_is_stat && listed.modified.is_some());
        if !by_listing || listed.size == 0 {
            return self.download(path, local).await;
        }
        let started = Instant::now();
        let read = match self.open_reader(path, Some(listed.size), etag).await {
            Ok(stream) => save(stream, local).await,
            Err(err) => Err(err),
        };
        match read {
            Ok(size) if size == listed.size => {
                self.log_done("download", path, Some(size), started);
                Ok(listed.clone())
            }
            // Shorter than listed, a refused condition, or any other failure: the file
            // may have changed since the listing; what a stat finds now decides (and a
            // lasting error is the stat's or the read's there).
            Ok(_) | Err(_) => self.download(path, local).await,
        }
    }

    /// Writes `bytes` to `path`, replacing any file there; returns the new file's info.
    pub async fn write(&self, path: &str, bytes: impl Into<Bytes>) -> Result<FileInfo> {
        let path = self.checked(path)?;
        let bytes = bytes.into();
        let started = Instant::now();
        let len = bytes.len() as u64;
        if let Some(uploader) = self.inner.uploader.as_ref().filter(|u| u.all_writes()) {
            let body = futures::stream::once(async move { Ok(bytes) }).boxed();
            uploader
                .upload(&self.inner.op, path, body, Some(len))
                .await
                .map_err(|e| self.err(e, "write", path))?;
            self.log_done("write", path, Some(len), started);
            return self.stat(path).await;
        }
        self.inner
            .op
            .write(path, bytes)
            .await
            .map_err(|e| self.err(e, "write", path))?;
        self.ensure_written_if_empty(path, len).await?;
        self.log_done("write", path, Some(len), started);
        self.stat(path).await
    }

    /// Writes the chunks of `stream` to `path`, replacing any file there, with memory
    /// bounded by what the backend buffers for one part; returns the new file's info. An
    /// `Err` item aborts the write and is returned.
    pub async fn write_stream<S>(&self, path: &str, stream: S) -> Result<FileInfo>
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        let path = self.checked(path)?;
        let started = Instant::now();
        if let Some(uploader) = &self.inner.uploader {
            let counted = Arc::new(AtomicU64::new(0));
            let counter = counted.clone();
            let body = stream
                .inspect_ok(move |chunk| {
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                })
                .boxed();
            uploader
                .upload(&self.inner.op, path, body, None)
                .await
                .map_err(|e| self.err(e, "write", path))?;
            self.log_done(
                "write",
                path,
                Some(counted.load(Ordering::Relaxed)),
                started,
            );
            return self.stat(path).await;
        }
        let mut writer = self
            .inner
            .op
            .writer(path)
            .await
            .map_err(|e| self.err(e, "write", path))?;
        let mut stream = std::pin::pin!(stream);
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            written += chunk.len() as u64;
            if let Err(e) = writer.write(chunk).await {
                let _ = writer.abort().await;
                return Err(self.err(e, "write", path));
            }
        }
        writer
            .close()
            .await
            .map_err(|e| self.err(e, "write", path))?;
        self.ensure_written_if_empty(path, written).await?;
        self.log_done("write", path, Some(written), started);
        self.stat(path).await
    }

    /// After a write of `written` bytes: when nothing was written and the backend's writer
    /// then leaves the path untouched, writes the empty file.
    async fn ensure_written_if_empty(&self, path: &str, written: u64) -> Result<()> {
        if written > 0 {
            return Ok(());
        }
        if let Some(empty) = &self.inner.empty_files {
            empty
                .create_empty(path)
                .await
                .map_err(|e| self.err(e, "write", path))?;
        }
        Ok(())
    }

    /// Streams the local file `local` to `path`, replacing any file there, with memory
    /// bounded by one chunk; returns the new file's info.
    pub async fn upload(&self, local: &Path, path: &str) -> Result<FileInfo> {
        let path = self.checked(path)?;
        let started = Instant::now();
        let written = self.upload_unchecked(local, path).await?;
        self.log_done("upload", path, Some(written), started);
        self.stat(path).await
    }

    /// Streams `local` to `path`; returns the number of bytes written.
    async fn upload_unchecked(&self, local: &Path, path: &str) -> Result<u64> {
        let (size, chunks) = read_local(local).await?;
        if let Some(uploader) = &self.inner.uploader {
            uploader
                .upload(&self.inner.op, path, chunks, Some(size))
                .await
                .map_err(|e| self.err(e, "write", path))?;
            return Ok(size);
        }
        let writer = self
            .inner
            .op
            .writer(path)
            .await
            .map_err(|e| self.err(e, "write", path))?;
        let written = write_chunks(writer, chunks, |e| self.err(e, "write", path)).await?;
        self.ensure_written_if_empty(path, written).await?;
        Ok(written)
    }

    /// Deletes the file at `path`. Deleting a missing file succeeds.
    pub async fn delete(&self, path: &str) -> Result<()> {
        let path = self.checked(path)?;
        let started = Instant::now();
        self.inner
            .op
            .delete(path)
            .await
            .map_err(|e| self.err(e, "delete", path))?;
        self.log_done("delete", path, None, started);
        Ok(())
    }

    /// Replaces the file at `path` with the local file `local`, but only if the file still
    /// is what `expected` describes (same size, and same etag, or same modification time when
    /// there is no etag). A changed or deleted file is refused with [`ErrorKind::Conflict`]
    /// and left untouched. See [`Capabilities::conditional_write`] for how strong the check
    /// is on this backend.
    pub async fn write_if_unchanged(
        &self,
        path: &str,
        local: &Path,
        expected: &FileInfo,
    ) -> Result<FileInfo> {
        let path = self.checked(path)?;
        let started = Instant::now();
        match (self.inner.capabilities.conditional_write, &expected.etag) {
            (ConditionalWrite::IfMatch, Some(etag)) => {
                self.upload_if(local, path, Condition::Etag(etag)).await?;
            }
            (ConditionalWrite::IfVersionMatch, _) if expected.version.is_some() => {
                let version = expected.version.as_deref().unwrap_or_default();
                self.upload_if(local, path, Condition::Version(version))
                    .await?;
            }
            (ConditionalWrite::StatCompareRename, _) => {
                let temp = temp_sibling(path);
                self.upload_unchecked(local, &temp).await?;
                // The file is compared while the copy beside it is looked at: a rename keeps
                // size, modification time and etag, so the copy's are the replaced file's.
                let stat_temp = async {
                    self.inner
                        .op
                        .stat(&temp)
                        .await
                        .map_err(|e| self.err(e, "stat", &temp))
                };
                let result = match tokio::try_join!(self.check_unchanged(path, expected), stat_temp)
                {
                    Ok(((), meta)) => self
                        .inner
                        .op
                        .rename(&temp, path)
                        .await
                        .map(|()| meta)
                        .map_err(|e| self.err(e, "rename", path)),
                    Err(e) => Err(e),
                };
                return match result {
                    Ok(meta) => {
                        self.log_done("write-if-unchanged", path, None, started);
                        Ok(self.info(path, &meta))
                    }
                    Err(e) => {
                        let _ = self.inner.op.delete(&temp).await;
                        Err(e)
                    }
                };
            }
            _ => {
                self.check_unchanged(path, expected).await?;
                self.upload_unchecked(local, path).await?;
            }
        }
        self.log_done("write-if-unchanged", path, None, started);
        self.stat(path).await
    }

    /// Removes what a [`Storage::write_if_unchanged`] of `path` interrupted by a crash left
    /// beside it (its hidden temporary copies). Returns how many were removed.
    pub async fn clean_interrupted_write(&self, path: &str) -> Result<u64> {
        let path = self.checked(path)?;
        // Conditional writes by rename, and FTP uploads of ikkatsu's own, leave hidden
        // siblings `.NAME.ikkatsu-….tmp` when interrupted.
        if self.inner.capabilities.conditional_write != ConditionalWrite::StatCompareRename
            && self.inner.empty_files.is_none()
        {
            return Ok(0);
        }
        let (dir, _) = split_dir(path);
        let prefix = temp_sibling_prefix(path);
        let entries = match self
            .inner
            .op
            .list(if dir.is_empty() { "/" } else { dir })
            .await
        {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.err(e, "list", dir)),
        };
        let mut removed = 0;
        for entry in entries {
            let name = entry.path().trim_start_matches('/');
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                self.inner
                    .op
                    .delete(name)
                    .await
                    .map_err(|e| self.err(e, "delete", name))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn upload_if(&self, local: &Path, path: &str, condition: Condition<'_>) -> Result<()> {
        let (_, chunks) = read_local(local).await?;
        let writer = self.inner.op.writer_with(path);
        let writer = match condition {
            Condition::Etag(etag) => writer.if_match(etag),
            Condition::Version(version) => writer.if_version_match(version),
        };
        let writer = writer.await.map_err(|e| self.conflict_or(e, path))?;
        write_chunks(writer, chunks, |e| self.conflict_or(e, path)).await?;
        Ok(())
    }

    /// A refused condition as a [`ErrorKind::Conflict`] that says what happened, or the
    /// error as it is.
    fn conflict_or(&self, err: opendal::Error, path: &str) -> Error {
        if err.kind() == opendal::ErrorKind::ConditionNotMatch {
            Error::new(
                ErrorKind::Conflict,
                format!(
                    "storage {}: {path:?} changed since it was read (the backend refused the \
                     conditional write); not overwriting it",
                    self.inner.url
                ),
            )
            .with_source(err)
        } else if err.kind() == opendal::ErrorKind::NotFound {
            Error::new(
                ErrorKind::Conflict,
                format!(
                    "storage {}: {path:?} was deleted since it was read; not writing it",
                    self.inner.url
                ),
            )
            .with_source(err)
        } else {
            self.err(err, "write", path)
        }
    }

    async fn check_unchanged(&self, path: &str, expected: &FileInfo) -> Result<()> {
        let current = match self.stat(path).await {
            Ok(current) => current,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "storage {}: {path:?} was deleted since it was read; not writing it",
                        self.inner.url
                    ),
                )
                .with_source(e));
            }
            Err(e) => return Err(e),
        };
        if current.same_content_as(expected) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "storage {}: {path:?} changed since it was read (size {} -> {}, modified {:?} -> {:?}); not overwriting it",
                    self.inner.url,
                    expected.size,
                    current.size,
                    expected.modified,
                    current.modified
                ),
            ))
        }
    }
}

/// What a conditional upload requires of the object it replaces.
enum Condition<'a> {
    /// The object's etag.
    Etag(&'a str),
    /// The object's version (GCS generation).
    Version(&'a str),
}

/// The size of the local file `local` and its content as chunks for an upload. A file of up
/// to [`CHUNK`] bytes (the common case) is opened, measured and read whole in one blocking
/// call; a longer one is streamed a chunk at a time, with memory bounded by one chunk.
async fn read_local(local: &Path) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
    let path = local.to_path_buf();
    let opened = blocking_io(local, move || {
        let mut file = std::fs::File::open(&path)?;
        let size = file.metadata()?.len();
        if size > CHUNK as u64 {
            return Ok((size, Err(file)));
        }
        let mut content = Vec::with_capacity(size as usize);
        file.read_to_end(&mut content)?;
        Ok((content.len() as u64, Ok(Bytes::from(content))))
    })
    .await?;
    let chunks = match opened {
        (_, Ok(content)) if content.is_empty() => futures::stream::empty().boxed(),
        (_, Ok(content)) => futures::stream::once(async move { Ok(content) }).boxed(),
        (_, Err(file)) => {
            let shown = local.display().to_string();
            let file = tokio::fs::File::from_std(file);
            futures::stream::try_unfold(
                (file, vec![0u8; CHUNK], shown),
                |(mut file, mut buffer, shown)| async move {
                    match file.read(&mut buffer).await {
                        Ok(0) => Ok(None),
                        Ok(n) => {
                            let chunk = Bytes::copy_from_slice(&buffer[..n]);
                            Ok(Some((chunk, (file, buffer, shown))))
                        }
                        Err(e) => Err(Error::io(&shown, e)),
                    }
                },
            )
            .boxed()
        }
    };
    Ok((opened.0, chunks))
}

/// Writes `chunks` to `writer` and closes it, or aborts it at the first error: a local one
/// as it is, a storage one through `storage_error`. Returns the number of bytes written.
async fn write_chunks(
    mut writer: opendal::Writer,
    mut chunks: BoxStream<'static, Result<Bytes>>,
    storage_error: impl Fn(opendal::Error) -> Error,
) -> Result<u64> {
    let mut written = 0u64;
    while let Some(chunk) = chunks.next().await {
        let result = match chunk {
            Ok(chunk) => {
                written += chunk.len() as u64;
                writer.write(chunk).await.map_err(&storage_error)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let _ = writer.abort().await;
            return Err(e);
        }
    }
    writer.close().await.map_err(storage_error)?;
    Ok(written)
}

/// Runs the file work `work` on `local` on a blocking thread.
async fn blocking_io<T: Send + 'static>(
    local: &Path,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|e| Error::io(local.display(), e)),
        Err(e) => Err(Error::io(local.display(), std::io::Error::other(e))),
    }
}

/// `path` split into its directory (with the trailing `/`, or empty) and its name.
fn split_dir(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    }
}

/// The prefix of every temporary name [`temp_sibling`] makes for `path`.
pub(crate) fn temp_sibling_prefix(path: &str) -> String {
    let (dir, name) = split_dir(path);
    format!("{dir}.{name}.ikkatsu-")
}

/// An error of a read stream: OpenDAL's error inside it (a refused condition, a lost
/// connection) classified as any other storage error, or a plain I/O error.
fn read_error(err: std::io::Error, path: &str, url: &str) -> Error {
    let kind = err.kind();
    let context = || format!("storage {url}: read {path:?}");
    match err
        .into_inner()
        .map(|inner| inner.downcast::<opendal::Error>())
    {
        Some(Ok(od)) => parse_error(*od, "read", path, url),
        Some(Err(other)) => Error::io(context(), std::io::Error::new(kind, other)),
        None => Error::io(context(), std::io::Error::from(kind)),
    }
}

/// Writes the chunks of `stream` to the local file `local` (created or truncated); returns
/// the number of bytes written. Content of up to [`CHUNK`] bytes (the common case) is
/// gathered first and written with the file's creation in one blocking call; longer content
/// is streamed, with memory bounded by about one chunk.
async fn save(mut stream: BoxStream<'static, Result<Bytes>>, local: &Path) -> Result<u64> {
    let mut head = Vec::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        head.push(chunk);
        if size > CHUNK as u64 {
            break;
        }
    }
    let path = local.to_path_buf();
    let file = blocking_io(local, move || {
        let mut file = std::fs::File::create(&path)?;
        for chunk in &head {
            file.write_all(chunk)?;
        }
        Ok(file)
    })
    .await?;
    if size <= CHUNK as u64 {
        return Ok(size);
    }
    let mut file = tokio::fs::File::from_std(file);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::io(local.display(), e))?;
    }
    file.flush()
        .await
        .map_err(|e| Error::io(local.display(), e))?;
    Ok(size)
}

/// A hidden name beside `path` for content being written.
pub(crate) fn temp_sibling(path: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}{}-{n}.tmp",
        temp_sibling_prefix(path),
        std::process::id()
    )
}

/// Builds a [`FileInfo`] from OpenDAL metadata.
pub(crate) fn file_info(path: &str, meta: &Metadata) -> FileInfo {
    let mut info = FileInfo::new(path, meta.content_length());
    info.modified = meta
        .last_modified()
        .map(|t| DateTime::<Utc>::from(SystemTime::from(t)));
    info.etag = meta.etag().map(str::to_string);
    info.version = meta.version().map(str::to_string);
    info.content_type = meta.content_type().map(str::to_string);
    info
}
