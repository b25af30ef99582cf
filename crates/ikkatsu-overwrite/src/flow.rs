//! The overwrite flow: scan (walk → keep what the status store says still needs work → gzip
//! backlog), then process (per file: download → user function → upload over the original
//! → record done) with a pool of workers.
//!
//! Safety rules:
//! * a file is uploaded only if it is unchanged since it was downloaded (conditional write);
//!   a changed file is a *conflict*, recorded as an error and never clobbered;
//! * an upload is journalled, durably, before it starts, and the journal entry is ended only
//!   once the file's status is durable; on the next run, a journalled upload that reached
//!   the storage is recorded as done instead of being transformed again;
//! * only temporary errors are retried, with exponential backoff and jitter;
//! * one failed file does not stop the others; temporary files live in a private work
//!   directory (or, in place on the local file system, beside the file under a hidden
//!   name) and are removed on every path (and at the start of a run, after a crash).
//!
//! Speed: the disk flushes that make this safe are shared by groups of files (group
//! commit): a committer task takes whatever the workers have finished, flushes the journal
//! and the new contents once, replaces or records every file of the group, and writes the
//! group's statuses in one transaction. On the local file system, in place, the function
//! reads the original file and writes its result beside it; nothing is copied.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream, StreamExt};
use ikkatsu_core::step::RetryPolicy;
use ikkatsu_core::{CancellationToken, Error, ErrorKind, Result};
use ikkatsu_storage::{
    FileInfo, LocalFiles, Replacement, Storage, WalkCounts, WalkOptions, validate_relative_path,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::backlog::{BacklogReader, write_backlog_batches};
use crate::journal::{Journal, JournalEntry};
use crate::links;
use crate::process_fn::ProcessFn;
use crate::status_store::StatusStore;

/// The least default concurrency on a remote storage (see
/// [`OverwriteOptions::concurrency_for`]).
pub const REMOTE_CONCURRENCY: usize = 8;

/// Settings of an [`OverwriteFlow`].
#[derive(Debug, Clone)]
pub struct OverwriteOptions {
    /// Which files of the source to consider.
    pub walk: WalkOptions,
    /// Files processed at once. `None` (the default): 2 × the number of cores, and at least
    /// [`REMOTE_CONCURRENCY`] when the source is a remote storage (see
    /// [`OverwriteOptions::concurrency_for`]).
    pub concurrency: Option<usize>,
    /// Retries of temporary errors per operation (download, function, upload).
    pub retry: RetryPolicy,
    /// Files per status-store lookup, and the unit of the process phase's window: at most
    /// four batches of files are in flight, and the committer takes at most two at once.
    pub batch_size: usize,
    /// Where the backlog, the journal and the temporary files live.
    pub state_dir: PathBuf,
    /// Only report what would be processed; change nothing.
    pub dry_run: bool,
    /// The backlog file (default `<state_dir>/backlog.jsonl.gz`).
    pub backlog: Option<PathBuf>,
    /// How long the run lease lives after each heartbeat (see [`crate::lease`]).
    pub lease_ttl: Duration,
    /// Share the work with other runs of the flow instead of refusing them (see
    /// [`crate::cooperate`]; Redis, PostgreSQL and MySQL stores).
    pub cooperate: bool,
}

impl OverwriteOptions {
    /// Defaults with state kept in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        OverwriteOptions {
            walk: WalkOptions::new(),
            concurrency: None,
            retry: RetryPolicy {
                limit: 3,
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(10),
                ..RetryPolicy::default()
            },
            batch_size: 1000,
            state_dir: state_dir.into(),
            dry_run: false,
            backlog: None,
            lease_ttl: crate::lease::DEFAULT_LEASE_TTL,
            cooperate: false,
        }
    }

    /// Files processed at once on `source`: the one set, or the default. A file on a remote
    /// storage spends most of its time waiting for the network (a request chain per file),
    /// so there the default is at least [`REMOTE_CONCURRENCY`]; on the local file system it
    /// is 2 × the number of cores.
    pub fn concurrency_for(&self, source: &Storage) -> usize {
        if let Some(n) = self.concurrency {
            return n.max(1);
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        if source.local_files().is_some() {
            cores * 2
        } else {
            (cores * 2).max(REMOTE_CONCURRENCY)
        }
    }

    /// The backlog file.
    pub fn backlog_path(&self) -> PathBuf {
        self.backlog
            .clone()
            .unwrap_or_else(|| self.state_dir.join("backlog.jsonl.gz"))
    }

    /// The file listing failed paths (JSON Lines `{"path":..,"error":..}`).
    pub fn failures_path(&self) -> PathBuf {
        self.state_dir.join("failures.jsonl")
    }

    fn journal_dir(&self) -> PathBuf {
        self.state_dir.join("journal")
    }

    fn work_dir(&self) -> PathBuf {
        self.state_dir.join("work")
    }
}

/// What the scan found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanSummary {
    /// Files matching the walk options.
    pub matched: u64,
    /// Of those, files the status store says need processing (written to the backlog).
    pub queued: u64,
    /// Symbolic links the walk skipped with a warning: every link to a file or directory
    /// the walk would read when links are not followed, dangling links when they are.
    pub links_skipped: u64,
}

/// Counters of the process phase, as reported to the progress callback.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Progress {
    /// Files in the backlog.
    pub total: u64,
    /// Transformed and uploaded.
    pub done: u64,
    /// Not processed: already done (by an earlier run, or found in the journal).
    pub skipped: u64,
    /// Changed between download and upload: not overwritten.
    pub conflicts: u64,
    /// Failed (after retries of temporary errors).
    pub failed: u64,
    /// Reached through a symbolic link when writing in place: read-only, not overwritten
    /// (a warning each; see `docs/adr/0012-symbolic-links.md`).
    pub symlinks: u64,
    /// Seconds since the process phase started.
    pub elapsed_seconds: f64,
}

