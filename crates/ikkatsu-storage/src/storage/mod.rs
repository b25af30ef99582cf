//! [`Storage`]: the port every flow uses to reach files, whatever the backend. Opening and
//! the small operations are here; reads ([`read`]), writes ([`write`]) and conditional
//! writes ([`conditional`]) each have a module, and [`transfer`] moves bytes between local
//! files and streams for them.

mod calls;
mod capabilities;
mod conditional;
mod read;
mod transfer;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use chrono::{DateTime, Utc};
use ikkatsu_core::{Error, ErrorKind, Result};
use opendal::{Metadata, Operator};

pub use self::capabilities::{Capabilities, ConditionalWrite};
use crate::backend::custom::{self, StorageBackend};
use crate::backend::{self, EmptyFileWriter, Opened, StreamUploader};
use crate::connection::StorageConnection;
use crate::error::parse_error;
use crate::file_info::FileInfo;
use crate::layers::{StorageOptions, layered};
use crate::path::validate_relative_path;
use crate::url::mask_secrets;

/// Size of the buffers used when streaming to and from local files.
const CHUNK: usize = 1024 * 1024;

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
    uploader: Option<Arc<dyn StreamUploader>>,
    /// Writes empty files for backends whose OpenDAL writer cannot.
    empty_files: Option<Arc<dyn EmptyFileWriter>>,
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
        let (opened, layers) = backend::open(connection, options, &shown)?;
        Ok(Storage::assemble(opened, &layers, shown))
    }

    /// The storage served by `backend`, a backend of the program's own (see
    /// [`StorageBackend`]), with the layer options `options`. Its URL, in messages, is the
    /// backend's name followed by `:`.
    pub fn from_backend<B: StorageBackend>(
        backend: B,
        options: &StorageOptions,
    ) -> Result<Storage> {
        let shown = format!("{}:", backend.name());
        let opened = custom::opened(backend)?;
        Ok(Storage::assemble(opened, options, shown))
    }

    /// The storage of what a backend opened, wrapped in the layer stack.
    pub(crate) fn assemble(opened: Opened, layers: &StorageOptions, shown: String) -> Storage {
        let native = opened.operator.info().capability();
        let local = opened.local_root.is_some();
        let capabilities = Capabilities::of(&opened);
        tracing::debug!(
            storage = %shown,
            backend = capabilities.scheme,
            conditional_write = capabilities.conditional_write.as_str(),
            "storage opened"
        );
        let (op, retries) = layered(opened.operator, layers, &shown);
        Storage {
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
                read_if_match: native.read_with_if_match && native.write_with_if_match,
            }),
        }
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
        self.observed(
            "stat",
            path,
            async {
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
            },
            |_| None,
        )
        .await
    }

    /// Whether a file or directory exists at `path`.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        self.observed(
            "stat",
            path,
            async {
                let path = self.checked(path)?;
                self.inner
                    .op
                    .exists(path)
                    .await
                    .map_err(|e| self.err(e, "exists", path))
            },
            |_| None,
        )
        .await
    }

    /// Deletes the file at `path`. Deleting a missing file succeeds.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.observed(
            "delete",
            path,
            async {
                let path = self.checked(path)?;
                let started = Instant::now();
                self.inner
                    .op
                    .delete(path)
                    .await
                    .map_err(|e| self.err(e, "delete", path))?;
                self.log_done("delete", path, None, started);
                Ok(())
            },
            |_| None,
        )
        .await
    }
}

impl StorageConnection {
    /// Opens the storage with the default [`StorageOptions`].
    pub fn open(&self) -> Result<Storage> {
        Storage::open_connection(self, &StorageOptions::default())
    }
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
