//! The overwrite flow: scan (walk → keep what the status store says still needs work → gzip
//! backlog), then process (per file: download → user function → upload over the original
//! → record done) with a pool of workers.
//!
//! Safety rules:
//! * a file is uploaded only if it is unchanged since it was downloaded (conditional write);
//!   a changed file is a *conflict*, recorded as an error and never clobbered;
//! * an upload is journalled before it starts; on the next run, a journalled upload that
//!   reached the storage is recorded as done instead of being transformed again;
//! * only temporary errors are retried, with exponential backoff and jitter;
//! * one failed file does not stop the others; temporary files live in a private work
//!   directory that is emptied on every path (and at the start of a run, after a crash).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ikkatsu_core::step::RetryPolicy;
use ikkatsu_core::{CancellationToken, Error, ErrorKind, Result};
use ikkatsu_storage::{FileInfo, Storage, WalkOptions, validate_relative_path};

use crate::backlog::{BacklogReader, write_backlog};
use crate::journal::{Journal, JournalEntry};
use crate::process_fn::ProcessFn;
use crate::status_store::StatusStore;

/// Settings of an [`OverwriteFlow`].
#[derive(Debug, Clone)]
pub struct OverwriteOptions {
    /// Which files of the source to consider.
    pub walk: WalkOptions,
    /// Files processed at once (default: 2 × the number of cores).
    pub concurrency: usize,
    /// Retries of temporary errors per operation (download, function, upload).
    pub retry: RetryPolicy,
    /// Files per status-store lookup.
    pub batch_size: usize,
    /// Where the backlog, the journal and the temporary files live.
    pub state_dir: PathBuf,
    /// Only report what would be processed; change nothing.
    pub dry_run: bool,
    /// The backlog file (default `<state_dir>/backlog.jsonl.gz`).
    pub backlog: Option<PathBuf>,
}

impl OverwriteOptions {
    /// Defaults with state kept in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        OverwriteOptions {
            walk: WalkOptions::new(),
            concurrency: cores * 2,
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
    /// Seconds since the process phase started.
    pub elapsed_seconds: f64,
}

impl Progress {
    /// Files handled so far.
    pub fn handled(&self) -> u64 {
        self.done + self.skipped + self.conflicts + self.failed
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
    source: Storage,
    target: Option<Storage>,
    status: Arc<dyn StatusStore>,
    process: Arc<dyn ProcessFn>,
    options: OverwriteOptions,
}

enum Outcome {
    Done,
    Skipped,
    Conflict(String),
    Failed(String),
}

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

