//! [`LocalFiles`]: blocking, direct access to the files of a local storage, for callers that
//! do many small file operations on their own threads (the overwrite flow's in-place path)
//! and cannot afford a trip through OpenDAL's layers and the async runtime for each.
//!
//! The same rules as [`Storage`]'s apply: paths are relative, `/`-separated and checked with
//! [`validate_relative_path`](crate::validate_relative_path); a conditional replacement
//! writes beside the file (under the same hidden temporary names as
//! [`Storage::write_if_unchanged`], so [`Storage::clean_interrupted_write`] and
//! [`LocalFiles::clean_interrupted_writes`] find them), compares, and renames.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ikkatsu_core::{Error, ErrorKind, Result};

use crate::file_info::{FileInfo, LocalStamp};
use crate::path::{join_local, temp_sibling, temp_sibling_prefix};
use crate::storage::Storage;

/// Blocking, direct access to the files of a local storage ([`Storage::local_files`]), for
/// callers that do many small file operations on their own threads. Paths are relative and
/// checked as everywhere; replacements are written beside the file under the hidden
/// temporary names of [`Storage::write_if_unchanged`], compared and renamed. Every method
/// does file-system calls on the calling thread: from async code, call them inside
/// `spawn_blocking`.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    root: PathBuf,
    url: String,
}

/// One replacement for [`LocalFiles::replace_all_if_unchanged`].
#[derive(Debug, Clone)]
pub struct Replacement {
    /// The file to replace, relative to the storage root.
    pub path: String,
    /// The new content: a local file on the same file system, usually from
    /// [`LocalFiles::temp_sibling`]. It is renamed over `path`, or removed on a conflict.
    pub new: PathBuf,
    /// What `path` must still be to be replaced: its size and modification time, and
    /// when `expected` was read from the local file system ([`LocalFiles::stat`], the
    /// walker), the same inode with the same status-change time ([`FileInfo::same_file_as`]).
    pub expected: FileInfo,
}

/// Where a path reached through a symbolic link really is ([`LocalFiles::resolve_link`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    /// The real, canonical local path of the file.
    pub real: PathBuf,
    /// The real path relative to the storage root, `/`-separated, when the link points
    /// inside the root; `None` when it leads outside.
    pub in_root: Option<String>,
}

impl Storage {
    /// Direct, blocking access to this storage's files when it is the local file system
    /// (`None` for every other backend).
    pub fn local_files(&self) -> Option<LocalFiles> {
        self.local_root().map(|root| LocalFiles {
            root: root.to_path_buf(),
            url: self.url().to_string(),
        })
    }
}

impl LocalFiles {
    /// The storage's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The local path of the relative `path`, after checking it.
    pub fn path(&self, path: &str) -> Result<PathBuf> {
        join_local(&self.root, path).map_err(|e| e.context(format!("storage {}", self.url)))
    }

