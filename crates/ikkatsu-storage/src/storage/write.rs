//! Writes: bytes, streams and local files, replacing what is there.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use ikkatsu_core::Result;

use super::Storage;
use super::transfer::{read_local, write_chunks};
use crate::file_info::FileInfo;

impl Storage {
    /// Writes `bytes` to `path`, replacing any file there; returns the new file's info.
    pub async fn write(&self, path: &str, bytes: impl Into<Bytes>) -> Result<FileInfo> {
        self.observed(
            "write",
            path,
            async {
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
            },
            |info| Some(info.size),
        )
        .await
    }

    /// Writes the chunks of `stream` to `path`, replacing any file there, with memory
    /// bounded by what the backend buffers for one part; returns the new file's info. An
    /// `Err` item aborts the write and is returned.
    pub async fn write_stream<S>(&self, path: &str, stream: S) -> Result<FileInfo>
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        self.observed(
            "write",
            path,
            async {
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
            },
            |info| Some(info.size),
        )
        .await
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
        self.observed(
            "write",
            path,
            async {
                let path = self.checked(path)?;
                let started = Instant::now();
                let written = self.upload_unchecked(local, path).await?;
                self.log_done("upload", path, Some(written), started);
                self.stat(path).await
            },
            |info| Some(info.size),
        )
        .await
    }

    /// Streams `local` to `path`; returns the number of bytes written.
    pub(super) async fn upload_unchecked(&self, local: &Path, path: &str) -> Result<u64> {
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
}
