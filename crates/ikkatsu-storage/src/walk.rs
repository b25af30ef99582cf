//! The streaming walker: every file under a storage root, filtered by globs, depth and
//! hidden names, with memory that does not grow with the number of files.

use std::fs::ReadDir;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ikkatsu_core::{Error, ErrorKind, Result};
use tokio::sync::mpsc;

use crate::file_info::FileInfo;
use crate::path::validate_relative_path;
use crate::storage::{Storage, file_info};

/// How many entries may wait between the walker and its consumer.
const CHANNEL_CAPACITY: usize = 1024;

/// What [`Storage::walk`] yields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkOptions {
    /// Globs on the whole relative path; a file is kept when it matches any of them. Empty:
    /// every file. `*` and `?` do not cross `/`; `**` matches any number of directories
    /// (`**/*.csv` is every CSV file at any depth, `*.csv` only those at the top).
    pub include: Vec<String>,
    /// Globs on the whole relative path; a file matching any of them is dropped.
    pub exclude: Vec<String>,
    /// At most this many path components in a yielded file (1: files directly in the root).
    /// `None`: no limit.
    pub max_depth: Option<usize>,
    /// Follow symbolic links to directories and files. A link to a directory that is already
    /// on the current path (a loop) is not entered. When false, symbolic links are neither
    /// followed nor yielded.
    pub follow_symlinks: bool,
    /// Yield files whose name, or the name of one of whose directories, starts with `.`.
    pub include_hidden: bool,
}

impl WalkOptions {
    /// Every non-hidden file, any depth, symbolic links not followed.
    pub fn new() -> Self {
        WalkOptions::default()
    }

    /// Adds an include glob.
    pub fn include(mut self, glob: impl Into<String>) -> Self {
        self.include.push(glob.into());
        self
    }

    /// Adds an exclude glob.
    pub fn exclude(mut self, glob: impl Into<String>) -> Self {
        self.exclude.push(glob.into());
        self
    }

    /// Sets the maximum depth.
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = Some(depth);
        self
    }

    /// Sets whether symbolic links are followed.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }

    /// Sets whether hidden files and directories are walked.
    pub fn include_hidden(mut self, include: bool) -> Self {
        self.include_hidden = include;
        self
    }

    /// Compiles the globs; an invalid glob is a [`ErrorKind::Config`] error naming it.
    pub fn compile(&self) -> Result<PathFilter> {
        Ok(PathFilter {
            include: (!self.include.is_empty())
                .then(|| glob_set(&self.include, "include"))
                .transpose()?,
            exclude: (!self.exclude.is_empty())
                .then(|| glob_set(&self.exclude, "exclude"))
                .transpose()?,
            max_depth: self.max_depth,
            include_hidden: self.include_hidden,
        })
    }
}

fn glob_set(globs: &[String], what: &str) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let compiled = GlobBuilder::new(glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| {
                Error::config(format!(
                    "invalid {what} glob {glob:?}: {e}; fix the pattern"
                ))
                .with_source(e)
            })?;
        builder.add(compiled);
    }
    builder
        .build()
        .map_err(|e| Error::config(format!("invalid {what} globs: {e}")).with_source(e))
}

/// The compiled filter of a walk: globs, depth and hidden names.
#[derive(Debug, Clone)]
pub struct PathFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    max_depth: Option<usize>,
    include_hidden: bool,
}

impl PathFilter {
    /// Whether the file at the relative `path` is kept.
    pub fn matches(&self, path: &str) -> bool {
        if let Some(max) = self.max_depth
            && path.split('/').count() > max
        {
            return false;
        }
        if !self.include_hidden && path.split('/').any(|c| c.starts_with('.')) {
            return false;
        }
        if let Some(include) = &self.include
            && !include.is_match(path)
        {
            return false;
        }
        !self.exclude.as_ref().is_some_and(|e| e.is_match(path))
    }

    /// Whether a directory with `depth` components (and the given name) may hold kept files.
    fn descend(&self, name: &str, depth: usize) -> bool {
        if !self.include_hidden && name.starts_with('.') {
            return false;
        }
        self.max_depth.is_none_or(|max| depth < max)
    }
}

