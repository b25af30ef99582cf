//! The local file system walker: several threads read directories in parallel and hand the
//! files the filter keeps to the consumer in batches, through a bounded channel.
//!
//! Each thread walks depth first with its own stack of open directories (so memory is
//! bounded by the depth of the tree, not its width), and hands a subdirectory to the shared
//! queue instead of entering it when another thread is idle. Names are matched against the
//! rules before a file is stat-ed: a file the filter drops costs no system call beyond the
//! directory read.

use std::fs::ReadDir;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use ikkatsu_core::{Error, ErrorKind, Result};
use tokio::sync::mpsc;

use crate::file_info::FileInfo;
use crate::filter::{PathFilter, WalkCounts};
use crate::local::local_file_info;

/// Files sent to the consumer at once: one channel hand-off per batch, not per file.
pub(crate) const WALK_BATCH: usize = 256;

/// What the walker threads send: a batch of files and errors, in walk order per thread.
pub(crate) type Batch = Vec<Result<FileInfo>>;

/// The number of walker threads: the cores, at least 2 (directory reads wait on the disk
/// as often as they use a core), at most 8.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
}

/// How the walker reads the tree.
pub(crate) struct WalkSettings {
    pub(crate) root: PathBuf,
    pub(crate) url: String,
    pub(crate) filter: PathFilter,
    pub(crate) follow_symlinks: bool,
    pub(crate) counts: Option<WalkCounts>,
    /// Stat the kept files for their size and modification time (else: path only).
    pub(crate) stat_files: bool,
    pub(crate) threads: usize,
}

/// Starts walking on `settings.threads` blocking threads of `handle`'s runtime; batches go
/// to `tx`. The walk stops early when the receiver is dropped.
pub(crate) fn spawn(
    handle: &tokio::runtime::Handle,
    settings: WalkSettings,
    tx: mpsc::Sender<Batch>,
) {
    let WalkSettings {
        root,
        url,
        filter,
        follow_symlinks,
        counts,
        stat_files,
        threads,
    } = settings;
    let threads = threads.max(1);
    let shared = Arc::new(Shared {
        root: root.clone(),
        url,
        filter,
        follow_symlinks,
        counts,
        stat_files,
        threads,
        queue: Mutex::new(Queue {
            jobs: vec![Job {
                dir: root.clone(),
                rel: String::new(),
                depth: 0,
                ancestors: None,
            }],
            active: 0,
            finished: false,
        }),
        ready: Condvar::new(),
        stopped: AtomicBool::new(false),
        tx,
    });
    for _ in 0..threads {
        let shared = Arc::clone(&shared);
        handle.spawn_blocking(move || shared.run());
    }
}

/// A directory waiting in the shared queue.
struct Job {
    /// The directory.
    dir: PathBuf,
    /// Relative path of the directory, empty for the root.
    rel: String,
    depth: usize,
    /// The directories above it (itself excluded), for loop detection when following links.
    ancestors: Option<Arc<Ancestor>>,
}

/// One directory on the path from the root, by (device, inode).
struct Ancestor {
    id: (u64, u64),
    parent: Option<Arc<Ancestor>>,
}

fn is_ancestor(chain: &Option<Arc<Ancestor>>, id: (u64, u64)) -> bool {
    let mut next = chain.as_ref();
    while let Some(a) = next {
        if a.id == id {
            return true;
        }
        next = a.parent.as_ref();
    }
    false
}

struct Queue {
    jobs: Vec<Job>,
    /// Threads walking a job.
    active: usize,
    /// Every directory was read: the threads exit.
    finished: bool,
}

struct Shared {
    root: PathBuf,
    url: String,
    filter: PathFilter,
    follow_symlinks: bool,
    counts: Option<WalkCounts>,
    stat_files: bool,
    threads: usize,
    queue: Mutex<Queue>,
    ready: Condvar,
    /// The consumer is gone.
    stopped: AtomicBool,
    tx: mpsc::Sender<Batch>,
}

