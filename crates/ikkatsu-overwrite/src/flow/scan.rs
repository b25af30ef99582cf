//! The scan phase: walk → keep what the status store says still needs work → gzip backlog.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{Stream, StreamExt};
use ikkatsu_core::{CancellationToken, Error, Result};
use ikkatsu_storage::{FileInfo, WalkCounts};

use super::OverwriteFlow;
use super::tally::ScanSummary;
use crate::backlog::write_backlog_batches;

impl OverwriteFlow {
    /// Walks the source, keeps the files that need processing, and writes them to the
    /// backlog (replacing it only once complete). Memory does not grow with the file count.
    ///
    /// The walk (several threads on the local file system), the status-store lookups (a
    /// batch of [`OverwriteOptions::batch_size`](super::OverwriteOptions::batch_size) files per call, two calls in flight) and the
    /// compression of the backlog (its own thread) run at the same time. On a first run (the
    /// status store has no record in this namespace) there is nothing to compare: every
    /// matching file is queued without a lookup, and the local walker does not even read
    /// the files' sizes and times (the backlog holds their paths only; the process phase
    /// reads each file's size and time right before processing it anyway).
    pub(super) async fn scan_held(&self, cancel: &CancellationToken) -> Result<ScanSummary> {
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
}

/// Regroups a stream of batches (of walk results) into batches of `size` files; the first
/// error ends it.
pub(super) fn regroup<S>(batches: S, size: usize) -> impl Stream<Item = Result<Vec<FileInfo>>>
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