    /// What is known about the file at `path` (size and modification time, symbolic links
    /// followed), as [`Storage::stat`] and the walker report it, with its
    /// [`LocalStamp`](crate::LocalStamp) (inode and ctime) for a conditional replacement. A missing file is
    /// [`ErrorKind::NotFound`], a directory [`ErrorKind::InvalidState`].
    pub fn stat(&self, path: &str) -> Result<FileInfo> {
        let local = self.path(path)?;
        let meta = std::fs::metadata(&local).map_err(|e| self.io_error("stat", path, e))?;
        if meta.is_dir() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "storage {}: {path:?} is a directory, a file was expected",
                    self.url
                ),
            ));
        }
        Ok(local_file_info(path.to_string(), &meta))
    }

    /// Whether `path` is reached through a symbolic link (the file is a link, or one of the
    /// directories on its way below the root is) and where it really is; `None` for a plain
    /// path, or one that does not exist yet below plain directories (writing there creates
    /// a file inside the root). The root itself may be a link: paths are resolved against
    /// its real location. A dangling link counts as leading outside the root.
    pub fn resolve_link(&self, path: &str) -> Result<Option<LinkTarget>> {
        self.path(path)?;
        let root = std::fs::canonicalize(&self.root)
            .map_err(|e| Error::io(format!("storage {}: resolving its root", self.url), e))?;
        let mut current = root.clone();
        let mut parts = path.split('/');
        while let Some(part) = parts.next() {
            current.push(part);
            let meta = match std::fs::symlink_metadata(&current) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(self.io_error("resolve", path, e)),
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            let rest: Vec<&str> = parts.collect();
            let real = match std::fs::canonicalize(&current) {
                Ok(mut real) => {
                    real.extend(&rest);
                    real
                }
                // Dangling: where it points, as written in the link.
                Err(_) => {
                    let mut real = std::fs::read_link(&current)
                        .map_err(|e| self.io_error("resolve", path, e))?;
                    if real.is_relative()
                        && let Some(dir) = current.parent()
                    {
                        real = dir.join(real);
                    }
                    real.extend(&rest);
                    return Ok(Some(LinkTarget {
                        real,
                        in_root: None,
                    }));
                }
            };
            // The rest of the way may hold further links: resolve what exists of it.
            let real = std::fs::canonicalize(&real).unwrap_or(real);
            let in_root = real.strip_prefix(&root).ok().and_then(|rel| {
                let parts: Option<Vec<&str>> =
                    rel.components().map(|c| c.as_os_str().to_str()).collect();
                parts.map(|parts| parts.join("/"))
            });
            return Ok(Some(LinkTarget { real, in_root }));
        }
        Ok(None)
    }

    /// A fresh hidden name beside `path` to write new content to before it replaces `path`.
    /// Nothing is created.
    pub fn temp_sibling(&self, path: &str) -> Result<PathBuf> {
        self.path(&temp_sibling(path))
    }

    /// Replaces each file with its new content if it is unchanged, in order, and returns
    /// one result per replacement: the replaced file's info (the new content's size and
    /// modification time: what the next walk sees), or an [`ErrorKind::Conflict`] error
    /// when the file changed or vanished since `expected` was taken (the new content is
    /// then removed and the file left alone).
    ///
    /// With `durable`, the new contents are first flushed to disk, all at once (see
    /// [`LocalFiles::flush_new_contents`]).
    ///
    /// The error of the whole call (`Err`) is a failure to flush; no file was replaced.
    pub fn replace_all_if_unchanged(
        &self,
        replacements: &[Replacement],
        durable: bool,
    ) -> Result<Vec<Result<FileInfo>>> {
        let news = self.flush_new_contents(replacements, durable, &[])?;
        Ok(replacements
            .iter()
            .zip(news)
            .map(|(r, new)| new.and_then(|new| self.replace_if_unchanged(r, new)))
            .collect())
    }

    /// The first half of [`LocalFiles::replace_all_if_unchanged`]: what each new content
    /// will be once it has replaced its file (its size and modification time: a rename
    /// keeps them), and with `durable`, the new contents flushed to disk, all at once, with
    /// the files of `also` (other files the caller needs durable at the same time, for
    /// example a journal, with their directory entries): on Linux one `syncfs` per file
    /// system holding some of them, elsewhere one `fdatasync` per file. Then a crash can
    /// never leave a replaced file with content that never reached the disk.
    ///
    /// A new content that is missing or not a regular file is an `Err` in its place (and is
    /// not removed). The error of the whole call is a failure to flush.
    pub fn flush_new_contents(
        &self,
        replacements: &[Replacement],
        durable: bool,
        also: &[&Path],
    ) -> Result<Vec<Result<FileInfo>>> {
        let metas: Vec<Result<std::fs::Metadata>> = replacements
            .iter()
            .map(|r| {
                let meta = std::fs::metadata(&r.new).map_err(|e| {
                    Error::io(
                        format!(
                            "storage {}: the new content of {:?} at {}",
                            self.url,
                            r.path,
                            r.new.display()
                        ),
                        e,
                    )
                })?;
                if meta.is_file() {
                    Ok(meta)
                } else {
                    Err(Error::new(
                        ErrorKind::InvalidState,
                        format!(
                            "storage {}: the new content of {:?} at {} is not a regular file",
                            self.url,
                            r.path,
                            r.new.display()
                        ),
                    ))
                }
            })
            .collect();
        if durable {
            let written: Vec<(&Path, &std::fs::Metadata)> = replacements
                .iter()
                .zip(&metas)
                .filter_map(|(r, m)| m.as_ref().ok().map(|m| (r.new.as_path(), m)))
                .collect();
            sync_files(&written, also).map_err(|e| {
                Error::io(
                    format!("storage {}: flushing new file contents to disk", self.url),
                    e,
                )
            })?;
        }
        Ok(replacements
            .iter()
            .zip(metas)
            .map(|(r, meta)| meta.map(|meta| local_file_info(r.path.clone(), &meta)))
            .collect())
    }

    /// The second half of [`LocalFiles::replace_all_if_unchanged`], for one replacement:
    /// renames the new content over the file if the file still is what `r.expected`
    /// describes, and returns `new_info` (from [`LocalFiles::flush_new_contents`]). On any
    /// error the new content is removed and the file left alone; a changed or vanished
    /// file is an [`ErrorKind::Conflict`].
    pub fn replace_if_unchanged(&self, r: &Replacement, new_info: FileInfo) -> Result<FileInfo> {
        match self.replace_one(r) {
            Ok(()) => Ok(new_info),
            Err(e) => {
                let _ = std::fs::remove_file(&r.new);
                Err(e)
            }
        }
    }

    fn replace_one(&self, r: &Replacement) -> Result<()> {
        let target = self.path(&r.path)?;
        let current = match std::fs::metadata(&target) {
            Ok(meta) if meta.is_file() => local_file_info(r.path.clone(), &meta),
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "storage {}: {:?} is no longer a file; not overwriting it",
                        self.url, r.path
                    ),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "storage {}: {:?} was deleted since it was read; not writing it",
                        self.url, r.path
                    ),
                )
                .with_source(e));
            }
            Err(e) => return Err(self.io_error("stat", &r.path, e)),
        };
        if current.same_content_as(&r.expected) && !current.same_file_as(&r.expected) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "storage {}: {:?} changed since it was read (same size and modification time, \
                     but it was rewritten: its inode or status-change time differs); not overwriting it",
                    self.url, r.path
                ),
            ));
        }
        if !current.same_content_as(&r.expected) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "storage {}: {:?} changed since it was read (size {} -> {}, modified {:?} -> {:?}); not overwriting it",
                    self.url,
                    r.path,
                    r.expected.size,
                    current.size,
                    r.expected.modified,
                    current.modified
                ),
            ));
        }
        std::fs::rename(&r.new, &target).map_err(|e| self.io_error("rename", &r.path, e))
    }

    /// Removes what interrupted conditional writes of `paths` left beside them (their
    /// hidden temporary copies), reading each directory once. Returns how many were
    /// removed.
    pub fn clean_interrupted_writes<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Result<u64> {
        let mut by_dir: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
        for path in paths {
            let local = self.path(path)?;
            let prefix = temp_sibling_prefix(path);
            let name = prefix.rsplit('/').next().unwrap_or(&prefix).to_string();
            let dir = local.parent().unwrap_or(&self.root).to_path_buf();
            by_dir.entry(dir).or_default().insert(name);
        }
        let mut removed = 0;
        for (dir, prefixes) in by_dir {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::io(
                        format!("storage {}: listing {}", self.url, dir.display()),
                        e,
                    ));
                }
            };
            for entry in entries {
                let entry = entry.map_err(|e| {
                    Error::io(
                        format!("storage {}: listing {}", self.url, dir.display()),
                        e,
                    )
                })?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !name.ends_with(".tmp") || !name.starts_with('.') {
                    continue;
                }
                // Prefixes are `.NAME.ikkatsu-`: `.a.ikkatsu-` never matches `.ab.ikkatsu-…`.
                if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(Error::io(
                                format!(
                                    "storage {}: removing {}",
                                    self.url,
                                    entry.path().display()
                                ),
                                e,
                            ));
                        }
                    }
                }
            }
        }
        Ok(removed)
    }

    fn io_error(&self, op: &str, path: &str, e: std::io::Error) -> Error {
        Error::io(format!("storage {}: {op} {path:?}", self.url), e)
    }
}

