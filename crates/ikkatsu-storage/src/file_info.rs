//! [`FileInfo`]: what a walk reports about one file, and what the overwrite flow records.

use std::hash::{Hash, Hasher};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One file found on a storage.
///
/// Equality, hashing and the serialized form cover what every backend can report (path,
/// size, times, etag, version, content type); the [`LocalStamp`] of a local file is left out
/// of all three.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// The local file system's identity and status-change time of the file, when it was
    /// read from the local file system (see [`FileInfo::same_file_as`]). Never serialized:
    /// it changes with the flow's own rename, so a backlog, a journal or a status store
    /// that kept it would see every replaced file as changed.
    #[serde(skip)]
    pub local: Option<LocalStamp>,
}

/// What only the local file system tells about a file: which file it is (device and inode)
/// and when its inode last changed (`ctime`: any write, truncation, `utimensat`, `chmod`,
/// rename, link). A program can restore a file's size and modification time after editing
/// it, but not its `ctime`; an editor that saves through a new file changes the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalStamp {
    /// The device of the file system.
    pub device: u64,
    /// The inode number.
    pub inode: u64,
    /// The status-change time (`ctime`): seconds since the epoch.
    pub changed_seconds: i64,
    /// The status-change time (`ctime`): nanoseconds within the second.
    pub changed_nanos: i64,
}

impl LocalStamp {
    /// The stamp of a local file from its metadata (`None` outside Unix).
    pub fn of(meta: &std::fs::Metadata) -> Option<LocalStamp> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(LocalStamp {
                device: meta.dev(),
                inode: meta.ino(),
                changed_seconds: meta.ctime(),
                changed_nanos: meta.ctime_nsec(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }
}

impl PartialEq for FileInfo {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
            && self.size == other.size
            && self.modified == other.modified
            && self.etag == other.etag
            && self.version == other.version
            && self.content_type == other.content_type
    }
}

impl Eq for FileInfo {}

impl Hash for FileInfo {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.path.hash(state);
        self.size.hash(state);
        self.modified.hash(state);
        self.etag.hash(state);
        self.version.hash(state);
        self.content_type.hash(state);
    }
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
            local: None,
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

    /// [`FileInfo::same_content_as`], and when both were read from the local file system,
    /// the same file (device and inode) with the same status-change time: an edit that
    /// kept the size and restored the modification time, or a file saved anew under the
    /// same name, is a different file. What a conditional replacement on the local file
    /// system compares.
    pub fn same_file_as(&self, other: &FileInfo) -> bool {
        self.same_content_as(other)
            && match (&self.local, &other.local) {
                (Some(a), Some(b)) => a == b,
                _ => true,
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

    #[test]
    fn local_stamps_decide_sameness_of_files_but_not_equality() {
        let stamp = LocalStamp {
            device: 1,
            inode: 2,
            changed_seconds: 3,
            changed_nanos: 4,
        };
        let mut a = FileInfo::new("f", 7);
        a.local = Some(stamp);
        let mut b = a.clone();
        assert!(a.same_file_as(&b));
        b.local = Some(LocalStamp {
            changed_nanos: 5,
            ..stamp
        });
        assert!(a.same_content_as(&b), "size and time are the same");
        assert!(!a.same_file_as(&b), "the ctime differs");
        b.local = Some(LocalStamp { inode: 9, ..stamp });
        assert!(!a.same_file_as(&b), "another inode");
        b.local = None;
        assert!(
            a.same_file_as(&b),
            "without two stamps size and time decide"
        );
        assert_eq!(a, b, "the stamp is not part of equality");
    }
}
