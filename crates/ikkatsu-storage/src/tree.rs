//! Recursive listing of a directory tree that ends with an error when the server does.
//!
//! Object stores (S3, GCS, Azure Blob) and memory list a prefix recursively themselves, in
//! pages that the retry layer asks for again after a temporary failure. For the backends
//! that list one directory at a time (FTP, SFTP, WebDAV), OpenDAL simulates a recursive
//! listing with a lister that forgets the directory it was about to list when that listing
//! fails: the retry layer then asks it for the next entry, and it answers "no more entries".
//! An unreachable server read as an empty folder, and a server lost in the middle of a walk
//! as a complete but partial listing. Here each directory is listed on its own (through the
//! retry layer, which repeats a failed directory listing whole), and a listing that fails
//! after its retries is the last item of the stream: never "no more entries".
//!
//! The server's answer that a directory does not exist is trusted: a directory deleted
//! during the walk is skipped, and a missing start directory lists as empty (see
//! docs/storage.md, "Listing errors").

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use ikkatsu_core::Result;
use opendal::{Entry, ErrorKind as Od, Lister, Operator};

use crate::error::parse_error;
use crate::storage::Storage;

/// Every entry under `dir` (`""` for the root, else ending with `/`), directories included,
/// as a stream. A listing that fails is an `Err` item and ends the stream.
pub(crate) fn list_tree(storage: &Storage, dir: &str) -> BoxStream<'static, Result<Entry>> {
    let op = storage.operator().clone();
    let url = storage.url().to_string();
    if op.info().capability().list_with_recursive {
        return native(op, url, dir.to_string());
    }
    let walk = DirectoryWalk {
        op,
        url,
        pending: vec![dir.to_string()],
        current: None,
        failed: false,
    };
    futures::stream::unfold(walk, |mut walk| async move {
        let item = walk.next().await?;
        Some((item, walk))
    })
    .boxed()
}

/// The backend's own recursive listing (object stores list a prefix flat, in pages).
fn native(op: Operator, url: String, dir: String) -> BoxStream<'static, Result<Entry>> {
    futures::stream::once(async move {
        match op.lister_with(&dir).recursive(true).await {
            Ok(lister) => {
                let url = url.clone();
                lister
                    .map_err(move |e| parse_error(e, "list", &dir, &url))
                    .boxed()
            }
            Err(e) if e.kind() == Od::NotFound => futures::stream::empty().boxed(),
            Err(e) => futures::stream::once(async move { Err(parse_error(e, "list", &dir, &url)) })
                .boxed(),
        }
    })
    .flatten()
    .boxed()
}

/// A depth-first walk, one directory listing at a time; memory holds the directories still
/// to list, not the files.
struct DirectoryWalk {
    op: Operator,
    url: String,
    /// Directories still to list (each ending with `/`, or `""` for the root).
    pending: Vec<String>,
    /// The directory being listed and its lister.
    current: Option<(String, Lister)>,
    /// A listing failed: the stream has ended.
    failed: bool,
}

impl DirectoryWalk {
    /// The next entry; `None` once every directory has been listed or after an error.
    async fn next(&mut self) -> Option<Result<Entry>> {
        if self.failed {
            return None;
        }
        loop {
            let (dir, lister) = match &mut self.current {
                Some(current) => current,
                None => {
                    let dir = self.pending.pop()?;
                    match self.op.lister(&dir).await {
                        Ok(lister) => self.current.insert((dir, lister)),
                        Err(e) if e.kind() == Od::NotFound => continue,
                        Err(e) => return Some(self.fail(e, &dir)),
                    }
                }
            };
            match lister.next().await {
                Some(Ok(entry)) => {
                    let path = entry.path();
                    // The directory itself (some servers list it as `.`).
                    if path == dir.as_str() || (dir.is_empty() && (path == "/" || path.is_empty()))
                    {
                        continue;
                    }
                    if (entry.metadata().is_dir() || path.ends_with('/'))
                        && path.starts_with(dir.as_str())
                    {
                        self.pending.push(path.to_string());
                    }
                    return Some(Ok(entry));
                }
                // The server says the directory is not there (deleted during the walk, or a
                // missing start directory): nothing in it.
                Some(Err(e)) if e.kind() == Od::NotFound => self.current = None,
                Some(Err(e)) => {
                    let dir = dir.clone();
                    return Some(self.fail(e, &dir));
                }
                None => self.current = None,
            }
        }
    }

    fn fail(&mut self, e: opendal::Error, dir: &str) -> Result<Entry> {
        self.failed = true;
        self.current = None;
        self.pending.clear();
        Err(parse_error(e, "list", dir, &self.url))
    }
}
