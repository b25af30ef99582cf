//! What a storage can do: [`Capabilities`] and how it writes conditionally
//! ([`ConditionalWrite`]).

use crate::backend::Opened;

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
    /// The backend scheme (`fs`, `memory`, `ftp`, `sftp`, `s3`, `webdav`, `gcs`, `azblob`),
    /// or the [`StorageBackend::name`](crate::StorageBackend::name) of a backend of the
    /// program's own.
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

impl Capabilities {
    /// What the backend that opened `opened` can do.
    pub(crate) fn of(opened: &Opened) -> Capabilities {
        let native = opened.operator.info().capability();
        Capabilities {
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
            local_walker: opened.local_root.is_some(),
        }
    }
}