impl Storage {
    /// Every file under the storage root that `options` keeps, as a stream. Directories are
    /// never yielded; an unreadable directory or a bad name is an `Err` item and the walk
    /// goes on. Needs a tokio runtime.
    ///
    /// The local file system is read directly on a blocking thread, depth first with a stack
    /// of open directories, into a bounded channel; other backends use OpenDAL's recursive
    /// lister. Either way memory does not grow with the number of files.
    pub fn walk(&self, options: WalkOptions) -> Result<BoxStream<'static, Result<FileInfo>>> {
        let filter = options.compile()?;
        match self.local_root() {
            Some(root) => {
                let handle = tokio::runtime::Handle::try_current().map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidState,
                        "Storage::walk must be called inside a tokio runtime",
                    )
                    .with_source(e)
                })?;
                let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY / WALK_BATCH + 1);
                let walker = LocalWalker {
                    root: root.to_path_buf(),
                    url: self.url().to_string(),
                    filter,
                    follow_symlinks: options.follow_symlinks,
                    tx,
                };
                handle.spawn_blocking(move || walker.run());
                Ok(receiver_stream(rx).flat_map(futures::stream::iter).boxed())
            }
            None => Ok(self.walk_lister(filter)),
        }
    }

    fn walk_lister(&self, filter: PathFilter) -> BoxStream<'static, Result<FileInfo>> {
        let storage = self.clone();
        let listing = futures::stream::once(async move {
            let lister = storage
                .operator()
                .lister_with("")
                .recursive(true)
                .await
                .map_err(|e| crate::error::parse_error(e, "list", "", storage.url()))?;
            let url = storage.url().to_string();
            let entries = lister
                .map_err(move |e| crate::error::parse_error(e, "list", "", &url))
                .try_filter_map(move |entry| {
                    let storage = storage.clone();
                    let filter = filter.clone();
                    async move {
                        if entry.metadata().is_dir() || entry.path().ends_with('/') {
                            return Ok(None);
                        }
                        let path = entry.path().trim_start_matches('/').to_string();
                        validate_relative_path(&path).map_err(|e| {
                            e.context(format!("storage {}: listing", storage.url()))
                        })?;
                        if !filter.matches(&path) {
                            return Ok(None);
                        }
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
                });
            Ok::<_, Error>(entries)
        });
        listing
            .map(|result| match result {
                Ok(entries) => entries.boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .flatten()
            .boxed()
    }
}

fn receiver_stream<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// One open directory on the walker's stack.
struct Frame {
    /// Relative path of the directory, empty for the root, else ending without `/`.
    rel: String,
    depth: usize,
    entries: ReadDir,
    /// (device, inode) of the directory, for loop detection.
    id: Option<(u64, u64)>,
}

struct LocalWalker {
    root: PathBuf,
    url: String,
    filter: PathFilter,
    follow_symlinks: bool,
    tx: mpsc::Sender<Vec<Result<FileInfo>>>,
}

/// Files sent to the consumer at once: one channel hand-off per batch, not per file.
const WALK_BATCH: usize = 256;

impl LocalWalker {
    /// Sends a batch; false when the consumer is gone.
    fn send_batch(&self, batch: Vec<Result<FileInfo>>) -> bool {
        batch.is_empty() || self.tx.blocking_send(batch).is_ok()
    }

    fn io_error(&self, path: &Path, e: std::io::Error) -> Error {
        Error::io(format!("storage {}: walk {}", self.url, path.display()), e)
    }

    fn open(&self, dir: &Path, rel: String, depth: usize) -> std::result::Result<Frame, Error> {
        let id = dir_id(dir).map_err(|e| self.io_error(dir, e))?;
        let entries = std::fs::read_dir(dir).map_err(|e| self.io_error(dir, e))?;
        Ok(Frame {
            rel,
            depth,
            entries,
            id: Some(id),
        })
    }

    fn run(self) {
        let mut batch = Vec::with_capacity(WALK_BATCH);
        if self.walk(&mut batch) {
            self.send_batch(batch);
        }
    }

    /// Walks, filling `batch` and sending it whenever it is full. Returns false when the
    /// consumer is gone.
    fn walk(&self, batch: &mut Vec<Result<FileInfo>>) -> bool {
        let mut send = |item: Result<FileInfo>| {
            batch.push(item);
            if batch.len() >= WALK_BATCH {
                let full = std::mem::replace(batch, Vec::with_capacity(WALK_BATCH));
                return self.send_batch(full);
            }
            true
        };
        let root = self.root.clone();
        let mut stack = match self.open(&root, String::new(), 0) {
            Ok(frame) => vec![frame],
            Err(e) => {
                send(Err(e));
                return true;
            }
        };
        while let Some(frame) = stack.last_mut() {
            let Some(entry) = frame.entries.next() else {
                stack.pop();
                continue;
            };
            let depth = frame.depth + 1;
            let parent_rel = frame.rel.clone();
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let dir = root.join(&parent_rel);
                    if !send(Err(self.io_error(&dir, e))) {
                        return false;
                    }
                    continue;
                }
            };
            let full = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                let err = Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "storage {}: walk: the name {} is not UTF-8; rename it or exclude its directory",
                        self.url,
                        full.display()
                    ),
                );
                if !send(Err(err)) {
                    return false;
                }
                continue;
            };
            if !self.filter.include_hidden && name.starts_with('.') {
                continue;
            }
            let rel = if parent_rel.is_empty() {
                name.clone()
            } else {
                format!("{parent_rel}/{name}")
            };
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(e) => {
                    if !send(Err(self.io_error(&full, e))) {
                        return false;
                    }
                    continue;
                }
            };
            let meta = if file_type.is_symlink() {
                if !self.follow_symlinks {
                    continue;
                }
                match std::fs::metadata(&full) {
                    Ok(meta) => meta,
                    // A dangling link is not a file.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        if !send(Err(self.io_error(&full, e))) {
                            return false;
                        }
                        continue;
                    }
                }
            } else if file_type.is_dir() {
                if self.filter.descend(&name, depth) {
                    match self.open(&full, rel, depth) {
                        Ok(frame) => stack.push(frame),
                        Err(e) => {
                            if !send(Err(e)) {
                                return false;
                            }
                        }
                    }
                }
                continue;
            } else if file_type.is_file() {
                // Only files the globs keep are worth a stat.
                if !self.filter.matches(&rel) {
                    continue;
                }
                match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        if !send(Err(self.io_error(&full, e))) {
                            return false;
                        }
                        continue;
                    }
                }
            } else {
                continue;
            };
            if meta.is_dir() {
                // Reached through a followed symbolic link: enter it unless it is an ancestor.
                if !self.filter.descend(&name, depth) {
                    continue;
                }
                let id = id_of(&meta);
                if stack.iter().any(|f| f.id == Some(id)) {
                    tracing::debug!(path = %full.display(), "symbolic link loop not followed");
                    continue;
                }
                match self.open(&full, rel, depth) {
                    Ok(frame) => stack.push(frame),
                    Err(e) => {
                        if !send(Err(e)) {
                            return false;
                        }
                    }
                }
                continue;
            }
            if !meta.is_file() || !self.filter.matches(&rel) {
                continue;
            }
            let mut info = FileInfo::new(rel, meta.len());
            info.modified = meta.modified().ok().map(DateTime::<Utc>::from);
            if !send(Ok(info)) {
                return false;
            }
        }
        true
    }
}

