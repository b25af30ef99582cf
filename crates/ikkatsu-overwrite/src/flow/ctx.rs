//! [`Ctx`]: what the tasks of one process phase share (the storages, the status store, the
//! function, the journal, the work directory, the tally), and how a file is finished.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use ikkatsu_core::CancellationToken;
use ikkatsu_core::step::RetryPolicy;
use ikkatsu_storage::{FileInfo, LocalFiles, Storage};

use super::strategy::Strategy;
use super::tally::{Outcome, Tally};
use crate::journal::Journal;
use crate::process_fn::ProcessFn;
use crate::status_store::StatusStore;

/// Everything the tasks of one process phase share.
pub(super) struct Ctx {
    pub(super) source: Storage,
    pub(super) target: Option<Storage>,
    /// How files are transformed: in place on the local file system (the fast path), or
    /// by transfer.
    pub(super) strategy: Strategy,
    /// The source's files when it is the local file system: the function reads them there.
    pub(super) local_source: Option<LocalFiles>,
    /// Writing in place with links followed: a file reached through a symbolic link is
    /// read-only.
    pub(super) links_read_only: bool,
    /// The target's files when it is another local directory: a path there reached
    /// through a symbolic link is not written.
    pub(super) local_target: Option<LocalFiles>,
    pub(super) status: Arc<dyn StatusStore>,
    /// A cooperating run's registration: files are claimed and recorded with it.
    pub(super) claims: Option<crate::status_store::Lease>,
    pub(super) process: Arc<dyn ProcessFn>,
    pub(super) retry: RetryPolicy,
    pub(super) journal: Journal,
    pub(super) work_dir: PathBuf,
    pub(super) work_counter: AtomicU64,
    /// Download files of finished files, kept to be written over by the next downloads: a
    /// file truncated and written again keeps its inode, where a new one costs the file
    /// system an allocation and a deletion (on ext4 without a journal, an allocation skips
    /// every inode freed in the last minutes, so the cost grows with the run).
    pub(super) spare_downloads: Mutex<Vec<PathBuf>>,
    /// Threads for the comparisons and renames of a group.
    pub(super) io_threads: usize,
    pub(super) cancel: CancellationToken,
    /// Stops dispatching: cancelled with `cancel`, or when committing fails.
    pub(super) halt: CancellationToken,
    pub(super) tally: Tally,
}

impl Ctx {
    /// Counts a finished file, records a failure (in the status store and the failures
    /// file), reports progress.
    pub(super) async fn finish(&self, file: &FileInfo, outcome: Outcome) {
        let failure = self.tally.failure(file, &outcome);
        if let Some(failure) = &failure
            && let Err(err) = self.status.report_error(file, &failure.error).await
        {
            tracing::error!(path = %file.path, error = %err, "cannot record the failure in the status store");
        }
        self.tally.count(outcome, failure);
    }
}