impl Progress {
    /// Files handled so far.
    pub fn handled(&self) -> u64 {
        self.done + self.skipped + self.conflicts + self.failed + self.symlinks
    }

    /// Files handled per second.
    pub fn rate(&self) -> f64 {
        self.handled() as f64 / self.elapsed_seconds.max(0.001)
    }

    /// Estimated seconds left at the current rate.
    pub fn eta_seconds(&self) -> Option<f64> {
        let rate = self.rate();
        (rate > 0.0).then(|| self.total.saturating_sub(self.handled()) as f64 / rate)
    }
}

/// The outcome of the process phase.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ProcessSummary {
    /// The final counters.
    pub progress: Progress,
    /// Journalled uploads found at start that had reached the storage (recorded as done).
    pub recovered: u64,
    /// The first failed paths with their errors (all are in `failures_file`).
    pub failures: Vec<Failure>,
    /// The file listing every failure of this run.
    pub failures_file: PathBuf,
    /// Whether the run was stopped before the end of the backlog.
    pub stopped: bool,
    /// Backlog entries, from its start, that are all handled: where a resumed process phase
    /// may start ([`OverwriteFlow::process_from`]).
    pub position: u64,
}

/// One failed file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// Path relative to the source.
    pub path: String,
    /// Why.
    pub error: String,
    /// Whether it was a conflict (changed during processing).
    pub conflict: bool,
}

/// How many failures a summary keeps in memory.
const FAILURES_KEPT: usize = 20;

/// Called with the counters as files finish.
pub type ProgressCallback = Arc<dyn Fn(&Progress) + Send + Sync>;

/// The overwrite flow over a source storage (and an optional different target).
pub struct OverwriteFlow {
    pub(crate) source: Storage,
    pub(crate) target: Option<Storage>,
    pub(crate) status: Arc<dyn StatusStore>,
    process: Arc<dyn ProcessFn>,
    pub(crate) options: OverwriteOptions,
    pub(crate) lease: crate::lease::LeaseSlot,
}

/// What became of one file.
enum Outcome {
    Done,
    Skipped,
    Conflict(String),
    Failed(String),
    /// Reached through a symbolic link, in place: not written (why).
    Symlink(String),
}

/// A file whose new content waits for the committer.
enum Commit {
    /// In place on the local file system: `new` (beside the file) replaces the file if it
    /// still is `file`. Its journal entry is recorded, not yet synced.
    Replace { file: FileInfo, new: PathBuf },
    /// Already uploaded: record `walked` as what the next walk will see of `file`.
    Uploaded { file: FileInfo, walked: FileInfo },
}

impl Commit {
    fn file(&self) -> &FileInfo {
        match self {
            Commit::Replace { file, .. } | Commit::Uploaded { file, .. } => file,
        }
    }
}

/// A commit with the window slot it holds until it is finished.
struct Pending {
    commit: Commit,
    slot: OwnedSemaphorePermit,
}

/// What the pre-check decided for one backlog entry.
enum Checked {
    /// Process the file, as it is now.
    Process(FileInfo),
    /// Already done (by an interrupted run): nothing to do.
    Skip(FileInfo),
    /// Cannot be processed.
    Fail(FileInfo, String),
    /// Reached through a symbolic link, in place: not written (why).
    Symlink(FileInfo, String),
}

/// Backlog batches in flight (dispatched and not finished) at most: two groups of two
/// batches each, one being flushed while the other is replaced and recorded.
const WINDOW_BATCHES: usize = 4;

/// The most backlog batches' worth of files the committer flushes, replaces and records at
/// once.
const GROUP_BATCHES: usize = 2;

impl OverwriteFlow {
    /// A flow transforming files of `source` in place.
    pub fn new(
        source: Storage,
        status: Arc<dyn StatusStore>,
        process: Arc<dyn ProcessFn>,
        options: OverwriteOptions,
    ) -> Self {
        OverwriteFlow {
            source,
            target: None,
            status,
            process,
            options,
            lease: crate::lease::LeaseSlot::default(),
        }
    }

    /// Writes results to `target` (same relative paths) instead of over the source.
    pub fn with_target(mut self, target: Storage) -> Self {
        self.target = Some(target);
        self
    }

    /// The settings.
    pub fn options(&self) -> &OverwriteOptions {
        &self.options
    }

    fn target(&self) -> &Storage {
        self.target.as_ref().unwrap_or(&self.source)
    }

    /// Walks the source, keeps the files that need processing, and writes them to the
    /// backlog (replacing it only once complete). Memory does not grow with the file count.
    ///
    /// The walk (several threads on the local file system), the status-store lookups (a
    /// batch of [`OverwriteOptions::batch_size`] files per call, two calls in flight) and the
    /// compression of the backlog (its own thread) run at the same time. On a first run (the
    /// status store has no record in this namespace) there is nothing to compare: every
    /// matching file is queued without a lookup, and the local walker does not even read
    /// the files' sizes and times (the backlog holds their paths only; the process phase
    /// reads each file's size and time right before processing it anyway).
    pub(crate) async fn scan_held(&self, cancel: &CancellationToken) -> Result<ScanSummary> {
        std::fs::create_dir_all(&self.options.state_dir).map_err(|err| {
            Error::io(
                format_args!("state directory `{}`", self.options.state_dir.display()),
                err,
            )
        })?;
        let matched = Arc::new(AtomicU64::new(0));
        let counter = matched.clone();
        let stop = cancel.clone();
        let backlog = self.options.backlog_path();
        let counts = WalkCounts::new();
        let mut walk_options = self.options.walk.clone();
        walk_options.counts = Some(counts.clone());
        let queued = if self.status.is_empty().await? {
            let walk = self
                .source
                .walk_paths(walk_options)?
                .take_while(move |_| futures::future::ready(!stop.is_cancelled()))
                .map(move |batch| {
                    let batch = batch.into_iter().collect::<Result<Vec<FileInfo>>>();
                    if let Ok(files) = &batch {
                        counter.fetch_add(files.len() as u64, Ordering::Relaxed);
                    }
                    batch
                });
            write_backlog_batches(backlog, Some(self.source.url()), walk).await?
        } else {
            let status = self.status.clone();
            let walk = self
                .source
                .walk_batches(walk_options)?
                .take_while(move |_| futures::future::ready(!stop.is_cancelled()));
            let needed = regroup(walk, self.options.batch_size.max(1))
                .map(move |batch| {
                    let status = status.clone();
                    let counter = counter.clone();
                    async move {
                        let batch = batch?;
                        counter.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        status.needs_processing(batch).await
                    }
                })
                .buffered(2);
            write_backlog_batches(backlog, Some(self.source.url()), needed).await?
        };
        Ok(ScanSummary {
            matched: matched.load(Ordering::Relaxed),
            queued,
            links_skipped: counts.links_skipped(),
        })
    }

