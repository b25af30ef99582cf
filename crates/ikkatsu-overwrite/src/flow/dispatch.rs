//! The process phase's dispatch: the backlog is read in batches, each batch is checked
//! against the status store as the files are now, and each file that needs it goes to a
//! worker task; a bounded window of files in flight keeps memory flat.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use ikkatsu_core::{CancellationToken, Error, ErrorKind, Result};
use ikkatsu_storage::{FileInfo, Storage, validate_relative_path};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::OverwriteFlow;
use super::commit::{Pending, committer};
use super::ctx::Ctx;
use super::recover::empty_dir;
use super::strategy::Strategy;
use super::tally::{Outcome, ProcessSummary, ProgressCallback, Tally};
use super::threads::blocking;
use crate::backlog::BacklogReader;
use crate::journal::Journal;
use crate::links;

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
    /// Processes the backlog from entry `start_at` on (a position reported by an earlier,
    /// stopped run). Entries before it are not looked at.
    ///
    /// A batch of entries is checked against the status store as the files are now (so
    /// that work finished by an interrupted run is skipped), then each file that needs it
    /// runs the function on a task of its own, at most [`OverwriteOptions::concurrency`](super::OverwriteOptions::concurrency)
    /// at once. Results go to one committer, which handles them in groups: one flush of the
    /// journal, the new contents and the status store covers a whole group. At most four
    /// batches are in flight.
    pub(super) async fn process_held(
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
            strategy: Strategy::choose(&self.source, self.target.is_some()),
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
            tally: Tally::new(total, failures_file, progress),
        });
        // Cooperating runs claim small batches, so that they interleave.
        let batch_size = match self.options.cooperate {
            true => self.options.batch_size.min(concurrency * 2).max(1),
            false => self.options.batch_size.max(1),
        };
        let (commits, commit_queue) = mpsc::channel::<Pending>(WINDOW_BATCHES * batch_size);
        let committer = tokio::spawn(ikkatsu_core::call::carry(committer(
            Arc::clone(&ctx),
            commit_queue,
            GROUP_BATCHES * batch_size,
        )));
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
            let checked = match ctx.precheck(todo, concurrency).await {
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
                        tasks.spawn(ikkatsu_core::call::carry(async move {
                            let span = tracing::info_span!("file", path = %file.path);
                            tracing::Instrument::instrument(
                                ctx.run_file(file, worker, slot, commits),
                                span,
                            )
                            .await;
                        }));
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
        let (progress_now, failures) = ctx.tally.snapshot();
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

impl Ctx {
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
                        match self.source.stat(&path).await {
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
