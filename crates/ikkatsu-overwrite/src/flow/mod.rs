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
//!
//! A dry run (`dry_run`) walks and reads the status store as the scan does, checks each
//! file as the process phase would, and writes nothing.
//!
//! The modules follow a file's way through a run: `scan` writes the backlog,
//! `recover` resolves the journal of an interrupted run, `dispatch` checks the backlog's
//! batches and hands files to `worker` tasks, which transform them with the strategy chosen
//! once per run (`in_place` on the local file system, else `transfer`: download, function,
//! upload); `commit` flushes and records the results in groups and `tally` counts them.

mod commit;
mod ctx;
mod dispatch;
mod dry_run;
mod in_place;
mod options;
mod recover;
mod scan;
mod strategy;
mod tally;
mod threads;
mod transfer;
mod worker;

use std::sync::Arc;

use ikkatsu_core::{CancellationToken, Result};
use ikkatsu_storage::Storage;

use crate::lease::LeaseSlot;
use crate::process_fn::ProcessFn;
use crate::status_store::StatusStore;

pub use dry_run::DryRunSummary;
pub use options::{DEFAULT_RETRIES, OverwriteOptions, REMOTE_CONCURRENCY};
pub use tally::{Failure, ProcessSummary, Progress, ProgressCallback, ScanSummary};

/// The overwrite flow over a source storage (and an optional different target).
pub struct OverwriteFlow {
    pub(crate) source: Storage,
    pub(crate) target: Option<Storage>,
    pub(crate) status: Arc<dyn StatusStore>,
    process: Arc<dyn ProcessFn>,
    pub(crate) options: OverwriteOptions,
    pub(crate) lease: LeaseSlot,
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
            lease: LeaseSlot::default(),
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
    /// Takes the [run lease](crate::lease) first (an [`ErrorKind::AlreadyRunning`] error
    /// when another run holds it) and keeps it for [`OverwriteFlow::process_from`]; a failed
    /// scan releases it. The walk, the status-store lookups and the compression of the
    /// backlog run at the same time; on a flow's first run every matching file is queued
    /// without a lookup.
    pub async fn scan(&self, cancel: &CancellationToken) -> Result<ScanSummary> {
        let run = self.hold_lease(cancel).await?;
        let scanned = self.scan_held(&run).await;
        if scanned.is_err() || (run.is_cancelled() && !cancel.is_cancelled()) {
            self.lease.release().await?;
        }
        scanned
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
    /// Takes the [run lease](crate::lease) unless [`OverwriteFlow::scan`] did, and
    /// releases it at the end. Interrupted uploads of an earlier run (in the journal) are
    /// resolved first. A batch of entries is checked against the status store as the files
    /// are now, then each file that needs it runs the function on a task of its own, at
    /// most [`OverwriteOptions::concurrency`] at once; one committer records them in
    /// groups.
    pub async fn process_from(
        &self,
        start_at: u64,
        cancel: &CancellationToken,
        progress: Option<ProgressCallback>,
    ) -> Result<ProcessSummary> {
        let run = self.hold_lease(cancel).await?;
        let processed = self.process_held(start_at, &run, progress).await;
        self.lease.release().await?;
        processed
    }

    /// Releases the run lease taken by [`OverwriteFlow::scan`] when no process phase
    /// follows (a scan only). [`OverwriteFlow::process_from`] releases it itself.
    pub async fn release_lease(&self) -> Result<()> {
        self.lease.release().await
    }

    /// Takes the state directory's lock and the run lease (unless held already), then
    /// cleans up after the killed runs whose leases it took over. Returns the token the
    /// phase runs under (cancelled with `cancel`, or when the lease is lost).
    async fn hold_lease(&self, cancel: &CancellationToken) -> Result<CancellationToken> {
        let run = self
            .lease
            .hold(&self.status, &self.options.lease_terms(), cancel)
            .await?;
        if let Err(err) = self.clean_after_killed_runs().await {
            self.lease.release().await?;
            return Err(err);
        }
        Ok(run)
    }
}