    /// Resolves the journal of a crashed run: uploads that reached the storage are recorded
    /// as done (in one group), temporary copies they left are removed, and the journal is
    /// emptied. Returns how many were recorded.
    pub async fn recover(&self) -> Result<u64> {
        self.recover_journal(&self.options.journal_dir()).await
    }

    /// [`OverwriteFlow::recover`] with the journal in `dir`.
    pub(crate) async fn recover_journal(&self, dir: &Path) -> Result<u64> {
        let journal = Journal::open(dir)?;
        let pending = journal.pending()?;
        if pending.is_empty() {
            journal.clear()?;
            return Ok(0);
        }
        let target = self.target();
        match target.local_files() {
            Some(local) => {
                let paths: Vec<String> = pending.iter().map(|e| e.source.path.clone()).collect();
                blocking(move || local.clean_interrupted_writes(paths.iter().map(String::as_str)))
                    .await?;
            }
            None => {
                for entry in &pending {
                    target.clean_interrupted_write(&entry.source.path).await?;
                }
            }
        }
        let mut done = Vec::new();
        for entry in pending {
            let path = &entry.source.path;
            let now = match target.stat(path).await {
                Ok(info) => Some(info),
                Err(err) if err.kind() == ErrorKind::NotFound => None,
                Err(err) => return Err(err),
            };
            let uploaded = match (&now, &entry.before) {
                (Some(now), Some(before)) => !now.same_content_as(before),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if let (true, Some(now)) = (uploaded, now) {
                tracing::info!(path = %path, "upload of an interrupted run reached the storage; recorded as done");
                let walked = if self.target.is_some() {
                    entry.source.clone()
                } else {
                    now
                };
                done.push((entry.source, walked));
            }
        }
        // Durable before the journal forgets the entries.
        self.status.report_done_all(&done).await?;
        journal.clear()?;
        Ok(done.len() as u64)
    }

    /// Processes the backlog written by [`OverwriteFlow::scan`] with the worker pool (see
    /// [`OverwriteFlow::process_from`]).
    pub async fn process(
        &self,
        cancel: &CancellationToken,
        progress: Option<ProgressCallback>,
    ) -> Result<ProcessSummary> {
        self.process_from(0, cancel, progress).await
    }

    /// Processes the backlog from entry `start_at` on (a position reported by an earlier,
    /// stopped run). Entries before it are not looked at.
    ///
    /// A batch of entries is checked against the status store as the files are now (so
    /// that work finished by an interrupted run is skipped), then each file that needs it
    /// runs the function on a task of its own, at most [`OverwriteOptions::concurrency`] at
    /// once. Results go to one committer, which handles them in groups: one flush of the
    /// journal, the new contents and the status store covers a whole group. At most four
    /// batches are in flight.
    pub(crate) async fn process_held(
        &self,
        start_at: u64,
        cancel: &CancellationToken,
        progress: Option<ProgressCallback>,
    ) -> Result<ProcessSummary> {
        let recovered = self.recover().await?;
        let concurrency = self.options.concurrency_for(&self.source);
        let work_dir = self.options.work_dir();
        empty_dir(&work_dir)?;
        let backlog = self.options.backlog_path();
        let total = BacklogReader::count(&backlog)?.saturating_sub(start_at);
        let failures_path = self.options.failures_path();
        let failures_file = std::fs::File::create(&failures_path)
            .map_err(|err| Error::io(format_args!("`{}`", failures_path.display()), err))?;
        let ctx = Arc::new(Ctx {
            source: self.source.clone(),
            target: self.target.clone(),
            in_place: if self.target.is_none() {
                self.source.local_files()
            } else {
                None
            },
            local_source: self.source.local_files(),
            links_read_only: self.target.is_none() && self.options.walk.follow_symlinks,
            local_target: self.target.as_ref().and_then(Storage::local_files),
            status: self.status.clone(),
            claims: self.lease.member(),
            process: self.process.clone(),
            retry: self.options.retry.clone(),
            journal: Journal::open(self.options.journal_dir())?,
            work_dir: work_dir.clone(),
            work_counter: AtomicU64::new(0),
            spare_downloads: Mutex::new(Vec::new()),
            io_threads: concurrency.clamp(1, 16),
            cancel: cancel.clone(),
            halt: cancel.child_token(),
            tally: Tally {
                state: Mutex::new((
                    Progress {
                        total,
                        ..Progress::default()
                    },
                    Vec::new(),
                )),
                failures_file: Mutex::new(failures_file),
                started: Instant::now(),
                progress,
            },
        });
        // Cooperating runs claim small batches, so that they interleave.
        let batch_size = match self.options.cooperate {
            true => self.options.batch_size.min(concurrency * 2).max(1),
            false => self.options.batch_size.max(1),
        };
        let (commits, commit_queue) = mpsc::channel::<Pending>(WINDOW_BATCHES * batch_size);
        let committer = tokio::spawn(committer(
            Arc::clone(&ctx),
            commit_queue,
            GROUP_BATCHES * batch_size,
        ));
        let workers = Arc::new(Semaphore::new(concurrency));
        let window = Arc::new(Semaphore::new(WINDOW_BATCHES * batch_size));
        let mut tasks = JoinSet::new();

        let mut reader = BacklogReader::open(&backlog)?;
        let mut position = reader.skip(start_at)?;
        let stop = cancel.clone();
        let batches = reader
            .into_stream()
            .take_while(move |_| futures::future::ready(!stop.is_cancelled()))
            .chunks(batch_size)
            .map(|batch| batch.into_iter().collect::<Result<Vec<FileInfo>>>());
        let mut batches = std::pin::pin!(batches);
        let mut failure = None;
        'batches: while let Some(batch) = batches.next().await {
            let todo = match batch {
                Ok(batch) => batch,
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            };
            let batch_len = todo.len() as u64;
            let checked = if self.options.dry_run {
                ctx.dry_check(todo).await
            } else {
                ctx.precheck(todo, concurrency).await
            };
            let checked = match checked {
                Ok(checked) => checked,
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            };
            for item in checked {
                while let Some(joined) = tasks.try_join_next() {
                    report_panic(joined);
                }
                if ctx.halt.is_cancelled() {
                    break 'batches;
                }
                let slot = acquire(&window).await?;
                match item {
                    Checked::Skip(file) => ctx.finish(&file, Outcome::Skipped).await,
                    Checked::Fail(file, error) => ctx.finish(&file, Outcome::Failed(error)).await,
                    Checked::Symlink(file, why) => ctx.finish(&file, Outcome::Symlink(why)).await,
                    Checked::Process(file) => {
                        let worker = acquire(&workers).await?;
                        if ctx.halt.is_cancelled() {
                            break 'batches;
                        }
                        let ctx = Arc::clone(&ctx);
                        let commits = commits.clone();
                        tasks.spawn(async move {
                            let span = tracing::info_span!("file", path = %file.path);
                            tracing::Instrument::instrument(
                                ctx.run_file(file, worker, slot, commits),
                                span,
                            )
                            .await;
                        });
                    }
                }
            }
            position += batch_len;
        }
        // The files in flight finish, then their commits.
        while let Some(joined) = tasks.join_next().await {
            report_panic(joined);
        }
        drop(commits);
        let committed = committer.await.map_err(|err| {
            Error::new(
                ErrorKind::Unexpected,
                format!("the overwrite committer task: {err}"),
            )
        })?;
        ctx.journal.finish();
        let _ = std::fs::remove_dir_all(&work_dir);
        if let Some(err) = failure {
            return Err(err);
        }
        committed?;
        let (mut progress_now, failures) = {
            let state = lock(&ctx.tally.state);
            (state.0.clone(), state.1.clone())
        };
        progress_now.elapsed_seconds = ctx.tally.started.elapsed().as_secs_f64();
        Ok(ProcessSummary {
            stopped: cancel.is_cancelled() && progress_now.handled() < total,
            progress: progress_now,
            recovered,
            failures,
            failures_file: failures_path,
            position,
        })
    }
}

