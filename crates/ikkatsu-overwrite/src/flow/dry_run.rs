//! The dry run: what a run would process, found as the scan finds it (walk → keep what the
//! status store says still needs work) and checked as the process phase checks it (paths,
//! symbolic links), writing nothing: no state directory, no backlog, no run lease, no
//! status-store record, nothing on the storages.

use futures::StreamExt;
use ikkatsu_core::{CancellationToken, Result};
use ikkatsu_storage::{FileInfo, WalkCounts, validate_relative_path};

use super::OverwriteFlow;
use super::scan::regroup;
use super::threads::blocking;
use crate::links;

/// What a dry run found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DryRunSummary {
    /// Files matching the walk options.
    pub matched: u64,
    /// Of those, files a run would process (each given to the dry run's callback).
    pub would_process: u64,
    /// Files that need work but that a run would not write because they are reached
    /// through a symbolic link (in place with links followed, or their path in a local
    /// target); a warning each.
    pub symlinks: u64,
    /// Files that need work but whose path or link cannot be checked; a warning each.
    pub failed: u64,
    /// Symbolic links the walk skipped with a warning.
    pub links_skipped: u64,
    /// Whether the dry run was cancelled before the end of the walk.
    pub stopped: bool,
}

/// A dry run's decision for one file.
enum Decision {
    Process,
    Symlink(String),
    Fail(String),
}

impl OverwriteFlow {
    /// Finds the files a run would process and gives each to `would_process`, in walk
    /// order, writing nothing: the status store is only read (open it read-only, see
    /// [`open_status_store_read_only`](crate::open_status_store_read_only)), no run lease
    /// is taken and no state directory or backlog is created. A file reached through a
    /// symbolic link that a run would not write is counted and warned about as a run does.
    pub async fn dry_run(
        &self,
        cancel: &CancellationToken,
        mut would_process: impl FnMut(&FileInfo) + Send,
    ) -> Result<DryRunSummary> {
        let counts = WalkCounts::new();
        let mut walk_options = self.options.walk.clone();
        walk_options.counts = Some(counts.clone());
        let stop = cancel.clone();
        let first_run = self.status.is_empty().await?;
        let walk = match first_run {
            true => self.source.walk_paths(walk_options)?,
            false => self.source.walk_batches(walk_options)?,
        };
        let walk = walk.take_while(move |_| futures::future::ready(!stop.is_cancelled()));
        let batch_size = self.options.batch_size.max(1);
        let mut batches = std::pin::pin!(regroup(walk, batch_size));
        let mut summary = DryRunSummary::default();
        let source = self
            .source
            .local_files()
            .filter(|_| self.target.is_none() && self.options.walk.follow_symlinks);
        let target = self.target.as_ref().and_then(|t| t.local_files());
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            summary.matched += batch.len() as u64;
            let needed = if first_run {
                batch
            } else {
                self.status.needs_processing(batch).await?
            };
            let source = source.clone();
            let target = target.clone();
            let decided: Vec<(FileInfo, Decision)> = blocking(move || {
                Ok(needed
                    .into_iter()
                    .map(|file| {
                        if let Err(err) = validate_relative_path(&file.path) {
                            return (file, Decision::Fail(err.report()));
                        }
                        let link = match (&source, &target) {
                            (Some(local), _) => links::read_only(local, &file),
                            (None, Some(local)) => links::target_read_only(local, &file.path),
                            (None, None) => Ok(None),
                        };
                        let decision = match link {
                            Ok(None) => Decision::Process,
                            Ok(Some(why)) => Decision::Symlink(why),
                            Err(err) => {
                                Decision::Fail(format!("reading `{}`: {}", file.path, err.report()))
                            }
                        };
                        (file, decision)
                    })
                    .collect())
            })
            .await?;
            for (file, decision) in decided {
                match decision {
                    Decision::Process => {
                        summary.would_process += 1;
                        would_process(&file);
                    }
                    Decision::Symlink(why) => {
                        summary.symlinks += 1;
                        tracing::warn!(path = %file.path, "{why}");
                    }
                    Decision::Fail(error) => {
                        summary.failed += 1;
                        tracing::warn!(path = %file.path, error = %error, "file would not be processed");
                    }
                }
            }
        }
        summary.links_skipped = counts.links_skipped();
        summary.stopped = cancel.is_cancelled();
        Ok(summary)
    }
}
