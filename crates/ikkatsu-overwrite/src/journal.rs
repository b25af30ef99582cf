//! The journal of in-flight uploads: an entry is made durable before a file is uploaded and
//! removed after its status is recorded. After a crash, [`Journal::pending`] lists the files
//! whose upload may or may not have happened; the flow compares each with the storage to
//! decide, so that no file is transformed twice.
//!
//! One small file per in-flight upload, in a directory: the journal never holds more
//! entries than there are workers.

use std::path::{Path, PathBuf};

use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::FileInfo;
use serde::{Deserialize, Serialize};

/// One in-flight upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The source file as downloaded (the status store's key is its path).
    pub source: FileInfo,
    /// The target file before the upload (`None`: it did not exist).
    pub before: Option<FileInfo>,
}

/// A directory of in-flight upload records.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating it if needed) the journal in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|err| Error::io(format_args!("journal directory `{}`", dir.display()), err))?;
        Ok(Journal { dir })
    }

    fn entry_path(&self, path: &str) -> PathBuf {
        // FNV-1a 64 of the path: a stable, file-system-safe name.
        let mut hash: u64 = 0xcbf29ce484222325;
        for byte in path.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x100000001b3);
        }
        self.dir.join(format!("{hash:016x}.json"))
    }

    /// Records, durably, that the upload of `entry.source.path` is about to start.
    pub async fn begin(&self, entry: &JournalEntry) -> Result<()> {
        let final_path = self.entry_path(&entry.source.path);
        let temp = final_path.with_extension("tmp");
        let bytes = serde_json::to_vec(entry)?;
        let io = |err| Error::io(format_args!("journal entry `{}`", temp.display()), err);
        let mut file = tokio::fs::File::create(&temp).await.map_err(io)?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &bytes)
            .await
            .map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        tokio::fs::rename(&temp, &final_path).await.map_err(io)?;
        Ok(())
    }

    /// Removes the record of `path`'s upload.
    pub async fn end(&self, path: &str) -> Result<()> {
        let entry = self.entry_path(path);
        match tokio::fs::remove_file(&entry).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(Error::io(
                format_args!("journal entry `{}`", entry.display()),
                err,
            )),
        }
    }

    /// The uploads that were begun and not ended.
    pub fn pending(&self) -> Result<Vec<JournalEntry>> {
        let io = |err| {
            Error::io(
                format_args!("journal directory `{}`", self.dir.display()),
                err,
            )
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => {
                    let bytes = std::fs::read(&path).map_err(|err| {
                        Error::io(format_args!("journal entry `{}`", path.display()), err)
                    })?;
                    let parsed: JournalEntry = serde_json::from_slice(&bytes).map_err(|err| {
                        Error::new(
                            ErrorKind::Parse,
                            format!("journal entry `{}` is corrupt: {err}; delete it after checking the file it names", path.display()),
                        )
                    })?;
                    out.push(parsed);
                }
                // A torn write: the upload had not started.
                Some("tmp") => {
                    let _ = std::fs::remove_file(&path);
                }
                _ => {}
            }
        }
        out.sort_by(|a, b| a.source.path.cmp(&b.source.path));
        Ok(out)
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn begin_end_pending() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("j")).unwrap();
        let a = JournalEntry {
            source: FileInfo::new("dir/a b.txt", 3),
            before: None,
        };
        let b = JournalEntry {
            source: FileInfo::new("c.txt", 4),
            before: Some(FileInfo::new("c.txt", 4)),
        };
        journal.begin(&a).await.unwrap();
        journal.begin(&b).await.unwrap();
        assert_eq!(journal.pending().unwrap(), vec![b.clone(), a.clone()]);
        journal.end("c.txt").await.unwrap();
        journal.end("c.txt").await.unwrap();
        assert_eq!(journal.pending().unwrap(), vec![a]);
        std::fs::write(journal.dir().join("x.json"), "{").unwrap();
        let err = journal.pending().unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }
}