/// Everything the tasks of one process phase share.
struct Ctx {
    source: Storage,
    target: Option<Storage>,
    /// The source's files when writing in place on the local file system: the fast path.
    in_place: Option<LocalFiles>,
    /// The source's files when it is the local file system: the function reads them there.
    local_source: Option<LocalFiles>,
    /// Writing in place with links followed: a file reached through a symbolic link is
    /// read-only.
    links_read_only: bool,
    /// The target's files when it is another local directory: a path there reached
    /// through a symbolic link is not written.
    local_target: Option<LocalFiles>,
    status: Arc<dyn StatusStore>,
    /// A cooperating run's registration: files are claimed and recorded with it.
    claims: Option<crate::status_store::Lease>,
    process: Arc<dyn ProcessFn>,
    retry: RetryPolicy,
    journal: Journal,
    work_dir: PathBuf,
    work_counter: AtomicU64,
    /// Download files of finished files, kept to be written over by the next downloads: a
    /// file truncated and written again keeps its inode, where a new one costs the file
    /// system an allocation and a deletion (on ext4 without a journal, an allocation skips
    /// every inode freed in the last minutes, so the cost grows with the run).
    spare_downloads: Mutex<Vec<PathBuf>>,
    /// Threads for the comparisons and renames of a group.
    io_threads: usize,
    cancel: CancellationToken,
    /// Stops dispatching: cancelled with `cancel`, or when committing fails.
    halt: CancellationToken,
    tally: Tally,
}

/// The counters, the failures kept and the failures file.
struct Tally {
    state: Mutex<(Progress, Vec<Failure>)>,
    failures_file: Mutex<std::fs::File>,
    started: Instant,
    progress: Option<ProgressCallback>,
}

impl Ctx {
    /// A dry run's decision for a batch: what a real run would do, reading nothing and
    /// writing nothing. A file reached through a symbolic link (in place with links
    /// followed, or its path in a local target) is reported and counted as a real run
    /// would; the others are logged as `would process` and counted as skipped.
    async fn dry_check(&self, files: Vec<FileInfo>) -> Result<Vec<Checked>> {
        let source = self.local_source.clone().filter(|_| self.links_read_only);
        let target = self.local_target.clone();
        blocking(move || {
            Ok(files
                .into_iter()
                .map(|file| {
                    if let Err(err) = validate_relative_path(&file.path) {
                        return Checked::Fail(file, err.report());
                    }
                    let link = match (&source, &target) {
                        (Some(local), _) => links::read_only(local, &file),
                        (None, Some(local)) => links::target_read_only(local, &file.path),
                        (None, None) => Ok(None),
                    };
                    match link {
                        Ok(None) => {
                            tracing::info!(path = %file.path, size = file.size, "would process");
                            Checked::Skip(file)
                        }
                        Ok(Some(why)) => Checked::Symlink(file, why),
                        Err(err) => {
                            let message = format!("reading `{}`: {}", file.path, err.report());
                            Checked::Fail(file, message)
                        }
                    }
                })
                .collect())
        })
        .await
    }

