//! Object access for item readers and writers: ranged reads (resuming a stream at a byte
//! offset, random access for columnar formats) and listing one directory or prefix.

use std::ops::Range;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use ikkatsu_core::{Error, ErrorKind, Result};

use crate::error::parse_error;
use crate::file_info::FileInfo;
use crate::path::validate_relative_path;
use crate::storage::{Storage, file_info};

/// Size of the chunks a streamed read asks the backend for.
const READ_CHUNK: usize = 1024 * 1024;

impl Storage {
    /// The content of the file at `path` from byte `offset` to its end, as a stream of
    /// chunks (memory bounded by one chunk). `offset` 0 is the whole file, like
    /// [`Storage::reader`]; an `offset` past the end yields nothing.
    pub async fn reader_from(
        &self,
        path: &str,
        offset: u64,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let path = self.checked_path(path)?.to_string();
        let reader = self
            .operator()
            .reader_with(&path)
            .chunk(READ_CHUNK)
            .await
            .map_err(|e| parse_error(e, "read", &path, self.url()))?;
        let stream = reader
            .into_bytes_stream(offset..)
            .await
            .map_err(|e| parse_error(e, "read", &path, self.url()))?;
        let url = self.url().to_string();
        let shown = path.clone();
        let stream = stream
            .map_err(move |e| Error::io(format!("storage {url}: read {shown:?}"), e))
            .boxed();
        Ok(self.observed_stream("read", &path, stream))
    }

    /// The bytes of the file at `path` in `range` (for formats read by random access, such as
    /// Parquet's footer and column chunks).
    pub async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.observed(
            "read",
            path,
            async {
                let path = self.checked_path(path)?;
                let buffer = self
                    .operator()
                    .read_with(path)
                    .range(range)
                    .await
                    .map_err(|e| parse_error(e, "read", path, self.url()))?;
                Ok(buffer.to_bytes())
            },
            |b| Some(b.len() as u64),
        )
        .await
    }

    /// The files in the directory `dir` (`""` for the root; with or without a trailing `/`),
    /// and with `recursive` in all its subdirectories, as a stream in the backend's order
    /// (sort them when the order matters). A missing directory yields nothing; a listing
    /// that fails after the storage's retries is an `Err` item that ends the stream (see
    /// [`Storage::walk`]). Unlike
    /// [`Storage::walk`], listing starts at `dir`, so a prefix of a large bucket is listed
    /// without listing the rest.
    pub fn list(&self, dir: &str, recursive: bool) -> Result<BoxStream<'static, Result<FileInfo>>> {
        let dir = dir.trim_end_matches('/');
        if !dir.is_empty() {
            self.checked_path(dir)?;
        }
        let dir = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let storage = self.clone();
        let listed = dir.clone();
        let entries = if recursive {
            crate::tree::list_tree(self, &dir)
        } else {
            one_directory(self, dir)
        };
        let entries = entries
            .try_filter_map(move |entry| {
                let storage = storage.clone();
                async move {
                    if entry.metadata().is_dir() || entry.path().ends_with('/') {
                        return Ok(None);
                    }
                    let path = entry.path().trim_start_matches('/').to_string();
                    validate_relative_path(&path)
                        .map_err(|e| e.context(format!("storage {}: listing", storage.url())))?;
                    let meta = entry.metadata();
                    if meta.is_file() && meta.last_modified().is_some() {
                        return Ok(Some(file_info(&path, meta)));
                    }
                    match storage.stat(&path).await {
                        Ok(info) => Ok(Some(info)),
                        // Deleted between listing and stat: not there any more.
                        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .boxed();
        Ok(self.observed_stream("list", &listed, entries))
    }

    fn checked_path<'a>(&self, path: &'a str) -> Result<&'a str> {
        validate_relative_path(path).map_err(|e| e.context(format!("storage {}", self.url())))?;
        Ok(path)
    }
}

/// The entries of the directory `dir` alone; a missing directory has none, a listing that
/// fails (after the storage's retries) is an `Err` item that ends the stream.
fn one_directory(storage: &Storage, dir: String) -> BoxStream<'static, Result<opendal::Entry>> {
    let op = storage.operator().clone();
    let url = storage.url().to_string();
    futures::stream::once(async move {
        let lister = match op.lister(&dir).await {
            Ok(lister) => lister,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                return futures::stream::empty().boxed();
            }
            Err(e) => {
                let err = parse_error(e, "list", &dir, &url);
                return futures::stream::once(async move { Err(err) }).boxed();
            }
        };
        futures::stream::unfold(Some(lister), move |lister| {
            let (dir, url) = (dir.clone(), url.clone());
            async move {
                let mut lister = lister?;
                match lister.next().await? {
                    Ok(entry) => Some((Ok(entry), Some(lister))),
                    // The directory is not there: nothing in it.
                    Err(e) if e.kind() == opendal::ErrorKind::NotFound => None,
                    Err(e) => Some((Err(parse_error(e, "list", &dir, &url)), None)),
                }
            }
        })
        .boxed()
    })
    .flatten()
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ranged_reads_and_listing() {
        let storage = Storage::open("memory:").unwrap();
        storage.write("in/a.txt", "0123456789").await.unwrap();
        storage.write("in/sub/b.txt", "b").await.unwrap();
        storage.write("other/c.txt", "c").await.unwrap();

        let tail: Vec<Bytes> = storage
            .reader_from("in/a.txt", 4)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(tail.concat(), b"456789");
        assert_eq!(
            storage.read_range("in/a.txt", 2..5).await.unwrap().as_ref(),
            b"234"
        );

        let mut flat: Vec<String> = storage
            .list("in", false)
            .unwrap()
            .map_ok(|f| f.path)
            .try_collect()
            .await
            .unwrap();
        flat.sort();
        assert_eq!(flat, ["in/a.txt"]);
        let mut deep: Vec<String> = storage
            .list("in/", true)
            .unwrap()
            .map_ok(|f| f.path)
            .try_collect()
            .await
            .unwrap();
        deep.sort();
        assert_eq!(deep, ["in/a.txt", "in/sub/b.txt"]);
        let none: Vec<FileInfo> = storage
            .list("missing", true)
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert!(none.is_empty());
        assert!(storage.list("../x", true).is_err());
        let err = storage.read_range("nope", 0..1).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
}
