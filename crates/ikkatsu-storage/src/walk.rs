//! The streaming walker: every file under a storage root, filtered by rclone-style rules,
//! size and age, depth and hidden names, with memory that does not grow with the number of files.

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use ikkatsu_core::{Error, ErrorKind, Result};
use tokio::sync::mpsc;

use crate::file_info::FileInfo;
use crate::filter::{PathFilter, WalkOptions};
use crate::local_walk;
use crate::path::validate_relative_path;
use crate::storage::Storage;

/// How many entries may wait between the walker and its consumer.
const CHANNEL_CAPACITY: usize = 1024;

impl Storage {
    /// Every file under the storage root that `options` keeps, as a stream. Directories are
    /// never yielded. On the local file system an unreadable directory or a bad name is an
    /// `Err` item and the walk goes on; on other backends a listing that fails after the
    /// storage's retries (server unreachable, credentials refused, connection lost in the
    /// middle) is an `Err` item that ends the stream, so a walk that ends without an error
    /// listed everything. Needs a tokio runtime.
    ///
    /// The local file system is read directly by several blocking threads in parallel (each
    /// depth first with a stack of open directories), into a bounded channel; object stores
    /// use their flat, paged listing; FTP, SFTP and WebDAV are listed one directory at a
    /// time, depth first. Either way memory does not grow with the number of files. The
    /// order of the files is not specified.
    pub fn walk(&self, options: WalkOptions) -> Result<BoxStream<'static, Result<FileInfo>>> {
        Ok(self
            .walk_batches(options)?
            .flat_map(futures::stream::iter)
            .boxed())
    }

    /// [`Storage::walk`] in batches (of a few hundred files), as the walker produces them:
    /// one hand-off per batch instead of one per file, for consumers that work in batches.
    /// No batch is empty.
    pub fn walk_batches(
        &self,
        options: WalkOptions,
    ) -> Result<BoxStream<'static, Vec<Result<FileInfo>>>> {
        self.walk_batches_with(options, true)
    }

    /// [`Storage::walk_batches`] for callers that only need the paths: on the local file
    /// system the kept files are not stat-ed (no system call per file beyond the directory
    /// reads) and their [`FileInfo`] holds the path only (size 0, no modification time).
    /// Other backends report what their listing gives, as [`Storage::walk`] does.
    pub fn walk_paths(
        &self,
        options: WalkOptions,
    ) -> Result<BoxStream<'static, Vec<Result<FileInfo>>>> {
        self.walk_batches_with(options, false)
    }

    fn walk_batches_with(
        &self,
        options: WalkOptions,
        stat_files: bool,
    ) -> Result<BoxStream<'static, Vec<Result<FileInfo>>>> {
        let filter = options.compile()?;
        let batches = match self.local_root() {
            Some(root) => {
                let handle = tokio::runtime::Handle::try_current().map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidState,
                        "Storage::walk must be called inside a tokio runtime",
                    )
                    .with_source(e)
                })?;
                let threads = local_walk::default_threads();
                let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY / local_walk::WALK_BATCH + threads);
                let settings = local_walk::WalkSettings {
                    root: root.to_path_buf(),
                    url: self.url().to_string(),
                    filter,
                    follow_symlinks: options.follow_symlinks,
                    counts: options.counts.clone(),
                    stat_files,
                    threads,
                };
                local_walk::spawn(&handle, settings, tx);
                receiver_stream(rx)
            }
            None => self
                .walk_lister(filter)
                .ready_chunks(local_walk::WALK_BATCH)
                .boxed(),
        };
        Ok(self.observed_stream("list", "", batches))
    }

    fn walk_lister(&self, filter: PathFilter) -> BoxStream<'static, Result<FileInfo>> {
        let storage = self.clone();
        crate::tree::list_tree(&storage, "")
            .try_filter_map(move |entry| {
                let storage = storage.clone();
                let filter = filter.clone();
                async move {
                    if entry.metadata().is_dir() || entry.path().ends_with('/') {
                        return Ok(None);
                    }
                    let path = entry.path().trim_start_matches('/').to_string();
                    validate_relative_path(&path)
                        .map_err(|e| e.context(format!("storage {}: listing", storage.url())))?;
                    if !filter.matches(&path) {
                        return Ok(None);
                    }
                    let meta = entry.metadata();
                    let info = if meta.is_file() && meta.last_modified().is_some() {
                        storage.info(&path, meta)
                    } else {
                        match storage.stat(&path).await {
                            Ok(info) => info,
                            // Deleted between listing and stat: not there any more.
                            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                            Err(e) => return Err(e),
                        }
                    };
                    Ok(filter.keeps_file_info(&info).then_some(info))
                }
            })
            .boxed()
    }
}

fn receiver_stream<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