    /// The files of a batch as they are now, and which of them the status store says still
    /// need processing, in backlog order.
    async fn precheck(&self, files: Vec<FileInfo>, concurrency: usize) -> Result<Vec<Checked>> {
        // `Process` for now: the files that are there, as they are now.
        let now: Vec<Checked> = match &self.local_source {
            Some(local) => {
                let local = local.clone();
                let links_read_only = self.links_read_only;
                blocking(move || {
                    Ok(files
                        .into_iter()
                        .map(|file| match local.stat(&file.path) {
                            Ok(now) if links_read_only => match links::read_only(&local, &now) {
                                Ok(None) => Checked::Process(now),
                                Ok(Some(why)) => Checked::Symlink(now, why),
                                Err(err) => {
                                    let message =
                                        format!("reading `{}`: {}", now.path, err.report());
                                    Checked::Fail(now, message)
                                }
                            },
                            Ok(now) => Checked::Process(now),
                            Err(err) => {
                                let message = format!("reading `{}`: {}", file.path, err.report());
                                Checked::Fail(file, message)
                            }
                        })
                        .collect())
                })
                .await?
            }
            None => {
                futures::stream::iter(files)
                    .map(|file| async move {
                        if let Err(err) = validate_relative_path(&file.path) {
                            return Checked::Fail(file, err.report());
                        }
                        // A backlog entry from a listing (with a time or an etag) is
                        // recent enough to decide here: the download stats the file again,
                        // and a file changed since is looked up again as it was downloaded.
                        if file.modified.is_some() || file.etag.is_some() {
                            return Checked::Process(file);
                        }
                        let path = file.path.clone();
                        match self
                            .retry
                            .run(&self.cancel, || self.source.stat(&path))
                            .await
                        {
                            Ok(now) => Checked::Process(now),
                            Err(err) => {
                                let message =
                                    format!("downloading `{}`: {}", file.path, err.report());
                                Checked::Fail(file, message)
                            }
                        }
                    })
                    .buffered(concurrency)
                    .collect()
                    .await
            }
        };
        let present: Vec<FileInfo> = now
            .iter()
            .filter_map(|checked| match checked {
                Checked::Process(file) => Some(file.clone()),
                _ => None,
            })
            .collect();
        let mut needed = self.status.needs_processing(present).await?;
        if let Some(me) = &self.claims {
            let local = self.local_source.clone();
            needed = crate::cooperate::claim(&self.status, me, needed, local).await?;
        }
        let mut needed = needed.into_iter().peekable();
        Ok(now
            .into_iter()
            .map(|checked| match checked {
                // As the check saw it (read again after a claim).
                Checked::Process(file) => match needed.next_if(|n| n.path == file.path) {
                    Some(now) => Checked::Process(now),
                    None => Checked::Skip(file),
                },
                other => other,
            })
            .collect())
    }

    /// Runs one file up to its commit (handed to the committer) or its outcome.
    async fn run_file(
        self: Arc<Self>,
        file: FileInfo,
        worker: OwnedSemaphorePermit,
        slot: OwnedSemaphorePermit,
        commits: mpsc::Sender<Pending>,
    ) {
        let run = std::panic::AssertUnwindSafe(self.transform(&file)).catch_unwind();
        let finished = run.await;
        // The worker's turn ends with its function: the commit waits without it.
        drop(worker);
        let outcome = match finished {
            Ok(Ok(Ok(commit))) => {
                let pending = Pending { commit, slot };
                match commits.send(pending).await {
                    Ok(()) => return,
                    // The committer stopped on an error (the run fails with it): leave the
                    // journal as it is for the next run, and the new content to its cleanup.
                    Err(mpsc::error::SendError(pending)) => {
                        if let Commit::Replace { new, .. } = &pending.commit {
                            let _ = tokio::fs::remove_file(new).await;
                        }
                        Outcome::Failed("not recorded: the status store failed".to_string())
                    }
                }
            }
            Ok(Ok(Err(outcome))) => outcome,
            Ok(Err(err)) => Outcome::Failed(err.report()),
            Err(_) => {
                if let Some(local) = self.in_place.clone() {
                    // The function panicked before its result could be committed.
                    let path = file.path.clone();
                    let _ = blocking(move || local.clean_interrupted_writes([path.as_str()])).await;
                    let _ = self.journal.end_all([file.path.as_str()]);
                }
                Outcome::Failed(format!("processing `{}` panicked (see the log)", file.path))
            }
        };
        self.finish(&file, outcome).await;
    }

    /// Downloads (or reads in place), runs the function and uploads (or prepares the
    /// replacement). `Ok(Err(outcome))`: the file is finished without a commit.
    async fn transform(&self, file: &FileInfo) -> Result<std::result::Result<Commit, Outcome>> {
        let path = file.path.as_str();
        if let Some(local) = &self.in_place {
            // In place on the local file system: the function reads the file itself and its
            // result is written beside it; the committer replaces the file with it.
            let input = local.path(path)?;
            let output = local.temp_sibling(path)?;
            self.journal.record(&JournalEntry {
                source: file.clone(),
                before: Some(file.clone()),
            })?;
            let result = if self.process.is_external() {
                // A command may outlive a killed run and write its output later: it writes
                // in the private work directory, never beside the user's files.
                let written = self.work_file("out");
                let result = match self.run_function(&input, &written).await {
                    Ok(()) => move_file(&written, &output).await,
                    Err(err) => Err(err),
                };
                let _ = tokio::fs::remove_file(&written).await;
                result
            } else {
                self.run_function(&input, &output).await
            };
            return match result {
                Ok(()) => Ok(Ok(Commit::Replace {
                    file: file.clone(),
                    new: output,
                })),
                Err(err) => {
                    let _ = tokio::fs::remove_file(&output).await;
                    self.journal.end_all([path])?;
                    Ok(Err(Outcome::Failed(err.report())))
                }
            };
        }
        // A command may outlive a killed or timed-out run and still read its input: its
        // downloads are never reused.
        let reuse = self.local_source.is_none() && !self.process.is_external();
        let spare = if reuse {
            lock(&self.spare_downloads).pop()
        } else {
            None
        };
        let downloaded_to = spare.unwrap_or_else(|| self.work_file("in"));
        let output = self.work_file("out");
        let result = self
            .transform_via_work_dir(file, &downloaded_to, &output)
            .await;
        let _ = tokio::fs::remove_file(&output).await;
        if reuse {
            lock(&self.spare_downloads).push(downloaded_to);
        } else if self.local_source.is_none() {
            let _ = tokio::fs::remove_file(&downloaded_to).await;
        }
        result
    }