    /// What the next walk of the source will see of a file once it is done: the uploaded
    /// file when writing in place, the unchanged source when writing to another target.
    fn walked_after_upload<'a>(
        &self,
        source: &'a FileInfo,
        uploaded: &'a FileInfo,
    ) -> &'a FileInfo {
        if self.target.is_some() {
            source
        } else {
            uploaded
        }
    }

    fn target(&self) -> &Storage {
        self.target.as_ref().unwrap_or(&self.source)
    }

    /// Walks the source, keeps the files that need processing, and writes them to the
    /// backlog (replacing it only once complete). Memory does not grow with the file count.
    pub async fn scan(&self, cancel: &CancellationToken) -> Result<ScanSummary> {
        std::fs::create_dir_all(&self.options.state_dir).map_err(|err| {
            Error::io(
                format_args!("state directory `{}`", self.options.state_dir.display()),
                err,
            )
        })?;
        let matched = Arc::new(AtomicU64::new(0));
        let counter = matched.clone();
        let status = self.status.clone();
        let cancel = cancel.clone();
        let files = self
            .source
            .walk(self.options.walk.clone())?
            .take_while(move |_| futures::future::ready(!cancel.is_cancelled()))
            .chunks(self.options.batch_size.max(1))
            .then(move |batch| {
                let status = status.clone();
                let counter = counter.clone();
                async move {
                    let batch: Result<Vec<FileInfo>> = batch.into_iter().collect();
                    let batch = batch?;
                    counter.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    status.needs_processing(batch).await
                }
            })
            .flat_map(|result| match result {
                Ok(files) => futures::stream::iter(files.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(err) => futures::stream::iter(vec![Err(err)]),
            });
        let queued =
            write_backlog(self.options.backlog_path(), Some(self.source.url()), files).await?;
        Ok(ScanSummary {
            matched: matched.load(Ordering::Relaxed),
            queued,
        })
    }

    /// Resolves the journal of a crashed run: uploads that reached the storage are recorded
    /// as done. Returns how many.
    pub async fn recover(&self) -> Result<u64> {
        let journal = Journal::open(self.options.journal_dir())?;
        let mut recovered = 0;
        for entry in journal.pending()? {
            let path = &entry.source.path;
            self.target().clean_interrupted_write(path).await?;
            let now = match self.target().stat(path).await {
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
                self.status
                    .report_done(&entry.source, self.walked_after_upload(&entry.source, &now))
                    .await?;
                recovered += 1;
            }
            journal.end(path).await?;
        }
        Ok(recovered)
    }

    /// Processes the backlog written by [`OverwriteFlow::scan`] with the worker pool.
    pub async fn process(
        &self,
        cancel: &CancellationToken,
        progress: Option<ProgressCallback>,
    ) -> Result<ProcessSummary> {
        self.process_from(0, cancel, progress).await
    }

    /// Processes the backlog from entry `start_at` on (a position reported by an earlier,
    /// stopped run). Entries before it are not looked at.
    pub async fn process_from(
        &self,
        start_at: u64,
        cancel: &CancellationToken,
        progress: Option<ProgressCallback>,
    ) -> Result<ProcessSummary> {
        let recovered = self.recover().await?;
        let work_dir = self.options.work_dir();
        empty_dir(&work_dir)?;
        let backlog = self.options.backlog_path();
        let total = BacklogReader::count(&backlog)?.saturating_sub(start_at);
        let journal = Journal::open(self.options.journal_dir())?;
        let failures_path = self.options.failures_path();
        let failures_file = Mutex::new(
            std::fs::File::create(&failures_path)
                .map_err(|err| Error::io(format_args!("`{}`", failures_path.display()), err))?,
        );
        let started = Instant::now();
        let state = Mutex::new((
            Progress {
                total,
                ..Progress::default()
            },
            Vec::<Failure>::new(),
        ));
        let mut reader = BacklogReader::open(&backlog)?;
        let mut position = reader.skip(start_at)?;
        let stop = cancel.clone();
        let files = reader
            .into_stream()
            .take_while(move |_| futures::future::ready(!stop.is_cancelled()))
            .chunks(self.options.batch_size.max(1))
            .map(|batch| batch.into_iter().collect::<Result<Vec<FileInfo>>>());
        let mut files = std::pin::pin!(files);
        let mut backlog_error = None;
        // One batch at a time: its files run with the worker limit, then the next batch is
        // read, so memory holds at most one batch.
        while let Some(batch) = files.next().await {
            let todo = match batch {
                Ok(batch) => batch,
                Err(err) => {
                    backlog_error = Some(err);
                    break;
                }
            };
            let batch_len = todo.len() as u64;
            futures::stream::iter(todo)
                .for_each_concurrent(self.options.concurrency.max(1), |file| {
                    let journal = &journal;
                    let work_dir = &work_dir;
                    let state = &state;
                    let failures_file = &failures_file;
                    let progress = progress.clone();
                    async move {
                        if cancel.is_cancelled() {
                            return;
                        }
                        let path = file.path.clone();
                        let span = tracing::info_span!("file", path = %path);
                        let outcome = tracing::Instrument::instrument(
                            self.handle(file.clone(), journal, work_dir, cancel),
                            span,
                        )
                        .await;
                        let outcome = match outcome {
                            Ok(outcome) => outcome,
                            Err(err) => Outcome::Failed(err.report()),
                        };
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
                        if let Some(failure) = &failure {
                            tracing::warn!(path = %path, error = %failure.error, conflict = failure.conflict, "file not processed");
                            if let Err(err) = self.status.report_error(&file, &failure.error).await {
                                tracing::error!(path = %path, error = %err, "cannot record the failure in the status store");
                            }
                            if let Ok(line) = serde_json::to_string(failure) {
                                use std::io::Write;
                                let mut out = lock(failures_file);
                                let _ = writeln!(out, "{line}");
                            }
                        }
                        let snapshot = {
                            let mut state = lock(state);
                            match outcome {
                                Outcome::Done => state.0.done += 1,
                                Outcome::Skipped => state.0.skipped += 1,
                                Outcome::Conflict(_) => state.0.conflicts += 1,
                                Outcome::Failed(_) => state.0.failed += 1,
                            }
                            if let Some(failure) = failure
                                && state.1.len() < FAILURES_KEPT
                            {
                                state.1.push(failure);
                            }
                            state.0.elapsed_seconds = started.elapsed().as_secs_f64();
                            state.0.clone()
                        };
                        if let Some(progress) = &progress {
                            progress(&snapshot);
                        }
                    }
                })
                .await;
            if !cancel.is_cancelled() {
                position += batch_len;
            }
        }
        let _ = std::fs::remove_dir_all(&work_dir);
        if let Some(err) = backlog_error {
            return Err(err);
        }
        let (mut progress_now, failures) = state
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        progress_now.elapsed_seconds = started.elapsed().as_secs_f64();
        Ok(ProcessSummary {
            stopped: cancel.is_cancelled() && progress_now.handled() < total,
            progress: progress_now,
            recovered,
            failures,
            failures_file: failures_path,
            position,
        })
    }

    async fn handle(
        &self,
        file: FileInfo,
        journal: &Journal,
        work_dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<Outcome> {
        validate_relative_path(&file.path)?;
        if self.options.dry_run {
            tracing::info!(path = %file.path, size = file.size, "would process");
            return Ok(Outcome::Skipped);
        }
        let temp = tempfile::Builder::new()
            .prefix("file-")
            .tempdir_in(work_dir)
            .map_err(|err| {
                Error::io(format_args!("work directory `{}`", work_dir.display()), err)
            })?;
        let input = temp.path().join("in");
        let output = temp.path().join("out");
        let retry = &self.options.retry;
        let path = file.path.as_str();
        let downloaded = retry
            .run(cancel, || self.source.download(path, &input))
            .await
            .map_err(|err| err.context(format!("downloading `{path}`")))?;
        // The backlog holds the file as the scan saw it; what decides is the file as it is
        // now, so that a file finished by an interrupted run is not transformed twice.
        if self
            .status
            .needs_processing(vec![downloaded.clone()])
            .await?
            .is_empty()
        {
            return Ok(Outcome::Skipped);
        }
        if let Err(err) = retry
            .run(cancel, || async {
                let _ = tokio::fs::remove_file(&output).await;
                self.process.process(&input, &output).await
            })
            .await
        {
            return Ok(Outcome::Failed(err.report()));
        }
        let before = match &self.target {
            None => Some(downloaded.clone()),
            Some(target) => match target.stat(path).await {
                Ok(info) => Some(info),
                Err(err) if err.kind() == ErrorKind::NotFound => None,
                Err(err) => return Err(err.context(format!("checking the target `{path}`"))),
            },
        };
        journal
            .begin(&JournalEntry {
                source: downloaded.clone(),
                before,
            })
            .await?;
        let uploaded = match &self.target {
            None => {
                retry
                    .run(cancel, || {
                        self.source.write_if_unchanged(path, &output, &downloaded)
                    })
                    .await
            }
            Some(target) => retry.run(cancel, || target.upload(&output, path)).await,
        };
        let outcome = match uploaded {
            Ok(uploaded) => {
                self.status
                    .report_done(
                        &downloaded,
                        self.walked_after_upload(&downloaded, &uploaded),
                    )
                    .await?;
                Outcome::Done
            }
            Err(err) if err.kind() == ErrorKind::Conflict => Outcome::Conflict(format!(
                "`{path}` changed while it was being processed; it was not overwritten: {}",
                err.report()
            )),
            Err(err) => Outcome::Failed(format!("uploading `{path}`: {}", err.report())),
        };
        journal.end(path).await?;
        Ok(outcome)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes everything in `dir` (creating it if missing): temporary files of a crashed run.
fn empty_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|err| Error::io(format_args!("work directory `{}`", dir.display()), err))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|err| Error::io(format_args!("work directory `{}`", dir.display()), err))
}
