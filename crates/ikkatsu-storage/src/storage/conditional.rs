//! Conditional writes: [`Storage::write_if_unchanged`] refuses to clobber a file changed
//! since it was read, by the backend's own condition or by comparing and renaming; and the
//! hidden temporary copies it writes beside a file.

use std::path::Path;
use std::time::Instant;

use ikkatsu_core::{Error, ErrorKind, Result};

use super::transfer::{read_local, write_chunks};
use super::{ConditionalWrite, Storage};
use crate::file_info::FileInfo;
use crate::path::{split_dir, temp_sibling, temp_sibling_prefix};

impl Storage {
    /// Replaces the file at `path` with the local file `local`, but only if the file still
    /// is what `expected` describes (same size, and same etag, or same modification time when
    /// there is no etag). A changed or deleted file is refused with [`ErrorKind::Conflict`]
    /// and left untouched. See [`Capabilities::conditional_write`] for how strong the check
    /// is on this backend.
    pub async fn write_if_unchanged(
        &self,
        path: &str,
        local: &Path,
        expected: &FileInfo,
    ) -> Result<FileInfo> {
        self.observed(
            "write",
            path,
            async {
                let path = self.checked(path)?;
                let started = Instant::now();
                match (self.inner.capabilities.conditional_write, &expected.etag) {
                    (ConditionalWrite::IfMatch, Some(etag)) => {
                        self.upload_if(local, path, Condition::Etag(etag)).await?;
                    }
                    (ConditionalWrite::IfVersionMatch, _) if expected.version.is_some() => {
                        let version = expected.version.as_deref().unwrap_or_default();
                        self.upload_if(local, path, Condition::Version(version))
                            .await?;
                    }
                    (ConditionalWrite::StatCompareRename, _) => {
                        let temp = temp_sibling(path);
                        self.upload_unchecked(local, &temp).await?;
                        // The file is compared while the copy beside it is looked at: a rename keeps
                        // size, modification time and etag, so the copy's are the replaced file's.
                        let stat_temp = async {
                            self.inner
                                .op
                                .stat(&temp)
                                .await
                                .map_err(|e| self.err(e, "stat", &temp))
                        };
                        let result =
                            match tokio::try_join!(self.check_unchanged(path, expected), stat_temp)
                            {
                                Ok(((), meta)) => self
                                    .inner
                                    .op
                                    .rename(&temp, path)
                                    .await
                                    .map(|()| meta)
                                    .map_err(|e| self.err(e, "rename", path)),
                                Err(e) => Err(e),
                            };
                        return match result {
                            Ok(meta) => {
                                self.log_done("write-if-unchanged", path, None, started);
                                Ok(self.info(path, &meta))
                            }
                            Err(e) => {
                                let _ = self.inner.op.delete(&temp).await;
                                Err(e)
                            }
                        };
                    }
                    _ => {
                        self.check_unchanged(path, expected).await?;
                        self.upload_unchecked(local, path).await?;
                    }
                }
                self.log_done("write-if-unchanged", path, None, started);
                self.stat(path).await
            },
            |info| Some(info.size),
        )
        .await
    }

    /// Removes what a [`Storage::write_if_unchanged`] of `path` interrupted by a crash left
    /// beside it (its hidden temporary copies). Returns how many were removed.
    pub async fn clean_interrupted_write(&self, path: &str) -> Result<u64> {
        let path = self.checked(path)?;
        // Conditional writes by rename, and FTP uploads of ikkatsu's own, leave hidden
        // siblings `.NAME.ikkatsu-….tmp` when interrupted.
        if self.inner.capabilities.conditional_write != ConditionalWrite::StatCompareRename
            && self.inner.empty_files.is_none()
        {
            return Ok(0);
        }
        let (dir, _) = split_dir(path);
        let prefix = temp_sibling_prefix(path);
        let entries = match self
            .inner
            .op
            .list(if dir.is_empty() { "/" } else { dir })
            .await
        {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.err(e, "list", dir)),
        };
        let mut removed = 0;
        for entry in entries {
            let name = entry.path().trim_start_matches('/');
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                self.inner
                    .op
                    .delete(name)
                    .await
                    .map_err(|e| self.err(e, "delete", name))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn upload_if(&self, local: &Path, path: &str, condition: Condition<'_>) -> Result<()> {
        let (_, chunks) = read_local(local).await?;
        let writer = self.inner.op.writer_with(path);
        let writer = match condition {
            Condition::Etag(etag) => writer.if_match(etag),
            Condition::Version(version) => writer.if_version_match(version),
        };
        let writer = writer.await.map_err(|e| self.conflict_or(e, path))?;
        write_chunks(writer, chunks, |e| self.conflict_or(e, path)).await?;
        Ok(())
    }

    /// A refused condition as a [`ErrorKind::Conflict`] that says what happened, or the
    /// error as it is.
    fn conflict_or(&self, err: opendal::Error, path: &str) -> Error {
        if err.kind() == opendal::ErrorKind::ConditionNotMatch {
            Error::new(
                ErrorKind::Conflict,
                format!(
                    "storage {}: {path:?} changed since it was read (the backend refused the \
                     conditional write); not overwriting it",
                    self.inner.url
                ),
            )
            .with_source(err)
        } else if err.kind() == opendal::ErrorKind::NotFound {
            Error::new(
                ErrorKind::Conflict,
                format!(
                    "storage {}: {path:?} was deleted since it was read; not writing it",
                    self.inner.url
                ),
            )
            .with_source(err)
        } else {
            self.err(err, "write", path)
        }
    }

    async fn check_unchanged(&self, path: &str, expected: &FileInfo) -> Result<()> {
        let current = match self.stat(path).await {
            Ok(current) => current,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "storage {}: {path:?} was deleted since it was read; not writing it",
                        self.inner.url
                    ),
                )
                .with_source(e));
            }
            Err(e) => return Err(e),
        };
        if current.same_content_as(expected) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "storage {}: {path:?} changed since it was read (size {} -> {}, modified {:?} -> {:?}); not overwriting it",
                    self.inner.url,
                    expected.size,
                    current.size,
                    expected.modified,
                    current.modified
                ),
            ))
        }
    }
}

/// What a conditional upload requires of the object it replaces.
enum Condition<'a> {
    /// The object's etag.
    Etag(&'a str),
    /// The object's version (GCS generation).
    Version(&'a str),
}