#[cfg(unix)]
fn id_of(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn id_of(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

fn dir_id(dir: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(dir).map(|m| id_of(&m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn glob_semantics() {
        let f = WalkOptions::new()
            .include("**/*.txt")
            .exclude("skip/**")
            .compile()
            .unwrap();
        assert!(f.matches("a.txt"));
        assert!(f.matches("x/y/a.txt"));
        assert!(!f.matches("x/y/a.csv"));
        assert!(!f.matches("skip/a.txt"));
        assert!(!f.matches(".hidden/a.txt"));
        let top = WalkOptions::new().include("*.txt").compile().unwrap();
        assert!(top.matches("a.txt"));
        assert!(!top.matches("d/a.txt"), "* does not cross /");
        let depth = WalkOptions::new()
            .max_depth(2)
            .include_hidden(true)
            .compile()
            .unwrap();
        assert!(depth.matches("a/b"));
        assert!(depth.matches(".a/b"));
        assert!(!depth.matches("a/b/c"));
        let err = WalkOptions::new().include("a[").compile().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("a["));
    }

    proptest! {
        #[test]
        fn double_star_matches_any_depth(dirs in proptest::collection::vec("[a-z]{1,5}", 0..5), name in "[a-z]{1,5}") {
            let mut path = dirs.join("/");
            if !path.is_empty() { path.push('/'); }
            path.push_str(&name);
            path.push_str(".dat");
            let f = WalkOptions::new().include("**/*.dat").compile().unwrap();
            prop_assert!(f.matches(&path));
            let ex = WalkOptions::new().exclude("**").compile().unwrap();
            prop_assert!(!ex.matches(&path));
            let top = WalkOptions::new().include("*.dat").compile().unwrap();
            prop_assert_eq!(top.matches(&path), dirs.is_empty());
        }
    }
}
