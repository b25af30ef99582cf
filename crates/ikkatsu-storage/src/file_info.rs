//! [`FileInfo`]: what a walk reports about one file, and what the overwrite flow records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One file found on a storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileInfo {
    /// Path relative to the storage root, `/`-separated, without a leading `/`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, where the backend reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<DateTime<Utc>>,
    /// Entity tag, where the backend has one (object stores, WebDAV).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Object version, where the backend keeps versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Content type, where the backend reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl FileInfo {
    /// A file of `size` bytes at `path`, with nothing else known.
    pub fn new(path: impl Into<String>, size: u64) -> Self {
        FileInfo {
            path: path.into(),
            size,
            modified: None,
            etag: None,
            version: None,
            content_type: None,
        }
    }

    /// The last component of the path.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Whether `other` describes the same content as far as the backend can tell: same size,
    /// and the same etag when both have one, else the same modification time.
    pub fn same_content_as(&self, other: &FileInfo) -> bool {
        if self.size != other.size {
            return false;
        }
        match (&self.etag, &other.etag) {
            (Some(a), Some(b)) => a == b,
            _ => self.modified == other.modified,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_sameness() {
        let mut a = FileInfo::new("dir/sub/file.txt", 10);
        assert_eq!(a.name(), "file.txt");
        assert_eq!(FileInfo::new("top", 1).name(), "top");
        let b = a.clone();
        assert!(a.same_content_as(&b));
        a.etag = Some("x".into());
        let mut c = a.clone();
        c.etag = Some("y".into());
        assert!(!a.same_content_as(&c));
        c.etag = None;
        assert!(a.same_content_as(&c), "without two etags the times decide");
        c.size = 11;
        assert!(!a.same_content_as(&c));
    }
}