    /// A fresh name in the work directory. The process id keeps it apart from the names of
    /// a killed run whose commands may still be writing.
    fn work_file(&self, kind: &str) -> PathBuf {
        let n = self.work_counter.fetch_add(1, Ordering::Relaxed);
        self.work_dir
            .join(format!("{}-{n}.{kind}", std::process::id()))
    }

    async fn transform_via_work_dir(
        &self,
        file: &FileInfo,
        downloaded_to: &Path,
        output: &Path,
    ) -> Result<std::result::Result<Commit, Outcome>> {
        let path = file.path.as_str();
        if let Some(local) = self.local_target.clone() {
            let at = file.path.clone();
            if let Some(why) = blocking(move || links::target_read_only(&local, &at)).await? {
                return Ok(Err(Outcome::Symlink(why)));
            }
        }
        let (input, downloaded) = match &self.local_source {
            Some(local) => (local.path(path)?, file.clone()),
            None => {
                let downloaded = self
                    .retry
                    .run(&self.cancel, || {
                        self.source.download_listed(file, downloaded_to)
                    })
                    .await
                    .map_err(|err| err.context(format!("downloading `{path}`")))?;
                // Changed since the pre-check: what decides is the file as downloaded.
                if !downloaded.same_content_as(file)
                    && self
                        .status
                        .needs_processing(vec![downloaded.clone()])
                        .await?
                        .is_empty()
                {
                    return Ok(Err(Outcome::Skipped));
                }
                (downloaded_to.to_path_buf(), downloaded)
            }
        };
        if let Err(err) = self.run_function(&input, output).await {
            return Ok(Err(Outcome::Failed(err.report())));
        }
        let before = match &self.target {
            None => Some(downloaded.clone()),
            Some(target) => match target.stat(path).await {
                Ok(info) => Some(info),
                Err(err) if err.kind() == ErrorKind::NotFound => None,
                Err(err) => return Err(err.context(format!("checking the target `{path}`"))),
            },
        };
        self.journal
            .begin(&JournalEntry {
                source: downloaded.clone(),
                before,
            })
            .await?;
        let uploaded = match &self.target {
            None => {
                self.retry
                    .run(&self.cancel, || {
                        self.source.write_if_unchanged(path, output, &downloaded)
                    })
                    .await
            }
            Some(target) => {
                self.retry
                    .run(&self.cancel, || target.upload(output, path))
                    .await
            }
        };
        match uploaded {
            Ok(uploaded) => {
                // What the next walk of the source will see: the uploaded file when
                // writing in place, the unchanged source when writing to another target.
                let walked = if self.target.is_some() {
                    downloaded.clone()
                } else {
                    uploaded
                };
                Ok(Ok(Commit::Uploaded {
                    file: downloaded,
                    walked,
                }))
            }
            Err(err) => {
                self.journal.end_all([path])?;
                if err.kind() == ErrorKind::Conflict {
                    Ok(Err(Outcome::Conflict(conflict_message(path, &err))))
                } else {
                    Ok(Err(Outcome::Failed(format!(
                        "uploading `{path}`: {}",
                        err.report()
                    ))))
                }
            }
        }
    }

    /// Runs the user function, retrying temporary errors (a half-written output of a
    /// failed attempt is removed first).
    async fn run_function(&self, input: &Path, output: &Path) -> Result<()> {
        let mut attempt = 0u32;
        self.retry
            .run(&self.cancel, || {
                attempt += 1;
                let again = attempt > 1;
                async move {
                    if again {
                        let _ = tokio::fs::remove_file(output).await;
                    }
                    self.process.process(input, output).await
                }
            })
            .await
    }

    /// The first stage of a group's commit: makes the journal entries and the new contents
    /// of its replacements durable (one flush each for the whole group).
    async fn flush_group(&self, group: Vec<Pending>) -> Result<FlushedGroup> {
        let mut flushed = FlushedGroup {
            uploaded: Vec::new(),
            replacements: Vec::new(),
            news: Vec::new(),
            slots: Vec::with_capacity(group.len()),
        };
        for pending in group {
            match pending.commit {
                Commit::Replace { file, new } => flushed.replacements.push(Replacement {
                    path: file.path.clone(),
                    new,
                    expected: file,
                }),
                Commit::Uploaded { file, walked } => flushed.uploaded.push((file, walked)),
            }
            flushed.slots.push(pending.slot);
        }
        if flushed.replacements.is_empty() {
            return Ok(flushed);
        }
        // The journal entries are durable before any file is replaced: flushed with the
        // new contents (one syncfs covers both when they are on the same file system).
        let started = Instant::now();
        let local = self.local_for_replacements()?;
        let replacements = std::mem::take(&mut flushed.replacements);
        let (replacements, news) = self
            .journal
            .sync_with(move |journal| {
                let journal_files: Vec<&Path> = journal.iter().flat_map(|j| j.paths()).collect();
                let mut also = journal_files;
                if let Some(journal) = &journal
                    && journal.dir_too()
                {
                    also.push(journal.dir());
                }
                let news = local.flush_new_contents(&replacements, true, &also)?;
                Ok((replacements, news))
            })
            .await?;
        flushed.replacements = replacements;
        flushed.news = news;
        tracing::debug!(
            files = flushed.replacements.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "group flushed"
        );
        Ok(flushed)
    }