/// The [`FileInfo`] of a local file from its metadata: what the walker, [`LocalFiles::stat`]
/// and the status store compare.
pub(crate) fn local_file_info(path: String, meta: &std::fs::Metadata) -> FileInfo {
    let mut info = FileInfo::new(path, meta.len());
    info.modified = meta.modified().ok().map(DateTime::<Utc>::from);
    info.local = LocalStamp::of(meta);
    info
}

/// Flushes the contents of the freshly written `files`, and the files of `also` with their
/// directory entries, to disk.
#[cfg(target_os = "linux")]
fn sync_files(files: &[(&Path, &std::fs::Metadata)], also: &[&Path]) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;

    // One syncfs per file system holding some of them: it waits for every dirty page and
    // inode of that file system, ours included, in one journal commit. (One fdatasync per
    // file, even from many threads at once, costs about twice the system time.)
    let mut devices = BTreeSet::new();
    let mut others = Vec::with_capacity(also.len());
    for path in also {
        others.push((*path, std::fs::metadata(path)?));
    }
    let all = files
        .iter()
        .map(|(path, meta)| (*path, *meta))
        .chain(others.iter().map(|(path, meta)| (*path, meta)));
    for (path, meta) in all {
        if devices.insert(meta.dev()) {
            let file = std::fs::File::open(path)?;
            // SAFETY: `file` is an open descriptor for the duration of the call.
            if unsafe { libc::syncfs(file.as_raw_fd()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Flushes the contents of the freshly written `files`, and the files of `also` with their
/// directory entries, to disk.
#[cfg(not(target_os = "linux"))]
fn sync_files(files: &[(&Path, &std::fs::Metadata)], also: &[&Path]) -> std::io::Result<()> {
    sync_each(files)?;
    for path in also {
        if std::fs::metadata(path)?.is_dir() {
            // Directories can be synced on Unix only; elsewhere their entries are durable
            // with the files.
            #[cfg(unix)]
            std::fs::File::open(path)?.sync_all()?;
        } else {
            std::fs::File::open(path)?.sync_all()?;
        }
    }
    Ok(())
}

/// `fdatasync` of each file, from several threads at once: the file system commits the
/// flushes that arrive together in one journal transaction.
#[cfg(not(target_os = "linux"))]
fn sync_each(files: &[(&Path, &std::fs::Metadata)]) -> std::io::Result<()> {
    const THREADS: usize = 16;
    if files.is_empty() {
        return Ok(());
    }
    let chunk = files.len().div_ceil(THREADS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> std::io::Result<()> {
                    for (path, _) in part {
                        std::fs::File::open(path)?.sync_data()?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a flushing thread panicked")))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (tempfile::TempDir, Storage, LocalFiles) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path().to_str().expect("utf-8")).expect("open");
        let local = storage.local_files().expect("local");
        (dir, storage, local)
    }

    #[tokio::test]
    async fn stat_matches_the_storage_and_replacements_are_conditional() {
        let (dir, storage, local) = storage();
        std::fs::create_dir_all(dir.path().join("d")).expect("mkdir");
        std::fs::write(dir.path().join("d/a.txt"), "a").expect("write");
        std::fs::write(dir.path().join("b.txt"), "b").expect("write");
        let a = local.stat("d/a.txt").expect("stat");
        assert_eq!(a, storage.stat("d/a.txt").await.expect("stat"));
        assert_eq!(
            local.stat("missing").expect_err("missing").kind(),
            ErrorKind::NotFound
        );
        assert!(local.stat("../x").is_err());
        let b = local.stat("b.txt").expect("stat");

        let new_a = local.temp_sibling("d/a.txt").expect("temp");
        assert!(new_a.starts_with(dir.path().join("d")));
        std::fs::write(&new_a, "AAA").expect("write");
        let new_b = local.temp_sibling("b.txt").expect("temp");
        std::fs::write(&new_b, "BBB").expect("write");
        // Someone else changes b.txt meanwhile.
        std::fs::write(dir.path().join("b.txt"), "someone else").expect("write");
        let results = local
            .replace_all_if_unchanged(
                &[
                    Replacement {
                        path: "d/a.txt".into(),
                        new: new_a.clone(),
                        expected: a,
                    },
                    Replacement {
                        path: "b.txt".into(),
                        new: new_b.clone(),
                        expected: b,
                    },
                ],
                true,
            )
            .expect("flushed");
        let replaced = results[0].as_ref().expect("a replaced");
        assert_eq!(replaced, &storage.stat("d/a.txt").await.expect("stat"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("d/a.txt")).expect("read"),
            "AAA"
        );
        let err = results[1].as_ref().expect_err("b in conflict");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b.txt")).expect("read"),
            "someone else"
        );
        assert!(!new_a.exists() && !new_b.exists(), "no temporary file left");
    }

    #[tokio::test]
    async fn interrupted_writes_are_cleaned_per_directory() {
        let (dir, _storage, local) = storage();
        std::fs::create_dir_all(dir.path().join("d")).expect("mkdir");
        for name in ["d/a.txt", "d/ab.txt", "c.txt"] {
            std::fs::write(dir.path().join(name), "x").expect("write");
        }
        for path in ["d/a.txt", "d/a.txt", "c.txt", "d/ab.txt"] {
            std::fs::write(local.temp_sibling(path).expect("temp"), "partial").expect("write");
        }
        std::fs::write(dir.path().join("d/.other.tmp"), "keep").expect("write");
        assert_eq!(
            local
                .clean_interrupted_writes(["d/a.txt", "c.txt"])
                .expect("clean"),
            3
        );
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join("d"))
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 4, "{left:?}");
        assert!(left.iter().any(|n| n.starts_with(".ab.txt.ikkatsu-")));
    }
}
