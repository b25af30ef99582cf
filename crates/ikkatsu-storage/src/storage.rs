//! [`Storage`]: the port every flow uses to reach files, whatever the backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use ikkatsu_core::{Error, ErrorKind, Result};
use opendal::{Metadata, Operator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend;
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
            ConditionalWrite::StatCompareRename => "stat-compare-rename",
            ConditionalWrite::StatCompare => "stat-compare",
        }
    }
}

/// What a storage can do, as far as ikkatsu's flows care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The backend scheme (`fs`, `memory`, ...).
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

/// One storage: a local directory, an in-memory store, or (later) a remote server or bucket.
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
    /// process). A local directory must exist.
    pub fn open(url: &str) -> Result<Storage> {
        Storage::open_with(url, &StorageOptions::default())
    }

    /// Opens the storage named by `url` with explicit layer options.
    pub fn open_with(url: &str, options: &StorageOptions) -> Result<Storage> {
        let shown = mask_secrets(url);
        let parsed = StorageUrl::parse(url)?;
        let opened = backend::open(&parsed, &shown)?;
        let native = opened.operator.info().capability();
        let local = opened.local_root.is_some();
        let capabilities = Capabilities {
            scheme: opened.operator.info().scheme(),
            conditional_write: if native.write_with_if_match {
                ConditionalWrite::IfMatch
            } else if native.rename {
                ConditionalWrite::StatCompareRename
            } else {
                ConditionalWrite::StatCompare
            },
            modified: local,
            etag: native.write_with_if_match,
            local_walker: local,
        };
        Ok(Storage {
            inner: Arc::new(Inner {
                op: layered(opened.operator, options),
                url: shown,
                local_root: opened.local_root,
                capabilities,
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

    fn checked<'a>(&self, path: &'a str) -> Result<&'a str> {
        validate_relative_path(path)
            .map_err(|e| e.context(format!("storage {}", self.inner.url)))?;
        Ok(path)
    }

    /// What is known about the file at `path`. A directory is an
    /// [`ErrorKind::InvalidState`] error; a missing path is [`ErrorKind::NotFound`].
    pub async fn stat(&self, path: &str) -> Result<FileInfo> {
        let path = self.checked(path)?;
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
        Ok(file_info(path, &meta))
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
        let buffer = self
            .inner
            .op
            .read(path)
            .await
            .map_err(|e| self.err(e, "read", path))?;
        Ok(buffer.to_bytes())
    }

    /// The content of the file at `path` as a stream of chunks.
    pub async fn reader(&self, path: &str) -> Result<BoxStream<'static, Result<Bytes>>> {
        let path = self.checked(path)?.to_string();
        let reader = self
            .inner
            .op
            .reader_with(&path)
            .chunk(CHUNK)
            .await
            .map_err(|e| self.err(e, "read", &path))?;
        let stream = reader
            .into_bytes_stream(..)
            .await
            .map_err(|e| self.err(e, "read", &path))?;
        let url = self.inner.url.clone();
        Ok(stream
            .map_err(move |e| Error::io(format!("storage {url}: read {path:?}"), e))
            .boxed())
    }

    /// Streams the file at `path` into the local file `local` (created or truncated), with
    /// memory bounded by one chunk. Returns what was known about the file when the download
    /// started, the value to give [`Storage::write_if_unchanged`] later.
    pub async fn download(&self, path: &str, local: &Path) -> Result<FileInfo> {
        let info = self.stat(path).await?;
        let mut stream = self.reader(path).await?;
        let mut file = tokio::fs::File::create(local)
            .await
            .map_err(|e| Error::io(local.display(), e))?;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?)
                .await
                .map_err(|e| Error::io(local.display(), e))?;
        }
        file.flush()
            .await
            .map_err(|e| Error::io(local.display(), e))?;
        Ok(info)
    }

    /// Writes `bytes` to `path`, replacing any file there; returns the new file's info.
    pub async fn write(&self, path: &str, bytes: impl Into<Bytes>) -> Result<FileInfo> {
        let path = self.checked(path)?;
        self.inner
            .op
            .write(path, bytes.into())
            .await
            .map_err(|e| self.err(e, "write", path))?;
        self.stat(path).await
    }

    /// Streams the local file `local` to `path`, replacing any file there, with memory
    /// bounded by one chunk; returns the new file's info.
    pub async fn upload(&self, local: &Path, path: &str) -> Result<FileInfo> {
        let path = self.checked(path)?;
        self.upload_unchecked(local, path).await?;
        self.stat(path).await
    }

    async fn upload_unchecked(&self, local: &Path, path: &str) -> Result<()> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::io(local.display(), e))?;
        let mut writer = self
            .inner
            .op
            .writer(path)
            .await
            .map_err(|e| self.err(e, "write", path))?;
        let mut buffer = read_buffer(&file).await;
        loop {
            let n = match file.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(Error::io(local.display(), e));
                }
            };
            if let Err(e) = writer.write(Bytes::copy_from_slice(&buffer[..n])).await {
                let _ = writer.abort().await;
                return Err(self.err(e, "write", path));
            }
        }
        writer
            .close()
            .await
            .map_err(|e| self.err(e, "write", path))?;
        Ok(())
    }

    /// Deletes the file at `path`. Deleting a missing file succeeds.
    pub async fn delete(&self, path: &str) -> Result<()> {
        let path = self.checked(path)?;
        self.inner
            .op
            .delete(path)
            .await
            .map_err(|e| self.err(e, "delete", path))
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
        match (self.inner.capabilities.conditional_write, &expected.etag) {
            (ConditionalWrite::IfMatch, Some(etag)) => {
                self.upload_if_match(local, path, etag).await?;
            }
            (ConditionalWrite::StatCompareRename, _) => {
                let temp = temp_sibling(path);
                self.upload_unchecked(local, &temp).await?;
                let result = match self.check_unchanged(path, expected).await {
                    Ok(()) => self
                        .inner
                        .op
                        .rename(&temp, path)
                        .await
                        .map_err(|e| self.err(e, "rename", path)),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    let _ = self.inner.op.delete(&temp).await;
                    return Err(e);
                }
            }
            _ => {
                self.check_unchanged(path, expected).await?;
                self.upload_unchecked(local, path).await?;
            }
        }
        self.stat(path).await
    }

    /// Removes what a [`Storage::write_if_unchanged`] of `path` interrupted by a crash left
    /// beside it (its hidden temporary copies). Returns how many were removed.
    pub async fn clean_interrupted_write(&self, path: &str) -> Result<u64> {
        let path = self.checked(path)?;
        if self.inner.capabilities.conditional_write != ConditionalWrite::StatCompareRename {
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

    async fn upload_if_match(&self, local: &Path, path: &str, etag: &str) -> Result<()> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::io(local.display(), e))?;
        let mut writer = self
            .inner
            .op
            .writer_with(path)
            .if_match(etag)
            .await
            .map_err(|e| self.err(e, "write", path))?;
        let mut buffer = read_buffer(&file).await;
        loop {
            let n = file
                .read(&mut buffer)
                .await
                .map_err(|e| Error::io(local.display(), e))?;
            if n == 0 {
                break;
            }
            writer
                .write(Bytes::copy_from_slice(&buffer[..n]))
                .await
                .map_err(|e| self.err(e, "write", path))?;
        }
        writer
            .close()
            .await
            .map_err(|e| self.err(e, "write", path))?;
        Ok(())
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

/// A read buffer for copying `file`: its size, up to [`CHUNK`] (small files are common; a
/// zeroed megabyte for each would cost more than the copy).
async fn read_buffer(file: &tokio::fs::File) -> Vec<u8> {
    let len = file
        .metadata()
        .await
        .map(|m| m.len())
        .unwrap_or(CHUNK as u64);
    vec![0u8; usize::try_from(len).unwrap_or(CHUNK).clamp(1, CHUNK)]
}

/// `path` split into its directory (with the trailing `/`, or empty) and its name.
fn split_dir(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    }
}

/// The prefix of every temporary name [`temp_sibling`] makes for `path`.
fn temp_sibling_prefix(path: &str) -> String {
    let (dir, name) = split_dir(path);
    format!("{dir}.{name}.ikkatsu-")
}

/// A hidden name beside `path` for content being written.
fn temp_sibling(path: &str) -> String {
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