    fn local_for_replacements(&self) -> Result<LocalFiles> {
        self.in_place.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                "the overwrite flow replaced a file of a storage that is not local",
            )
        })
    }

    /// The second stage: replaces the files that are unchanged (several threads at once:
    /// the comparisons and renames wait on the disk), records the group's successes in one
    /// durable write, then ends their journal entries and finishes each file.
    async fn finish_group(&self, group: FlushedGroup) -> Result<()> {
        let FlushedGroup {
            mut uploaded,
            replacements,
            news,
            slots,
        } = group;
        let mut done = std::mem::take(&mut uploaded);
        let mut outcomes: Vec<(FileInfo, Outcome)> = Vec::new();
        let started = Instant::now();
        if !replacements.is_empty() {
            let local = self.local_for_replacements()?;
            let replacements = Arc::new(replacements);
            let chunk = replacements.len().div_ceil(self.io_threads).max(1);
            let mut renames = JoinSet::new();
            let mut news = news.into_iter();
            for start in (0..replacements.len()).step_by(chunk) {
                let end = (start + chunk).min(replacements.len());
                let infos: Vec<Result<FileInfo>> = news.by_ref().take(end - start).collect();
                let replacements = Arc::clone(&replacements);
                let local = local.clone();
                renames.spawn_blocking(move || {
                    let results: Vec<Result<FileInfo>> = replacements[start..end]
                        .iter()
                        .zip(infos)
                        .map(|(r, new)| new.and_then(|new| local.replace_if_unchanged(r, new)))
                        .collect();
                    (start, results)
                });
            }
            let mut parts = Vec::with_capacity(renames.len());
            while let Some(part) = renames.join_next().await {
                parts.push(part.map_err(|err| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("a file-system thread of the overwrite flow: {err}"),
                    )
                })?);
            }
            parts.sort_by_key(|(start, _)| *start);
            let results = parts.into_iter().flat_map(|(_, results)| results);
            for (replacement, result) in replacements.iter().zip(results) {
                match result {
                    Ok(new) => done.push((replacement.expected.clone(), new)),
                    Err(err) if err.kind() == ErrorKind::Conflict => {
                        let message = conflict_message(&replacement.path, &err);
                        outcomes.push((replacement.expected.clone(), Outcome::Conflict(message)));
                    }
                    Err(err) => {
                        let message = format!("replacing `{}`: {}", replacement.path, err.report());
                        outcomes.push((replacement.expected.clone(), Outcome::Failed(message)));
                    }
                }
            }
        }
        let replace_ms = started.elapsed().as_secs_f64() * 1e3;
        // Recorded durably before the journal forgets the files.
        let taken =
            crate::cooperate::record_done(&self.status, self.claims.as_ref(), &mut done).await?;
        for file in taken {
            let message = format!(
                "`{}` was replaced, but another run had taken its claim meanwhile: it may be transformed again",
                file.path
            );
            outcomes.push((file, Outcome::Failed(message)));
        }
        tracing::debug!(
            done = done.len(),
            failed = outcomes.len(),
            replace_ms,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "group committed"
        );
        self.journal.end_all(
            done.iter()
                .map(|(file, _)| file.path.as_str())
                .chain(outcomes.iter().map(|(file, _)| file.path.as_str())),
        )?;
        for (file, _) in done {
            self.finish(&file, Outcome::Done).await;
        }
        for (file, outcome) in outcomes {
            self.finish(&file, outcome).await;
        }
        // Finished: their places in the window go to the next files.
        drop(slots);
        Ok(())
    }

    /// Counts a finished file, records a failure, reports progress.
    async fn finish(&self, file: &FileInfo, outcome: Outcome) {
        let path = &file.path;
        let failure = match &outcome {
            Outcome::Conflict(error) => Some(Failure {
                path: path.clone(),
                error: error.clone(),
                conflict: true,
            }),
            Outcome::Failed(error) => Some(Failure {
                path: path.clone(),
                error: error.clone(),
                conflict: false,
            }),
            _ => None,
        };
        if let Outcome::Symlink(why) = &outcome {
            tracing::warn!(path = %path, "{why}");
        }
        if let Some(failure) = &failure {
            tracing::warn!(path = %path, error = %failure.error, conflict = failure.conflict, "file not processed");
            if let Err(err) = self.status.report_error(file, &failure.error).await {
                tracing::error!(path = %path, error = %err, "cannot record the failure in the status store");
            }
            if let Ok(line) = serde_json::to_string(failure) {
                use std::io::Write;
                let mut out = lock(&self.tally.failures_file);
                let _ = writeln!(out, "{line}");
            }
        }
        let snapshot = {
            let mut state = lock(&self.tally.state);
            match outcome {
                Outcome::Done => state.0.done += 1,
                Outcome::Skipped => state.0.skipped += 1,
                Outcome::Conflict(_) => state.0.conflicts += 1,
                Outcome::Failed(_) => state.0.failed += 1,
                Outcome::Symlink(_) => state.0.symlinks += 1,
            }
            if let Some(failure) = failure
                && state.1.len() < FAILURES_KEPT
            {
                state.1.push(failure);
            }
            state.0.elapsed_seconds = self.tally.started.elapsed().as_secs_f64();
            self.tally.progress.is_some().then(|| state.0.clone())
        };
        if let (Some(progress), Some(snapshot)) = (&self.tally.progress, snapshot) {
            progress(&snapshot);
        }
    }
}

