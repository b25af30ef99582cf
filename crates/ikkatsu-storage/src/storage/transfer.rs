//! Bytes between local files and streams: a local file read as chunks for an upload, a
//! stream of chunks saved into a local file, chunks written to an OpenDAL writer.

use std::io::{Read, Write};
use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use ikkatsu_core::{Error, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CHUNK;

/// The size of the local file `local` and its content as chunks for an upload. A file of up
/// to [`CHUNK`] bytes (the common case) is opened, measured and read whole in one blocking
/// call; a longer one is streamed a chunk at a time, with memory bounded by one chunk.
pub(super) async fn read_local(local: &Path) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
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
pub(super) async fn write_chunks(
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

/// Writes the chunks of `stream` to the local file `local` (created or truncated); returns
/// the number of bytes written. Content of up to [`CHUNK`] bytes (the common case) is
/// gathered first and written with the file's creation in one blocking call; longer content
/// is streamed, with memory bounded by about one chunk.
pub(super) async fn save(
    mut stream: BoxStream<'static, Result<Bytes>>,
    local: &Path,
) -> Result<u64> {
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
