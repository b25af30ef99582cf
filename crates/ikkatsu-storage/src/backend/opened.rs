//! What a backend hands to [`crate::Storage`]: its OpenDAL operator and what the storage
//! must know about it, and the two hooks for writes OpenDAL's writer gets wrong.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use ikkatsu_core::Result;
use opendal::Operator;

/// What a backend hands to [`crate::Storage`].
pub(crate) struct Opened {
    /// The operator without layers.
    pub(crate) operator: Operator,
    /// The local root directory, for backends that are the local file system: the walker
    /// and conditional writes use it directly.
    pub(crate) local_root: Option<PathBuf>,
    /// Whether stat and listings report modification times.
    pub(crate) reports_modified: bool,
    /// Streams writes of many chunks, for backends whose OpenDAL writer takes one chunk only.
    pub(crate) uploader: Option<Arc<dyn StreamUploader>>,
    /// Writes empty files, for backends whose OpenDAL writer writes nothing then.
    pub(crate) empty_files: Option<Arc<dyn EmptyFileWriter>>,
    /// Reads of a missing file must be answered by a stat first (FTPS: the read of a
    /// missing file waits for a data connection the server never opens).
    pub(crate) stat_before_read: bool,
    /// A listing reports what a stat would (size, modification time to the same
    /// precision), so a listed file may be read without a stat first (SFTP: both come from
    /// the same attributes).
    pub(crate) listing_is_stat: bool,
}

/// Creates (or truncates) an empty file where OpenDAL's writer, given no bytes, leaves the
/// path untouched (FTP): without it, writing an empty result over a file would keep the old
/// content.
pub(crate) trait EmptyFileWriter: Send + Sync {
    /// Makes `path` an empty file, creating its parent directories.
    fn create_empty<'a>(&'a self, path: &'a str) -> BoxFuture<'a, opendal::Result<()>>;
}

/// Writes a stream of chunks to a path without holding them all, where OpenDAL's writer
/// would (WebDAV: one `PUT` with the stream as its body).
pub(crate) trait StreamUploader: Send + Sync {
    /// Writes `body` to `path`; `size` is its length when known. `op` is the storage's
    /// operator, for what OpenDAL does (creating parent directories).
    fn upload<'a>(
        &'a self,
        op: &'a Operator,
        path: &'a str,
        body: BoxStream<'static, Result<Bytes>>,
        size: Option<u64>,
    ) -> BoxFuture<'a, opendal::Result<()>>;

    /// Whether every write goes through the uploader, single chunks too; otherwise only
    /// writes of a stream or a local file do.
    fn all_writes(&self) -> bool {
        false
    }
}

impl Opened {
    /// A remote backend's operator.
    pub(crate) fn remote(operator: Operator) -> Opened {
        Opened {
            operator,
            local_root: None,
            reports_modified: true,
            uploader: None,
            empty_files: None,
            stat_before_read: false,
            listing_is_stat: false,
        }
    }
}