/// Takes the commits of the workers in groups (whatever has arrived while the previous
/// group was being committed, up to `max_group`) and commits them in two overlapping
/// stages: while one group's files are replaced and recorded, the next group is flushed.
/// After an error it keeps draining the queue without committing, and returns the error.
async fn committer(
    ctx: Arc<Ctx>,
    mut queue: mpsc::Receiver<Pending>,
    max_group: usize,
) -> Result<()> {
    let mut failure: Option<Error> = None;
    let mut finishing: Option<tokio::task::JoinHandle<Result<()>>> = None;
    let mut group = Vec::new();
    while queue.recv_many(&mut group, max_group).await > 0 {
        let taken = std::mem::take(&mut group);
        if failure.is_some() {
            abandon(taken).await;
            continue;
        }
        let flushed = ctx.flush_group(taken).await;
        if let Some(previous) = finishing.take() {
            note_failure(&ctx, &mut failure, joined(previous.await));
        }
        match flushed {
            Ok(flushed) if failure.is_none() => {
                let ctx = Arc::clone(&ctx);
                finishing = Some(tokio::spawn(async move { ctx.finish_group(flushed).await }));
            }
            Ok(flushed) => abandon_flushed(flushed).await,
            Err(err) => note_failure(&ctx, &mut failure, Err(err)),
        }
    }
    if let Some(previous) = finishing.take() {
        note_failure(&ctx, &mut failure, joined(previous.await));
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// A group whose journal entries and new contents are durable.
struct FlushedGroup {
    /// Already uploaded: (source, what the next walk sees).
    uploaded: Vec<(FileInfo, FileInfo)>,
    replacements: Vec<Replacement>,
    /// What each replacement's new content is (or why it cannot be used).
    news: Vec<Result<FileInfo>>,
    /// The group's places in the window of files in flight.
    slots: Vec<OwnedSemaphorePermit>,
}

fn joined(result: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    result.map_err(|err| {
        Error::new(
            ErrorKind::Unexpected,
            format!("the overwrite committer task: {err}"),
        )
    })?
}

fn note_failure(ctx: &Ctx, failure: &mut Option<Error>, result: Result<()>) {
    if let Err(err) = result {
        tracing::error!(error = %err.report(), "committing processed files failed; the next run resumes them");
        ctx.halt.cancel();
        failure.get_or_insert(err);
    }
}

async fn abandon_flushed(group: FlushedGroup) {
    for replacement in group.replacements {
        let _ = tokio::fs::remove_file(&replacement.new).await;
    }
}

/// After a failed commit: removes the new contents that were not used. Journal entries
/// stay for the next run to resolve.
async fn abandon(group: Vec<Pending>) {
    for pending in group {
        if let Commit::Replace { new, .. } = &pending.commit {
            let _ = tokio::fs::remove_file(new).await;
        }
        tracing::warn!(path = %pending.commit.file().path, "not recorded after an earlier error; the next run resolves it");
    }
}

fn conflict_message(path: &str, err: &Error) -> String {
    format!(
        "`{path}` changed while it was being processed; it was not overwritten: {}",
        err.report()
    )
}

fn report_panic(joined: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined {
        tracing::error!(error = %err, "a file task ended abnormally");
    }
}

async fn acquire(semaphore: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit> {
    Arc::clone(semaphore)
        .acquire_owned()
        .await
        .map_err(|err| Error::new(ErrorKind::Unexpected, format!("worker pool closed: {err}")))
}

/// Moves `from` to `to` (a rename, or a copy when they are on different file systems).
async fn move_file(from: &Path, to: &Path) -> Result<()> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    blocking(move || {
        let failed = |err| {
            Error::io(
                format_args!("moving `{}` to `{}`", from.display(), to.display()),
                err,
            )
        };
        match std::fs::rename(&from, &to) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::CrossesDevices => {
                std::fs::copy(&from, &to).map_err(failed)?;
                std::fs::remove_file(&from).map_err(failed)
            }
            Err(err) => Err(failed(err)),
        }
    })
    .await
}

/// Regroups a stream of batches (of walk results) into batches of `size` files; the first
/// error ends it.
fn regroup<S>(batches: S, size: usize) -> impl Stream<Item = Result<Vec<FileInfo>>>
where
    S: Stream<Item = Vec<Result<FileInfo>>> + Unpin,
{
    futures::stream::unfold(
        (batches, Vec::<FileInfo>::new(), false),
        move |(mut batches, mut pending, mut ended)| async move {
            while !ended && pending.len() < size {
                match batches.next().await {
                    Some(batch) => {
                        for item in batch {
                            match item {
                                Ok(file) => pending.push(file),
                                Err(err) => return Some((Err(err), (batches, Vec::new(), true))),
                            }
                        }
                    }
                    None => ended = true,
                }
            }
            if pending.is_empty() {
                return None;
            }
            let out = if pending.len() > size {
                let rest = pending.split_off(size);
                std::mem::replace(&mut pending, rest)
            } else {
                std::mem::take(&mut pending)
            };
            Some((Ok(out), (batches, pending, ended)))
        },
    )
}

/// Runs blocking file work off the async threads.
async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|err| {
        Error::new(
            ErrorKind::Unexpected,
            format!("a file-system thread of the overwrite flow: {err}"),
        )
    })?
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes everything in `dir` (creating it if missing): temporary files of a crashed run.
/// The old directory is first moved aside, so that a file appearing in it meanwhile cannot
/// make the removal fail; what cannot be removed is left (and tried again next time).
pub(crate) fn empty_dir(dir: &Path) -> Result<()> {
    let io = |err| Error::io(format_args!("work directory `{}`", dir.display()), err);
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("work")
        .to_string();
    if let Some(parent) = dir.parent()
        && let Ok(entries) = std::fs::read_dir(parent)
    {
        let stale = format!("{name}.stale-");
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&stale))
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    if dir.exists() {
        let aside = dir.with_file_name(format!("{name}.stale-{}", std::process::id()));
        std::fs::rename(dir, &aside).map_err(io)?;
        if let Err(err) = std::fs::remove_dir_all(&aside) {
            tracing::warn!(path = %aside.display(), error = %err, "cannot remove the work directory of an earlier run yet");
        }
    }
    std::fs::create_dir_all(dir).map_err(io)
}