/// One open directory on a thread's stack.
struct Frame {
    rel: String,
    depth: usize,
    entries: ReadDir,
    /// This directory and those above it (only when following links).
    chain: Option<Arc<Ancestor>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn run(&self) {
        let mut batch = Vec::with_capacity(WALK_BATCH);
        while let Some(job) = self.next_job() {
            let keep_going = self.walk(job, &mut batch);
            let mut queue = self.lock();
            queue.active -= 1;
            if !keep_going {
                queue.finished = true;
            }
            if queue.finished || (queue.active == 0 && queue.jobs.is_empty()) {
                queue.finished = true;
                self.ready.notify_all();
            }
        }
        if !batch.is_empty() && !self.stopped.load(Ordering::Relaxed) {
            let _ = self.tx.blocking_send(batch);
        }
    }

    /// The next directory to walk; `None` when the walk is over.
    fn next_job(&self) -> Option<Job> {
        let mut queue = self.lock();
        loop {
            if queue.finished || self.stopped.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(job) = queue.jobs.pop() {
                queue.active += 1;
                return Some(job);
            }
            if queue.active == 0 {
                queue.finished = true;
                self.ready.notify_all();
                return None;
            }
            queue = self
                .ready
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Offers a subdirectory to idle threads; false when this thread should enter it itself.
    fn offer(&self, job: Job) -> std::result::Result<(), Job> {
        let mut queue = self.lock();
        let idle = self.threads - queue.active;
        if idle == 0 || queue.jobs.len() >= idle {
            return Err(job);
        }
        queue.jobs.push(job);
        drop(queue);
        self.ready.notify_one();
        Ok(())
    }

    /// Appends to the batch and sends it when full; false when the consumer is gone.
    fn push(&self, batch: &mut Batch, item: Result<FileInfo>) -> bool {
        batch.push(item);
        if batch.len() >= WALK_BATCH {
            let full = std::mem::replace(batch, Vec::with_capacity(WALK_BATCH));
            if self.tx.blocking_send(full).is_err() {
                self.stopped.store(true, Ordering::Relaxed);
                self.ready.notify_all();
                return false;
            }
        }
        true
    }

    /// Whether a symbolic link that is not followed leads to what the walk would read: a
    /// file the filter keeps, or a directory it would enter.
    fn would_read_link(&self, full: &Path, rel: &str, depth: usize) -> bool {
        match std::fs::metadata(full) {
            Ok(meta) if meta.is_dir() => self.filter.descend(rel, depth),
            Ok(meta) => meta.is_file() && self.filter.matches_in_kept_dir(rel),
            Err(_) => false,
        }
    }

    /// Warns about a symbolic link the walk does not follow, and counts it.
    fn link_skipped(&self, rel: &str, why: &str) {
        tracing::warn!(storage = %self.url, path = %rel, "symbolic link skipped: {why}");
        if let Some(counts) = &self.counts {
            counts.add_link_skipped();
        }
    }

    fn io_error(&self, path: &Path, e: std::io::Error) -> Error {
        Error::io(format!("storage {}: walk {}", self.url, path.display()), e)
    }

    fn open(
        &self,
        dir: &Path,
        rel: String,
        depth: usize,
        above: Option<Arc<Ancestor>>,
    ) -> Result<Frame> {
        let chain = if self.follow_symlinks {
            let meta = std::fs::metadata(dir).map_err(|e| self.io_error(dir, e))?;
            Some(Arc::new(Ancestor {
                id: id_of(&meta),
                parent: above,
            }))
        } else {
            None
        };
        let entries = std::fs::read_dir(dir).map_err(|e| self.io_error(dir, e))?;
        Ok(Frame {
            rel,
            depth,
            entries,
            chain,
        })
    }

    /// Enters the directory of `rel`: hands it to an idle thread, or pushes it on `stack`.
    fn enter(
        &self,
        stack: &mut Vec<Frame>,
        batch: &mut Batch,
        full: PathBuf,
        rel: String,
        depth: usize,
        above: Option<Arc<Ancestor>>,
    ) -> bool {
        let job = Job {
            dir: full,
            rel,
            depth,
            ancestors: above,
        };
        let job = match self.offer(job) {
            Ok(()) => return true,
            Err(job) => job,
        };
        match self.open(&job.dir, job.rel, depth, job.ancestors) {
            Ok(frame) => {
                stack.push(frame);
                true
            }
            Err(e) => self.push(batch, Err(e)),
        }
    }

    /// Walks the tree under `job`, depth first; false when the consumer is gone.
    fn walk(&self, job: Job, batch: &mut Batch) -> bool {
        let mut stack = match self.open(&job.dir, job.rel, job.depth, job.ancestors) {
            Ok(frame) => vec![frame],
            Err(e) => return self.push(batch, Err(e)),
        };
        while let Some(frame) = stack.last_mut() {
            if self.stopped.load(Ordering::Relaxed) {
                return false;
            }
            let Some(entry) = frame.entries.next() else {
                stack.pop();
                continue;
            };
            let depth = frame.depth + 1;
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let dir = self.root.join(&frame.rel);
                    if !self.push(batch, Err(self.io_error(&dir, e))) {
                        return false;
                    }
                    continue;
                }
            };
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                let err = Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "storage {}: walk: the name {} is not UTF-8; rename it or exclude its directory",
                        self.url,
                        entry.path().display()
                    ),
                );
                if !self.push(batch, Err(err)) {
                    return false;
                }
                continue;
            };
            if !self.filter.include_hidden() && name.starts_with('.') {
                continue;
            }
            let rel = if frame.rel.is_empty() {
                name.to_string()
            } else {
                let mut rel = String::with_capacity(frame.rel.len() + 1 + name.len());
                rel.push_str(&frame.rel);
                rel.push('/');
                rel.push_str(name);
                rel
            };
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(e) => {
                    if !self.push(batch, Err(self.io_error(&entry.path(), e))) {
                        return false;
                    }
                    continue;
                }
            };
            if file_type.is_dir() {
                if self.filter.descend(&rel, depth) {
                    let above = frame.chain.clone();
                    if !self.enter(&mut stack, batch, entry.path(), rel, depth, above) {
                        return false;
                    }
                }
                continue;
            }
            let meta = if file_type.is_file() {
                // Only files the rules keep are worth a stat.
                if !self.filter.matches_in_kept_dir(&rel) {
                    continue;
                }
                if !self.stat_files && !self.filter.needs_metadata() {
                    if !self.push(batch, Ok(FileInfo::new(rel, 0))) {
                        return false;
                    }
                    continue;
                }
                match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        if !self.push(batch, Err(self.io_error(&entry.path(), e))) {
                            return false;
                        }
                        continue;
                    }
                }
            } else if file_type.is_symlink() && self.follow_symlinks {
                let full = entry.path();
                match std::fs::metadata(&full) {
                    Ok(meta) => meta,
                    // A dangling link is not a file.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if self.filter.matches_in_kept_dir(&rel) {
                            self.link_skipped(
                                &rel,
                                "it is dangling (what it points to is missing)",
                            );
                        }
                        continue;
                    }
                    Err(e) => {
                        if !self.push(batch, Err(self.io_error(&full, e))) {
                            return false;
                        }
                        continue;
                    }
                }
            } else {
                if file_type.is_symlink() && self.would_read_link(&entry.path(), &rel, depth) {
                    self.link_skipped(
                        &rel,
                        "links are not followed; give --follow-symlinks (follow-symlinks: true) to read through it",
                    );
                }
                continue;
            };
            if meta.is_dir() {
                // Reached through a followed symbolic link: enter it unless it is an ancestor.
                if !self.filter.descend(&rel, depth) {
                    continue;
                }
                if is_ancestor(&frame.chain, id_of(&meta)) {
                    tracing::debug!(path = %entry.path().display(), "symbolic link loop not followed");
                    continue;
                }
                let above = frame.chain.clone();
                if !self.enter(&mut stack, batch, entry.path(), rel, depth, above) {
                    return false;
                }
                continue;
            }
            if !meta.is_file() || !self.filter.matches_in_kept_dir(&rel) {
                continue;
            }
            let info = local_file_info(rel, &meta);
            if !self.filter.keeps_file_info(&info) {
                continue;
            }
            if !self.push(batch, Ok(info)) {
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
