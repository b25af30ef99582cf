//! Reads: whole, streamed, and downloads into local files.

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use ikkatsu_core::{Error, Result};

use super::transfer::save;
use super::{CHUNK, Storage};
use crate::error::parse_error;
use crate::file_info::FileInfo;

impl Storage {
    /// The whole content of the file at `path`, in memory. Use [`Storage::reader`] or
    /// [`Storage::download`] for large files.
    pub async fn read(&self, path: &str) -> Result<Bytes> {
        self.observed(
            "read",
            path,
            async {
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
            },
            |b| Some(b.len() as u64),
        )
        .await
    }

    /// The content of the file at `path` as a stream of chunks.
    pub async fn reader(&self, path: &str) -> Result<BoxStream<'static, Result<Bytes>>> {
        let path = self.checked(path)?;
        if self.inner.stat_before_read {
            self.stat(path).await?;
        }
        let stream = self.open_reader(path, None, None).await?;
        Ok(self.observed_stream("read", path, stream))
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
        self.observed(
            "read",
            path,
            async {
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
            },
            |info| Some(info.size),
        )
        .await
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
        let read = async {
            let stream = self.open_reader(path, Some(listed.size), etag).await?;
            save(stream, local).await
        };
        let read = self.observed("read", path, read, |size| Some(*size)).await;
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
